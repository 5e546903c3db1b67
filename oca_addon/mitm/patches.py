"""Narrow patches so upstream failures reach clients in their API's shape, and secrets stay
off flows.

mitmproxy answers a failed upstream connection with a hard-coded HTML page, and cuts a
stream that broke midway without a word. API clients can do nothing with either, so:
- the error page becomes a JSON error in the called API's shape (413 for a body over the
  limit, 504 when oca-proxy cut a silent upstream, 502 when OCA cannot be reached);
- a stream that breaks gets the client API's own terminal error event (from the flow's
  stream callable's `abort()`), then a proper end of the chunked body;
- the OCA token is put into the request head on the wire only (`set_wire_headers`), so
  flows (mitmweb, saved flows) never hold it;
- `close_upstream()` cuts a flow's upstream from outside a hook (the idle timeout);
- `resend()` makes mitmproxy send a flow's (changed) request to OCA again, from the response
  hook, before anything reached the client: its answer then takes the usual way (hooks,
  streaming), which no public hook offers for a second request (a refusal OCA explained,
  retried: addons/retry.py);
- a client that opens with HTTP/2's preface is refused (GOAWAY, HTTP_1_1_REQUIRED), and a
  chunked request body's trailers are dropped, its lines capped (mitmproxy hangs on both).
The client side only touches HTTP/1 (what local API clients speak: HTTP/2 is refused, see
README "HTTP/1.1 only"); all are applied once, on load (the Gateway addon's).

Why not public hooks: mitmproxy sends its error page after the `error` hook whatever the
hook sets (flow.response is ignored there); no hook runs between the `request` hook and the
request head going on the wire; a stream that breaks reaches no hook before the client's
connection is closed; and a flow in transit cannot be cut from outside a hook. The one
public hook that can do a job here, `client_disconnected`, does (Keepalive calls
`forget_client`).

Each patch, and each private mitmproxy name read here, was checked against mitmproxy
CHECKED_AGAINST; tests/unit/test_mitm_patches.py fails when any of them changes (CHECKED).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import re
import types
from collections.abc import Generator
from typing import Any

import h11
from mitmproxy import http, version
from mitmproxy.connection import ConnectionState
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands, server
from mitmproxy.proxy.layers.http import HttpStream, SendHttp, _http1, _http2
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import (
    ErrorCode,
    RequestData,
    RequestEndOfMessage,
    RequestHeaders,
    RequestProtocolError,
    ResponseProtocolError,
)

from oca_addon.core.errors import anthropic_error_type, openai_error_type

log = logging.getLogger(__name__)
_applied = False

CHECKED_AGAINST = "12.3.1"
# What the patches replace or rely on, in mitmproxy CHECKED_AGAINST: its qualified name
# (under `mitmproxy.`) -> the first 16 hex digits of the sha256 of its source, and its
# parameter names. On a mismatch: re-read mitmproxy's new code against the patch, adjust,
# then record the new values (the test prints them).
CHECKED: dict[str, tuple[str, tuple[str, ...]]] = {
    # replaced by error_response_bytes
    "proxy.layers.http._http1.make_error_response": (
        "03ce75ab62e8e78b",
        ("status_code", "message"),
    ),
    # wrapped by _send / _send_failed (which also call mark_done)
    "proxy.layers.http._http1.Http1Server.send": ("cc218a1337c0f5cf", ("self", "event")),
    "proxy.layers.http._http1.Http1Server.mark_done": (
        "94fd7ea388c88671",
        ("self", "request", "response"),
    ),
    # wrapped by _with_wire_headers
    "proxy.layers.http._http1.Http1Client.send": ("35d961e20d481204", ("self", "event")),
    "proxy.layers.http._http2.Http2Client._handle_event2": (
        "a3b722b18c3f46fa",
        ("self", "event"),
    ),
    # wrapped by _read_headers (431 for heads over the limits; HTTP/2's preface refused)
    "proxy.layers.http._http1.Http1Server.read_headers": ("3fe0945216bcf7bc", ("self", "event")),
    # wrapped by _read_body on the client side (chunked bodies: trailers, line sizes)
    "proxy.layers.http._http1.Http1Connection.read_body": ("aece271029af36e4", ("self", "event")),
    # wrapped by _close_connection (closes the client's socket after a 413)
    "proxy.server.ConnectionHandler.close_connection": (
        "c0d10cc05dd65b80",
        ("self", "connection", "half_close"),
    ),
    # read by close_upstream / upstream_last_activity (connections, transports, handler,
    # timeout_watchdog.last_activity)
    "addons.proxyserver.Proxyserver.__init__": ("618fcf430ee48e83", ("self",)),
    "proxy.server.ConnectionHandler.__init__": ("ffb8e6c9e6c6d020", ("self", "context")),
    "proxy.server.ConnectionIO": ("f498a46ab1b0f40f", ()),
    "proxy.server.TimeoutWatchdog.register_activity": ("41e033f7debf79d3", ("self",)),
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


def _resolve(name: str) -> Any:
    """`proxy.server.ConnectionIO` -> the object, from the longest importable module path."""
    parts = f"mitmproxy.{name}".split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(name)


# mitmproxy's own objects, taken before apply() replaces any of them (for the test).
ORIGINALS: dict[str, Any] = {name: _resolve(name) for name in CHECKED}


def error_response_bytes(status_code: int, message: str = "", path: str | None = None) -> bytes:
    """mitmproxy's own error answers (upstream unreachable, bad request head, body too big)
    as JSON: in the called API's shape when the path is known, else a shape both SDKs read."""
    reason = message.strip() or "the upstream request failed"
    if status_code == 413:
        text = f"the request body is larger than oca-proxy accepts ({_body_limit_text()})"
    elif status_code == 431:
        text = (
            f"the request head is larger than oca-proxy accepts ({reason}); "
            "raise it with --set oca_max_header_size=BYTES or --set oca_max_headers=N"
        )
    elif status_code < 500:
        text = f"oca-proxy could not read the request: {reason}"
    elif status_code == 504:
        text = reason
    else:
        text = f"oca-proxy could not get an answer from OCA: {reason}"
    flavor = _flavor(path)
    code = "upstream_unreachable" if status_code == 502 else openai_error_type(status_code)
    if flavor == "anthropic":
        body: dict[str, Any] = {
            "type": "error",
            "error": {"type": anthropic_error_type(status_code), "message": text},
        }
    elif flavor == "openai":
        err = {"message": text, "type": openai_error_type(status_code), "param": None}
        body = {"error": {**err, "code": code}}
    else:
        body = {
            # Anthropic's envelope, with OpenAI's fields inside: both SDKs read error.message.
            "type": "error",
            "error": {"type": anthropic_error_type(status_code), "message": text, "code": code},
        }
    resp = http.Response.make(
        status_code,
        json.dumps(body).encode(),
        {
            "Server": version.MITMPROXY,
            "Connection": "close",
            "Content-Type": "application/json",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "frame-ancestors 'none'",
        },
    )
    return http1.assemble_response(resp)


def _flavor(path: str | None) -> str | None:
    if not path:
        return None
    from oca_addon.core.routing import classify, is_api_path

    endpoint = classify(path)
    if endpoint is not None:
        return endpoint.flavor
    return "openai" if is_api_path(path) else None


def _body_limit_text() -> str:
    try:
        from mitmproxy import ctx
        from mitmproxy.utils import human

        limit = human.parse_size(ctx.options.body_size_limit)
    except Exception:  # no master (unit tests) or an odd option value
        limit = None
    if limit is None:
        return "see the oca_max_body option"
    return f"at most {limit} bytes; raise it with --set oca_max_body=BYTES"


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
        cut_reason = _cut_reasons.pop(self.conn.id, None)
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


# -- secrets that live on the wire only ------------------------------------------------
# The OCA access token must reach OCA but never the flow (mitmweb, saved flows, dumps):
# the flow's request carries a placeholder, and the real value is put into the bytes
# sent upstream, right when the request head is written.

WIRE_ATTR = "_oca_wire_headers"
REDACTED = "Bearer <redacted>"  # what flows show (same as annotate.REDACTED_BEARER)


def set_wire_headers(request: http.Request, headers: dict[str, str]) -> None:
    """Send these header values upstream instead of what the flow shows.

    Kept in a private attribute: flow copies and saved flows never carry it (a replay in
    place does: see clear_wire_headers)."""
    setattr(request, WIRE_ATTR, headers)


def clear_wire_headers(request: http.Request) -> None:
    """Forget them (a flow replayed in place keeps its request object, and so its first
    run's token: a replay gets its own, or none)."""
    if hasattr(request, WIRE_ATTR):
        delattr(request, WIRE_ATTR)


CLIENT_PATH_ATTR = "_oca_client_path"


def remember_client_path(request: http.Request) -> None:
    """Call before the request is rewritten for OCA: errors are shaped by the client's path."""
    setattr(request, CLIENT_PATH_ATTR, request.path)


def client_path(request: http.Request | None) -> str | None:
    if request is None:
        return None
    path = getattr(request, CLIENT_PATH_ATTR, None)
    return path if isinstance(path, str) else request.path


# Patch (checked against mitmproxy 12.3.1): Http1Client.send and Http2Client._handle_event2,
# the upstream side, where the request head is written.
def _with_wire_headers(original: Any) -> Any:
    def send(self: Any, event: Any) -> Generator[commands.Command, Any, None]:
        wire = getattr(event, "request", None) if isinstance(event, RequestHeaders) else None
        secrets = getattr(wire, WIRE_ATTR, None) if wire is not None else None
        if not secrets:
            yield from original(self, event)
            return
        assert wire is not None
        shown = {k: wire.headers.get_all(k) for k in secrets}
        for k, v in secrets.items():
            wire.headers[k] = v
        try:
            # Sending a request head only yields plain commands: run it now, while the
            # real values are in place, then put the placeholders back.
            cmds = list(original(self, event))
        finally:
            for k, values in shown.items():
                wire.headers.set_all(k, values)
        yield from cmds

    return send


# -- cutting an upstream from outside a hook ----------------------------------------------
# mitmproxy cannot kill a flow in transit (flow.kill() only acts at the next hook), so an
# upstream that goes silent is cut by cancelling its connection task: the HTTP layer then
# sees the connection close and ends the client's answer (the terminal error event above,
# or a 504 when nothing was sent yet), with the reason recorded here.

_cut_reasons: dict[str, str] = {}


def close_upstream(flow: Any, reason: str) -> bool:
    """Close the flow's connection to OCA now; True if there was one to close.

    Reads mitmproxy internals (checked against mitmproxy 12.3.1): Proxyserver.connections,
    ConnectionHandler.transports, ConnectionIO.handler."""
    from mitmproxy import ctx

    proxyserver = ctx.master.addons.get("proxyserver")
    handler = getattr(proxyserver, "connections", {}).get(flow.client_conn.id)
    io = handler.transports.get(flow.server_conn) if handler is not None else None
    task = getattr(io, "handler", None)
    if task is None or task.done():
        return False
    _cut_reasons[flow.client_conn.id] = reason
    task.cancel(reason)
    return True


def forget_client(client_id: str) -> None:
    """A client connection ended: drop any reason that was never used."""
    _cut_reasons.pop(client_id, None)


def upstream_last_activity(flow: Any) -> float | None:
    """When the flow's client connection last saw traffic (time.time()), if known.

    Reads mitmproxy internals (checked against mitmproxy 12.3.1): Proxyserver.connections,
    ConnectionHandler.timeout_watchdog, TimeoutWatchdog.last_activity."""
    from mitmproxy import ctx

    proxyserver = ctx.master.addons.get("proxyserver")
    handler = getattr(proxyserver, "connections", {}).get(flow.client_conn.id)
    watchdog = getattr(handler, "timeout_watchdog", None)
    return getattr(watchdog, "last_activity", None)


# -- closing a connection for real ------------------------------------------------------------
# mitmproxy 12.3.1, proxy/server.py: CloseConnection cancels the connection's reader task,
# which closes the socket on its way out. But when the cancel lands while that task waits
# for the server_event lock (a hook, e.g. the 413's error hook, holds it), CancelledError
# leaves handle_connection before its writer.close(): the socket stays open, the client
# keeps writing its body into full buffers and never sees the 413 (the openai SDK waits
# for its 600 s timeout). So the socket is closed right here too (what was written is
# still sent first: asyncio flushes its buffer before closing).


def _close_connection(self: Any, connection: Any, half_close: bool = False) -> None:
    _original_close_connection(self, connection, half_close)
    if connection.state is ConnectionState.CLOSED:
        io = self.transports.get(connection)
        writer = getattr(io, "writer", None)
        if isinstance(writer, asyncio.StreamWriter) and not writer.is_closing():
            writer.close()


# -- a limit on request heads ----------------------------------------------------------------
# mitmproxy 12.3.1 buffers a request head without limit (_http1.Http1Server.read_headers:
# "FIXME: protect against header size DoS"): a 32 MB header or 20,000 headers were
# accepted. Checked before mitmproxy parses the head: 431, then the connection closes.

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 256
_head_limits = (MAX_HEAD_BYTES, MAX_HEADERS)


def set_head_limits(max_bytes: int, max_headers: int) -> None:
    global _head_limits
    _head_limits = (max_bytes, max_headers)


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
    from mitmproxy.proxy import events

    max_bytes, max_headers = _head_limits
    if isinstance(event, events.DataReceived) and h2_preface(self.buf, event.data):
        yield from _refuse_h2(self)
        return
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


# -- the same request sent again --------------------------------------------------------------
# OCA refused a call and said why (a parameter it does not take, say), before anything was
# sent to the client: the gateway changes the request and asks for it to be sent once more.
# mitmproxy sends a response right after the `response` hook; here, when the hook asked for
# it, mitmproxy instead sends the flow's request upstream again, exactly as it sent the first
# (its connection pool, upstream options and the wire-only token), and waits for the new
# answer, which goes through responseheaders (streaming) and response like any other.

RESEND_KEY = "oca.resend"  # flow.metadata: set by resend(), taken by the patch


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
# -- HTTP/2 refused ---------------------------------------------------------------------------
# oca-proxy speaks HTTP/1.1 to its clients (README, "HTTP/1.1 only"): mitmproxy's HTTP/2 paths
# have none of the patches above (the 431 head limits, API-shaped 413/502, the terminal
# error event of a cut stream). TLS clients are offered HTTP/1.1 only (Config sets
# mitmproxy's `http2` option off, which also leaves h2 out of the ALPN offered to OCA).
# A cleartext client that starts with the HTTP/2 preface (prior knowledge) gets HTTP/2's
# own refusal: the server preface, then GOAWAY with HTTP_1_1_REQUIRED, which HTTP/2
# clients report as such (mitmproxy 12.3.1 would parse the preface as an HTTP/1 request
# "PRI * HTTP/2.0" and drop the connection without a word: addons/disable_h2c.py).
# Checked against mitmproxy 12.3.1: done in _read_headers (Http1Server.read_headers).

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


# -- chunked request bodies: trailers, and lines of bounded size ----------------------------
# mitmproxy 12.3.1 reads a chunked body with h11's ChunkedReader and raises
# NotImplementedError on trailers (_http1.Http1Connection.read_body: "HTTP trailers are not
# implemented yet"): the connection's handling dies and the client waits forever. h11
# buffers a chunk-size line (with its extensions) and the trailer section until they end:
# 200 MB of either stayed in memory. On the client side, then: trailers are dropped (a
# proxy may; nothing here reads them), and a chunk-size line or trailer section longer than
# the head limit (oca_max_header_size) gets a 400 and the connection closes.


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
            limit = _head_limits[0]
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


_original_read_headers = _http1.Http1Server.read_headers
_original_read_body = _http1.Http1Connection.read_body
_original_send = _http1.Http1Server.send
_original_close_connection = server.ConnectionHandler.close_connection


def apply() -> None:
    global _applied
    if _applied:
        return
    # Patch (checked against mitmproxy 12.3.1): the module-level error page of HTTP/1.
    _http1.make_error_response = error_response_bytes
    _http1.Http1Server.send = _send  # type: ignore[method-assign]
    HttpStream.send_response = _send_response  # type: ignore[method-assign]
    _http1.Http1Server.read_headers = _read_headers  # type: ignore[method-assign]
    _http1.Http1Server.read_body = _read_body  # type: ignore[method-assign]
    server.ConnectionHandler.close_connection = _close_connection  # type: ignore[method-assign]
    _http1.Http1Client.send = _with_wire_headers(_http1.Http1Client.send)  # type: ignore[method-assign]
    _http2.Http2Client._handle_event2 = _with_wire_headers(_http2.Http2Client._handle_event2)  # type: ignore[method-assign]
    _applied = True
