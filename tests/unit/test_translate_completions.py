"""Legacy Completions <-> Chat Completions translation (oca_addon.translate.completions)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
import sdk_harness
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types import Completion

from oca_addon.core import sse
from oca_addon.core.errors import ApiError, RequestError
from oca_addon.translate.chat import ChatAssembler
from oca_addon.translate.completions import (
    CompletionsContext,
    CompletionsStream,
    assemble_completion_stream,
    chat_stream_to_completion,
    chat_to_completion,
    completions_to_chat,
    prepare_native_completions,
)

USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def translate(body: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], CompletionsContext]:
    return completions_to_chat({"model": "gpt-4.1", **body}, target_model="oca/gpt-4.1", **kw)


def text(s: str, index: int = 0) -> dict[str, Any]:
    return {"choices": [{"index": index, "delta": {"content": s}}]}


def finish(reason: str = "stop", index: int = 0, usage: dict | None = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {"choices": [{"index": index, "delta": {}, "finish_reason": reason}]}
    if usage:
        chunk["usage"] = usage
    return chunk


def run(ctx: CompletionsContext, chunks: list[Any], fail: tuple | None = None) -> bytes:
    s = CompletionsStream(ctx)
    out = b"".join(s.feed(c) for c in chunks)
    return out + (s.fail(*fail) if fail else s.finish())


def data_frames(data: bytes) -> list[str]:
    return [e.data for e in sse.parse_all(data)]


# -- request -------------------------------------------------------------------------------


def test_prompt_mapping_and_params() -> None:
    chat, ctx = translate(
        {
            "prompt": "Once upon",
            "max_tokens": 50,
            "temperature": 0.3,
            "top_p": 0.5,
            "stop": ["\n", "END"],
            "suffix": "ignored",
            "best_of": 2,
            "logprobs": 2,
            "presence_penalty": 0.1,
            "user": "u",
        },
        model_info={"max_output_tokens": 20, "is_reasoning_model": False},
    )
    assert chat["messages"] == [{"role": "user", "content": "Once upon"}]
    assert chat["model"] == "oca/gpt-4.1"
    assert chat["max_tokens"] == 20  # clamped
    assert chat["stop"] == ["\n", "END"]
    assert chat["temperature"] == 0.3 and chat["top_p"] == 0.5 and chat["presence_penalty"] == 0.1
    assert chat["user"] == "u"
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    for key in ("suffix", "best_of", "logprobs", "prompt", "echo"):
        assert key not in chat
    assert "n" not in chat
    assert ctx.requested_model == "gpt-4.1" and ctx.prompt == "Once upon"


def test_prompt_list_of_one_string_n_and_reasoning_models() -> None:
    chat, ctx = translate(
        {"prompt": ["hi"], "n": 2, "stop": "x", "temperature": 1},
        model_info={"is_reasoning_model": True},
        reasoning_effort="minimal",
    )
    assert chat["messages"][0]["content"] == "hi"
    assert chat["n"] == 2 and ctx.n == 2
    assert chat["stop"] == "x"
    assert "temperature" not in chat
    assert chat["reasoning_effort"] == "low"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ("nope", None),
        ({"prompt": "x"}, "model"),
        ({"model": "", "prompt": "x"}, "model"),
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": 3}, "prompt"),
        ({"model": "m", "prompt": [1, 2, 3]}, "prompt"),
        ({"model": "m", "prompt": ["a", "b"]}, "prompt"),
        ({"model": "m", "prompt": []}, "prompt"),
        ({"model": "m", "prompt": "x", "n": 0}, "n"),
        ({"model": "m", "prompt": "x", "stop": 5}, "stop"),
        ({"model": "m", "prompt": "x", "max_tokens": "lots"}, "max_tokens"),
    ],
)
def test_request_errors(body: Any, param: str | None) -> None:
    with pytest.raises(RequestError) as exc:
        completions_to_chat(body, target_model="oca/m")
    assert exc.value.status == 400 and exc.value.param == param and exc.value.message


# -- answers ---------------------------------------------------------------------------------


def test_chat_to_completion_and_echo() -> None:
    _, ctx = translate({"prompt": "Say: ", "echo": True})
    asm = ChatAssembler()
    for c in (text("hel"), text("lo"), finish("length", usage=USAGE)):
        asm.feed(c)
    out = chat_to_completion(asm.result(), ctx)
    model = Completion.model_validate(out)
    assert model.object == "text_completion"
    assert model.model == "gpt-4.1"
    assert out["id"].startswith("cmpl-")
    assert out["choices"] == [
        {"index": 0, "text": "Say: hello", "finish_reason": "length", "logprobs": None}
    ]
    assert out["usage"] == USAGE


def test_chat_to_completion_multiple_choices_and_tool_finish() -> None:
    _, ctx = translate({"prompt": "p", "n": 2})
    out = chat_to_completion(
        {
            "choices": [
                {"index": 1, "message": {"content": "B"}, "finish_reason": "tool_calls"},
                {"index": 0, "message": {"content": "A"}, "finish_reason": "stop"},
            ]
        },
        ctx,
    )
    Completion.model_validate(out)
    assert [(c["index"], c["text"], c["finish_reason"]) for c in out["choices"]] == [
        (0, "A", "stop"),
        (1, "B", "stop"),
    ]


def test_stream_chunks_and_done() -> None:
    _, ctx = translate({"prompt": "p", "stream": True, "stream_options": {"include_usage": True}})
    frames = data_frames(
        run(
            ctx,
            [
                {"choices": [{"index": 0, "delta": {"role": "assistant"}}]},
                text("a"),
                text("b"),
                finish("stop"),
                {"choices": [], "usage": USAGE},
            ],
        )
    )
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    for c in chunks:
        assert c["object"] == "text_completion" and c["model"] == "gpt-4.1" and c["id"] == ctx.id
        Completion.model_validate(c) if c["choices"] and c["choices"][0]["finish_reason"] else None
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "ab"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [
        None,
        None,
        "stop",
    ]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == USAGE


def test_stream_echo_and_missing_finish() -> None:
    _, ctx = translate({"prompt": "P:", "echo": True, "stream": True})
    s = CompletionsStream(ctx)
    frames = data_frames(s.feed(text("x")) + s.finish())
    chunks = [json.loads(f) for f in frames[:-1]]
    assert chunks[0]["choices"][0]["text"] == "P:x"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in chunks[-1]  # client did not ask for it
    assert s.completion is not None
    assert s.completion["choices"][0]["text"] == "P:x"
    Completion.model_validate(s.completion)


def test_stream_multiple_choices_by_index() -> None:
    _, ctx = translate({"prompt": "p", "n": 2, "stream": True})
    s = CompletionsStream(ctx)
    s.feed(text("A", 0))
    s.feed(text("B", 1))
    s.feed(finish("stop", 0))
    s.finish()
    assert s.completion is not None
    assert [(c["index"], c["text"], c["finish_reason"]) for c in s.completion["choices"]] == [
        (0, "A", "stop"),
        (1, "B", "stop"),
    ]


def test_stream_fail() -> None:
    _, ctx = translate({"prompt": "p", "stream": True})
    frames = data_frames(run(ctx, [text("a")], fail=(429, "slow down")))
    err = json.loads(frames[-2])
    assert err["error"]["message"] == "slow down" and err["error"]["type"] == "rate_limit_error"
    assert frames[-1] == "[DONE]"


def test_sdk_stream_and_non_stream() -> None:
    chunks = [text("Hello"), text(" world"), finish("stop", usage=USAGE)]

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        _, ctx = completions_to_chat(body, target_model="oca/" + body["model"])
        if ctx.stream:
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=run(ctx, chunks)
            )
        asm = ChatAssembler()
        for c in chunks:
            asm.feed(c)
        return httpx.Response(200, json=chat_to_completion(asm.result(), ctx))

    client = sdk_harness.client("completions", "http://proxy.test", handler)
    resp = client.completions.create(model="gpt-4.1", prompt="Say hi")
    assert (
        resp.choices[0].text == "Hello world"
        and resp.usage is not None
        and resp.usage.total_tokens == 8
    )
    parts = [
        c.choices[0].text
        for c in client.completions.create(model="gpt-4.1", prompt="Say hi", stream=True)
        if c.choices
    ]
    assert "".join(parts) == "Hello world"

    def failing(request: httpx.Request) -> httpx.Response:
        _, ctx = completions_to_chat(json.loads(request.content), target_model="oca/m")
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=run(ctx, [text("a")], fail=(500, "boom")),
        )

    client = sdk_harness.client("completions", "http://proxy.test", failing)
    with pytest.raises(openai.APIError, match="boom"):
        list(client.completions.create(model="m", prompt="x", stream=True))


def test_chat_stream_to_completion_keeps_every_choice() -> None:
    _, ctx = translate({"prompt": "P: ", "n": 3, "echo": True})
    chunks = [text("a", 0), text("b", 1), text("c", 0), finish("stop", 0), finish("length", 1)]
    chunks.append({"choices": [], "usage": USAGE})
    events = [sse.SSEEvent(json.dumps(c)) for c in chunks] + [sse.SSEEvent("[DONE]")]
    out = chat_stream_to_completion(events, ctx)
    Completion.model_validate(out)
    assert out["object"] == "text_completion" and out["model"] == "gpt-4.1"
    # choice 2 never came: it is still there (empty), as the client asked for n=3
    assert [(c["index"], c["text"], c["finish_reason"]) for c in out["choices"]] == [
        (0, "P: ac", "stop"),
        (1, "P: b", "length"),
        (2, "P: ", "stop"),
    ]
    assert out["usage"] == USAGE

    _, ctx = translate({"prompt": "x"})
    with pytest.raises(ApiError) as exc:
        chat_stream_to_completion(
            [
                sse.SSEEvent(json.dumps(text("a"))),
                sse.SSEEvent(json.dumps({"error": {"message": "gone", "code": "503"}})),
            ],
            ctx,
        )
    assert exc.value.status == 503 and exc.value.message == "gone"


# -- native /completions ---------------------------------------------------------------------


def test_assemble_native_completion_stream() -> None:
    frames = [
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 1,
            "model": "oca/x",
            "choices": [{"index": 0, "text": "He", "finish_reason": None, "logprobs": None}],
        },
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 1,
            "model": "oca/x",
            "choices": [{"index": 0, "text": "llo", "finish_reason": "length", "logprobs": None}],
        },
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 1,
            "model": "oca/x",
            "choices": [],
            "usage": USAGE,
        },
    ]
    events = [sse.SSEEvent(json.dumps(f)) for f in frames] + [sse.SSEEvent("[DONE]")]
    out = assemble_completion_stream(events, requested_model="x")
    Completion.model_validate(out)
    assert out["id"] == "cmpl-1" and out["model"] == "x"
    assert out["choices"] == [
        {"index": 0, "text": "Hello", "finish_reason": "length", "logprobs": None}
    ]
    assert out["usage"] == USAGE

    with pytest.raises(ApiError) as exc:
        assemble_completion_stream(
            [sse.SSEEvent(json.dumps({"error": {"message": "bad", "code": 429}}))]
        )
    assert exc.value.status == 429 and exc.value.message == "bad"


def test_prepare_native_completions() -> None:
    body = {"model": "x", "prompt": "p", "stream": False}
    out = prepare_native_completions(body, target_model="oca/x")
    assert out == {
        "model": "oca/x",
        "prompt": "p",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert body["model"] == "x"
    with pytest.raises(RequestError):
        prepare_native_completions({"model": "x"}, target_model="oca/x")


# -- property ----------------------------------------------------------------------------------

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=2),
)
chunk = st.one_of(
    st.fixed_dictionaries(
        {
            "choices": st.one_of(
                st.lists(
                    st.one_of(
                        st.fixed_dictionaries(
                            {"index": st.one_of(st.integers(0, 2), junk)},
                            optional={
                                "delta": st.one_of(
                                    st.fixed_dictionaries(
                                        {},
                                        optional={"content": st.one_of(st.text(max_size=5), junk)},
                                    ),
                                    junk,
                                ),
                                "finish_reason": st.one_of(
                                    st.sampled_from(["stop", "length", "tool_calls"]), junk
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
    junk,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(chunk, max_size=10), st.booleans())
def test_property_stream_never_raises(chunks: list[Any], echo: bool) -> None:
    _, ctx = translate(
        {"prompt": "p", "echo": echo, "stream": True, "stream_options": {"include_usage": True}}
    )
    s = CompletionsStream(ctx)
    frames = data_frames(b"".join(s.feed(c) for c in chunks) + s.finish())
    assert frames[-1] == "[DONE]" and frames.count("[DONE]") == 1
    for f in frames[:-1]:
        obj = json.loads(f)
        assert obj["object"] == "text_completion"
    assert s.completion is not None
    Completion.model_validate(s.completion)
