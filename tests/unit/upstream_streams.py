"""Hand-written upstream streams in the three APIs OCA's models speak, from one script.

A `Script` says what the model answers (reasoning, text, tool calls, finish, usage, an error
or a cut); `chat_sse`, `responses_sse` and `messages_sse` write it as OCA's chat, Responses
and Messages streams, each event split where real servers split them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

Call = tuple[str, str, dict[str, Any]]  # (id, name, arguments)


@dataclass
class Script:
    reasoning: str = ""
    text: str = ""
    calls: list[Call] = field(default_factory=list)
    finish: str = "stop"  # chat's words: stop, length, tool_calls
    prompt: int = 10  # input tokens, cached ones included
    cached: int = 4
    completion: int = 5
    error: tuple[int, str] | None = None  # an error event after the content
    cut: bool = False  # the stream ends with no terminal event


def halves(text: str) -> list[str]:
    mid = max(1, len(text) // 2)
    return [p for p in (text[:mid], text[mid:]) if p]


def _frame(data: Any, event: str | None = None) -> bytes:
    payload = json.dumps(data, ensure_ascii=False).encode()
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + payload + b"\n\n"


# -- chat (LiteLLM's chat.completion.chunk stream) ---------------------------------------


def chat_sse(s: Script, model: str = "oca/chat-only") -> bytes:
    base = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return _frame({**base, "choices": [choice]})

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"reasoning_content": p}) for p in halves(s.reasoning)]
    out += [chunk({"content": p}) for p in halves(s.text)]
    for i, (cid, name, args) in enumerate(s.calls):
        head = {"index": i, "id": cid, "type": "function"}
        out.append(chunk({"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]}))
        for p in halves(json.dumps(args)):
            out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]}))
    if s.error:
        status, message = s.error
        out.append(
            _frame({"error": {"message": message, "type": "rate_limit_error", "code": status}})
        )
        return b"".join(out)
    if s.cut:
        return b"".join(out)
    out.append(chunk({}, s.finish))
    usage = {
        "prompt_tokens": s.prompt,
        "completion_tokens": s.completion,
        "total_tokens": s.prompt + s.completion,
        "prompt_tokens_details": {"cached_tokens": s.cached},
    }
    out.append(_frame({**base, "choices": [], "usage": usage}))
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


# -- Responses ---------------------------------------------------------------------------


def responses_sse(s: Script, model: str = "oca/codex") -> bytes:
    seq = iter(range(10_000))
    out: list[bytes] = []

    def ev(kind: str, **fields: Any) -> None:
        out.append(_frame({"type": kind, "sequence_number": next(seq), **fields}, kind))

    def resp(status: str, output: list[Any], usage: Any = None, **extra: Any) -> dict[str, Any]:
        return {"id": "resp_up", "object": "response", "model": model, "status": status,
                "output": output, "usage": usage, **extra}  # fmt: skip

    ev("response.created", response=resp("in_progress", []))
    ev("response.in_progress", response=resp("in_progress", []))
    items: list[dict[str, Any]] = []
    if s.reasoning:
        n, rid = len(items), "rs_up"
        ev(
            "response.output_item.added",
            output_index=n,
            item={"id": rid, "type": "reasoning", "summary": []},
        )
        ev("response.reasoning_summary_part.added", item_id=rid, output_index=n, summary_index=0,
           part={"type": "summary_text", "text": ""})  # fmt: skip
        for p in halves(s.reasoning):
            ev(
                "response.reasoning_summary_text.delta",
                item_id=rid,
                output_index=n,
                summary_index=0,
                delta=p,
            )
        item = {
            "id": rid,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": s.reasoning}],
        }
        ev("response.output_item.done", output_index=n, item=item)
        items.append(item)
    if s.text:
        n, mid = len(items), "msg_up"
        ev("response.output_item.added", output_index=n,
           item={"id": mid, "type": "message", "role": "assistant", "status": "in_progress", "content": []})  # fmt: skip
        for p in halves(s.text):
            ev("response.output_text.delta", item_id=mid, output_index=n, content_index=0, delta=p)
        ev("response.output_text.done", item_id=mid, output_index=n, content_index=0, text=s.text)
        item = {"id": mid, "type": "message", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": s.text, "annotations": []}]}  # fmt: skip
        ev("response.output_item.done", output_index=n, item=item)
        items.append(item)
    for cid, name, args in s.calls:
        n, fid, text = len(items), f"fc_{cid}", json.dumps(args)
        call = {"id": fid, "type": "function_call", "call_id": cid, "name": name, "arguments": ""}
        ev("response.output_item.added", output_index=n, item={**call, "status": "in_progress"})
        for p in halves(text):
            ev("response.function_call_arguments.delta", item_id=fid, output_index=n, delta=p)
        ev("response.function_call_arguments.done", item_id=fid, output_index=n, arguments=text)
        item = {**call, "arguments": text, "status": "completed"}
        ev("response.output_item.done", output_index=n, item=item)
        items.append(item)
    if s.error:
        ev("error", code="rate_limit_exceeded", message=s.error[1], param=None)
        return b"".join(out)
    if s.cut:
        return b"".join(out)
    usage = {
        "input_tokens": s.prompt,
        "input_tokens_details": {"cached_tokens": s.cached},
        "output_tokens": s.completion,
        "output_tokens_details": {"reasoning_tokens": 2 if s.reasoning else 0},
        "total_tokens": s.prompt + s.completion,
    }
    if s.finish == "length":
        ev("response.incomplete", response=resp("incomplete", items, usage,
           incomplete_details={"reason": "max_output_tokens"}))  # fmt: skip
    else:
        ev("response.completed", response=resp("completed", items, usage))
    return b"".join(out)


# -- Messages ----------------------------------------------------------------------------

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def messages_sse(s: Script, model: str = "oca/claude") -> bytes:
    out: list[bytes] = []

    def ev(kind: str, **fields: Any) -> None:
        out.append(_frame({"type": kind, **fields}, kind))

    usage = {"input_tokens": s.prompt - s.cached, "cache_read_input_tokens": s.cached,
             "cache_creation_input_tokens": 0, "output_tokens": 1}  # fmt: skip
    ev("message_start", message={"id": "msg_up", "type": "message", "role": "assistant",
       "model": model, "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage})  # fmt: skip
    ev("ping")
    index = 0
    if s.reasoning:
        ev(
            "content_block_start",
            index=index,
            content_block={"type": "thinking", "thinking": "", "signature": ""},
        )
        for p in halves(s.reasoning):
            ev("content_block_delta", index=index, delta={"type": "thinking_delta", "thinking": p})
        ev(
            "content_block_delta",
            index=index,
            delta={"type": "signature_delta", "signature": "c2ln"},
        )
        ev("content_block_stop", index=index)
        index += 1
    if s.text:
        ev("content_block_start", index=index, content_block={"type": "text", "text": ""})
        for p in halves(s.text):
            ev("content_block_delta", index=index, delta={"type": "text_delta", "text": p})
        ev("content_block_stop", index=index)
        index += 1
    for cid, name, args in s.calls:
        ev("content_block_start", index=index,
           content_block={"type": "tool_use", "id": cid, "name": name, "input": {}})  # fmt: skip
        for p in halves(json.dumps(args)):
            ev(
                "content_block_delta",
                index=index,
                delta={"type": "input_json_delta", "partial_json": p},
            )
        ev("content_block_stop", index=index)
        index += 1
    if s.error:
        ev("error", error={"type": "rate_limit_error", "message": s.error[1]})
        return b"".join(out)
    if s.cut:
        return b"".join(out)
    ev("message_delta", delta={"stop_reason": _STOP[s.finish], "stop_sequence": None},
       usage={"output_tokens": s.completion})  # fmt: skip
    ev("message_stop")
    return b"".join(out)


def upstream_sse(path: str, s: Script) -> bytes:
    """The stream OCA would send at `path` (the route's upstream path)."""
    if path == "/responses":
        return responses_sse(s)
    if path == "/v1/messages":
        return messages_sse(s)
    return chat_sse(s)
