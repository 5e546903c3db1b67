"""Legacy completions: the per-request context and shared helpers (finish reasons, usage, chunks)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e18:
        return int(value)
    return 0


def legacy_finish_reason(reason: Any) -> str:
    # chat's "tool_calls"/"function_call" have no legacy equivalent: the text simply stopped
    return _FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"


def http_status(code: Any) -> int:
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
        return code
    return 502


def completion_usage(usage: Any) -> dict[str, Any]:
    u = usage if isinstance(usage, dict) else {}
    prompt = as_int(u.get("prompt_tokens"))
    completion = as_int(u.get("completion_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": as_int(u.get("total_tokens")) or prompt + completion,
    }


@dataclass
class CompletionsContext:
    requested_model: str
    prompt: str = ""
    echo: bool = False
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    id: str = field(default_factory=lambda: f"cmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))


def completion_chunk(ctx: CompletionsContext, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": ctx.id,
        "object": "text_completion",
        "created": ctx.created,
        "model": ctx.requested_model,
        "choices": choices,
    }
