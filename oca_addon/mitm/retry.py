"""A call OCA refused, and explained, sent once more with the cause removed.

OCA's model list is a hint, not a contract (OCA-FACTS, "When OCA refuses"): a model may
refuse a parameter nothing announces, take fewer efforts or output tokens than its list
says, and no source says which models OCA serves legacy /completions for. When OCA answers
such a refusal before any byte reached the client, the call is changed as little as
removes the cause (refusals.py reads OCA's words; for /completions: translated) and sent
again, once, by mitmproxy itself (mitm_patches.resend): the retry is the client's own flow,
streamed like any other, with mitmproxy's upstream options. mitmweb shows the refused
attempt as a flow of its own beside it. What was learned is kept per model (LearnedFacts)
and applied to the next calls, so only the first call costs an extra one.
"""

from __future__ import annotations

import logging
import secrets
import time

import orjson
from mitmproxy import ctx, http

from oca_addon.core import jsonio
from oca_addon.core.errors import upstream_error_message
from oca_addon.core.exchange import Exchange
from oca_addon.core.refusals import UpstreamApi, fix_request, parse_refusal
from oca_addon.mitm import annotate
from oca_addon.mitm import patches as mitm_patches
from oca_addon.mitm.call import Call
from oca_addon.mitm.state import ProxyState

log = logging.getLogger("oca_addon")

# OCA refusing a route with one of these (legacy /completions, which no source says OCA
# serves): the call goes on the route its API retries on (ClientApi.retry_elsewhere).
ROUTE_REFUSALS = frozenset({400, 404, 405, 422, 501})
# The OCA path a body went to -> the API it is written in (refusals.fix_request).
_UPSTREAM_API: dict[str, UpstreamApi] = {
    "/chat/completions": "chat",
    "/responses": "responses",
    "/v1/messages": "messages",
    "/completions": "completions",
}


def route_label(ex: Exchange) -> str:
    """How the call went, for the record: native, translated (via chat), or via an adapter."""
    if ex.route.native:
        return "native"
    return f"via {ex.route.adapter}" if ex.route.adapter else "translated"


def upstream_api(ex: Exchange) -> UpstreamApi | None:
    return _UPSTREAM_API.get(ex.route.upstream_path)


class RefusalRetry:
    """The Gateway's helper for refusals: plans calls with what was learned, and retries."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state
        # (client API, model) -> when OCA refused its route (legacy /completions)
        self.route_refused: dict[tuple[str, str], float] = {}

    # -- before the call: what OCA taught us ----------------------------------------------

    def plan(self, ex: Exchange) -> Exchange:
        """The exchange with what OCA said of the model before: completions translated from
        the start where OCA recently refused the model's /completions, and the learned facts
        applied to the upstream body (a dict lookup when nothing is known)."""
        when = self.route_refused.get((ex.endpoint.value, ex.choice.target))
        if when is not None and time.monotonic() - when <= self.state.completions_refusal_ttl:
            # (a body only the refused route takes stays there: OCA answers it)
            ex = ex.api.retry_elsewhere(ex) or ex
        api = upstream_api(ex)
        if api is not None:
            body, changes = self.state.learned.apply(ex.choice.target, ex.upstream_body, api)
            if changes:
                ex.upstream_body = body
                ex.learned_changes = changes
        return ex

    # -- after a refusal ----------------------------------------------------------------------

    async def try_again(self, flow: http.HTTPFlow, st: Call) -> bool:
        """OCA refused the call: True when it is sent once more (mitm_patches.resend), changed
        so as to remove what OCA named; False when OCA's refusal goes to the client."""
        resp = flow.response
        assert resp is not None
        status = resp.status_code
        message = upstream_error_message(resp.raw_content or b"", status)
        if st.first_refusal is not None or not mitm_patches.resend_available():
            # At most one retry per call (or none: mitmproxy changed under the patch); the
            # next call goes through with what this one says.
            self._fix(flow, st, status, message)
            return False
        fixed = self._fix(flow, st, status, message)
        if fixed is None:
            fixed = self._elsewhere(st, status, message)
        if fixed is None:
            return False
        body, change = fixed
        token = await self.state.tokens.access_token() if self.state.tokens else None
        if not token:
            return False  # the refusal goes to the client; a login problem shows next call
        refused = flow.copy()  # as OCA refused it, before the flow becomes the retry
        self._rewrite(flow, st, body, token)
        st.first_refusal = f"OCA answered {status}: {message}"
        st.record.retried = change
        st.record.route = route_label(st.exchange)
        st.access_token = token
        self._show_refused(flow, refused, status, change)
        mitm_patches.resend(flow)
        return True

    def _elsewhere(self, st: Call, status: int, message: str) -> tuple[bytes, str] | None:
        """Refused on its route for a reason no change of parameters removes: the call goes
        on the route its API retries on (legacy completions: translated, as chat or through
        the model's own API's adapter); later calls for the model too, for a while."""
        ex = st.exchange
        if status not in ROUTE_REFUSALS:
            return None
        new = ex.api.retry_elsewhere(ex)
        if new is None:
            return None
        self.route_refused[(ex.endpoint.value, ex.choice.target)] = time.monotonic()
        new = self.plan(new)
        was, now = ex.route.upstream_path, new.route.upstream_path
        change = f"asked {now} instead of {was}"
        log.info("OCA refused %s for %s (%s); %s", was, ex.target, message[:200], change)
        st.exchange = new
        return jsonio.dumps(new.upstream_body), change

    def _fix(
        self, flow: http.HTTPFlow, st: Call, status: int, message: str
    ) -> tuple[bytes, str] | None:
        """The body sent, changed as OCA's refusal asks; the fact learned from it."""
        api = upstream_api(st.exchange)
        if status != 400 or api is None or not self.state.learning:
            return None
        refusal = parse_refusal(message)
        if refusal is None:
            return None
        try:
            sent = orjson.loads(flow.request.raw_content or b"")
        except orjson.JSONDecodeError:
            return None
        if not isinstance(sent, dict):
            return None
        fix = fix_request(sent, api, refusal)
        if fix is None:
            return None
        model = st.exchange.choice.target
        catalog = self.state.cached_catalog
        entry = catalog.info(model) if catalog else None
        for fact in fix.facts:
            if self.state.learned.learn(model, fact, entry):
                log.info("%s", fact.describe(model))
        return jsonio.dumps(fix.body), fix.change

    def _rewrite(self, flow: http.HTTPFlow, st: Call, body: bytes, token: str) -> None:
        """The request on the flow becomes the retry: its body, a request id of its own, the
        path and headers of its route, a fresh token on the wire."""
        upstream = self.state.upstream
        assert upstream is not None
        req, ex = flow.request, st.exchange
        st.record.request_id = request_id = secrets.token_hex(16)
        req.path = upstream.prefix + ex.route.upstream_path
        headers = req.headers
        headers["opc-request-id"] = request_id
        for name, value in ex.upstream_headers.items():
            headers[name] = value
        if not ex.route.upstream_path.startswith("/v1/messages"):
            headers.pop("anthropic-version", None)  # a completions retry off a Messages model
        req.raw_content = body
        headers["content-length"] = str(len(body))
        headers["authorization"] = mitm_patches.REDACTED
        mitm_patches.set_wire_headers(req, {"authorization": f"Bearer {token}"})

    def _show_refused(
        self, flow: http.HTTPFlow, refused: http.HTTPFlow, status: int, change: str
    ) -> None:
        """The refused attempt as a flow of its own in mitmweb, linked both ways."""
        view = ctx.master.addons.get("view") if ctx.master else None
        refused_id = ""
        if view is not None:
            refused.live = False
            refused.comment = f"refused by OCA ({status}); retried as flow {flow.id}: {change}"
            refused.marked = ":no_entry:"
            mitm_patches.clear_wire_headers(refused.request)
            try:
                view.add([refused])
                refused_id = refused.id
            except Exception:  # mitmweb's view is a nicety; the retry must go on
                log.debug("could not show the refused attempt", exc_info=True)
        annotate.note_retry(flow, status, change, refused_id)


def both_refusals(first: str, second: str) -> str:
    """The message for a call OCA refused twice: both of OCA's reasons."""
    return f"{second} [oca-proxy had retried once, after OCA's first refusal: {first}]"
