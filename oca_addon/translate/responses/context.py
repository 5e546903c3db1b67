"""The per-request context of a Responses call (`ResponsesContext`): the request fields the
answer echoes, the tool-name map, the input items; and the `response` object built from it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from oca_addon.core.errors import RequestError
from oca_addon.translate.responses.common import (
    custom_tool_input,
    is_number,
    new_id,
    previous_response_not_found,
)
from oca_addon.translate.responses.history import ResponseHistory


@dataclass
class ResponsesContext:
    requested_model: str
    response_id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))
    stream: bool = False
    # echoed request fields
    instructions: Any = None
    tools: list[Any] = field(default_factory=list)
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    text: Any = None
    reasoning: Any = None
    max_output_tokens: Any = None
    max_tool_calls: Any = None
    temperature: Any = None
    top_p: Any = None
    top_logprobs: Any = None
    previous_response_id: str | None = None
    store: Any = True
    metadata: Any = None
    include: Any = None
    truncation: Any = None
    prompt_cache_key: Any = None
    service_tier: Any = None
    user: Any = None
    background: Any = None
    safety_identifier: Any = None
    # translation state
    custom_tools: set[str] = field(default_factory=set)
    tool_names: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    input_items: list[Any] = field(default_factory=list)
    history: ResponseHistory | None = None

    def remember(self, response: dict[str, Any]) -> None:
        """Store a finished answer for later `previous_response_id` use (not with store=false)."""
        if self.history is None or self.store is False or not isinstance(response, dict):
            return
        if response.get("status") not in ("completed", "incomplete"):
            return
        output = response.get("output")
        self.history.remember(
            str(response.get("id") or self.response_id),
            self.input_items,
            output if isinstance(output, list) else [],
        )


def _context_from_body(
    body: dict[str, Any], reasoning_effort: str | None, history: ResponseHistory | None
) -> ResponsesContext:
    tools = body.get("tools")
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict):
        reasoning = dict(reasoning)
        if not reasoning.get("effort") and reasoning_effort:
            reasoning["effort"] = reasoning_effort
    elif reasoning_effort:
        reasoning = {"effort": reasoning_effort, "summary": None}
    ptc = body.get("parallel_tool_calls")
    prev = body.get("previous_response_id")
    return ResponsesContext(
        requested_model=body["model"],
        stream=body.get("stream") is True,
        instructions=body.get("instructions"),
        tools=list(tools) if isinstance(tools, list) else [],
        tool_choice=body.get("tool_choice") if body.get("tool_choice") is not None else "auto",
        parallel_tool_calls=ptc if isinstance(ptc, bool) else True,
        text=body.get("text"),
        reasoning=reasoning,
        max_output_tokens=body.get("max_output_tokens"),
        max_tool_calls=body.get("max_tool_calls"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        top_logprobs=body.get("top_logprobs"),
        previous_response_id=prev if isinstance(prev, str) and prev else None,
        store=body.get("store") if isinstance(body.get("store"), bool) else True,
        metadata=body.get("metadata"),
        include=body.get("include"),
        truncation=body.get("truncation"),
        prompt_cache_key=body.get("prompt_cache_key"),
        service_tier=body.get("service_tier"),
        user=body.get("user"),
        background=body.get("background"),
        safety_identifier=body.get("safety_identifier"),
        history=history,
    )


def _check_body(body: Any) -> None:
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    model = body.get("model")
    if model is None:
        raise RequestError("'model' is required", param="model")
    if not isinstance(model, str) or not model.strip():
        raise RequestError("'model' must be a non-empty string", param="model")


def _input_items(body: dict[str, Any], history: ResponseHistory | None) -> list[Any]:
    """The client's input as a list of items, with previous_response_id expanded."""
    raw = body.get("input")
    prev = body.get("previous_response_id")
    if prev is not None and not isinstance(prev, str):
        raise RequestError("'previous_response_id' must be a string", param="previous_response_id")
    if raw is None:
        if not prev:
            raise RequestError("'input' is required", param="input")
        items: list[Any] = []
    elif isinstance(raw, str):
        items = [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}
        ]
    elif isinstance(raw, list):
        items = list(raw)
    else:
        raise RequestError("'input' must be a string or an array of input items", param="input")
    if prev:
        if history is None:
            raise previous_response_not_found(prev)
        items = history.expand(prev) + items
    return items


def response_object(
    ctx: ResponsesContext,
    *,
    status: str,
    output: list[Any],
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    incomplete_reason: str | None = None,
) -> dict[str, Any]:
    """A `response` object carrying every field the SDK's `Response` model wants."""
    text = ctx.text if isinstance(ctx.text, dict) else {"format": {"type": "text"}}
    reasoning = (
        ctx.reasoning if isinstance(ctx.reasoning, dict) else {"effort": None, "summary": None}
    )
    resp: dict[str, Any] = {
        "id": ctx.response_id,
        "object": "response",
        "created_at": ctx.created_at,
        "status": status,
        "background": ctx.background if isinstance(ctx.background, bool) else False,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": ctx.instructions,
        "max_output_tokens": ctx.max_output_tokens,
        "max_tool_calls": ctx.max_tool_calls,
        "model": ctx.requested_model,
        "output": output,
        "parallel_tool_calls": ctx.parallel_tool_calls,
        "previous_response_id": ctx.previous_response_id,
        "prompt_cache_key": ctx.prompt_cache_key,
        "reasoning": reasoning,
        "safety_identifier": ctx.safety_identifier,
        "service_tier": ctx.service_tier if isinstance(ctx.service_tier, str) else "default",
        "store": ctx.store,
        "temperature": ctx.temperature if is_number(ctx.temperature) else 1.0,
        "text": text,
        "tool_choice": ctx.tool_choice,
        "tools": ctx.tools,
        "top_logprobs": ctx.top_logprobs if is_number(ctx.top_logprobs) else 0,
        "top_p": ctx.top_p if is_number(ctx.top_p) else 1.0,
        "truncation": ctx.truncation if isinstance(ctx.truncation, str) else "disabled",
        "usage": usage,
        "user": ctx.user,
        "metadata": ctx.metadata if isinstance(ctx.metadata, dict) else {},
    }
    if status == "completed":
        resp["completed_at"] = int(time.time())
    return resp


def call_item(
    ctx: ResponsesContext, item_id: str, call_id: str, flat: str, arguments: str, status: str
) -> dict[str, Any]:
    ns, name = ctx.tool_names.get(flat, (None, flat))
    if flat in ctx.custom_tools:
        item: dict[str, Any] = {
            "id": item_id,
            "type": "custom_tool_call",
            "call_id": call_id,
            "name": name,
            "input": custom_tool_input(arguments),
        }
    else:
        item = {
            "id": item_id,
            "type": "function_call",
            "status": status,
            "arguments": arguments or "{}",
            "call_id": call_id,
            "name": name,
        }
    if ns:
        item["namespace"] = ns
    return item
