"""A stream translator primed ahead (Exchange.settle: its opening events written while OCA
has yet to answer) writes exactly what an unprimed one writes, whatever comes then: chunks,
an end with no chunk, or a failure before any."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from oca_addon.translate.anthropic import AnthropicContext, AnthropicStream
from oca_addon.translate.anthropic import stream as anthropic_stream
from oca_addon.translate.responses import ResponsesStream
from oca_addon.translate.responses import stream as responses_stream
from oca_addon.translate.responses.context import ResponsesContext

_CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "oca/x"}


def _text(text: str) -> dict[str, Any]:
    return {**_CHUNK, "choices": [{"index": 0, "delta": {"content": text}}]}


def _end() -> dict[str, Any]:
    return {
        **_CHUNK,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def _anthropic() -> AnthropicStream:
    ctx = AnthropicContext(requested_model="claude-x", target_model="oca/x", stream=True)
    ctx.input_tokens_estimate = 42
    return AnthropicStream(ctx)


_RESPONSES_CTX = ResponsesContext(requested_model="gpt-x", stream=True)  # one response id


def _responses() -> ResponsesStream:
    return ResponsesStream(_RESPONSES_CTX)


RUNS: list[Callable[[Any], list[bytes]]] = [
    lambda t: [t.feed(_text("Hel")), t.feed(_text("lo")), t.feed(_end()), t.finish()],
    lambda t: [t.finish()],  # the stream ended before any chunk
    lambda t: [t.fail(502, "OCA went away")],  # failed before any chunk
    lambda t: [t.feed(_text("Hi")), t.fail(502, "cut")],
]


def _minted(ids: itertools.count[int], prefix: str) -> str:
    return f"{prefix}_{next(ids)}"


@pytest.mark.parametrize("make", [_anthropic, _responses])
@pytest.mark.parametrize("run", RUNS)
def test_a_primed_stream_writes_what_an_unprimed_one_writes(
    make: Callable[[], Any], run: Callable[[Any], list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = []
    for primed in (False, True):
        # The ids a stream mints, the same for both.
        ids = itertools.count()
        monkeypatch.setattr(responses_stream, "new_id", functools.partial(_minted, ids))
        monkeypatch.setattr(anthropic_stream, "_new_message_id", lambda: "msg_1")
        stream = make()
        if primed:
            stream.prime()
            stream.prime()  # twice: still once
        outputs.append(b"".join(run(stream)))
    assert outputs[0] == outputs[1]
    assert outputs[0]
