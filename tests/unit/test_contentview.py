"""The OCA contentview: event streams assembled (text, reasoning, tool calls with complete
arguments, usage), and API calls shown as client side and OCA side."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mitmproxy import contentviews, http
from mitmproxy.contentviews import Metadata
from mitmproxy.test import taddons, tflow

from oca_addon.mitm import contentview as cv
from oca_addon.sim import llm, streams
from oca_addon.sim.models import MODELS
from oca_addon.translate import anthropic, responses

TOOLS_CHAT = [
    {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "utc": {"type": "boolean"}},
                "required": ["city"],
            },
        },
    }
    for name in ("get_weather", "get_time")
]


def plan(model: str, text: str, conv: llm.Conversation) -> llm.Plan:
    return llm.build_plan(MODELS[model], conv, llm.parse_directives(text))


def chat_stream(text: str, model: str = "oca/gpt-4.1", tools: bool = True) -> bytes:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "stream": True,
        "stream_options": {"include_usage": True},
        **({"tools": TOOLS_CHAT} if tools else {}),
    }
    return b"".join(streams.chat_frames(plan(model, text, llm.from_chat(body)), body))


def test_chat_stream_with_reasoning_and_parallel_tool_calls() -> None:
    body = chat_stream("weather and time SIM:parallel SIM:reasoning")
    got = cv.assemble(body)
    assert got is not None and got.kind == "chat" and got.complete
    assert got.model == "oca/gpt-4.1" and got.stop == "tool_calls"
    assert got.reasoning.startswith("Thinking about")
    calls = got.tool_calls
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    for c in calls:  # fragments joined into complete JSON
        assert json.loads(c.text)["city"] and c.id
    assert got.usage and got.usage["completion_tokens"] > 0
    text = cv.render_stream(body)
    assert text.startswith("OpenAI chat completion stream · ")
    assert "── tool call 1: get_weather" in text and "── tool call 2: get_time" in text
    assert '"city":' in text and "data:" not in text
    assert "finished: tool_calls" in text and "── usage" in text


def test_chat_stream_text_split_into_many_chunks() -> None:
    body = chat_stream("stream please SIM:chunks=40", tools=False)
    got = cv.assemble(body)
    assert got is not None and got.events > 40
    assert got.text.startswith("Hello from the OCA simulator (oca/gpt-4.1). You said: stream")
    assert got.text.endswith(" t38 t39")  # every delta, in order
    assert got.text in cv.render_stream(body)


def test_anthropic_stream_native() -> None:
    body = {
        "model": "claude-sonnet-4",
        "max_tokens": 100,
        "messages": [
            {
                "role": "user",
                "content": 'SIM:reasoning SIM:tool=get_weather SIM:args={"city":"Oslo"}',
            }
        ],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "stream": True,
    }
    frames = b"".join(
        streams.messages_frames(
            plan("oca/claude-sonnet-4", body["messages"][0]["content"], llm.from_messages(body)),
            body,
        )
    )
    got = cv.assemble(frames)
    assert got is not None and got.kind == "anthropic" and got.complete
    assert got.stop == "tool_use" and got.reasoning
    assert got.tool_calls[0].name == "get_weather"
    assert json.loads(got.tool_calls[0].text) == {"city": "Oslo"}
    assert got.usage and got.usage["output_tokens"] > 0
    assert '"city": "Oslo"' in cv.render_stream(frames)


def test_anthropic_stream_translated_from_chat() -> None:
    """What a Claude client receives when OCA answered in chat: the proxy's own translation."""
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "SIM:parallel"}],
        "tools": [
            {
                "name": "get_weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
            {
                "name": "get_time",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        ],
        "stream": True,
    }
    chat_body, ctx = anthropic.anthropic_to_chat(request, target_model="oca/gpt-4.1")
    upstream = b"".join(
        streams.chat_frames(
            plan("oca/gpt-4.1", "SIM:parallel", llm.from_chat(chat_body)), chat_body
        )
    )
    translator = anthropic.AnthropicStream(ctx)
    out = b""
    for ev in cv.sse.parse_all(upstream):
        if ev.data != "[DONE]":
            out += translator.feed(json.loads(ev.data))
    out += translator.finish()
    got, orig = cv.assemble(out), cv.assemble(upstream)
    assert got is not None and orig is not None
    assert got.kind == "anthropic" and orig.kind == "chat"
    assert [c.name for c in got.tool_calls] == [c.name for c in orig.tool_calls]
    assert [json.loads(c.text) for c in got.tool_calls] == [
        json.loads(c.text) for c in orig.tool_calls
    ]
    assert got.model == "claude-sonnet-4-6"


def test_responses_stream_native_and_translated() -> None:
    body = {
        "model": "oca/gpt-5",
        "input": 'SIM:tool=lookup SIM:args={"q":"x"}',
        "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}],
        "stream": True,
    }
    frames = b"".join(
        streams.responses_frames(
            plan("oca/gpt-5", body["input"], llm.from_responses(body)), body, False
        )
    )
    got = cv.assemble(frames)
    assert got is not None and got.kind == "responses" and got.complete
    assert got.stop == "completed" and got.reasoning
    assert got.tool_calls[0].name == "lookup" and json.loads(got.tool_calls[0].text) == {"q": "x"}
    assert got.usage and got.usage["output_tokens"] > 0
    # The final event with an empty output list (LiteLLM does that): the items still count.
    frames = b"".join(
        streams.responses_frames(
            plan("oca/gpt-5", "hi", llm.from_responses({**body, "input": "hi"})), body, True
        )
    )
    got = cv.assemble(frames)
    assert got is not None and "You said: hi" in got.text

    # Translated: chat chunks -> Responses events, as the proxy does for chat-only models.
    req = {"model": "oca/gpt-4.1", "input": "translated please", "stream": True}
    chat_body, ctx = responses.responses_to_chat(req, target_model="oca/gpt-4.1")
    upstream = b"".join(
        streams.chat_frames(
            plan("oca/gpt-4.1", "translated please", llm.from_chat(chat_body)), chat_body
        )
    )
    translator = responses.ResponsesStream(ctx)
    out = b""
    for ev in cv.sse.parse_all(upstream):
        if ev.data != "[DONE]":
            out += translator.feed(json.loads(ev.data))
    out += translator.finish()
    got = cv.assemble(out)
    assert got is not None and got.kind == "responses" and got.complete
    assert "You said: translated please" in got.text


def test_completions_stream() -> None:
    body = {
        "model": "oca/llama-4",
        "prompt": "Say hi",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    frames = b"".join(
        streams.completion_frames(plan("oca/llama-4", "Say hi", llm.from_completions(body)), body)
    )
    got = cv.assemble(frames)
    assert got is not None and got.kind == "completions" and got.complete
    assert "Say hi" in got.text and got.usage


def test_cut_stream_shows_what_arrived() -> None:
    body = chat_stream('SIM:tool=get_weather SIM:args={"city":"Oslo","utc":true}')
    cut = body[: len(body) // 2]
    got = cv.assemble(cut)
    assert got is not None and not got.complete
    text = cv.render_stream(cut)
    assert "no end marker" in text
    assert "(not complete JSON)" in text or "(no arguments)" in text


def test_error_events() -> None:
    chat = b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"par"}}]}\n\n'
    chat += b'data: {"error": {"message": "upstream overloaded", "type": "server_error", "code": "503"}}\n\n'
    got = cv.assemble(chat)
    assert (
        got is not None
        and got.text == "par"
        and got.errors == ["server_error: upstream overloaded"]
    )
    assert "ERROR server_error: upstream overloaded" in cv.render_stream(chat)
    anth = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"x","usage":{}}}\n\n'
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"busy"}}\n\n'
    )
    got = cv.assemble(anth)
    assert got is not None and got.errors == ["overloaded_error: busy"]
    failed = b'event: response.failed\ndata: {"type":"response.failed","response":{"id":"r","status":"failed","error":{"code":"server_error","message":"boom"},"output":[]}}\n\n'
    got = cv.assemble(failed)
    assert got is not None and got.stop == "failed" and got.errors == ["server_error: boom"]


def test_unknown_streams_and_other_bodies() -> None:
    unknown = b"event: tick\ndata: 1\n\nevent: tick\ndata: 2\n\n"
    assert cv.assemble(unknown) is None
    assert cv.render_stream(unknown).splitlines()[0] == "event stream · 2 events"
    assert cv.render_body(b'{"a": [1, 2]}') == '{\n  "a": [\n    1,\n    2\n  ]\n}'
    assert cv.render_body(b"") == "(empty)"
    assert cv.render_body("héllo".encode()) == "héllo"
    assert cv.render_body(b"data: [DONE]\n\n", "text/event-stream").startswith("event stream")


META: dict[str, Any] = {
    "client_request": {
        "method": "POST",
        "path": "/v1/messages?beta=true",
        "headers": [["x-api-key", "<redacted>"]],
        "body": json.dumps({"model": "claude-sonnet-4-6", "messages": []}),
        "size": 50,
        "kept": 50,
        "truncated": False,
    },
    "oca_response": {"status_code": 200, "content_type": "text/event-stream", "body": ""},
    "client_response": {"streamed": True, "size": 10, "kept": 10, "truncated": False},
    "summary": {
        "comment": "anthropic → chat · claude-sonnet-4-6 → oca/gpt-4.1 · 1 in / 2 out · 5 ms"
    },
}


def test_request_and_response_sides() -> None:
    upstream = json.dumps({"model": "oca/gpt-4.1", "messages": [], "stream": True}).encode()
    text = cv.render_request(upstream, META, "POST", "/20250206/app/litellm/chat/completions")
    lines = text.splitlines()
    assert lines[0].startswith("anthropic → chat · claude-sonnet-4-6 → oca/gpt-4.1")
    assert "what the client sent: POST /v1/messages?beta=true" in text
    assert '"model": "claude-sonnet-4-6"' in text and '"model": "oca/gpt-4.1"' in text
    assert text.index("what the client sent") < text.index("what went to OCA")

    meta = json.loads(json.dumps(META))
    meta["oca_response"]["body"] = chat_stream("hi", tools=False).decode()
    anth = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"claude-sonnet-4-6","usage":{"input_tokens":3}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    text = cv.render_response(anth, "text/event-stream", meta, 200)
    assert "what the client received: 200" in text and "Anthropic Messages stream" in text
    assert "what OCA answered: 200" in text and "OpenAI chat completion stream" in text

    same = json.loads(json.dumps(META))
    same["oca_response"]["same_as_client"] = True
    assert "unchanged" in cv.render_response(anth, "text/event-stream", same, 200)

    cut = json.loads(json.dumps(META))
    cut["client_response"].update(truncated=True, size=5_000_000, kept=10)
    assert "only the first 10 B of 4.8 MB were kept" in cv.render_response(anth, None, cut, 200)
    # Flows without oca-proxy's notes: just the body.
    assert cv.render_response(b'{"a":1}', "application/json", None, 200) == '{\n  "a": 1\n}'


def test_contentview_is_registered_and_picked_automatically() -> None:
    cv.register()
    cv.register()  # idempotent
    assert contentviews.registry["oca"] is cv._view
    view = cv.OcaContentview()
    assert view.name == "OCA"
    sse_meta = Metadata(content_type="text/event-stream")
    assert view.render_priority(b"data: {}\n\n", sse_meta) > 1
    assert view.render_priority(b"", sse_meta) < 0
    assert view.render_priority(b"{}", Metadata(content_type="application/json")) < 0

    with taddons.context():
        f = tflow.tflow(resp=True)
        f.response = http.Response.make(
            200, chat_stream("SIM:parallel"), {"content-type": "text/event-stream; charset=utf-8"}
        )
        result = contentviews.prettify_message(f.response, f)
        assert result.view_name == "OCA"
        assert "tool call 2: get_time" in result.text

        # An API call through oca-proxy: both sides, chosen over the JSON view.
        f.metadata["oca"] = META
        f.request = http.Request.make(
            "POST",
            "http://127.0.0.1/20250206/app/litellm/chat/completions",
            json.dumps({"model": "oca/gpt-4.1"}),
            {"content-type": "application/json"},
        )
        result = contentviews.prettify_message(f.request, f)
        assert result.view_name == "OCA" and "what the client sent" in result.text
        f.response = http.Response.make(200, b'{"id": "x"}', {"content-type": "application/json"})
        result = contentviews.prettify_message(f.response, f)
        assert result.view_name == "OCA" and "what OCA answered" in result.text
        # Other flows keep mitmproxy's own views.
        g = tflow.tflow(resp=True)
        g.response = http.Response.make(200, b'{"a": 1}', {"content-type": "application/json"})
        assert contentviews.prettify_message(g.response, g).view_name == "JSON"


@pytest.mark.parametrize("cut", [1, 7, 33, 100])
def test_assembly_never_raises_on_partial_bodies(cut: int) -> None:
    for body in (chat_stream("SIM:parallel SIM:reasoning"), b"data: {\n\n", b"\xff\xfe data:"):
        cv.render_body(body[: len(body) * cut // 100], "text/event-stream")
