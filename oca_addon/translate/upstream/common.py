"""What the upstream adapters share: the answer-half contract, chat chunks, and the
composition of an adapter with a client's stream translator.

An adapter's answer half turns the events of a model's own API (Responses, Messages) into
OpenAI `chat.completion.chunk` dicts: the pivot every client translator already reads. A
failure is one chunk holding an `"error"` key, `{"error": {"message", "type", "code":
status}}`, which is what LiteLLM sends inside chat streams; it ends the answer.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Protocol

from oca_addon.core import jsonio, sse
from oca_addon.core.errors import ApiError, RequestError, openai_error_type
from oca_addon.translate.shapes import (
    ChatChunk,
    ChatDelta,
    ChatRequest,
    ChunkChoice,
    FunctionDelta,
    ToolCallDelta,
    Usage,
)


class UpstreamAnswer(Protocol):
    def feed(self, event: dict[str, Any]) -> list[ChatChunk]:
        """One upstream SSE event (its JSON data) -> chat chunks (maybe none)."""
        ...

    def finish(self) -> list[ChatChunk]:
        """The upstream body ended: the closing chunks, or an error chunk if the answer
        was cut short."""
        ...


class ClientStream(Protocol):
    """A client API's stream translator (docs/ARCHITECTURE.md): it reads chat chunks."""

    def feed(self, chunk: ChatChunk) -> bytes: ...
    def finish(self) -> bytes: ...
    def fail(self, status: int, message: str) -> bytes: ...


class Chunks:
    """`chat.completion.chunk` dicts with one id, model and time. The first delta carries
    the assistant role, as OpenAI's first chunk does."""

    __slots__ = ("base", "started")

    def __init__(self, model: str) -> None:
        self.base: ChatChunk = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        self.started = False

    def delta(self, delta: ChatDelta, finish_reason: str | None = None) -> ChatChunk:
        if not self.started:
            self.started = True
            delta = {"role": "assistant", **delta}
        choice: ChunkChoice = {
            "index": 0,
            "delta": delta,
            "finish_reason": finish_reason,
            "logprobs": None,
        }
        return {**self.base, "choices": [choice]}

    def text(self, text: str) -> ChatChunk:
        return self.delta({"content": text})

    def reasoning(self, text: str) -> ChatChunk:
        return self.delta({"reasoning_content": text})

    def tool_call(
        self, index: int, *, call_id: str | None = None, name: str | None = None, args: str = ""
    ) -> ChatChunk:
        call: ToolCallDelta = {"index": index}
        if call_id is not None:
            call["id"] = call_id
            call["type"] = "function"
        fn: FunctionDelta = {"arguments": args}
        if name is not None:
            fn = {"name": name, **fn}
        call["function"] = fn
        return self.delta({"tool_calls": [call]})

    def end(self, finish_reason: str, usage: Usage) -> list[ChatChunk]:
        """The finish chunk, then the usage chunk (no choices), as LiteLLM sends them."""
        return [self.delta({}, finish_reason), {**self.base, "choices": [], "usage": usage}]


def function_tools(chat: ChatRequest) -> list[dict[str, Any]]:
    """A chat request's function tools, as the adapters translate them (other kinds have no
    equivalent upstream). A `tools` that is not an array cannot be translated: a 400."""
    tools = chat.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise RequestError("'tools' must be an array of tools", param="tools")
    return [t for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)]


def string_metadata(metadata: Any) -> dict[str, str]:
    """A chat request's `metadata` as OpenAI's Responses API takes it: at most 16 pairs, keys
    of up to 64 characters, string values of up to 512. OCA's chat endpoint takes any JSON
    there (LiteLLM's own metadata, e.g. a list of tags), so what does not fit is dropped."""
    out: dict[str, str] = {}
    if not isinstance(metadata, dict):
        return out
    for key, value in metadata.items():
        if len(out) == 16:
            break
        if isinstance(key, str) and len(key) <= 64 and isinstance(value, str) and len(value) <= 512:
            out[key] = value
    return out


def tool_calls(message: dict[str, Any], index: int) -> list[Any]:
    """An assistant message's `tool_calls`, as the adapters translate them. One that is not
    an array cannot be translated: a 400 naming the message."""
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise RequestError(
            f"'messages[{index}].tool_calls' must be an array of tool calls, "
            f"not {type(calls).__name__}",
            param=f"messages[{index}].tool_calls",
        )
    return calls


def error_chunk(status: int, message: str) -> ChatChunk:
    return {"error": {"message": message, "type": openai_error_type(status), "code": status}}


def chat_usage(
    prompt: int, completion: int, *, cached: int = 0, written: int = 0, reasoning: int = 0
) -> Usage:
    """Usage in chat's shape, with the cache fields LiteLLM adds (prompt counts them all)."""
    usage: Usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    if cached or written:
        usage["cache_read_input_tokens"] = cached
        usage["cache_creation_input_tokens"] = written
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def count(value: Any) -> int:
    """A token count from an upstream field: a non-negative int, else 0."""
    if isinstance(value, int) and not isinstance(value, bool):
        return max(value, 0)
    return 0


def data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URL; None for others."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    return head[: -len(";base64")] or "application/octet-stream", data


def text_of(content: Any) -> str:
    """The text of a chat message's content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(
        p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
    )


class AdaptedStream:
    """The stream translator for a model reached through an upstream adapter: upstream
    events -> the adapter's chat chunks -> the client's stream translator. An error chunk
    ends the client's stream with its API's terminal error."""

    __slots__ = ("answer", "client", "done")

    def __init__(self, answer: UpstreamAnswer, client: ClientStream) -> None:
        self.answer = answer
        self.client = client
        self.done = False

    def _pass(self, chunks: list[ChatChunk]) -> bytes:
        out: list[bytes] = []
        for chunk in chunks:
            err = chunk.get("error")
            if err is not None:
                self.done = True
                out.append(self.client.fail(*error_of(chunk)))
                break
            out.append(self.client.feed(chunk))
        return b"".join(out)

    def feed(self, event: dict[str, Any]) -> bytes:
        if self.done:
            return b""
        return self._pass(self.answer.feed(event))

    def finish(self) -> bytes:
        if self.done:
            return b""
        out = self._pass(self.answer.finish())
        if self.done:
            return out
        self.done = True
        return out + self.client.finish()

    def fail(self, status: int, message: str) -> bytes:
        if self.done:
            return b""
        self.done = True
        return self.client.fail(status, message)


def error_of(chunk: ChatChunk) -> tuple[int, str]:
    """(status, message) of an error chunk."""
    err = chunk.get("error")
    err = err if isinstance(err, dict) else {"message": str(err)}
    code = err.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else 502
    message = err.get("message")
    return status, message if isinstance(message, str) and message else "OCA reported an error"


def answer_chunks(answer: UpstreamAnswer, events: list[sse.SSEEvent]) -> list[ChatChunk]:
    """A whole upstream stream -> its chat chunks (buffered answers). Raises ApiError for an
    error in the stream or a stream cut short."""
    chunks: list[ChatChunk] = []
    for ev in events:
        if ev.data == "[DONE]":
            break
        try:
            data = jsonio.loads(ev.data)
        except ValueError:
            text = ev.data[:200]
            raise ApiError(502, f"OCA sent a stream event that is not JSON: {text!r}") from None
        if isinstance(data, dict):
            chunks += answer.feed(data)
    chunks += answer.finish()
    for chunk in chunks:
        if "error" in chunk:
            raise ApiError(*error_of(chunk))
    return chunks
