"""Issue 23, "the wire" (items 8-11), through a real mitmdump in front of the simulator:
`Connection: close` on API calls, head limits whatever the line ending, HTTP/2 refused
(README, "HTTP/1.1 only"), chunked request bodies with trailers or endless lines."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Proxy

CHAT = {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}


def _exchange(p: Proxy, data: bytes, timeout: float = 10) -> tuple[bytes, bool]:
    """Send `data`, read until the proxy closes: (what came back, whether it closed)."""
    out = b""
    with socket.create_connection(("127.0.0.1", p.port), timeout=timeout) as s:
        with contextlib.suppress(OSError):
            s.sendall(data)
        try:
            while part := s.recv(65536):
                out += part
        except TimeoutError:
            return out, False  # still open after `timeout` s
        except OSError:
            pass  # reset: closed too
    return out, True


def _post(p: Proxy, path: str, body: dict[str, Any], headers: bytes = b"") -> bytes:
    raw = json.dumps(body).encode()
    return (
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n%s\r\n%s" % (path.encode(), p.port, len(raw), headers, raw)
    )


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# -- 8: Connection: close -----------------------------------------------------------------------

CALLS = {
    "chat": ("/v1/chat/completions", CHAT),
    "chat-stream": ("/v1/chat/completions", {**CHAT, "stream": True}),
    "messages-stream": (
        "/v1/messages",
        {"model": "claude-sonnet-4-6", "max_tokens": 20, "stream": True, **CHAT},
    ),
    "responses": ("/v1/responses", {"model": "oca/gpt-4.1", "input": "hi"}),
    "adapter": ("/v1/chat/completions", {**CHAT, "model": "oca/claude-opus-4"}),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_connection_close_closes_after_an_api_answer(proxy: Proxy, call: str) -> None:
    """Issue 23.8: the answer came, the socket stayed open (pages did close)."""
    path, body = CALLS[call]
    out, closed = _exchange(proxy, _post(proxy, path, body, b"Connection: close\r\n"), 10)
    assert out.startswith(b"HTTP/1.1 200"), out[:300]
    assert closed, "the proxy kept the connection open after Connection: close"
    # the body is whole: chunked ends with its last chunk, else Content-Length bytes came
    head, _, rest = out.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        assert rest.endswith(b"0\r\n\r\n")
    else:
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        assert len(rest) == length


def test_keep_alive_still_serves_several_calls_on_one_connection(proxy: Proxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        for _ in range(3):
            s.sendall(_post(proxy, "/v1/chat/completions", CHAT))
            data = b""
            while b'"usage"' not in data:
                part = s.recv(65536)
                assert part, "closed between keep-alive calls"
                data += part
            assert data.startswith(b"HTTP/1.1 200")


# -- 9: head limits whatever the line ending ---------------------------------------------------


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"], ids=["crlf", "lf"])
def test_head_limits_do_not_depend_on_the_line_ending(proxy: Proxy, eol: bytes) -> None:
    """Issue 23.9: 5,000 fields ending in a bare LF got a 200 (with CRLF: 431)."""
    body = json.dumps(CHAT).encode()

    def request(fields: list[bytes]) -> bytes:
        lines = [
            b"POST /v1/chat/completions HTTP/1.1",
            b"Host: 127.0.0.1:%d" % proxy.port,
            b"Content-Type: application/json",
            b"Content-Length: %d" % len(body),
            *fields,
        ]
        return eol.join(lines) + eol + eol + body

    for fields in (
        [b"x-h%d: v" % i for i in range(5_000)],
        [b"a:" for _ in range(300)],  # the shortest fields there are
        [b"x-big: " + b"a" * 70_000],
    ):
        out, closed = _exchange(proxy, request(fields))
        assert out.startswith(b"HTTP/1.1 431"), out[:200]
        assert "oca_max_header" in json.loads(out.partition(b"\r\n\r\n")[2])["error"]["message"]
        assert closed
    out, _ = _exchange(
        proxy, request([b"x-h%d: v" % i for i in range(100)] + [b"Connection: close"])
    )
    assert out.startswith(b"HTTP/1.1 200"), out[:200]


# -- 10: HTTP/2 refused --------------------------------------------------------------------------


def test_http2_prior_knowledge_gets_http_1_1_required(proxy: Proxy) -> None:
    """Issue 23.10, cleartext: a real HTTP/2 client (httpx with h2, prior knowledge) is told
    to use HTTP/1.1 (GOAWAY, HTTP_1_1_REQUIRED), and nothing of its request reaches OCA."""
    before = proxy.sim.state()["counters"]["api_requests"]
    with (
        httpx.Client(http1=False, http2=True, timeout=10) as client,
        pytest.raises(httpx.RemoteProtocolError, match="error_code:13"),
    ):
        client.post(f"{proxy.url}/v1/chat/completions", json=CHAT)
    # the same on a raw socket: the server preface, then GOAWAY(HTTP_1_1_REQUIRED)
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    out, closed = _exchange(proxy, preface)
    assert closed
    assert out[3] == 0x04 and out[9 + 3] == 0x07, out  # SETTINGS, then GOAWAY
    goaway = out[9 + 9 : 9 + 9 + 8]
    assert int.from_bytes(goaway[4:8], "big") == 0x0D  # HTTP_1_1_REQUIRED
    assert b"HTTP/1.1" in out
    assert proxy.sim.state()["counters"]["api_requests"] == before
    assert httpx.get(f"{proxy.url}/health", timeout=10).json()["status"] == "ok"
    assert "Traceback" not in proxy.log()


def _tls(proxy: Proxy, alpn: list[str]) -> ssl.SSLSocket:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def test_tls_clients_are_offered_http_1_1_only(proxy: Proxy) -> None:
    """Issue 23.10, TLS on the same port: h2 is never chosen, so an HTTP/2-capable client
    gets HTTP/1.1 with all of its limits (here the 431) and error shapes."""
    with _tls(proxy, ["h2", "http/1.1"]) as s:
        assert s.selected_alpn_protocol() == "http/1.1"
        s.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n"
            % (proxy.port, b"".join(b"x-h%d: v\r\n" % i for i in range(300)))
        )
        out = b""
        with contextlib.suppress(OSError):
            while part := s.recv(65536):
                out += part
    assert out.startswith(b"HTTP/1.1 431"), out[:200]
    assert json.loads(out.partition(b"\r\n\r\n")[2])["type"] == "error"  # Anthropic's shape
    with _tls(proxy, ["h2"]) as s:
        assert s.selected_alpn_protocol() is None  # h2 only: no protocol agreed
    with httpx.Client(http2=True, verify=False, timeout=30) as client:
        r = client.post(f"{proxy.url.replace('http:', 'https:')}/v1/chat/completions", json=CHAT)
    assert r.status_code == 200 and r.http_version == "HTTP/1.1"


# -- 11: chunked request bodies ----------------------------------------------------------------


def _chunked(proxy: Proxy, tail: bytes, body: bytes | None = None) -> bytes:
    body = json.dumps(CHAT).encode() if body is None else body
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n%x\r\n%s\r\n%s" % (proxy.port, len(body), body, tail)
    )


@pytest.mark.parametrize(
    "tail",
    [b"0\r\nX-T: v\r\n\r\n", b"0\r\nX-T: v\r\nX-U: w\r\n\r\n", b"0;ext=1\r\n\r\n"],
    ids=["trailer", "two-trailers", "extension"],
)
def test_chunked_body_with_trailers_is_answered(proxy: Proxy, tail: bytes) -> None:
    """Issue 23.11: a trailer left the request unanswered for good (mitmproxy raises
    NotImplementedError on trailers); now they are dropped."""
    out, closed = _exchange(proxy, _chunked(proxy, tail), timeout=10)
    assert out.startswith(b"HTTP/1.1 200"), out[:200]
    assert closed
    assert "Traceback" not in proxy.log()


@pytest.mark.parametrize("what", ["trailer-lines", "chunk-extension"])
def test_endless_trailers_or_chunk_lines_are_cut(proxy: Proxy, what: str) -> None:
    """Issue 23.11: 200 MB of trailer lines or of one chunk's extensions grew the proxy by
    200 MB; now a 400 in the API's shape past the head limit, and the connection closes."""
    if what == "trailer-lines":
        start, unit = _chunked(proxy, b"0\r\n"), b"X-T: " + b"a" * 1000 + b"\r\n"
    else:
        start, unit = _chunked(proxy, b"5;ext="), b"a" * 1000
    block = unit * 1000
    rss = _rss_kib(proxy.proc.pid)
    sent, out = 0, b""
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as s:
        try:
            s.sendall(start)
            while sent < 200_000_000:
                s.sendall(block)
                sent += len(block)
        except OSError:
            pass  # the proxy stopped reading and closed
        with contextlib.suppress(OSError):
            while part := s.recv(65536):
                out += part
    assert sent < 50_000_000, f"the proxy read {sent} bytes of it"
    assert time.monotonic() - began < 15
    assert out.startswith(b"HTTP/1.1 400"), out[:200]
    assert "chunk" in json.loads(out.partition(b"\r\n\r\n")[2])["error"]["message"]
    grown = (_rss_kib(proxy.proc.pid) - rss) / 1024
    assert grown < 40, f"RSS grew by {grown:.0f} MiB"
    assert httpx.get(f"{proxy.url}/health", timeout=10).json()["status"] == "ok"
    assert "Traceback" not in proxy.log()
