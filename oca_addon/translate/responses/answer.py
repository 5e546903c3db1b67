"""An assembled chat completion -> one Responses `response` object (`chat_to_response`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oca_addon.translate.responses.common import (
    _INCOMPLETE_REASONS,
    _dumps,
    _message_item,
    _reasoning_item,
    _usage,
    as_object,
    new_id,
    unique_call_id,
)
from oca_addon.translate.responses.context import ResponsesContext, call_item, response_object
from oca_addon.translate.shapes import ChatCompletion, CompletionChoice


def chat_to_response(completion: ChatCompletion, ctx: ResponsesContext) -> dict[str, Any]:
    """An assembled `chat.completion` -> one `response` object."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choice: CompletionChoice = {}
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
    message: Mapping[str, Any] = choice.get("message") or {}
    if not isinstance(message, dict):
        message = {}
    output: list[dict[str, Any]] = []

    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if not isinstance(reasoning, str):
        reasoning = message.get("thinking") if isinstance(message.get("thinking"), str) else None
    if reasoning:
        output.append(_reasoning_item(new_id("rs_oca"), reasoning))

    content = message.get("content")
    if isinstance(content, list):
        content = "".join(
            p.get("text", "")
            for p in content
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    if isinstance(message.get("refusal"), str) and not content:
        content = message["refusal"]
    if isinstance(content, str) and content:
        output.append(_message_item(new_id("msg_oca"), content, "completed"))

    seen: set[str] = set()
    for n, call in enumerate(message.get("tool_calls") or ()):
        if not isinstance(call, dict):
            continue
        fn = as_object(call.get("function"))
        name = fn.get("name") if isinstance(fn.get("name"), str) else ""
        if not name:
            continue
        args = fn.get("arguments")
        args = args if isinstance(args, str) else (_dumps(args) if args is not None else "")
        call_id = (
            call.get("id") if isinstance(call.get("id"), str) and call.get("id") else f"call_{n}"
        )
        prefix = "ctc_oca" if name in ctx.custom_tools else "fc_oca"
        call_id = unique_call_id(str(call_id), seen)
        output.append(call_item(ctx, new_id(prefix), call_id, name, args, "completed"))

    reason = _INCOMPLETE_REASONS.get(str(choice.get("finish_reason")))
    if reason and output:
        last = output[-1]
        if last["type"] in ("message", "function_call"):
            last["status"] = "incomplete"
    resp = response_object(
        ctx,
        status="incomplete" if reason else "completed",
        output=output,
        usage=_usage(completion.get("usage") if isinstance(completion, dict) else None),
        incomplete_reason=reason,
    )
    ctx.remember(resp)
    return resp
