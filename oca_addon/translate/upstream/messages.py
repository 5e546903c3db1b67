"""The upstream adapter for models that speak only the Anthropic Messages API (Claude models
OCA serves at `/v1/messages`).

Request: a chat/completions body -> an OCA `/v1/messages` body, always streamed: system
messages become `system` blocks, tool calls `tool_use` blocks, tool results `tool_result`
blocks in the next user turn (consecutive same-role turns merged, as Anthropic wants),
images `image` blocks, PDFs `document` blocks; `cache_control` stays on its blocks;
`reasoning_effort` becomes a thinking budget; `max_tokens` is always set.

Answer: the Messages events -> chat chunks (`Answer`): text, `tool_use` blocks as tool
calls by index with their `input_json_delta`s, thinking as `reasoning_content`, the
`stop_reason` as the finish reason, usage with the cache fields; an `error` event, or a
stream that ends before `message_stop`, as the error chunk.
"""

from __future__ import annotations

import json
from typing import Any

from oca_addon.translate.anthropic.common import (
    ERROR_STATUS,
    MIN_THINKING_BUDGET,
    _parse_arguments,
    _upstream_tool_id,
    budget_for_effort,
    fit_budget,
    merge_usage,
    opaque_id,
)
from oca_addon.translate.shapes import ChatChunk, ChatRequest
from oca_addon.translate.upstream.common import (
    Chunks,
    chat_usage,
    count,
    data_url,
    error_chunk,
    function_tools,
    text_of,
    tool_calls,
)

DEFAULT_MAX_TOKENS = 8192  # Messages requires max_tokens; chat clients often send none
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


# -- request: chat -> Messages ----------------------------------------------------------


def request(chat: ChatRequest, *, model_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """A chat/completions request body -> the `/v1/messages` body for the same call."""
    info = model_info if isinstance(model_info, dict) else {}
    system, messages = _messages(chat.get("messages"))
    out: dict[str, Any] = {"model": chat.get("model"), "messages": messages, "stream": True}

    limit = count(info.get("max_output_tokens"))
    asked = count(chat.get("max_completion_tokens")) or count(chat.get("max_tokens"))
    max_tokens = min(asked, limit) if asked and limit else asked or limit or DEFAULT_MAX_TOKENS
    out["max_tokens"] = max_tokens

    stop = chat.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    stops = [s for s in stops if isinstance(s, str) and s.strip()]
    if stops:
        out["stop_sequences"] = stops

    tools = [_tool(t) for t in function_tools(chat)]
    forced = False
    if tools:
        out["tools"] = tools
        choice = _tool_choice(chat.get("tool_choice"), chat.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
            forced = choice["type"] in ("any", "tool")

    thinking = _thinking(chat, max_tokens)
    # Anthropic refuses thinking with a forced tool, and wants a turn that continues a tool
    # loop to start with the signed thinking block it sent, which chat cannot carry back.
    enabled = thinking is not None and thinking.get("type") == "enabled"
    if enabled and (forced or _continues_tool_loop(messages)):
        thinking = None
    if thinking is not None:
        out["thinking"] = thinking
    if thinking is None or thinking.get("type") == "disabled":
        for key in ("temperature", "top_p"):  # Anthropic refuses them with thinking on
            if chat.get(key) is not None:
                out[key] = chat[key]

    instruction = _format_instruction(chat.get("response_format"))
    if instruction:
        system.append({"type": "text", "text": instruction})
    if system:
        out["system"] = system
    user = _user_id(chat)
    if user:
        out["metadata"] = {"user_id": user}
    return out


def _user_id(chat: ChatRequest) -> str | None:
    """Anthropic's `metadata.user_id` (an opaque id of the end user, for abuse detection, of
    up to 256 characters): chat's `safety_identifier`, made for just that, else `user`."""
    for key in ("safety_identifier", "user"):
        value = chat.get(key)
        if isinstance(value, str) and value:
            return opaque_id(value, 256)
    return None


def _thinking(chat: ChatRequest, max_tokens: int) -> dict[str, Any] | None:
    thinking = chat.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") != "enabled":
        return dict(thinking)  # disabled, adaptive: as sent
    if isinstance(thinking, dict):
        budget: int | None = count(thinking.get("budget_tokens")) or None
    else:
        budget = budget_for_effort(chat.get("reasoning_effort"))
    if budget is None:
        return None
    fitted = fit_budget(max(budget, MIN_THINKING_BUDGET), max_tokens)
    return {"type": "enabled", "budget_tokens": fitted} if fitted else None


def _continues_tool_loop(messages: list[dict[str, Any]]) -> bool:
    last = messages[-1] if messages else None
    content = last.get("content") if last and last["role"] == "user" else None
    return isinstance(content, list) and any(b.get("type") == "tool_result" for b in content)


def _messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, alternating user/assistant messages) of chat messages."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for i, m in enumerate(messages if isinstance(messages, list) else ()):
        if not isinstance(m, dict):
            continue
        role, content = m.get("role"), m.get("content")
        if role in ("system", "developer"):
            system += _blocks(content, images=False)
        elif role == "user":
            add("user", _blocks(content, images=True))
        elif role == "assistant":
            add("assistant", _assistant(m, i))
        elif role == "tool":
            add("user", [_tool_result(m)])
    for turn in turns:  # a user turn's tool results come first
        if turn["role"] == "user":
            turn["content"].sort(key=lambda b: b.get("type") != "tool_result")
    return system, turns


def _text(text: str, part: dict[str, Any] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if part is not None and isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _blocks(content: Any, *, images: bool) -> list[dict[str, Any]]:
    """Content blocks of a chat message's content (Anthropic refuses empty text blocks)."""
    if isinstance(content, str):
        return [_text(content)] if content else []
    blocks: list[dict[str, Any]] = []
    for p in content if isinstance(content, list) else ():
        kind = p.get("type") if isinstance(p, dict) else None
        if kind == "text" and isinstance(p.get("text"), str) and p["text"]:
            blocks.append(_text(p["text"], p))
        elif kind == "image_url" and images:
            image = _image(p)
            if image is not None:
                blocks.append(image)
        elif kind == "file" and images:
            blocks.append(_document(p))
    return blocks


def _image(part: dict[str, Any]) -> dict[str, Any] | None:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        return None
    inline = data_url(url)
    source = (
        {"type": "base64", "media_type": inline[0], "data": inline[1]}
        if inline
        else {"type": "url", "url": url}
    )
    block: dict[str, Any] = {"type": "image", "source": source}
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _document(part: dict[str, Any]) -> dict[str, Any]:
    raw = part.get("file")
    file: dict[str, Any] = raw if isinstance(raw, dict) else {}
    data = file.get("file_data")
    inline = data_url(data) if isinstance(data, str) else None
    name = file.get("filename") if isinstance(file.get("filename"), str) else "file"
    if inline is None or inline[0] != "application/pdf":
        return _text(f"[file {name} not included: only inline PDFs can be forwarded]")
    block: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": inline[1]},
    }
    if name != "file":
        block["title"] = name
    return block


def _assistant(m: dict[str, Any], index: int) -> list[dict[str, Any]]:
    # Reasoning is not sent back: Anthropic takes only thinking blocks it signed itself.
    blocks = _blocks(m.get("content"), images=False)
    for call in tool_calls(m, index):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            continue
        blocks.append(
            {
                "type": "tool_use",
                "id": _upstream_tool_id(str(call.get("id") or "toolu_0")),
                "name": fn["name"],
                "input": _parse_arguments(fn.get("arguments")),
            }
        )
    return blocks


def _tool_result(m: dict[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": _upstream_tool_id(str(m.get("tool_call_id") or "toolu_0")),
    }
    content = m.get("content")
    inner = _blocks(content, images=True) if isinstance(content, list) else None
    if inner:
        block["content"] = inner
    elif text_of(content):
        block["content"] = text_of(content)
    return block


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool["function"]
    out: dict[str, Any] = {"name": fn.get("name")}
    if isinstance(fn.get("description"), str):
        out["description"] = fn["description"]
    params = fn.get("parameters")
    out["input_schema"] = (
        params if isinstance(params, dict) else {"type": "object", "properties": {}}
    )
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None = None
    if choice == "auto" or (choice is None and parallel is False):
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name")}
    if out is not None and parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


def _format_instruction(fmt: Any) -> str | None:
    """Messages has no response_format: the wanted shape becomes an instruction."""
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        return "Answer with one JSON object and nothing else."
    if kind == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        schema = fmt["json_schema"].get("schema")
        return (
            "Answer with one JSON value that matches this JSON schema, and nothing else:\n"
            + json.dumps(schema, ensure_ascii=False)
        )
    return None


# -- answer: Messages events -> chat chunks ---------------------------------------------


class _Block:
    __slots__ = ("call", "kind", "sent")

    def __init__(self, kind: str, call: int = -1) -> None:
        self.kind = kind
        self.call = call  # the chat tool_calls index of a tool_use block
        self.sent = 0  # argument characters passed on


class Answer:
    """The Messages events of one streamed answer -> chat chunks (see common.UpstreamAnswer)."""

    def __init__(self, model: str) -> None:
        self.chunks = Chunks(model)
        self._blocks: dict[Any, _Block] = {}
        self._calls = 0
        self._usage: dict[str, Any] = {}
        self._stop_reason: str | None = None
        self._done = False

    def feed(self, event: dict[str, Any]) -> list[ChatChunk]:
        if self._done:
            return []
        kind = event.get("type")
        if kind == "content_block_delta":
            return self._delta(self._blocks.get(event.get("index")), event.get("delta"))
        if kind == "content_block_start":
            return self._start(event.get("index"), event.get("content_block"))
        if kind == "content_block_stop":
            block = self._blocks.get(event.get("index"))
            if block is not None and block.kind == "tool_use" and not block.sent:
                block.sent = 2
                return [self.chunks.tool_call(block.call, args="{}")]
            return []
        if kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict):
                self._take_usage(message.get("usage"))
            return []
        if kind == "message_delta":
            delta = event.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self._stop_reason = delta["stop_reason"]
            self._take_usage(event.get("usage"))
            return []
        if kind == "message_stop":
            return self._end()
        if kind == "error":
            self._done = True
            err = event.get("error")
            err = err if isinstance(err, dict) else {}
            status = ERROR_STATUS.get(err.get("type"), 502)  # type: ignore[arg-type]
            message = err.get("message")
            return [error_chunk(status, message if isinstance(message, str) else "OCA failed")]
        return []  # ping, unknown events

    def finish(self) -> list[ChatChunk]:
        if self._done:
            return []
        if self._stop_reason is not None:  # all but message_stop arrived: complete enough
            return self._end()
        self._done = True
        return [error_chunk(502, "OCA's stream ended before the message was complete")]

    def _start(self, index: Any, block: Any) -> list[ChatChunk]:
        if not isinstance(block, dict):
            return []
        kind = block.get("type")
        if kind == "tool_use":
            entry = self._blocks[index] = _Block("tool_use", self._calls)
            self._calls += 1
            out = [
                self.chunks.tool_call(
                    entry.call, call_id=str(block.get("id") or ""), name=block.get("name")
                )
            ]
            if block.get("input"):  # input sent whole in the start event
                out += self._args(entry, json.dumps(block["input"], ensure_ascii=False))
            return out
        self._blocks[index] = _Block(kind if isinstance(kind, str) else "")
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            return [self.chunks.text(block["text"])]
        if kind == "thinking" and isinstance(block.get("thinking"), str) and block["thinking"]:
            return [self.chunks.reasoning(block["thinking"])]
        return []

    def _delta(self, block: _Block | None, delta: Any) -> list[ChatChunk]:
        if block is None or not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
            return [self.chunks.text(delta["text"])]
        if (
            kind == "thinking_delta"
            and isinstance(delta.get("thinking"), str)
            and delta["thinking"]
        ):
            return [self.chunks.reasoning(delta["thinking"])]
        if kind == "input_json_delta" and block.kind == "tool_use":
            return self._args(block, delta.get("partial_json"))
        return []  # signature_delta, citations_delta: chat has no place for them

    def _args(self, block: _Block, text: Any) -> list[ChatChunk]:
        if not isinstance(text, str) or not text:
            return []
        block.sent += len(text)
        return [self.chunks.tool_call(block.call, args=text)]

    def _take_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._usage = merge_usage(self._usage, usage)

    def _end(self) -> list[ChatChunk]:
        self._done = True
        reason = self._stop_reason
        finish = _FINISH.get(reason, "stop") if reason else "stop"
        if self._calls and finish == "stop":
            finish = "tool_calls"
        u = self._usage
        read = count(u.get("cache_read_input_tokens"))
        written = count(u.get("cache_creation_input_tokens"))
        prompt = count(u.get("input_tokens")) + read + written
        usage = chat_usage(prompt, count(u.get("output_tokens")), cached=read, written=written)
        return self.chunks.end(finish, usage)
