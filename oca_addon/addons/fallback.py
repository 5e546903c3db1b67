"""Legacy completions when OCA refuses its /completions endpoint.

No source says OCA serves /completions (OCA-FACTS): the proxy sends them natively, as the
original tool does. When OCA refuses one before any byte reached the client, it is asked
once more, translated (through chat, or the model's own API's adapter), and the refusal is
remembered for that model for a while, so the next calls go translated from the start,
through mitmproxy's own streaming path.

The one retry is made here, off the event loop, not by mitmproxy: its answer is complete
before it goes out, and a failure on the way is reported in the client's API's shape (504
for a silent OCA, the terminal error event for a stream cut short).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable

import requests
from mitmproxy import ctx, http

from .. import jsonio
from ..errors import ApiError, upstream_error_message
from ..gateway import Exchange, completions_via_chat
from ..routing import Endpoint
from ..streams import StreamDriver, token_counts
from .replies import reply_error
from .state import CLIENT_HEADERS, InFlight, ProxyState

log = logging.getLogger("oca_addon")

# OCA refusing a native legacy completions call with one of these: retry it translated.
REFUSALS = frozenset({400, 404, 405, 422, 501})
_KEEP = frozenset({"content-type", "retry-after", "opc-request-id"})


def route_label(ex: Exchange) -> str:
    """How the call went, for the record: native, translated (via chat), or via an adapter."""
    if ex.route.native:
        return "native"
    return f"via {ex.route.adapter}" if ex.route.adapter else "translated"


class CompletionsFallback:
    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self.refused: dict[str, float] = {}  # model -> when OCA refused its /completions

    def plan(self, ex: Exchange) -> Exchange:
        """Translated from the start where OCA recently refused the model's /completions."""
        if ex.endpoint is not Endpoint.COMPLETIONS or not ex.route.native:
            return ex
        when = self.refused.get(ex.choice.target)
        remember = ctx.options.oca_completions_refusal_ttl
        if when is None or time.monotonic() - when > remember:
            return ex
        try:
            return completions_via_chat(ex)
        except ApiError:
            return ex  # a body only /completions takes: let OCA answer it

    def applies(self, st: InFlight, status: int) -> bool:
        ex = st.exchange
        return ex.endpoint is Endpoint.COMPLETIONS and ex.route.native and status in REFUSALS

    async def retry(
        self,
        flow: http.HTTPFlow,
        st: InFlight,
        upstream_error: Callable[[http.HTTPFlow, InFlight], None],
        buffered_answer: Callable[[http.HTTPFlow, InFlight], None],
    ) -> None:
        upstream = self.state.upstream
        assert flow.response is not None and upstream
        first = upstream_error_message(flow.response.raw_content or b"", flow.response.status_code)
        try:
            ex = completions_via_chat(st.exchange)
        except ApiError:  # a body only OCA's /completions could take: OCA's refusal stands
            upstream_error(flow, st)
            return
        self.refused[st.exchange.choice.target] = time.monotonic()
        st.exchange, st.record.route = ex, route_label(ex)
        st.record.request_id = request_id = secrets.token_hex(16)
        headers = {
            "authorization": f"Bearer {st.access_token}",
            "content-type": "application/json",
            "accept": "text/event-stream",
            "opc-request-id": request_id,
            **CLIENT_HEADERS,
            **ex.upstream_headers,
        }
        path = ex.route.upstream_path
        log.info("OCA refused /completions (%s); asking %s instead", first[:200], path)
        limit = ctx.options.oca_upstream_idle_timeout
        driver = StreamDriver(ex.make_translator()) if ex.make_translator else None
        streamed = ex.client_stream and driver is not None
        status, kept, body, failure = await asyncio.to_thread(
            _post, upstream.base_url + path, jsonio.dumps(ex.upstream_body), headers, limit or None
        )
        if status is None or (failure and not streamed):
            why = failure or "no answer"
            code = 504 if why.startswith("OCA sent nothing") else 502
            reply_error(
                flow, ex.flavor, ApiError(code, f"{why} (OCA request id {request_id})"), st.record
            )
            return
        flow.response = http.Response.make(status, body, kept)
        if status >= 400:  # the translated call's error is the one that says why
            upstream_error(flow, st)
            return
        st.record.status = 200
        if "text/event-stream" not in kept.get("content-type", kept.get("Content-Type", "")):
            streamed = False  # HTML or JSON where a stream belongs: said as an error below
        if streamed:
            assert driver is not None
            out = driver.translate(body)
            out += (
                driver.abort(f"{failure} (OCA request id {request_id})")
                if failure
                else driver.translate(b"")
            )
            st.record.input_tokens, st.record.output_tokens = token_counts(driver.usage)
            if failure:
                st.record.error = failure
            flow.response = http.Response.make(
                200, out, {"content-type": "text/event-stream; charset=utf-8"}
            )
        else:
            buffered_answer(flow, st)
        flow.response.headers["x-oca-proxy-retried"] = path.lstrip("/")


def _post(
    url: str, body: bytes, headers: dict[str, str], timeout: float | None
) -> tuple[int | None, dict[str, str], bytes, str | None]:
    """(status, kept headers, body so far, failure): blocking, for a worker thread."""
    got = bytearray()
    try:
        with requests.post(url, data=body, headers=headers, timeout=timeout, stream=True) as resp:
            kept = {k: v for k, v in resp.headers.items() if k.lower() in _KEEP}
            try:
                for chunk in resp.iter_content(chunk_size=None):
                    got += chunk
            except requests.RequestException as e:
                return resp.status_code, kept, bytes(got), _why(e, timeout)
            return resp.status_code, kept, bytes(got), None
    except requests.RequestException as e:
        return None, {}, b"", _why(e, timeout)


def _why(e: requests.RequestException, timeout: float | None) -> str:
    text = f"{type(e).__name__}: {e}"
    if isinstance(e, requests.Timeout) or "timed out" in text.lower():
        return f"OCA sent nothing for {timeout or 0:g} s (oca_upstream_idle_timeout); oca-proxy gave up"
    if got_cut(text):
        return "OCA's answer was cut off"
    return f"OCA could not be asked again: {type(e).__name__}"


def got_cut(text: str) -> bool:
    return any(
        s in text
        for s in ("IncompleteRead", "ChunkedEncodingError", "Connection broken", "prematurely")
    )
