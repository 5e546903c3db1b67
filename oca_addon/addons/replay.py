"""Replays: trying a call again, from mitmweb, mitmdump or the dashboard.

- mitmproxy's own client replay (mitmweb's replay button, `replay.client`, `-C FILE`) of a
  call the Gateway already forwarded: its request is OCA's (upstream Host, the API prefix,
  a redacted token). It goes to OCA as it is (edits included), with a fresh token on the
  wire; it is not translated again, and its answer is OCA's own. A replay to a host other
  than OCA's (edited in mitmweb) never gets the token.
- `oca.replay FLOW [MODEL] [EFFORT]`: the client's original request (kept on the flow by
  annotate.keep_client_request) again, as a new flow through the whole pipeline (mapping,
  translation, streaming), optionally with another model or reasoning effort. The new flow
  says which one it replays (metadata `replay_of` and its comment). The dashboard's Replay
  button comes here too (`ProxyState.replay`).
- `oca.repro FLOW FILE`: the call as a reproduction file without secrets (repro.py).

A replay is started by whoever runs mitmproxy, never by a network client (mitmproxy sets
`flow.is_replay` itself), so the Guard lets replays through; the token goes only to OCA.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import mitmproxy.types
from mitmproxy import command, connection, ctx, exceptions, flow, http

from oca_addon.core import private, repro, security
from oca_addon.core.apis import api_for
from oca_addon.core.errors import ApiError
from oca_addon.core.stats import RequestRecord
from oca_addon.mitm import annotate
from oca_addon.mitm import patches as mitm_patches
from oca_addon.mitm.call import call_of
from oca_addon.mitm.owncalls import OWN_CALL
from oca_addon.mitm.replies import reply_error
from oca_addon.mitm.state import ProxyState

log = logging.getLogger("oca_addon")

# Client requests kept for the dashboard's recent rows under mitmdump (which keeps no
# flows): at most its row count, and at most this many bytes of bodies.
KEPT_FOR_REPLAY = 100
KEPT_BYTES = 32 * 1024 * 1024


class Replays:
    def __init__(self, state: ProxyState) -> None:
        self.state = state
        # flow id -> the client's request kept on it, for rows whose flow is gone (mitmdump
        # keeps no flows): the same dict as in the flow's metadata, so nothing is copied.
        self.kept: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.kept_bytes = 0

    # -- mitmproxy's own replays -----------------------------------------------------------

    @staticmethod
    def request_early(flow: http.HTTPFlow) -> bool:
        """Before a request is sent early (mitm/patches/earlysend.py): only replays are
        this hook's, and those are never sent early."""
        return flow.is_replay != "request"

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        # Plain for every call (a hot path); mitmproxy awaits what a hook returns.
        if flow.is_replay != "request" or flow.response or not flow.live:
            return None
        return self._replayed(flow)

    async def _replayed(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        # A flow replayed again still carries the wire token of its first run: never reuse it.
        mitm_patches.clear_wire_headers(req)
        if security.host_allowed(req.host_header, self.state.listen_port()):
            return  # the client's own request (oca.replay, or one never forwarded): the pipeline
        upstream, tokens = self.state.upstream, self.state.tokens
        assert upstream and tokens
        prefix = upstream.prefix
        api_path = req.path[len(prefix) :] if req.path.startswith(prefix) else req.path
        api = api_for(api_path)
        rec = RequestRecord(
            started=time.time(),
            api=api.endpoint.value if api else "oca",
            path=req.path.split("?")[0],
            requested_model=_model_of(req.raw_content),
            target_model=_model_of(req.raw_content),
            route="own call" if flow.metadata.get(OWN_CALL) else "replay",
            stream="text/event-stream" in req.headers.get("accept", ""),
            request_id=secrets.token_hex(16),
        )
        self.state.replays[flow.id] = rec
        if (req.scheme, req.host, req.port) != upstream.origin:
            log.warning(
                "Replay of %s goes to %s, not OCA: without the OCA token", flow.id, req.host
            )
            return
        token = await tokens.access_token()
        if token is None:
            reply_error(
                flow,
                api.flavor if api else "openai",
                ApiError(401, "oca-proxy is not logged in to OCA", code="login_required"),
                rec,
            )
            return
        req.headers["authorization"] = mitm_patches.REDACTED
        req.headers["opc-request-id"] = rec.request_id
        mitm_patches.set_wire_headers(req, {"authorization": f"Bearer {token}"})

    # -- oca.replay --------------------------------------------------------------------------

    @command.command("oca.replay")
    def replay(
        self, flows: Sequence[flow.Flow], model: str = "", effort: str = ""
    ) -> Sequence[str]:
        """Replay the client's original request of API calls through oca-proxy (mapping,
        translation, streaming), each as a new flow, optionally with another model and
        reasoning effort (minimal, low, medium, high). Returns the new flows' ids."""
        if not flows:
            raise exceptions.CommandError("no flow to replay (in mitmweb: @<flow id> or @marked)")
        new: list[str] = []
        try:
            for f in flows:
                if not isinstance(f, http.HTTPFlow):
                    raise repro.ReplayError("oca.replay takes HTTP flows")
                new.append(self._replay(_client_request(f), f.id, model, effort))
        except repro.ReplayError as e:
            raise exceptions.CommandError(str(e)) from None
        return new

    def response(self, flow: http.HTTPFlow) -> None:
        self._remember(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._remember(flow)

    def _remember(self, flow: http.HTTPFlow) -> None:
        """A call ended: keep its client request (on the flow since its request hook), so
        that the dashboard may replay it under mitmdump too (which keeps no flows)."""
        if mitm_patches.resend_pending(flow) or call_of(flow) is None:
            return  # not an API call, or not ended: OCA is asked once more
        kept = annotate.meta(flow).get("client_request")
        if isinstance(kept, dict):
            self.remember(flow.id, kept)

    def remember(self, flow_id: str, kept: dict[str, Any]) -> None:
        body = kept.get("body")
        size = len(body) if isinstance(body, str) else 0
        if kept.get("truncated") or size > KEPT_BYTES:
            return  # could not be replayed anyway
        self.kept[flow_id] = kept
        self.kept_bytes += size
        while len(self.kept) > KEPT_FOR_REPLAY or self.kept_bytes > KEPT_BYTES:
            _, old = self.kept.popitem(last=False)
            old_body = old.get("body")
            self.kept_bytes -= len(old_body) if isinstance(old_body, str) else 0

    @command.command("oca.replay_by_id")
    def replay_by_id(self, flow_id: str, model: str = "", effort: str = "") -> str:
        """Replay a recent call by its flow id (the dashboard's Replay button), as
        oca.replay does; mitmdump keeps no flows, so recent calls' requests are kept here."""
        try:
            return self._replay_by_id(flow_id, model, effort)
        except repro.ReplayError as e:
            raise exceptions.CommandError(str(e)) from None

    def _replay_by_id(self, flow_id: str, model: str, effort: str) -> str:
        view = ctx.master.addons.get("view")
        f = view.get_by_id(flow_id) if view is not None else None
        if isinstance(f, http.HTTPFlow):
            kept = _client_request(f)
        elif flow_id in self.kept:
            kept = repro.client_request_of({"client_request": self.kept[flow_id]})
        else:
            raise repro.ReplayError(f"the request of flow {flow_id} is no longer kept")
        return self._replay(kept, flow_id, model, effort)

    def _replay(self, kept: dict[str, Any], replay_of: str, model: str, effort: str) -> str:
        method, path = str(kept.get("method", "POST")), str(kept.get("path", "/"))
        body = repro.with_overrides(path, kept["body"], model or None, effort or None)
        upstream = self.state.upstream
        assert upstream
        scheme, host, port = upstream.origin
        listen = self.state.listen_port()
        fields = [(b"host", f"127.0.0.1:{listen}".encode())]
        fields += [(k.encode(), v.encode()) for k, v in repro.clean_headers(kept["headers"])]
        fields.append((b"content-length", str(len(body)).encode()))
        now = time.time()
        req = http.Request(
            host, port, method.encode(), scheme.encode(), b"", path.encode(), b"HTTP/1.1",
            http.Headers(fields), body, None, now, now,
        )  # fmt: skip
        client = connection.Client(
            peername=("127.0.0.1", 0), sockname=("127.0.0.1", listen), timestamp_start=now
        )
        new = http.HTTPFlow(client, connection.Server(address=(host, port)))
        new.request = req
        data = annotate.meta(new)
        data["replay_of"] = replay_of
        data["replay_with"] = {k: v for k, v in (("model", model), ("effort", effort)) if v}
        new.comment = f"replay of {replay_of}"
        view = ctx.master.addons.get("view")
        if view is not None:
            view.add([new])
        ctx.master.commands.call("replay.client", [new])
        log.info("Replaying %s as %s%s", replay_of, new.id, f" with {model}" if model else "")
        return new.id

    # -- oca.repro -------------------------------------------------------------------------

    @command.command("oca.repro")
    def write_repro(self, f: flow.Flow, path: mitmproxy.types.Path, answer: bool = True) -> None:
        """Write an API call as a reproduction file (JSON, no keys or tokens): the client's
        request, OCA's answer (unless answer is false) and a curl line aimed at the proxy.
        `oca-proxy replay FILE` sends it again."""
        if not isinstance(f, http.HTTPFlow):
            raise exceptions.CommandError("oca.repro takes an HTTP flow")
        try:
            kept = _client_request(f)
            data = annotate.meta(f)
            doc = repro.repro_document(
                flow_id=f.id,
                comment=f.comment,
                client_request=kept,
                oca_response=_oca_answer(f, data) if answer else None,
                proxy=f"http://127.0.0.1:{self.state.listen_port()}",
                file=str(path),
            )
        except repro.ReplayError as e:
            raise exceptions.CommandError(str(e)) from None
        target = os.path.expanduser(path)
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        try:  # 0600 whatever the umask: a call's prompt is the user's own business
            private.write_private(Path(target), text.encode("utf-8", "replace"), check_folder=False)
        except OSError as e:
            raise exceptions.CommandError(f"could not write {target}: {e}") from None
        log.info("Wrote a reproduction of %s to %s", f.id, target)


def _client_request(f: http.HTTPFlow) -> dict[str, Any]:
    """What the client sent: kept on flows oca-proxy forwarded; a flow it never forwarded
    (refused, answered by oca-proxy) still holds the client's request itself."""
    data = f.metadata.get(annotate.META_KEY)
    if isinstance(data, dict) and "client_request" in data:
        return repro.client_request_of(data)
    req = f.request
    if api_for(req.path) is None:
        raise repro.ReplayError(f"flow {f.id} is not an API call oca-proxy handled")
    if req.raw_content is None:
        raise repro.ReplayError("this flow's request body is missing")
    return {
        "method": req.method,
        "path": req.path,
        "headers": [[k, v] for k, v in req.headers.items(True)],
        "body": (req.raw_content or b"").decode("utf-8", "replace"),
    }


def _oca_answer(f: http.HTTPFlow, data: dict[str, Any]) -> dict[str, Any] | None:
    oca = data.get("oca_response")
    if not isinstance(oca, dict):
        return None
    if oca.get("same_as_client") and f.response is not None:  # passed through unchanged
        body = (f.response.raw_content or b"").decode("utf-8", "replace")
        return {**oca, "body": body}
    return oca


def _model_of(body: bytes | None) -> str:
    try:
        data = json.loads(body or b"")
    except ValueError:
        return ""
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) else ""
