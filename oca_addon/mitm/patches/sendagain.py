"""The same request sent again, from the `response` hook (a refusal OCA explained, retried:
mitm/retry.py).

OCA refused a call and said why (a parameter it does not take, say), before anything was
sent to the client: the gateway changes the request and asks for it to be sent once more.
mitmproxy sends a response right after the `response` hook; here, when the hook asked for
it, mitmproxy instead sends the flow's request upstream again, exactly as it sent the first
(its connection pool, upstream options and the wire-only token), and waits for the new
answer, which goes through responseheaders (streaming) and response like any other. No
public hook offers a second request whose answer takes the usual way.

Not applied (`available()` False: mitmproxy changed under it), nothing is sent again: RefusalRetry passes OCA's
refusal on (what it teaches is still learned).

Patch (checked against mitmproxy 12.3.1): `HttpStream.send_response`, wrapped by
`_send_response`; `_resend` calls `HttpStream.make_server_connection` and
`state_wait_for_response_headers`, as mitmproxy's own state_consume_request_body does.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from mitmproxy import http
from mitmproxy.proxy.layers.http import HttpStream, SendHttp
from mitmproxy.proxy.layers.http._events import (
    RequestData,
    RequestEndOfMessage,
    RequestHeaders,
)

BEHAVIOUR = "refusals OCA explained retried once, changed"
REQUIRED = False
# qualified name (under `mitmproxy.`) -> (source hash, parameter names): see patches/__init__
CHECKED: dict[str, tuple[str, tuple[str, ...]]] = {
    # wrapped by _send_response (a request sent again after the response hook: resend())
    "proxy.layers.http.HttpStream.send_response": (
        "d581bc106152e369",
        ("self", "already_streamed"),
    ),
    # called by _resend: how mitmproxy itself opens the upstream and sends a request
    "proxy.layers.http.HttpStream.make_server_connection": ("ddc7bc72f4d2fbc7", ("self",)),
    "proxy.layers.http.HttpStream.state_wait_for_response_headers": (
        "10e32e91b2948164",
        ("self", "event"),
    ),
}
_applied = False

RESEND_KEY = "oca.resend"  # flow.metadata: set by resend(), taken by the patch


def available() -> bool:
    """Whether resend() can work (the patch is applied)."""
    return _applied


def resend(flow: http.HTTPFlow) -> None:
    """From a `response` hook: send `flow.request` upstream again instead of answering."""
    flow.metadata[RESEND_KEY] = True


def resend_pending(flow: http.HTTPFlow) -> bool:
    """True in the `response` hooks after the one that called resend(): not the answer yet."""
    return bool(flow.metadata.get(RESEND_KEY))


def _send_response(self: Any, already_streamed: bool = False) -> Generator[Any, Any, None]:
    steps = _original_send_response(self, already_streamed)
    result: Any = None
    try:
        command = next(steps)  # the response hook comes first
        while True:
            result = yield command
            if self.flow.metadata.pop(RESEND_KEY, False) and not already_streamed:
                steps.close()
                yield from _resend(self)
                return
            command = steps.send(result)
    except StopIteration:
        return


def _resend(self: Any) -> Generator[Any, Any, None]:
    """mitmproxy's own way of sending a request (state_consume_request_body, 12.3.1)."""
    flow = self.flow
    flow.response = None
    self.response_body_buf.clear()
    if not (yield from self.make_server_connection()):
        return
    content = flow.request.raw_content
    yield SendHttp(RequestHeaders(self.stream_id, flow.request, not content), self.context.server)
    if content:
        yield SendHttp(RequestData(self.stream_id, content), self.context.server)
    yield SendHttp(RequestEndOfMessage(self.stream_id), self.context.server)
    self.server_state = self.state_wait_for_response_headers


_original_send_response = HttpStream.send_response


def apply() -> None:
    global _applied
    if not _applied:
        HttpStream.send_response = _send_response  # type: ignore[method-assign]
        _applied = True
