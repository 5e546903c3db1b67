"""Chat answers -> Anthropic: one non-streamed `Message` (`chat_to_anthropic`), and upstream error
messages in the words Claude Code acts on (`client_error_message`).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from oca_addon.translate.anthropic.common import (
    AnthropicContext,
    _new_message_id,
    _new_tool_id,
    _parse_arguments,
    _signature,
    _stop_reason,
    _usage,
)
from oca_addon.translate.shapes import ChatCompletion


def chat_to_anthropic(completion: ChatCompletion, ctx: AnthropicContext) -> dict[str, Any]:
    """A `chat.completion` (as assembled by translate.chat.ChatAssembler) -> a `Message`."""
    choice: Any = None
    if isinstance(completion, dict):
        choices = completion.get("choices")
        if isinstance(choices, list) and choices:
            choice = choices[0]
    choice = choice if isinstance(choice, dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}

    content: list[dict[str, Any]] = []
    chars = 0
    reasoning = (
        message.get("reasoning_content") or message.get("reasoning") or message.get("thinking")
    )
    if isinstance(reasoning, str) and reasoning:
        content.append(
            {
                "type": "thinking",
                "thinking": reasoning,
                "signature": _signature(
                    hashlib.sha256(reasoning.encode("utf-8", "surrogatepass")).digest()
                ),
            }
        )
        chars += len(reasoning)
    text = message.get("content")
    if isinstance(text, list):  # some providers answer with content parts
        text = "".join(
            p.get("text", "")
            for p in text
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
        chars += len(text)
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if not isinstance(call, dict):
            continue
        fn = call.get("function")
        fn = fn if isinstance(fn, dict) else {}
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            continue
        call_id = call.get("id")
        arguments = fn.get("arguments")
        chars += len(arguments) if isinstance(arguments, str) else 0
        content.append(
            {
                "type": "tool_use",
                "id": call_id if isinstance(call_id, str) and call_id else _new_tool_id(),
                "name": ctx.original_tool_name(name),
                "input": _parse_arguments(arguments),
            }
        )
    has_tool_use = any(block["type"] == "tool_use" for block in content)
    usage = completion.get("usage") if isinstance(completion, dict) else None
    return {
        "id": _new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": ctx.requested_model,
        "content": content,
        "stop_reason": _stop_reason(choice.get("finish_reason"), has_tool_use),
        "stop_sequence": None,
        "usage": _usage(usage, ctx, max(1, -(-chars // 4))),
    }


# --------------------------------------------------------------------------- errors

_OVERFLOW = re.compile(
    r"context[ _-]?(length|window)|maximum context|too many (input )?tokens|"
    r"input tokens exceed|exceeds? the (model'?s? )?(maximum )?(context|token limit)",
    re.IGNORECASE,
)
_SPLIT = re.compile(r"(\d+) in the messages, (\d+) in the completion")
_LIMIT = re.compile(
    r"maximum context length is (\d+)|context (?:window|length|limit)(?: of| is)? (\d+)|"
    r"limit of (\d+) tokens|(\d+) tokens? maximum",
    re.IGNORECASE,
)
_ACTUAL = re.compile(
    r"resulted in (\d+) tokens|requested (\d+) tokens|prompt (?:is|has|contains) (\d+) tokens",
    re.IGNORECASE,
)


def _first_number(pattern: re.Pattern[str], text: str) -> int | None:
    match = pattern.search(text)
    if match is None:
        return None
    return int(next(g for g in match.groups() if g is not None))


def client_error_message(status: int, message: str) -> str:
    """An upstream error message in the words Claude Code acts on.

    A chat model's context overflow ("This model's maximum context length is ...") reads
    like Anthropic's: `prompt is too long: N tokens > M maximum` makes Claude Code compact
    the conversation, `input length and max_tokens exceed context limit: a + b > M` makes
    it ask for fewer output tokens. Anything else is returned unchanged."""
    if status not in (400, 413) or "prompt is too long" in message.lower():
        return message
    if "exceed context limit" in message or not _OVERFLOW.search(message):
        return message
    limit = _first_number(_LIMIT, message)
    split = _SPLIT.search(message)
    if split and limit:
        prompt, completion = int(split.group(1)), int(split.group(2))
        if prompt <= limit:
            return (
                f"input length and `max_tokens` exceed context limit: {prompt} + {completion} "
                f"> {limit}, decrease input length or `max_tokens` and try again ({message})"
            )
        return f"prompt is too long: {prompt} tokens > {limit} maximum ({message})"
    actual = _first_number(_ACTUAL, message)
    if actual and limit:
        return f"prompt is too long: {actual} tokens > {limit} maximum ({message})"
    return f"prompt is too long ({message})"
