"""Chat answers -> one `text_completion` (`chat_to_completion`, `chat_stream_to_completion`)."""

from __future__ import annotations

import json
from typing import Any

from oca_addon.core import sse
from oca_addon.core.errors import ApiError
from oca_addon.translate.completions.common import (
    CompletionsContext,
    completion_chunk,
    completion_usage,
    http_status,
    legacy_finish_reason,
)
from oca_addon.translate.completions.stream import CompletionsStream
from oca_addon.translate.shapes import ChatCompletion, is_chunk


def chat_to_completion(completion: ChatCompletion, ctx: CompletionsContext) -> dict[str, Any]:
    """An assembled `chat.completion` -> one `text_completion` (all its choices, by index)."""
    choices_in = completion.get("choices") if isinstance(completion, dict) else None
    choices: list[dict[str, Any]] = []
    for n, choice in enumerate(choices_in if isinstance(choices_in, list) else ()):
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = "".join(
                str(p.get("text"))
                for p in content
                if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        text = content if isinstance(content, str) else ""
        index = choice.get("index", n)
        choices.append(
            {
                "index": index if isinstance(index, int) and not isinstance(index, bool) else n,
                "text": (ctx.prompt + text) if ctx.echo else text,
                "finish_reason": legacy_finish_reason(choice.get("finish_reason")),
                "logprobs": None,
            }
        )
    if not choices:
        text = ctx.prompt if ctx.echo else ""
        choices.append({"index": 0, "text": text, "finish_reason": "stop", "logprobs": None})
    choices.sort(key=lambda c: c["index"])
    return {
        **completion_chunk(ctx, choices),
        "usage": completion_usage(
            completion.get("usage") if isinstance(completion, dict) else None
        ),
    }


def chat_stream_to_completion(
    events: list[sse.SSEEvent], ctx: CompletionsContext
) -> dict[str, Any]:
    """A whole upstream chat stream -> one `text_completion` with all `n` choices.

    Raises `ApiError` if the stream carried an error.
    """
    stream = CompletionsStream(ctx)
    for event in events:
        if event.data.strip() == "[DONE]":
            break
        try:
            chunk = json.loads(event.data)
        except ValueError:
            continue
        if not is_chunk(chunk):
            continue
        if chunk.get("error") and not chunk.get("choices"):
            err = chunk["error"]
            message = err.get("message") if isinstance(err, dict) else str(err)
            raise ApiError(
                http_status(err.get("code") if isinstance(err, dict) else None),
                str(message or "upstream error"),
            )
        stream.feed(chunk)
    stream.finish()
    assert stream.completion is not None
    return stream.completion
