"""Unit tests for the pure core: SSE parsing, chat assembly, settings, model mapping, routing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oca_addon.core import sse
from oca_addon.core.errors import anthropic_error, openai_error, upstream_error_message
from oca_addon.core.modelinfo import Catalog, openai_model_list
from oca_addon.core.routing import Endpoint, classify, plan_route
from oca_addon.core.settings import (
    ConfigError,
    MappingTarget,
    Settings,
    SettingsFile,
    load_settings,
    parse_settings,
    resolve_model,
    save_settings,
)
from oca_addon.core.streams import StreamDriver, token_counts, usage_from_stream
from oca_addon.translate.anthropic import NativeMessagesStream
from oca_addon.translate.chat import ChatAssembler, ChatStream, prepare_chat_request
from oca_addon.translate.upstream import AdaptedStream
from oca_addon.translate.upstream import messages as up_messages

# -- SSE ---------------------------------------------------------------------------------


def test_sse_parser_handles_any_split() -> None:
    frames = (
        b'data: {"a":"x\xe2\x80\xa8y"}\n\n'  # U+2028 inside JSON is not a line break
        b'event: message_start\ndata: {"b":1}\n\n'
        b": keep-alive\n\n"
        b"data: [DONE]\n\n"
    )
    for size in range(1, len(frames) + 1):
        p = sse.SSEParser()
        events = []
        for i in range(0, len(frames), size):
            events += p.feed(frames[i : i + size])
        events += p.close()
        assert [e.data for e in events] == ['{"a":"x\u2028y"}', '{"b":1}', "[DONE]"]
        assert events[1].event == "message_start"
        assert json.loads(events[0].data)["a"] == "x\u2028y"


def test_sse_crlf_and_unterminated_last_event() -> None:
    events = sse.parse_all(b"data: one\r\n\r\ndata: two")
    assert [e.data for e in events] == ["one", "two"]


@given(st.lists(st.text(), max_size=5), st.integers(min_value=1, max_value=7))
def test_sse_roundtrip_property(texts: list[str], size: int) -> None:
    texts = [t.replace("\n", " ").replace("\r", " ") for t in texts]
    blob = b"".join(sse.encode({"t": t}) for t in texts)
    p = sse.SSEParser()
    events = []
    for i in range(0, len(blob), size):
        events += p.feed(blob[i : i + size])
    events += p.close()
    assert [json.loads(e.data)["t"] for e in events] == texts


# -- chat ----------------------------------------------------------------------------------


def test_chat_assembler_tool_fragments_and_usage() -> None:
    a = ChatAssembler()
    chunks = [
        {
            "id": "c1",
            "model": "oca/x",
            "created": 1,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}],
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_a",
                                "function": {"name": "f", "arguments": '{"x"'},
                            }
                        ]
                    },
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 1,
                                "id": "call_b",
                                "function": {"name": "g", "arguments": "{}"},
                            }
                        ]
                    },
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]},
                }
            ]
        },
        {
            "choices": [
                {"index": 0, "delta": {"reasoning_content": "think"}, "finish_reason": "tool_calls"}
            ]
        },
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}},
    ]
    for c in chunks:
        a.feed(c)
    r = a.result()
    msg = r["choices"][0]["message"]
    assert msg["content"] == "Hi" and msg["reasoning_content"] == "think"
    assert [(t["id"], t["function"]["arguments"]) for t in msg["tool_calls"]] == [
        ("call_a", '{"x":1}'),
        ("call_b", "{}"),
    ]
    assert r["choices"][0]["finish_reason"] == "tool_calls"
    assert r["usage"]["total_tokens"] == 8


def test_prepare_chat_forces_stream_and_strips_detail() -> None:
    out = prepare_chat_request(
        {
            "model": "m",
            "stream": False,
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "u", "detail": "low"}}],
                }
            ],
        }
    )
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert out["messages"][0]["content"][0]["image_url"] == {"url": "u"}


# -- settings and mapping ------------------------------------------------------------------


def test_settings_json_and_yaml(tmp_path: Path) -> None:
    data = {
        "model_mapping": {
            "claude-*haiku*": "oca/llama-4",
            "big": {"target": "oca/gpt-5", "reasoning_effort": "high"},
        },
        "default_model": "oca/gpt-4.1",
        "port": 8668,
        "mode": "external",
    }
    j = tmp_path / "s.json"
    j.write_text(json.dumps(data))
    y = tmp_path / "s.yaml"
    y.write_text(
        "model_mapping:\n  claude-*haiku*: oca/llama-4\n  big:\n    target: oca/gpt-5\n"
        "    reasoning_effort: high\ndefault_model: oca/gpt-4.1\nport: 8668\nmode: external\n"
    )
    assert load_settings(j) == load_settings(y)
    s = load_settings(j)
    assert s.model_mapping["big"] == MappingTarget("oca/gpt-5", "high")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{nope", "invalid JSON at line 1"),
        ('{"model_mapping": []}', "'model_mapping' must be an object"),
        ('{"model_mapping": {"a": 3}}', "model_mapping['a']"),
        ('{"mode": "galactic"}', "'mode' must be 'internal' or 'external'"),
        ('{"port": "eighty"}', "'port' must be a port number"),
        ('{"default_reasoning_effort": "max"}', "must be one of"),
        ("[1,2]", "must hold an object"),
    ],
)
def test_bad_settings_name_file_and_problem(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "oca-proxy.config.json"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings(f)
    assert needle in str(e.value) and str(f) in str(e.value)


def test_settings_file_reloads_and_survives_a_bad_edit(tmp_path: Path) -> None:
    f = tmp_path / "oca-proxy.config.json"
    f.write_text(json.dumps({"default_model": "oca/a"}))
    sf = SettingsFile(f, check_interval=0)
    assert sf.get().default_model == "oca/a"
    f.write_text(json.dumps({"default_model": "oca/bb"}))
    assert sf.get().default_model == "oca/bb"
    f.write_text("{broken")
    assert sf.get().default_model == "oca/bb" and sf.error is not None
    f.write_text(json.dumps({"default_model": "oca/ccc"}))
    assert sf.get().default_model == "oca/ccc" and sf.error is None


def test_save_settings_atomic_and_round_trips(tmp_path: Path) -> None:
    f = tmp_path / "dir" / "oca-proxy.yaml"
    s = parse_settings(
        {"model_mapping": {"a": {"target": "oca/x", "reasoning_effort": "low"}, "b": "oca/y"}}
    )
    save_settings(f, s)
    assert load_settings(f) == s
    assert oct(os.stat(f).st_mode & 0o777) == "0o600"
    assert not [p for p in f.parent.iterdir() if p.name.endswith(".tmp")]


def test_resolve_model_order() -> None:
    s = Settings(
        model_mapping={
            "exact": MappingTarget("oca/e"),
            "claude-*haiku*": MappingTarget("oca/h", "low"),
            "claude-*": MappingTarget("oca/c"),
        },
        default_model="oca/d",
        default_reasoning_effort="medium",
    )
    assert resolve_model("oca/z", s).target == "oca/z"
    assert resolve_model("exact", s).target == "oca/e"
    r = resolve_model("claude-Haiku-4-5-2025", s)
    assert (r.target, r.reasoning_effort, r.via) == ("oca/h", "low", "pattern")
    assert resolve_model("claude-opus-5-5", s).target == "oca/c"
    assert resolve_model("gpt-4.1", s, frozenset({"oca/gpt-4.1"})).target == "oca/gpt-4.1"
    r = resolve_model("unknown", s)
    assert (r.target, r.reasoning_effort, r.via) == ("oca/d", "medium", "default")


# -- routing, catalogue, errors --------------------------------------------------------------


def test_classify_paths() -> None:
    assert classify("/v1/chat/completions") is Endpoint.CHAT
    assert classify("/chat/completions") is Endpoint.CHAT
    assert classify("/v1/messages?beta=true") is Endpoint.MESSAGES
    assert classify("/v1/messages/count_tokens?beta=true") is Endpoint.COUNT_TOKENS
    assert classify("/v1/responses") is Endpoint.RESPONSES
    assert classify("/v1/models") is Endpoint.MODELS
    assert classify("/login") is None and classify("/") is None


def test_plan_route_native_vs_translated() -> None:
    cat = Catalog.from_model_info(
        {
            "data": [
                {
                    "model_name": "oca/chat",
                    "model_info": {"supported_api_list": ["CHAT_COMPLETIONS"]},
                },
                {
                    "model_name": "oca/both",
                    "model_info": {
                        "supported_api_list": ["CHAT_COMPLETIONS", "RESPONSES", "MESSAGES"]
                    },
                },
            ]
        }
    )
    assert plan_route(Endpoint.RESPONSES, "oca/both", cat).upstream_path == "/responses"
    assert plan_route(Endpoint.MESSAGES, "oca/both", cat).upstream_path == "/v1/messages"
    r = plan_route(Endpoint.RESPONSES, "oca/chat", cat)
    assert (r.upstream_path, r.native) == ("/chat/completions", False)
    assert plan_route(Endpoint.MESSAGES, "oca/x", None).native is False
    assert [m["id"] for m in openai_model_list(cat, ["alias"])["data"]] == [
        "oca/both",
        "oca/chat",
        "alias",
    ]


def test_error_shapes_and_upstream_messages() -> None:
    assert openai_error(429, "slow down")["error"]["type"] == "rate_limit_error"
    assert anthropic_error(529, "busy") == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "busy"},
    }
    assert anthropic_error(413, "big")["error"]["type"] == "request_too_large"
    assert upstream_error_message(b'{"error":{"message":"bad model"}}', 400) == "bad model"
    assert "HTML page" in upstream_error_message(b"<html><body>oops</body></html>", 502)
    assert "empty body" in upstream_error_message(b"", 500)


# -- usage of streamed answers ---------------------------------------------------------------


def messages_stream(
    start_usage: dict[str, Any], delta_usage: dict[str, Any], pad: int = 0
) -> bytes:
    """A Messages stream as Anthropic documents it: input counts in message_start, the output
    count in message_delta (`pad` text deltas in between)."""

    def ev(kind: str, **data: Any) -> bytes:
        return sse.encode({"type": kind, **data}, event=kind)

    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "oca/claude",
               "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}  # fmt: skip
    return b"".join(
        [
            ev("message_start", message=message),
            ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
            *(
                ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "word "})
                for _ in range(max(pad, 1))
            ),
            ev("content_block_stop", index=0),
            ev("message_delta", delta={"stop_reason": "end_turn"}, usage=delta_usage),
            ev("message_stop"),
        ]
    )


START = {"input_tokens": 25, "cache_creation_input_tokens": 10, "cache_read_input_tokens": 100,
         "output_tokens": 1}  # fmt: skip


@pytest.mark.parametrize(
    ("start", "delta", "expected"),
    [
        (START, {"output_tokens": 15}, (135, 15)),  # Anthropic's documented stream
        (START, {"input_tokens": None, "output_tokens": 15}, (135, 15)),  # nulls
        # cumulative counts repeated in message_delta (Anthropic's newer streams)
        (START, {**START, "output_tokens": 15}, (135, 15)),
        # some gateways: 0 in message_start, the count in message_delta (or the reverse)
        ({"input_tokens": 0, "output_tokens": 0}, {"input_tokens": 9, "output_tokens": 4}, (9, 4)),
        ({"input_tokens": 9, "output_tokens": 1}, {"input_tokens": 0, "output_tokens": 4}, (9, 4)),
    ],
)
def test_a_streamed_messages_answer_records_its_input_tokens(
    start: dict[str, Any], delta: dict[str, Any], expected: tuple[int, int]
) -> None:
    """The input tokens of a streamed native Messages answer come from message_start (they
    were 0: the driver kept only message_delta's usage), in the driver (native streams, the
    Messages adapter's) and read off a kept body (replays), however far apart the two are."""
    for pad in (1, 2000):  # 2000 deltas: message_start far outside the last 16 KB
        body = messages_stream(start, delta, pad)
        driver = StreamDriver(NativeMessagesStream("claude-x"))
        out = b"".join(b"".join(driver(body[i : i + 700])) for i in range(0, len(body), 700))
        out += b"".join(driver(b""))
        assert b"event: message_stop" in out
        assert token_counts(driver.usage) == expected
        assert token_counts(usage_from_stream(body)) == expected
        adapted = StreamDriver(AdaptedStream(up_messages.Answer("oca/claude"), ChatStream()))
        adapted(body)
        adapted(b"")
        assert token_counts(adapted.usage) == expected


def test_token_counts_of_each_api() -> None:
    # chat: prompt_tokens holds the cached tokens (LiteLLM adds the Anthropic cache fields)
    chat = {"prompt_tokens": 120, "completion_tokens": 5, "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 10, "prompt_tokens_details": {"cached_tokens": 100}}  # fmt: skip
    assert token_counts(chat) == (120, 5)
    responses = {"input_tokens": 120, "output_tokens": 5,
                 "input_tokens_details": {"cached_tokens": 100}}  # fmt: skip
    assert token_counts(responses) == (120, 5)
    assert token_counts({**responses, "cache_read_input_tokens": 100}) == (120, 5)
    assert token_counts({**START, "output_tokens": 5}) == (135, 5)  # Messages: apart
    assert token_counts(None) == (0, 0)
    chat_sse = sse.encode({"choices": [], "usage": chat}) + b"data: [DONE]\n\n"
    assert usage_from_stream(chat_sse) == chat
    done = {"type": "response.completed", "response": {"usage": responses}}
    assert usage_from_stream(sse.encode(done, event="response.completed")) == responses
