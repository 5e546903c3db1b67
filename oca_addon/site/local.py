"""Pages the proxy answers itself: health, login, callback, logout, dashboard."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mitmproxy import ctx, exceptions, http

from oca_addon import __version__
from oca_addon.auth.idcs import IdcsError, LoginRequest
from oca_addon.core import jsonio
from oca_addon.core.private import FileRefused
from oca_addon.core.settings import ConfigError, parse_settings
from oca_addon.mitm import annotate
from oca_addon.mitm.state import ProxyState
from oca_addon.site import dashboard
from oca_addon.site import loginpages as pages

log = logging.getLogger(__name__)

LOGIN_STATE_TTL = 600  # seconds a login attempt stays valid (IDCS codes are short-lived too)
HTML = {"content-type": "text/html; charset=utf-8", "cache-control": "no-store"}
JSON = {"content-type": "application/json", "cache-control": "no-store"}


def _json_payload(req: http.Request) -> Any:
    """The dashboard's JSON body; a ValueError saying why not (not JSON, not UTF-8, nested
    or numbered beyond what is parsed)."""
    try:
        text = (req.raw_content or b"").decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"the body is not valid UTF-8 (byte {e.start})") from None
    try:
        return jsonio.loads(text)
    except jsonio.BeyondLimits as e:
        raise ValueError(f"the body cannot be read: {e}") from None
    except ValueError as e:
        raise ValueError(f"the body is not valid JSON: {e}") from None


class LocalSite:
    """The pages, over the shared state (the `LocalPages` addon hands them the flows)."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self._logins: dict[str, LoginRequest] = {}
        self.csrf = secrets.token_urlsafe(24)  # for this process's own forms

    async def handle(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        path = urlsplit(req.path).path.rstrip("/") or "/"
        routes = {
            "/": self.dashboard,
            "/health": self.health,
            "/login": self.login,
            "/callback": self.callback,
            "/logout": self.logout,
            "/api/state": self.api_state,
            "/api/settings": self.api_settings,
            "/api/replay": self.api_replay,
            "/api/learned": self.api_learned,
            "/api/event_logging/batch": self.ignore,
        }
        handler = routes.get(path)
        if handler is None:
            flow.response = http.Response.make(
                404,
                json.dumps(
                    {
                        "error": {
                            "message": f"Not found: {path}. The API is under /v1/.",
                            "type": "not_found_error",
                            "code": None,
                            "param": None,
                        }
                    }
                ),
                JSON,
            )
            return
        try:
            flow.response = await handler(flow)
        except Exception:
            log.exception("Local page %s failed", path)
            flow.response = http.Response.make(
                500,
                pages.message_page(
                    "Something went wrong",
                    "oca-proxy hit an error on this page; the log has the details.",
                    ok=False,
                ),
                HTML,
            )

    async def ignore(self, flow: http.HTTPFlow) -> http.Response:
        # Claude Code posts telemetry here; accept and drop it.
        return http.Response.make(200, b"{}", JSON)

    # -- health and dashboard ---------------------------------------------------------

    async def health_data(self) -> dict[str, Any]:
        state = self.state
        assert state.tokens and state.upstream
        status = await state.tokens.status()
        exp = status.access_expires_at
        return {
            "status": "ok",
            "version": __version__,
            "logged_in": status.logged_in,
            "login_problem": status.problem,
            "access_token_expires_at": exp,
            "access_token_expires_in": int(exp - time.time()) if exp else None,
            "mode": state.upstream.mode,
            "base_url": state.upstream.base_url,
            "idcs_url": state.upstream.idcs_url,
            "upstream_notices": state.upstream.notices,  # not Oracle's: where tokens go
            "token_file": str(state.tokens.store.path),
            "settings_file": str(state.settings_file.path) if state.settings_file else None,
            "settings_error": str(state.settings_file.error)
            if state.settings_file and state.settings_file.error
            else None,
            "port": state.listen_port(),
            "requests": sum(t["requests"] for t in state.stats.totals.values()),
            "inflight": len(state.inflight),  # API calls waiting on OCA right now
            # What OCA's refusals taught about its models (addons/retry.py).
            "learning": state.learning,
            "learned": state.learned.snapshot(),
            "learned_file": str(state.learned.path) if state.learned.path else None,
        }

    async def health(self, flow: http.HTTPFlow) -> http.Response:
        return http.Response.make(200, json.dumps(await self.health_data()), JSON)

    async def dashboard(self, flow: http.HTTPFlow) -> http.Response:
        if flow.request.method == "HEAD":
            return http.Response.make(200, b"", HTML)
        nonce = secrets.token_urlsafe(16)
        body = dashboard.render_page(await self.dashboard_state(), self.csrf, nonce)
        headers = {
            **HTML,
            "content-security-policy": dashboard.csp(nonce),
            "x-frame-options": "DENY",
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
        }
        return http.Response.make(200, body, headers)

    async def dashboard_state(self) -> dict[str, Any]:
        state = self.state
        health = await self.health_data()
        catalog = await self._dashboard_catalog(health["logged_in"])
        return dashboard.build_state(
            health,
            catalog,
            state.current_settings(),
            state.stats,
            mitmweb=annotate.mitmweb_url(),
            inflight=len(state.inflight),
            view_note=state.view_note,
        )

    async def _dashboard_catalog(self, logged_in: bool) -> Any:
        """OCA's model list for the page: cached, or fetched (briefly) when logged in."""
        state = self.state
        assert state.tokens
        cached = await state.catalog()
        if cached is not None or not logged_in:
            return cached
        try:
            token = await state.tokens.access_token()
            return await asyncio.wait_for(state.catalog(token), 5) if token else None
        except Exception:  # a timeout or OCA trouble: the page says the list is unavailable
            return None

    async def api_state(self, flow: http.HTTPFlow) -> http.Response:
        """The dashboard's data. With `?after=SEQ`: a long poll, answered as soon as the
        traffic changes (or after 20 s), so an open dashboard adds few flows to mitmweb."""
        query = parse_qs(urlsplit(flow.request.path).query)
        after = query["after"][0] if query.get("after") else None
        if after is not None:
            state = self.state
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if dashboard.seq(state.stats, len(state.inflight)) != after:
                    break
                await asyncio.sleep(0.25)
        return http.Response.make(200, json.dumps(await self.dashboard_state()), JSON)

    def _write_refusal(self, flow: http.HTTPFlow) -> str | None:
        """Why a write from the dashboard is refused (None: it came from our own page)."""
        from oca_addon.core.security import origin_allowed

        req = flow.request
        sent = req.headers.get("x-csrf-token", "")
        if not sent or not secrets.compare_digest(sent.encode(), self.csrf.encode()):
            return "this change did not come from oca-proxy's own page (CSRF token missing)"
        origin = req.headers.get("origin")
        if origin is not None and not origin_allowed(origin, self.state.listen_port()):
            return f"cross-site request from {origin[:100]!r} refused"
        if req.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return "cross-site request refused"
        if "json" not in req.headers.get("content-type", ""):
            return "send the change as application/json"
        return None

    async def api_replay(self, flow: http.HTTPFlow) -> http.Response:
        """POST {"flow": id, "model"?, "effort"?} (the dashboard's Replay button): the call's
        client request again, as a new flow through the whole pipeline."""
        req = flow.request
        if req.method != "POST":
            return http.Response.make(405, b"use POST", {"allow": "POST"})
        refusal = self._write_refusal(flow)
        if refusal:
            return http.Response.make(403, json.dumps({"ok": False, "error": refusal}), JSON)
        try:
            payload = _json_payload(req)
        except ValueError as e:
            return http.Response.make(400, json.dumps({"ok": False, "error": str(e)}), JSON)
        flow_id = payload.get("flow") if isinstance(payload, dict) else None
        if not isinstance(flow_id, str) or not flow_id:
            return http.Response.make(
                400, json.dumps({"ok": False, "error": "name the flow to replay"}), JSON
            )
        model, effort = payload.get("model") or "", payload.get("effort") or ""
        if not isinstance(model, str) or not isinstance(effort, str):
            return http.Response.make(
                400, json.dumps({"ok": False, "error": "model and effort must be text"}), JSON
            )
        try:  # the Replays addon's command (addons/replay.py)
            new_id = ctx.master.commands.call("oca.replay_by_id", flow_id, model, effort)
        except exceptions.CommandError as e:
            return http.Response.make(400, json.dumps({"ok": False, "error": str(e)}), JSON)
        return http.Response.make(200, json.dumps({"ok": True, "flow": new_id}), JSON)

    async def api_learned(self, flow: http.HTTPFlow) -> http.Response:
        """GET: what OCA's refusals taught. POST {"model": id} or {"all": true} (the
        dashboard's Forget buttons): forget it; the next call asks OCA as the list says."""
        learned = self.state.learned
        req = flow.request
        if req.method == "GET":
            return http.Response.make(200, json.dumps({"learned": learned.snapshot()}), JSON)
        if req.method != "POST":
            return http.Response.make(405, b"use GET or POST", {"allow": "GET, POST"})
        refusal = self._write_refusal(flow)
        if refusal:
            return http.Response.make(403, json.dumps({"ok": False, "error": refusal}), JSON)
        try:
            payload = json.loads(req.get_text(strict=False) or "")
        except (ValueError, RecursionError):
            payload = None
        model = payload.get("model") if isinstance(payload, dict) else None
        if isinstance(payload, dict) and payload.get("all") is True:
            gone = learned.forget()
        elif isinstance(model, str) and model:
            gone = learned.forget(model)
        else:
            return http.Response.make(
                400, json.dumps({"ok": False, "error": 'send {"model": ID} or {"all": true}'}), JSON
            )
        log.info("Forgot %d fact(s) learned from OCA (%s)", gone, model or "all models")
        return http.Response.make(
            200, json.dumps({"ok": True, "forgotten": gone, "learned": learned.snapshot()}), JSON
        )

    async def api_settings(self, flow: http.HTTPFlow) -> http.Response:
        """GET: the mapping. POST (from the dashboard): save a new mapping atomically."""
        state = self.state
        req = flow.request

        def answer(status: int, body: dict[str, Any]) -> http.Response:
            return http.Response.make(status, json.dumps(body), JSON)

        if req.method == "GET":
            return answer(200, dashboard.mapping_state(state.current_settings()))
        if req.method != "POST":
            return http.Response.make(405, b"use GET or POST", {"allow": "GET, POST"})
        refusal = self._write_refusal(flow)
        if refusal:
            return answer(403, {"ok": False, "error": refusal})
        settings_file = state.settings_file
        assert settings_file is not None
        current = state.current_settings()
        if settings_file.error is not None:
            return answer(
                409,
                {
                    "ok": False,
                    "error": f"the settings file has a problem ({settings_file.error.problem}); "
                    "fix it by hand first so no edit of yours is lost",
                },
            )
        try:
            payload = _json_payload(req)
            new = dashboard.settings_from_form(current, payload)
            parse_settings(new.to_dict(), settings_file.path)  # what a reload would accept
        except (ValueError, ConfigError) as e:
            message = e.problem if isinstance(e, ConfigError) else str(e)
            return answer(400, {"ok": False, "error": message})
        try:
            await asyncio.to_thread(settings_file.save, new)
        except OSError as e:  # a folder others may write (private.py) says what to do
            why = e.strerror if isinstance(e, FileRefused) else e
            return answer(
                500, {"ok": False, "error": f"could not write {settings_file.path}: {why}"}
            )
        log.info("Model mapping saved from the dashboard to %s", settings_file.path)
        return answer(
            200,
            {
                "ok": True,
                "saved_to": dashboard.tilde(str(settings_file.path)),
                "settings": dashboard.mapping_state(new),
                "warnings": dashboard.unknown_targets(new, await state.catalog()),
            },
        )

    # -- login ------------------------------------------------------------------------

    def redirect_uri(self) -> str:
        # IDCS only accepts whitelisted localhost ports, whatever host the browser used.
        return f"http://localhost:{self.state.listen_port()}/callback"

    async def login(self, flow: http.HTTPFlow) -> http.Response:
        assert self.state.tokens
        idcs = self.state.tokens.idcs
        try:
            login = await asyncio.to_thread(idcs.start_login, self.redirect_uri())
        except IdcsError as e:
            return self._login_failed(f"Could not start the login: {e}")
        self._expire_logins()
        self._logins[login.state] = login
        return http.Response.make(302, b"", {"location": login.url, "cache-control": "no-store"})

    def _expire_logins(self) -> None:
        cutoff = time.time() - LOGIN_STATE_TTL
        for state, login in list(self._logins.items()):
            if login.created_at < cutoff:
                del self._logins[state]

    def _login_failed(self, why: str, status: int = 400) -> http.Response:
        return http.Response.make(
            status,
            pages.message_page(
                "Login failed", why, ok=False, actions=[("Try again", "/login"), ("Dashboard", "/")]
            ),
            HTML,
        )

    async def callback(self, flow: http.HTTPFlow) -> http.Response:
        assert self.state.tokens
        query = {k: v[0] for k, v in parse_qs(urlsplit(flow.request.path).query).items()}
        if "error" in query:
            desc = query.get("error_description")
            err = query["error"]
            return self._login_failed(
                f"IDCS refused the login: {desc} ({err})."
                if desc
                else f"IDCS refused the login ({err})."
            )
        state, code = query.get("state"), query.get("code")
        self._expire_logins()
        login = self._logins.pop(state, None) if state else None  # one use
        if login is None:
            return self._login_failed(
                "This login link is missing its state, was already used, or is older than "
                "10 minutes. Start again."
            )
        if not code:
            return self._login_failed("IDCS sent no authorization code.")
        tokens_mgr = self.state.tokens
        try:
            tokens = await asyncio.to_thread(tokens_mgr.idcs.exchange_code, code, login)
        except IdcsError as e:
            return self._login_failed(f"The login could not be completed: {e}.")
        try:
            await asyncio.to_thread(tokens_mgr.save_login, tokens)
        except IdcsError as e:
            return self._login_failed(f"The login could not be completed: {e}.")
        except OSError as e:  # a full disk or a read-only home must not lose a good login
            await tokens_mgr.hold_login(tokens, e)
            port = self.state.listen_port()
            return http.Response.make(
                200, pages.login_success_page(port, tokens_mgr.save_problem), HTML
            )
        tokens_mgr.adopt(tokens)
        self.state.forget_catalog()  # read again with this login, even just after a failure
        log.info("Logged in to OCA; refresh token saved to %s", tokens_mgr.store.path)
        return http.Response.make(200, pages.login_success_page(self.state.listen_port()), HTML)

    async def logout(self, flow: http.HTTPFlow) -> http.Response:
        assert self.state.tokens
        req = flow.request
        if req.method == "GET":
            # State changes only by POST with our token: a link on another site cannot log you out.
            return http.Response.make(200, pages.logout_confirm_page(self.csrf), HTML)
        if req.method != "POST":
            return http.Response.make(405, b"use POST", {"allow": "GET, POST"})
        media_type = req.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type == "application/json":  # never a form, nor a page's no-cors request
            return await self._check_token_file(flow)
        form = parse_qs(req.get_text(strict=False) or "")
        sent = (form.get("csrf") or [req.headers.get("x-csrf-token", "")])[0]
        if not sent.isascii():  # never ours (and compare_digest refuses non-ASCII str)
            return http.Response.make(
                400, pages.message_page("Not logged out", "Malformed CSRF token.", ok=False), HTML
            )
        if not secrets.compare_digest(sent.encode(), self.csrf.encode()):
            return http.Response.make(
                403,
                pages.message_page(
                    "Not logged out",
                    "This logout did not come from oca-proxy's own page.",
                    ok=False,
                    actions=[("Log out", "/logout")],
                ),
                HTML,
            )
        await self.state.tokens.logout()
        log.info("Logged out of OCA")
        return http.Response.make(
            200,
            pages.message_page(
                "Logged out",
                "The OCA login was removed from this machine.",
                ok=True,
                actions=[("Log in again", "/login")],
            ),
            HTML,
        )

    async def _check_token_file(self, flow: http.HTTPFlow) -> http.Response:
        """POST /logout {"check_token_file": true}: `oca-proxy logout` removed the token
        file and asks the proxy to notice now, not at its next look (within a second).

        No CSRF token is needed because nothing here is the caller's to decide: the login
        ends only if its file is gone (what the next look would find anyway); no file is
        removed and no login started. A page elsewhere cannot send it at all (JSON from
        another site is refused for its Origin, and needs a CORS preflight we never grant)."""
        assert self.state.tokens
        try:
            payload = json.loads(flow.request.get_text(strict=False) or "")
        except ValueError:
            payload = None
        if not (isinstance(payload, dict) and payload.get("check_token_file") is True):
            return http.Response.make(
                400,
                json.dumps(
                    {"ok": False, "error": 'send {"check_token_file": true}, or use the form'}
                ),
                JSON,
            )
        status = await self.state.tokens.check_file()
        body = {
            "ok": True,
            "logged_in": status.logged_in,
            "login_problem": status.problem,
            "token_file": str(self.state.tokens.store.path),
        }
        return http.Response.make(200, json.dumps(body), JSON)
