"""OpenAI Chat Completions: request clean-up for OCA, and assembly of a streamed answer.

OCA only streams, so a client that asked for a plain `chat.completion` gets one assembled
here from the upstream chunks. Other translators (Anthropic, Responses) start from the
same assembled object for their non-streamed answers.
"""

from __future__ import annotations

import time
from typing import Any

from oca_addon.core import sse
from oca_addon.core.errors import RequestError, openai_error
from oca_addon.translate.shapes import (
    ChatChunk,
    ChatCompletion,
    ChatMessage,
    ToolCall,
    ToolCallDelta,
    Usage,
)


def prepare_chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """The request as OCA accepts it: always streamed with usage; fields OCA rejects removed."""
    out = dict(body)
    out["stream"] = True
    opts = out.get("stream_options")
    out["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
    messages = out.get("messages")
    if isinstance(messages, list):
        out["messages"] = [_strip_image_detail(m) for m in messages]
    return out


def _strip_image_detail(message: Any) -> Any:
    # OCA answers 400 to image_url.detail, which the OpenAI SDKs send by default.
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return message
    parts = []
    for part in message["content"]:
        if (
            isinstance(part, dict)
            and part.get("type") == "image_url"
            and isinstance(part.get("image_url"), dict)
            and "detail" in part["image_url"]
        ):
            image = {k: v for k, v in part["image_url"].items() if k != "detail"}
            part = {**part, "image_url": image}
        parts.append(part)
    return {**message, "content": parts}


def validate_chat_request(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise RequestError("'messages' is required", param="messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty array", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise RequestError(
                f"messages[{i}] must be an object with a 'role'", param=f"messages[{i}]"
            )


class ChatAssembler:
    """Accumulates `chat.completion.chunk` dicts into one `chat.completion`.

    Tool calls arrive as fragments keyed by `index`; every fragment's arguments are
    concatenated so each call ends up complete.
    """

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.created: int | None = None
        self.system_fingerprint: str | None = None
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: dict[int, ToolCall] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.role = "assistant"

    def feed(self, chunk: ChatChunk) -> None:
        self.id = self.id or chunk.get("id")
        self.model = self.model or chunk.get("model")
        self.created = self.created or chunk.get("created")
        self.system_fingerprint = self.system_fingerprint or chunk.get("system_fingerprint")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                self.content.append(content)
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str):
                self.reasoning.append(reasoning)
            else:
                thinking = delta.get("thinking")
                if isinstance(thinking, str):
                    self.reasoning.append(thinking)
            for tc in delta.get("tool_calls") or ():
                self._feed_tool_call(tc)
            finish_reason = choice.get("finish_reason")
            if finish_reason:
                self.finish_reason = finish_reason

    def _feed_tool_call(self, tc: ToolCallDelta) -> None:
        if not isinstance(tc, dict):
            return
        index = tc.get("index", len(self.tool_calls))
        # (an id of "" until a fragment brings one: result() names the call then)
        call = self.tool_calls.setdefault(
            index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if tc.get("id"):
            call["id"] = tc["id"]
        fn = tc.get("function") or {}
        if fn.get("name"):
            call["function"]["name"] += fn["name"]
        if isinstance(fn.get("arguments"), str):
            call["function"]["arguments"] += fn["arguments"]

    def result(self) -> ChatCompletion:
        message: ChatMessage = {
            "role": self.role,
            "content": "".join(self.content) if self.content or not self.tool_calls else None,
        }
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.tool_calls:
            calls: list[ToolCall] = []
            for n, (_, call) in enumerate(sorted(self.tool_calls.items())):
                calls.append({**call, "id": call["id"] or f"call_{n}"})
            message["tool_calls"] = calls
        finish = self.finish_reason or ("tool_calls" if self.tool_calls else "stop")
        out: ChatCompletion = {
            "id": self.id or f"chatcmpl-{int(time.time() * 1000)}",
            "object": "chat.completion",
            "created": self.created or int(time.time()),
            "model": self.model or "",
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            ],
            "usage": self.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }
        if self.system_fingerprint:
            out["system_fingerprint"] = self.system_fingerprint
        return out


class ChatStream:
    """Chat chunks -> chat SSE: the stream translator for chat clients whose model is reached
    through an upstream adapter (the chunks are already the client's API)."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False

    def feed(self, chunk: ChatChunk) -> bytes:
        return b"" if self.done else sse.encode(chunk)

    def finish(self) -> bytes:
        if self.done:
            return b""
        self.done = True
        return sse.DONE

    def fail(self, status: int, message: str) -> bytes:
        if self.done:
            return b""
        self.done = True
        return sse.encode(openai_error(status, message or "OCA request failed"))
