"""The OpenAI API through a real mitmdump process in front of the simulator."""

from __future__ import annotations

import json
import os

import httpx
import openai
import pytest
from conftest import Proxy, sse_events

from oca_addon.sim.config import GUESSES_ENV, guesses_on

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Time in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "utc": {"type": "boolean"}},
                "required": ["city"],
            },
        },
    },
]


def client(proxy: Proxy, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="dummy", max_retries=0, **kw)


def test_chat_non_stream_is_assembled(proxy: Proxy) -> None:
    r = client(proxy).chat.completions.create(
        model="oca/gpt-4.1", messages=[{"role": "user", "content": "hello there"}]
    )
    assert r.object == "chat.completion"
    assert "You said: hello there" in r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    # OCA only streams: the proxy must have asked for a stream upstream.
    last = proxy.sim.state()["requests"][-1]
    assert last["body"]["stream"] is True
    assert last["body"]["stream_options"]["include_usage"] is True


def test_chat_stream_passes_through_chunks(proxy: Proxy) -> None:
    stream = client(proxy).chat.completions.create(
        model="oca/gpt-4.1",
        messages=[{"role": "user", "content": "stream please SIM:chunks=40"}],
        stream=True,
    )
    chunks = list(stream)
    deltas = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(deltas) >= 40
    assert any(c.usage for c in chunks)


def test_chat_tool_calls_non_stream_complete(proxy: Proxy) -> None:
    r = client(proxy).chat.completions.create(
        model="oca/gpt-4.1",
        messages=[{"role": "user", "content": "weather and time SIM:parallel"}],
        tools=TOOLS,
    )
    calls = r.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    for c in calls:
        assert json.loads(c.function.arguments)["city"]
        assert c.id
    assert r.choices[0].finish_reason == "tool_calls"


def test_chat_tool_round_trip_stream(proxy: Proxy) -> None:
    c = client(proxy)
    first = c.chat.completions.create(
        model="claude-sonnet-4-6",
        messages=[{"role": "user", "content": 'SIM:tool=get_weather SIM:args={"city":"Oslo"}'}],
        tools=TOOLS,
    )
    call = first.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    stream = c.chat.completions.create(
        model="claude-sonnet-4-6",
        messages=[
            {"role": "user", "content": "weather?"},
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
        ],
        tools=TOOLS,
        stream=True,
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    assert "Tool result received: sunny, 21C" in text


def test_model_mapping_and_reasoning_effort(proxy: Proxy) -> None:
    c = client(proxy)
    c.chat.completions.create(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "a"}]
    )
    assert proxy.sim.state()["requests"][-1]["body"]["model"] == "oca/gpt-4.1"
    c.chat.completions.create(model="claude-haiku-4-5", messages=[{"role": "user", "content": "a"}])
    assert proxy.sim.state()["requests"][-1]["body"]["model"] == "oca/llama-4"
    c.chat.completions.create(model="gpt-5-mapped", messages=[{"role": "user", "content": "a"}])
    body = proxy.sim.state()["requests"][-1]["body"]
    assert body["model"] == "oca/gpt-5" and body["reasoning_effort"] == "high"
    c.chat.completions.create(model="whatever-else", messages=[{"role": "user", "content": "a"}])
    assert proxy.sim.state()["requests"][-1]["body"]["model"] == "oca/gpt-4.1"


def test_image_detail_is_stripped(proxy: Proxy) -> None:
    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    r = client(proxy).chat.completions.create(
        model="oca/gpt-4.1",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": png, "detail": "high"}},
                ],
            }
        ],
    )
    assert r.choices[0].message.content
    sent = proxy.sim.state()["requests"][-1]["body"]["messages"][0]["content"][1]
    assert "detail" not in sent["image_url"]


def test_models_list(proxy: Proxy) -> None:
    ids = [m.id for m in client(proxy).models.list()]
    assert "oca/gpt-4.1" in ids and "oca/gpt-5" in ids
    assert "claude-sonnet-4-6" in ids  # mapping names are offered too
    assert not any("*" in i for i in ids)


def test_embeddings(proxy: Proxy) -> None:
    proxy.sim.config(serves_embeddings=True)  # no source says OCA does: a simulator guess
    try:
        r = client(proxy).embeddings.create(model="oca/text-embedding-3-small", input=["a", "b"])
        assert len(r.data) == 2 and len(r.data[0].embedding) > 0
        assert proxy.sim.state()["requests"][-1]["path"].endswith("/litellm/embeddings")
        # Where OCA does not serve them, its own answer reaches the client, as an API error.
        proxy.sim.config(serves_embeddings=False)
        with pytest.raises(openai.NotFoundError) as e:
            client(proxy).embeddings.create(model="oca/text-embedding-3-small", input="a")
        assert "OCA answered 404" in str(e.value)
    finally:
        proxy.sim.config(
            serves_embeddings="serves_embeddings" in guesses_on(os.environ.get(GUESSES_ENV))
        )


def test_legacy_completions_translated(proxy: Proxy) -> None:
    r = client(proxy).completions.create(model="oca/gpt-4.1", prompt="Say hi", max_tokens=20)
    assert r.object == "text_completion" and "Say hi" in r.choices[0].text


def test_unknown_oca_model_goes_to_oca_and_its_answer_lists_models(proxy: Proxy) -> None:
    # Never refused on the model list's word: OCA answers, and the client gets that answer
    # with the models the list does hold.
    with pytest.raises(openai.APIStatusError) as e:
        client(proxy).chat.completions.create(
            model="oca/no-such-model", messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.status_code in (400, 404)
    text = str(e.value)
    assert "OCA answered" in text and "oca/no-such-model" in text
    assert "Models in OCA's list" in text and "oca/gpt-4.1" in text


def test_upstream_error_keeps_status_and_retry_after(proxy: Proxy) -> None:
    r = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "SIM:error=429"}]},
        timeout=30,
    )
    assert r.status_code == 429
    assert r.headers["retry-after"] == "2"
    err = r.json()["error"]
    assert err["type"] == "rate_limit_error" and "OCA request id" in err["message"]


def test_bad_json_gets_openai_error(proxy: Proxy) -> None:
    r = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        content=b"{nope",
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["error"]["message"]
    r = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "oca/gpt-4.1"}, timeout=10)
    assert r.status_code == 400 and "'messages' is required" in r.json()["error"]["message"]
    # and the proxy keeps serving
    assert proxy.health()["status"] == "ok"


def test_mid_stream_error_becomes_error_event(proxy: Proxy) -> None:
    with pytest.raises(openai.APIError) as e:
        list(
            client(proxy).chat.completions.create(
                model="oca/gpt-4.1",
                stream=True,
                messages=[{"role": "user", "content": "SIM:midstream_error"}],
            )
        )
    assert "error" in str(e.value).lower()


def test_cut_stream_ends_with_error_not_silence(proxy: Proxy) -> None:
    r = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={
            "model": "oca/gpt-4.1",
            "stream": True,
            "messages": [{"role": "user", "content": "SIM:cut"}],
        },
        timeout=30,
    )
    events = sse_events(r.text)
    assert events, r.text
    last = json.loads(events[-1][1])
    assert "error" in last and "mid-stream" in last["error"]["message"]


def test_health(proxy: Proxy) -> None:
    h = proxy.health()
    assert h["logged_in"] is True
    assert h["base_url"].endswith("/20250206/app/litellm")
    assert h["version"]


def test_no_token_in_log(proxy: Proxy) -> None:
    rt = json.loads(proxy.token_file.read_text())["refresh_token"]
    log = proxy.log()
    assert rt not in log
    assert "Bearer " not in log
