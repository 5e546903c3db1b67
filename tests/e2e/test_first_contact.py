"""Issue 12, "Real OCA on first contact", through a running mitmdump and the simulator:
the model list is never a gate, refusals leave a trace, legacy completions fall back."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from conftest import Proxy, Sim, start_proxy, start_sim

from oca_addon.sim.config import GUESSES_ENV, guesses_on


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


# -- against the published sample, served verbatim ---------------------------------------------

SAMPLE_FILE = Path(__file__).parents[1] / "fixtures" / "oca_model_info_sample.json"
# A Claude model as OCA might list it: caches prompts, takes thinking budgets, chat only (so
# Anthropic clients are translated: that is where the proxy must carry cache_control over).
CACHING_CLAUDE = {
    "model_name": "Claude Sonnet (chat)",
    "litellm_params": {"model": "oca/claude-chat", "max_tokens": 200000},
    "model_info": {
        "context_window": 200000,
        "max_output_tokens": 64000,
        "supports_vision": True,
        "is_reasoning_model": True,
        "reasoning_effort_options": ["low", "medium", "high"],
        "supported_api_list": ["CHAT_COMPLETIONS"],
        "supports_caching": True,
        "thinking_config": {"max_budget": 32000},
        "banner": "<div><b>Notice:</b> usage of this model is logged.</div>",
    },
}


@pytest.fixture(scope="module")
def sample_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    sample = json.loads(SAMPLE_FILE.read_text())
    payload = tmp_path_factory.mktemp("sample") / "model_info.json"
    # The published entry exactly as documented, and a second entry beside it.
    payload.write_text(json.dumps({"data": [*sample["data"], CACHING_CLAUDE]}))
    s = start_sim("--model-info", str(payload))
    yield s
    s.proc.terminate()
    s.proc.wait(10)


@pytest.fixture(scope="module")
def sample_proxy(sample_sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    p = start_proxy(
        sample_sim,
        tmp_path_factory.mktemp("sample-proxy"),
        settings={"model_mapping": {"claude-sonnet-4-6": "oca/claude-chat"}},
    )
    yield p
    p.stop()


def sim_requests(sim: Sim, path: str) -> list[dict[str, Any]]:
    reqs = httpx.get(f"{sim.url}/__sim/requests", params={"path": path}, timeout=10).json()
    return reqs["requests"] if isinstance(reqs, dict) else reqs


def test_sample_models_list_ids_and_a_request_reaches_oca_with_that_id(sample_proxy: Proxy) -> None:
    c = client(sample_proxy)
    ids = [m.id for m in c.models.list().data]
    assert "oca/gpt-4.1" in ids and "OpenAI GPT 4.1" not in ids
    out = c.chat.completions.create(
        model="oca/gpt-4.1", messages=[{"role": "user", "content": "hello"}]
    )
    assert out.choices[0].message.content
    sent = sim_requests(sample_proxy.sim, "/chat/completions")[-1]
    assert sent["body"]["model"] == "oca/gpt-4.1"
    # The display name works as a model name too, and reaches OCA as the id.
    c.chat.completions.create(
        model="OpenAI GPT 4.1", messages=[{"role": "user", "content": "by name"}]
    )
    assert sim_requests(sample_proxy.sim, "/chat/completions")[-1]["body"]["model"] == "oca/gpt-4.1"


def test_client_headers_on_every_upstream_request(sample_proxy: Proxy) -> None:
    c = client(sample_proxy)
    c.chat.completions.create(model="oca/gpt-4.1", messages=[{"role": "user", "content": "h"}])
    sent = sim_requests(sample_proxy.sim, "/chat/completions")[-1]["headers"]
    assert sent["client"] == "oca-addon" and sent["client-version"]
    info = sim_requests(sample_proxy.sim, "/v1/model/info")
    assert info and info[-1]["headers"]["client"] == "oca-addon"
    # A tool that names itself keeps its own name.
    httpx.post(
        f"{sample_proxy.url}/v1/chat/completions",
        json={"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "h"}]},
        headers={"client": "cline", "client-version": "3.0"},
        timeout=30,
    )
    sent = sim_requests(sample_proxy.sim, "/chat/completions")[-1]["headers"]
    assert (sent["client"], sent["client-version"]) == ("cline", "3.0")


def test_sample_model_serves_responses_natively_and_lists_no_efforts(sample_proxy: Proxy) -> None:
    c = client(sample_proxy)
    r = c.responses.create(model="oca/gpt-4.1", input="hi", reasoning={"effort": "high"})
    assert r.output_text
    sent = sim_requests(sample_proxy.sim, "/responses")[-1]["body"]
    assert sent["model"] == "oca/gpt-4.1"
    assert "effort" not in (sent.get("reasoning") or {})  # the model lists no efforts


def test_prompt_caching_and_thinking_reach_a_translated_claude(sample_proxy: Proxy) -> None:
    a = anthropic.Anthropic(base_url=sample_proxy.url, api_key="dummy", max_retries=0)
    system = [
        {"type": "text", "text": "You are terse. " * 200, "cache_control": {"type": "ephemeral"}}
    ]
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 8000,
        "system": system,
        "thinking": {"type": "enabled", "budget_tokens": 4000},
        "messages": [{"role": "user", "content": "hello"}],
    }
    first = a.messages.create(**body)
    sent = sim_requests(sample_proxy.sim, "/chat/completions")[-1]["body"]
    assert sent["model"] == "oca/claude-chat"
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 4000}
    assert "reasoning_effort" not in sent
    assert sent["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert first.usage.cache_creation_input_tokens
    again = a.messages.create(**body)  # the same prefix: read from the cache
    assert again.usage.cache_read_input_tokens


def test_dashboard_shows_display_names_and_banners(sample_proxy: Proxy) -> None:
    client(sample_proxy).models.list()  # the model list is fetched
    models = httpx.get(f"{sample_proxy.url}/api/state", timeout=10).json()["models"]
    by_id = {m["name"]: m for m in models}
    assert by_id["oca/gpt-4.1"]["display_name"] == "OpenAI GPT 4.1"
    assert by_id["oca/claude-chat"]["banner"] == "Notice: usage of this model is logged."
    assert by_id["oca/gpt-4.1"]["banner"] == "..."


def test_a_completions_body_only_ocas_endpoint_takes_gets_ocas_refusal(proxy: Proxy) -> None:
    # Native /completions is tried first; when OCA refuses and the body cannot be
    # translated (a prompt of token ids), OCA's refusal reaches the client and the proxy
    # keeps no call open.
    proxy.sim.config(serves_completions=False)
    try:
        r = httpx.post(
            f"{proxy.url}/v1/completions",
            json={"model": "oca/gpt-4.1", "prompt": [1, 2, 3]},
            timeout=30,
        )
    finally:
        proxy.sim.config(
            serves_completions="serves_completions" in guesses_on(os.environ.get(GUESSES_ENV))
        )
    assert r.status_code == 404 and "OCA answered 404" in r.json()["error"]["message"]
    assert proxy.health()["inflight"] == 0


def test_a_refused_completions_model_goes_translated_from_then_on(sim: Sim, tmp_path: Path) -> None:
    p = start_proxy(sim, tmp_path / "home", options={"oca_completions_refusal_ttl": "3600"})
    sim.config(serves_completions=False)
    try:
        c = client(p)
        native_calls = len(sim_requests(sim, "/litellm/completions"))
        assert c.completions.create(model="oca/llama-4", prompt="one").choices[0].text
        assert len(sim_requests(sim, "/litellm/completions")) == native_calls + 1  # refused
        # Remembered: the next calls go translated at once, streamed by mitmproxy itself.
        stream = c.completions.create(model="oca/llama-4", prompt="two", stream=True)
        assert "".join(ch.choices[0].text for ch in stream if ch.choices)
        assert len(sim_requests(sim, "/litellm/completions")) == native_calls + 1
        assert sim_requests(sim, "/chat/completions")[-1]["body"]["messages"][0]["content"] == "two"
    finally:
        sim.config(
            serves_completions="serves_completions" in guesses_on(os.environ.get(GUESSES_ENV))
        )
        p.stop()


def test_the_one_completions_retry_fails_in_the_clients_shape(proxy: Proxy) -> None:
    # OCA refuses /completions, and then the translated retry breaks: the client still
    # gets its API's error (a 502 JSON error, or the terminal event of its stream).
    proxy.sim.config(serves_completions=False)
    try:
        url = f"{proxy.url}/v1/completions"
        html = httpx.post(url, json={"model": "oca/gpt-4.1", "prompt": "SIM:html"}, timeout=30)
        assert html.status_code == 502 and "HTML" in html.json()["error"]["message"]
        html_stream = httpx.post(
            url, json={"model": "oca/gpt-4.1", "prompt": "SIM:html", "stream": True}, timeout=30
        )
        assert html_stream.status_code == 502 and html_stream.json()["error"]["message"]
        cut = httpx.post(
            url,
            json={"model": "oca/gpt-4.1", "prompt": "SIM:cut SIM:chunks=6", "stream": True},
            timeout=30,
        )
        assert cut.status_code == 200
        events = [line[5:].strip() for line in cut.text.splitlines() if line.startswith("data:")]
        assert events[-1] == "[DONE]"
        # The retry streams through mitmproxy like any call: a cut ends in the terminal event.
        message = json.loads(events[-2])["error"]["message"]
        assert "broke mid-stream" in message, cut.text[-300:]
        assert proxy.health()["inflight"] == 0
    finally:
        proxy.sim.config(
            serves_completions="serves_completions" in guesses_on(os.environ.get(GUESSES_ENV))
        )
