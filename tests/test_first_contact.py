"""Issue 12, "Real OCA on first contact", through a running mitmdump and the simulator:
the model list is never a gate, refusals leave a trace, legacy completions fall back."""

from __future__ import annotations

import time

import httpx
import openai
from conftest import Proxy


def client(proxy: Proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="dummy", max_retries=0)


def recent(proxy: Proxy) -> list[dict]:
    return httpx.get(f"{proxy.url}/api/state", timeout=10).json()["recent"]


def wait_for_log(proxy: Proxy, text: str, timeout: float = 5.0) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        log = proxy.log()
        if text in log:
            return log
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the proxy log:\n{proxy.log()[-3000:]}")


def test_refused_calls_leave_a_log_line_and_a_dashboard_row(proxy: Proxy) -> None:
    r = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        content=b"{broken",
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 400
    wait_for_log(proxy, "400 POST /v1/chat/completions")
    r = httpx.post(
        f"{proxy.url}/v1/messages",
        json={"model": "claude-x", "max_tokens": 5, "messages": "not a list"},
        timeout=10,
    )
    assert r.status_code == 400
    log = wait_for_log(proxy, "400 POST /v1/messages")
    assert "refused by oca-proxy" in log
    rows = [row for row in recent(proxy) if row["route"] == "refused"]
    assert {(row["path"], row["status"]) for row in rows} >= {
        ("/v1/chat/completions", 400),
        ("/v1/messages", 400),
    }
    messages_row = next(row for row in rows if row["path"] == "/v1/messages")
    assert messages_row["requested_model"] == "claude-x" and messages_row["error"]


def test_wrong_host_refusal_is_traced_too(proxy: Proxy) -> None:
    r = httpx.get(f"{proxy.url}/health", headers={"host": "evil.example"}, timeout=10)
    assert r.status_code == 403
    wait_for_log(proxy, "403 GET /health")
    assert any(row["status"] == 403 and row["path"] == "/health" for row in recent(proxy))


def test_legacy_completions_fall_back_to_chat_when_oca_refuses_them(proxy: Proxy) -> None:
    # The simulator serves /completions for no model unless its guess is on; either way
    # the client gets an answer: natively, or through chat after OCA's refusal.
    c = client(proxy)
    out = c.completions.create(model="oca/gpt-4.1", prompt="Say hi", max_tokens=20)
    assert out.choices[0].text
    stream = c.completions.create(model="oca/gpt-4.1", prompt="Say hi", stream=True)
    assert "".join(ch.choices[0].text for ch in stream if ch.choices)
