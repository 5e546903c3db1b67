"""Anthropic Messages: the per-request context and the helpers every part of the translator shares
(tool names and ids, usage, stop reasons, argument parsing).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from oca_addon.core.errors import RequestError

BILLING_PREFIX = "x-anthropic-billing-header:"
MAX_STOP_SEQUENCES = 4  # OpenAI's limit; LiteLLM passes `stop` on to OpenAI models as is
_TOOL_NAME_OK = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_TOOL_NAME_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_TOOL_ID_OK = re.compile(r"[a-zA-Z0-9_-]{1,40}")  # OpenAI rejects tool_call ids over 40 chars
_CLIENT_EFFORT = {"low": "low", "medium": "medium", "high": "high", "max": "high"}
_STOP_REASONS = {
    "stop": "end_turn",
    "end_turn": "end_turn",
    "length": "max_tokens",
    "max_tokens": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "tool_use": "tool_use",
    "content_filter": "refusal",
    "refusal": "refusal",
    "stop_sequence": "stop_sequence",
}
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


@dataclass
class AnthropicContext:
    """What the answer translation needs to know about its request."""

    requested_model: str
    tool_names: dict[str, str] = field(default_factory=dict)  # upstream name -> client's name
    input_tokens_estimate: int = 1
    target_model: str = ""
    stream: bool = False  # whether the client asked for a streamed answer
    reasoning_effort: str | None = None  # what was sent upstream
    # The input-token estimate while it waits (anthropic_to_chat with estimate_later): a
    # pass over the whole request, not needed before OCA answers.
    estimate: Callable[[], int] | None = field(default=None, repr=False, compare=False)

    def input_tokens(self) -> int:
        """The estimate of the request's input tokens (made now if it waited)."""
        self.settle()
        return self.input_tokens_estimate

    def settle(self) -> None:
        """Make the estimate that waited, and let go of what it needed."""
        make, self.estimate = self.estimate, None
        if make is not None:
            self.input_tokens_estimate = make()

    def original_tool_name(self, name: str) -> str:
        return self.tool_names.get(name, name)


# --------------------------------------------------------------------------- helpers


def upstream_tool_name(name: str) -> str:
    """`name` as OpenAI accepts it (`[a-zA-Z0-9_-]{1,64}`): unchanged when valid, otherwise
    shortened deterministically to a cleaned prefix plus a hash of the full name."""
    if _TOOL_NAME_OK.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{_TOOL_NAME_BAD_CHARS.sub('_', name)[:53]}_{digest}"


def _upstream_tool_id(tool_id: str) -> str:
    # Applied to tool_use ids and tool_result references alike, so they still pair up; ids
    # in answers come from upstream and need no mapping back.
    if _TOOL_ID_OK.fullmatch(tool_id):
        return tool_id
    return "toolu_" + hashlib.sha256(tool_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _strip_billing(text: str) -> str:
    if BILLING_PREFIX not in text:
        return text
    lines = [ln for ln in text.split("\n") if not ln.lstrip().startswith(BILLING_PREFIX)]
    return "\n".join(lines).strip("\n")


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
        return max(int(value), 0)
    return 0


def merge_usage(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Usage reported in parts, as one dict. Messages streams give the input counts in
    `message_start` (`message.usage`) and the output count in `message_delta`; the counts
    are cumulative, so a later null, or a smaller number (some gateways send 0 for the input
    in one of the two), never undoes a count already reported."""
    out = dict(old) if old else {}
    for key, value in new.items():
        if value is None:
            continue
        before = out.get(key)
        if (
            isinstance(value, int)
            and isinstance(before, int)
            and not isinstance(value, bool)
            and value < before
        ):
            continue
        out[key] = value
    return out


def opaque_id(value: str, limit: int) -> str:
    """An end-user id that fits a field of `limit` characters: as is, or (longer) a stable
    hash of it, so the same user still has one id."""
    if len(value) <= limit:
        return value
    return "user_" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def _new_tool_id() -> str:
    return "toolu_" + uuid.uuid4().hex[:24]


def _signature(digest: bytes) -> str:
    return base64.b64encode(b"oca-reasoning:" + digest).decode()


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _require_str(value: Any, path: str, *, empty_ok: bool = True) -> str:
    if not isinstance(value, str):
        raise RequestError(f"{path}: expected a string, got {_type_name(value)}", param=path)
    if not empty_ok and not value:
        raise RequestError(f"{path}: must not be empty", param=path)
    return value


def _usage(usage: Any, ctx: AnthropicContext, output_estimate: int) -> dict[str, int]:
    if not isinstance(usage, dict):
        return {
            "input_tokens": ctx.input_tokens(),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_estimate,
        }
    prompt = _int(usage.get("prompt_tokens")) or _int(usage.get("input_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    cached = cached or _int(usage.get("cache_read_input_tokens"))
    created = _int(usage.get("cache_creation_input_tokens"))
    output = _int(usage.get("completion_tokens")) or _int(usage.get("output_tokens"))
    return {
        "input_tokens": max(prompt - cached - created, 0),
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": cached,
        "output_tokens": output,
    }


def _stop_reason(finish_reason: Any, has_tool_use: bool) -> str:
    reason = (
        _STOP_REASONS.get(finish_reason, "end_turn")
        if isinstance(finish_reason, str)
        else "end_turn"
    )
    if has_tool_use and reason in ("end_turn", "tool_use"):
        return "tool_use"
    if reason == "tool_use" and not has_tool_use:
        return "end_turn"
    return reason


def _parse_arguments(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_raw": arguments}


# -- thinking budgets and reasoning efforts ---------------------------------------------

MIN_THINKING_BUDGET = 1024  # Anthropic's floor for thinking.budget_tokens
# The budgets LiteLLM (OCA's gateway) gives each reasoning effort on Anthropic models.
_EFFORT_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096, "xhigh": 8192}


def effort_for_budget(budget: int) -> str:
    """A client's thinking budget as a chat `reasoning_effort` (the effort it is worth)."""
    if budget <= 4096:
        return "low"
    if budget <= 16384:
        return "medium"
    return "high"


def budget_for_effort(effort: Any) -> int | None:
    """A chat `reasoning_effort` as a thinking budget (None: no thinking)."""
    return _EFFORT_BUDGETS.get(effort) if isinstance(effort, str) else None


def fit_budget(budget: int, max_tokens: Any) -> int | None:
    """A thinking budget below max_tokens, as Anthropic wants; None when none fits."""
    if isinstance(max_tokens, int) and budget >= max_tokens:
        return max_tokens - 1 if max_tokens > MIN_THINKING_BUDGET else None
    return budget
