"""Test-control endpoints under /__sim/ (loopback clients only)."""

from __future__ import annotations

import json
from typing import Any

from oca_addon.sim.base import BaseHandler
from oca_addon.sim.config import DEFAULT_CLIENT_IDS

_LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}

# One-shot actions accepted by /__sim/config next to the knobs.
# "guesses": "all" | "none" | [names] switches every guess at once (named ones on).
_ACTIONS = {"revoke_access_tokens", "revoke_refresh_tokens", "guesses"}


class AdminHandler(BaseHandler):
    def prepare(self) -> None:
        super().prepare()
        if self.request.remote_ip not in _LOOPBACK:
            self.send_json({"error": "admin endpoints are loopback-only"}, 403)

    def json_body(self) -> dict[str, Any] | None:
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.send_json({"error": "body must be a JSON object"}, 400)
            return None
        return body


class StateHandler(AdminHandler):
    def get(self) -> None:
        self.send_json(self.sim.snapshot())


class RequestsHandler(AdminHandler):
    """The recent requests (path, lower-cased headers, parsed body), oldest first.

    ?path=SUFFIX keeps those whose path ends with it; ?last=N the newest N.
    """

    def get(self) -> None:
        suffix = self.get_query_argument("path", "")
        found = [r for r in self.sim.requests if r["path"].endswith(suffix)]
        last = self.get_query_argument("last", "")
        if last.isdigit():
            found = found[-int(last) :] if int(last) else []
        self.send_json(found)


class ConfigHandler(AdminHandler):
    def get(self) -> None:
        self.send_json(self.sim.config.to_dict())

    def post(self) -> None:
        body = self.json_body()
        if body is None:
            return
        knobs = {k: v for k, v in body.items() if k not in _ACTIONS}
        try:
            if "guesses" in body:
                self.sim.config.set_guesses(body["guesses"])
            self.sim.config.update(knobs)
        except ValueError as e:
            return self.send_json({"error": str(e)}, 400)
        if body.get("revoke_access_tokens"):
            self.sim.access_tokens.clear()
        if body.get("revoke_refresh_tokens"):
            self.sim.refresh_tokens.clear()
        if "recent_requests" in knobs:
            self.sim.resize_recent()
        self.send_json(self.sim.config.to_dict())


class MintHandler(AdminHandler):
    """Issue tokens without a browser login (the demo starts already logged in)."""

    def post(self) -> None:
        body = self.json_body()
        if body is None:
            return
        client_id = body.get("client_id") or DEFAULT_CLIENT_IDS[0]
        scope = body.get("scope") or "openid offline_access"
        if not isinstance(client_id, str) or not isinstance(scope, str):
            return self.send_json({"error": "client_id and scope must be strings"}, 400)
        self.sim.minted += 1
        self.send_json(
            self.sim.issue_tokens(client_id, scope, issuer=f"http://{self.request.host}")
        )


class ResetHandler(AdminHandler):
    def post(self) -> None:
        self.sim.reset()
        self.send_json({"ok": True})
