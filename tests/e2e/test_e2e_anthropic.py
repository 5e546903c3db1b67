"""The Anthropic Messages API through a real mitmdump process in front of the simulator,
driven by the real `anthropic` SDK.

Two routes for every feature: `claude-sonnet-4-6` maps to `oca/gpt-4.1`, which does not
list MESSAGES (translated to /chat/completions and back); `native-claude` maps to
`oca/claude-sonnet-4`, which lists MESSAGES (passed through to OCA's /v1/messages).
"""

from __future__ import annotations

import base64
import json
import struct
import time
import zlib
from typing import Any

import anthropic
import httpx
import pytest
from conftest import Proxy, sse_events

TRANSLATED = "claude-sonnet-4-6"  # -> oca/gpt-4.1 (no MESSAGES: translated to chat)
NATIVE = "native-claude"  # -> oca/claude-sonnet-4 (MESSAGES)
HAIKU = "claude-haiku-4-5-20251001"  # -> oca/llama-4 (chat only, 4096 output tokens, no vision)
BOTH = pytest.mark.parametrize("model", [TRANSLATED, NATIVE])
# The SDK warns about retired Claude names; here they are only names the proxy maps.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOOLS: list[dict[str, Any]] = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
    {
        "name": "get_time",
        "description": "Time in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "utc": {"type": "boolean"}},
            "required": ["city"],
        },
    },
]


def client(proxy: Proxy, **kw: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key="dummy", max_retries=0, **kw)


def last_upstream(proxy: Proxy) -> dict[str, Any]:
    """The last model call the simulator received (path, headers, body)."""
    for req in reversed(proxy.sim.state()["requests"]):
        if req["method"] == "POST" and req["path"].endswith(("/chat/completions", "/messages")):
            return req
    raise AssertionError("the simulator received no model call")


def upstream_path(model: str) -> str:
    return "/v1/messages" if model == NATIVE else "/chat/completions"


def png(width: int = 2, height: int = 2) -> str:
    """A real (tiny, red) PNG, base64."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    raw = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(raw).decode()


def text_of(message: Any) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


# -- plain answers ------------------------------------------------------------------


@BOTH
def test_create_non_stream(proxy: Proxy, model: str) -> None:
    m = client(proxy).messages.create(
        model=model, max_tokens=256, messages=[{"role": "user", "content": "hello there"}]
    )
    assert m.type == "message" and m.role == "assistant"
    assert m.id.startswith("msg_")
    assert m.model == model  # the requested name, not OCA's
    assert "You said: hello there" in text_of(m)
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0
    up = last_upstream(proxy)
    assert up["path"].endswith(upstream_path(model))
    assert up["body"]["stream"] is True  # OCA only streams: the proxy assembled the answer


@BOTH
def test_stream_and_final_message(proxy: Proxy, model: str) -> None:
    with client(proxy).messages.stream(
        model=model,
        max_tokens=256,
        messages=[{"role": "user", "content": "stream it SIM:chunks=8"}],
    ) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(deltas) >= 5
    assert "".join(deltas) == text_of(final)
    assert "You said: stream it" in text_of(final)
    assert final.model == model
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@BOTH
def test_raw_stream_event_grammar(proxy: Proxy, model: str) -> None:
    """What Claude Code parses: message_start first, message_stop last, blocks balanced."""
    r = httpx.post(
        f"{proxy.url}/v1/messages",
        headers={"anthropic-version": "2023-06-01", "x-api-key": "dummy"},
        json={
            "model": model,
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
        timeout=30,
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [(e, json.loads(d)) for e, d in sse_events(r.text)]
    names = [e for e, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert all(e == d["type"] for e, d in events)
    assert events[0][1]["message"]["model"] == model
    opened = [d["index"] for e, d in events if e == "content_block_start"]
    closed = [d["index"] for e, d in events if e == "content_block_stop"]
    assert opened == closed == list(range(len(opened)))


def test_beta_path(proxy: Proxy) -> None:
    for model in (TRANSLATED, NATIVE):
        m = client(proxy).beta.messages.create(
            model=model,
            max_tokens=100,
            betas=["interleaved-thinking-2025-05-14"],
            messages=[{"role": "user", "content": "beta hello"}],
        )
        assert "You said: beta hello" in "".join(b.text for b in m.content if b.type == "text")
        assert m.model == model
    # Native keeps Anthropic's own headers; the translated route has no use for them.
    up = last_upstream(proxy)
    headers = {k.lower(): v for k, v in up["headers"].items()}
    assert headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert "anthropic-version" in headers
    r = httpx.post(
        f"{proxy.url}/v1/messages?beta=true",
        json={
            "model": TRANSLATED,
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "q"}],
        },
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["type"] == "message"


# -- tools --------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_and_result_round_trip(proxy: Proxy, model: str, stream: bool) -> None:
    c = client(proxy)
    ask = {"role": "user", "content": 'weather? SIM:tool=get_weather SIM:args={"city":"Oslo"}'}
    if stream:
        with c.messages.stream(model=model, max_tokens=256, tools=TOOLS, messages=[ask]) as s:
            first = s.get_final_message()
    else:
        first = c.messages.create(model=model, max_tokens=256, tools=TOOLS, messages=[ask])
    assert first.stop_reason == "tool_use"
    calls = [b for b in first.content if b.type == "tool_use"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather" and calls[0].input == {"city": "Oslo"}
    assert calls[0].id
    messages: list[Any] = [
        ask,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": calls[0].id, "content": "sunny, 21C"}
            ],
        },
    ]
    if stream:
        with c.messages.stream(model=model, max_tokens=256, tools=TOOLS, messages=messages) as s:
            second = s.get_final_message()
    else:
        second = c.messages.create(model=model, max_tokens=256, tools=TOOLS, messages=messages)
    assert "Tool result received: sunny, 21C" in text_of(second)
    assert second.stop_reason == "end_turn"
    up = last_upstream(proxy)["body"]
    if model == TRANSLATED:
        # The tool result is a `tool` message right after the assistant's tool call.
        roles = [m["role"] for m in up["messages"]]
        assert roles[-2:] == ["assistant", "tool"]
        assert up["messages"][-2]["tool_calls"][0]["id"] == up["messages"][-1]["tool_call_id"]
        assert up["messages"][-1]["content"] == "sunny, 21C"
        assert [t["function"]["name"] for t in up["tools"]] == ["get_weather", "get_time"]
    else:
        assert up["messages"][-1]["content"][0]["type"] == "tool_result"
        assert [t["name"] for t in up["tools"]] == ["get_weather", "get_time"]


@BOTH
@pytest.mark.parametrize("stream", [False, True])
def test_parallel_tool_use(proxy: Proxy, model: str, stream: bool) -> None:
    c = client(proxy)
    ask = {"role": "user", "content": "weather and time SIM:parallel"}
    if stream:
        with c.messages.stream(model=model, max_tokens=256, tools=TOOLS, messages=[ask]) as s:
            first = s.get_final_message()
    else:
        first = c.messages.create(model=model, max_tokens=256, tools=TOOLS, messages=[ask])
    calls = [b for b in first.content if b.type == "tool_use"]
    assert [b.name for b in calls] == ["get_weather", "get_time"]
    assert all(b.input["city"] for b in calls)
    assert len({b.id for b in calls}) == 2
    assert first.stop_reason == "tool_use"
    results = [
        {"type": "tool_result", "tool_use_id": b.id, "content": f"result {i}"}
        for i, b in enumerate(calls)
    ]
    second = c.messages.create(
        model=model,
        max_tokens=256,
        tools=TOOLS,
        messages=[
            ask,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": results},
        ],
    )
    # The simulator acknowledges one result: the last tool message (chat), the first block (native).
    assert "Tool result received: result " in text_of(second)
    if model == TRANSLATED:
        up = last_upstream(proxy)["body"]["messages"]
        assert [m["role"] for m in up[-3:]] == ["assistant", "tool", "tool"]
        assert [m["tool_call_id"] for m in up[-2:]] == [b.id for b in calls]


def test_tool_names_openai_rejects_are_mapped_both_ways(proxy: Proxy) -> None:
    """MCP tool names may hold characters (dots, colons) OpenAI refuses: the proxy renames
    them upstream and gives the client its own names back."""
    name = "mcp__files.read:v2"
    tool = {**TOOLS[0], "name": name}
    m = client(proxy).messages.create(
        model=TRANSLATED,
        max_tokens=100,
        tools=[tool],
        messages=[{"role": "user", "content": "call it SIM:parallel"}],
    )
    assert [b.name for b in m.content if b.type == "tool_use"] == [name]
    sent = last_upstream(proxy)["body"]["tools"][0]["function"]["name"]
    assert sent != name and all(ch.isalnum() or ch in "_-" for ch in sent)


# -- images and thinking --------------------------------------------------------------


@BOTH
def test_image(proxy: Proxy, model: str) -> None:
    data = png()
    m = client(proxy).messages.create(
        model=model,
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": data},
                    },
                    {"type": "text", "text": "what is in this picture?"},
                ],
            }
        ],
    )
    assert "You said: what is in this picture?" in text_of(m)
    content = last_upstream(proxy)["body"]["messages"][-1]["content"]
    if model == TRANSLATED:
        assert content[0] == {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{data}"},
        }
    else:
        assert content[0]["type"] == "image" and content[0]["source"]["data"] == data


def test_image_for_a_model_without_vision_is_not_an_error(proxy: Proxy) -> None:
    m = client(proxy).messages.create(
        model=HAIKU,
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": png()},
                    },
                    {"type": "text", "text": "describe"},
                ],
            }
        ],
    )
    assert "You said:" in text_of(m)
    up = last_upstream(proxy)["body"]
    assert up["model"] == "oca/llama-4"
    assert "image_url" not in json.dumps(up["messages"])


@pytest.mark.parametrize(
    ("model", "prompt"), [(TRANSLATED, "think SIM:reasoning"), (NATIVE, "think")]
)
@pytest.mark.parametrize("stream", [False, True])
def test_thinking(proxy: Proxy, model: str, prompt: str, stream: bool) -> None:
    c = client(proxy)
    kw: dict[str, Any] = {
        "model": model,
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [{"role": "user", "content": prompt}],
    }
    if stream:
        with c.messages.stream(**kw) as s:
            kinds = [e.type for e in s]
            m = s.get_final_message()
        assert "thinking" in kinds and "signature" in kinds
    else:
        m = c.messages.create(**kw)
    blocks = [b.type for b in m.content]
    assert blocks == ["thinking", "text"]
    thinking = m.content[0]
    assert thinking.type == "thinking"
    assert thinking.thinking.startswith("Thinking about")
    assert thinking.signature
    # The thinking block goes back in the next turn, as Claude Code sends it.
    again = c.messages.create(
        **{
            **kw,
            "messages": [
                *kw["messages"],
                {"role": "assistant", "content": [b.model_dump() for b in m.content]},
                {"role": "user", "content": "and now?"},
            ],
        }
    )
    assert "You said: and now?" in text_of(again)
    up = last_upstream(proxy)["body"]
    if model == NATIVE:
        assert up["thinking"] == {"type": "enabled", "budget_tokens": 2048}
        assert up["messages"][1]["content"][0]["signature"] == thinking.signature


def test_thinking_on_a_reasoning_model_sets_reasoning_effort(proxy: Proxy) -> None:
    """A chat-only reasoning model gets `reasoning_effort` from the thinking budget."""
    settings = json.loads(proxy.settings_file.read_text())
    assert settings["model_mapping"]["gpt-5-mapped"]["target"] == "oca/gpt-5"
    m = client(proxy).messages.create(
        model="gpt-5-mapped",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "reason"}],
    )
    assert [b.type for b in m.content] == ["thinking", "text"]
    up = last_upstream(proxy)
    assert up["path"].endswith("/chat/completions")
    assert up["body"]["reasoning_effort"] == "low"


# -- what the proxy sends upstream --------------------------------------------------------

BILLING = "x-anthropic-billing-header: cc_version=2.1.0.abc; cc_entrypoint=cli;"


@BOTH
def test_billing_header_line_is_removed(proxy: Proxy, model: str) -> None:
    client(proxy).messages.create(
        model=model,
        max_tokens=100,
        system=[
            {"type": "text", "text": BILLING},
            {
                "type": "text",
                "text": "You are Claude Code.",
                "cache_control": {"type": "ephemeral"},
            },
        ],
        messages=[{"role": "user", "content": "hi"}],
    )
    up = last_upstream(proxy)["body"]
    assert "x-anthropic-billing-header" not in json.dumps(up)
    if model == TRANSLATED:
        assert up["messages"][0] == {"role": "system", "content": "You are Claude Code."}
    else:
        assert up["system"] == [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
        ]


def test_max_tokens_is_clamped_to_the_model_limit(proxy: Proxy) -> None:
    c = client(proxy, timeout=60)  # an explicit timeout lets the SDK ask for big max_tokens
    m = c.messages.create(
        model=HAIKU, max_tokens=64000, messages=[{"role": "user", "content": "hi"}]
    )
    assert m.model == HAIKU
    up = last_upstream(proxy)["body"]
    assert up["model"] == "oca/llama-4" and up["max_tokens"] == 4096
    c.messages.create(
        model=TRANSLATED, max_tokens=64000, messages=[{"role": "user", "content": "hi"}]
    )
    assert last_upstream(proxy)["body"]["max_tokens"] == 32768
    # Native too (Claude Code asks Opus-class names for 64000 and more), thinking budget fitted.
    c.messages.create(
        model=NATIVE,
        max_tokens=100000,
        thinking={"type": "enabled", "budget_tokens": 90000},
        messages=[{"role": "user", "content": "hi"}],
    )
    up = last_upstream(proxy)["body"]
    assert up["max_tokens"] == 64000
    assert up["thinking"]["budget_tokens"] < 64000


def test_claude_code_shaped_request(proxy: Proxy) -> None:
    """The fields Claude Code sends that chat models do not know are dropped or mapped."""
    body = {
        "model": TRANSLATED,
        "max_tokens": 32000,
        "stream": True,
        "system": [{"type": "text", "text": BILLING}, {"type": "text", "text": "sys"}],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "system", "content": "mid-conversation system note"},
        ],
        "tools": TOOLS,
        "metadata": {"user_id": json.dumps({"device_id": "d" * 64, "session_id": "s"})},
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
    }
    r = httpx.post(
        f"{proxy.url}/v1/messages?beta=true",
        headers={
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "claude-code-20250219,context-management-2025-06-27",
            "x-api-key": "dummy",
        },
        json=body,
        timeout=30,
    )
    assert r.status_code == 200
    assert "You said: hi" in "".join(
        json.loads(d)["delta"].get("text", "")
        for e, d in sse_events(r.text)
        if e == "content_block_delta"
    )
    up = last_upstream(proxy)["body"]
    assert set(up) <= {
        "model",
        "messages",
        "max_tokens",
        "tools",
        "tool_choice",
        "user",
        "stream",
        "stream_options",
        "reasoning_effort",
    }
    assert up["messages"][0]["role"] == "system"
    assert "mid-conversation system note" in up["messages"][0]["content"]
    assert len(up["user"]) <= 64


def test_a_streamed_native_answer_is_recorded_with_its_input_tokens(proxy: Proxy) -> None:
    """Messages streams give the input tokens in message_start and only the output count
    in message_delta (the simulator's, as OCA's): the call is recorded with both, in the
    dashboard's recent calls and per-model totals and in the log line (they were 0 in)."""

    def state() -> dict[str, Any]:
        return httpx.get(f"{proxy.url}/api/state", timeout=10).json()

    def totals(s: dict[str, Any]) -> dict[str, Any]:
        empty = {"requests": 0, "input_tokens": 0, "output_tokens": 0}
        return next((t for t in s["totals"] if t["model"] == "oca/claude-sonnet-4"), empty)

    before = totals(state())
    with client(proxy).messages.stream(
        model=NATIVE, max_tokens=256, messages=[{"role": "user", "content": "count me " * 40}]
    ) as stream:
        final = stream.get_final_message()
    got = final.usage
    inp = got.input_tokens + (got.cache_read_input_tokens or 0)
    inp += got.cache_creation_input_tokens or 0
    assert got.input_tokens > 0 and got.output_tokens > 0  # message_start's, message_delta's
    for _ in range(100):  # the call is recorded once its response hook has run
        now = state()
        if totals(now)["requests"] > before["requests"]:
            break
        time.sleep(0.05)
    rec = next(r for r in now["recent"] if r["requested_model"] == NATIVE)
    assert rec["stream"] is True and rec["route"] == "native"
    assert (rec["input_tokens"], rec["output_tokens"]) == (inp, got.output_tokens)
    after = totals(now)
    assert after["input_tokens"] - before["input_tokens"] == inp
    assert after["output_tokens"] - before["output_tokens"] == got.output_tokens
    line = f"native-claude → oca/claude-sonnet-4 · {inp:,} in / {got.output_tokens:,} out"
    for _ in range(100):  # the log is written in batches
        if line in proxy.log():
            break
        time.sleep(0.05)
    assert line in proxy.log()


# -- count_tokens, models, local pages ------------------------------------------------------


def test_count_tokens(proxy: Proxy) -> None:
    c = client(proxy)
    before = proxy.sim.state()["counters"]
    small = c.messages.count_tokens(model=TRANSLATED, messages=[{"role": "user", "content": "hi"}])
    big = c.messages.count_tokens(
        model=TRANSLATED,
        system="You are a careful assistant. " * 50,
        tools=TOOLS,
        messages=[{"role": "user", "content": "hello " * 500}],
    )
    image = c.messages.count_tokens(
        model=NATIVE,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": png()},
                    }
                ],
            }
        ],
    )
    assert 0 < small.input_tokens < big.input_tokens
    assert big.input_tokens > len("hello " * 500) / 4
    assert image.input_tokens > 1000
    beta = c.beta.messages.count_tokens(
        model=TRANSLATED, messages=[{"role": "user", "content": "hi"}]
    )
    assert beta.input_tokens == small.input_tokens
    # Answered locally: OCA saw nothing.
    assert proxy.sim.state()["counters"] == before


def test_count_tokens_bad_body_is_an_anthropic_error(proxy: Proxy) -> None:
    r = httpx.post(f"{proxy.url}/v1/messages/count_tokens", json={"model": "x"}, timeout=10)
    assert r.status_code == 400
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_models_in_anthropic_shape(proxy: Proxy) -> None:
    ids = [m.id for m in client(proxy).models.list()]
    assert TRANSLATED in ids and NATIVE in ids and "oca/gpt-4.1" in ids


def test_head_root_and_event_logging(proxy: Proxy) -> None:
    assert httpx.head(f"{proxy.url}/", timeout=10).status_code == 200
    r = httpx.post(
        f"{proxy.url}/api/event_logging/batch",
        json={"events": [{"event_type": "ClaudeCodeInternalEvent", "event_data": {}}]},
        timeout=10,
    )
    assert r.status_code == 200
    assert r.json() == {} or isinstance(r.json(), dict)


# -- errors -------------------------------------------------------------------------------

ERRORS = [
    (400, anthropic.BadRequestError, "invalid_request_error"),
    (401, anthropic.AuthenticationError, "authentication_error"),
    (403, anthropic.PermissionDeniedError, "permission_error"),
    (404, anthropic.NotFoundError, "not_found_error"),
    (413, anthropic.ContentTooLargeError, "request_too_large"),
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (503, anthropic.InternalServerError, "api_error"),
    (529, anthropic.OverloadedError, "overloaded_error"),
]


@BOTH
@pytest.mark.parametrize(("status", "cls", "kind"), ERRORS)
def test_upstream_error_status(
    proxy: Proxy, model: str, status: int, cls: type[anthropic.APIStatusError], kind: str
) -> None:
    with pytest.raises(cls) as info:
        client(proxy).messages.create(
            model=model,
            max_tokens=100,
            messages=[{"role": "user", "content": f"SIM:error={status}"}],
        )
    err = info.value
    assert err.status_code == status
    assert err.type == kind
    assert isinstance(err.body, dict) and err.body["type"] == "error"
    assert f"Simulated upstream error {status}" in str(err.api_message)
    headers = err.response.headers
    assert headers.get("opc-request-id")
    if status == 429:
        assert headers["retry-after"] == "2"
    if status == 401:
        assert headers["x-should-retry"] == "true"


@BOTH
@pytest.mark.parametrize(("status", "cls", "kind"), [ERRORS[5], ERRORS[8]])
def test_upstream_error_status_when_streaming(
    proxy: Proxy, model: str, status: int, cls: type[anthropic.APIStatusError], kind: str
) -> None:
    with (
        pytest.raises(cls) as info,
        client(proxy).messages.stream(
            model=model,
            max_tokens=100,
            messages=[{"role": "user", "content": f"SIM:error={status}"}],
        ) as s,
    ):
        s.get_final_message()
    assert info.value.type == kind


def test_401_refreshes_the_token_and_the_retry_succeeds(proxy: Proxy) -> None:
    """OCA refusing a token makes the proxy refresh; the SDK retries (x-should-retry) and
    the retry goes through with the new token."""
    refreshes = proxy.sim.state()["counters"]["refreshes"]
    with pytest.raises(anthropic.AuthenticationError):
        client(proxy).messages.create(
            model=TRANSLATED, max_tokens=50, messages=[{"role": "user", "content": "SIM:error=401"}]
        )
    m = client(proxy).messages.create(
        model=TRANSLATED, max_tokens=50, messages=[{"role": "user", "content": "after 401"}]
    )
    assert "You said: after 401" in text_of(m)
    assert proxy.sim.state()["counters"]["refreshes"] > refreshes


def test_request_errors_are_anthropic_shaped(proxy: Proxy) -> None:
    c = client(proxy)
    with pytest.raises(anthropic.BadRequestError) as info:
        c.messages.create(model=TRANSLATED, max_tokens=10, messages=[])
    assert info.value.type == "invalid_request_error"
    assert "messages" in str(info.value.api_message)
    with pytest.raises(anthropic.APIStatusError) as nf:  # OCA's own answer, passed on
        c.messages.create(
            model="oca/no-such-model", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert nf.value.status_code in (400, 404)
    assert nf.value.type in ("invalid_request_error", "not_found_error")
    assert "oca/no-such-model" in str(nf.value) and "Models in OCA's list" in str(nf.value)
    r = httpx.post(
        f"{proxy.url}/v1/messages",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


@BOTH
@pytest.mark.parametrize("directive", ["SIM:midstream_error", "SIM:cut"])
def test_failure_mid_stream_is_an_error_event(proxy: Proxy, model: str, directive: str) -> None:
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client(proxy).messages.stream(
            model=model,
            max_tokens=100,
            messages=[{"role": "user", "content": f"long answer SIM:chunks=10 {directive}"}],
        ) as s,
    ):
        for text in s.text_stream:
            received.append(text)
    assert received, "some text arrived before the failure"
    err = info.value
    assert err.type in ("api_error", "overloaded_error")
    assert isinstance(err.body, dict) and err.body["type"] == "error"


@BOTH
@pytest.mark.parametrize("directive", ["SIM:midstream_error", "SIM:cut"])
def test_failure_mid_stream_raw_frames(proxy: Proxy, model: str, directive: str) -> None:
    """On the wire: the last frame is `event: error`, no message_stop, the body ends cleanly."""
    r = httpx.post(
        f"{proxy.url}/v1/messages",
        json={
            "model": model,
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": f"x SIM:chunks=10 {directive}"}],
        },
        timeout=30,
    )
    events = sse_events(r.text)
    assert events[0][0] == "message_start"
    assert events[-1][0] == "error"
    assert "message_stop" not in [e for e, _ in events]
    body = json.loads(events[-1][1])
    assert body["type"] == "error" and body["error"]["message"]


@BOTH
@pytest.mark.parametrize("directive", ["SIM:midstream_error", "SIM:cut"])
def test_failure_mid_stream_non_stream_call(proxy: Proxy, model: str, directive: str) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        client(proxy).messages.create(
            model=model,
            max_tokens=100,
            messages=[{"role": "user", "content": f"x SIM:chunks=10 {directive}"}],
        )
    assert info.value.status_code >= 500
    assert info.value.type in ("api_error", "overloaded_error")


def test_garbage_and_html_from_upstream(proxy: Proxy) -> None:
    c = client(proxy)
    for directive in ("SIM:garbage", "SIM:html"):
        with pytest.raises(anthropic.APIStatusError) as info:
            c.messages.create(
                model=TRANSLATED, max_tokens=10, messages=[{"role": "user", "content": directive}]
            )
        assert info.value.status_code == 502
        assert info.value.type == "api_error"
