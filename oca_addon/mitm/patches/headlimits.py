"""A limit on request heads: 431, then the connection closes, whatever the line ending.

mitmproxy 12.3.1 buffers a request head without limit (_http1.Http1Server.read_headers:
"FIXME: protect against header size DoS"): a 32 MB header or 20,000 headers were
accepted. Checked before mitmproxy parses the head: 431, then the connection closes. The
limits are the HeadLimits addon's options (`set_head_limits`); chunked.py caps a chunked
body's lines with the same byte limit.

Patch (checked against mitmproxy 12.3.1): `_http1.Http1Server.read_headers`, wrapped by
`_read_headers` (http2.py wraps it in turn).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Generator
from typing import Any

from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers.http import _http1

from oca_addon.mitm.patches.errorpage import error_response_bytes

BEHAVIOUR = "request heads over the limits refused (431)"
REQUIRED = False
# qualified name (under `mitmproxy.`) -> (source hash, parameter names): see patches/__init__
CHECKED: dict[str, tuple[str, tuple[str, ...]]] = {
    # wrapped by _read_headers (431 for heads over the limits)
    "proxy.layers.http._http1.Http1Server.read_headers": ("3fe0945216bcf7bc", ("self", "event")),
}
_applied = False

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 256
_head_limits = (MAX_HEAD_BYTES, MAX_HEADERS)


def set_head_limits(max_bytes: int, max_headers: int) -> None:
    global _head_limits
    _head_limits = (max_bytes, max_headers)


def head_limits() -> tuple[int, int]:
    """(most bytes in a request head, most header fields)."""
    return _head_limits


# Where a head ends, as mitmproxy (h11's ReceiveBuffer) finds it: the first empty line,
# whether lines end in CRLF or in a bare LF, so the limits hold for either.
_HEAD_END = re.compile(rb"\n\r?\n")


def head_problem(buf: bytes, max_bytes: int, max_headers: int) -> str | None:
    """Why the request head at the start of `buf` is too big (None: fine, or not complete)."""
    end = _HEAD_END.search(buf, 0, max_bytes + 3)
    if end is None:
        return f"more than {max_bytes} bytes" if len(buf) > max_bytes else None
    # request line + fields (the last field's line ends where the empty line starts)
    if max_headers > 0 and buf.count(b"\n", 0, end.start()) > max_headers:
        return f"more than {max_headers} header fields"
    return None


def _read_headers(self: Any, event: Any) -> Generator[commands.Command, Any, None]:
    max_bytes, max_headers = _head_limits
    # A head with more fields than the limit is longer than 2 bytes a line ("a\n"): cheap
    # to skip.
    if isinstance(event, events.DataReceived) and len(self.buf) > min(max_bytes, 2 * max_headers):
        problem = head_problem(bytes(self.buf), max_bytes, max_headers)
        if problem:
            yield commands.SendData(self.conn, error_response_bytes(431, problem))
            yield commands.CloseConnection(self.conn)
            yield commands.Log(f"Refused a request head with {problem} (431)", logging.WARNING)
            self.state = self.done
            return
    yield from _original_read_headers(self, event)


_original_read_headers = _http1.Http1Server.read_headers


def apply() -> None:
    global _applied
    if not _applied:
        _http1.Http1Server.read_headers = _read_headers  # type: ignore[method-assign]
        _applied = True
