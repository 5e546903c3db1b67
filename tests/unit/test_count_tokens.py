"""Local input-token estimate for /v1/messages/count_tokens."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from oca_addon.translate.count_tokens import IMAGE_TOKENS, count_tokens


def body(*messages: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "claude-x", "messages": list(messages), **extra}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def test_never_zero() -> None:
    assert count_tokens({}) > 0
    assert count_tokens(body(user(""))) > 0
    assert count_tokens(body()) > 0


def test_junk_never_raises() -> None:
    for junk in (None, [], "x", 3, {"messages": "x"}, {"messages": [None, 3, {"content": 5}]}):
        assert count_tokens(junk) > 0  # type: ignore[arg-type]


def test_grows_with_content() -> None:
    small = count_tokens(body(user("hello")))
    bigger = count_tokens(body(user("hello " * 100)))
    more_messages = count_tokens(body(user("hello"), {"role": "assistant", "content": "hi"}))
    assert small < bigger
    assert small < more_messages


def test_errs_high_relative_to_chars_over_four() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 200
    assert count_tokens(body(user(text))) > len(text) / 4
    code = "def f(x):\n    return {'a': [x, x + 1]}\n" * 300
    assert count_tokens(body(user(code))) > len(code) / 4


def test_counts_system() -> None:
    base = count_tokens(body(user("x")))
    assert count_tokens(body(user("x"), system="s" * 700)) >= base + 200
    blocks = [{"type": "text", "text": "s" * 700, "cache_control": {"type": "ephemeral"}}]
    assert count_tokens(body(user("x"), system=blocks)) >= base + 200


def test_counts_tools() -> None:
    base = count_tokens(body(user("x")))
    tool = {
        "name": "Read",
        "description": "Reads a file from the local filesystem. " * 20,
        "input_schema": {
            "type": "object",
            "properties": {"file_path": {"type": "string", "description": "absolute path"}},
            "required": ["file_path"],
        },
    }
    with_tool = count_tokens(body(user("x"), tools=[tool]))
    assert with_tool > base + len(json.dumps(tool)) / 4
    assert count_tokens(body(user("x"), tools=[tool, {**tool, "name": "Write"}])) > with_tool


def test_counts_tool_use_and_tool_results() -> None:
    call = {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "Bash",
        "input": {"command": "ls -la " * 50},
    }
    result_text = "drwxr-xr-x  5 user  staff  160 Jan  1 00:00 dir\n" * 100
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": result_text}
    base = count_tokens(body(user("x")))
    with_call = count_tokens(body(user("x"), {"role": "assistant", "content": [call]}))
    assert with_call > base + len("ls -la " * 50) / 4
    with_result = count_tokens(
        body(user("x"), {"role": "assistant", "content": [call]}, user([result]))
    )
    assert with_result > with_call + len(result_text) / 4
    as_blocks = {**result, "content": [{"type": "text", "text": result_text}]}
    assert (
        count_tokens(body(user("x"), {"role": "assistant", "content": [call]}, user([as_blocks])))
        > with_call + len(result_text) / 4
    )


def test_images_have_a_fixed_cost_regardless_of_data_size() -> None:
    def image(size: int) -> dict[str, Any]:
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "A" * size},
        }

    base = count_tokens(body(user("x")))
    small = count_tokens(body(user([image(10)])))
    large = count_tokens(body(user([image(2_000_000)])))
    assert small == large
    assert small >= base + IMAGE_TOKENS - 10
    in_result = {"type": "tool_result", "tool_use_id": "t", "content": [image(10)]}
    assert count_tokens(body(user([in_result]))) >= base + IMAGE_TOKENS


def test_documents() -> None:
    text_doc = {"type": "document", "source": {"type": "text", "data": "word " * 1000}}
    assert count_tokens(body(user([text_doc]))) > 5000 / 4
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "J" * 400_000},
    }
    assert count_tokens(body(user([pdf]))) > IMAGE_TOKENS


def test_thinking_blocks_are_not_counted() -> None:
    thinking = {"type": "thinking", "thinking": "t" * 10_000, "signature": "s"}
    plain = count_tokens(
        body(user("x"), {"role": "assistant", "content": [{"type": "text", "text": "a"}]})
    )
    with_thinking = count_tokens(
        body(
            user("x"),
            {"role": "assistant", "content": [thinking, {"type": "text", "text": "a"}]},
        )
    )
    assert with_thinking == plain


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_property_any_json_gives_a_positive_count(value: Any) -> None:
    assert count_tokens({"messages": [user(value)], "system": value, "tools": [value]}) > 0
    assert count_tokens(value) > 0


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=1, max_size=2000))
def test_property_at_least_chars_over_four(text: str) -> None:
    assert count_tokens(body(user(text))) >= len(text) / 4
