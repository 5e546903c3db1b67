"""Non-streamed answers (only served when the stream_only guess is off).

Built from the same Plan as the streams, so a whole answer says what the stream says.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from oca_addon.sim import streams
from oca_addon.sim.llm import Plan


def _hex() -> str:
    return uuid.uuid4().hex[:24]


def chat_answer(plan: Plan, reasoning_field: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": plan.full_text or None}
    if plan.reasoning:
        message[reasoning_field] = plan.full_reasoning
    if plan.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in plan.tool_calls
        ]
    return {
        "id": f"chatcmpl-{_hex()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": plan.model.name,
        "choices": [{"index": 0, "message": message, "finish_reason": plan.finish}],
        "usage": streams.chat_usage(plan),
    }


def completion_answer(plan: Plan) -> dict[str, Any]:
    usage = {k: v for k, v in streams.chat_usage(plan).items() if not k.startswith("cache_")}
    choice = {"text": plan.full_text, "index": 0, "logprobs": None, "finish_reason": plan.finish}
    return {
        "id": f"cmpl-{_hex()}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": plan.model.name,
        "choices": [choice],
        "usage": usage,
    }


def responses_answer(plan: Plan, body: dict[str, Any], empty_final_output: bool) -> Any:
    # The terminal event of the stream carries the whole response.
    last = streams.responses_frames(plan, body, empty_final_output)[-1]
    data = last.split(b"\ndata: ", 1)[1]
    return json.loads(data)["response"]


def messages_answer(plan: Plan) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if plan.reasoning:
        signature = streams.thinking_signature(plan)
        content.append(
            {"type": "thinking", "thinking": plan.full_reasoning, "signature": signature}
        )
    if plan.text:
        content.append({"type": "text", "text": plan.full_text})
    for c in plan.tool_calls:
        tool_input = json.loads(c.arguments) if c.kind == "function" else {"input": c.arguments}
        content.append(
            {"type": "tool_use", "id": f"toolu_{_hex()}", "name": c.name, "input": tool_input}
        )
    stop = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}[plan.finish]
    return {
        "id": f"msg_{_hex()}",
        "type": "message",
        "role": "assistant",
        "model": plan.model.name,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": streams.messages_usage(plan),
    }
