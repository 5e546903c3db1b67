"""Anthropic Messages <-> Chat Completions translation (oca_addon.translate.anthropic)."""

from __future__ import annotations

import json
import re
from typing import Any

import anthropic
import pytest
import sdk_harness
from anthropic.types import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oca_addon.core import sse
from oca_addon.core.errors import ApiError, RequestError
from oca_addon.translate.anthropic import (
    AnthropicContext,
    AnthropicStream,
    NativeMessagesAssembler,
    NativeMessagesStream,
    anthropic_to_chat,
    chat_to_anthropic,
    prepare_native_messages,
    upstream_tool_name,
)
from oca_addon.translate.chat import ChatAssembler

httpx = sdk_harness.http_module("messages")  # anthropic's: httpx2 for anthropic >= 2.x

MODEL = "oca/gpt-4.1"
REASONING = {"is_reasoning_model": True, "max_output_tokens": 100000}
PLAIN = {"is_reasoning_model": False, "max_output_tokens": 32768}


def translate(body: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], AnthropicContext]:
    base = {"model": "claude-sonnet-4-6", "max_tokens": 1024}
    return anthropic_to_chat({**base, **body}, target_model=MODEL, **kw)


def chat(body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return translate(body, **kw)[0]


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def tool_use(id: str, name: str = "Read", input: Any = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": id, "name": name, "input": input or {}}


def tool_result(id: str, content: Any = "ok", **kw: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": id, "content": content, **kw}


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}


# --------------------------------------------------------------------------- invariants


TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def check_chat_request(out: dict[str, Any]) -> None:
    """What OCA (LiteLLM / OpenAI) accepts."""
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True}
    assert isinstance(out["model"], str)
    messages = out["messages"]
    assert isinstance(messages, list) and messages
    names = set()
    for tool in out.get("tools", []):
        assert tool["type"] == "function"
        assert TOOL_NAME.fullmatch(tool["function"]["name"])
        assert isinstance(tool["function"]["parameters"], dict)
        names.add(tool["function"]["name"])
    if isinstance(out.get("tool_choice"), dict):
        assert out["tool_choice"]["function"]["name"] in names
    if "tool_choice" in out or "parallel_tool_calls" in out:
        assert names
    open_calls: set[str] | None = None  # ids still to answer after the last assistant message
    for i, m in enumerate(messages):
        role = m["role"]
        assert role in ("system", "user", "assistant", "tool")
        if role == "system":
            assert i == 0 and isinstance(m["content"], str) and m["content"]
        if role != "tool" and open_calls:
            raise AssertionError(f"tool calls {open_calls} unanswered before messages[{i}]")
        if role == "tool":
            assert open_calls is not None, f"messages[{i}]: tool message without tool call"
            assert m["tool_call_id"] in open_calls, f"messages[{i}]: unknown tool_call_id"
            open_calls.discard(m["tool_call_id"])
            assert isinstance(m["content"], str)
            continue
        open_calls = None
        if role == "assistant":
            calls = m.get("tool_calls")
            if m["content"] is None:
                assert calls
            else:
                assert isinstance(m["content"], str) and m["content"]
            if calls:
                open_calls = set()
                for call in calls:
                    assert call["type"] == "function"
                    assert isinstance(call["id"], str) and len(call["id"]) <= 40
                    assert TOOL_NAME.fullmatch(call["function"]["name"])
                    assert isinstance(json.loads(call["function"]["arguments"]), dict)
                    open_calls.add(call["id"])
        if role == "user":
            content = m["content"]
            if isinstance(content, str):
                continue
            assert isinstance(content, list) and content
            for part in content:
                assert part["type"] in ("text", "image_url", "file")
                if part["type"] == "image_url":
                    assert set(part["image_url"]) == {"url"}  # never "detail"
                if part["type"] == "text":
                    assert isinstance(part["text"], str)
    assert not open_calls


STOP_REASONS = {"end_turn", "max_tokens", "tool_use", "refusal", "stop_sequence"}


def check_grammar(data: bytes) -> list[dict[str, Any]]:
    """The Messages stream grammar, strictly; returns the payloads."""
    assert data.endswith(b"\n\n")
    events = sse.parse_all(data)
    assert events
    payloads = []
    for ev in events:
        payload = ev.json()
        assert ev.event == payload["type"]
        payloads.append(payload)
    if payloads[0]["type"] == "error":
        assert len(payloads) == 1
        assert set(payloads[0]["error"]) == {"type", "message"}
        return payloads
    start = payloads[0]
    assert start["type"] == "message_start"
    message = start["message"]
    assert message["content"] == [] and message["role"] == "assistant"
    assert message["stop_reason"] is None
    assert message["usage"]["input_tokens"] > 0
    open_block: dict[str, Any] | None = None
    next_index = 0
    kinds: list[str] = []
    had_delta = False
    ended = False
    for p in payloads[1:]:
        assert not ended, f"event after the end: {p}"
        t = p["type"]
        if t == "ping":
            continue
        if t == "content_block_start":
            assert open_block is None, "two blocks open at once"
            assert p["index"] == next_index
            block = p["content_block"]
            assert block["type"] in ("text", "thinking", "tool_use")
            if block["type"] == "text":
                assert block["text"] == ""
            if block["type"] == "thinking":
                assert block["thinking"] == ""
            if block["type"] == "tool_use":
                assert isinstance(block["id"], str) and block["id"]
                assert isinstance(block["name"], str) and block["name"]
                assert block["input"] == {}
            open_block = {"index": p["index"], "type": block["type"], "sig": False, "json": 0}
            kinds.append(block["type"])
        elif t == "content_block_delta":
            assert open_block is not None and p["index"] == open_block["index"]
            d = p["delta"]
            if open_block["type"] == "text":
                assert d["type"] == "text_delta" and isinstance(d["text"], str)
            elif open_block["type"] == "thinking":
                assert not open_block["sig"], "delta after the signature"
                if d["type"] == "signature_delta":
                    assert isinstance(d["signature"], str) and d["signature"]
                    open_block["sig"] = True
                else:
                    assert d["type"] == "thinking_delta" and isinstance(d["thinking"], str)
            else:
                assert d["type"] == "input_json_delta" and isinstance(d["partial_json"], str)
                open_block["json"] += 1
        elif t == "content_block_stop":
            assert open_block is not None and p["index"] == open_block["index"]
            if open_block["type"] == "thinking":
                assert open_block["sig"], "thinking block closed without a signature"
            if open_block["type"] == "tool_use":
                assert open_block["json"] > 0
            open_block = None
            next_index += 1
        elif t == "message_delta":
            assert open_block is None and not had_delta
            assert p["delta"]["stop_reason"] in STOP_REASONS
            assert p["delta"]["stop_sequence"] is None
            assert isinstance(p["usage"]["output_tokens"], int)
            if p["delta"]["stop_reason"] == "tool_use":
                assert "tool_use" in kinds
            elif p["delta"]["stop_reason"] == "end_turn":
                assert "tool_use" not in kinds
            had_delta = True
        elif t == "message_stop":
            assert had_delta
            ended = True
        elif t == "error":
            assert open_block is None
            assert set(p["error"]) == {"type", "message"}
            ended = True
        else:
            raise AssertionError(f"unexpected event {t}")
    assert ended
    return payloads


def run_stream(chunks: list[Any], ctx: AnthropicContext | None = None) -> bytes:
    stream = AnthropicStream(ctx or AnthropicContext("claude-x", input_tokens_estimate=42))
    data = b"".join(stream.feed(c) for c in chunks)
    return data + stream.finish()


def delta(**d: Any) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d}]}


def finish(reason: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


def tc(index: int, id: str | None = None, name: str | None = None, args: str | None = None):
    fn: dict[str, Any] = {}
    if name is not None:
        fn["name"] = name
    if args is not None:
        fn["arguments"] = args
    call: dict[str, Any] = {"index": index, "function": fn}
    if id is not None:
        call["id"] = id
        call["type"] = "function"
    return delta(tool_calls=[call])


USAGE = {
    "choices": [],
    "usage": {
        "prompt_tokens": 1000,
        "completion_tokens": 50,
        "total_tokens": 1050,
        "prompt_tokens_details": {"cached_tokens": 600},
    },
}


def sdk_final_message(data: bytes) -> Message:
    """Replays the bytes through the real anthropic SDK's stream accumulator."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=data)

    client = sdk_harness.client("messages", "http://proxy.test", handler)
    with client.messages.stream(
        model="claude-x", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        for _ in stream:
            pass
        return stream.get_final_message()


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "request body must be a JSON object"),
        ({"messages": [user("hi")]}, "model: field required"),
        ({"model": 3, "messages": [user("hi")]}, "model: must be a non-empty string"),
        ({"model": "m"}, "messages: field required"),
        ({"model": "m", "messages": {}}, "messages: expected an array"),
        ({"model": "m", "messages": []}, "messages: at least one message"),
        ({"model": "m", "messages": ["hi"]}, "messages[0]: expected an object, got string"),
        ({"model": "m", "messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "m", "messages": [user([5])]}, "messages[0].content[0]: expected a content"),
        ({"model": "m", "messages": [user([{"text": "x"}])]}, "messages[0].content[0].type"),
        ({"model": "m", "messages": [user([{"type": "text", "text": 1}])]}, ".content[0].text"),
        ({"model": "m", "max_tokens": 0, "messages": [user("x")]}, "max_tokens: expected a pos"),
        ({"model": "m", "max_tokens": "9", "messages": [user("x")]}, "max_tokens"),
        ({"model": "m", "max_tokens": True, "messages": [user("x")]}, "max_tokens"),
        ({"model": "m", "system": 3, "messages": [user("x")]}, "system: expected"),
        ({"model": "m", "tools": {}, "messages": [user("x")]}, "tools: expected an array"),
        ({"model": "m", "tools": [{"input_schema": {}}], "messages": [user("x")]}, "tools[0].name"),
        ({"model": "m", "temperature": "hot", "messages": [user("x")]}, "temperature"),
        ({"model": "m", "stop_sequences": "x", "messages": [user("x")]}, "stop_sequences"),
        ({"model": "m", "messages": [user("")]}, "nothing to send"),
        (
            {"model": "m", "messages": [user([{"type": "image", "source": {"type": "file"}}])]},
            'messages[0].content[0].source.type: image source "file" is not supported',
        ),
        (
            {"model": "m", "messages": [user("a"), assistant([tool_use("t", input=[1])])]},
            "messages[1].content[0].input: expected an object, got array",
        ),
        (
            {"model": "m", "messages": [user([tool_result("t", content=7)])]},
            "messages[0].content[0].content: expected a string or an array",
        ),
    ],
)
def test_invalid_requests_are_rejected_with_a_precise_message(body: Any, fragment: str) -> None:
    with pytest.raises(RequestError) as info:
        anthropic_to_chat(body, target_model=MODEL)
    assert fragment in info.value.message
    assert info.value.status == 400


def test_tool_choice_with_unknown_type_is_rejected() -> None:
    tools = [{"name": "Read", "input_schema": {"type": "object"}}]
    with pytest.raises(RequestError, match=r"tool_choice\.type"):
        chat({"messages": [user("x")], "tools": tools, "tool_choice": {"type": "sometimes"}})


def test_unknown_fields_and_blocks_are_dropped() -> None:
    out = chat(
        {
            "messages": [user([text("hi"), {"type": "mystery", "x": 1}])],
            "top_k": 5,
            "service_tier": "auto",
            "context_management": {"edits": []},
            "betas": ["x"],
            "mcp_servers": [],
        }
    )
    assert out["messages"] == [{"role": "user", "content": "hi"}]
    for key in ("top_k", "service_tier", "context_management", "betas", "mcp_servers"):
        assert key not in out
    check_chat_request(out)


def test_max_tokens_missing_defaults_to_the_model_limit() -> None:
    body = {"model": "m", "messages": [user("x")]}
    out, _ = anthropic_to_chat(body, target_model=MODEL, model_info=PLAIN)
    assert out["max_tokens"] == 32768
    out, _ = anthropic_to_chat(body, target_model=MODEL)
    assert "max_tokens" not in out


def test_max_tokens_clamped_to_model_limit() -> None:
    assert (
        chat({"messages": [user("x")], "max_tokens": 64000}, model_info=PLAIN)["max_tokens"]
        == 32768
    )
    assert chat({"messages": [user("x")], "max_tokens": 100}, model_info=PLAIN)["max_tokens"] == 100
    assert chat({"messages": [user("x")], "max_tokens": 64000})["max_tokens"] == 64000


# --------------------------------------------------------------------------- system


def test_system_string_and_blocks_with_cache_control() -> None:
    out = chat(
        {
            "system": [
                {"type": "text", "text": "one", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "two"},
            ],
            "messages": [user([{**text("hi"), "cache_control": {"type": "ephemeral"}}])],
        }
    )
    assert out["messages"][0] == {"role": "system", "content": "one\n\ntwo"}
    assert out["messages"][1] == {"role": "user", "content": "hi"}
    assert "cache_control" not in json.dumps(out)
    assert chat({"system": "plain", "messages": [user("x")]})["messages"][0]["content"] == "plain"


def test_billing_line_removed() -> None:
    billing = "x-anthropic-billing-header: cc_version=2.0.14.abc; cc_entrypoint=cli; cch=1234;"
    out = chat(
        {
            "system": [text(billing), text("You are Claude Code."), text("Rules\n" + billing)],
            "messages": [user("x")],
        }
    )
    assert out["messages"][0]["content"] == "You are Claude Code.\n\nRules"
    assert "billing" not in json.dumps(out)
    only = chat({"system": billing, "messages": [user("x")]})
    assert only["messages"][0]["role"] == "user"


def test_system_messages_inside_messages_merge_into_leading_system() -> None:
    out = chat(
        {
            "system": "top",
            "messages": [
                {"role": "system", "content": "first"},
                user("hi"),
                assistant("hello"),
                {"role": "system", "content": [text("second")]},
                user("again"),
            ],
        }
    )
    assert out["messages"] == [
        {"role": "system", "content": "top\n\nfirst\n\nsecond"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "again"},
    ]


# --------------------------------------------------------------------------- content


def test_images_base64_and_url_without_detail() -> None:
    url_image = {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}
    out = chat({"messages": [user([text("look"), IMAGE, url_image])]})
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
    ]
    check_chat_request(out)


def test_images_for_a_model_without_vision_become_a_note() -> None:
    out = chat({"messages": [user([text("look"), IMAGE])]}, model_info={"supports_vision": False})
    assert out["messages"][0]["content"][1]["type"] == "text"
    assert "does not accept images" in out["messages"][0]["content"][1]["text"]


def test_documents() -> None:
    pdf = {
        "type": "document",
        "title": "spec.pdf",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
    }
    plain = {
        "type": "document",
        "title": "notes",
        "source": {"type": "text", "media_type": "text/plain", "data": "hello notes"},
    }
    b64text = {
        "type": "document",
        "source": {"type": "base64", "media_type": "text/plain", "data": "aGVsbG8="},
    }
    out = chat({"messages": [user([pdf, plain, b64text, text("summarize")])]})
    parts = out["messages"][0]["content"]
    assert {"type": "text", "text": "[Document: spec.pdf]"} in parts
    assert {
        "type": "file",
        "file": {"file_data": "data:application/pdf;base64,JVBERi0x", "filename": "spec.pdf"},
    } in parts
    texts = [p["text"] for p in parts if p["type"] == "text"]
    assert any("notes" in t and "hello notes" in t for t in texts)
    assert any(t.endswith("hello") for t in texts)
    assert texts[-1] == "summarize"
    check_chat_request(out)


def test_thinking_and_server_tool_blocks_never_leak() -> None:
    out = chat(
        {
            "messages": [
                user("q"),
                assistant(
                    [
                        {"type": "thinking", "thinking": "SECRET-THOUGHT", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "REDACTED-DATA"},
                        {
                            "type": "server_tool_use",
                            "id": "srv_1",
                            "name": "web_search",
                            "input": {},
                        },
                        {"type": "web_search_tool_result", "tool_use_id": "srv_1", "content": []},
                        text("answer"),
                    ]
                ),
                user("next"),
            ]
        }
    )
    dumped = json.dumps(out)
    assert "SECRET-THOUGHT" not in dumped and "REDACTED-DATA" not in dumped
    assert "srv_1" not in dumped
    assert out["messages"][1] == {"role": "assistant", "content": "answer"}


def test_assistant_with_only_thinking_is_dropped_and_users_merge() -> None:
    out = chat(
        {
            "messages": [
                user("a"),
                assistant([{"type": "thinking", "thinking": "t", "signature": "s"}]),
                user("b"),
            ]
        }
    )
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]


def test_consecutive_same_role_messages_merge() -> None:
    out = chat({"messages": [user("a"), user([text("b")]), assistant("c"), assistant("d")]})
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "c\n\nd"},
    ]


def test_empty_text_blocks_dropped() -> None:
    out = chat({"messages": [user([text(""), text("x")]), assistant([text(""), text("y")])]})
    assert out["messages"] == [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "y"},
    ]


# --------------------------------------------------------------------------- tools in history


def test_tool_use_and_results_placement_and_order() -> None:
    out = chat(
        {
            "messages": [
                user("do it"),
                assistant([text("sure"), tool_use("t1", "Read", {"p": 1}), tool_use("t2", "Grep")]),
                user(
                    [
                        text("<system-reminder>keep going</system-reminder>"),
                        tool_result("t2", "grep out"),
                        tool_result("t1", [text("line1"), text("line2")]),
                    ]
                ),
            ]
        }
    )
    m = out["messages"]
    assert m[1] == {
        "role": "assistant",
        "content": "sure",
        "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "Read", "arguments": '{"p":1}'}},
            {"id": "t2", "type": "function", "function": {"name": "Grep", "arguments": "{}"}},
        ],
    }
    assert m[2] == {"role": "tool", "tool_call_id": "t2", "content": "grep out"}
    assert m[3] == {"role": "tool", "tool_call_id": "t1", "content": "line1\n\nline2"}
    assert m[4] == {"role": "user", "content": "<system-reminder>keep going</system-reminder>"}
    check_chat_request(out)


def test_assistant_content_null_with_only_tool_calls() -> None:
    out = chat({"messages": [user("x"), assistant([tool_use("t1")]), user([tool_result("t1")])]})
    assert out["messages"][1]["content"] is None
    assert out["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": "ok"}
    assert len(out["messages"]) == 3  # only tool messages for a tool-results-only user turn


def test_tool_result_error_is_visible() -> None:
    out = chat(
        {
            "messages": [
                user("x"),
                assistant([tool_use("t1")]),
                user([tool_result("t1", "file not found", is_error=True)]),
            ]
        }
    )
    assert out["messages"][2]["content"] == "Error: file not found"


def test_images_in_tool_results_move_to_a_following_user_message() -> None:
    out = chat(
        {
            "messages": [
                user("screenshot"),
                assistant([tool_use("t1", "Screenshot"), tool_use("t2", "Read")]),
                user(
                    [
                        tool_result("t1", [text("captured"), IMAGE]),
                        tool_result("t2", [IMAGE]),
                        text("what do you see?"),
                    ]
                ),
            ]
        }
    )
    m = out["messages"]
    assert [x["role"] for x in m] == ["user", "assistant", "tool", "tool", "user"]
    assert m[2]["content"] == "captured"
    assert m[3]["content"]  # never empty
    parts = m[4]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "text", "image_url", "text"]
    assert "t1" in parts[0]["text"] and "t2" in parts[2]["text"]
    assert parts[-1] == {"type": "text", "text": "what do you see?"}
    check_chat_request(out)


def test_orphan_tool_result_becomes_text_and_missing_result_is_synthesized() -> None:
    out = chat(
        {
            "messages": [
                user([tool_result("gone", "old output"), text("hi")]),
                assistant([tool_use("t1"), tool_use("t2")]),
                user([tool_result("t1", "one")]),
                assistant([tool_use("t3")]),
            ]
        }
    )
    m = out["messages"]
    assert m[0]["role"] == "user" and "old output" in json.dumps(m[0])
    assert [x["role"] for x in m] == ["user", "assistant", "tool", "tool", "assistant", "tool"]
    assert m[3]["tool_call_id"] == "t2" and "no result" in m[3]["content"]
    assert m[5]["tool_call_id"] == "t3"
    check_chat_request(out)


def test_long_tool_ids_are_shortened_consistently() -> None:
    long_id = "toolu_" + "x" * 60
    out = chat(
        {"messages": [user("x"), assistant([tool_use(long_id)]), user([tool_result(long_id)])]}
    )
    call_id = out["messages"][1]["tool_calls"][0]["id"]
    assert len(call_id) <= 40
    assert out["messages"][2]["tool_call_id"] == call_id


# --------------------------------------------------------------------------- tool definitions


def test_tools_translation_and_hosted_tools_dropped() -> None:
    out = chat(
        {
            "messages": [user("x")],
            "tools": [
                {
                    "name": "Read",
                    "description": "Read a file",
                    "input_schema": {"type": "object", "properties": {"p": {"type": "string"}}},
                    "cache_control": {"type": "ephemeral"},
                    "defer_loading": True,
                },
                {"type": "custom", "name": "Grep", "input_schema": {"type": "object"}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
                {"type": "bash_20250124", "name": "bash"},
                {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
                {"type": "computer_20250124", "name": "computer", "display_width_px": 1},
            ],
        }
    )
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "Read",
                "description": "Read a file",
                "parameters": {"type": "object", "properties": {"p": {"type": "string"}}},
            },
        },
        {"type": "function", "function": {"name": "Grep", "parameters": {"type": "object"}}},
    ]


def test_only_hosted_tools_means_no_tools_and_no_tool_choice() -> None:
    out = chat(
        {
            "messages": [user("x")],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        }
    )
    assert "tools" not in out and "tool_choice" not in out and "parallel_tool_calls" not in out


def test_tool_name_shortening_round_trip() -> None:
    long_name = "mcp__some-very-long-server-name__" + "do_something_really_specific_" * 3
    odd_name = "mcp__srv__tool.with.dots"
    assert len(long_name) > 64
    out, ctx = translate(
        {
            "messages": [
                user("x"),
                assistant([tool_use("t1", long_name, {"a": 1})]),
                user([tool_result("t1")]),
            ],
            "tools": [
                {"name": long_name, "input_schema": {"type": "object"}},
                {"name": odd_name, "input_schema": {"type": "object"}},
                {"name": "Read", "input_schema": {"type": "object"}},
            ],
            "tool_choice": {"type": "tool", "name": long_name},
        }
    )
    short = upstream_tool_name(long_name)
    assert short == upstream_tool_name(long_name)  # deterministic
    assert len(short) <= 64 and TOOL_NAME.fullmatch(short)
    assert short != upstream_tool_name(long_name + "2")
    names = [t["function"]["name"] for t in out["tools"]]
    assert names == [short, upstream_tool_name(odd_name), "Read"]
    assert out["messages"][1]["tool_calls"][0]["function"]["name"] == short
    assert out["tool_choice"] == {"type": "function", "function": {"name": short}}
    assert ctx.tool_names == {short: long_name, upstream_tool_name(odd_name): odd_name}
    check_chat_request(out)

    # the answer maps names back, streamed and not
    data = run_stream(
        [tc(0, "call_1", short, '{"a": 1}'), tc(1, "call_2", "Read", "{}"), finish("tool_calls")],
        ctx,
    )
    blocks = [p["content_block"] for p in check_grammar(data) if p["type"] == "content_block_start"]
    assert [b["name"] for b in blocks] == [long_name, "Read"]
    completion = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": short, "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    assert chat_to_anthropic(completion, ctx)["content"][0]["name"] == long_name


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        (
            {"type": "tool", "name": "Read"},
            {"type": "function", "function": {"name": "Read"}},
            None,
        ),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
        ({"type": "tool", "name": "web_search"}, "auto", None),  # a dropped hosted tool
    ],
)
def test_tool_choice_mapping(choice: Any, expected: Any, parallel: Any) -> None:
    out = chat(
        {
            "messages": [user("x")],
            "tools": [
                {"name": "Read", "input_schema": {"type": "object"}},
                {"type": "web_search_20250305", "name": "web_search"},
            ],
            "tool_choice": choice,
        }
    )
    assert out["tool_choice"] == expected
    if parallel is None:
        assert "parallel_tool_calls" not in out
    else:
        assert out["parallel_tool_calls"] is parallel


# --------------------------------------------------------------------------- parameters


def test_sampling_parameters_and_stop_sequences() -> None:
    out = chat(
        {
            "messages": [user("x")],
            "temperature": 0.3,
            "top_p": 0.9,
            "top_k": 40,
            "stop_sequences": ["END", "", "STOP"],
        },
        model_info=PLAIN,
    )
    assert out["temperature"] == 0.3 and out["top_p"] == 0.9
    assert out["stop"] == ["END", "STOP"]
    assert "top_k" not in out and "stop_sequences" not in out


def test_reasoning_models_get_no_temperature() -> None:
    out = chat({"messages": [user("x")], "temperature": 1, "top_p": 0.5}, model_info=REASONING)
    assert "temperature" not in out and "top_p" not in out


@pytest.mark.parametrize(
    ("extra", "default", "expected"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, None, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 4096}}, None, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 4097}}, None, "medium"),
        ({"thinking": {"type": "enabled", "budget_tokens": 16384}}, None, "medium"),
        ({"thinking": {"type": "enabled", "budget_tokens": 31999}}, "low", "high"),
        ({"thinking": {"type": "adaptive"}}, "high", "medium"),
        ({"output_config": {"effort": "low"}}, "high", "low"),
        ({"output_config": {"effort": "max"}}, None, "high"),
        (
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}},
            None,
            "high",
        ),
        ({"thinking": {"type": "disabled"}}, "high", None),
        ({}, "high", "high"),
        ({}, None, None),
    ],
)
def test_reasoning_effort(extra: dict[str, Any], default: str | None, expected: str | None) -> None:
    out = chat({"messages": [user("x")], **extra}, model_info=REASONING, reasoning_effort=default)
    assert out.get("reasoning_effort") == expected
    assert "thinking" not in out and "output_config" not in out


def test_reasoning_effort_only_for_reasoning_models() -> None:
    body = {"messages": [user("x")], "thinking": {"type": "enabled", "budget_tokens": 2000}}
    assert "reasoning_effort" not in chat(body, model_info=PLAIN, reasoning_effort="high")
    assert chat(body)["reasoning_effort"] == "low"  # unknown model: sent


def test_reasoning_effort_fits_the_models_options() -> None:
    info = {**REASONING, "reasoning_effort_options": ["low", "medium"]}
    out = chat({"messages": [user("x")], "output_config": {"effort": "max"}}, model_info=info)
    assert out["reasoning_effort"] == "medium"


def test_metadata_user_id() -> None:
    assert chat({"messages": [user("x")], "metadata": {"user_id": "alice"}})["user"] == "alice"
    long_id = json.dumps({"device_id": "d" * 64, "account_uuid": "a", "session_id": "s"})
    hashed = chat({"messages": [user("x")], "metadata": {"user_id": long_id}})["user"]
    assert len(hashed) <= 64 and long_id not in hashed
    assert hashed == chat({"messages": [user("y")], "metadata": {"user_id": long_id}})["user"]
    assert "user" not in chat({"messages": [user("x")], "metadata": {}})
    out = chat({"messages": [user("x")], "metadata": {"user_id": None}})
    assert "user" not in out and "safety_identifier" not in out and "metadata" not in out
    # Anthropic refuses these; so does the proxy, with the field named.
    for metadata, param in (({"user_id": 5}, "metadata.user_id"), ("u", "metadata")):
        with pytest.raises(RequestError) as e:
            chat({"messages": [user("x")], "metadata": metadata})
        assert e.value.param == param and "expected" in e.value.message


def test_output_fields_and_context() -> None:
    out, ctx = translate({"model": "claude-opus-4", "stream": True, "messages": [user("x")]})
    assert out["model"] == MODEL
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert ctx.requested_model == "claude-opus-4"
    assert ctx.stream is True
    assert ctx.input_tokens_estimate > 0
    out, _ = translate({"stream": False, "messages": [user("x")]})
    assert out["stream"] is True


def test_structured_output_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    out = chat(
        {
            "messages": [user("x")],
            "output_config": {"format": {"type": "json_schema", "schema": schema}},
        }
    )
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }


def test_input_body_is_not_mutated() -> None:
    body = {
        "model": "m",
        "max_tokens": 10,
        "system": [text("x-anthropic-billing-header: a\nsys")],
        "messages": [user("x"), assistant([tool_use("t1")]), user([tool_result("t1", [IMAGE])])],
        "tools": [{"name": "Read", "input_schema": {"type": "object"}, "cache_control": {}}],
    }
    before = json.dumps(body, sort_keys=True)
    anthropic_to_chat(body, target_model=MODEL)
    prepare_native_messages(body, target_model=MODEL)
    assert json.dumps(body, sort_keys=True) == before


# --------------------------------------------------------------------------- streaming


def test_stream_text_only() -> None:
    data = run_stream(
        [
            delta(role="assistant", content=""),
            delta(content="Hel"),
            delta(content="lo"),
            finish("stop"),
            USAGE,
        ]
    )
    payloads = check_grammar(data)
    types = [p["type"] for p in payloads]
    assert types == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert payloads[0]["message"]["usage"]["input_tokens"] == 42
    assert payloads[0]["message"]["model"] == "claude-x"
    md = payloads[-2]
    assert md["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert md["usage"] == {
        "input_tokens": 400,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 600,
        "output_tokens": 50,
    }
    assert b"[DONE]" not in data
    msg = sdk_final_message(data)
    assert msg.content[0].type == "text" and msg.content[0].text == "Hello"
    assert msg.usage.input_tokens == 400 and msg.usage.cache_read_input_tokens == 600


def test_stream_frames_are_event_plus_data() -> None:
    data = run_stream([delta(content="x")])
    for frame in data.decode().split("\n\n")[:-1]:
        lines = frame.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: ")


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning", "thinking"])
def test_stream_thinking_then_text(key: str) -> None:
    data = run_stream(
        [
            delta(**{key: "Let me "}),
            delta(**{key: "think."}),
            delta(content="Answer"),
            finish("stop"),
        ]
    )
    payloads = check_grammar(data)
    kinds = [(p["type"], p.get("delta", {}).get("type")) for p in payloads]
    assert kinds[2:8] == [
        ("content_block_start", None),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "signature_delta"),
        ("content_block_stop", None),
        ("content_block_start", None),
    ]
    msg = sdk_final_message(data)
    assert msg.content[0].type == "thinking"
    assert msg.content[0].thinking == "Let me think." and msg.content[0].signature
    assert msg.content[1].type == "text" and msg.content[1].text == "Answer"


def test_stream_tool_calls_sequential_with_text_before_and_after() -> None:
    chunks = [
        delta(content="I'll read both."),
        tc(0, "call_a", "Read", ""),
        tc(0, args='{"file_path"'),
        tc(0, args=': "/a"}'),
        tc(1, "call_b", "Read", '{"file_path": "/b"}'),
        delta(content="Done."),
        finish("tool_calls"),
        USAGE,
    ]
    data = run_stream(chunks)
    payloads = check_grammar(data)
    starts = [p for p in payloads if p["type"] == "content_block_start"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [
        (0, "text"),
        (1, "tool_use"),
        (2, "tool_use"),
        (3, "text"),
    ]
    assert starts[1]["content_block"]["id"] == "call_a"
    fragments = [
        p["delta"]["partial_json"]
        for p in payloads
        if p["type"] == "content_block_delta" and p["index"] == 1
    ]
    assert fragments == ['{"file_path"', ': "/a"}']  # passed through as they arrive
    assert payloads[-2]["delta"]["stop_reason"] == "tool_use"
    msg = sdk_final_message(data)
    assert [b.type for b in msg.content] == ["text", "tool_use", "tool_use", "text"]
    assert msg.content[1].input == {"file_path": "/a"}
    assert msg.content[2].input == {"file_path": "/b"}
    assert msg.stop_reason == "tool_use"


def test_stream_parallel_tool_calls_with_interleaved_fragments() -> None:
    chunks = [
        tc(0, "call_a", "Read", ""),
        tc(1, "call_b", "Write", ""),
        tc(0, args='{"path":'),
        tc(1, args='{"path": "/b",'),
        tc(0, args=' "/a"}'),
        tc(1, args=' "text": "x"}'),
        tc(2, "call_c", "Grep", ""),
        tc(2, args='{"q": "z"}'),
        finish("tool_calls"),
    ]
    data = run_stream(chunks)
    payloads = check_grammar(data)
    starts = [p["content_block"] for p in payloads if p["type"] == "content_block_start"]
    assert [s["id"] for s in starts] == ["call_a", "call_b", "call_c"]
    msg = sdk_final_message(data)
    assert [(b.name, b.input) for b in msg.content] == [
        ("Read", {"path": "/a"}),
        ("Write", {"path": "/b", "text": "x"}),
        ("Grep", {"q": "z"}),
    ]


def test_stream_parallel_calls_in_one_chunk() -> None:
    both = delta(
        tool_calls=[
            {
                "index": 0,
                "id": "a",
                "type": "function",
                "function": {"name": "A", "arguments": "{}"},
            },
            {
                "index": 1,
                "id": "b",
                "type": "function",
                "function": {"name": "B", "arguments": '{"x":1}'},
            },
        ]
    )
    data = run_stream([both, finish("tool_calls")])
    check_grammar(data)
    msg = sdk_final_message(data)
    assert [(b.name, b.input) for b in msg.content] == [("A", {}), ("B", {"x": 1})]


def test_stream_tool_call_without_arguments_gets_empty_object() -> None:
    data = run_stream([tc(0, "call_a", "List"), finish("tool_calls")])
    payloads = check_grammar(data)
    jsons = [p["delta"]["partial_json"] for p in payloads if p["type"] == "content_block_delta"]
    assert jsons == ["{}"]
    assert sdk_final_message(data).content[0].input == {}


def test_stream_same_index_reused_with_new_id_is_a_new_call() -> None:
    data = run_stream([tc(0, "a", "A", "{}"), tc(0, "b", "B", "{}"), finish("stop")])
    payloads = check_grammar(data)
    starts = [p["content_block"]["name"] for p in payloads if p["type"] == "content_block_start"]
    assert starts == ["A", "B"]
    assert payloads[-2]["delta"]["stop_reason"] == "tool_use"  # tools present despite "stop"


def test_stream_tool_call_without_id_gets_one() -> None:
    data = run_stream([tc(0, None, "A", '{"k": 1}'), finish("tool_calls")])
    block = next(p for p in check_grammar(data) if p["type"] == "content_block_start")
    assert block["content_block"]["id"].startswith("toolu_")


def test_stream_name_arriving_after_arguments() -> None:
    data = run_stream([tc(0, "a", None, '{"k":'), tc(0, None, "A", " 1}"), finish("tool_calls")])
    check_grammar(data)
    msg = sdk_final_message(data)
    assert msg.content[0].name == "A" and msg.content[0].input == {"k": 1}


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("tool_calls", "end_turn"),  # no tool call actually came
        (None, "end_turn"),
    ],
)
def test_stream_stop_reasons(reason: str | None, expected: str) -> None:
    chunks: list[Any] = [delta(content="x")]
    if reason:
        chunks.append(finish(reason))
    payloads = check_grammar(run_stream(chunks))
    assert payloads[-2]["delta"]["stop_reason"] == expected


def test_stream_usage_without_usage_chunk_is_estimated() -> None:
    payloads = check_grammar(run_stream([delta(content="x" * 400), finish("stop")]))
    usage = payloads[-2]["usage"]
    assert usage["input_tokens"] == 42 and usage["output_tokens"] >= 100


def test_stream_usage_with_anthropic_style_cache_fields() -> None:
    chunk = {
        "choices": [],
        "usage": {
            "prompt_tokens": 500,
            "completion_tokens": 7,
            "cache_read_input_tokens": 300,
            "cache_creation_input_tokens": 100,
        },
    }
    payloads = check_grammar(run_stream([delta(content="x"), finish("stop"), chunk]))
    assert payloads[-2]["usage"] == {
        "input_tokens": 100,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 300,
        "output_tokens": 7,
    }


def test_stream_empty_upstream() -> None:
    stream = AnthropicStream(AnthropicContext("claude-x"))
    data = stream.finish()
    payloads = check_grammar(data)
    assert [p["type"] for p in payloads] == [
        "message_start",
        "ping",
        "message_delta",
        "message_stop",
    ]
    assert sdk_final_message(data).content == []
    assert stream.finish() == b"" and stream.fail(500, "x") == b""


def test_stream_fail_closes_block_then_error() -> None:
    stream = AnthropicStream(AnthropicContext("claude-x", input_tokens_estimate=5))
    data = stream.feed(delta(reasoning_content="hmm")) + stream.fail(529, "OCA is overloaded")
    payloads = check_grammar(data)
    assert [p["type"] for p in payloads][-3:] == [
        "content_block_delta",
        "content_block_stop",
        "error",
    ]
    assert payloads[-2]["index"] == 0
    assert payloads[-1] == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "OCA is overloaded"},
    }
    assert stream.feed(delta(content="late")) == b"" and stream.finish() == b""
    with pytest.raises(anthropic.APIStatusError, match="OCA is overloaded"):
        sdk_final_message(data)


def test_stream_fail_before_anything() -> None:
    data = AnthropicStream(AnthropicContext("claude-x")).fail(429, "slow down")
    payloads = check_grammar(data)
    assert payloads == [
        {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    ]


def test_stream_split_surrogate_pair_is_kept_escaped() -> None:
    # "\ud83d\ude00" split across two chunks arrives as two lone surrogates
    chunks = [
        json.loads('{"choices":[{"index":0,"delta":{"content":"a\\ud83d"}}]}'),
        json.loads('{"choices":[{"index":0,"delta":{"content":"\\ude00b"}}]}'),
    ]
    stream = AnthropicStream(AnthropicContext("claude-x"))
    data = b"".join(stream.feed(c) for c in chunks) + stream.fail(500, "bad \udc80 message")
    payloads = check_grammar(data)
    joined = "".join(p["delta"]["text"] for p in payloads if p["type"] == "content_block_delta")
    assert joined.encode("utf-16", "surrogatepass").decode("utf-16") == "a\U0001f600b"


def test_stream_ignores_junk_chunks() -> None:
    chunks: list[Any] = [
        "junk",
        None,
        {"choices": "x"},
        {"choices": [None, {"index": 1, "delta": {"content": "other choice"}}]},
        {"choices": [{"index": 0, "delta": {"content": 5, "tool_calls": [None, 3]}}]},
        delta(content="ok"),
        {"choices": [{"index": 0, "delta": None, "finish_reason": "stop"}], "usage": None},
    ]
    data = run_stream(chunks)
    check_grammar(data)
    msg = sdk_final_message(data)
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text == "ok"


# --------------------------------------------------------------------------- non-streamed


def assemble(chunks: list[Any]) -> dict[str, Any]:
    asm = ChatAssembler()
    for c in chunks:
        asm.feed(c)
    return asm.result()


def test_non_stream_message_validates() -> None:
    ctx = AnthropicContext("claude-sonnet-4-6", input_tokens_estimate=10)
    chunks = [
        delta(reasoning_content="plan"),
        delta(content="Reading."),
        tc(0, "call_a", "Read", '{"file_path": "/a"}'),
        tc(1, "call_b", "Bad", '{"broken'),
        tc(2, "call_c", "Empty", ""),
        finish("tool_calls"),
        USAGE,
    ]
    out = chat_to_anthropic(assemble(chunks), ctx)
    msg = Message.model_validate(out)
    assert out["id"].startswith("msg_") and out["type"] == "message"
    assert msg.model == "claude-sonnet-4-6"
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use", "tool_use", "tool_use"]
    assert msg.content[0].signature
    assert msg.content[2].input == {"file_path": "/a"}
    assert msg.content[3].input == {"_raw": '{"broken'}
    assert msg.content[4].input == {}
    assert msg.stop_reason == "tool_use" and msg.stop_sequence is None
    assert out["usage"] == {
        "input_tokens": 400,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 600,
        "output_tokens": 50,
    }
    # same content as the streamed translation of the same chunks
    streamed = sdk_final_message(run_stream(chunks, ctx))
    assert [b.type for b in streamed.content] == [b.type for b in msg.content]
    assert streamed.content[2].input == msg.content[2].input


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("function_call", "end_turn"),
    ],
)
def test_non_stream_stop_reasons(reason: str, expected: str) -> None:
    completion = {
        "choices": [{"message": {"role": "assistant", "content": "x"}, "finish_reason": reason}]
    }
    out = chat_to_anthropic(completion, AnthropicContext("m"))
    assert out["stop_reason"] == expected
    Message.model_validate(out)


@pytest.mark.parametrize(
    "junk", [{}, {"choices": []}, {"choices": [None]}, {"choices": [{"message": 3}]}]
)
def test_non_stream_junk_never_crashes(junk: Any) -> None:
    out = chat_to_anthropic(junk, AnthropicContext("m", input_tokens_estimate=3))
    Message.model_validate(out)
    assert out["content"] == [] and out["usage"]["input_tokens"] == 3


def test_non_stream_through_sdk() -> None:
    out = chat_to_anthropic(
        assemble([delta(content="hi"), finish("stop"), USAGE]), AnthropicContext("claude-x")
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=out)

    client = sdk_harness.client("messages", "http://proxy.test", handler)
    msg = client.messages.create(
        model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    assert msg.content[0].type == "text" and msg.usage.output_tokens == 50


# --------------------------------------------------------------------------- native


def test_prepare_native_messages() -> None:
    body = {
        "model": "claude-sonnet-4-6",
        "stream": False,
        "max_tokens": 10,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=1;"},
            {"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [user("x")],
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "metadata": {"user_id": "u"},
    }
    out = prepare_native_messages(body, target_model="oca/claude")
    assert out["model"] == "oca/claude" and out["stream"] is True
    assert out["system"] == [
        {"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}
    ]
    for key in ("thinking", "tools", "metadata", "messages", "max_tokens"):
        assert out[key] == body[key]
    with pytest.raises(RequestError):
        prepare_native_messages([], target_model="x")  # type: ignore[arg-type]


def test_native_assembler_rebuilds_the_message() -> None:
    chunks = [
        delta(reasoning_content="think"),
        delta(content="Hi "),
        delta(content="there"),
        tc(0, "call_a", "Read", '{"a":'),
        tc(0, args=" 1}"),
        finish("tool_calls"),
        USAGE,
    ]
    data = run_stream(chunks)
    asm = NativeMessagesAssembler()
    for ev in sse.parse_all(data):
        asm.feed(ev)
    out = asm.result("claude-requested")
    msg = Message.model_validate(out)
    assert msg.model == "claude-requested"
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
    assert msg.content[1].text == "Hi there" and msg.content[2].input == {"a": 1}
    assert msg.content[0].thinking == "think" and msg.content[0].signature
    assert msg.stop_reason == "tool_use"
    assert msg.usage.input_tokens == 400 and msg.usage.output_tokens == 50
    assert msg.usage.cache_read_input_tokens == 600


def test_native_assembler_real_anthropic_shapes() -> None:
    frames = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-real",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 0},
                },
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": "", "citations": None},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "ok"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": ""},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 9},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    asm = NativeMessagesAssembler()
    for name, payload in frames:
        asm.feed(sse.SSEEvent(json.dumps(payload), name))
    asm.feed(sse.SSEEvent("[DONE]"))
    out = asm.result("claude-x")
    msg = Message.model_validate(out)
    assert msg.id == "msg_1" and msg.model == "claude-x"
    assert msg.content[1].input == {}
    assert msg.usage.input_tokens == 12 and msg.usage.output_tokens == 9


def test_native_assembler_error_event_raises() -> None:
    asm = NativeMessagesAssembler()
    payload = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    asm.feed(sse.SSEEvent(json.dumps(payload), "error"))
    with pytest.raises(ApiError) as info:
        asm.result("m")
    assert info.value.status == 529 and info.value.message == "busy"


# --------------------------------------------------------------------------- properties

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=8)
)
junk = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
texts = st.one_of(st.text(max_size=12), st.sampled_from(["\ud83d", "x\udc80", "\u2028"]))


def request_strategy(bad: bool) -> st.SearchStrategy[Any]:
    """Anthropic request bodies; with bad=True, junk may replace any part of them."""

    def v(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(strategy, junk) if bad else strategy

    ids = st.sampled_from(["t1", "t2", "t3", "toolu_" + "z" * 50, "id with space"])
    names = st.sampled_from(["Read", "Bash", "mcp__" + "x" * 70, "a.b", "web_search"])
    if bad:
        ids = st.one_of(ids, st.just(""))
        names = st.one_of(names, st.just(""))
    source = st.one_of(
        st.fixed_dictionaries(
            {
                "type": st.just("base64"),
                "media_type": st.sampled_from(["image/png", "application/pdf", "text/plain"]),
                "data": st.sampled_from(["aGk=", "JVBERi0x"]),
            }
        ),
        st.fixed_dictionaries({"type": st.just("url"), "url": st.just("https://x.test/a.png")}),
        st.fixed_dictionaries({"type": st.just("text"), "data": texts}),
        st.fixed_dictionaries(
            {
                "type": st.just("content"),
                "content": st.one_of(texts, st.lists(st.builds(text, texts), max_size=2)),
            }
        ),
    )
    image_source = st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("base64"), "media_type": st.just("image/png"), "data": st.just("aGk=")}
        ),
        st.fixed_dictionaries({"type": st.just("url"), "url": st.just("https://x.test/a.png")}),
    )
    simple_block = st.one_of(
        st.builds(text, texts),
        st.fixed_dictionaries({"type": st.just("image"), "source": v(image_source)}),
        st.fixed_dictionaries(
            {
                "type": st.just("document"),
                "source": v(
                    source
                    if bad
                    else source.filter(
                        lambda s: not (s["type"] == "base64" and s["media_type"] == "image/png")
                    )
                ),
                "title": texts,
            }
        ),
        st.fixed_dictionaries({"type": st.just("thinking"), "thinking": texts, "signature": texts}),
        st.fixed_dictionaries(
            {"type": st.sampled_from(["mystery", "server_tool_use", "redacted_thinking"])}
        ),
    )
    block = st.one_of(
        simple_block,
        st.fixed_dictionaries(
            {
                "type": st.just("tool_use"),
                "id": v(ids),
                "name": v(names),
                "input": v(st.dictionaries(st.text(max_size=3), json_leaf, max_size=2)),
            }
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("tool_result"),
                "tool_use_id": v(ids),
                "content": v(st.one_of(texts, st.lists(simple_block, max_size=3))),
                "is_error": st.booleans(),
            }
        ),
    )
    message = st.fixed_dictionaries(
        {
            "role": v(st.sampled_from(["user", "assistant", "system"])),
            "content": v(st.one_of(texts, st.lists(v(block), max_size=4))),
        }
    )
    tool_def = st.fixed_dictionaries(
        {"name": v(names), "input_schema": v(st.just({"type": "object"}))},
        optional={
            "type": st.sampled_from(["custom", "web_search_20250305", "bash_20250124"]),
            "description": v(texts),
            "cache_control": st.just({"type": "ephemeral"}),
        },
    )
    return st.fixed_dictionaries(
        {
            "model": v(st.just("claude-x")),
            "messages": v(st.lists(v(message), min_size=1, max_size=8)),
        },
        optional={
            "max_tokens": v(st.integers(1, 200000)),
            "system": v(st.one_of(texts, st.lists(st.builds(text, texts), max_size=2))),
            "tools": v(st.lists(v(tool_def), max_size=3)),
            "tool_choice": v(
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["auto", "any", "tool", "none"]), "name": names},
                    optional={"disable_parallel_tool_use": st.booleans()},
                )
            ),
            "thinking": v(
                st.fixed_dictionaries(
                    {
                        "type": st.sampled_from(["enabled", "adaptive", "disabled"]),
                        "budget_tokens": st.integers(0, 50000),
                    }
                )
            ),
            "temperature": v(st.floats(0, 1)),
            "stop_sequences": v(st.lists(texts, max_size=6)),
            "metadata": v(st.fixed_dictionaries({"user_id": texts})),
            "output_config": junk,
            "top_k": junk,
        },
    )


model_infos = st.one_of(
    st.none(), st.just(PLAIN), st.just(REASONING), st.just({"supports_vision": False}), junk
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(request_strategy(bad=True), junk),
    info=model_infos,
    effort=st.sampled_from([None, "low", "high"]),
)
def test_property_request_translation_is_valid_or_rejected(
    body: Any, info: Any, effort: Any
) -> None:
    try:
        out, ctx = anthropic_to_chat(
            body, target_model=MODEL, model_info=info, reasoning_effort=effort
        )
    except RequestError as exc:
        assert exc.message and exc.status == 400
        return
    check_chat_request(out)
    assert out["model"] == MODEL
    assert ctx.input_tokens_estimate > 0
    json.dumps(out)  # serializable


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=request_strategy(bad=False), info=model_infos)
def test_property_well_shaped_requests_always_translate(body: Any, info: Any) -> None:
    try:
        out, _ = anthropic_to_chat(body, target_model=MODEL, model_info=info)
    except RequestError as exc:
        assert "nothing to send" in exc.message  # only when every message was empty
        return
    check_chat_request(out)
    stack: list[Any] = [out]
    while stack:  # no Anthropic-only fields or blocks left anywhere
        item = stack.pop()
        if isinstance(item, dict):
            assert "cache_control" not in item and "thinking" not in item
            assert item.get("type") not in ("thinking", "tool_use", "tool_result", "image")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


call_ids = st.sampled_from(["call_a", "call_b", "call_c", None, ""])
arg_fragments = st.sampled_from(['{"a":', " 1}", "{}", '{"b": "x"}', "", "}", "[", '"q', None])
tool_call_delta = st.builds(
    lambda index, id, name, args: {
        k: v
        for k, v in {
            "index": index,
            "id": id,
            "function": {k2: v2 for k2, v2 in {"name": name, "arguments": args}.items() if v2},
        }.items()
        if v is not None
    },
    st.one_of(st.integers(0, 3), st.none()),
    call_ids,
    st.sampled_from(["A", "B", "", None]),
    arg_fragments,
)
chunk = st.one_of(
    st.builds(lambda t: delta(content=t), texts),
    st.builds(
        lambda k, t: delta(**{k: t}),
        st.sampled_from(["reasoning_content", "reasoning", "thinking"]),
        texts,
    ),
    st.builds(
        lambda calls: delta(tool_calls=calls), st.lists(tool_call_delta, min_size=1, max_size=3)
    ),
    st.builds(
        lambda calls: delta(tool_calls=calls), st.lists(tool_call_delta, min_size=1, max_size=3)
    ),
    st.builds(
        lambda r: {"choices": [{"index": 0, "delta": {}, "finish_reason": r}]},
        st.sampled_from(["stop", "length", "tool_calls", "content_filter", "weird", None]),
    ),
    st.builds(
        lambda u: {"choices": [], "usage": u},
        st.one_of(
            st.fixed_dictionaries(
                {"prompt_tokens": st.integers(0, 10**6), "completion_tokens": st.integers(0, 1000)}
            ),
            junk,
        ),
    ),
    st.builds(lambda d: {"choices": [{"index": 0, "delta": d}]}, junk),
    st.builds(lambda c: {"choices": c}, junk),
    st.builds(lambda c: delta(tool_calls=c), junk),
    junk,
)


@settings(max_examples=500, deadline=None)
@given(
    chunks=st.lists(chunk, max_size=25),
    end=st.sampled_from(["finish", "fail"]),
    estimate=st.integers(0, 10),
)
def test_property_stream_grammar(chunks: list[Any], end: str, estimate: int) -> None:
    stream = AnthropicStream(AnthropicContext("claude-x", input_tokens_estimate=estimate))
    data = b"".join(stream.feed(c) for c in chunks)
    data += stream.finish() if end == "finish" else stream.fail(502, "upstream broke")
    payloads = check_grammar(data)
    assert payloads[-1]["type"] == ("message_stop" if end == "finish" else "error")


valid_args = st.sampled_from(['{"a": 1}', '{"path": "/x/y", "n": [1, 2]}', "{}", ""])


@st.composite
def tool_streams(draw: st.DrawFn) -> tuple[list[Any], list[tuple[str, dict[str, Any]]]]:
    """Chunks with well-formed parallel tool calls whose fragments interleave arbitrarily."""
    n = draw(st.integers(1, 4))
    calls = []
    for i in range(n):
        args = draw(valid_args)
        cuts = sorted(draw(st.lists(st.integers(0, len(args)), max_size=3)))
        pieces = [args[a:b] for a, b in zip([0, *cuts], [*cuts, len(args)], strict=True)]
        calls.append((i, f"call_{i}", f"T{i}", args, [p for p in pieces if p]))
    queues = {
        i: [tc(i, cid, name, "")] + [tc(i, args=p) for p in pieces]
        for i, cid, name, _, pieces in calls
    }
    chunks: list[Any] = []
    if draw(st.booleans()):
        chunks.append(delta(content="Let me check."))
    started: list[int] = []
    while queues:
        # a call may only start after the previous ones started (OpenAI index order)
        choices = (
            [i for i in queues if i in started] + [min(i for i in queues if i not in started)]
            if any(i not in started for i in queues)
            else list(queues)
        )
        i = draw(st.sampled_from(choices))
        if i not in started:
            started.append(i)
        chunks.append(queues[i].pop(0))
        if not queues[i]:
            del queues[i]
    chunks += [finish("tool_calls"), USAGE]
    expected = [(name, json.loads(args) if args else {}) for _, _, name, args, _ in calls]
    return chunks, expected


@settings(max_examples=200, deadline=None)
@given(case=tool_streams())
def test_property_interleaved_tool_calls_survive_the_sdk(case: Any) -> None:
    chunks, expected = case
    data = run_stream(chunks)
    check_grammar(data)
    msg = sdk_final_message(data)
    got = sorted((b.name, b.input) for b in msg.content if b.type == "tool_use")
    assert got == sorted(expected, key=lambda x: x[0])
    assert msg.stop_reason == "tool_use"


def test_native_max_tokens_fitted_to_the_model() -> None:
    info = {"max_output_tokens": 64000}
    body = {"model": "m", "max_tokens": 128000, "messages": [user("x")]}
    assert prepare_native_messages(body, target_model="t", model_info=info)["max_tokens"] == 64000
    small = {**body, "max_tokens": 1000}
    assert prepare_native_messages(small, target_model="t", model_info=info)["max_tokens"] == 1000
    assert prepare_native_messages(body, target_model="t")["max_tokens"] == 128000  # unknown
    thinking = {**body, "thinking": {"type": "enabled", "budget_tokens": 127999}}
    out = prepare_native_messages(thinking, target_model="t", model_info=info)
    assert out["max_tokens"] == 64000 and out["thinking"]["budget_tokens"] == 63999
    assert thinking["thinking"]["budget_tokens"] == 127999  # the client's body is untouched
    fits = {**body, "thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert prepare_native_messages(fits, target_model="t", model_info=info)["thinking"] == {
        "type": "enabled",
        "budget_tokens": 2048,
    }
    tiny = prepare_native_messages(
        thinking, target_model="t", model_info={"max_output_tokens": 1000}
    )
    assert tiny["max_tokens"] == 1000 and "thinking" not in tiny
    adaptive = {**body, "thinking": {"type": "adaptive"}}
    out = prepare_native_messages(adaptive, target_model="t", model_info=info)
    assert out["thinking"] == {"type": "adaptive"}


def _native_events(data: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    return [(ev.event, json.loads(ev.data)) for ev in sse.parse_all(data)]


NATIVE_FRAMES: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "oca/claude-sonnet-4",
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 3, "output_tokens": 1},
        },
    },
    {"type": "ping"},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi 🙂"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
    {"type": "message_stop"},
]


def test_native_stream_renames_the_model_and_keeps_the_rest() -> None:
    s = NativeMessagesStream("claude-sonnet-4-6")
    out = b"".join(s.feed(f) for f in NATIVE_FRAMES) + s.finish()
    events = _native_events(out)
    assert [e for e, _ in events] == [f["type"] for f in NATIVE_FRAMES]
    assert events[0][1]["message"]["model"] == "claude-sonnet-4-6"
    assert [d for _, d in events[1:]] == NATIVE_FRAMES[1:]
    assert NATIVE_FRAMES[0]["message"]["model"] == "oca/claude-sonnet-4"  # not mutated
    assert s.finish() == b"" and s.fail(500, "late") == b""
    # What the SDK makes of it.
    asm = NativeMessagesAssembler()
    for ev in sse.parse_all(out):
        asm.feed(ev)
    assert asm.result("claude-sonnet-4-6")["content"] == [{"type": "text", "text": "hi 🙂"}]


def test_native_stream_without_message_stop_ends_with_an_error() -> None:
    s = NativeMessagesStream("m")
    out = b"".join(s.feed(f) for f in NATIVE_FRAMES[:4]) + s.finish()
    events = _native_events(out)
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "api_error"
    assert "message_stop" not in [e for e, _ in events]


def test_native_stream_fail_is_an_error_event() -> None:
    s = NativeMessagesStream("m")
    out = s.feed(NATIVE_FRAMES[0]) + s.fail(529, "busy")
    events = _native_events(out)
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
    )
    assert s.feed(NATIVE_FRAMES[2]) == b"" and s.finish() == b""


def test_native_assembler_incomplete_stream_raises() -> None:
    asm = NativeMessagesAssembler()
    for f in NATIVE_FRAMES[:4]:
        asm.feed(sse.SSEEvent(json.dumps(f), f["type"]))
    with pytest.raises(ApiError) as info:
        asm.result("m")
    assert info.value.status == 502


def test_native_drops_thinking_the_translator_made_up() -> None:
    """A session moved from a translated to a native model (Claude Code's /model) carries
    thinking blocks with the translator's signature: a real Anthropic model refuses them."""
    # A translated answer, as the client received it.
    data = run_stream(
        [delta(reasoning_content="hmm"), tc(0, "c1", "Read", "{}"), finish("tool_calls")]
    )
    asm = NativeMessagesAssembler()
    for ev in sse.parse_all(data):
        asm.feed(ev)
    made_up = asm.result("m")["content"]
    assert made_up[0]["type"] == "thinking"
    real = {"type": "thinking", "thinking": "real", "signature": "EqQBCkgIARABGAIiQL" + "A" * 40}
    body = {
        "model": "m",
        "max_tokens": 100,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [
            user("a"),
            assistant([real, text("earlier")]),
            user("b"),
            assistant(made_up),
            user([tool_result(made_up[1]["id"])]),
        ],
    }
    out = prepare_native_messages(body, target_model="t")
    assert out["messages"][1]["content"][0] == real
    assert [b["type"] for b in out["messages"][3]["content"]] == ["tool_use"]
    assert "thinking" not in out  # the turn being continued lost its thinking
    assert body["messages"][3]["content"] is made_up  # the client's body is untouched
    # Made-up thinking in an earlier turn only: thinking stays on.
    earlier = {**body, "messages": [*body["messages"][:4], user("c")]}
    earlier["messages"].insert(4, assistant([real, text("x")]))
    out = prepare_native_messages(earlier, target_model="t")
    assert out["thinking"] == body["thinking"]
    assert [b["type"] for b in out["messages"][3]["content"]] == ["tool_use"]
    # Nothing of ours: the body goes as it came.
    plain = {**body, "messages": body["messages"][:3]}
    assert prepare_native_messages(plain, target_model="t")["messages"] == plain["messages"]


CLAUDE_CODE_PARSE = re.compile(r"prompt is too long[^0-9]*(\d+)\s*tokens?\s*>\s*(\d+)", re.I)


@pytest.mark.parametrize(
    ("upstream", "tokens"),
    [
        (
            "litellm.ContextWindowExceededError: litellm.BadRequestError: OpenAIException - "
            "This model's maximum context length is 131072 tokens. However, your messages "
            "resulted in 140000 tokens. Please reduce the length of the messages.",
            (140000, 131072),
        ),
        (
            "This model's maximum context length is 128000 tokens. However, you requested "
            "150000 tokens (140000 in the messages, 10000 in the completion).",
            (140000, 128000),
        ),
        ("Input tokens exceed the configured limit of 272000 tokens.", None),
        ("ContextWindowExceededError: context_length_exceeded", None),
    ],
)
def test_context_overflow_reads_like_anthropic(
    upstream: str, tokens: tuple[int, int] | None
) -> None:
    from oca_addon.translate.anthropic import client_error_message

    out = client_error_message(400, upstream)
    assert out.startswith("prompt is too long")
    assert upstream in out  # OCA's own words stay
    match = CLAUDE_CODE_PARSE.search(out)
    if tokens is None:
        assert match is None or match.group(1) != match.group(2)
    else:
        assert match is not None and (int(match.group(1)), int(match.group(2))) == tokens


def test_context_overflow_from_max_tokens_asks_for_fewer_output_tokens() -> None:
    from oca_addon.translate.anthropic import client_error_message

    upstream = (
        "This model's maximum context length is 128000 tokens. However, you requested "
        "150000 tokens (100000 in the messages, 50000 in the completion)."
    )
    out = client_error_message(400, upstream)
    assert out.startswith(
        "input length and `max_tokens` exceed context limit: 100000 + 50000 > 128000"
    )


def test_other_errors_are_unchanged() -> None:
    from oca_addon.translate.anthropic import client_error_message

    for status, message in [
        (400, "Invalid model name passed in model=x"),
        (429, "maximum context length is 5 tokens"),  # not a 400: not ours to reword
        (400, "prompt is too long: 210000 tokens > 200000 maximum"),  # already Anthropic's
    ]:
        assert client_error_message(status, message) == message
