"""Two narrow patches so upstream failures reach clients in their API's shape.

mitmproxy answers a failed upstream connection with a hard-coded HTML page, and cuts a
stream that broke midway without a word. API clients can do nothing with either, so:
- the error page becomes a JSON error that both OpenAI and Anthropic SDKs parse;
- a stream that breaks gets the client API's own terminal error event (from the flow's
  stream callable's `abort()`), then a proper end of the chunked body.
Both only touch HTTP/1 (what local API clients speak) and are applied once, on load.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from typing import Any

from mitmproxy import http, version
from mitmproxy.connection import ConnectionState
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._events import ResponseProtocolError

from .errors import anthropic_error_type, openai_error_type

log = logging.getLogger(__name__)
_applied = False


def error_response_bytes(status_code: int, message: str = "") -> bytes:
    reason = message.strip() or "the upstream request failed"
    text = f"oca-proxy could not get an answer from OCA: {reason}"
    body = {
        # Anthropic's envelope, with OpenAI's fields inside: both SDKs read error.message.
        "type": "error",
        "error": {
            "type": anthropic_error_type(status_code),
            "message": text,
            "code": "upstream_unreachable"
            if status_code == 502
            else openai_error_type(status_code),
        },
    }
    resp = http.Response.make(
        status_code,
        json.dumps(body).encode(),
        {"Server": version.MITMPROXY, "Connection": "close", "Content-Type": "application/json"},
    )
    return http1.assemble_response(resp)


def _send(self: Any, event: Any) -> Generator[commands.Command, Any, None]:
    if (
        isinstance(event, ResponseProtocolError)
        and self.response is not None
        and self.conn.state & ConnectionState.CAN_WRITE
    ):
        abort = getattr(self.response.stream, "abort", None)
        if abort is not None:
            try:
                tail = abort(f"the connection to OCA broke mid-stream ({event.message})")
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
    yield from _original_send(self, event)


_original_send = _http1.Http1Server.send


def apply() -> None:
    global _applied
    if _applied:
        return
    _http1.make_error_response = error_response_bytes
    _http1.Http1Server.send = _send  # type: ignore[method-assign]
    _applied = True
