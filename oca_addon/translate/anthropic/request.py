"""Anthropic Messages request -> OCA /chat/completions request (`anthropic_to_chat`).

The top-level fields (limits, sampling, stop sequences, tool choice, thinking, output format)
are mapped here; system, tools and message content are converted by `blocks.RequestBuilder`.
"""

from __future__ import annotations

import json
from typing import Any

from oca_addon.core.errors import RequestError
from oca_addon.core.modelinfo import caches_prompts, fit_effort, takes_thinking
from oca_addon.translate import caching
from oca_addon.translate.anthropic import quick
from oca_addon.translate.anthropic.blocks import Turns, _RequestBuilder
from oca_addon.translate.anthropic.common import (
    _CLIENT_EFFORT,
    MAX_STOP_SEQUENCES,
    AnthropicContext,
    _int,
    _require_str,
    _type_name,
    effort_for_budget,
    fit_budget,
    opaque_id,
    upstream_tool_name,
)
from oca_addon.translate.count_tokens import Sums, estimate
from oca_addon.translate.memo import ConversationMemo, RawBody
from oca_addon.translate.shapes import ChatRequest


def anthropic_to_chat(
    body: dict[str, Any],
    *,
    target_model: str,
    model_info: dict[str, Any] | None = None,
    reasoning_effort: str | None = None,
    estimate_later: bool = False,
    memo: ConversationMemo | None = None,
    raw: bytes | None = None,
    quick_messages: list[quick.Message] | None = None,
) -> tuple[ChatRequest, AnthropicContext]:
    """A Messages request body -> (OCA chat/completions body, context for the answer).

    `estimate_later`: the input-token estimate (a pass over the whole body) is left for
    `ctx.settle()`, or made when first needed: the gateway makes it once the request has
    gone to OCA, off the time to first token.

    `memo`: the conversations translated lately; the turns this request shares with one
    are taken from it, and this request's are kept for the next turn. `raw`: the bytes
    `body` was parsed from, which the memo compares when it can (translate/layout.py).

    `quick_messages`: the messages as quick.decode() read them (`body` then holds the other
    fields): translated by quick.chat_messages(), which raises NotQuick for what it leaves
    to the full translation; no memo is needed then."""
    if not isinstance(body, dict):
        raise RequestError(f"request body must be a JSON object, got {_type_name(body)}")
    model = body.get("model")
    if model is None:
        raise RequestError("model: field required", param="model")
    if not isinstance(model, str) or not model.strip():
        raise RequestError("model: must be a non-empty string", param="model")
    messages = body.get("messages") if quick_messages is None else quick_messages
    if messages is None:
        raise RequestError("messages: field required", param="messages")
    if not isinstance(messages, list):
        raise RequestError(
            f"messages: expected an array, got {_type_name(messages)}", param="messages"
        )
    if not messages:
        raise RequestError("messages: at least one message is required", param="messages")
    info = model_info if isinstance(model_info, dict) else None

    builder = _RequestBuilder(info)
    system_parts = builder.system(body.get("system"))
    tools = builder.tools(body.get("tools"))
    key: tuple[Any, ...] = (builder.vision, builder.pdf)  # what else shapes a turn's messages
    turns: Turns | None
    if quick_messages is not None:
        # Compared by value (msgspec structs, their texts as bytes: in C), kept whole (the
        # structs hold views of this request's bytes, never of an older one's).
        key = ("quick", *key)
        source = None
        previous, same = memo.match(quick_messages, key) if memo is not None else (None, 0)
        chat_messages, turns = quick.chat_messages(
            quick_messages,
            builder,
            system_parts,
            (previous.state, same) if previous is not None else None,
        )
    else:
        source = RawBody(raw, body, "messages") if memo is not None and raw is not None else None
        previous, same = memo.match(messages, key, source) if memo is not None else (None, 0)
        chat_messages, turns = builder.messages(
            messages, system_parts, (previous.state, same) if previous is not None else None
        )
    caching.apply(chat_messages, enabled=caches_prompts(info))

    out: ChatRequest = {"model": target_model, "messages": chat_messages}

    max_tokens = body.get("max_tokens")
    limit = _int(info.get("max_output_tokens")) if info else 0
    if isinstance(max_tokens, float) and max_tokens.is_integer():
        max_tokens = int(max_tokens)  # 1024.0 from some JSON encoders
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise RequestError(
                f"max_tokens: expected a positive integer, got {json.dumps(max_tokens)}",
                param="max_tokens",
            )
        out["max_tokens"] = min(max_tokens, limit) if limit else max_tokens
    elif limit:
        out["max_tokens"] = limit

    is_reasoning = bool(info.get("is_reasoning_model")) if info else False
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RequestError(f"{name}: expected a number, got {_type_name(value)}", param=name)
        if not is_reasoning:
            out[name] = value

    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list):
            raise RequestError(
                f"stop_sequences: expected an array of strings, got {_type_name(stop)}",
                param="stop_sequences",
            )
        for i, s in enumerate(stop):
            _require_str(s, f"stop_sequences[{i}]")
        stops = [s for s in stop if s][:MAX_STOP_SEQUENCES]
        if stops:
            out["stop"] = stops

    if tools:
        out["tools"] = tools
        choice, parallel = _tool_choice(
            body.get("tool_choice"), {t["function"]["name"] for t in tools}
        )
        if choice is not None:
            out["tool_choice"] = choice
        if parallel is False:
            out["parallel_tool_calls"] = False

    thinking = _thinking_budget(body)
    cap = out.get("max_tokens")
    if thinking is not None:
        thinking = fit_budget(thinking, cap)  # budget < max_tokens
    if thinking is not None and takes_thinking(info):
        # The model takes a budget (thinking_config): pass it on rather than an effort.
        out["thinking"] = {"type": "enabled", "budget_tokens": thinking}
    else:
        effort = fit_effort(_reasoning_effort(body, reasoning_effort), info)
        if effort:
            out["reasoning_effort"] = effort

    response_format = _response_format(body)
    if response_format is not None:
        out["response_format"] = response_format

    user = _user_id(body.get("metadata"))
    if user:
        # Chat's `user` (64 characters at most), which LiteLLM passes on to each provider
        # (Anthropic's metadata.user_id, OpenAI's user). Not also `safety_identifier`:
        # LiteLLM refuses a parameter a provider does not take (unless told to drop them),
        # and Claude Code sends a user_id on every request.
        out["user"] = opaque_id(user, 64)

    out["stream"] = True
    out["stream_options"] = {"include_usage": True}

    ctx = AnthropicContext(
        requested_model=model,
        tool_names=builder.tool_names,
        target_model=target_model,
        stream=body.get("stream") is True,
        reasoning_effort=out.get("reasoning_effort"),
    )
    remembered = None
    if memo is not None and turns is not None:
        share = quick_messages is None  # parsed dicts: the earlier turn's, equal, are kept
        remembered = memo.remember(messages, key, turns, previous, same, source, share=share)
    known = previous.extra.get("sums") if previous is not None else None

    def input_tokens() -> int:
        sums: Sums | None
        if quick_messages is not None:
            total, sums = quick.estimate(body, quick_messages, known, same)
        else:
            total, sums = estimate(body, known, same)
        if remembered is not None:
            remembered.extra["sums"] = sums
        return total

    if estimate_later:
        ctx.estimate = input_tokens
    else:
        ctx.input_tokens_estimate = input_tokens()
    return out, ctx


def _tool_choice(choice: Any, names: set[str]) -> tuple[Any, bool | None]:
    """(chat tool_choice or None, False when parallel tool use is disabled)."""
    if choice is None:
        return None, None
    if isinstance(choice, str):  # lenient: the bare type
        choice = {"type": choice}
    if not isinstance(choice, dict):
        raise RequestError(
            f"tool_choice: expected an object, got {_type_name(choice)}", param="tool_choice"
        )
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") is True else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool":
        name = _require_str(choice.get("name"), "tool_choice.name", empty_ok=False)
        upstream = upstream_tool_name(name)
        if upstream not in names:  # e.g. a hosted tool that was dropped: let the model choose
            return "auto", parallel
        return {"type": "function", "function": {"name": upstream}}, parallel
    raise RequestError(
        f"tool_choice.type: expected one of 'auto', 'any', 'tool', 'none', got {json.dumps(kind)}",
        param="tool_choice.type",
    )


def _user_id(metadata: Any) -> str | None:
    """`metadata.user_id` (Anthropic refuses anything but a string or null there)."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise RequestError(
            f"metadata: expected an object, got {_type_name(metadata)}", param="metadata"
        )
    user_id = metadata.get("user_id")
    if user_id is None:
        return None
    return _require_str(user_id, "metadata.user_id") or None


def _reasoning_effort(body: dict[str, Any], default: str | None) -> str | None:
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return None
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if isinstance(effort, str) and effort in _CLIENT_EFFORT:
        return _CLIENT_EFFORT[effort]
    if kind == "enabled" and isinstance(thinking, dict):
        budget = thinking.get("budget_tokens")
        if isinstance(budget, int) and not isinstance(budget, bool):
            return effort_for_budget(budget)
        return "medium"
    if kind == "adaptive":
        return "medium"
    return default


def _thinking_budget(body: dict[str, Any]) -> int | None:
    """The client's `thinking: {type: enabled, budget_tokens}` budget, if it set one."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        return None
    return budget


def _response_format(body: dict[str, Any]) -> dict[str, Any] | None:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt is None:
        fmt = body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        if isinstance(schema, dict):
            return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    return None
