"""Chunked request bodies: trailers dropped, chunk-size lines and trailer sections capped.

mitmproxy 12.3.1 reads a chunked body with h11's ChunkedReader and raises
NotImplementedError on trailers (_http1.Http1Connection.read_body: "HTTP trailers are not
implemented yet"): the connection's handling dies and the client waits forever. h11
buffers a chunk-size line (with its extensions) and the trailer section until they end:
200 MB of either stayed in memory. On the client side, then: trailers are dropped (a
proxy may; nothing here reads them), and a chunk-size line or trailer section longer than
the head limit (oca_max_header_size, headlimits.py) gets a 400 and the connection closes.

Patch (checked against mitmproxy 12.3.1): `_http1.Http1Connection.read_body`, for the
client side (`Http1Server.read_body`) only, wrapped by `_read_body`; the reader of OCA's
answers stays mitmproxy's own.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import h11
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import ErrorCode, RequestProtocolError

from oca_addon.mitm.patches.errorpage import client_path, error_response_bytes
from oca_addon.mitm.patches.headlimits import head_limits

BEHAVIOUR = "chunked request bodies with trailers or long lines read (400 over the limit)"
REQUIRED = False
# qualified name (under `mitmproxy.`) -> (source hash, parameter names): see patches/__init__
CHECKED: dict[str, tuple[str, tuple[str, ...]]] = {
    # wrapped by _read_body on the client side (chunked bodies: trailers, line sizes)
    "proxy.layers.http._http1.Http1Connection.read_body": ("aece271029af36e4", ("self", "event")),
}
_applied = False


class ChunkLineTooLong(Exception):
    """A chunk-size line or trailer section over the limit (not an h11.ProtocolError, so
    that mitmproxy's read_body lets it through to _read_body)."""


class BoundedChunkedReader:
    """h11's ChunkedReader (mitmproxy's, checked against mitmproxy 12.3.1 and h11 0.16),
    trailers dropped and its buffered lines capped. h11's reader returns None with bytes
    left in the buffer only while a line is incomplete (a chunk-size line, or the trailer
    section up to its empty line): those bytes are what is capped."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, buf: Any) -> Any:
        event = self.inner(buf)
        if event is None:
            limit = head_limits()[0]
            if len(buf) > limit:
                raise ChunkLineTooLong(
                    f"a chunk-size line or the trailers of the chunked body are longer than "
                    f"{limit} bytes"
                )
        elif isinstance(event, h11.EndOfMessage) and event.headers:
            return h11.EndOfMessage()  # the trailers, dropped
        return event

    def read_eof(self) -> Any:
        return self.inner.read_eof()


# Patch (checked against mitmproxy 12.3.1): Http1Connection.read_body, for the client side
# (Http1Server) only; the reader of OCA's answers stays mitmproxy's own.
def _read_body(self: Any, event: Any) -> Generator[commands.Command, Any, None]:
    reader = self.body_reader
    if type(reader) is _http1.ChunkedReader:
        self.body_reader = reader = BoundedChunkedReader(reader)
    if not isinstance(reader, BoundedChunkedReader):
        yield from _original_read_body(self, event)  # a body with a length: as it was
        return
    try:
        yield from _original_read_body(self, event)
    except ChunkLineTooLong as e:
        if self.response is None:
            path = client_path(self.request)
            yield commands.SendData(self.conn, error_response_bytes(400, str(e), path))
        yield commands.CloseConnection(self.conn)
        yield commands.Log(f"Refused a chunked request body: {e} (400)", logging.WARNING)
        yield ReceiveHttp(
            RequestProtocolError(self.stream_id, str(e), ErrorCode.GENERIC_CLIENT_ERROR)
        )
        self.state = self.done


_original_read_body = _http1.Http1Connection.read_body


def apply() -> None:
    global _applied
    if not _applied:
        _http1.Http1Server.read_body = _read_body  # type: ignore[method-assign]
        _applied = True
