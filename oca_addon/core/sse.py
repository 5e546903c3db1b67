"""Server-sent events: an incremental parser and an encoder.

Upstream chunk boundaries are arbitrary (a frame, a line or a UTF-8 character can be
split across reads), so the parser buffers bytes and only splits on b"\\n". It never
decodes partial lines, and it never uses str.splitlines(): U+2028 and friends occur
inside JSON strings and are not line breaks in SSE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oca_addon.core import jsonio


@dataclass(slots=True)
class SSEEvent:
    data: str
    event: str | None = None

    def json(self) -> Any:
        return jsonio.loads(self.data)


class SSEParser:
    """Feed bytes in, get complete events out."""

    __slots__ = ("_buf", "_data", "_event")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event: str | None = None

    @property
    def idle(self) -> bool:
        """Between events: nothing buffered."""
        return not self._buf and not self._data and self._event is None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        if (
            # Fast path (a hot spot: once per streamed chunk): exactly one whole
            # `data: ...` event; the general loop below gives the same event.
            not self._data
            and buf.endswith(b"\n\n")
            and buf.startswith(b"data: ")
            and buf.count(b"\n") == 2
            and b"\r" not in buf
        ):
            self._buf = b""
            event = SSEEvent(buf[6:-2].decode("utf-8", "replace"), self._event)
            self._event = None
            return [event]
        if b"\n" not in buf:
            self._buf = buf
            return []
        *lines, self._buf = buf.split(b"\n")
        events: list[SSEEvent] = []
        for raw in lines:
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if not raw:
                if self._data:
                    events.append(SSEEvent("\n".join(self._data), self._event))
                self._data = []
                self._event = None
                continue
            line = raw.decode("utf-8", "replace")
            if line.startswith(":"):
                continue  # comment / keep-alive
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "data":
                self._data.append(value)
            elif field == "event":
                self._event = value
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: flush a last event that had no blank line after it."""
        events = self.feed(b"\n\n") if (self._buf or self._data) else []
        self._buf = b""
        return events


def parse_all(body: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    return parser.feed(body) + parser.close()


def encode(data: Any, event: str | None = None) -> bytes:
    """One SSE frame. `data` may be a str (sent as is) or a JSON-able object."""
    payload = data.encode() if isinstance(data, str) else jsonio.dumps(data)
    if event is None:
        return b"data: " + payload + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"


DONE = b"data: [DONE]\n\n"
