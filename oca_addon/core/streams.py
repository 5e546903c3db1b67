"""The bytes of a streamed answer on their way to the client: a translator's driver
(`StreamDriver`), the pass-through tap for answers already in the client's API, the
terminal error event of each API, and the usage read off a finished stream.

Pure over bytes (no mitmproxy): the addon hands these to `flow.response.stream`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from oca_addon.core import jsonio, sse
from oca_addon.core.errors import upstream_error_message
from oca_addon.translate import anthropic


class StreamTranslator[Event](Protocol):
    """A streamed answer's translator, one per request (docs/ARCHITECTURE.md). `Event` is
    what `feed` takes: a `ChatChunk` for the client APIs' translators (they read OCA's chat
    stream, or an upstream adapter's chunks); one upstream event's JSON, `dict[str, Any]`,
    for the native streams and `AdaptedStream`. The driver feeds it parsed JSON objects."""

    def feed(self, chunk: Event) -> bytes: ...
    def finish(self) -> bytes: ...
    def fail(self, status: int, message: str) -> bytes: ...


class StreamDriver:
    """mitmproxy's `flow.response.stream` for a translated answer: OCA's chat SSE in,
    the client API's SSE out. Called with b"" once the upstream body has ended."""

    __slots__ = (
        "closed",
        "in_size",
        "limit",
        "out_size",
        "parser",
        "raw_in",
        "raw_out",
        "translator",
        "usage",
    )

    def __init__(self, translator: StreamTranslator[Any], capture_limit: int = 0) -> None:
        self.parser = sse.SSEParser()
        self.translator = translator
        self.closed = False
        self.usage: dict[str, Any] | None = None
        # A bounded copy of both sides, for display after the stream (annotate.py).
        self.limit = capture_limit
        self.raw_in = bytearray()
        self.raw_out = bytearray()
        self.in_size = 0
        self.out_size = 0

    def __call__(self, data: bytes) -> list[bytes]:
        # A list, never b"": mitmproxy writes each returned chunk as one HTTP/1 chunk, and an
        # empty one ("0\r\n\r\n") would end the client's chunked body in mid-stream.
        if data:
            self.in_size += len(data)
            if len(self.raw_in) < self.limit:
                self.raw_in += data[: self.limit - len(self.raw_in)]
        out = self.translate(data)
        if out:
            self._keep_out(out)
        return [out] if out else []

    def _keep_out(self, out: bytes) -> None:
        self.out_size += len(out)
        if len(self.raw_out) < self.limit:
            self.raw_out += out[: self.limit - len(self.raw_out)]

    def translate(self, data: bytes) -> bytes:
        """Upstream bytes in, client bytes out (b"" at the end of the upstream body)."""
        if self.closed:
            return b""
        if not data:
            out = b"".join(self._event(ev.data) for ev in self.parser.close() if not self.closed)
            if not self.closed:
                self.closed = True
                out += self.translator.finish()
            return out
        if (
            # The usual read (a hot spot): exactly one whole `data: {...}` event, which the
            # parser would give as is. Its JSON is read straight from the bytes.
            self.parser.idle
            and data.startswith(b"data: {")
            and data.endswith(b"}\n\n")
            and data.count(b"\n") == 2
        ):
            return self._event(data[6:-2])
        return b"".join(self._event(ev.data) for ev in self.parser.feed(data) if not self.closed)

    def _event(self, data: str | bytes) -> bytes:
        if data == "[DONE]":
            self.closed = True
            return self.translator.finish()
        try:
            chunk = jsonio.loads(data)
        except ValueError:
            text = data if isinstance(data, str) else data.decode("utf-8", "replace")
            return self.abort(f"OCA sent a stream event that is not JSON: {text[:120]!r}")
        if not isinstance(chunk, dict):
            return b""
        if "error" in chunk:
            self.closed = True
            raw = data.encode() if isinstance(data, str) else data
            return self.translator.fail(error_status(chunk), upstream_error_message(raw, 502))
        usage = chunk.get("usage")
        if not usage:
            # Responses events carry it in `response`, Messages' message_start in `message`.
            inner = chunk.get("response") or chunk.get("message")
            usage = inner.get("usage") if isinstance(inner, dict) else None
        if usage and isinstance(usage, dict):
            # Messages: the input counts come in message_start, the output in message_delta.
            self.usage = anthropic.merge_usage(self.usage, usage)
        return self.translator.feed(chunk)

    def abort(self, message: str, status: int = 502) -> bytes:
        """The upstream failed mid-stream: the client API's own terminal error event."""
        if self.closed:
            return b""
        self.closed = True
        out = self.translator.fail(status, message)
        self._keep_out(out)
        return out


class PassthroughTap:
    """`flow.response.stream` for answers already in the client's API: bytes go through
    untouched; a bounded copy is kept so the flow can be shown and its usage read.

    Bytes go on whole lines (a partial line waits for its end), so a `data:` line that is
    not JSON (OCA answering garbage) is never passed on: the client gets its API's terminal
    error event instead, and nothing after it."""

    __slots__ = (
        "captured",
        "checked_one",
        "fail_frame",
        "failed",
        "last",
        "limit",
        "pending",
        "seen",
        "truncated",
    )

    MAX_LINE = 16 * 1024 * 1024  # one SSE line longer than this is not an event stream

    def __init__(self, limit: int, fail_frame: Callable[[str], bytes] | None = None) -> None:
        self.captured = bytearray()
        self.limit = limit
        self.truncated = False
        self.seen = 0  # bytes passed through, kept or not
        self.fail_frame = fail_frame
        self.pending = b""
        self.failed = False
        self.checked_one = False  # an event has been parsed in full
        self.last = b"\n\n"  # the end of what the client got: is it between two events?

    def abort(self, message: str) -> bytes:
        if self.failed:
            return b""
        self.failed = True
        frame = self.fail_frame(message) if self.fail_frame else b""
        # Close an event the client got only part of, so the error is an event of its own.
        return frame if not frame or self.last.endswith(b"\n\n") else b"\n" + frame

    def __call__(self, data: bytes) -> list[bytes]:
        # A list, never b"" for data: an empty chunk would end the client's chunked body.
        if self.failed:
            return []
        if data:
            buf = self.pending + data if self.pending else data
            cut = buf.rfind(b"\n") + 1
            if cut == len(buf):  # the usual case: whole lines, nothing to copy
                out, self.pending = buf, b""
            else:
                out, self.pending = buf[:cut], buf[cut:]
                if len(self.pending) > self.MAX_LINE:
                    return self._fail(out, b"", "OCA sent an event line longer than 16 MB")
        else:  # the upstream body ended: the last line, even without its newline
            out, self.pending = self.pending, b""
        # The first event is parsed in full (garbage shows from the start); after that the
        # shape of a JSON value is enough: one regular-expression scan per chunk.
        bad = self._bad_line(out)
        if bad is not None:
            start, line = bad
            return self._fail(out[:start], line, "OCA sent a stream event that is not JSON")
        if not out:
            return []
        self._keep(out)
        return [out]

    def _bad_line(self, block: bytes) -> tuple[int, bytes] | None:
        """(offset, line) of the first `data:` line that is neither JSON nor [DONE]."""
        lines = b"\n" + block + b"\n"  # offsets in it are line starts in block
        bad = _BAD_DATA_LINE.search(lines)
        if not self.checked_one:
            for m in _DATA_LINE.finditer(lines, 0, bad.start() if bad else len(lines)):
                if m.group(1) == b"[DONE]":
                    continue
                if json_or_none(m.group(1)) is None:
                    return m.start(), m.group(0)[1:].rstrip(b"\r")
                self.checked_one = True
                break
        if bad is not None:
            return bad.start(), bad.group(0)[1:].rstrip(b"\r")
        return None

    def _fail(self, good: bytes, line: bytes, why: str) -> list[bytes]:
        self._keep(good)
        detail = f": {line[:120].decode('utf-8', 'replace')!r}" if line else ""
        tail = self.abort(why + detail)
        self._keep(tail)
        return [b for b in (good, tail) if b]

    def _keep(self, data: bytes) -> None:
        if not data:
            return
        n = len(data)
        self.seen += n
        self.last = data[-2:] if n >= 2 else (self.last + data)[-2:]
        if self.truncated:
            return
        room = self.limit - len(self.captured)
        if n <= room:
            self.captured += data
        else:
            self.captured += data[:room]
            self.truncated = True


# A `data:` line whose value does not even have the shape of a JSON object or array, nor
# is [DONE]; and any `data:` line with its value. Both search b"\n" + block + b"\n": a
# pattern that starts with a literal is found by a fast scan (one starting `^` is not).
_BAD_DATA_LINE = re.compile(
    rb"\ndata:[ \t]*+(?![\[{][^\n]*[\]}][ \t]*\r?\n|\[DONE\][ \t]*\r?\n)[^\n]*"
)
_DATA_LINE = re.compile(rb"\ndata:[ \t]*+([^\n]*?)[ \t]*\r?(?=\n)")


def usage_from_stream(body: bytes | bytearray) -> dict[str, Any] | None:
    """The token usage reported near the end of a (chat, responses or messages) stream,
    over the input counts a Messages stream gives at its start (message_start)."""
    usage = _message_start_usage(body)
    tail = bytes(body[-16384:])
    start = tail.find(b"\n") + 1 if len(body) > len(tail) else 0
    # Parse from the event that first mentions usage on (once per request: a hot spot).
    first = tail.find(b'"usage"', start)
    if first < 0:
        return usage
    for sep in (b"\n\n", b"\n\r\n"):
        at = tail.rfind(sep, start, first)
        if at >= 0:
            start = max(start, at + len(sep))
    for ev in sse.parse_all(tail[start:]):
        if '"usage"' not in ev.data:
            continue
        found = _usage_of(json_or_none(ev.data))
        if found:
            usage = anthropic.merge_usage(usage, found)
    return usage


def _usage_of(data: Any) -> dict[str, Any] | None:
    """An event's usage: its own (chat chunks, message_delta), its response's (Responses)
    or its message's (message_start)."""
    if not isinstance(data, dict):
        return None
    found = data.get("usage")
    if not found:
        inner = data.get("response") or data.get("message")
        found = inner.get("usage") if isinstance(inner, dict) else None
    return found if isinstance(found, dict) and found else None


def _message_start_usage(body: bytes | bytearray) -> dict[str, Any] | None:
    """The usage in a Messages stream's first event, message_start (None for other APIs)."""
    head = bytes(body[:16384])
    at = head.find(b'"message_start"')
    if at < 0:
        return None
    ends = [e for e in (head.find(b"\n\n", at), head.find(b"\n\r\n", at)) if e >= 0]
    if not ends:
        return None  # not a whole event within the head
    for ev in sse.parse_all(head[: min(ends) + 2]):
        data = json_or_none(ev.data)
        if isinstance(data, dict) and data.get("type") == "message_start":
            return _usage_of(data)
    return None


def token_counts(usage: Mapping[str, Any] | None) -> tuple[int, int]:
    """(input, output) tokens from any of the three APIs' usage shapes."""
    if not usage:
        return 0, 0

    def _int(*keys: str) -> int:
        for k in keys:
            v = usage.get(k)
            if isinstance(v, int):
                return v
        return 0

    inp = _int("prompt_tokens", "input_tokens")
    if "prompt_tokens" not in usage and "input_tokens_details" not in usage:
        # Messages counts the cache reads and writes apart from input_tokens (chat's
        # prompt_tokens and Responses' input_tokens, with its details, hold them).
        inp += _int("cache_read_input_tokens") + _int("cache_creation_input_tokens")
    return inp, _int("completion_tokens", "output_tokens")


def json_or_none(text: str | bytes) -> Any:
    try:
        return jsonio.loads(text)
    except ValueError:
        return None


def error_status(data: dict[str, Any]) -> int:
    err = data.get("error")
    code = err.get("code") if isinstance(err, dict) else None
    try:
        status = int(code)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        # Anthropic's in-stream errors carry a type, not a code (overloaded_error -> 529).
        kind = err.get("type") if isinstance(err, dict) else None
        return anthropic.ERROR_STATUS.get(kind, 502) if isinstance(kind, str) else 502
    return status if 400 <= status < 600 else 502
