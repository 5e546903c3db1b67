"""The upstream adapter for models that speak only the Responses API (OCA's Codex models).

Request: a chat/completions body (what every client translator produces) -> an OCA
`/responses` body, always streamed: system messages become `instructions` (later ones
developer messages), tool calls and results become `function_call` and
`function_call_output` items, images `input_image`, files `input_file`, `max_tokens`
`max_output_tokens`, `reasoning_effort` (or a thinking budget) `reasoning.effort`,
`response_format` `text.format`; `user`, `prompt_cache_key`, `safety_identifier` and
`metadata` (its string values) as they are.

Answer: the Responses events -> chat chunks (`Answer`): output text, function calls by
output item (parallel calls keep their own index), reasoning summaries as
`reasoning_content`, the finish reason and usage from `response.completed` /
`response.incomplete`, and `response.failed` / `error` as the error chunk.
"""

from __future__ import annotations

from typing import Any

from oca_addon.core.modelinfo import fit_effort
from oca_addon.translate.anthropic.common import effort_for_budget
from oca_addon.translate.shapes import ChatChunk, ChatRequest, Usage
from oca_addon.translate.upstream.common import (
    Chunks,
    chat_usage,
    count,
    error_chunk,
    function_tools,
    string_metadata,
    text_of,
    tool_calls,
)

MIN_OUTPUT_TOKENS = 16  # the Responses API's floor for max_output_tokens
# Responses error codes -> HTTP status, for the client's terminal error.
_CODE_STATUS = {
    "rate_limit_exceeded": 429,
    "context_length_exceeded": 400,
    "invalid_prompt": 400,
    "invalid_request_error": 400,
    "server_error": 500,
}
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


# -- request: chat -> Responses ---------------------------------------------------------


def request(chat: ChatRequest, *, model_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """A chat/completions request body -> the `/responses` body for the same call."""
    info = model_info if isinstance(model_info, dict) else {}
    instructions, items = _input(chat.get("messages"))
    out: dict[str, Any] = {"model": chat.get("model"), "input": items, "stream": True}
    if instructions:
        out["instructions"] = instructions

    tools = [_tool(t) for t in function_tools(chat)]
    if tools:
        out["tools"] = tools
        choice = _tool_choice(chat.get("tool_choice"))
        if choice is not None:
            out["tool_choice"] = choice
        if isinstance(chat.get("parallel_tool_calls"), bool):
            out["parallel_tool_calls"] = chat["parallel_tool_calls"]

    limit = chat.get("max_completion_tokens") or chat.get("max_tokens")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        out["max_output_tokens"] = max(limit, MIN_OUTPUT_TOKENS)
    reasoning_model = bool(info.get("is_reasoning_model"))
    for key in ("temperature", "top_p"):
        # Responses refuses sampling settings for reasoning models (chat tolerates them).
        if chat.get(key) is not None and not reasoning_model:
            out[key] = chat[key]

    effort = chat.get("reasoning_effort")
    thinking = chat.get("thinking")
    if not effort and isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = count(thinking.get("budget_tokens"))
        effort = fit_effort(effort_for_budget(budget), info) if budget else None
    if isinstance(effort, str) and effort:
        out["reasoning"] = {"effort": effort, "summary": "auto"}
    elif reasoning_model:
        out["reasoning"] = {"summary": "auto"}  # the summaries are the reasoning shown

    fmt = _text_format(chat.get("response_format"))
    if fmt is not None:
        out["text"] = {"format": fmt}
    for name in ("user", "prompt_cache_key", "safety_identifier"):  # the same in Responses
        value = chat.get(name)
        if isinstance(value, str) and value:
            out[name] = value
    metadata = string_metadata(chat.get("metadata"))
    if metadata:
        out["metadata"] = metadata
    return out


def _input(messages: Any) -> tuple[str, list[dict[str, Any]]]:
    """(instructions, input items) of chat messages."""
    system: list[str] = []
    items: list[dict[str, Any]] = []
    for i, m in enumerate(messages if isinstance(messages, list) else ()):
        if not isinstance(m, dict):
            continue
        role, content = m.get("role"), m.get("content")
        if role in ("system", "developer"):
            text = text_of(content)
            if not items:  # leading system text is the instructions
                system.append(text)
            elif text:
                items.append(_message("developer", [_input_text(text)]))
        elif role == "user":
            parts = _user_parts(content)
            if parts:
                items.append(_message("user", parts))
        elif role == "assistant":
            text = text_of(content)
            if text:
                items.append({"type": "message", "role": "assistant", "content": text})
            for call in tool_calls(m, i):
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                    args = fn.get("arguments")
                    items.append(
                        {
                            "type": "function_call",
                            "call_id": str(call.get("id") or ""),
                            "name": fn["name"],
                            "arguments": args if isinstance(args, str) and args else "{}",
                        }
                    )
        elif role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": str(m.get("tool_call_id") or ""),
                    "output": text_of(content),
                }
            )
    return "\n\n".join(s for s in system if s), items


def _message(role: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": parts}


def _input_text(text: str) -> dict[str, Any]:
    return {"type": "input_text", "text": text}


def _user_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [_input_text(content)] if content else []
    parts: list[dict[str, Any]] = []
    for p in content if isinstance(content, list) else ():
        kind = p.get("type") if isinstance(p, dict) else None
        if kind == "text" and isinstance(p.get("text"), str):
            parts.append(_input_text(p["text"]))  # cache_control: Responses caches by itself
        elif kind == "image_url":
            image = p.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            detail = image.get("detail") if isinstance(image, dict) else None
            if isinstance(url, str) and url:
                parts.append({"type": "input_image", "image_url": url, "detail": detail or "auto"})
        elif kind == "file" and isinstance(p.get("file"), dict):
            file = p["file"]
            part = {"type": "input_file"}
            for key in ("file_data", "filename", "file_id"):
                if isinstance(file.get(key), str):
                    part[key] = file[key]
            parts.append(part)
    return parts


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool["function"]
    out: dict[str, Any] = {"type": "function", "name": fn.get("name")}
    if isinstance(fn.get("description"), str):
        out["description"] = fn["description"]
    params = fn.get("parameters")
    out["parameters"] = params if isinstance(params, dict) else {"type": "object", "properties": {}}
    # Responses makes function tools strict by default, which most chat schemas are not.
    out["strict"] = fn.get("strict") is True
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict):
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return {"type": "function", "name": fn["name"]}
    return None


def _text_format(fmt: Any) -> dict[str, Any] | None:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        spec = fmt["json_schema"]
        out: dict[str, Any] = {"type": "json_schema", "name": spec.get("name") or "response"}
        out["schema"] = spec.get("schema") if isinstance(spec.get("schema"), dict) else {}
        for key in ("description", "strict"):
            if spec.get(key) is not None:
                out[key] = spec[key]
        return out
    return None


# -- answer: Responses events -> chat chunks --------------------------------------------


class _Call:
    __slots__ = ("index", "sent")

    def __init__(self, index: int) -> None:
        self.index = index  # the chat tool_calls index
        self.sent = 0  # argument characters passed on


class Answer:
    """The Responses events of one streamed answer -> chat chunks (see common.UpstreamAnswer)."""

    def __init__(self, model: str) -> None:
        self.chunks = Chunks(model)
        self._calls: dict[Any, _Call] = {}  # output_index (or item id) -> call
        self._texts: set[Any] = set()  # output indexes whose text arrived as deltas
        self._summary: tuple[Any, Any] | None = None  # the reasoning part being streamed
        self._done = False

    def feed(self, event: dict[str, Any]) -> list[ChatChunk]:
        if self._done:
            return []
        kind = event.get("type")
        index = event.get("output_index")
        if kind == "response.output_text.delta" or kind == "response.refusal.delta":
            delta = event.get("delta")
            self._texts.add(index)
            return [self.chunks.text(delta)] if isinstance(delta, str) and delta else []
        if kind == "response.function_call_arguments.delta":
            return self._args(event.get("item_id"), index, event.get("delta"), whole=False)
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return self._reasoning(event, event.get("delta"))
        if kind == "response.output_item.added":
            return self._added(index, event.get("item"))
        if kind == "response.function_call_arguments.done":
            return self._args(event.get("item_id"), index, event.get("arguments"), whole=True)
        if kind == "response.output_item.done":
            return self._item_done(index, event.get("item"))
        if kind in ("response.completed", "response.incomplete"):
            return self._end(event.get("response"))
        if kind == "response.failed":
            self._done = True
            resp = event.get("response")
            err = resp.get("error") if isinstance(resp, dict) else None
            return [_error(err if isinstance(err, dict) else {})]
        if kind == "error":
            self._done = True
            err = event.get("error")
            return [_error(err if isinstance(err, dict) else event)]
        return []

    def finish(self) -> list[ChatChunk]:
        if self._done:
            return []
        self._done = True
        return [error_chunk(502, "OCA's stream ended before the response was complete")]

    def _added(self, index: Any, item: Any) -> list[ChatChunk]:
        if not isinstance(item, dict) or item.get("type") != "function_call":
            return []
        call = _Call(len(self._calls))
        self._calls[index] = call
        if isinstance(item.get("id"), str):
            self._calls[item["id"]] = call
        out = [self.chunks.tool_call(call.index, call_id=_call_id(item), name=item.get("name"))]
        return out + self._send(call, item.get("arguments"), whole=True)

    def _find(self, item_id: Any, index: Any) -> _Call | None:
        return self._calls.get(index) or (self._calls.get(item_id) if item_id else None)

    def _args(self, item_id: Any, index: Any, text: Any, *, whole: bool) -> list[ChatChunk]:
        call = self._find(item_id, index)
        return self._send(call, text, whole=whole) if call is not None else []

    def _send(self, call: _Call, text: Any, *, whole: bool) -> list[ChatChunk]:
        # `whole`: the complete arguments (a .done event), sent only if no delta came.
        if not isinstance(text, str) or not text or (whole and call.sent):
            return []
        call.sent += len(text)
        return [self.chunks.tool_call(call.index, args=text)]

    def _reasoning(self, event: dict[str, Any], delta: Any) -> list[ChatChunk]:
        if not isinstance(delta, str) or not delta:
            return []
        part = (event.get("item_id"), event.get("summary_index", event.get("content_index")))
        gap = "\n\n" if self._summary is not None and self._summary != part else ""
        self._summary = part
        return [self.chunks.reasoning(gap + delta)]

    def _item_done(self, index: Any, item: Any) -> list[ChatChunk]:
        """Content an upstream sent only whole, in `output_item.done`."""
        if not isinstance(item, dict):
            return []
        kind = item.get("type")
        if kind == "function_call":
            call = self._find(item.get("id"), index)
            if call is None:
                return self._added(index, item)
            return self._send(call, item.get("arguments"), whole=True)
        if kind == "message" and index not in self._texts:
            self._texts.add(index)
            text = "".join(
                str(p.get("text") or p.get("refusal") or "")
                for p in item.get("content") or ()
                if isinstance(p, dict)
            )
            return [self.chunks.text(text)] if text else []
        return []

    def _end(self, resp: Any) -> list[ChatChunk]:
        self._done = True
        resp = resp if isinstance(resp, dict) else {}
        out: list[ChatChunk] = []
        for n, item in enumerate(resp.get("output") or ()):  # items never streamed
            if isinstance(item, dict) and item.get("type") in ("function_call", "message"):
                out += self._item_done(n, item)
        for call in {id(c): c for c in self._calls.values()}.values():
            if not call.sent:  # a call without arguments still gets a JSON object
                out += self._send(call, "{}", whole=True)
        details = resp.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        if resp.get("status") == "incomplete" or reason:
            finish = _INCOMPLETE.get(str(reason), "length")
        else:
            finish = "tool_calls" if self._calls else "stop"
        return out + self.chunks.end(finish, _usage(resp.get("usage")))


def _call_id(item: dict[str, Any]) -> str:
    call_id = item.get("call_id") or item.get("id")
    return call_id if isinstance(call_id, str) and call_id else "call_0"


def _usage(usage: Any) -> Usage:
    u = usage if isinstance(usage, dict) else {}
    inp = u.get("input_tokens_details")
    out = u.get("output_tokens_details")
    return chat_usage(
        count(u.get("input_tokens")),
        count(u.get("output_tokens")),
        cached=count(inp.get("cached_tokens")) if isinstance(inp, dict) else 0,
        reasoning=count(out.get("reasoning_tokens")) if isinstance(out, dict) else 0,
    )


def _error(err: dict[str, Any]) -> ChatChunk:
    code = err.get("code")
    status = _CODE_STATUS.get(code, 502) if isinstance(code, str) else 502
    if isinstance(code, int) and 400 <= code < 600:
        status = code
    message = err.get("message")
    return error_chunk(status, message if isinstance(message, str) and message else str(code))
