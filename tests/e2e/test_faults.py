"""Issue 7, "bad input gets a clear answer" and "faults lose nothing", through real mitmdump.

Every API the proxy serves, native (passed through) and translated, streamed and not, against
every way OCA can fail: an error status, an error mid-stream, a cut connection, HTML,
garbage, silence before or within an answer, a dead or misbehaving server. The client always
gets its own API's error shape (for streams, its API's terminal error event), never
mitmproxy's HTML page, never a hang; a client that goes away frees everything it held.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Proxy, Sim, free_port, sse_events, start_proxy, start_sim

from oca_addon.sim.config import GUESSES_ENV, guesses_on

IDLE = 1  # oca_upstream_idle_timeout for these proxies, seconds (the least it takes)
MAX_BODY = 1_000_000  # oca_max_body for these proxies
MAPPING = {
    "model_mapping": {"claude-sonnet-4-6": "oca/gpt-4.1"},
    "default_model": "oca/gpt-4.1",
}
OPTIONS = {"oca_upstream_idle_timeout": str(IDLE), "oca_max_body": str(MAX_BODY)}


@dataclass(frozen=True)
class Api:
    name: str
    path: str
    flavor: str  # openai | anthropic
    model: str
    native: bool

    def body(self, text: str, stream: bool) -> dict[str, Any]:
        if self.path == "/v1/messages":
            msgs = [{"role": "user", "content": text}]
            return {"model": self.model, "max_tokens": 200, "messages": msgs, "stream": stream}
        if self.path == "/v1/responses":
            return {"model": self.model, "input": text, "stream": stream}
        if self.path == "/v1/completions":
            return {"model": self.model, "prompt": text, "max_tokens": 200, "stream": stream}
        msgs = [{"role": "user", "content": text}]
        return {"model": self.model, "messages": msgs, "stream": stream}


APIS = [
    Api("chat", "/v1/chat/completions", "openai", "oca/gpt-4.1", True),
    Api("messages-translated", "/v1/messages", "anthropic", "claude-sonnet-4-6", False),
    Api("messages-native", "/v1/messages", "anthropic", "oca/claude-sonnet-4", True),
    Api("responses-translated", "/v1/responses", "openai", "oca/grok3", False),
    Api("responses-native", "/v1/responses", "openai", "oca/gpt-5-codex", True),
    Api("completions-translated", "/v1/completions", "openai", "oca/gpt-4.1", False),
    Api("completions-native", "/v1/completions", "openai", "oca/llama-4", True),
]
API_IDS = [a.name for a in APIS]


@pytest.fixture(scope="module")
def fproxy(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    # Refusals of /completions remembered, so that "completions-translated" streams through
    # mitmproxy like every other translated call (the one retry is tested in test_first_contact).
    options = {**OPTIONS, "oca_completions_refusal_ttl": "3600"}
    p = start_proxy(sim, tmp_path_factory.mktemp("faults"), settings=MAPPING, options=options)
    yield p
    p.stop()


@pytest.fixture(autouse=True)
def completions_way(request: pytest.FixtureRequest, sim: Sim) -> Iterator[None]:
    """OCA serving /completions or not (a simulator guess), as each completions case needs."""
    api = getattr(getattr(request.node, "callspec", None), "params", {}).get("api")
    name = api.name if isinstance(api, Api) else ""
    if not name.startswith("completions"):
        yield
        return
    sim.config(serves_completions=name == "completions-native")
    if name == "completions-translated" and "fproxy" in request.fixturenames:
        # OCA refuses once; the proxy remembers and translates from then on.
        proxy = request.getfixturevalue("fproxy")
        httpx.post(
            f"{proxy.url}/v1/completions", json={"model": api.model, "prompt": "warm"}, timeout=30
        )
    yield
    sim.config(serves_completions="serves_completions" in guesses_on(os.environ.get(GUESSES_ENV)))


def api_error(r: httpx.Response, flavor: str) -> tuple[int, str]:
    """Asserts the body is the API's error shape (not HTML); returns (status, message)."""
    assert "html" not in r.headers.get("content-type", ""), r.text[:300]
    assert not r.text.lstrip().startswith("<"), r.text[:300]
    body = r.json()
    if flavor == "anthropic":
        assert body["type"] == "error", body
        assert isinstance(body["error"]["type"], str), body
    else:
        assert set(body) == {"error"}, body
        assert isinstance(body["error"]["type"], str), body
    message = body["error"]["message"]
    assert isinstance(message, str) and message, body
    return r.status_code, message


def terminal_error(api: Api, text: str) -> str:
    """Asserts the stream ends with the API's own terminal error event; returns its message."""
    events = [(e, d) for e, d in sse_events(text) if d != "[DONE]"]
    assert events, text[:500]
    event, data = events[-1]
    payload = json.loads(data)
    if api.flavor == "anthropic":
        assert event == "error" and payload["type"] == "error", text[-500:]
        return str(payload["error"]["message"])
    if api.path == "/v1/responses":
        assert event in ("error", "response.failed"), text[-500:]
        if event == "error":
            return str(payload["message"])
        return str(payload["response"]["error"]["message"])
    assert "error" in payload, text[-500:]
    return str(payload["error"]["message"])


def call(p: Proxy, api: Api, text: str, stream: bool, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{p.url}{api.path}", json=api.body(text, stream), timeout=timeout)


# -- bad input ---------------------------------------------------------------------------

ENDPOINTS = [
    ("/v1/chat/completions", "openai"),
    ("/v1/responses", "openai"),
    ("/v1/completions", "openai"),
    ("/v1/embeddings", "openai"),
    ("/v1/messages", "anthropic"),
    ("/v1/messages/count_tokens", "anthropic"),
]
JSON_CT = {"content-type": "application/json"}


@pytest.mark.parametrize(("path", "flavor"), ENDPOINTS)
@pytest.mark.parametrize(
    ("content", "headers", "status", "says"),
    [
        (b"{nope", JSON_CT, 400, "not valid JSON"),
        (b'{"model": "oca/gpt-4.1",}', JSON_CT, 400, "not valid JSON"),
        (b"", JSON_CT, 400, "no body"),
        (b"[1, 2]", JSON_CT, 400, "JSON object"),
        (b'"text"', JSON_CT, 400, "JSON object"),
        (b'{"model": "\xff\xfe"}', JSON_CT, 400, "UTF-8"),
        (
            b"model=oca/gpt-4.1",
            {"content-type": "application/x-www-form-urlencoded"},
            415,
            "Content-Type",
        ),
        (b"<xml/>", {"content-type": "application/xml"}, 415, "Content-Type"),
        (  # issue 14.5: orjson refuses it, the standard library would overflow its stack
            b'{"model": "oca/gpt-4.1", "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
            JSON_CT,
            400,
            "nested too deeply",
        ),
        (b'{"model": "oca/gpt-4.1", "n": ' + b"7" * 5_000 + b"}", JSON_CT, 400, "digits"),
    ],
    ids=[
        "malformed",
        "trailing-comma",
        "empty",
        "array",
        "string",
        "non-utf8",
        "form",
        "xml",
        "deep",
        "huge-int",
    ],
)
def test_malformed_bodies(
    fproxy: Proxy,
    path: str,
    flavor: str,
    content: bytes,
    headers: dict[str, str],
    status: int,
    says: str,
) -> None:
    r = httpx.post(f"{fproxy.url}{path}", content=content, headers=headers, timeout=10)
    got, message = api_error(r, flavor)
    assert got == status and says in message, (got, message)
    assert "Traceback" not in fproxy.log()


FIELD_CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("/v1/chat/completions", "openai", {"messages": [{"role": "user", "content": "x"}]}, "model"),
    ("/v1/chat/completions", "openai", {"model": 42, "messages": []}, "model"),
    ("/v1/chat/completions", "openai", {"model": "oca/gpt-4.1"}, "messages"),
    ("/v1/chat/completions", "openai", {"model": "oca/gpt-4.1", "messages": "hi"}, "messages"),
    ("/v1/chat/completions", "openai", {"model": "oca/gpt-4.1", "messages": [1]}, "messages"),
    (
        "/v1/chat/completions",
        "openai",
        {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "x"}], "stream": "yes"},
        "stream",
    ),
    ("/v1/messages", "anthropic", {"max_tokens": 5, "messages": []}, "model"),
    ("/v1/messages", "anthropic", {"model": "claude-sonnet-4-6", "max_tokens": 5}, "messages"),
    (
        "/v1/messages",
        "anthropic",
        {"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": {"role": "user"}},
        "messages",
    ),
    (
        "/v1/messages",
        "anthropic",
        {"model": ["x"], "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        "model",
    ),
    ("/v1/messages/count_tokens", "anthropic", {"model": "claude-sonnet-4-6"}, "messages"),
    ("/v1/responses", "openai", {"input": "x"}, "model"),
    ("/v1/responses", "openai", {"model": None, "input": "x"}, "model"),
    ("/v1/completions", "openai", {"prompt": "x"}, "model"),
    ("/v1/embeddings", "openai", {"model": "oca/text-embedding-3-small"}, "input"),
]


@pytest.mark.parametrize(("path", "flavor", "body", "field"), FIELD_CASES)
def test_missing_and_mistyped_fields(
    fproxy: Proxy, path: str, flavor: str, body: dict[str, Any], field: str
) -> None:
    r = httpx.post(f"{fproxy.url}{path}", json=body, timeout=30)
    status, message = api_error(r, flavor)
    assert 400 <= status < 500 and field in message, (status, message)


@pytest.mark.parametrize("api", APIS, ids=API_IDS)
def test_unknown_fields_never_break_the_proxy(fproxy: Proxy, api: Api) -> None:
    body = {**api.body("hello", False), "frobnicate": {"x": [1, 2]}, "zz_unknown": None}
    r = httpx.post(f"{fproxy.url}{api.path}", json=body, timeout=30)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        api_error(r, api.flavor)


@pytest.mark.parametrize(("path", "flavor"), ENDPOINTS)
def test_huge_bodies_are_refused_before_reading(fproxy: Proxy, path: str, flavor: str) -> None:
    big = json.dumps({"model": "oca/gpt-4.1", "x": "a" * (MAX_BODY + 10)}).encode()
    # Content-Length known up front: refused at once
    r = httpx.post(f"{fproxy.url}{path}", content=big, headers=JSON_CT, timeout=30)
    status, message = api_error(r, flavor)
    assert status == 413 and str(MAX_BODY) in message, message
    if flavor == "anthropic":
        assert r.json()["error"]["type"] == "request_too_large"

    # chunked (no Content-Length): refused once the limit is crossed
    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    r = httpx.post(f"{fproxy.url}{path}", content=chunks(), headers=JSON_CT, timeout=30)
    status, _ = api_error(r, flavor)
    assert status == 413
    # just under the limit is read (and then judged on its content)
    ok = json.dumps({"model": 1, "x": "a" * (MAX_BODY - 100)}).encode()
    r = httpx.post(f"{fproxy.url}{path}", content=ok, headers=JSON_CT, timeout=30)
    assert r.status_code == 400
    assert fproxy.health()["status"] == "ok"


def test_wrong_method_and_unknown_path(fproxy: Proxy) -> None:
    r = httpx.get(f"{fproxy.url}/v1/chat/completions", timeout=10)
    status, message = api_error(r, "openai")
    assert status == 405 and "POST" in message
    r = httpx.get(f"{fproxy.url}/v1/messages", timeout=10)
    assert api_error(r, "anthropic")[0] == 405
    r = httpx.get(f"{fproxy.url}/v1/nothing-here", timeout=10)
    assert r.status_code == 404


def test_malformed_http_gets_a_clear_400(fproxy: Proxy) -> None:
    for raw in (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", fproxy.port), timeout=10) as s:
            s.sendall(raw)
            data = b""
            with contextlib.suppress(OSError):
                while chunk := s.recv(65536):
                    data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), data[:300]
        assert b"<html" not in body.lower() and json.loads(body)["error"]["message"]
    assert fproxy.health()["status"] == "ok"


# -- upstream faults ---------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
@pytest.mark.parametrize("api", APIS, ids=API_IDS)
@pytest.mark.parametrize("status", [429, 500, 503, 529])
def test_upstream_status_reaches_the_client(
    fproxy: Proxy, api: Api, stream: bool, status: int
) -> None:
    r = call(fproxy, api, f"SIM:error={status}", stream)
    got, message = api_error(r, api.flavor)
    assert got == status, (got, message)
    assert f"OCA answered {status}" in message and "request id" in message
    if status == 429:
        assert r.headers["retry-after"] == "2"


@pytest.mark.parametrize("api", APIS, ids=API_IDS)
@pytest.mark.parametrize("fault", ["SIM:midstream_error", "SIM:cut", "SIM:garbage"])
def test_broken_streams_end_with_the_api_error_event(fproxy: Proxy, api: Api, fault: str) -> None:
    t = time.time()
    r = call(fproxy, api, f"tell me a story {fault} SIM:chunks=12", True)
    assert r.status_code == 200 and "text/event-stream" in r.headers["content-type"]
    message = terminal_error(api, r.text)
    assert message
    if fault == "SIM:garbage":
        assert "not JSON" in message, message
        assert "this is not json" not in r.text.split("not JSON")[0]  # never passed on raw
    assert time.time() - t < 15


@pytest.mark.parametrize("api", APIS, ids=API_IDS)
@pytest.mark.parametrize("fault", ["SIM:midstream_error", "SIM:cut", "SIM:garbage", "SIM:html"])
def test_broken_answers_buffered_get_an_api_error(fproxy: Proxy, api: Api, fault: str) -> None:
    r = call(fproxy, api, f"tell me a story {fault} SIM:chunks=12", False)
    status, message = api_error(r, api.flavor)
    assert status >= 500, (status, message)
    if fault == "SIM:html":
        assert "HTML" in message


@pytest.mark.parametrize("api", APIS, ids=API_IDS)
def test_html_instead_of_a_stream(fproxy: Proxy, api: Api) -> None:
    r = call(fproxy, api, "SIM:html", True)
    status, message = api_error(r, api.flavor)
    assert status == 502 and "HTML" in message


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
@pytest.mark.parametrize("api", APIS, ids=API_IDS)
def test_silent_upstream_times_out_clearly(fproxy: Proxy, api: Api, stream: bool) -> None:
    t = time.time()
    r = call(fproxy, api, "SIM:ttft=20000", stream)
    took = time.time() - t
    status, message = api_error(r, api.flavor)
    assert status == 504 and "sent nothing" in message, message
    assert IDLE <= took < IDLE + 6, took


@pytest.mark.parametrize("api", APIS, ids=API_IDS)
def test_stalled_stream_times_out_with_the_api_error_event(fproxy: Proxy, api: Api) -> None:
    t = time.time()
    r = call(fproxy, api, "SIM:slow=20000 SIM:chunks=5", True)
    took = time.time() - t
    assert r.status_code == 200
    assert "sent nothing" in terminal_error(api, r.text)
    assert IDLE <= took < IDLE + 6, took


def test_slow_but_steady_stream_is_not_cut(fproxy: Proxy) -> None:
    # chunks every 0.3 s for ~3 s: longer than the idle limit in total, never silent that long
    api = APIS[1]
    r = call(fproxy, api, "SIM:slow=300 SIM:chunks=10", True, timeout=60)
    events = sse_events(r.text)
    assert events[-1][0] == "message_stop", r.text[-300:]


class RawUpstream:
    """A TCP server on loopback that misbehaves: `mode` says how."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/20250206/app/litellm"

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                conn.recv(65536)
            if self.mode == "close":
                conn.close()
            elif self.mode == "garbage":
                with contextlib.suppress(OSError):
                    conn.sendall(b"\x00\x01 this is not HTTP \xff\r\n\r\n")
                conn.close()
            elif self.mode == "reset":
                conn.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                conn.close()
            # "silent": keep it open, say nothing

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.mark.parametrize("mode", ["refused", "close", "reset", "garbage", "silent"])
def test_misbehaving_upstream_servers(sim: Sim, tmp_path: Path, mode: str) -> None:
    raw = None if mode == "refused" else RawUpstream(mode)
    base = raw.base_url if raw else f"http://127.0.0.1:{free_port()}/20250206/app/litellm"
    p = start_proxy(sim, tmp_path / mode, options={**OPTIONS, "oca_base_url": base})
    try:
        for api in (APIS[0], APIS[1], APIS[3]):
            for stream in (False, True):
                t = time.time()
                r = call(p, api, "hello", stream)
                status, message = api_error(r, api.flavor)
                assert time.time() - t < IDLE + 6
                if mode == "silent":
                    assert status == 504 and "sent nothing" in message, message
                else:
                    assert status == 502, (status, message)
                    assert "could not get an answer from OCA" in message, message
        assert p.health()["status"] == "ok"
        assert p.health()["inflight"] == 0
    finally:
        p.stop()
        if raw:
            raw.close()


# -- clients that go away ------------------------------------------------------------------


def established_to(port: int) -> int:
    """Established TCP connections whose local end is `port` (the simulator's side)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "01":
                    n += 1
    return n


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until(cond: Any, timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return bool(cond())


def test_client_disconnect_closes_upstream_and_leaks_nothing(tmp_path: Path) -> None:
    own_sim = start_sim()  # its connection count is this test's alone
    own_sim.config(serves_completions=True)  # completions stream natively here
    p = start_proxy(own_sim, tmp_path / "h", settings=MAPPING, options=OPTIONS)
    sim_port = int(own_sim.url.rsplit(":", 1)[1])
    try:
        call(p, APIS[0], "warm up", False)  # catalog loaded, token fresh
        assert wait_until(lambda: established_to(sim_port) == 0)
        fds_before = open_fds(p.proc.pid)
        for api in APIS:
            with (
                httpx.Client(timeout=30) as c,
                c.stream(
                    "POST", f"{p.url}{api.path}", json=api.body("SIM:slow=300 SIM:chunks=60", True)
                ) as r,
            ):
                assert r.status_code == 200
                lines = r.iter_lines()
                got = [next(lines) for _ in range(3)]
                assert any(x.startswith("data:") for x in got)
                assert established_to(sim_port) == 1
                assert p.health()["inflight"] == 1
            # the client is gone: OCA's connection goes too, mid-answer
            assert wait_until(lambda: established_to(sim_port) == 0, 5), api.name
            assert wait_until(lambda: p.health()["inflight"] == 0, 5), api.name

        # many at once
        def one(i: int) -> None:
            api = APIS[i % len(APIS)]
            with (
                httpx.Client(timeout=30) as c,
                c.stream(
                    "POST", f"{p.url}{api.path}", json=api.body("SIM:slow=200 SIM:chunks=80", True)
                ) as r,
            ):
                next(r.iter_lines())

        threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert wait_until(lambda: established_to(sim_port) == 0, 10)
        assert wait_until(lambda: p.health()["inflight"] == 0, 10)
        assert wait_until(lambda: open_fds(p.proc.pid) <= fds_before, 10), (
            open_fds(p.proc.pid),
            fds_before,
        )
        # and it still serves
        r = call(p, APIS[1], "still there?", True)
        assert sse_events(r.text)[-1][0] == "message_stop"
    finally:
        p.stop()
        own_sim.proc.terminate()


def test_connection_stays_usable_after_a_broken_stream(fproxy: Proxy) -> None:
    # The terminal error event ends the answer cleanly, so the client's keep-alive connection
    # is reused for the next request: it must work (no reset racing the next request).
    failures = 0
    with httpx.Client(timeout=30) as c:
        for i in range(30):
            api = APIS[i % len(APIS)]
            fault = ("SIM:cut", "SIM:midstream_error", "SIM:garbage")[i % 3]
            try:
                r = c.post(f"{fproxy.url}{api.path}", json=api.body(f"{fault} SIM:chunks=6", True))
                terminal_error(api, r.text)
                r = c.post(f"{fproxy.url}{api.path}", json=api.body("and now?", True))
                assert r.status_code == 200
            except httpx.HTTPError:
                failures += 1
    assert failures == 0
