"""The upstream adapters (oca_addon.translate.upstream): chat requests in the APIs of
Responses-only and Messages-only models, and those models' streams back as chat chunks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from upstream_streams import Script, messages_sse, responses_sse

from oca_addon.core import sse
from oca_addon.core.errors import ApiError
from oca_addon.core.streams import StreamDriver
from oca_addon.translate.anthropic import AnthropicContext, AnthropicStream
from oca_addon.translate.chat import ChatAssembler, ChatStream
from oca_addon.translate.upstream import ADAPTERS, AdaptedStream, answer_chunks
from oca_addon.translate.upstream import messages as up_messages
from oca_addon.translate.upstream import responses as up_responses

PNG = "data:image/png;base64,iVBORw0KGgo="
PDF = "data:application/pdf;base64,JVBERi0x"
CC = {"type": "ephemeral"}

CHAT: dict[str, Any] = {
    "model": "oca/x",
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Be brief.", "cache_control": CC}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is here?"},
                {"type": "image_url", "image_url": {"url": PNG}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                {"type": "file", "file": {"file_data": PDF, "filename": "a.pdf"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Looking.",
            "reasoning_content": "hidden",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call 2!",
                    "type": "function",
                    "function": {"name": "clock", "arguments": ""},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call 2!", "content": [{"type": "text", "text": "noon"}]},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "And now?"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        },
        {"type": "function", "function": {"name": "clock"}},
    ],
    "tool_choice": {"type": "function", "function": {"name": "weather"}},
    "parallel_tool_calls": False,
    "max_tokens": 8,
    "temperature": 0.2,
    "stop": ["END", " "],
    "reasoning_effort": "high",
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "r", "schema": {"type": "object"}},
    },
    "user": "u1",
    "stream": True,
    "stream_options": {"include_usage": True},
}


# -- requests ------------------------------------------------------------------------------


def test_chat_request_as_responses() -> None:
    out = up_responses.request(CHAT, model_info={"is_reasoning_model": True})
    assert out["model"] == "oca/x" and out["stream"] is True
    assert out["instructions"] == "Be brief."
    assert out["input"] == [
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "What is here?"},
            {"type": "input_image", "image_url": PNG, "detail": "auto"},
            {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "auto"},
            {"type": "input_file", "file_data": PDF, "filename": "a.pdf"},
        ]},
        {"type": "message", "role": "assistant", "content": "Looking."},
        {"type": "function_call", "call_id": "call_1", "name": "weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "function_call", "call_id": "call 2!", "name": "clock", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call 2!", "output": "noon"},
        {"type": "message", "role": "developer",
         "content": [{"type": "input_text", "text": "Answer in French."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "And now?"}]},
    ]  # fmt: skip
    assert out["tools"][0] == {
        "type": "function",
        "name": "weather",
        "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": False,  # Responses would make it strict
    }
    assert out["tools"][1]["parameters"] == {"type": "object", "properties": {}}
    assert out["tool_choice"] == {"type": "function", "name": "weather"}
    assert out["parallel_tool_calls"] is False
    assert out["max_output_tokens"] == 16  # the API's floor
    assert "temperature" not in out and out["user"] == "u1"  # refused by reasoning models
    assert up_responses.request(CHAT)["temperature"] == 0.2
    assert out["reasoning"] == {"effort": "high", "summary": "auto"}
    assert out["text"] == {
        "format": {"type": "json_schema", "name": "r", "schema": {"type": "object"}}
    }
    assert "stop" not in out and "stream_options" not in out and "messages" not in out


@pytest.mark.parametrize("adapter", [up_responses, up_messages])
def test_tools_that_are_not_an_array_get_a_400(adapter: Any) -> None:
    """Found by the proxy's fuzz test: a chat client's `"tools": true` on a model reached
    through an adapter was a 500 (TypeError); it cannot be translated, so it is a 400."""
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": True}
    with pytest.raises(ApiError) as e:
        adapter.request(chat)
    assert e.value.status == 400 and "'tools' must be an array" in str(e.value)
    # Tools of other kinds are left out, as before.
    chat["tools"] = [{"type": "web_search"}, "x"]
    assert "tools" not in adapter.request(chat)


def test_responses_request_reasoning_from_a_thinking_budget_and_plain_models() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 20000}}  # fmt: skip
    out = up_responses.request(body, model_info={"reasoning_effort_options": ["low", "high"]})
    assert out["reasoning"] == {"effort": "high", "summary": "auto"}
    plain = up_responses.request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert "reasoning" not in plain and "instructions" not in plain
    fmt = up_responses.request(
        {**plain, "messages": [], "response_format": {"type": "json_object"}}
    )
    assert fmt["text"] == {"format": {"type": "json_object"}}


def test_chat_request_as_messages() -> None:
    info = {"max_output_tokens": 50000}
    out = up_messages.request({**CHAT, "max_tokens": 10000}, model_info=info)
    assert out["model"] == "oca/x" and out["stream"] is True
    assert out["max_tokens"] == 10000
    assert out["system"][:2] == [
        {"type": "text", "text": "Be brief.", "cache_control": CC},
        {"type": "text", "text": "Answer in French."},
    ]
    assert "JSON schema" in out["system"][2]["text"]  # response_format as an instruction
    msgs = out["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert msgs[0]["content"] == [
        {"type": "text", "text": "What is here?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
        {"type": "document", "title": "a.pdf",
         "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
    ]  # fmt: skip
    text, use1, use2 = msgs[1]["content"]  # reasoning is not sent back (no signature)
    assert text == {"type": "text", "text": "Looking."}
    assert use1 == {
        "type": "tool_use",
        "id": "call_1",
        "name": "weather",
        "input": {"city": "Paris"},
    }
    assert use2["input"] == {} and use2["id"].startswith("toolu_")  # an id Anthropic takes
    results = msgs[2]["content"]
    assert results[0] == {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}
    assert results[1] == {"type": "tool_result", "tool_use_id": use2["id"],
                          "content": [{"type": "text", "text": "noon"}]}  # fmt: skip
    assert results[2] == {"type": "text", "text": "And now?"}
    assert out["tools"][0] == {
        "name": "weather",
        "description": "Weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    assert out["tool_choice"] == {
        "type": "tool",
        "name": "weather",
        "disable_parallel_tool_use": True,
    }
    assert out["stop_sequences"] == ["END"]  # whitespace-only stops are refused by Anthropic
    assert out["metadata"] == {"user_id": "u1"}
    # The conversation continues a tool loop: no thinking (its signed blocks cannot come back).
    assert "thinking" not in out and out["temperature"] == 0.2


def test_messages_request_thinking_fits_max_tokens_and_drops_sampling() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}
    out = up_messages.request({**base, "reasoning_effort": "high", "max_tokens": 9000})
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert "temperature" not in out  # Anthropic refuses sampling settings with thinking
    small = up_messages.request({**base, "reasoning_effort": "high", "max_tokens": 3000})
    assert small["thinking"]["budget_tokens"] == 2999  # below max_tokens
    tiny = up_messages.request({**base, "reasoning_effort": "high", "max_tokens": 500})
    assert "thinking" not in tiny and tiny["temperature"] == 0.5
    budget = up_messages.request({**base, "thinking": {"type": "enabled", "budget_tokens": 2000}})
    assert budget["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert budget["max_tokens"] == up_messages.DEFAULT_MAX_TOKENS  # Messages requires one
    capped = up_messages.request(
        {**base, "max_tokens": 90000}, model_info={"max_output_tokens": 64000}
    )
    assert capped["max_tokens"] == 64000
    forced = up_messages.request(
        {**base, "reasoning_effort": "low", "tools": CHAT["tools"], "tool_choice": "required"}
    )
    assert forced["tool_choice"] == {"type": "any"}
    assert "thinking" not in forced  # Anthropic refuses thinking with a forced tool


def test_identity_fields_as_responses() -> None:
    """prompt_cache_key, safety_identifier, user and metadata: Responses has them all; its
    metadata takes 16 string values (keys up to 64 characters, values up to 512), while
    OCA's chat takes any JSON there (LiteLLM's own metadata): what does not fit is dropped."""
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    metadata: dict[str, Any] = {
        "tags": ["a", "b"],  # LiteLLM's own: not a string
        "n": 1,
        "none": None,
        "k" * 65: "long key",
        "big": "v" * 513,
        "ok": "yes",
        **{f"m{i}": str(i) for i in range(20)},
    }
    out = up_responses.request(
        {**base, "prompt_cache_key": "ses_1", "safety_identifier": "sid", "user": "u",
         "metadata": metadata},
        model_info={"is_reasoning_model": True},
    )  # fmt: skip
    assert out["prompt_cache_key"] == "ses_1" and out["safety_identifier"] == "sid"
    assert out["user"] == "u"
    assert out["metadata"] == {"ok": "yes", **{f"m{i}": str(i) for i in range(15)}}
    bare = up_responses.request(
        {**base, "prompt_cache_key": 3, "safety_identifier": "", "user": None,
         "metadata": {"tags": ["x"]}}
    )  # fmt: skip
    assert not {"prompt_cache_key", "safety_identifier", "user", "metadata"} & set(bare)


def test_identity_fields_as_messages() -> None:
    """Anthropic has one: metadata.user_id (an opaque end-user id for abuse detection, up to
    256 characters), from safety_identifier (made for that), else user."""
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    both = up_messages.request({**base, "safety_identifier": "sid", "user": "u"})
    assert both["metadata"] == {"user_id": "sid"}
    assert up_messages.request({**base, "user": "u"})["metadata"] == {"user_id": "u"}
    long_id = up_messages.request({**base, "safety_identifier": "x" * 300})["metadata"]["user_id"]
    assert len(long_id) <= 256 and long_id.startswith("user_")
    assert long_id == up_messages.request({**base, "user": "x" * 300})["metadata"]["user_id"]
    kept = up_messages.request({**base, "user": "y" * 256})["metadata"]["user_id"]
    assert kept == "y" * 256
    # No field for the rest: not sent (docs/models-and-apis.md, "What is lost in translation").
    rest = up_messages.request(
        {**base, "prompt_cache_key": "k", "metadata": {"a": "b"}, "safety_identifier": 5}
    )
    assert set(rest) & {"prompt_cache_key", "metadata", "safety_identifier"} == set()


# -- answers -------------------------------------------------------------------------------

RICH = Script(
    reasoning="Think first.",
    text="Hello world",
    calls=[("call_a", "weather", {"city": "Paris"}), ("call_b", "clock", {"tz": "CET"})],
    finish="tool_calls",
)


def assemble(kind: str, data: bytes) -> dict[str, Any]:
    chunks = answer_chunks(ADAPTERS[kind].answer("oca/m"), sse.parse_all(data))
    asm = ChatAssembler()
    for c in chunks:
        asm.feed(c)
    return asm.result()


@pytest.mark.parametrize(
    ("kind", "render"), [("responses", responses_sse), ("messages", messages_sse)]
)
def test_answer_as_chat_chunks(kind: str, render: Any) -> None:
    done = assemble(kind, render(RICH))
    message = done["choices"][0]["message"]
    assert message["content"] == "Hello world"
    assert message["reasoning_content"] == "Think first."
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in message["tool_calls"]] == [
        ("call_a", "weather", {"city": "Paris"}), ("call_b", "clock", {"tz": "CET"})]  # fmt: skip
    assert done["choices"][0]["finish_reason"] == "tool_calls"
    usage = done["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        10,
        5,
        15,
    )
    assert usage["prompt_tokens_details"]["cached_tokens"] == 4
    assert done["model"] == "oca/m"


@pytest.mark.parametrize(
    ("kind", "render"), [("responses", responses_sse), ("messages", messages_sse)]
)
@pytest.mark.parametrize(("finish", "expected"), [("stop", "stop"), ("length", "length")])
def test_answer_finish_reasons(kind: str, render: Any, finish: str, expected: str) -> None:
    done = assemble(kind, render(Script(text="Hi", finish=finish)))
    assert done["choices"][0]["finish_reason"] == expected


@pytest.mark.parametrize(
    ("kind", "render"), [("responses", responses_sse), ("messages", messages_sse)]
)
def test_answer_errors_and_cuts(kind: str, render: Any) -> None:
    with pytest.raises(ApiError) as err:
        assemble(kind, render(Script(text="Hi", error=(429, "slow down"))))
    assert (err.value.status, err.value.message) == (429, "slow down")
    with pytest.raises(ApiError) as cut:
        assemble(kind, render(Script(text="Hi", cut=True)))
    assert cut.value.status == 502 and "ended before" in cut.value.message


def feed(answer: Any, *events: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in events:
        out += answer.feed(e)
    return out


def test_responses_answer_failed_response_and_whole_items() -> None:
    failed = {"type": "response.failed",
              "response": {"status": "failed", "error": {"code": "server_error", "message": "boom"}}}  # fmt: skip
    (chunk,) = feed(up_responses.Answer("m"), failed)
    assert chunk["error"]["code"] == 500 and chunk["error"]["message"] == "boom"
    # An upstream that sends items only whole, and the output only in response.completed.
    whole = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "c1",
        "name": "f",
        "arguments": '{"a":1}',
    }
    msg = {"type": "message", "content": [{"type": "output_text", "text": "done"}]}
    answer = up_responses.Answer("m")
    chunks = feed(answer, {"type": "response.output_item.done", "output_index": 0, "item": whole},
                  {"type": "response.completed", "response": {"output": [whole, msg], "usage": None}})  # fmt: skip
    asm = ChatAssembler()
    for c in chunks:
        asm.feed(c)
    result = asm.result()["choices"][0]
    assert result["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a":1}'}
    assert result["message"]["content"] == "done" and result["finish_reason"] == "tool_calls"
    assert answer.finish() == []  # complete: nothing to add


def test_responses_answer_separates_reasoning_parts() -> None:
    ev = {"type": "response.reasoning_summary_text.delta", "item_id": "rs", "output_index": 0}
    chunks = feed(up_responses.Answer("m"), {**ev, "summary_index": 0, "delta": "one"},
                  {**ev, "summary_index": 1, "delta": "two"})  # fmt: skip
    assert [c["choices"][0]["delta"]["reasoning_content"] for c in chunks] == ["one", "\n\ntwo"]


def test_messages_answer_whole_input_empty_input_and_overload() -> None:
    answer = up_messages.Answer("m")
    chunks = feed(
        answer,
        {"type": "message_start", "message": {"usage": {"input_tokens": 3}}},
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "t2", "name": "g", "input": {}}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 7}},
    )  # fmt: skip
    chunks += answer.finish()  # no message_stop: complete enough once the stop reason came
    asm = ChatAssembler()
    for c in chunks:
        asm.feed(c)
    done = asm.result()
    calls = done["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == ['{"a": 1}', "{}"]
    assert done["usage"]["prompt_tokens"] == 3 and done["usage"]["completion_tokens"] == 7
    err = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    (chunk,) = up_messages.Answer("m").feed(err)
    assert chunk["error"]["code"] == 529


# -- composition with client translators ------------------------------------------------------


def drive(driver: StreamDriver, data: bytes, cuts: list[int]) -> bytes:
    out: list[bytes] = []
    last = 0
    for cut in [*sorted(cuts), len(data)]:
        if cut > last:
            out += driver(data[last:cut])
            last = cut
    out += driver(b"")
    return b"".join(out)


def chat_events(data: bytes) -> list[Any]:
    events = []
    for ev in sse.parse_all(data):
        obj = json.loads(ev.data) if ev.data != "[DONE]" else "[DONE]"
        if isinstance(obj, dict):
            obj = {k: v for k, v in obj.items() if k not in ("id", "created")}
        events.append(obj)
    return events


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["responses", "messages"]),
    cuts=st.lists(st.integers(0, 4000), max_size=12),
)
def test_any_read_split_gives_the_same_chat_stream(kind: str, cuts: list[int]) -> None:
    data = (responses_sse if kind == "responses" else messages_sse)(RICH)
    cuts = [c % (len(data) + 1) for c in cuts]

    def run(points: list[int]) -> list[Any]:
        driver = StreamDriver(AdaptedStream(ADAPTERS[kind].answer("m"), ChatStream()))
        return chat_events(drive(driver, data, points))

    whole = run([])
    assert whole[-1] == "[DONE]" and run(cuts) == whole


def test_adapted_stream_error_ends_the_client_stream_once() -> None:
    ctx = AnthropicContext(requested_model="claude-x")
    stream = AdaptedStream(up_messages.Answer("m"), AnthropicStream(ctx))
    data = messages_sse(Script(text="Hi", error=(429, "slow down")))
    driver = StreamDriver(stream)
    out = drive(driver, data, [])
    events = sse.parse_all(out)
    assert events[0].event == "message_start" and events[-1].event == "error"
    assert json.loads(events[-1].data)["error"] == {
        "type": "rate_limit_error",
        "message": "slow down",
    }
    assert stream.finish() == b"" and stream.fail(500, "x") == b""
