"""Render a Plan as the SSE frames of each API (chat, responses, messages, completions).

Every builder returns the complete list of frames; the handler decides pacing,
splitting, cutting and mid-stream errors (see app.py).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import uuid
from typing import Any

from oca_addon.sim.llm import Plan

DONE = b"data: [DONE]\n\n"


def _dumps(obj: Any) -> str:
    # Raw UTF-8 (not \u escapes), like LiteLLM's pydantic serialisation.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def data_frame(obj: Any) -> bytes:
    return f"data: {_dumps(obj)}\n\n".encode()


def event_frame(event: str, obj: Any) -> bytes:
    return f"event: {event}\ndata: {_dumps(obj)}\n\n".encode()


def _hex() -> str:
    return uuid.uuid4().hex[:24]


# --- Chat Completions (LiteLLM style) ---------------------------------------


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def chat_usage(plan: Plan) -> dict[str, Any]:
    return {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": plan.completion_tokens,
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": plan.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": plan.reasoning_tokens},
        "cache_read_input_tokens": plan.cached_tokens,
        "cache_creation_input_tokens": plan.cache_creation_tokens,
    }


def _interleaved_tool_deltas(plan: Plan) -> list[dict[str, Any]]:
    """Headers (id + name) first, then argument fragments round-robin across calls."""
    deltas: list[dict[str, Any]] = []
    for i, call in enumerate(plan.tool_calls):
        head = {"index": i, "id": call.call_id, "type": "function"}
        deltas.append({"tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]})
    longest = max(len(c.fragments) for c in plan.tool_calls)
    for j in range(longest):
        for i, call in enumerate(plan.tool_calls):
            if j < len(call.fragments):
                frag = {"index": i, "function": {"arguments": call.fragments[j]}}
                deltas.append({"tool_calls": [frag]})
    return deltas


def chat_frames(
    plan: Plan, body: dict[str, Any], reasoning_field: str = "reasoning_content"
) -> list[bytes]:
    base = {
        "id": f"chatcmpl-{_hex()}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": plan.model.name,
        "system_fingerprint": None,
    }
    deltas: list[dict[str, Any]] = [{reasoning_field: r} for r in plan.reasoning]
    deltas += [{"content": t} for t in plan.text]
    if plan.tool_calls:
        deltas += _interleaved_tool_deltas(plan)
    if deltas:
        deltas[0] = {"role": "assistant", **deltas[0]}
    frames = [
        data_frame({**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]})
        for d in deltas
    ]
    frames.append(
        data_frame({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": plan.finish}]})
    )
    if _include_usage(body):
        frames.append(data_frame({**base, "choices": [], "usage": chat_usage(plan)}))
    frames.append(DONE)
    return frames


def chat_error_frame(error: dict[str, Any], _sent: int) -> bytes:
    return data_frame({"error": error})


# --- Legacy completions --------------------------------------------------------


def completion_frames(plan: Plan, body: dict[str, Any]) -> list[bytes]:
    base = {
        "id": f"cmpl-{_hex()}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": plan.model.name,
    }

    def choice(text: str, finish: str | None) -> dict[str, Any]:
        return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}

    frames = [data_frame({**base, "choices": [choice(t, None)]}) for t in plan.text]
    frames.append(data_frame({**base, "choices": [choice("", plan.finish)]}))
    if _include_usage(body):
        usage = {k: v for k, v in chat_usage(plan).items() if not k.startswith("cache_")}
        frames.append(data_frame({**base, "choices": [], "usage": usage}))
    frames.append(DONE)
    return frames


# --- Responses API -------------------------------------------------------------


class _Seq:
    """Frames with a sequence_number counting from 0."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        payload = {"type": event, "sequence_number": len(self.frames), **payload}
        self.frames.append(event_frame(event, payload))


def responses_usage(plan: Plan) -> dict[str, Any]:
    return {
        "input_tokens": plan.prompt_tokens,
        "input_tokens_details": {"cached_tokens": plan.cached_tokens},
        "output_tokens": plan.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": plan.reasoning_tokens},
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
    }


def _response_object(plan: Plan, body: dict[str, Any], rid: str, created: int) -> dict[str, Any]:
    raw_reasoning = body.get("reasoning")
    reasoning: dict[str, Any] = raw_reasoning if isinstance(raw_reasoning, dict) else {}
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": plan.model.name,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {
            "effort": (reasoning.get("effort") or "medium")
            if plan.model.is_reasoning_model
            else None,
            "summary": reasoning.get("summary"),
        },
        "store": body.get("store", False),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def responses_frames(plan: Plan, body: dict[str, Any], empty_final_output: bool) -> list[bytes]:
    created = int(time.time())
    response = _response_object(plan, body, f"resp_{_hex()}", created)
    s = _Seq()
    s.emit("response.created", {"response": response})
    s.emit("response.in_progress", {"response": response})
    output: list[dict[str, Any]] = []

    if plan.reasoning:
        idx, item_id, text = len(output), f"rs_{_hex()}", plan.full_reasoning
        item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": []}
        s.emit("response.output_item.added", {"output_index": idx, "item": item})
        at = {"item_id": item_id, "output_index": idx, "summary_index": 0}
        s.emit("response.reasoning_summary_part.added", {**at, "part": _summary("")})
        for r in plan.reasoning:
            s.emit("response.reasoning_summary_text.delta", {**at, "delta": r})
        s.emit("response.reasoning_summary_text.done", {**at, "text": text})
        s.emit("response.reasoning_summary_part.done", {**at, "part": _summary(text)})
        item = {**item, "summary": [_summary(text)]}
        if "reasoning.encrypted_content" in (body.get("include") or []):
            item["encrypted_content"] = "sim-enc-" + hashlib.sha256(text.encode()).hexdigest()
        s.emit("response.output_item.done", {"output_index": idx, "item": item})
        output.append(item)

    if plan.text:
        idx, item_id, text = len(output), f"msg_{_hex()}", plan.full_text
        item = {
            "id": item_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        s.emit("response.output_item.added", {"output_index": idx, "item": item})
        at = {"item_id": item_id, "output_index": idx, "content_index": 0}
        s.emit("response.content_part.added", {**at, "part": _output_text("")})
        for t in plan.text:
            s.emit("response.output_text.delta", {**at, "delta": t, "logprobs": []})
        s.emit("response.output_text.done", {**at, "text": text, "logprobs": []})
        s.emit("response.content_part.done", {**at, "part": _output_text(text)})
        done_status = "incomplete" if plan.finish == "length" else "completed"
        item = {**item, "status": done_status, "content": [_output_text(text)]}
        s.emit("response.output_item.done", {"output_index": idx, "item": item})
        output.append(item)

    for call in plan.tool_calls:
        idx = len(output)
        at = {"item_id": call.item_id, "output_index": idx}
        if call.kind == "custom":
            item = {"id": call.item_id, "type": "custom_tool_call", "status": "in_progress"}
            item |= {"call_id": call.call_id, "name": call.name, "input": ""}
            s.emit("response.output_item.added", {"output_index": idx, "item": item})
            for f in call.fragments:
                s.emit("response.custom_tool_call_input.delta", {**at, "delta": f})
            s.emit("response.custom_tool_call_input.done", {**at, "input": call.arguments})
            item = {**item, "status": "completed", "input": call.arguments}
        else:
            item = {"id": call.item_id, "type": "function_call", "status": "in_progress"}
            item |= {"arguments": "", "call_id": call.call_id, "name": call.name}
            s.emit("response.output_item.added", {"output_index": idx, "item": item})
            for f in call.fragments:
                s.emit("response.function_call_arguments.delta", {**at, "delta": f})
            done = {**at, "name": call.name, "arguments": call.arguments}
            s.emit("response.function_call_arguments.done", done)
            item = {**item, "status": "completed", "arguments": call.arguments}
        s.emit("response.output_item.done", {"output_index": idx, "item": item})
        output.append(item)

    final = {**response, "output": [] if empty_final_output else output}
    final["usage"] = responses_usage(plan)
    if plan.finish == "length":
        final |= {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
        s.emit("response.incomplete", {"response": final})
    else:
        s.emit("response.completed", {"response": {**final, "status": "completed"}})
    return s.frames


def _summary(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def responses_error_frame(error: dict[str, Any], sent: int) -> bytes:
    # OpenAI's "error" event, carrying the OCA error object as well.
    payload = {
        "type": "error",
        "sequence_number": sent,
        "code": error["code"],
        "message": error["message"],
        "param": None,
        "error": error,
    }
    return event_frame("error", payload)


# --- Anthropic Messages --------------------------------------------------------

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def thinking_signature(plan: Plan) -> str:
    return "sim-sig-" + hashlib.sha256(plan.full_reasoning.encode()).hexdigest()[:32]


def messages_usage(plan: Plan) -> dict[str, Any]:
    # Anthropic counts cache reads and writes apart from input_tokens.
    return {
        "input_tokens": max(
            0, plan.prompt_tokens - plan.cached_tokens - plan.cache_creation_tokens
        ),
        "cache_creation_input_tokens": plan.cache_creation_tokens,
        "cache_read_input_tokens": plan.cached_tokens,
        "output_tokens": plan.completion_tokens,
    }


def messages_frames(plan: Plan, body: dict[str, Any]) -> list[bytes]:
    frames: list[bytes] = []

    def emit(event: str, payload: dict[str, Any]) -> None:
        frames.append(event_frame(event, {"type": event, **payload}))

    message: dict[str, Any] = {
        "id": f"msg_{_hex()}",
        "type": "message",
        "role": "assistant",
        "model": plan.model.name,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**messages_usage(plan), "output_tokens": 1},
    }
    emit("message_start", {"message": message})
    emit("ping", {})
    index = 0

    if plan.reasoning:
        thinking = {"type": "thinking", "thinking": "", "signature": ""}
        emit("content_block_start", {"index": index, "content_block": thinking})
        for r in plan.reasoning:
            emit(
                "content_block_delta",
                {"index": index, "delta": {"type": "thinking_delta", "thinking": r}},
            )
        sig = thinking_signature(plan)
        emit(
            "content_block_delta",
            {"index": index, "delta": {"type": "signature_delta", "signature": sig}},
        )
        emit("content_block_stop", {"index": index})
        index += 1

    if plan.text:
        emit("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
        for t in plan.text:
            emit(
                "content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": t}}
            )
        emit("content_block_stop", {"index": index})
        index += 1

    for call in plan.tool_calls:
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": f"toolu_{_hex()}",
            "name": call.name,
            "input": {},
        }
        emit("content_block_start", {"index": index, "content_block": block})
        for f in call.fragments:
            json_delta = {"type": "input_json_delta", "partial_json": f}
            emit("content_block_delta", {"index": index, "delta": json_delta})
        emit("content_block_stop", {"index": index})
        index += 1

    final_delta = {"stop_reason": _STOP_REASONS[plan.finish], "stop_sequence": None}
    # The input counts come in message_start only, as in Anthropic's documented stream (and
    # OCA's: the proxy read 0 input tokens off message_delta); a client merges the two.
    usage = {"output_tokens": plan.completion_tokens}
    emit("message_delta", {"delta": final_delta, "usage": usage})
    emit("message_stop", {})
    return frames


def messages_error_frame(error: dict[str, Any], _sent: int) -> bytes:
    # Anthropic's in-stream error event, plus the OCA code.
    err = {"type": "api_error", "message": error["message"], "code": error["code"]}
    return event_frame("error", {"type": "error", "error": err})


# --- Misc bodies -----------------------------------------------------------------

GARBAGE_FRAMES = [
    b"data: this is not json\n\n",
    b"data: {'still': not json}\n\n",
    b"data: <html>oops</html>\n\n",
]

HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
    "<body><h1>Oracle Cloud</h1><p>The service is temporarily unavailable "
    "(simulated HTML answer).</p></body></html>"
)


def embedding_vector(text: str, dims: int = 8) -> list[float]:
    """Deterministic unit vector derived from the text's SHA-256."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(b / 127.5) - 1.0 for b in digest[:dims]]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in raw]


def split_bytes(data: bytes) -> list[bytes]:
    """Cut a byte string at irregular offsets, always including mid-UTF-8 cuts.

    Besides a fixed irregular rhythm (which lands mid-line and mid-"data:"),
    every multi-byte character is cut right after its lead byte.
    """
    sizes = (1, 17, 5, 61, 3, 97, 11, 43)
    cuts, pos, i = set(), 0, 0
    while pos < len(data):
        pos += sizes[i % len(sizes)]
        cuts.add(pos)
        i += 1
    cuts |= {j + 1 for j, b in enumerate(data) if b >= 0xC0}
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]
