"""Issue 14 (Hardening II) through a real mitmdump: an oversized body, secrets in logs and
flows, frame protection on every page, bad input, private files, forged log lines, huge
headers. The token file cases are in test_login.py and test_tokens.py."""

from __future__ import annotations

import contextlib
import json
import socket
import stat
import time
from typing import Any

import httpx
import openai
import pytest
from conftest import Proxy

MAX_BODY = 1_000_000
MAPPING = {"model_mapping": {"claude-sonnet-4-6": "oca/gpt-4.1"}, "default_model": "oca/gpt-4.1"}


def test_huge_body_gets_its_413_at_once_and_the_connection_closes(proxy_factory: Any) -> None:
    """Issue 14.3: far more than the socket buffers hold; the SDK used to wait forever."""
    p: Proxy = proxy_factory(options={"oca_max_body": str(MAX_BODY)})
    c = openai.OpenAI(base_url=f"{p.url}/v1", api_key="x", max_retries=0, timeout=20)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as e:
        c.chat.completions.create(
            model="oca/gpt-4.1", messages=[{"role": "user", "content": "a" * 40_000_000}]
        )
    assert e.value.status_code == 413 and time.monotonic() - started < 10
    # on a raw socket: the 413, then the end of the connection
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Content-Type: application/json\r\nContent-Length: 40000000\r\n\r\n" % p.port
        )
        with contextlib.suppress(OSError):
            s.sendall(b"a" * 20_000_000)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):  # a hang here is the bug (socket timeout: 10 s)
                data += chunk
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert p.health()["status"] == "ok"


# -- 14.2: secrets out of logs and flows ----------------------------------------------------

PROXY_KEY = "pk-secret-4567-proxykey"
CLIENT_KEY = "ck-secret-client-apikey-99"
CLIENT_BEARER = "cb-secret-client-bearer-77"
CHAT = {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}


def _secrets_in(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return [s for s in (PROXY_KEY, CLIENT_KEY, CLIENT_BEARER, "sim-at-", "sim-rt-") if s in text]


def _aborted_body(p: Proxy, headers: bytes) -> None:
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s"
            b'Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"mo'
            % (p.port, headers)
        )
        time.sleep(0.3)


def test_debug_logs_and_saved_flows_hold_no_secrets(proxy_factory: Any, tmp_path: Any) -> None:
    flows = tmp_path / "flows.mitm"
    p: Proxy = proxy_factory(
        options={
            "proxy_debug": "true",
            "termlog_verbosity": "debug",
            "oca_proxy_api_key": PROXY_KEY,
            "oca_max_body": str(MAX_BODY),
        },
        mitm_args=["-w", str(flows), "--flow-detail", "4"],
    )
    ok = httpx.post(
        f"{p.url}/v1/chat/completions",
        json=CHAT,
        headers={"x-api-key": PROXY_KEY, "authorization": f"Bearer {CLIENT_BEARER}"},
        timeout=30,
    )
    assert ok.status_code == 200, ok.text  # the key check still sees the real key
    ok = httpx.post(
        f"{p.url}/v1/chat/completions",
        json=CHAT,
        headers={"authorization": f"Bearer {PROXY_KEY}", "x-api-key": CLIENT_KEY},
        timeout=30,
    )
    assert ok.status_code == 200, ok.text
    bad = httpx.post(
        f"{p.url}/v1/chat/completions", json=CHAT, headers={"x-api-key": CLIENT_KEY}, timeout=30
    )
    assert bad.status_code == 401
    big = httpx.post(  # fails before the request hook
        f"{p.url}/v1/chat/completions",
        content=b"x" * (MAX_BODY + 1),
        headers={"x-api-key": PROXY_KEY, "authorization": f"Bearer {CLIENT_BEARER}"},
        timeout=30,
    )
    assert big.status_code == 413
    _aborted_body(p, b"x-api-key: %s\r\n" % PROXY_KEY.encode())
    time.sleep(0.5)
    p.stop()
    log = p.log()
    assert "DataReceived(client" in log and "SendData(server" in log  # the debug lines ran
    assert not _secrets_in(log), [line for line in log.splitlines() if _secrets_in(line)][:5]
    assert "<redacted>" in log
    data = flows.read_bytes()
    assert not _secrets_in(data)
    from mitmproxy import io

    with flows.open("rb") as f:
        saved = list(io.FlowReader(f).stream())
    assert len(saved) >= 5
    for flow in saved:
        for name in ("x-api-key", "authorization"):
            for value in flow.request.headers.get_all(name):
                assert "<redacted>" in value, (flow.request.path, name, value)


def test_mitmweb_live_updates_hold_no_client_keys(sim: Any, tmp_path: Any) -> None:
    """The flow appears in mitmweb at its request head, long before the request hook."""
    from conftest import free_port
    from test_security import start_mitmweb

    web_port = free_port()
    p = start_mitmweb(sim, tmp_path / "web", web_port)
    web = f"http://127.0.0.1:{web_port}"
    body = json.dumps(CHAT).encode()
    try:
        with socket.create_connection(("127.0.0.1", p.port), timeout=30) as s:
            s.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                b"x-api-key: %s\r\nauthorization: Bearer %s\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (p.port, CLIENT_KEY.encode(), CLIENT_BEARER.encode(), len(body))
            )
            time.sleep(1.0)  # the body is late: the flow sits at its request head
            during = httpx.get(f"{web}/flows?token=test-web-pw", timeout=10)
            s.sendall(body)
            assert s.recv(100).startswith(b"HTTP/1.1 200")
        after = httpx.get(f"{web}/flows/dump?token=test-web-pw", timeout=10)
    finally:
        p.stop()
    assert "/chat/completions" in during.text
    assert not _secrets_in(during.content) and not _secrets_in(after.content)


# -- 14.4: frame protection on everything the proxy serves ------------------------------------


def _framed_ok(r: httpx.Response) -> None:
    where = f"{r.request.method} {r.request.url.path} -> {r.status_code}"
    assert r.headers.get("x-frame-options") == "DENY", where
    csp = r.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp and csp.count("frame-ancestors") == 1, (where, csp)


def test_every_page_forbids_framing(proxy_factory: Any) -> None:
    p: Proxy = proxy_factory(options={"oca_max_body": str(MAX_BODY)})
    with httpx.Client(base_url=p.url, timeout=30) as c:
        dashboard = c.get("/")
        assert "script-src" in dashboard.headers["content-security-policy"]  # merged, not lost
        answers = [
            dashboard,
            c.head("/"),
            c.get("/health"),
            c.get("/login"),
            c.get("/callback?code=x&state=nope"),
            c.get("/logout"),
            c.post("/logout", data={"csrf": "wrong"}),
            c.get("/api/state"),
            c.get("/api/settings"),
            c.get("/nothing-here"),
            c.get("/health", headers={"host": "evil.example"}),  # refused: DNS rebinding
            c.post(
                "/v1/chat/completions",
                content=b"{nope",
                headers={"content-type": "application/json"},
            ),
            c.post("/v1/chat/completions", content=b"x" * (MAX_BODY + 1)),  # mitmproxy's 413
            c.get("/v1/models"),
        ]
    for r in answers:
        _framed_ok(r)
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")  # mitmproxy's own 400
        head = s.recv(4096).lower()
    assert b"x-frame-options: deny" in head and b"frame-ancestors 'none'" in head


# -- 14.5 and the rest: bad input ---------------------------------------------------------------


def _raw(p: Proxy, data: bytes, chunk: int = 1 << 20) -> bytes:
    out = b""
    with socket.create_connection(("127.0.0.1", p.port), timeout=20) as s:
        with contextlib.suppress(OSError):
            for i in range(0, len(data), chunk):
                s.sendall(data[i : i + chunk])
        with contextlib.suppress(OSError):
            while part := s.recv(65536):  # the connection must end (socket timeout: 20 s)
                out += part
    return out


def test_huge_headers_get_a_431(proxy_factory: Any) -> None:
    p: Proxy = proxy_factory()
    start = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % p.port
    one_huge = start + b"x-big: " + b"a" * (32 * 1024 * 1024) + b"\r\n\r\n"
    many = start + b"".join(b"x-h%d: v\r\n" % i for i in range(20_000)) + b"\r\n"
    many_small = start + b"".join(b"a:\r\n" for _ in range(300)) + b"\r\n"
    for data in (one_huge, many, many_small):
        answer = _raw(p, data)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        body = json.loads(answer.partition(b"\r\n\r\n")[2])
        assert "oca_max_header" in body["error"]["message"]
    # an ordinary request with a generous head still works
    ok = httpx.post(
        f"{p.url}/v1/chat/completions",
        json=CHAT,
        headers={f"x-h{i}": "v" * 100 for i in range(100)},
        timeout=30,
    )
    assert ok.status_code == 200
    assert p.health()["status"] == "ok"


def test_control_characters_cannot_forge_log_lines(proxy_factory: Any) -> None:
    p: Proxy = proxy_factory(settings={"model_mapping": {"forge*": "oca/gpt-4.1"}})
    forged = "INFO FORGED LINE"
    for path in ("/v1/chat/completions", "/v1/messages"):
        body: dict[str, Any] = {
            "model": f"forge\n[00:00:00.000] {forged}\x1b[2J",
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 5,
        }
        httpx.post(f"{p.url}{path}", json=body, timeout=30)
    time.sleep(0.5)  # the traffic log is batched
    log = p.log()
    assert forged in log  # the text is there, escaped within its own line
    assert not [line for line in log.splitlines() if line.startswith(("[00:00:00.000]", forged))]
    assert "\x1b" not in log


def test_token_folder_private_from_the_first_moment(proxy_factory: Any) -> None:
    p: Proxy = proxy_factory(logged_in=False)
    r = httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=30)
    assert r.status_code == 401
    folder = p.token_file.parent
    assert folder.is_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    lock = folder / "refresh_token.json.lock"
    assert lock.exists() and stat.S_IMODE(lock.stat().st_mode) == 0o600
