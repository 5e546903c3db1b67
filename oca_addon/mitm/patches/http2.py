"""HTTP/2 refused: a cleartext client that opens with HTTP/2's preface gets HTTP/2's own
refusal (GOAWAY, HTTP_1_1_REQUIRED).

oca-proxy speaks HTTP/1.1 to its clients (README, "HTTP/1.1 only"): mitmproxy's HTTP/2 paths
have none of the other patches (the 431 head limits, API-shaped 413/502, the terminal
error event of a cut stream). TLS clients are offered HTTP/1.1 only (Config sets
mitmproxy's `http2` option off, which also leaves h2 out of the ALPN offered to OCA).
A cleartext client that starts with the HTTP/2 preface (prior knowledge) gets HTTP/2's
own refusal: the server preface, then GOAWAY with HTTP_1_1_REQUIRED, which HTTP/2
clients report as such (mitmproxy 12.3.1 would parse the preface as an HTTP/1 request
"PRI * HTTP/2.0" and drop the connection without a word: addons/disable_h2c.py).

Patch (checked against mitmproxy 12.3.1): `_http1.Http1Server.read_headers`, wrapped by
`_read_headers` around whatever it is when applied (headlimits' wrapper, applied first,
or mitmproxy's own), so the preface is looked at before the head limits.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Generator
from typing import Any

from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers.http import _http1

BEHAVIOUR = "HTTP/2 clients refused with HTTP_1_1_REQUIRED"
REQUIRED = False
# qualified name (under `mitmproxy.`) -> (source hash, parameter names): see patches/__init__
CHECKED: dict[str, tuple[str, tuple[str, ...]]] = {
    # wrapped by _read_headers (HTTP/2's preface refused)
    "proxy.layers.http._http1.Http1Server.read_headers": ("3fe0945216bcf7bc", ("self", "event")),
}
_applied = False
_inner: Any = None  # Http1Server.read_headers as it was when applied

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_H2_REFUSAL_TEXT = b"oca-proxy speaks HTTP/1.1 only; connect without HTTP/2"
H2_REFUSAL = (
    b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # SETTINGS, empty: the server preface
    + (8 + len(_H2_REFUSAL_TEXT)).to_bytes(3, "big")
    + b"\x07\x00\x00\x00\x00\x00"  # GOAWAY, no flags, stream 0
    + b"\x00\x00\x00\x00"  # last stream id: none was processed
    + b"\x00\x00\x00\x0d"  # HTTP_1_1_REQUIRED
    + _H2_REFUSAL_TEXT
)


def h2_preface(buf: Any, data: bytes) -> bool:
    """Whether the connection's data so far starts like HTTP/2's preface (what arrived in
    this event is all there is: a preface split over packets gets mitmproxy's handling)."""
    return len(buf) == len(data) and data[:14] == H2_PREFACE[:14]


def _read_headers(self: Any, event: Any) -> Generator[commands.Command, Any, None]:
    if isinstance(event, events.DataReceived) and h2_preface(self.buf, event.data):
        yield from _refuse_h2(self)
        return
    yield from _inner(self, event)


def _refuse_h2(self: Any) -> Generator[commands.Command, Any, None]:
    yield commands.SendData(self.conn, H2_REFUSAL)
    # Half-closed, and what the client sends after its preface read and dropped: a close
    # with unread bytes would send a reset that can overtake the GOAWAY.
    yield commands.CloseTcpConnection(self.conn, half_close=True)
    yield commands.Log("Refused an HTTP/2 connection (oca-proxy speaks HTTP/1.1)", logging.INFO)
    self.state = types.MethodType(_discard, self)
    yield from _discard(self, None)


def _discard(self: Any, event: Any) -> Generator[commands.Command, Any, None]:
    if len(self.buf):
        self.buf.maybe_extract_at_most(len(self.buf))
    yield from ()


def apply() -> None:
    global _applied, _inner
    if not _applied:
        _inner = _http1.Http1Server.read_headers
        _http1.Http1Server.read_headers = _read_headers  # type: ignore[method-assign]
        _applied = True
