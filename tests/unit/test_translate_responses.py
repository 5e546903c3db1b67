"""Responses API <-> Chat Completions translation (oca_addon.translate.responses)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
import sdk_harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseCompletedEvent

from oca_addon.core import sse
from oca_addon.core.errors import RequestError
from oca_addon.translate.chat import ChatAssembler
from oca_addon.translate.memo import ConversationMemo
from oca_addon.translate.responses import (
    NativeResponsesAssembler,
    NativeResponsesStream,
    ResponseHistory,
    ResponsesContext,
    ResponsesStream,
    chat_to_response,
    prepare_native_responses,
    responses_to_chat,
)

TERMINAL = ("response.completed", "response.incomplete", "response.failed")
REASONING_INFO = {"is_reasoning_model": True, "max_output_tokens": 1000}
PLAIN_INFO = {"is_reasoning_model": False, "max_output_tokens": 1000}

APPLY_PATCH: Any = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Use the `apply_patch` tool to edit files.",
    "format": {
        "type": "grammar",
        "syntax": "lark",
        "definition": 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF',
    },
}
SHELL: Any = {
    "type": "function",
    "name": "shell",
    "description": "Run a command",
    "parameters": {
        "type": "object",
        "properties": {"command": {"type": "array", "items": {"type": "string"}}},
        "required": ["command"],
    },
    "strict": False,
}


def translate(body: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], ResponsesContext]:
    body = {"model": "gpt-5", **body}
    return responses_to_chat(body, target_model="oca/gpt-5", **kw)


# -- chunk builders -------------------------------------------------------------------------


def text(s: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": s}}]}


def think(s: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"reasoning_content": s}}]}


def call(index: int, *, id: str | None = None, name: str | None = None, args: str = "") -> dict:
    fn: dict[str, Any] = {"arguments": args}
    if name is not None:
        fn["name"] = name
    tc: dict[str, Any] = {"index": index, "function": fn}
    if id is not None:
        tc["id"] = id
        tc["type"] = "function"
    return {"choices": [{"index": 0, "delta": {"tool_calls": [tc]}}]}


def finish(reason: str = "stop", usage: dict | None = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}
    if usage:
        chunk["usage"] = usage
    return chunk


USAGE = {
    "prompt_tokens": 100,
    "completion_tokens": 20,
    "total_tokens": 120,
    "prompt_tokens_details": {"cached_tokens": 40},
    "completion_tokens_details": {"reasoning_tokens": 7},
}


def stream_bytes(ctx: ResponsesContext, chunks: list[Any], *, fail: tuple | None = None) -> bytes:
    s = ResponsesStream(ctx)
    out = b"".join(s.feed(c) for c in chunks)
    out += s.fail(*fail) if fail else s.finish()
    assert s.response is not None
    return out


def events_of(data: bytes) -> list[dict[str, Any]]:
    events = []
    for ev in sse.parse_all(data):
        obj = ev.json()
        assert ev.event == obj["type"]
        events.append(obj)
    return events


def check_grammar(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assert the Responses stream grammar; returns the finished items."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    types = [e["type"] for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert sum(t in TERMINAL for t in types) == 1
    assert types[-1] in TERMINAL
    rid = events[0]["response"]["id"]
    assert all(e["response"]["id"] == rid for e in events if "response" in e)
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["output"] == []
    open_item: dict[str, Any] | None = None
    next_index = 0
    done: list[dict[str, Any]] = []
    pieces: list[str] = []
    for e in events[2:-1]:
        t = e["type"]
        if t == "response.output_item.added":
            assert open_item is None, "an item opened before the previous one closed"
            assert e["output_index"] == next_index
            next_index += 1
            open_item = e["item"]
            pieces = []
        elif t == "response.output_item.done":
            assert open_item is not None and e["item"]["id"] == open_item["id"]
            assert e["output_index"] == next_index - 1
            item = e["item"]
            if item["type"] == "function_call":
                assert "".join(pieces) == item["arguments"]
            elif item["type"] == "custom_tool_call":
                assert "".join(pieces) == item["input"]
            elif item["type"] == "message":
                assert "".join(pieces) == item["content"][0]["text"]
            elif item["type"] == "reasoning":
                assert "".join(pieces) == item["summary"][0]["text"]
            done.append(item)
            open_item = None
        else:
            assert open_item is not None, f"{t} outside an item"
            assert e["item_id"] == open_item["id"]
            assert e["output_index"] == next_index - 1
            if t.endswith(".delta"):
                pieces.append(e["delta"])
            if t == "response.output_text.delta":
                assert e["logprobs"] == []
    assert open_item is None
    assert events[-1]["response"]["output"] == done
    return done


# ==========================================================================================
# request translation
# ==========================================================================================


def test_string_input_and_stream_flags() -> None:
    chat, ctx = translate({"input": "hello", "stream": True})
    assert chat["model"] == "oca/gpt-5"
    assert chat["messages"] == [{"role": "user", "content": "hello"}]
    assert chat["stream"] is True
    assert chat["stream_options"] == {"include_usage": True}
    assert ctx.requested_model == "gpt-5"
    assert ctx.stream is True
    assert ctx.input_items[0]["role"] == "user"


def test_instructions_and_system_developer_merge_into_one_leading_system() -> None:
    chat, _ = translate(
        {
            "instructions": "You are Codex.",
            "input": [
                {
                    "type": "message",
                    "role": "developer",
                    "content": [{"type": "input_text", "text": "dev rules"}],
                },
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "late system"},
                {"role": "user", "content": "again"},
            ],
        }
    )
    msgs = chat["messages"]
    assert msgs[0] == {"role": "system", "content": "You are Codex.\n\ndev rules\n\nlate system"}
    assert [m["role"] for m in msgs] == ["system", "user", "user"]


def test_content_parts() -> None:
    chat, _ = translate(
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "look"},
                        {
                            "type": "input_image",
                            "image_url": "data:image/png;base64,AAAA",
                            "detail": "high",
                        },
                        {"type": "input_image", "file_id": "file-1"},
                        {
                            "type": "input_file",
                            "filename": "a.pdf",
                            "file_data": "data:application/pdf;base64,JVBE",
                        },
                        {"type": "input_file", "file_id": "file-2"},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": "Sure, ", "annotations": []},
                        {"type": "refusal", "refusal": "no."},
                    ],
                },
                {"role": "user", "content": [{"type": "input_text", "text": "only text"}]},
            ]
        }
    )
    user, assistant, user2 = chat["messages"]
    parts = user["content"]
    assert parts[0] == {"type": "text", "text": "look"}
    assert parts[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    assert parts[2]["type"] == "text" and "file-1" in parts[2]["text"]
    assert parts[3] == {
        "type": "file",
        "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
    }
    assert parts[4]["type"] == "text" and "file-2" in parts[4]["text"]
    assert "detail" not in json.dumps(chat)
    assert assistant == {"role": "assistant", "content": "Sure, no."}
    assert user2 == {"role": "user", "content": "only text"}


def test_parallel_function_calls_grouped_with_text_and_outputs_follow() -> None:
    chat, _ = translate(
        {
            "input": [
                {"role": "user", "content": "do it"},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "xx"},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Running."}],
                },
                {
                    "type": "function_call",
                    "call_id": "a",
                    "name": "shell",
                    "arguments": '{"command":["ls"]}',
                },
                {"type": "function_call", "call_id": "b", "name": "shell", "arguments": ""},
                {"type": "function_call_output", "call_id": "b", "output": "B out"},
                {
                    "type": "function_call_output",
                    "call_id": "a",
                    "output": [
                        {"type": "input_text", "text": "A"},
                        {"type": "input_text", "text": "out"},
                    ],
                },
                {"role": "user", "content": "thanks"},
            ]
        }
    )
    msgs = chat["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "tool", "user"]
    asst = msgs[1]
    assert asst["content"] == "Running."
    assert [c["id"] for c in asst["tool_calls"]] == ["a", "b"]
    assert asst["tool_calls"][1]["function"] == {"name": "shell", "arguments": "{}"}
    assert msgs[2] == {"role": "tool", "tool_call_id": "a", "content": "A\nout"}
    assert msgs[3] == {"role": "tool", "tool_call_id": "b", "content": "B out"}


def test_sequential_calls_are_separate_turns() -> None:
    chat, _ = translate(
        {
            "input": [
                {"role": "user", "content": "go"},
                {"type": "function_call", "call_id": "a", "name": "shell", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "a", "output": "1"},
                {"type": "function_call", "call_id": "b", "name": "shell", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "b", "output": "2"},
            ]
        }
    )
    assert [m["role"] for m in chat["messages"]] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]


def test_tool_output_placed_directly_after_its_call() -> None:
    chat, _ = translate(
        {
            "input": [
                {"role": "user", "content": "go"},
                {"type": "function_call", "call_id": "a", "name": "shell", "arguments": "{}"},
                {"role": "user", "content": "interjection"},
                {"type": "function_call_output", "call_id": "a", "output": "late"},
            ]
        }
    )
    msgs = chat["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "user"]
    assert msgs[2]["content"] == "late"


def test_output_without_call_gets_synthesized_call_and_call_without_output_a_placeholder() -> None:
    chat, _ = translate(
        {
            "input": [
                {"role": "user", "content": "go"},
                {"type": "function_call_output", "call_id": "orphan", "output": "x"},
                {"type": "function_call", "call_id": "lonely", "name": "shell", "arguments": "{}"},
                {"role": "user", "content": "next"},
            ]
        }
    )
    msgs = chat["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "assistant", "tool", "user"]
    assert msgs[1]["tool_calls"][0]["id"] == "orphan"
    assert msgs[2] == {"role": "tool", "tool_call_id": "orphan", "content": "x"}
    assert msgs[3]["tool_calls"][0]["id"] == "lonely"
    assert msgs[4]["tool_call_id"] == "lonely" and msgs[4]["content"]


def test_empty_call_ids_and_reasoning_dropped() -> None:
    chat, _ = translate(
        {
            "input": [
                {"role": "user", "content": "go"},
                {"type": "reasoning", "id": "rs_x", "summary": []},
                {"type": "function_call", "call_id": "", "name": "shell", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "", "output": "x"},
                {"type": "item_reference", "id": "msg_1"},
                {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            ]
        }
    )
    assert chat["messages"] == [{"role": "user", "content": "go"}]


def test_tool_output_images_go_to_a_following_user_message() -> None:
    chat, _ = translate(
        {
            "input": [
                {"role": "user", "content": "look"},
                {"type": "function_call", "call_id": "v", "name": "view_image", "arguments": "{}"},
                {
                    "type": "function_call_output",
                    "call_id": "v",
                    "output": [{"type": "input_image", "image_url": "data:image/png;base64,QQ"}],
                },
            ]
        }
    )
    msgs = chat["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "user"]
    assert msgs[3]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,QQ"},
    }


def test_tools_flat_namespace_custom_builtin() -> None:
    chat, ctx = translate(
        {
            "input": "x",
            "tools": [
                SHELL,
                APPLY_PATCH,
                {"type": "web_search"},
                {"type": "local_shell"},
                {"type": "file_search", "vector_store_ids": ["v"]},
                {
                    "type": "namespace",
                    "name": "mcp__github__",
                    "description": "GitHub",
                    "tools": [
                        {
                            "type": "function",
                            "name": "get_issue",
                            "parameters": {
                                "type": "object",
                                "properties": {"n": {"type": "integer"}},
                            },
                        }
                    ],
                },
                {
                    "type": "namespace",
                    "name": "crm",
                    "description": "CRM",
                    "tools": [{"type": "function", "name": "lookup"}],
                },
            ],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        }
    )
    fns = {t["function"]["name"]: t["function"] for t in chat["tools"]}
    assert all(t["type"] == "function" for t in chat["tools"])
    assert set(fns) == {"shell", "apply_patch", "mcp__github__get_issue", "crm__lookup"}
    assert fns["shell"] == {
        "name": "shell",
        "description": "Run a command",
        "parameters": SHELL["parameters"],
        "strict": False,
    }
    patch = fns["apply_patch"]
    assert patch["parameters"]["required"] == ["input"]
    assert patch["parameters"]["properties"]["input"]["type"] == "string"
    assert "begin_patch" in patch["description"] and "lark" in patch["description"]
    assert fns["crm__lookup"]["parameters"] == {"type": "object", "properties": {}}
    assert ctx.custom_tools == {"apply_patch"}
    assert ctx.tool_names["mcp__github__get_issue"] == ("mcp__github__", "get_issue")
    assert chat["tool_choice"] == "required"
    assert chat["parallel_tool_calls"] is False
    assert ctx.tools[2] == {"type": "web_search"}  # echoed as sent


def test_only_builtin_tools_drop_tool_choice_and_parallel() -> None:
    chat, _ = translate(
        {
            "input": "x",
            "tools": [{"type": "web_search_preview"}, {"type": "image_generation"}],
            "tool_choice": "auto",
            "parallel_tool_calls": True,
        }
    )
    assert "tools" not in chat and "tool_choice" not in chat and "parallel_tool_calls" not in chat


def test_tool_choice_forms() -> None:
    chat, _ = translate(
        {"input": "x", "tools": [SHELL], "tool_choice": {"type": "function", "name": "shell"}}
    )
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "shell"}}
    chat, _ = translate(
        {
            "input": "x",
            "tools": [APPLY_PATCH],
            "tool_choice": {"type": "custom", "name": "apply_patch"},
        }
    )
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "apply_patch"}}
    chat, _ = translate({"input": "x", "tools": [SHELL], "tool_choice": "none"})
    assert chat["tool_choice"] == "none"
    chat, _ = translate(
        {
            "input": "x",
            "tools": [SHELL, APPLY_PATCH],
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "shell"}],
            },
        }
    )
    assert [t["function"]["name"] for t in chat["tools"]] == ["shell"]
    assert chat["tool_choice"] == "required"


def test_custom_tool_call_history_becomes_function_call_with_input_param() -> None:
    chat, _ = translate(
        {
            "input": [
                {"role": "user", "content": "patch"},
                {
                    "type": "custom_tool_call",
                    "call_id": "p1",
                    "name": "apply_patch",
                    "input": "*** Begin Patch\n*** End Patch",
                },
                {"type": "custom_tool_call_output", "call_id": "p1", "output": "Done!"},
            ],
            "tools": [APPLY_PATCH],
        }
    )
    asst = chat["messages"][1]
    fn = asst["tool_calls"][0]["function"]
    assert fn["name"] == "apply_patch"
    assert json.loads(fn["arguments"]) == {"input": "*** Begin Patch\n*** End Patch"}
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "p1", "content": "Done!"}


def test_namespaced_call_history_uses_flat_name() -> None:
    chat, _ = translate(
        {
            "input": [
                {"role": "user", "content": "q"},
                {
                    "type": "function_call",
                    "call_id": "g",
                    "namespace": "mcp__github__",
                    "name": "get_issue",
                    "arguments": "{}",
                },
                {"type": "function_call_output", "call_id": "g", "output": "ok"},
            ]
        }
    )
    assert chat["messages"][1]["tool_calls"][0]["function"]["name"] == "mcp__github__get_issue"


def test_max_tokens_clamped_and_reasoning_rules() -> None:
    chat, _ = translate(
        {
            "input": "x",
            "max_output_tokens": 5000,
            "temperature": 0.2,
            "top_p": 0.9,
            "reasoning": {"effort": "minimal"},
        },
        model_info=REASONING_INFO,
    )
    assert chat["max_tokens"] == 1000
    assert chat["reasoning_effort"] == "low"
    assert "temperature" not in chat and "top_p" not in chat

    chat, _ = translate(
        {"input": "x", "temperature": 0.2, "reasoning": {"effort": "high"}}, model_info=PLAIN_INFO
    )
    assert chat["temperature"] == 0.2
    assert "reasoning_effort" not in chat

    chat, ctx = translate(
        {"input": "x"}, reasoning_effort="medium"
    )  # unknown model: default applies
    assert chat["reasoning_effort"] == "medium"
    assert ctx.reasoning["effort"] == "medium"

    chat, _ = translate(
        {"input": "x", "reasoning": {"effort": "high"}},
        reasoning_effort="low",
        model_info=REASONING_INFO,
    )
    assert chat["reasoning_effort"] == "high"  # the client wins

    info = {**REASONING_INFO, "reasoning_effort_options": ["low", "medium", "high"]}
    chat, _ = translate({"input": "x", "reasoning": {"effort": "xhigh"}}, model_info=info)
    assert chat["reasoning_effort"] == "high"


def test_text_format_mapping() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    chat, _ = translate(
        {
            "input": "x",
            "text": {
                "format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}
            },
        }
    )
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema, "strict": True},
    }
    chat, _ = translate({"input": "x", "text": {"format": {"type": "json_object"}}})
    assert chat["response_format"] == {"type": "json_object"}
    chat, _ = translate({"input": "x", "text": {"format": {"type": "text"}, "verbosity": "low"}})
    assert "response_format" not in chat


def test_echo_fields_not_sent_upstream() -> None:
    body = {
        "input": "x",
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "metadata": {"k": "v"},
        "truncation": "auto",
        "prompt_cache_key": "abc",
        "service_tier": "auto",
        "background": False,
        "safety_identifier": "s",
        "user": "u1",
        "some_future_field": 1,
    }
    chat, ctx = translate(body)
    for key in ("store", "include", "truncation", "service_tier", "background"):
        assert key not in chat
    assert "some_future_field" not in chat
    # Chat has these: they go on (docs/models-and-apis.md, "What is lost in translation").
    assert chat["user"] == "u1" and chat["metadata"] == {"k": "v"}
    assert chat["prompt_cache_key"] == "abc" and chat["safety_identifier"] == "s"
    resp = chat_to_response(
        {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]}, ctx
    )
    assert resp["store"] is False and resp["metadata"] == {"k": "v"}
    assert resp["truncation"] == "auto" and resp["prompt_cache_key"] == "abc"
    assert resp["service_tier"] == "auto" and resp["safety_identifier"] == "s"


def test_identity_fields_reach_chat() -> None:
    """opencode sends prompt_cache_key on every call; chat has the same three fields."""
    chat, _ = translate({"input": "x", "prompt_cache_key": "ses_1"})
    assert chat["prompt_cache_key"] == "ses_1"
    assert "safety_identifier" not in chat and "metadata" not in chat
    meta = {"app": "opencode", "run": "7"}
    chat, _ = translate({"input": "x", "metadata": meta, "safety_identifier": "h" * 64})
    assert chat["metadata"] == meta and chat["metadata"] is not meta
    assert chat["safety_identifier"] == "h" * 64
    empty, _ = translate({"input": "x", "metadata": {}, "prompt_cache_key": "", "metadata ": 1})
    assert not {"metadata", "prompt_cache_key"} & set(empty)
    nulls, _ = translate({"input": "x", "metadata": None, "safety_identifier": None})
    assert not {"metadata", "safety_identifier"} & set(nulls)
    # The same through the conversation memo (the fields are not part of what it keeps).
    memo = ConversationMemo()
    a, b = ({"type": "message", "role": "user", "content": t} for t in "ab")
    first, _ = translate({"input": [a], "prompt_cache_key": "k1"}, memo=memo)
    second, _ = translate({"input": [a, b], "prompt_cache_key": "k2"}, memo=memo)
    assert first["prompt_cache_key"] == "k1" and second["prompt_cache_key"] == "k2"


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("prompt_cache_key", 5, "prompt_cache_key"),
        ("safety_identifier", ["x"], "safety_identifier"),
        ("metadata", "x", "metadata"),
        ("metadata", {"ok": "v", "n": 1}, "metadata.n"),
        ("metadata", {"nested": {"a": "b"}}, "metadata.nested"),
    ],
)
def test_identity_fields_of_the_wrong_type_are_refused(field: str, value: Any, param: str) -> None:
    """As the Responses API refuses them (a string; an object of strings)."""
    with pytest.raises(RequestError) as e:
        translate({"input": "x", field: value})
    assert e.value.status == 400 and e.value.param == param
    assert "expected a" in e.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"input": "x"}, "model"),
        ({"model": 3, "input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 5}, "input"),
        ({"model": "m", "input": [5]}, "input[0]"),
        ({"model": "m", "input": [{"role": "wizard", "content": "x"}]}, "input[0].role"),
        ({"model": "m", "input": [{"role": "user", "content": 7}]}, "input[0].content"),
        ({"model": "m", "input": "x", "tools": {}}, "tools"),
        ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"model": "m", "input": "x", "max_output_tokens": "many"}, "max_output_tokens"),
        ({"model": "m", "input": "x", "temperature": "hot"}, "temperature"),
        ({"model": "m", "input": []}, "input"),
    ],
)
def test_request_errors(body: Any, param: str | None) -> None:
    with pytest.raises(RequestError) as exc:
        responses_to_chat(body, target_model="oca/x")
    assert exc.value.status == 400
    assert exc.value.param == param
    assert exc.value.message


# ==========================================================================================
# previous_response_id
# ==========================================================================================


def test_previous_response_id_expansion() -> None:
    history = ResponseHistory()
    chat, ctx = translate({"input": "first"}, history=history)
    s = ResponsesStream(ctx)
    for c in (text("answer one"), finish("stop", USAGE)):
        s.feed(c)
    s.finish()
    assert s.response is not None
    first_id = s.response["id"]
    assert first_id in history

    chat, ctx2 = translate({"input": "second", "previous_response_id": first_id}, history=history)
    assert chat["messages"] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer one"},
        {"role": "user", "content": "second"},
    ]
    resp = chat_to_response(
        {"choices": [{"message": {"content": "two"}, "finish_reason": "stop"}]}, ctx2
    )
    assert resp["previous_response_id"] == first_id
    chat, _ = translate({"input": "third", "previous_response_id": resp["id"]}, history=history)
    assert [m["content"] for m in chat["messages"]] == [
        "first",
        "answer one",
        "second",
        "two",
        "third",
    ]


def test_previous_response_id_unknown_is_the_standard_400() -> None:
    for history in (ResponseHistory(), None):
        with pytest.raises(RequestError) as exc:
            translate({"input": "x", "previous_response_id": "resp_nope"}, history=history)
        err = exc.value
        assert err.status == 400
        assert err.param == "previous_response_id"
        assert err.code == "previous_response_not_found"
        assert err.message == "Previous response with id 'resp_nope' not found."


def test_history_is_bounded_lru_and_respects_store_false() -> None:
    history = ResponseHistory(max_entries=2)
    history.remember("a", [], [])
    history.remember("b", [], [])
    history.expand("a")  # a is now most recent
    history.remember("c", [], [])
    assert "a" in history and "c" in history and "b" not in history

    _, ctx = translate({"input": "x", "store": False}, history=history)
    resp = chat_to_response({"choices": [{"message": {"content": "hi"}}]}, ctx)
    assert resp["id"] not in history


def test_tool_round_trip_through_history() -> None:
    history = ResponseHistory()
    _, ctx = translate({"input": "patch it", "tools": [APPLY_PATCH]}, history=history)
    bytes_ = stream_bytes(
        ctx,
        [
            call(0, id="call_p", name="apply_patch", args='{"input":"*** Begin Patch"}'),
            finish("tool_calls"),
        ],
    )
    final = events_of(bytes_)[-1]["response"]
    chat, _ = translate(
        {
            "input": [{"type": "custom_tool_call_output", "call_id": "call_p", "output": "ok"}],
            "previous_response_id": final["id"],
            "tools": [APPLY_PATCH],
        },
        history=history,
    )
    msgs = chat["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool"]
    assert json.loads(msgs[1]["tool_calls"][0]["function"]["arguments"]) == {
        "input": "*** Begin Patch"
    }


# ==========================================================================================
# non-streamed answer
# ==========================================================================================


def test_chat_to_response_full_shape_validates() -> None:
    _, ctx = translate({"input": "x", "tools": [SHELL, APPLY_PATCH], "instructions": "sys"})
    asm = ChatAssembler()
    for c in (
        think("hmm"),
        text("Doing it."),
        call(0, id="call_1", name="shell", args='{"command":'),
        call(0, args='["ls"]}'),
        call(
            1, id="call_2", name="apply_patch", args='{"input":"*** Begin Patch\\n*** End Patch"}'
        ),
        finish("tool_calls", USAGE),
    ):
        asm.feed(c)
    resp = chat_to_response(asm.result(), ctx)
    model = Response.model_validate(resp)
    assert model.model == "gpt-5" and model.status == "completed" and model.instructions == "sys"
    types = [o["type"] for o in resp["output"]]
    assert types == ["reasoning", "message", "function_call", "custom_tool_call"]
    assert resp["output"][0]["id"].startswith("rs_oca_")
    assert resp["output"][0]["summary"] == [{"type": "summary_text", "text": "hmm"}]
    assert resp["output"][1]["content"] == [
        {"type": "output_text", "text": "Doing it.", "annotations": [], "logprobs": []}
    ]
    fc = resp["output"][2]
    assert (
        fc["call_id"] == "call_1"
        and fc["name"] == "shell"
        and fc["arguments"] == '{"command":["ls"]}'
    )
    ctc = resp["output"][3]
    assert ctc["name"] == "apply_patch" and ctc["input"] == "*** Begin Patch\n*** End Patch"
    assert resp["usage"] == {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 0},
        "output_tokens": 20,
        "output_tokens_details": {"reasoning_tokens": 7},
        "total_tokens": 120,
    }
    assert model.output_text == "Doing it."


def test_chat_to_response_length_is_incomplete_and_empty_args() -> None:
    _, ctx = translate({"input": "x", "tools": [SHELL]})
    resp = chat_to_response(
        {"choices": [{"message": {"content": "trunc"}, "finish_reason": "length"}]}, ctx
    )
    assert resp["status"] == "incomplete"
    assert resp["incomplete_details"] == {"reason": "max_output_tokens"}
    Response.model_validate(resp)
    resp = chat_to_response(
        {
            "choices": [
                {
                    "message": {
                        "content": None,
                        "tool_calls": [{"id": "c", "function": {"name": "shell", "arguments": ""}}],
                    },
                    "finish_reason": "tool_calls",
                }
            ]
        },
        ctx,
    )
    assert resp["output"][0]["arguments"] == "{}"
    resp = chat_to_response(
        {"choices": [{"message": {"content": ""}, "finish_reason": "content_filter"}]}, ctx
    )
    assert resp["incomplete_details"] == {"reason": "content_filter"}


def test_namespaced_call_maps_back() -> None:
    ns_tool = {
        "type": "namespace",
        "name": "mcp__gh__",
        "description": "gh",
        "tools": [{"type": "function", "name": "issue"}],
    }
    _, ctx = translate({"input": "x", "tools": [ns_tool]})
    resp = chat_to_response(
        {
            "choices": [
                {
                    "message": {
                        "tool_calls": [
                            {"id": "c", "function": {"name": "mcp__gh__issue", "arguments": "{}"}}
                        ]
                    },
                    "finish_reason": "tool_calls",
                }
            ]
        },
        ctx,
    )
    item = resp["output"][0]
    assert item["name"] == "issue" and item["namespace"] == "mcp__gh__"
    Response.model_validate(resp)


# ==========================================================================================
# streamed answer
# ==========================================================================================


def test_stream_text_only_grammar() -> None:
    _, ctx = translate({"input": "x"})
    events = events_of(stream_bytes(ctx, [text("Hel"), text("lo"), finish("stop", USAGE)]))
    items = check_grammar(events)
    assert len(items) == 1 and items[0]["content"][0]["text"] == "Hello"
    types = [e["type"] for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["usage"]["total_tokens"] == 120
    Response.model_validate(final)


def test_stream_reasoning_text_tools_order_and_ids() -> None:
    _, ctx = translate({"input": "x", "tools": [SHELL, APPLY_PATCH]})
    chunks = [
        think("Let me "),
        think("think."),
        text("I'll run it."),
        call(0, id="call_a", name="shell", args=""),
        call(0, args='{"command": ["ls"'),
        call(0, args="]}"),
        call(1, id="call_b", name="apply_patch", args='{"input": "*** Begin'),
        call(1, args=' Patch"}'),
        finish("tool_calls", USAGE),
    ]
    events = events_of(stream_bytes(ctx, chunks))
    items = check_grammar(events)
    assert [i["type"] for i in items] == [
        "reasoning",
        "message",
        "function_call",
        "custom_tool_call",
    ]
    assert items[0]["summary"][0]["text"] == "Let me think."
    assert items[2]["arguments"] == '{"command": ["ls"]}' and items[2]["call_id"] == "call_a"
    assert items[3]["input"] == "*** Begin Patch" and items[3]["call_id"] == "call_b"
    types = [e["type"] for e in events]
    assert "response.reasoning_summary_part.added" in types
    assert "response.custom_tool_call_input.delta" in types
    assert "response.custom_tool_call_input.done" in types
    assert types.count("response.function_call_arguments.done") == 1
    Response.model_validate(events[-1]["response"])


def test_stream_interleaved_parallel_calls_keep_arguments_complete() -> None:
    _, ctx = translate({"input": "x", "tools": [SHELL]})
    chunks = [
        call(0, id="c0", name="shell", args='{"command":'),
        call(1, id="c1", name="shell", args='{"comm'),
        call(0, args=' ["a"]}'),
        call(1, args='and": ["b"]}'),
        call(2, id="c2", name="shell", args='{"command": ["c"]}'),
        finish("tool_calls"),
    ]
    items = check_grammar(events_of(stream_bytes(ctx, chunks)))
    assert [(i["call_id"], json.loads(i["arguments"])) for i in items] == [
        ("c0", {"command": ["a"]}),
        ("c1", {"command": ["b"]}),
        ("c2", {"command": ["c"]}),
    ]


def test_stream_same_index_new_id_is_a_new_call() -> None:
    _, ctx = translate({"input": "x", "tools": [SHELL]})
    chunks = [
        call(0, id="c0", name="shell", args='{"command":["a"]}'),
        call(0, id="c1", name="shell", args='{"command":["b"]}'),
        finish("tool_calls"),
    ]
    items = check_grammar(events_of(stream_bytes(ctx, chunks)))
    assert [i["call_id"] for i in items] == ["c0", "c1"]


def test_stream_text_after_tool_call_starts_new_message_item() -> None:
    _, ctx = translate({"input": "x", "tools": [SHELL]})
    chunks = [
        text("before"),
        call(0, id="c0", name="shell", args="{}"),
        text("after"),
        finish("stop"),
    ]
    items = check_grammar(events_of(stream_bytes(ctx, chunks)))
    assert [i["type"] for i in items] == ["message", "function_call", "message"]
    assert items[0]["id"] != items[2]["id"]
    assert items[2]["content"][0]["text"] == "after"


def test_stream_length_is_incomplete() -> None:
    _, ctx = translate({"input": "x"})
    events = events_of(stream_bytes(ctx, [text("cut"), finish("length")]))
    items = check_grammar(events)
    assert events[-1]["type"] == "response.incomplete"
    resp = events[-1]["response"]
    assert resp["status"] == "incomplete"
    assert resp["incomplete_details"] == {"reason": "max_output_tokens"}
    assert items[0]["status"] == "incomplete"
    Response.model_validate(resp)


def test_stream_fail_before_and_during() -> None:
    _, ctx = translate({"input": "x"})
    events = events_of(stream_bytes(ctx, [], fail=(429, "Too many requests, try again in 2s")))
    check_grammar(events)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]
    resp = events[-1]["response"]
    assert resp["status"] == "failed"
    assert resp["error"] == {
        "code": "rate_limit_exceeded",
        "message": "Too many requests, try again in 2s",
    }
    Response.model_validate(resp)

    _, ctx = translate({"input": "x"})
    events = events_of(stream_bytes(ctx, [text("partial")], fail=(502, "upstream reset")))
    items = check_grammar(events)
    assert items[0]["status"] == "incomplete"
    assert events[-1]["response"]["error"]["code"] == "server_error"

    _, ctx = translate({"input": "x"})
    events = events_of(
        stream_bytes(ctx, [], fail=(400, "This model's maximum context length is 128000 tokens"))
    )
    assert events[-1]["response"]["error"]["code"] == "context_length_exceeded"


def test_stream_empty_upstream_is_failed_not_bare_close() -> None:
    _, ctx = translate({"input": "x"})
    events = events_of(stream_bytes(ctx, []))
    check_grammar(events)
    assert events[-1]["type"] == "response.failed"


def test_stream_error_chunk_fed_by_mistake_fails() -> None:
    _, ctx = translate({"input": "x"})
    s = ResponsesStream(ctx)
    out = s.feed(text("a")) + s.feed({"error": {"message": "boom", "code": 500}})
    out += s.finish()  # ignored: already terminal
    events = events_of(out)
    check_grammar(events)
    assert events[-1]["response"]["error"]["message"] == "boom"


def test_stream_after_terminal_is_silent() -> None:
    _, ctx = translate({"input": "x"})
    s = ResponsesStream(ctx)
    s.feed(text("a"))
    s.finish()
    assert s.feed(text("b")) == b"" and s.finish() == b"" and s.fail(500, "x") == b""


# ==========================================================================================
# replay through the real openai SDK
# ==========================================================================================


def sdk_client(handler: Any) -> openai.OpenAI:
    return sdk_harness.client("responses", "http://proxy.test", handler)


def proxy_handler(chunks: list[dict[str, Any]], seen: list[dict[str, Any]]) -> Any:
    """A fake proxy: translates the SDK's request and streams the translated answer."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        chat, ctx = responses_to_chat(body, target_model="oca/" + body["model"])
        seen.append(chat)
        if body.get("stream"):
            data = stream_bytes(ctx, chunks)
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=data)
        asm = ChatAssembler()
        for c in chunks:
            asm.feed(c)
        return httpx.Response(200, json=chat_to_response(asm.result(), ctx))

    return handler


CODEX_CHUNKS = [
    think("Need to list files."),
    text("Listing."),
    call(0, id="call_ls", name="shell", args='{"command":'),
    call(0, args=' ["ls", "-la"]}'),
    call(
        1,
        id="call_patch",
        name="apply_patch",
        args='{"input": "*** Begin Patch\\n*** End Patch\\n"}',
    ),
    finish("tool_calls", USAGE),
]


def test_sdk_create_stream_iterates_events() -> None:
    seen: list[dict[str, Any]] = []
    client = sdk_client(proxy_handler(CODEX_CHUNKS, seen))
    stream = client.responses.create(
        model="gpt-5-codex",
        input="list files",
        tools=[SHELL, APPLY_PATCH],
        stream=True,
    )
    types = []
    final = None
    for event in stream:
        types.append(getattr(event, "type", None))
        if isinstance(event, ResponseCompletedEvent):
            final = event.response
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert final is not None
    assert [o.type for o in final.output] == [
        "reasoning",
        "message",
        "function_call",
        "custom_tool_call",
    ]
    assert final.usage is not None and final.usage.input_tokens == 100
    assert seen[0]["model"] == "oca/gpt-5-codex"


def test_sdk_stream_helper_final_response() -> None:
    client = sdk_client(proxy_handler(CODEX_CHUNKS, []))
    with client.responses.stream(
        model="gpt-5-codex",
        input=[{"role": "user", "content": "list files"}],
        tools=[SHELL, APPLY_PATCH],
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["Listing."]
    assert final.output_text == "Listing."
    calls = [o for o in final.output if o.type == "function_call"]
    assert calls[0].arguments == '{"command": ["ls", "-la"]}'
    custom = [o for o in final.output if o.type == "custom_tool_call"]
    assert custom[0].input == "*** Begin Patch\n*** End Patch\n"


def test_sdk_stream_helper_incomplete_and_failed() -> None:
    client = sdk_client(proxy_handler([text("cut"), finish("length")], []))
    with client.responses.stream(model="m", input="x") as stream:
        events = list(stream)
    assert events[-1].type == "response.incomplete"

    def failing(request: httpx.Request) -> httpx.Response:
        _, ctx = responses_to_chat(json.loads(request.content), target_model="oca/m")
        data = stream_bytes(ctx, [text("part")], fail=(500, "upstream died"))
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=data)

    with sdk_client(failing).responses.stream(model="m", input="x") as stream:
        events = list(stream)
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None
    assert events[-1].response.error.message == "upstream died"


def test_sdk_non_stream_create() -> None:
    client = sdk_client(proxy_handler(CODEX_CHUNKS, []))
    resp = client.responses.create(model="gpt-5-codex", input="x", tools=[SHELL, APPLY_PATCH])
    assert resp.status == "completed"
    assert resp.output_text == "Listing."
    assert resp.model == "gpt-5-codex"


def test_sdk_multi_turn_tool_session() -> None:
    """Turn 1 streams tool calls; turn 2 continues by previous_response_id, turn 2' by resending output."""
    history = ResponseHistory()
    seen: list[dict[str, Any]] = []
    answers = [
        CODEX_CHUNKS,
        [text("All done."), finish("stop", USAGE)],
        [text("Done again."), finish("stop")],
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        chat, ctx = responses_to_chat(body, target_model="oca/m", history=history)
        seen.append(chat)
        data = stream_bytes(ctx, answers[len(seen) - 1])
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=data)

    client = sdk_client(handler)
    with client.responses.stream(
        model="m", input="fix it", tools=[SHELL, APPLY_PATCH], instructions="sys"
    ) as st1:
        first = st1.get_final_response()
    calls = [o for o in first.output if o.type in ("function_call", "custom_tool_call")]
    outputs: list[Any] = [
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "file_a"},
        {"type": "custom_tool_call_output", "call_id": calls[1].call_id, "output": "Success"},
    ]
    with client.responses.stream(
        model="m",
        input=outputs,
        previous_response_id=first.id,
        tools=[SHELL, APPLY_PATCH],
        instructions="sys",
    ) as st2:
        second = st2.get_final_response()
    assert second.output_text == "All done."
    expected_roles = ["system", "user", "assistant", "tool", "tool"]
    assert [m["role"] for m in seen[1]["messages"]] == expected_roles
    assistant = seen[1]["messages"][2]
    assert assistant["content"] == "Listing."
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_ls", "call_patch"]

    # stateless style: resend the SDK's own output items
    resend = [
        {"role": "user", "content": "fix it"},
        *[o.model_dump(exclude_none=True) for o in first.output],
        *outputs,
    ]
    with client.responses.stream(
        model="m", input=resend, tools=[SHELL, APPLY_PATCH], instructions="sys", store=False
    ) as st3:
        third = st3.get_final_response()
    assert third.output_text == "Done again."
    assert seen[2]["messages"] == seen[1]["messages"]
    assert third.id not in history


# ==========================================================================================
# native /responses models
# ==========================================================================================


def test_prepare_native_responses() -> None:
    history = ResponseHistory()
    history.remember(
        "resp_prev",
        [{"type": "message", "role": "user", "content": "q1"}],
        [
            {"id": "rs_oca_1", "type": "reasoning", "summary": []},
            {
                "id": "msg_oca_1",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "a1", "annotations": []}],
            },
        ],
    )
    body = {
        "model": "gpt-5",
        "input": [
            {"id": "rs_oca_2", "type": "reasoning", "summary": []},
            {"id": "rs_upstream", "type": "reasoning", "summary": [], "encrypted_content": "e"},
            {"role": "user", "content": "q2"},
        ],
        "previous_response_id": "resp_prev",
        "stream": False,
        "unknown": 1,
    }
    out, ctx = prepare_native_responses(
        body, target_model="oca/gpt-5", reasoning_effort="high", history=history
    )
    assert out["model"] == "oca/gpt-5" and out["stream"] is True and out["unknown"] == 1
    assert "previous_response_id" not in out
    assert out["input"] == [
        {"type": "message", "role": "user", "content": "q1"},
        {
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "a1", "annotations": []}],
        },
        {"id": "rs_upstream", "type": "reasoning", "summary": [], "encrypted_content": "e"},
        {"role": "user", "content": "q2"},
    ]
    assert out["reasoning"] == {"effort": "high"}
    assert ctx.requested_model == "gpt-5" and ctx.stream is False
    assert body["model"] == "gpt-5"  # the client's body is not mutated

    out, _ = prepare_native_responses(
        {
            "model": "gpt-5",
            "input": "x",
            "previous_response_id": "resp_upstream_only",
            "reasoning": {"effort": "low"},
        },
        target_model="oca/gpt-5",
        reasoning_effort="high",
        history=history,
    )
    assert out["previous_response_id"] == "resp_upstream_only"
    assert out["input"] == "x"
    assert out["reasoning"] == {"effort": "low"}

    with pytest.raises(RequestError):
        prepare_native_responses({"input": "x"}, target_model="oca/gpt-5")


def native_events(*objs: dict[str, Any]) -> list[sse.SSEEvent]:
    return [sse.SSEEvent(json.dumps(o), o.get("type")) for o in objs]


def test_native_assembler_uses_terminal_response() -> None:
    asm = NativeResponsesAssembler()
    item = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "hi", "annotations": []}],
    }
    for ev in native_events(
        {
            "type": "response.created",
            "response": {"id": "resp_1", "status": "in_progress", "output": []},
        },
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {
            "type": "response.completed",
            "response": {
                "id": "resp_1",
                "status": "completed",
                "output": [item],
                "model": "oca/gpt-5",
            },
        },
    ):
        asm.feed(ev)
    asm.feed(sse.SSEEvent("[DONE]"))
    assert asm.result()["output"] == [item]


def test_native_assembler_falls_back_to_output_item_done() -> None:
    _, ctx = prepare_native_responses(
        {"model": "gpt-5", "input": "x"}, target_model="oca/gpt-5", history=ResponseHistory()
    )
    asm = NativeResponsesAssembler(ctx)
    fc = {
        "id": "fc_1",
        "type": "function_call",
        "call_id": "c",
        "name": "shell",
        "arguments": "{}",
        "status": "completed",
    }
    msg = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [],
    }
    for ev in native_events(
        {"type": "response.output_item.done", "output_index": 1, "item": fc},
        {"type": "response.output_item.done", "output_index": 0, "item": msg},
        {
            "type": "response.completed",
            "response": {
                "id": "resp_2",
                "object": "response",
                "status": "completed",
                "output": [],
                "model": "oca/gpt-5",
            },
        },
    ):
        asm.feed(ev)
    resp = asm.result()
    assert resp["output"] == [msg, fc]
    assert resp["model"] == "gpt-5"
    assert "resp_2" in ctx.history  # type: ignore[operator]


def test_native_assembler_without_terminal_event() -> None:
    asm = NativeResponsesAssembler()
    for ev in native_events(
        {
            "type": "response.created",
            "response": {"id": "resp_3", "status": "in_progress", "output": [], "model": "m"},
        },
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            },
        },
        {
            "type": "response.output_text.delta",
            "output_index": 0,
            "item_id": "msg_1",
            "content_index": 0,
            "delta": "par",
        },
        {
            "type": "response.output_text.delta",
            "output_index": 0,
            "item_id": "msg_1",
            "content_index": 0,
            "delta": "tial",
        },
    ):
        asm.feed(ev)
    resp = asm.result()
    assert resp["id"] == "resp_3"
    assert resp["status"] == "failed" and resp["error"]["code"] == "server_error"
    assert resp["output"][0]["content"][0]["text"] == "partial"
    assert resp["output"][0]["status"] == "incomplete"

    asm = NativeResponsesAssembler()
    asm.feed(
        sse.SSEEvent(
            json.dumps({"type": "error", "code": "rate_limit_exceeded", "message": "slow down"}),
            "error",
        )
    )
    resp = asm.result()
    assert resp["status"] == "failed" and resp["error"] == {
        "code": "rate_limit_exceeded",
        "message": "slow down",
    }


def native_stream(body: dict[str, Any], history: ResponseHistory | None = None) -> Any:
    _, ctx = prepare_native_responses(
        {"model": "my-alias", **body}, target_model="oca/gpt-5", history=history
    )
    return NativeResponsesStream(ctx)


NATIVE_MSG = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "status": "completed",
    "content": [{"type": "output_text", "text": "hi", "annotations": [], "logprobs": []}],
}


def native_frames(final_output: list[Any]) -> list[dict[str, Any]]:
    snapshot = {"id": "resp_n", "object": "response", "status": "in_progress", "output": []}
    snapshot["model"] = "oca/gpt-5"
    return [
        {"type": "response.created", "sequence_number": 0, "response": snapshot},
        {
            "type": "response.output_item.added",
            "sequence_number": 1,
            "output_index": 0,
            "item": {**NATIVE_MSG, "status": "in_progress", "content": []},
        },
        {
            "type": "response.output_item.done",
            "sequence_number": 2,
            "output_index": 0,
            "item": NATIVE_MSG,
        },
        {
            "type": "response.completed",
            "sequence_number": 3,
            "response": {
                **snapshot,
                "status": "completed",
                "output": final_output,
                "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
            },
        },
    ]


@pytest.mark.parametrize("final_output", [[NATIVE_MSG], []], ids=["full", "empty"])
def test_native_stream_passes_events_and_fills_empty_output(final_output: list[Any]) -> None:
    history = ResponseHistory()
    s = native_stream({"input": "q", "previous_response_id": None}, history)
    out = b"".join(s.feed(f) for f in native_frames(final_output)) + s.finish()
    events = sse.parse_all(out)
    objs = [e.json() for e in events]
    assert [e.event for e in events] == [o["type"] for o in objs]
    assert [o["sequence_number"] for o in objs] == [0, 1, 2, 3]
    assert objs[0]["response"]["model"] == "my-alias"
    final = objs[-1]["response"]
    assert final["model"] == "my-alias" and final["output"] == [NATIVE_MSG]
    assert s.response == final
    assert history.expand("resp_n")[-1] == NATIVE_MSG  # remembered for previous_response_id


def test_native_stream_previous_response_id_is_shown() -> None:
    history = ResponseHistory()
    history.remember("resp_0", [{"role": "user", "content": "a"}], [NATIVE_MSG])
    s = native_stream({"input": "b", "previous_response_id": "resp_0"}, history)
    out = b"".join(s.feed(f) for f in native_frames([NATIVE_MSG]))
    final = sse.parse_all(out)[-1].json()["response"]
    assert final["previous_response_id"] == "resp_0"
    assert len(history.expand("resp_n")) == 4  # a, answer, b, answer


def test_native_stream_failures() -> None:
    # OCA failed mid-stream: an error event that continues the sequence, then nothing more
    s = native_stream({"input": "q"})
    out = s.feed(native_frames([])[0]) + s.fail(500, "boom")
    last = sse.parse_all(out)[-1]
    assert last.event == "error"
    assert last.json() == {
        "type": "error",
        "sequence_number": 1,
        "code": "server_error",
        "message": "boom",
        "param": None,
    }
    assert s.finish() == b"" and s.feed(native_frames([])[1]) == b""

    # OCA's own error event goes through as is and ends the stream
    s = native_stream({"input": "q"})
    err = {"type": "error", "sequence_number": 0, "code": "x", "message": "m", "param": None}
    assert sse.parse_all(s.feed(err))[0].json() == err
    assert s.finish() == b"" and s.fail(500, "late") == b""

    # the stream ended without a terminal event: response.failed with what arrived
    s = native_stream({"input": "q"})
    frames = native_frames([])[:3]
    out = b"".join(s.feed(f) for f in frames) + s.finish()
    last = sse.parse_all(out)[-1].json()
    assert last["type"] == "response.failed" and last["sequence_number"] == 3
    assert last["response"]["status"] == "failed" and last["response"]["output"] == [NATIVE_MSG]
    assert last["response"]["model"] == "my-alias"


# ==========================================================================================
# property-based
# ==========================================================================================

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
call_ids = st.sampled_from(["a", "b", "c", "", None, 7])
names = st.sampled_from(["shell", "apply_patch", "get_issue", "", None])
texts = st.text(max_size=10)

content_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("input_text"), "text": st.one_of(texts, junk)}),
    st.fixed_dictionaries({"type": st.just("output_text"), "text": texts}),
    st.fixed_dictionaries(
        {
            "type": st.just("input_image"),
            "image_url": st.one_of(st.just("data:image/png;base64,AA"), junk),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("input_file"),
            "file_data": st.one_of(st.just("data:application/pdf;base64,AA"), junk),
        }
    ),
    junk,
)
content = st.one_of(texts, st.lists(content_part, max_size=3), junk)
message_item = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]),
        "content": content,
    },
    optional={"type": st.just("message")},
)
call_item = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["function_call", "custom_tool_call"]),
        "call_id": call_ids,
        "name": names,
    },
    optional={
        "arguments": st.one_of(texts, junk),
        "input": st.one_of(texts, junk),
        "namespace": st.one_of(st.just("mcp__x__"), junk),
    },
)
output_item = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["function_call_output", "custom_tool_call_output"]),
        "call_id": call_ids,
    },
    optional={"output": st.one_of(texts, st.lists(content_part, max_size=2), junk)},
)
other_item = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["reasoning", "item_reference", "local_shell_call", "weird"])}
    ),
    junk,
)
input_item = st.one_of(
    message_item, message_item, call_item, call_item, output_item, output_item, other_item
)
tool = st.one_of(
    st.just(SHELL),
    st.just(APPLY_PATCH),
    st.just({"type": "web_search"}),
    st.fixed_dictionaries(
        {
            "type": st.just("namespace"),
            "name": st.one_of(st.just("mcp__x__"), junk),
            "tools": st.one_of(
                st.lists(st.one_of(st.just(SHELL), st.just(APPLY_PATCH), junk), max_size=2), junk
            ),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["function", "custom"]), "name": st.one_of(names, junk)}
    ),
    junk,
)
junk_bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(st.just("gpt-5"), junk),
        "input": st.one_of(texts, st.lists(input_item, max_size=8), junk),
        "instructions": st.one_of(texts, junk),
        "tools": st.one_of(st.lists(tool, max_size=4), junk),
        "tool_choice": st.one_of(st.sampled_from(["auto", "required", "none"]), junk),
        "parallel_tool_calls": st.one_of(st.booleans(), junk),
        "max_output_tokens": st.one_of(st.integers(min_value=-5, max_value=10**6), junk),
        "temperature": st.one_of(st.floats(0, 2), junk),
        "text": st.one_of(st.just({"format": {"type": "json_object"}}), junk),
        "reasoning": st.one_of(st.just({"effort": "minimal"}), junk),
        "previous_response_id": st.one_of(st.just("resp_known"), junk),
    },
)

# valid-shaped: every field well-typed; the mess is in the structure (orphans, duplicates,
# missing outputs, empty ids, interleavings, namespaces, custom tools)
ok_ids = st.sampled_from(["a", "b", "c", "d", ""])
ok_names = st.sampled_from(["shell", "apply_patch", "get_issue"])
ok_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("input_text"), "text": texts}),
    st.fixed_dictionaries(
        {"type": st.just("input_image"), "image_url": st.just("data:image/png;base64,AA")}
    ),
    st.fixed_dictionaries({"type": st.just("input_file"), "file_id": st.just("file-1")}),
)
ok_content = st.one_of(texts, st.lists(ok_part, max_size=3))
ok_item = st.one_of(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "user", "assistant", "system", "developer"]),
            "content": ok_content,
        },
        optional={"type": st.just("message")},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("function_call"),
            "call_id": ok_ids,
            "name": ok_names,
            "arguments": st.sampled_from(["{}", "", '{"command":["ls"]}']),
        },
        optional={"namespace": st.just("mcp__x__")},
    ),
    st.fixed_dictionaries(
        {"type": st.just("custom_tool_call"), "call_id": ok_ids, "name": ok_names, "input": texts}
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["function_call_output", "custom_tool_call_output"]),
            "call_id": ok_ids,
            "output": st.one_of(texts, st.lists(ok_part, max_size=2)),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("reasoning"), "id": st.just("rs_1"), "summary": st.just([])}
    ),
)
ok_tool = st.one_of(
    st.just(SHELL),
    st.just(APPLY_PATCH),
    st.just({"type": "web_search"}),
    st.just(
        {
            "type": "namespace",
            "name": "mcp__x__",
            "description": "x",
            "tools": [{"type": "function", "name": "get_issue"}, APPLY_PATCH],
        }
    ),
)
ok_bodies = st.fixed_dictionaries(
    {
        "model": st.just("gpt-5"),
        "input": st.one_of(texts, st.lists(ok_item, min_size=1, max_size=10)),
    },
    optional={
        "instructions": texts,
        "tools": st.lists(ok_tool, max_size=4),
        "tool_choice": st.one_of(
            st.sampled_from(["auto", "required", "none"]),
            st.just({"type": "function", "name": "shell"}),
            st.just(
                {
                    "type": "allowed_tools",
                    "mode": "auto",
                    "tools": [{"type": "function", "name": "shell"}],
                }
            ),
        ),
        "parallel_tool_calls": st.booleans(),
        "max_output_tokens": st.integers(min_value=1, max_value=10**6),
        "temperature": st.floats(0, 2),
        "text": st.just({"format": {"type": "json_object"}}),
        "reasoning": st.sampled_from([{"effort": "minimal"}, {"effort": "high"}, {}]),
        "previous_response_id": st.just("resp_known"),
        "store": st.booleans(),
    },
)
bodies = st.one_of(ok_bodies, ok_bodies, ok_bodies, junk_bodies)


def assert_valid_chat(chat: dict[str, Any]) -> None:
    json.dumps(chat)
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    msgs = chat["messages"]
    assert msgs
    roles = [m["role"] for m in msgs]
    assert "system" not in roles[1:]
    assert "developer" not in roles
    pending: set[str] | None = None
    for m in msgs:
        if m["role"] == "tool":
            assert pending is not None and m["tool_call_id"] in pending, (
                "tool message without its call"
            )
            pending.discard(m["tool_call_id"])
            assert isinstance(m["content"], str)
            continue
        assert not pending, "tool call without a tool message"
        pending = None
        if m["role"] == "assistant" and m.get("tool_calls"):
            ids = [c["id"] for c in m["tool_calls"]]
            assert len(set(ids)) == len(ids) and all(isinstance(i, str) and i for i in ids)
            for c in m["tool_calls"]:
                assert isinstance(c["function"]["name"], str) and c["function"]["name"]
                assert isinstance(c["function"]["arguments"], str)
            pending = set(ids)
    assert not pending
    if "tools" not in chat:
        assert "tool_choice" not in chat and "parallel_tool_calls" not in chat


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_property_request_is_valid_or_request_error(body: dict[str, Any]) -> None:
    history = ResponseHistory()
    history.remember(
        "resp_known",
        [
            {"role": "user", "content": "q"},
            {"type": "function_call", "call_id": "a", "name": "shell", "arguments": "{}"},
        ],
        [{"type": "function_call_output", "call_id": "a", "output": "x"}],
    )
    try:
        chat, ctx = responses_to_chat(body, target_model="oca/gpt-5", history=history)
    except RequestError as err:
        assert err.status == 400 and err.message
        return
    assert_valid_chat(chat)
    resp = chat_to_response({"choices": [{"message": {"content": "ok"}}]}, ctx)
    assert resp["model"] == body["model"]


tool_delta = st.fixed_dictionaries(
    {},
    optional={
        "index": st.one_of(st.integers(0, 2), junk),
        "id": st.one_of(st.sampled_from(["c0", "c1", "c2"]), junk),
        "function": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.one_of(
                        st.sampled_from(["shell", "apply_patch", "mcp__x__get_issue"]), junk
                    ),
                    "arguments": st.one_of(st.sampled_from(['{"a":', "1}", '"x"', "", "{}"]), junk),
                },
            ),
            junk,
        ),
    },
)
delta = st.fixed_dictionaries(
    {},
    optional={
        "content": st.one_of(texts, junk),
        "reasoning_content": st.one_of(texts, junk),
        "thinking": st.one_of(texts, junk),
        "refusal": st.one_of(texts, junk),
        "tool_calls": st.one_of(st.lists(st.one_of(tool_delta, junk), max_size=3), junk),
    },
)
junk_chunk = st.one_of(
    st.fixed_dictionaries(
        {
            "choices": st.one_of(
                st.lists(
                    st.one_of(
                        st.fixed_dictionaries(
                            {"index": st.one_of(st.just(0), junk)},
                            optional={
                                "delta": st.one_of(delta, junk),
                                "finish_reason": st.one_of(
                                    st.sampled_from(
                                        ["stop", "length", "tool_calls", "content_filter"]
                                    ),
                                    junk,
                                ),
                            },
                        ),
                        junk,
                    ),
                    max_size=2,
                ),
                junk,
            )
        },
        optional={"usage": st.one_of(st.just(USAGE), junk)},
    ),
    st.just({"error": {"message": "boom", "code": 429}}),
    junk,
)
ok_tool_delta = st.fixed_dictionaries(
    {"index": st.integers(0, 2)},
    optional={
        "id": st.sampled_from(["c0", "c1", "c2"]),
        "function": st.fixed_dictionaries(
            {
                "arguments": st.sampled_from(
                    ['{"input": "*** Begin', ' Patch"}', '{"a":', "1}", "{}", ""]
                )
            },
            optional={"name": st.sampled_from(["shell", "apply_patch", "mcp__x__get_issue"])},
        ),
    },
)
ok_chunk = st.one_of(
    st.builds(text, texts),
    st.builds(think, texts),
    st.lists(ok_tool_delta, min_size=1, max_size=2).map(
        lambda tcs: {"choices": [{"index": 0, "delta": {"tool_calls": tcs}}]}
    ),
    st.sampled_from(["stop", "length", "tool_calls"]).map(lambda r: finish(r, USAGE)),
)
chunk = st.one_of(ok_chunk, ok_chunk, ok_chunk, ok_chunk, junk_chunk)
endings = st.one_of(
    st.just(None), st.just(None), st.tuples(st.sampled_from([400, 429, 500, 502]), texts)
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(chunk, max_size=12), endings)
def test_property_stream_never_raises_and_ends_once(chunks: list[Any], ending: Any) -> None:
    _, ctx = translate(
        {
            "input": "x",
            "tools": [
                SHELL,
                APPLY_PATCH,
                {
                    "type": "namespace",
                    "name": "mcp__x__",
                    "description": "",
                    "tools": [{"type": "function", "name": "get_issue"}],
                },
            ],
        }
    )
    s = ResponsesStream(ctx)
    out = b"".join(s.feed(c) for c in chunks)
    out += s.fail(*ending) if ending else s.finish()
    events = events_of(out)
    items = check_grammar(events)
    final = events[-1]["response"]
    assert s.response == final
    Response.model_validate(final)
    for item in items:
        if item["type"] == "function_call":
            assert item["arguments"]


def test_a_repeated_tool_call_id_is_made_unique_for_the_sdk() -> None:
    """Two chat calls with one id at different indices (the model repeated itself): each
    becomes its own function_call with its own call_id, streamed and buffered."""
    chunks = [
        call(0, id="call_x", name="shell", args='{"command":["a"]}'),
        call(1, id="call_x", name="shell", args='{"command":["b"]}'),
        call(2, id="call_x", name="shell", args='{"command":["c"]}'),
        finish("tool_calls"),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        _, ctx = responses_to_chat(json.loads(request.content), target_model="oca/m")
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=stream_bytes(ctx, chunks)
        )

    with sdk_client(handler).responses.stream(model="m", input="x", tools=[SHELL]) as stream:
        final = stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert [c.call_id for c in calls] == ["call_x", "call_x_2", "call_x_3"]
    assert [json.loads(c.arguments)["command"] for c in calls] == [["a"], ["b"], ["c"]]

    assembler = ChatAssembler()
    for c in chunks:
        assembler.feed(c)
    _, ctx = translate({"input": "x", "tools": [SHELL]})
    resp = chat_to_response(assembler.result(), ctx)
    assert [i["call_id"] for i in resp["output"]] == ["call_x", "call_x_2", "call_x_3"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(chunk, max_size=10))
def test_property_sdk_accepts_any_stream(chunks: list[Any]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        _, ctx = responses_to_chat(json.loads(request.content), target_model="oca/m")
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=stream_bytes(ctx, chunks)
        )

    with sdk_client(handler).responses.stream(
        model="m", input="x", tools=[SHELL, APPLY_PATCH]
    ) as stream:
        events = list(stream)
    assert events[-1].type in TERMINAL
