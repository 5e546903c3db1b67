"""OpenAI Responses: ids and small helpers shared by the request, answer and native modules
(usage, output items, error codes).

Ids minted by the proxy carry an `_oca_` infix (`rs_oca_`, `msg_oca_`, `fc_oca_`, `ctc_oca_`)
so that a later native request can tell them from ids the upstream knows.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from oca_addon.core.errors import RequestError

MINTED_REASONING_PREFIX = "rs_oca_"
_MINTED_ID_PREFIXES = ("rs_oca_", "msg_oca_", "fc_oca_", "ctc_oca_")

_ROLES = ("user", "assistant", "system", "developer")
_CALL_TYPES = ("function_call", "custom_tool_call")
_OUTPUT_TYPES = ("function_call_output", "custom_tool_call_output")
_INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
_NO_OUTPUT_TEXT = "(no output was recorded for this tool call)"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def unique_call_id(call_id: str, seen: set[str]) -> str:
    """`call_id`, suffixed if an earlier call of the same answer has it (a model that repeats
    an id for two calls): clients pair outputs with calls, and the SDK keys items, by call_id."""
    unique, n = call_id, 1
    while unique in seen:
        n += 1
        unique = f"{call_id}_{n}"
    seen.add(unique)
    return unique


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e18:
        return int(value)
    return 0


def as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def flat_tool_name(namespace: str | None, name: str) -> str:
    """The chat function name of tool `name` inside `namespace` (Codex: `mcp__srv__` + `x`)."""
    if not namespace:
        return name
    return f"{namespace}{name}" if namespace.endswith("_") else f"{namespace}__{name}"


def previous_response_not_found(previous_response_id: str) -> RequestError:
    err = RequestError(
        f"Previous response with id '{previous_response_id}' not found.",
        param="previous_response_id",
    )
    err.code = "previous_response_not_found"
    return err


def _usage(usage: Any) -> dict[str, Any]:
    u = usage if isinstance(usage, dict) else {}
    prompt = as_int(u.get("prompt_tokens", u.get("input_tokens")))
    completion = as_int(u.get("completion_tokens", u.get("output_tokens")))
    total = as_int(u.get("total_tokens")) or prompt + completion
    pdet = u.get("prompt_tokens_details")
    pdet = pdet if isinstance(pdet, dict) else {}
    cdet = u.get("completion_tokens_details")
    cdet = cdet if isinstance(cdet, dict) else {}
    cached = as_int(pdet.get("cached_tokens")) or as_int(u.get("cache_read_input_tokens"))
    written = as_int(pdet.get("cache_write_tokens")) or as_int(u.get("cache_creation_input_tokens"))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": as_int(cdet.get("reasoning_tokens"))},
        "total_tokens": total,
    }


def custom_tool_input(arguments: str) -> str:
    """The free-form text of a custom tool call, from the function arguments the model wrote."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return arguments
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if isinstance(value.get("input"), str):
            return str(value["input"])
        if len(value) == 1:
            only = next(iter(value.values()))
            if isinstance(only, str):
                return only
    return arguments


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [_text_part(text)],
    }


def _status(code: Any) -> int:
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
        return code
    return 502


def _error_code(status: int, message: str) -> str:
    low = message.lower()
    if any(
        s in low
        for s in (
            "context length",
            "context_length",
            "context window",
            "maximum context",
            "prompt is too long",
            "too many tokens",
            "input is too long",
        )
    ):
        return "context_length_exceeded"
    if status == 429:
        return "rate_limit_exceeded"
    if status in (400, 413, 422):
        return "invalid_prompt"
    return "server_error"
