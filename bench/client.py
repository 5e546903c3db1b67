"""A small HTTP/1.1 streaming client on raw asyncio protocols (low overhead: the client
shares the machine with the simulator and the proxy).

One `Conn` is one keep-alive connection running one request at a time. For each request
it measures the time to first token (the first body bytes holding the target's
content-delta marker), the total time (end of the chunked body) and the longest gap
between two reads after the first token (a stall shows up there).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from .procs import PREFIX

perf = time.perf_counter


@dataclass(frozen=True)
class Target:
    """Where and what to ask: one column of the benchmark."""

    name: str
    port: int
    path: str
    kind: str  # "chat" | "anthropic" | "responses": request body and content marker
    token: str | None = None  # bearer for upstream paths (sim direct, bare mitmproxy)

    def request_bytes(self, text: str, body: bytes | None = None) -> bytes:
        """The whole request: head and `body` (by default a one-message body asking `text`)."""
        body = make_body(self.kind, text) if body is None else body
        head = [
            f"POST {self.path} HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            "Content-Type: application/json",
            "Accept: text/event-stream",
            f"Content-Length: {len(body)}",
        ]
        if self.token:
            head.append(f"Authorization: Bearer {self.token}")
        if self.kind == "anthropic":
            head.append("anthropic-version: 2023-06-01")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body


MODEL = "oca/grok3"  # chat only: /v1/messages and /v1/responses are translated


def make_body(kind: str, text: str) -> bytes:
    body: dict[str, Any]
    if kind == "chat":
        body = {
            "model": MODEL,
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": text}],
        }
    elif kind == "anthropic":
        body = {
            "model": MODEL,
            "max_tokens": 1024,
            "stream": True,
            "messages": [{"role": "user", "content": text}],
        }
    elif kind == "responses":
        body = {"model": MODEL, "stream": True, "input": text}
    else:
        raise ValueError(kind)
    return json.dumps(body).encode()


# The first content-bearing event of each API.
MARKERS = {
    "chat": b'"content":"',
    "anthropic": b'"text_delta"',
    "responses": b"response.output_text.delta",
}


def upstream_target(name: str, port: int, token: str) -> Target:
    return Target(name, port, PREFIX + "/chat/completions", "chat", token)


@dataclass
class Result:
    ok: bool
    status: int
    ttft: float  # seconds; nan if no content arrived
    total: float
    max_gap: float  # longest silence between reads after the first token, seconds
    body_bytes: int
    error: str = ""


class _Protocol(asyncio.Protocol):
    __slots__ = (
        "_after_ttft",
        "_body",
        "_buf",
        "_chunk_left",
        "_done",
        "_head",
        "_last",
        "_length",
        "_marker",
        "_max_gap",
        "_reads",
        "_status",
        "_t0",
        "_tail",
        "_ttft",
        "closed",
        "keep",
        "transport",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._done: asyncio.Future[Result] | None = None
        self.keep = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        done = self._done
        if done is not None and not done.done():
            if self._length == -2:  # read-until-close body
                self._finish(True)
            else:
                done.set_result(self._result(False, f"connection lost: {exc}"))

    def start(
        self, request: bytes, marker: bytes, reads: list[float] | None = None
    ) -> asyncio.Future[Result]:
        assert self.transport is not None
        self._done = asyncio.get_running_loop().create_future()
        self._buf = b""
        self._head = True
        self._status = 0
        self._length = -1  # -1 chunked, -2 until close, >=0 content-length left
        self._chunk_left = 0
        self._body = 0
        self._marker = marker
        self._tail = b""
        self._ttft = float("nan")
        self._after_ttft = False
        self._max_gap = 0.0
        self._reads = reads
        self._t0 = perf()
        self._last = self._t0
        self.transport.write(request)
        return self._done

    def _result(self, ok: bool, error: str = "") -> Result:
        return Result(
            ok, self._status, self._ttft, perf() - self._t0, self._max_gap, self._body, error
        )

    def _finish(self, ok: bool, error: str = "") -> None:
        done = self._done
        self._done = None
        if done is not None and not done.done():
            done.set_result(self._result(ok and 200 <= self._status < 300, error))

    def data_received(self, data: bytes) -> None:
        now = perf()
        if self._done is None:
            return
        if self._after_ttft:
            gap = now - self._last
            if gap > self._max_gap:
                self._max_gap = gap
            if self._reads is not None:
                self._reads.append(now)
        self._last = now
        buf = self._buf + data if self._buf else data
        if self._head:
            buf = buf.lstrip(b"\r\n")  # the CRLF that ended the previous chunked body
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buf = buf
                return
            self._parse_head(buf[:end])
            buf = buf[end + 4 :]
            self._head = False
        self._buf = b""
        if self._length >= 0:
            take = buf[: self._length]
            self._length -= len(take)
            self._content(take, now)
            if self._length == 0:
                self._finish(True)
            return
        if self._length == -2:
            self._content(buf, now)
            return
        # chunked: _chunk_left > 0 bytes of data left, -1 a CRLF expected, 0 a size line
        pos, n = 0, len(buf)
        while pos < n:
            left = self._chunk_left
            if left > 0:
                end = min(n, pos + left)
                self._content(buf[pos:end], now)
                left -= end - pos
                self._chunk_left = left if left else -1
                pos = end
                continue
            if left == -1:
                if n - pos < 2:
                    self._buf = buf[pos:]
                    return
                pos += 2
                self._chunk_left = 0
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                self._buf = buf[pos:]
                return
            size = int(buf[pos:eol].split(b";", 1)[0], 16)
            pos = eol + 2
            if size == 0:
                # Last chunk (no trailers expected): the answer is complete.
                self._finish(True)
                return
            self._chunk_left = size

    def _content(self, data: bytes, now: float) -> None:
        if not data:
            return
        self._body += len(data)
        if not self._after_ttft:
            window = self._tail + data
            if self._marker in window:
                self._ttft = now - self._t0
                self._after_ttft = True
                if self._reads is not None:
                    self._reads.append(now)
            else:
                self._tail = window[-len(self._marker) :]

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2:
            raise ValueError(f"bad status line {head[:200]!r}")
        self._status = int(parts[1])
        length = None
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                self.keep = False
        if chunked:
            self._length = -1
        elif length is not None:
            self._length = length
            if length == 0:
                self._finish(True)
        else:
            self._length = -2
            self.keep = False


class Conn:
    """One keep-alive connection to a target; reconnects when the server closed it."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._proto: _Protocol | None = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(_Protocol, "127.0.0.1", self.target.port)
        return proto

    async def connect(self) -> None:
        proto = self._proto
        if proto is None or not proto.keep or proto.closed.done():
            if proto is not None and proto.transport is not None:
                proto.transport.close()
            self._proto = await self._connect()

    async def request(
        self,
        text: str,
        timeout: float = 120.0,
        payload: bytes | None = None,
        reads: list[float] | None = None,
    ) -> Result:
        """One request; `reads` (if given) gets the time of every read after the first token."""
        await self.connect()
        proto = self._proto
        assert proto is not None
        data = payload if payload is not None else self.target.request_bytes(text)
        fut = proto.start(data, MARKERS[self.target.kind], reads)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            self.close()
            return Result(False, 0, float("nan"), timeout, 0.0, 0, "timeout")

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None
