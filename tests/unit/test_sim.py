"""Tests of the OCA simulator (API + IDCS + control endpoints), run in-process on a free port."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from oca_addon.sim import CATALOGUE, SimConfig, SimServer
from oca_addon.sim.config import DEFAULT_CLIENT_IDS
from oca_addon.sim.streams import split_bytes

CLIENT_ID = DEFAULT_CLIENT_IDS[0]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
                "tags": {"type": "array"},
                "note": {"type": "string"},
            },
            "required": ["city", "days", "metric", "tags"],
        },
    },
}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    # Guesses on, whatever OCA_SIM_GUESSES says: these tests pin them down (test_sim_facts
    # covers them switched off).
    config = SimConfig(port=0, allow_any_redirect_port=True)
    config.set_guesses("all")
    with SimServer(config) as server:
        yield server


@pytest.fixture(autouse=True)
def default_knobs(sim: SimServer) -> Iterator[None]:
    yield
    sim.admin(
        "config",
        {
            "token_ttl": 3600,
            "refresh_delay": 0,
            "fail_refresh": False,
            "rotate_refresh_tokens": True,
            "deny_login": False,
            "allow_any_redirect_port": True,
            "empty_final_output": False,
            "reasoning_field": "reasoning_content",
            "error_shape": "litellm",
            "lost_login": "invalid_grant",
            "model_info": None,
            "refusals": {},
            "guesses": "all",
        },
    )


@pytest.fixture
def client(sim: SimServer) -> Iterator[httpx.Client]:
    token = sim.mint()["access_token"]
    with httpx.Client(
        base_url=sim.api_base, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as c:
        yield c


# --- SSE helpers -------------------------------------------------------------------


def parse_sse(raw: bytes) -> list[tuple[str | None, str]]:
    """Frames as (event, data). Splits on bytes, never str.splitlines (U+2028!)."""
    frames = []
    for block in raw.split(b"\n\n"):
        if not block.strip():
            continue
        event, data = None, []
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                event = line[7:].decode()
            elif line.startswith(b"data: "):
                data.append(line[6:])
        frames.append((event, b"\n".join(data).decode("utf-8")))
    return frames


def stream(client: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    resp = client.post(path, json={"stream": True, **body})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    return resp


def chat_chunks(resp: httpx.Response) -> list[dict[str, Any]]:
    frames = parse_sse(resp.content)
    assert frames[-1] == (None, "[DONE]")
    return [json.loads(data) for _, data in frames[:-1]]


def chat(client: httpx.Client, text: str, **extra: Any) -> list[dict[str, Any]]:
    body = {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": text}], **extra}
    return chat_chunks(stream(client, "/chat/completions", body))


def content_of(chunks: list[dict[str, Any]], key: str = "content") -> str:
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks if c["choices"])


def events(resp: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for event, data in parse_sse(resp.content):
        assert event is not None
        payload = json.loads(data)
        assert payload["type"] == event
        out.append((event, payload))
    return out


# --- model info ---------------------------------------------------------------------


def test_model_info_shape(client: httpx.Client) -> None:
    resp = client.get("/v1/model/info")
    assert resp.status_code == 200
    data = resp.json()["data"]
    # The id is litellm_params.model; model_name is a display name (OCA-FACTS).
    assert [m["litellm_params"]["model"] for m in data] == [m.id for m in CATALOGUE]
    assert [m["model_name"] for m in data] == [m.display_name for m in CATALOGUE]
    by_id = {m["litellm_params"]["model"]: m for m in data}
    gpt41 = by_id["oca/gpt-4.1"]
    assert gpt41["model_name"] == "OpenAI GPT 4.1"
    assert gpt41["litellm_params"]["max_tokens"] == 1047576
    info = gpt41["model_info"]
    assert info["context_window"] == 1047576 and info["max_output_tokens"] == 32768
    assert info["supported_api_list"] == ["RESPONSES", "CHAT_COMPLETIONS"]
    assert info["supports_vision"] is True and info["is_reasoning_model"] is False
    assert info["banner"] and info["survey_id"] == "survey_3.01"
    gpt5 = by_id["oca/gpt-5"]["model_info"]
    assert gpt5["supported_api_list"] == ["responses", "CHAT_COMPLETIONS"]  # case varies
    assert gpt5["reasoning_effort_options"] == ["low", "medium", "high"]
    assert by_id["oca/gpt-5-codex"]["model_info"]["supported_api_list"] == ["RESPONSES"]
    claude = by_id["oca/claude-sonnet-4"]["model_info"]
    assert "MESSAGES" in claude["supported_api_list"]
    assert claude["supports_caching"] is True and claude["thinking_config"]["max_budget"] > 0
    opus = by_id["oca/claude-opus-4"]
    assert opus["model_name"] == "Claude Opus 4"
    assert opus["model_info"]["supported_api_list"] == ["MESSAGES"]
    assert opus["model_info"]["supports_caching"] is True
    assert opus["model_info"]["thinking_config"] == claude["thinking_config"]
    assert opus["model_info"]["supports_vision"] is True
    assert by_id["oca/llama-4"]["model_info"]["max_output_tokens"] == 4096
    assert by_id["oca/llama-4"]["model_info"]["supports_vision"] is False
    grok = by_id["oca/grok3"]
    assert grok["model_name"] == "Grok 3" and grok["model_info"]["max_output_tokens"] == 16000
    assert "supported_api_list" not in by_id["oca/mistral-large"]["model_info"]
    # Only the API labels a source shows.
    listed = {a.upper() for m in data for a in m["model_info"].get("supported_api_list") or []}
    assert listed == {"CHAT_COMPLETIONS", "RESPONSES", "MESSAGES"}
    for alias in ("/models", "/model/info"):
        assert client.get(alias).json() == resp.json()


# --- chat ----------------------------------------------------------------------------


def test_chat_text_stream_and_usage(client: httpx.Client) -> None:
    chunks = chat(client, "hi there", stream_options={"include_usage": True})
    *deltas, usage_chunk = chunks
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert deltas[0]["choices"][0]["delta"]["role"] == "assistant"
    assert content_of(chunks) == "Hello from the OCA simulator (oca/gpt-4.1). You said: hi there"
    text_deltas = [c for c in deltas if c["choices"][0]["delta"].get("content")]
    assert len(text_deltas) == 10
    assert deltas[-1]["choices"][0]["finish_reason"] == "stop"
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["completion_tokens"] == 10
    assert usage["total_tokens"] == usage["prompt_tokens"] + 10
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["cache_read_input_tokens"] == 0


def test_chat_without_include_usage_has_no_usage_chunk(client: httpx.Client) -> None:
    chunks = chat(client, "hello")
    assert all(c["choices"] for c in chunks)


def test_chat_long_prompt_without_breakpoints_reads_no_cache(client: httpx.Client) -> None:
    chunks = chat(client, "x" * 8000, stream_options={"include_usage": True})
    usage = chunks[-1]["usage"]
    assert usage["prompt_tokens"] > 1000
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["cache_read_input_tokens"] == usage["cache_creation_input_tokens"] == 0


def test_chat_tool_call_fragments_reassemble(client: httpx.Client) -> None:
    chunks = chat(client, "weather? SIM:tool=get_weather", tools=[WEATHER_TOOL])
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"]["name"] == "get_weather"
    fragments = [tc["function"]["arguments"] for tc in calls[1:]]
    assert len(fragments) > 1 and all(tc["index"] == 0 for tc in calls)
    assert json.loads("".join(fragments)) == {"city": "sim", "days": 1, "metric": True, "tags": []}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_chat_tool_call_with_explicit_args(client: httpx.Client) -> None:
    text = 'SIM:tool=get_weather SIM:args={"city":"Paris","days":3}'
    chunks = chat(client, text, tools=[WEATHER_TOOL])
    args = "".join(
        tc["function"]["arguments"]
        for c in chunks
        for tc in c["choices"][0]["delta"].get("tool_calls") or []
    )
    assert json.loads(args) == {"city": "Paris", "days": 3}


def test_chat_unoffered_tool_answers_text(client: httpx.Client) -> None:
    chunks = chat(client, "SIM:tool=Get_Weather", tools=[WEATHER_TOOL])  # case-sensitive
    assert "Hello from the OCA simulator" in content_of(chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_chat_parallel_tool_calls(client: httpx.Client) -> None:
    tools = [
        {"type": "function", "function": {"name": f"tool{i}", "parameters": {}}} for i in range(4)
    ]
    tools[1]["function"]["parameters"] = WEATHER_TOOL["function"]["parameters"]
    chunks = chat(client, "SIM:parallel", tools=tools)
    calls: dict[int, dict[str, str]] = {}
    order = []
    for c in chunks:
        for tc in c["choices"][0]["delta"].get("tool_calls") or []:
            entry = calls.setdefault(tc["index"], {"name": "", "args": ""})
            entry["name"] += tc.get("function", {}).get("name", "")
            entry["args"] += tc["function"]["arguments"]
            order.append(tc["index"])
    assert sorted(calls) == [0, 1, 2]
    assert [calls[i]["name"] for i in range(3)] == ["tool0", "tool1", "tool2"]
    assert json.loads(calls[1]["args"])["city"] == "sim"
    assert json.loads(calls[0]["args"]) == {}
    # Argument fragments are interleaved across calls, not call after call.
    assert order != sorted(order)


def test_chat_tool_result_round_trip(client: httpx.Client) -> None:
    messages = [
        {"role": "user", "content": "SIM:tool=get_weather"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C " + "y" * 300},
    ]
    body = {"model": "oca/gpt-4.1", "messages": messages, "tools": [WEATHER_TOOL]}
    text = content_of(chat_chunks(stream(client, "/chat/completions", body)))
    assert text == "Tool result received: " + ("sunny, 21C " + "y" * 300)[:200]


def test_chat_reasoning_model_emits_reasoning(client: httpx.Client) -> None:
    body = {
        "model": "oca/gpt-5",
        "messages": [{"role": "user", "content": "think"}],
        "reasoning_effort": "high",
    }
    chunks = chat_chunks(stream(client, "/chat/completions", body))
    assert content_of(chunks, "reasoning_content").startswith("Thinking about")
    assert "You said: think" in content_of(chunks)
    forced = chat(client, "SIM:reasoning")  # gpt-4.1 is not a reasoning model
    assert content_of(forced, "reasoning_content")
    plain = chat(client, "no reasoning")
    assert content_of(plain, "reasoning_content") == ""


def test_chat_length_and_chunks(client: httpx.Client) -> None:
    chunks = chat(client, "SIM:length")
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    many = chat(client, "SIM:chunks=50")
    assert sum(1 for c in many if c["choices"][0]["delta"].get("content")) == 50
    few = chat(client, "SIM:chunks=3")
    assert sum(1 for c in few if c["choices"][0]["delta"].get("content")) == 3


def test_chat_slow_and_ttft(client: httpx.Client) -> None:
    start = time.monotonic()
    chat(client, "SIM:chunks=3 SIM:slow=60 SIM:ttft=100")
    # ttft + slow between each of >= 4 frames
    assert time.monotonic() - start >= 0.1 + 3 * 0.06


# --- validation ----------------------------------------------------------------------


def test_stream_false_rejected(client: httpx.Client) -> None:
    body = {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
    for stream_value in (False, None):
        resp = client.post(
            "/chat/completions",
            json={**body, "stream": stream_value},
            headers={"opc-request-id": "req-123"},
        )
        assert resp.status_code == 400
        error = resp.json()["error"]
        assert "stream" in error["message"].lower()
        assert error["code"] == "400" and error["type"] == "invalid_request_error"
        assert "req-123" in error["message"]
        assert resp.headers["opc-request-id"] == "req-123"


def test_unknown_model_and_wrong_api(client: httpx.Client) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    for model in ("oca/nope", "gpt-4.1", ""):
        resp = client.post(
            "/chat/completions", json={"model": model, "messages": msgs, "stream": True}
        )
        assert resp.status_code == 400, model
        assert resp.json()["error"]["code"] == "400"
    resp = client.post("/responses", json={"model": "oca/llama-4", "input": "hi", "stream": True})
    assert resp.status_code == 400
    assert "supported_api_list" in resp.json()["error"]["message"]
    resp = client.post(
        "/chat/completions", json={"model": "oca/gpt-5-codex", "messages": msgs, "stream": True}
    )
    assert resp.status_code == 400


def test_invalid_json_and_limits(client: httpx.Client) -> None:
    resp = client.post("/chat/completions", content=b"{not json")
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "invalid_request_error"
    assert resp.headers["opc-request-id"]
    body = {
        "model": "oca/llama-4",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "max_tokens": 8192,
    }
    resp = client.post("/chat/completions", json=body)
    assert resp.status_code == 400 and "4096" in resp.json()["error"]["message"]
    body = {"model": "oca/gpt-5", "input": "hi", "stream": True, "reasoning": {"effort": "max"}}
    assert client.post("/responses", json=body).status_code == 400


def test_image_rules(client: httpx.Client) -> None:
    def msg(image_url: dict[str, Any]) -> list[dict[str, Any]]:
        parts = [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": image_url},
        ]
        return [{"role": "user", "content": parts}]

    url = {"url": "data:image/png;base64,iVBORw0KGgo="}
    ok = client.post(
        "/chat/completions", json={"model": "oca/gpt-4.1", "messages": msg(url), "stream": True}
    )
    assert ok.status_code == 200
    detail = client.post(
        "/chat/completions",
        json={"model": "oca/gpt-4.1", "messages": msg({**url, "detail": "high"}), "stream": True},
    )
    assert detail.status_code == 400 and "detail" in detail.json()["error"]["message"]
    no_vision = client.post(
        "/chat/completions", json={"model": "oca/llama-4", "messages": msg(url), "stream": True}
    )
    assert no_vision.status_code == 400


def test_bad_token_401(sim: SimServer) -> None:
    body = {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        resp = httpx.post(f"{sim.api_base}/chat/completions", json=body, headers=headers)
        assert resp.status_code == 401
        error = resp.json()["error"]
        assert error["type"] == "authentication_error" and error["code"] == "401"
        assert resp.headers["opc-request-id"] in error["message"]
    assert httpx.get(f"{sim.api_base}/v1/model/info").status_code == 401


def test_token_expiry_and_revocation(sim: SimServer) -> None:
    sim.admin("config", {"token_ttl": 0.5})
    token = sim.mint()["access_token"]
    url = f"{sim.api_base}/v1/model/info"
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(url, headers=headers).status_code == 200
    time.sleep(0.6)
    assert httpx.get(url, headers=headers).status_code == 401
    sim.admin("config", {"token_ttl": 3600})
    token = sim.mint()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(url, headers=headers).status_code == 200
    sim.admin("config", {"revoke_access_tokens": True})
    assert httpx.get(url, headers=headers).status_code == 401


# --- failure directives ------------------------------------------------------------


def test_error_directive_429_retry_after(client: httpx.Client) -> None:
    body = {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "SIM:error=429"}]}
    resp = client.post("/chat/completions", json={**body, "stream": True})
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "2"
    assert resp.json()["error"]["code"] == "429"
    assert resp.json()["error"]["type"] == "rate_limit_error"
    body["messages"][0]["content"] = "SIM:error=503"
    resp = client.post("/chat/completions", json={**body, "stream": True})
    assert resp.status_code == 503 and "retry-after" not in resp.headers


def test_split_still_parses(client: httpx.Client) -> None:
    body = {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "SIM:split"}]}
    raw_chunks: list[bytes] = []
    with client.stream("POST", "/chat/completions", json={**body, "stream": True}) as resp:
        assert resp.status_code == 200
        raw_chunks.extend(resp.iter_raw())
    raw = b"".join(raw_chunks)
    frames = parse_sse(raw)
    assert frames[-1] == (None, "[DONE]")
    text = "".join(
        json.loads(d)["choices"][0]["delta"].get("content") or "" for _, d in frames[:-1]
    )
    assert text.startswith("Hello from the OCA simulator")
    assert "\u2028" in text and "🙂" in text
    # The server wrote far more pieces than frames (even if TCP merged some of them).
    assert len(raw_chunks) > 1


def test_split_bytes_cuts_mid_utf8_and_mid_line() -> None:
    data = 'data: {"x":"a\u2028b 漢 🙂"}\n\n'.encode() * 5
    pieces = split_bytes(data)
    assert b"".join(pieces) == data
    assert any(not p.endswith(b"\n") for p in pieces)
    undecodable = 0
    for p in pieces:
        try:
            p.decode("utf-8")
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable > 0


def test_midstream_error(client: httpx.Client) -> None:
    body = {
        "model": "oca/gpt-4.1",
        "messages": [{"role": "user", "content": "SIM:midstream_error"}],
    }
    resp = stream(client, "/chat/completions", body)
    frames = parse_sse(resp.content)
    assert (None, "[DONE]") not in frames
    payloads = [json.loads(d) for _, d in frames]
    assert payloads[0]["object"] == "chat.completion.chunk"
    assert payloads[-1]["error"]["code"] == "500"
    assert all("error" not in p for p in payloads[:-1])


def test_cut_aborts_connection(client: httpx.Client) -> None:
    body = {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "SIM:cut"}]}
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", "/chat/completions", json={**body, "stream": True}) as resp,
    ):
        for part in resp.iter_raw():
            received += part
    assert received.startswith(b"data: ")
    assert b"[DONE]" not in received


def test_html_and_garbage(client: httpx.Client) -> None:
    body = {"model": "oca/gpt-4.1", "stream": True}
    html = client.post(
        "/chat/completions", json={**body, "messages": [{"role": "user", "content": "SIM:html"}]}
    )
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert "<html" in html.text
    garbage = stream(
        client,
        "/chat/completions",
        {**body, "messages": [{"role": "user", "content": "SIM:garbage"}]},
    )
    frames = parse_sse(garbage.content)
    assert frames
    for _, data in frames:
        with pytest.raises(ValueError):
            json.loads(data)


# --- responses -----------------------------------------------------------------------


def test_responses_stream_grammar(client: httpx.Client) -> None:
    body = {
        "model": "oca/gpt-5",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi resp"}]}],
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
    }
    evs = events(stream(client, "/responses", body))
    types = [t for t, _ in evs]
    assert [p["sequence_number"] for _, p in evs] == list(range(len(evs)))
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert "response.reasoning_summary_text.delta" in types
    for required in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert required in types
    deltas = "".join(p["delta"] for t, p in evs if t == "response.output_text.delta")
    done = next(p for t, p in evs if t == "response.output_text.done")
    assert deltas == done["text"] == "Hello from the OCA simulator (oca/gpt-5). You said: hi resp"
    final = evs[-1][1]["response"]
    assert final["id"].startswith("resp_") and final["object"] == "response"
    assert final["status"] == "completed" and final["model"] == "oca/gpt-5"
    assert [i["type"] for i in final["output"]] == ["reasoning", "message"]
    assert final["output"][0]["encrypted_content"]
    assert final["output"][1]["content"][0]["text"] == deltas
    usage = final["usage"]
    assert usage["output_tokens_details"]["reasoning_tokens"] == 3
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert "cached_tokens" in usage["input_tokens_details"]


def test_responses_function_and_custom_tool_calls(client: httpx.Client) -> None:
    tools = [
        {
            "type": "function",
            "name": "shell",
            "parameters": {
                "type": "object",
                "properties": {"cmd": {"type": "string"}},
                "required": ["cmd"],
            },
        },
        {"type": "custom", "name": "apply_patch", "format": {"type": "text"}},
    ]
    evs = events(
        stream(
            client,
            "/responses",
            {"model": "oca/gpt-5-codex", "input": "SIM:tool=shell", "tools": tools},
        )
    )
    args = "".join(p["delta"] for t, p in evs if t == "response.function_call_arguments.delta")
    done = next(p for t, p in evs if t == "response.function_call_arguments.done")
    assert json.loads(args) == json.loads(done["arguments"]) == {"cmd": "sim"}
    item = evs[-1][1]["response"]["output"][-1]
    assert item["type"] == "function_call" and item["name"] == "shell"
    assert item["call_id"].startswith("call_")

    evs = events(
        stream(
            client,
            "/responses",
            {
                "model": "oca/gpt-5-codex",
                "input": "SIM:tool=apply_patch SIM:args=***patch***",
                "tools": tools,
            },
        )
    )
    item = evs[-1][1]["response"]["output"][-1]
    assert item["type"] == "custom_tool_call" and item["input"] == "***patch***"
    deltas = "".join(p["delta"] for t, p in evs if t == "response.custom_tool_call_input.delta")
    assert deltas == "***patch***"


def test_responses_tool_result_and_empty_final_output(sim: SimServer, client: httpx.Client) -> None:
    sim.admin("config", {"empty_final_output": True})
    body = {
        "model": "oca/gpt-5",
        "input": [
            {"role": "user", "content": "SIM:tool=shell"},
            {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "file1\nfile2"},
        ],
    }
    evs = events(stream(client, "/responses", body))
    assert evs[-1][1]["response"]["output"] == []
    done = next(p for t, p in evs if t == "response.output_text.done")
    assert done["text"] == "Tool result received: file1\nfile2"


def test_responses_length_is_incomplete(client: httpx.Client) -> None:
    evs = events(stream(client, "/responses", {"model": "oca/gpt-5", "input": "SIM:length"}))
    assert evs[-1][0] == "response.incomplete"
    assert evs[-1][1]["response"]["status"] == "incomplete"


# --- messages -------------------------------------------------------------------------


def test_messages_stream_grammar(client: httpx.Client) -> None:
    body = {
        "model": "oca/claude-sonnet-4",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "be nice", "cache_control": {"type": "ephemeral"}}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "metadata": {"user_id": "u1"},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi claude"}]}],
    }
    evs = events(stream(client, "/v1/messages", body))
    types = [t for t, _ in evs]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    blocks = [p["content_block"]["type"] for t, p in evs if t == "content_block_start"]
    assert blocks == ["thinking", "text"]
    delta_types = [p["delta"]["type"] for t, p in evs if t == "content_block_delta"]
    assert "signature_delta" in delta_types and "thinking_delta" in delta_types
    text = "".join(p["delta"].get("text", "") for t, p in evs if t == "content_block_delta")
    assert text == "Hello from the OCA simulator (oca/claude-sonnet-4). You said: hi claude"
    starts = [p["index"] for t, p in evs if t == "content_block_start"]
    stops = [p["index"] for t, p in evs if t == "content_block_stop"]
    assert starts == stops == [0, 1]
    message_delta = evs[-2][1]
    assert message_delta["delta"]["stop_reason"] == "end_turn"
    assert message_delta["usage"]["output_tokens"] > 0
    assert evs[0][1]["message"]["usage"]["input_tokens"] > 0


def test_messages_tool_use_and_result(client: httpx.Client) -> None:
    tool = {
        "name": "Read",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    }
    body = {
        "model": "oca/claude-sonnet-4",
        "max_tokens": 100,
        "tools": [tool],
        "messages": [{"role": "user", "content": "SIM:tool=Read"}],
    }
    evs = events(stream(client, "/v1/messages", body))
    start = next(
        p for t, p in evs if t == "content_block_start" and p["content_block"]["type"] == "tool_use"
    )
    assert start["content_block"]["name"] == "Read"
    partial = "".join(
        p["delta"]["partial_json"]
        for t, p in evs
        if t == "content_block_delta" and p["index"] == start["index"]
    )
    assert json.loads(partial) == {"path": "sim"}
    assert evs[-2][1]["delta"]["stop_reason"] == "tool_use"

    body["messages"] = [
        {"role": "user", "content": "SIM:tool=Read"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "sim"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "contents!"}],
                }
            ],
        },
    ]
    evs = events(stream(client, "/v1/messages", body))
    text = "".join(p["delta"].get("text", "") for t, p in evs if t == "content_block_delta")
    assert text == "Tool result received: contents!"


def test_messages_requires_max_tokens_and_model_support(client: httpx.Client) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    resp = client.post(
        "/v1/messages", json={"model": "oca/claude-sonnet-4", "messages": msgs, "stream": True}
    )
    assert resp.status_code == 400
    resp = client.post(
        "/v1/messages",
        json={"model": "oca/gpt-5", "messages": msgs, "max_tokens": 10, "stream": True},
    )
    assert resp.status_code == 400


def test_messages_only_model_streams_tool_use_and_takes_the_result(client: httpx.Client) -> None:
    """oca/claude-opus-4 lists MESSAGES only: /v1/messages serves it, in full."""
    tools = [{"name": "a", "input_schema": {"type": "object"}}, {"name": "b", "input_schema": {}}]
    body = {
        "model": "oca/claude-opus-4",
        "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": tools,
        "messages": [{"role": "user", "content": "SIM:parallel"}],
    }
    evs = events(stream(client, "/v1/messages", body))
    blocks = [p["content_block"]["type"] for t, p in evs if t == "content_block_start"]
    assert blocks == ["thinking", "tool_use", "tool_use"]
    deltas = {p["delta"]["type"] for t, p in evs if t == "content_block_delta"}
    assert {"thinking_delta", "signature_delta", "input_json_delta"} <= deltas
    assert evs[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert evs[-2][1]["usage"]["output_tokens"] > 0
    image = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "done!"}
    image_turn = [{"type": "image", "source": image}, {"type": "text", "text": "go"}]
    use = {"type": "tool_use", "id": "toolu_1", "name": "a", "input": {}}
    body["messages"] = [
        {"role": "user", "content": image_turn},
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [result]},
    ]
    evs = events(stream(client, "/v1/messages", body))
    text = "".join(p["delta"].get("text", "") for t, p in evs if t == "content_block_delta")
    assert text == "Tool result received: done!"


def test_single_api_models_refuse_other_apis(sim: SimServer, client: httpx.Client) -> None:
    """The rejects_unlisted_api guess: what proves the proxy takes an upstream adapter."""
    msgs = [{"role": "user", "content": "hi"}]
    chat = {"model": "oca/claude-opus-4", "messages": msgs, "stream": True}
    responses = {"model": "oca/claude-opus-4", "input": "hi", "stream": True}
    for path, body in (("/chat/completions", chat), ("/responses", responses)):
        resp = client.post(path, json=body)
        assert resp.status_code == 400, path
        assert "supported_api_list: ['MESSAGES']" in resp.json()["error"]["message"]
    # And the Responses-only model likewise, on chat and Messages.
    codex_chat = {**chat, "model": "oca/gpt-5-codex"}
    codex_messages = {**codex_chat, "max_tokens": 100}
    for path, body in (("/chat/completions", codex_chat), ("/v1/messages", codex_messages)):
        resp = client.post(path, json=body)
        assert resp.status_code == 400, path
        assert "supported_api_list: ['RESPONSES']" in resp.json()["error"]["message"]
    sim.admin("config", {"rejects_unlisted_api": False})
    assert client.post("/chat/completions", json=chat).status_code == 200
    assert client.post("/v1/messages", json=codex_messages).status_code == 200


# --- refusals: what a model really refuses, whatever its list announces ------------------

MSGS = [{"role": "user", "content": "Reply with the word OK."}]
# Each path with a model whose list names it; each listed with efforts low/medium/high
# (llama-4 none) and an output maximum far above 1000.
REFUSAL_PATHS: dict[str, tuple[str, dict[str, Any]]] = {
    "/chat/completions": ("oca/gpt-5", {"messages": MSGS}),
    "/responses": ("oca/gpt-5", {"input": "Reply with the word OK."}),
    "/v1/messages": ("oca/claude-sonnet-4", {"messages": MSGS, "max_tokens": 16}),
    "/completions": ("oca/llama-4", {"prompt": "Reply with the word OK."}),
}
LIMIT_KEY = {"/responses": "max_output_tokens"}
UNSUPPORTED = (
    "litellm.UnsupportedParamsError: openai does not support parameters: {names}, "
    "for model={model}. To drop these, set litellm.drop_params=True or for proxy:\n\n"
    "`litellm_settings:\n drop_params: true`\n\n"
    "Received Model Group={model}\nAvailable Model Group Fallbacks=None"
)


def refused(client: httpx.Client, path: str, **extra: Any) -> str:
    """The message of a refusal in LiteLLM's shape (type and param null, code "400")."""
    model, body = REFUSAL_PATHS[path]
    resp = client.post(path, json={"model": model, "stream": True, **body, **extra})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert (error["type"], error["param"], error["code"]) == (None, None, "400")
    assert set(error) == {"message", "type", "param", "code"}
    return str(error["message"])


def taken(client: httpx.Client, path: str, **extra: Any) -> None:
    model, body = REFUSAL_PATHS[path]
    resp = client.post(path, json={"model": model, "stream": True, **body, **extra})
    assert resp.status_code == 200, resp.text


def refuse(sim: SimServer, **spec: Any) -> None:
    models = {model for model, _ in REFUSAL_PATHS.values()}
    sim.admin("config", {"refusals": {m: spec for m in models}})


@pytest.mark.parametrize("path", list(REFUSAL_PATHS))
def test_refused_params(sim: SimServer, client: httpx.Client, path: str) -> None:
    model = REFUSAL_PATHS[path][0]
    taken(client, path, temperature=0.5)
    refuse(sim, params=["temperature", "top_p", "reasoning.effort"])
    message = refused(client, path, temperature=0.5)
    assert message == UNSUPPORTED.format(names="['temperature']", model=model)
    message = refused(client, path, top_p=0.9, temperature=0.1)
    assert message == UNSUPPORTED.format(names="['temperature', 'top_p']", model=model)
    if path == "/responses":  # a dotted name: a nested field
        message = refused(client, path, reasoning={"effort": "low"})
        assert message == UNSUPPORTED.format(names="['reasoning.effort']", model=model)
    taken(client, path, temperature=None)  # null is not carried
    taken(client, path)


@pytest.mark.parametrize("path", list(REFUSAL_PATHS))
def test_refused_efforts(sim: SimServer, client: httpx.Client, path: str) -> None:
    key = "reasoning.effort" if path == "/responses" else "reasoning_effort"

    def effort(value: str) -> dict[str, Any]:
        return {"reasoning": {"effort": value}} if path == "/responses" else {key: value}

    if path != "/completions":
        taken(client, path, **effort("medium"))  # the list announces it
    refuse(sim, efforts=["low", "high"])
    assert refused(client, path, **effort("medium")) == (
        f"litellm.BadRequestError: OpenAIException - Unsupported value: '{key}' does not "
        "support 'medium' with this model. Supported values are: 'low' and 'high'."
    )
    taken(client, path, **effort("high"))
    refuse(sim, efforts=["minimal", "low", "high"])
    assert refused(client, path, **effort("xhigh")).endswith(
        "Supported values are: 'minimal', 'low', and 'high'."
    )
    refuse(sim, efforts=[])  # no effort at all: the parameter itself is refused
    assert "does not support parameters: ['" + key + "']" in refused(client, path, **effort("low"))
    taken(client, path)


@pytest.mark.parametrize("path", list(REFUSAL_PATHS))
def test_refused_output_maximum(sim: SimServer, client: httpx.Client, path: str) -> None:
    model = REFUSAL_PATHS[path][0]
    key = LIMIT_KEY.get(path, "max_tokens")
    taken(client, path, **{key: 4000})
    refuse(sim, max_output_tokens=1000)
    message = refused(client, path, **{key: 4000})
    if path == "/responses":
        assert message == (
            "litellm.BadRequestError: OpenAIException - Invalid 'max_output_tokens': integer "
            "above maximum value. Expected a value <= 1000, but got 4000 instead."
        )
    elif path == "/v1/messages":
        assert message.endswith(
            f"max_tokens: 4000 > 1000, which is the maximum allowed number of output tokens "
            f"for {model}"
        )
    else:
        assert message == (
            "litellm.BadRequestError: OpenAIException - max_tokens is too large: 4000. This "
            "model supports at most 1000 completion tokens, whereas you provided 4000."
        )
    if path == "/chat/completions":
        message = refused(client, path, max_completion_tokens=1001)
        assert "max_completion_tokens is too large: 1001." in message
    taken(client, path, **{key: 1000})


@pytest.mark.parametrize("path", ["/chat/completions", "/v1/messages"])
def test_thinking_budget_must_stay_under_max_tokens(
    sim: SimServer, client: httpx.Client, path: str
) -> None:
    sim.admin("config", {"refusals": {"oca/claude-sonnet-4": {}}})
    thinking = {"type": "enabled", "budget_tokens": 1024}
    body = {"model": "oca/claude-sonnet-4", "messages": MSGS, "stream": True}
    resp = client.post(path, json={**body, "thinking": thinking, "max_tokens": 1024})
    assert resp.status_code == 400
    assert "`max_tokens` must be greater than `thinking.budget_tokens`" in resp.text
    resp = client.post(path, json={**body, "thinking": thinking, "max_tokens": 2048})
    assert resp.status_code == 200


def test_refusals_win_over_the_guesses(sim: SimServer, client: httpx.Client) -> None:
    """Checked before enforce_effort_options, enforce_max_tokens and the API-list guess."""
    refuse(sim, efforts=["low"], max_output_tokens=1000)
    message = refused(client, "/chat/completions", reasoning_effort="max")
    assert "Supported values are: 'low'." in message
    message = refused(client, "/chat/completions", max_tokens=10**6)
    assert "supports at most 1000 completion tokens" in message
    sim.admin("config", {"refusals": {"oca/llama-4": {"params": ["temperature"]}}})
    resp = client.post(
        "/responses",
        json={"model": "oca/llama-4", "input": "hi", "stream": True, "temperature": 0},
    )
    assert resp.status_code == 400 and "UnsupportedParamsError" in resp.text
    # The model list stays as it was.
    listed = {e["litellm_params"]["model"]: e for e in client.get("/v1/model/info").json()["data"]}
    assert listed["oca/gpt-5"]["model_info"]["reasoning_effort_options"] == [
        "low",
        "medium",
        "high",
    ]


def test_refusals_knob_is_checked(sim: SimServer) -> None:
    for bad in (
        [],
        {"oca/x": []},
        {"oca/x": {"params": "temperature"}},
        {"oca/x": {"effort": ["low"]}},
        {"oca/x": {"max_output_tokens": 0}},
        {"oca/x": {"max_output_tokens": True}},
    ):
        with pytest.raises(urllib.error.HTTPError):
            sim.admin("config", {"refusals": bad})
    spec = {"oca/x": {"params": ["temperature"], "efforts": ["low"], "max_output_tokens": 9}}
    assert sim.admin("config", {"refusals": spec})["refusals"] == spec


def test_refusals_cli_flag(tmp_path: Any) -> None:
    from oca_addon.sim.server import build_parser, config_from_args

    spec = {"oca/x": {"efforts": ["low"]}}
    inline = config_from_args(build_parser().parse_args(["--refusals", json.dumps(spec)]))
    assert inline.refusals == spec
    path = tmp_path / "refusals.json"
    path.write_text(json.dumps(spec))
    assert config_from_args(build_parser().parse_args(["--refusals", str(path)])).refusals == spec


# --- completions and embeddings -----------------------------------------------------


def test_completions_stream(client: httpx.Client) -> None:
    resp = stream(client, "/completions", {"model": "oca/llama-4", "prompt": "complete me"})
    chunks = chat_chunks(resp)
    assert all(c["object"] == "text_completion" for c in chunks)
    text = "".join(c["choices"][0]["text"] for c in chunks)
    assert text.endswith("You said: complete me")
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_embeddings(client: httpx.Client) -> None:
    body = {"model": "oca/text-embedding-3-small", "input": ["alpha", "beta"]}
    first = client.post("/embeddings", json=body).json()
    assert first["object"] == "list" and first["model"] == "oca/text-embedding-3-small"
    assert [d["index"] for d in first["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 8 for d in first["data"])
    assert first["data"][0]["embedding"] != first["data"][1]["embedding"]
    single = client.post("/embeddings", json={**body, "input": "alpha"}).json()
    assert single["data"][0]["embedding"] == first["data"][0]["embedding"]
    assert first["usage"]["prompt_tokens"] >= 1


# --- IDCS login ----------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(sim: SimServer, challenge: str, **overrides: str) -> httpx.Response:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": "http://localhost:8669/callback",
        "scope": "openid offline_access",
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return httpx.get(f"{sim.url}/oauth2/v1/authorize", params=params)


def redirect_params(resp: httpx.Response) -> dict[str, str]:
    assert resp.status_code == 302, resp.text
    location = urlsplit(resp.headers["location"])
    assert location.netloc == "localhost:8669" and location.path == "/callback"
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def token(sim: SimServer, **form: str) -> httpx.Response:
    return httpx.post(f"{sim.url}/oauth2/v1/token", data={"client_id": CLIENT_ID, **form})


def login(sim: SimServer) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    code = redirect_params(authorize(sim, challenge))["code"]
    resp = token(
        sim,
        grant_type="authorization_code",
        code=code,
        redirect_uri="http://localhost:8669/callback",
        code_verifier=verifier,
    )
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


def test_openid_configuration(sim: SimServer) -> None:
    conf = httpx.get(f"{sim.url}/.well-known/openid-configuration").json()
    assert conf["issuer"] == sim.url
    assert conf["authorization_endpoint"] == f"{sim.url}/oauth2/v1/authorize"
    assert conf["token_endpoint"] == f"{sim.url}/oauth2/v1/token"
    for key in ("end_session_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert conf[key].startswith(sim.url)


def test_full_pkce_login(sim: SimServer) -> None:
    verifier, challenge = pkce_pair()
    params = redirect_params(authorize(sim, challenge))
    assert params["state"] == "st-1" and params["code"]
    form = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": "http://localhost:8669/callback",
    }
    resp = token(sim, **form, code_verifier=verifier)
    assert resp.status_code == 200, resp.text
    tokens = resp.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    assert tokens["refresh_token"] and tokens["scope"] == "openid offline_access"
    claims = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[1] + "=="))
    assert claims["nonce"] == "n-1" and claims["sub"] and claims["exp"] > time.time()
    api = httpx.get(
        f"{sim.api_base}/v1/model/info",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert api.status_code == 200
    # The code is single use.
    again = token(sim, **form, code_verifier=verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_wrong_verifier_and_mismatches(sim: SimServer) -> None:
    verifier, challenge = pkce_pair()
    redirect = "http://localhost:8669/callback"
    for bad in (
        {"code_verifier": pkce_pair()[0], "redirect_uri": redirect},
        {"code_verifier": verifier, "redirect_uri": "http://localhost:8668/callback"},
    ):
        code = redirect_params(authorize(sim, challenge))["code"]
        resp = token(sim, grant_type="authorization_code", code=code, **bad)
        assert resp.status_code == 400
        assert resp.json()["error"] == "invalid_grant"
        assert resp.json()["error_description"]
    code = redirect_params(authorize(sim, challenge))["code"]
    resp = httpx.post(
        f"{sim.url}/oauth2/v1/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "code_verifier": verifier,
            "client_id": DEFAULT_CLIENT_IDS[1],
        },
    )
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


def test_authorize_errors(sim: SimServer) -> None:
    _, challenge = pkce_pair()
    sim.admin("config", {"allow_any_redirect_port": False})
    bad_port = authorize(sim, challenge, redirect_uri="http://localhost:9999/callback")
    assert bad_port.status_code == 400 and "text/html" in bad_port.headers["content-type"]
    assert "location" not in bad_port.headers
    sim.admin("config", {"allow_any_redirect_port": True})
    any_port = authorize(sim, challenge, redirect_uri="http://localhost:9999/callback")
    assert any_port.status_code == 302
    assert (
        authorize(sim, challenge, redirect_uri="http://evil.com:8669/callback").status_code == 400
    )
    assert authorize(sim, challenge, client_id="unknown").status_code == 400

    params = redirect_params(authorize(sim, challenge, code_challenge_method="plain"))
    assert params["error"] == "invalid_request" and params["state"] == "st-1"
    params = redirect_params(authorize(sim, challenge, scope="offline_access"))
    assert params["error"] == "invalid_scope"
    params = redirect_params(authorize(sim, challenge, response_type="token"))
    assert params["error"] == "unsupported_response_type"
    params = redirect_params(authorize(sim, challenge, nonce=""))
    assert params["error"] == "invalid_request"
    sim.admin("config", {"deny_login": True})
    params = redirect_params(authorize(sim, challenge))
    assert params["error"] == "access_denied" and "code" not in params


def test_refresh_rotation(sim: SimServer) -> None:
    first = login(sim)["refresh_token"]
    resp = token(sim, grant_type="refresh_token", refresh_token=first)
    assert resp.status_code == 200
    second = resp.json()["refresh_token"]
    assert second != first
    assert resp.json()["access_token"]
    reused = token(sim, grant_type="refresh_token", refresh_token=first)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert token(sim, grant_type="refresh_token", refresh_token=second).status_code == 200
    unknown = token(sim, grant_type="refresh_token", refresh_token="nope")
    assert unknown.json()["error"] == "invalid_grant"


def test_refresh_without_rotation_and_failures(sim: SimServer) -> None:
    sim.admin("config", {"rotate_refresh_tokens": False})
    rt = login(sim)["refresh_token"]
    for _ in range(2):
        resp = token(sim, grant_type="refresh_token", refresh_token=rt)
        assert resp.status_code == 200 and "refresh_token" not in resp.json()
    sim.admin("config", {"fail_refresh": True})
    resp = token(sim, grant_type="refresh_token", refresh_token=rt)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


def test_no_offline_access_no_refresh_token(sim: SimServer) -> None:
    verifier, challenge = pkce_pair()
    code = redirect_params(authorize(sim, challenge, scope="openid"))["code"]
    resp = token(
        sim,
        grant_type="authorization_code",
        code=code,
        redirect_uri="http://localhost:8669/callback",
        code_verifier=verifier,
    )
    assert resp.status_code == 200 and "refresh_token" not in resp.json()


def test_concurrent_refresh_only_one_wins(sim: SimServer) -> None:
    sim.admin("config", {"refresh_delay": 1.0})
    rt = login(sim)["refresh_token"]
    results: list[int] = []

    def refresh() -> None:
        results.append(token(sim, grant_type="refresh_token", refresh_token=rt).status_code)

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 400]
    # The delay does not block the event loop: both waited concurrently (serially: >= 2 s).
    assert time.monotonic() - start < 1.8


# --- control endpoints ------------------------------------------------------------------


def test_admin_state_and_reset(sim: SimServer, client: httpx.Client) -> None:
    sim.admin("reset", {})
    chat(client, "count me")
    client.get("/v1/model/info")
    state = sim.admin("state")
    counters = state["counters"]
    assert counters["api_requests"] == {
        "/20250206/app/litellm/chat/completions": 1,
        "/20250206/app/litellm/v1/model/info": 1,
    }
    assert counters["live_access_tokens"] >= 1
    recorded = state["requests"][0]
    assert recorded["method"] == "POST"
    assert recorded["headers"]["authorization"] == "Bearer <redacted>"
    assert all(name == name.lower() for name in recorded["headers"])
    assert recorded["body"]["messages"][0]["content"] == "count me"
    assert state["config"]["rotate_refresh_tokens"] is True
    sim.admin("reset", {})
    assert sim.admin("state")["requests"] == []


def test_admin_config_rejects_unknown_knob(sim: SimServer) -> None:
    resp = httpx.post(f"{sim.url}/__sim/config", json={"no_such_knob": 1})
    assert resp.status_code == 400
    resp = httpx.post(f"{sim.url}/__sim/config", json={"token_ttl": "soon"})
    assert resp.status_code == 400
    conf = httpx.post(f"{sim.url}/__sim/config", json={"token_ttl": 120}).json()
    assert conf["token_ttl"] == 120


def test_mint_returns_usable_tokens(sim: SimServer) -> None:
    minted = sim.mint()
    assert minted["expires_in"] == 3600
    resp = token(sim, grant_type="refresh_token", refresh_token=minted["refresh_token"])
    assert resp.status_code == 200


def test_unknown_path_is_oca_error(sim: SimServer) -> None:
    resp = httpx.get(f"{sim.url}/nope", headers={"opc-request-id": "abc"})
    assert resp.status_code == 404
    assert resp.headers["opc-request-id"] == "abc"
    assert "abc" in resp.json()["error"]["message"]


# --- CLI -------------------------------------------------------------------------------


@pytest.mark.slow  # a process of its own
def test_cli_starts_on_free_port() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "oca_addon.sim", "--port", "0", "--token-ttl", "42"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        match = re.fullmatch(r"OCA simulator listening on (http://127\.0\.0\.1:(\d+))", line)
        assert match, line
        assert int(match.group(2)) > 0
        minted = httpx.post(f"{match.group(1)}/__sim/mint", json={}).json()
        assert minted["expires_in"] == 42
    finally:
        proc.terminate()
        proc.wait(10)
