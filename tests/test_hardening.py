"""Issue 14 (Hardening II) through a real mitmdump: an oversized body, secrets in logs and
flows, frame protection on every page, bad input, private files, forged log lines, huge
headers. The token file cases are in test_login.py and test_tokens.py."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

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
