"""A stream cut midway ends with the client API's terminal error event; an upstream that
fails before any answer gets an API-shaped error (504 when oca-proxy cut it).

mitmproxy cuts a stream that broke midway without a word, which API clients can do
nothing with, so a stream that breaks gets the client API's own terminal error event
(from the flow's stream callable's `abort()`), then a proper end of the chunked body. Not a
public hook: a stream that breaks reaches no hook before the client's connection is closed.
The reason oca-proxy cut an upstream itself (cutupstream) is the event's message.

Patch (checked against mitmproxy 12.3.1): `_http1.Http1Server.send`, the client side of
HTTP/1, wrapped by `_send` (a broken response takes `_send_failed`, which also calls
`Http1Server.mark_done`).
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

from mitmproxy.connection import ConnectionState
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._events import ResponseProtocolError

from oca_addon.mitm.patches.cutupstream import take_cut_reason
from oca_addon.mitm.patches.errorpage import client_path, error_response_bytes

log = logging.getLogger(__name__)

BEHAVIOUR = "streams cut midway ended with the API's terminal error event"
REQUIRED = False
# qualified name (under `mitmproxy.`) -> (source hash, parameter names): see patches/__init__
CHECKED: dict[str, tuple[str, tuple[str, ...]]] = {
    # wrapped by _send / _send_failed (which also call mark_done)
    "proxy.layers.http._http1.Http1Server.send": ("cc218a1337c0f5cf", ("self", "event")),
    "proxy.layers.http._http1.Http1Server.mark_done": (
        "94fd7ea388c88671",
        ("self", "request", "response"),
    ),
}
_applied = False


# Patch (checked against mitmproxy 12.3.1): Http1Server.send, the client side of HTTP/1.
def _send(self: Any, event: Any) -> Generator[commands.Command, Any, None]:
    # Every chunk of every answer passes here (a hot spot): a plain call that hands the
    # event to mitmproxy's own generator; only a broken response takes _send_failed.
    if isinstance(event, ResponseProtocolError) and self.conn.state & ConnectionState.CAN_WRITE:
        return _send_failed(self, event)
    return _original_send(self, event)


def _send_failed(self: Any, event: Any) -> Generator[commands.Command, Any, None]:
    if isinstance(event, ResponseProtocolError) and self.conn.state & ConnectionState.CAN_WRITE:
        # Why oca-proxy itself cut the upstream (e.g. silent too long), if it did.
        cut_reason = take_cut_reason(self.conn.id)
        if self.response is None:
            status = event.code.http_status_code()
            if status is not None:
                if cut_reason:
                    status = 504
                path = client_path(self.request)
                yield commands.SendData(
                    self.conn, error_response_bytes(status, cut_reason or event.message, path)
                )
            yield commands.CloseConnection(self.conn)
            return
        abort = getattr(self.response.stream, "abort", None)
        if abort is not None:
            why = cut_reason or f"the connection to OCA broke mid-stream ({event.message})"
            try:
                tail = abort(why)
            except Exception:  # a failing patch must not take the connection handling down
                log.exception("could not build the terminal error event")
                tail = b""
            chunked = "chunked" in self.response.headers.get("transfer-encoding", "").lower()
            if tail:
                yield commands.SendData(
                    self.conn, b"%x\r\n%s\r\n" % (len(tail), tail) if chunked else tail
                )
            if chunked:
                yield commands.SendData(self.conn, b"0\r\n\r\n")
                if self.request_done:
                    # The client got a complete answer: its connection stays usable, like
                    # after any other response (closing it now races with its next request
                    # on the same keep-alive connection).
                    yield from self.mark_done(response=True)
                    return
    yield from _original_send(self, event)


_original_send = _http1.Http1Server.send


def apply() -> None:
    global _applied
    if not _applied:
        _http1.Http1Server.send = _send  # type: ignore[method-assign]
        _applied = True
