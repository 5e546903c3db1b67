"""Issue 14 (Hardening II) through a real mitmdump: an oversized body, secrets in logs and
flows, frame protection on every page, bad input, private files, forged log lines, huge
headers. The token file cases are in test_login.py and test_tokens.py."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from typing import Any

import httpx
import openai
import pytest
from conftest import Proxy

MAX_BODY = 1_000_000
MAPPING = {"model_mapping": {"claude-sonnet-4-5": "oca/gpt-4.1"}, "default_model": "oca/gpt-4.1"}


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
