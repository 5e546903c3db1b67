"""OpenAI Responses API <-> OCA Chat Completions.

Request side: a Responses body (`input` items, `instructions`, flat/namespace/custom tools,
`text.format`, `reasoning`, `previous_response_id`, ...) becomes one streamed
`/chat/completions` request.

Answer side: upstream `chat.completion.chunk`s become the Responses SSE grammar
(`response.created` ... `response.completed`), or, for a client that did not stream, one
`response` object built from the chunks assembled by `translate.chat.ChatAssembler`.

Also here: the in-memory store behind `previous_response_id` (`ResponseHistory`), request
preparation for models that serve `/responses` natively (`prepare_native_responses`) and the
assembly of a native Responses stream into one object (`NativeResponsesAssembler`).

Ids minted by the proxy carry an `_oca_` infix (`rs_oca_`, `msg_oca_`, `fc_oca_`, `ctc_oca_`)
so that a later native request can tell them from ids the upstream knows.
"""

from __future__ import annotations

import json
import mimetypes
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from .. import jsonio, sse
from ..errors import RequestError
from ..modelinfo import fit_effort

# --------------------------------------------------------------------------------------
# ids and small helpers
# --------------------------------------------------------------------------------------

MINTED_REASONING_PREFIX = "rs_oca_"
_MINTED_ID_PREFIXES = ("rs_oca_", "msg_oca_", "fc_oca_", "ctc_oca_")

_ROLES = ("user", "assistant", "system", "developer")
_CALL_TYPES = ("function_call", "custom_tool_call")
_OUTPUT_TYPES = ("function_call_output", "custom_tool_call_output")
_INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
_NO_OUTPUT_TEXT = "(no output was recorded for this tool call)"


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e18:
        return int(value)
    return 0


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def flat_tool_name(namespace: str | None, name: str) -> str:
    """The chat function name of tool `name` inside `namespace` (Codex: `mcp__srv__` + `x`)."""
    if not namespace:
        return name
    return f"{namespace}{name}" if namespace.endswith("_") else f"{namespace}__{name}"


def _not_found(previous_response_id: str) -> RequestError:
    err = RequestError(
        f"Previous response with id '{previous_response_id}' not found.",
        param="previous_response_id",
    )
    err.code = "previous_response_not_found"
    return err


# --------------------------------------------------------------------------------------
# previous_response_id store
# --------------------------------------------------------------------------------------


class ResponseHistory:
    """Bounded in-memory LRU store of answered turns, for `previous_response_id`.

    Each entry holds the turn's full (already expanded) input items and its output items,
    so expanding an id gives the whole conversation up to and including that answer.
    """

    def __init__(self, max_entries: int = 200) -> None:
        self.max_entries = max(1, max_entries)
        self._entries: OrderedDict[str, tuple[list[Any], list[Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, response_id: object) -> bool:
        return response_id in self._entries

    def remember(self, response_id: str, input_items: list[Any], output_items: list[Any]) -> None:
        if not isinstance(response_id, str) or not response_id:
            return
        with self._lock:
            self._entries[response_id] = (list(input_items or ()), list(output_items or ()))
            self._entries.move_to_end(response_id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def expand(self, previous_response_id: str) -> list[Any]:
        """The earlier turn's input + output items, or the standard 400 if unknown."""
        with self._lock:
            entry = self._entries.get(previous_response_id)
            if entry is None:
                raise _not_found(str(previous_response_id))
            self._entries.move_to_end(previous_response_id)
            return [*entry[0], *entry[1]]


# --------------------------------------------------------------------------------------
# per-request context
# --------------------------------------------------------------------------------------


@dataclass
class ResponsesContext:
    requested_model: str
    response_id: str = field(default_factory=lambda: _new_id("resp"))
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
            raise _not_found(prev)
        items = history.expand(prev) + items
    return items


# --------------------------------------------------------------------------------------
# request: Responses -> Chat
# --------------------------------------------------------------------------------------


def _text_of(content: Any, where: str) -> str:
    """Plain text of a content value (system/developer/assistant messages, instructions)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RequestError(
            f"{where}.content must be a string or an array of content parts",
            param=f"{where}.content",
        )
    texts: list[str] = []
    for j, part in enumerate(content):
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise RequestError(
                f"{where}.content[{j}] must be an object", param=f"{where}.content[{j}]"
            )
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            text = part.get("text")
            if isinstance(text, str):
                texts.append(text)
        elif kind == "refusal":
            text = part.get("refusal")
            if isinstance(text, str):
                texts.append(text)
    return "".join(texts)


def _file_part(part: dict[str, Any]) -> dict[str, Any]:
    data = part.get("file_data")
    filename = part.get("filename") if isinstance(part.get("filename"), str) else None
    if isinstance(data, str) and data:
        if not data.startswith("data:"):
            mime = (mimetypes.guess_type(filename)[0] if filename else None) or "application/pdf"
            data = f"data:{mime};base64,{data}"
        file: dict[str, Any] = {"file_data": data}
        if filename:
            file["filename"] = filename
        return {"type": "file", "file": file}
    label = filename or part.get("file_id") or part.get("file_url") or "file"
    return {
        "type": "text",
        "text": f"[file {label} not included: only inline file_data can be forwarded]",
    }


def _image_part(part: dict[str, Any]) -> dict[str, Any]:
    url = part.get("image_url")
    if isinstance(url, dict):
        url = url.get("url")
    if isinstance(url, str) and url:
        return {"type": "image_url", "image_url": {"url": url}}
    label = part.get("file_id") or "image"
    return {
        "type": "text",
        "text": f"[image {label} not included: only image URLs can be forwarded]",
    }


def _user_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RequestError(
            f"{where}.content must be a string or an array of content parts",
            param=f"{where}.content",
        )
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if isinstance(part, str):
            parts.append({"type": "text", "text": part})
            continue
        if not isinstance(part, dict):
            raise RequestError(
                f"{where}.content[{j}] must be an object", param=f"{where}.content[{j}]"
            )
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise RequestError(
                    f"{where}.content[{j}].text must be a string",
                    param=f"{where}.content[{j}].text",
                )
            parts.append({"type": "text", "text": text})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append({"type": "text", "text": part["refusal"]})
        elif kind in ("input_image", "image_url"):
            parts.append(_image_part(part))
        elif kind in ("input_file", "file"):
            inner = part.get("file")
            parts.append(_file_part(inner if kind == "file" and isinstance(inner, dict) else part))
    if not parts:
        return ""
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def _tool_output(item: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(text for the tool message, image parts to show in a following user message)."""
    output = item.get("output")
    if output is None:
        return "", []
    if isinstance(output, str):
        return output, []
    if isinstance(output, list):
        texts: list[str] = []
        images: list[dict[str, Any]] = []
        for part in output:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                kind = part.get("type")
                if kind in ("input_text", "output_text", "text") and isinstance(
                    part.get("text"), str
                ):
                    texts.append(part["text"])
                elif kind in ("input_image", "image_url"):
                    image = _image_part(part)
                    if image["type"] == "image_url":
                        images.append(image)
                        texts.append("[image: shown in the next message]")
                    else:
                        texts.append(image["text"])
                elif kind in ("input_file", "file"):
                    texts.append(f"[file {part.get('filename') or part.get('file_id') or ''}]")
        return "\n".join(texts), images
    return _dumps(output), []


def _call_arguments(item: dict[str, Any], where: str) -> str:
    if item.get("type") == "custom_tool_call":
        value = item.get("input")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise RequestError(f"{where}.input must be a string", param=f"{where}.input")
        return _dumps({"input": value})
    args = item.get("arguments")
    if args is None or args == "":
        return "{}"
    if isinstance(args, str):
        return args
    if isinstance(args, dict):
        return _dumps(args)
    raise RequestError(f"{where}.arguments must be a JSON string", param=f"{where}.arguments")


class _Turn:
    __slots__ = ("calls", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.calls: list[dict[str, Any]] = []


def _items_to_messages(items: list[Any], system: list[str]) -> list[dict[str, Any]]:
    """Input items -> chat messages (system texts collected into `system`)."""
    # Where is each call's output? (call_id -> positions in `items`, in order)
    outputs: dict[str, deque[int]] = {}
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("type") in _OUTPUT_TYPES:
            cid = item.get("call_id")
            if isinstance(cid, str) and cid:
                outputs.setdefault(cid, deque()).append(i)

    messages: list[dict[str, Any]] = []
    consumed: set[int] = set()
    used_ids: set[str] = set()
    turn: _Turn | None = None

    def emit_tool_block(results: list[tuple[str, str, list[dict[str, Any]]]]) -> None:
        images: list[dict[str, Any]] = []
        for cid, text, extra in results:
            messages.append({"role": "tool", "tool_call_id": cid, "content": text})
            images.extend(extra)
        if images:
            intro = {"type": "text", "text": "Images returned by the tool calls above:"}
            messages.append({"role": "user", "content": [intro, *images]})

    def flush() -> None:
        nonlocal turn
        current, turn = turn, None
        if current is None:
            return
        text = "".join(current.texts)
        if not current.calls:
            if text:
                messages.append({"role": "assistant", "content": text})
            return
        messages.append({"role": "assistant", "content": text or None, "tool_calls": current.calls})
        results: list[tuple[str, str, list[dict[str, Any]]]] = []
        for call in current.calls:
            cid = call["id"]
            queue = outputs.get(cid)
            if queue:
                pos = queue.popleft()
                consumed.add(pos)
                out_text, images = _tool_output(items[pos])
            else:
                out_text, images = _NO_OUTPUT_TEXT, []
            results.append((cid, out_text, images))
        emit_tool_block(results)

    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise RequestError(f"{where} must be an object", param=where)
        kind = item.get("type")
        if kind is None or kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise RequestError(
                    f"{where}.role must be one of 'user', 'assistant', 'system', 'developer'",
                    param=f"{where}.role",
                )
            content = item.get("content")
            if role in ("system", "developer"):
                text = _text_of(content, where)
                if text:
                    system.append(text)
            elif role == "assistant":
                text = _text_of(content, where)
                if turn is not None and turn.calls:
                    flush()
                if turn is None:
                    turn = _Turn()
                turn.texts.append(text)
            else:
                user_content = _user_content(content, where)
                flush()
                messages.append({"role": "user", "content": user_content})
        elif kind in _CALL_TYPES:
            cid = item.get("call_id")
            if not isinstance(cid, str) or not cid:
                continue
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise RequestError(
                    f"{where}.name must be a non-empty string", param=f"{where}.name"
                )
            ns = item.get("namespace")
            flat = flat_tool_name(ns if isinstance(ns, str) else None, name)
            args = _call_arguments(item, where)
            if cid in used_ids:
                continue
            used_ids.add(cid)
            if turn is None:
                turn = _Turn()
            turn.calls.append(
                {"id": cid, "type": "function", "function": {"name": flat, "arguments": args}}
            )
        elif kind in _OUTPUT_TYPES:
            flush()
            if i in consumed:
                continue
            cid = item.get("call_id")
            if not isinstance(cid, str) or not cid:
                continue
            queue = outputs.get(cid)
            if queue and i in queue:
                queue.remove(i)
            if cid in used_ids:
                continue
            used_ids.add(cid)
            name = item.get("name") if isinstance(item.get("name"), str) else None
            ns = item.get("namespace")
            flat = flat_tool_name(ns if isinstance(ns, str) else None, name or "unknown_tool")
            args = _dumps({"input": ""}) if kind == "custom_tool_call_output" else "{}"
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": cid,
                            "type": "function",
                            "function": {"name": flat, "arguments": args},
                        }
                    ],
                }
            )
            out_text, images = _tool_output(item)
            emit_tool_block([(cid, out_text, images)])
        # reasoning items, item references and built-in tool calls are dropped
    flush()
    return messages


def _custom_tool_description(tool: dict[str, Any]) -> str:
    desc = tool.get("description") if isinstance(tool.get("description"), str) else ""
    hint = (
        "This tool takes free-form text, not JSON fields: put the complete text in the "
        "`input` string parameter."
    )
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar":
        definition = fmt.get("definition")
        syntax = fmt.get("syntax") if isinstance(fmt.get("syntax"), str) else "lark"
        if isinstance(definition, str) and definition:
            hint += f" The text must match this {syntax} grammar:\n```\n{definition}\n```"
    return f"{desc}\n\n{hint}" if desc else hint


def _chat_tool(
    tool: dict[str, Any], namespace: str | None, where: str, ctx: ResponsesContext
) -> dict[str, Any] | None:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise RequestError(f"{where}.name must be a non-empty string", param=f"{where}.name")
    flat = flat_tool_name(namespace, name)
    if flat in ctx.tool_names:
        return None  # duplicate name: keep the first
    ctx.tool_names[flat] = (namespace, name)
    if tool.get("type") == "custom":
        ctx.custom_tools.add(flat)
        return {
            "type": "function",
            "function": {
                "name": flat,
                "description": _custom_tool_description(tool),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "input": {"type": "string", "description": "The raw input text."}
                    },
                    "required": ["input"],
                    "additionalProperties": False,
                },
            },
        }
    fn: dict[str, Any] = {"name": flat}
    if isinstance(tool.get("description"), str):
        fn["description"] = tool["description"]
    params = tool.get("parameters")
    fn["parameters"] = params if isinstance(params, dict) else {"type": "object", "properties": {}}
    if isinstance(tool.get("strict"), bool):
        fn["strict"] = tool["strict"]
    return {"type": "function", "function": fn}


def _chat_tools(tools: Any, ctx: ResponsesContext) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise RequestError("'tools' must be an array", param="tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise RequestError(f"{where} must be an object", param=where)
        kind = tool.get("type")
        if kind in ("function", "custom"):
            converted = _chat_tool(tool, None, where, ctx)
            if converted:
                out.append(converted)
        elif kind == "namespace":
            ns = tool.get("name")
            if not isinstance(ns, str) or not ns:
                raise RequestError(
                    f"{where}.name must be a non-empty string", param=f"{where}.name"
                )
            inner = tool.get("tools")
            if not isinstance(inner, list):
                raise RequestError(f"{where}.tools must be an array", param=f"{where}.tools")
            for j, sub in enumerate(inner):
                sub_where = f"{where}.tools[{j}]"
                if not isinstance(sub, dict):
                    raise RequestError(f"{sub_where} must be an object", param=sub_where)
                if sub.get("type") in ("function", "custom"):
                    converted = _chat_tool(sub, ns, sub_where, ctx)
                    if converted:
                        out.append(converted)
        # built-in tools (web_search, local_shell, file_search, mcp, ...) are dropped
    return out


def _apply_tool_choice(
    choice: Any, tools: list[dict[str, Any]], ctx: ResponsesContext
) -> tuple[Any, list[dict[str, Any]]]:
    """(chat tool_choice or None, possibly narrowed tools)."""
    if choice in ("auto", "required", "none"):
        return choice, tools
    if not isinstance(choice, dict):
        return None, tools
    kind = choice.get("type")
    if kind in ("function", "custom") and isinstance(choice.get("name"), str):
        ns = choice.get("namespace") if isinstance(choice.get("namespace"), str) else None
        flat = flat_tool_name(ns, choice["name"])
        if any(t["function"]["name"] == flat for t in tools):
            return {"type": "function", "function": {"name": flat}}, tools
        return None, tools
    if kind == "allowed_tools":
        allowed = choice.get("tools")
        names: set[str] = set()
        if isinstance(allowed, list):
            for entry in allowed:
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    ns = entry.get("namespace") if isinstance(entry.get("namespace"), str) else None
                    names.add(flat_tool_name(ns, entry["name"]))
        narrowed = [t for t in tools if t["function"]["name"] in names]
        mode = choice.get("mode")
        return (mode if mode in ("auto", "required") else "auto"), narrowed
    return None, tools  # a built-in tool choice: nothing to force


def _effort(client: Any, default: str | None, model_info: dict[str, Any] | None) -> str | None:
    return fit_effort(client if isinstance(client, str) and client else default, model_info)


def _response_format(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, dict):
        return None
    fmt = text.get("format")
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema: dict[str, Any] = {
            "name": fmt.get("name") if isinstance(fmt.get("name"), str) else "response"
        }
        if isinstance(fmt.get("description"), str):
            schema["description"] = fmt["description"]
        schema["schema"] = fmt.get("schema") if isinstance(fmt.get("schema"), dict) else {}
        if isinstance(fmt.get("strict"), bool):
            schema["strict"] = fmt["strict"]
        return {"type": "json_schema", "json_schema": schema}
    return None


def _instructions_text(instructions: Any) -> str:
    if instructions is None:
        return ""
    if isinstance(instructions, str):
        return instructions
    if isinstance(instructions, list):
        texts = []
        for i, item in enumerate(instructions):
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, dict):
                texts.append(_text_of(item.get("content"), f"instructions[{i}]"))
        return "\n\n".join(t for t in texts if t)
    raise RequestError("'instructions' must be a string", param="instructions")


def responses_to_chat(
    body: dict[str, Any],
    *,
    target_model: str,
    model_info: dict[str, Any] | None = None,
    reasoning_effort: str | None = None,
    history: ResponseHistory | None = None,
) -> tuple[dict[str, Any], ResponsesContext]:
    """A Responses request -> (OCA /chat/completions request, context for the answer)."""
    _check_body(body)
    items = _input_items(body, history)
    is_reasoning = isinstance(model_info, dict) and model_info.get("is_reasoning_model") is True

    client_effort = body.get("reasoning", {}).get("effort") if isinstance(body.get("reasoning"), dict) else None  # fmt: skip
    effort = _effort(client_effort, reasoning_effort, model_info)
    ctx = _context_from_body(body, effort if not client_effort else None, history)
    ctx.input_items = items

    system: list[str] = []
    instructions = _instructions_text(body.get("instructions"))
    if instructions:
        system.append(instructions)
    messages = _items_to_messages(items, system)
    if not messages:
        raise RequestError(
            "'input' must contain at least one message or tool output", param="input"
        )
    if system:
        messages.insert(0, {"role": "system", "content": "\n\n".join(system)})

    chat: dict[str, Any] = {"model": target_model, "messages": messages}

    tools = _chat_tools(body.get("tools"), ctx)
    choice, tools = _apply_tool_choice(body.get("tool_choice"), tools, ctx)
    if tools:
        chat["tools"] = tools
        if choice is not None:
            chat["tool_choice"] = choice
        if isinstance(body.get("parallel_tool_calls"), bool):
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]

    max_out: Any = body.get("max_output_tokens")
    if max_out is not None:
        if not _is_number(max_out) or max_out < 1:
            raise RequestError(
                "'max_output_tokens' must be a positive integer", param="max_output_tokens"
            )
        limit = _int(_obj(model_info).get("max_output_tokens"))
        max_out = int(max_out)
        if limit > 0:
            max_out = min(max_out, limit)
        chat["max_tokens"] = max_out

    if effort:
        chat["reasoning_effort"] = effort

    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is None:
            continue
        if not _is_number(value):
            raise RequestError(f"'{key}' must be a number", param=key)
        if not is_reasoning:
            chat[key] = value

    fmt = _response_format(body.get("text"))
    if fmt:
        chat["response_format"] = fmt
    if isinstance(body.get("user"), str):
        chat["user"] = body["user"]

    chat["stream"] = True
    chat["stream_options"] = {"include_usage": True}
    return chat, ctx


# --------------------------------------------------------------------------------------
# answer: shared pieces
# --------------------------------------------------------------------------------------


def _usage(usage: Any) -> dict[str, Any]:
    u = usage if isinstance(usage, dict) else {}
    prompt = _int(u.get("prompt_tokens", u.get("input_tokens")))
    completion = _int(u.get("completion_tokens", u.get("output_tokens")))
    total = _int(u.get("total_tokens")) or prompt + completion
    pdet = u.get("prompt_tokens_details")
    pdet = pdet if isinstance(pdet, dict) else {}
    cdet = u.get("completion_tokens_details")
    cdet = cdet if isinstance(cdet, dict) else {}
    cached = _int(pdet.get("cached_tokens")) or _int(u.get("cache_read_input_tokens"))
    written = _int(pdet.get("cache_write_tokens")) or _int(u.get("cache_creation_input_tokens"))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": _int(cdet.get("reasoning_tokens"))},
        "total_tokens": total,
    }


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
        "temperature": ctx.temperature if _is_number(ctx.temperature) else 1.0,
        "text": text,
        "tool_choice": ctx.tool_choice,
        "tools": ctx.tools,
        "top_logprobs": ctx.top_logprobs if _is_number(ctx.top_logprobs) else 0,
        "top_p": ctx.top_p if _is_number(ctx.top_p) else 1.0,
        "truncation": ctx.truncation if isinstance(ctx.truncation, str) else "disabled",
        "usage": usage,
        "user": ctx.user,
        "metadata": ctx.metadata if isinstance(ctx.metadata, dict) else {},
    }
    if status == "completed":
        resp["completed_at"] = int(time.time())
    return resp


def _custom_input(arguments: str) -> str:
    """The free-form text of a custom tool call, from the function arguments the model wrote."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return arguments
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if isinstance(value.get("input"), str):
            return str(value["input"])
        if len(value) == 1:
            only = next(iter(value.values()))
            if isinstance(only, str):
                return only
    return arguments


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [_text_part(text)],
    }


def _call_item(
    ctx: ResponsesContext, item_id: str, call_id: str, flat: str, arguments: str, status: str
) -> dict[str, Any]:
    ns, name = ctx.tool_names.get(flat, (None, flat))
    if flat in ctx.custom_tools:
        item: dict[str, Any] = {
            "id": item_id,
            "type": "custom_tool_call",
            "call_id": call_id,
            "name": name,
            "input": _custom_input(arguments),
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


def _status(code: Any) -> int:
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
        return code
    return 502


def _error_code(status: int, message: str) -> str:
    low = message.lower()
    if any(
        s in low
        for s in (
            "context length",
            "context_length",
            "context window",
            "maximum context",
            "prompt is too long",
            "too many tokens",
            "input is too long",
        )
    ):
        return "context_length_exceeded"
    if status == 429:
        return "rate_limit_exceeded"
    if status in (400, 413, 422):
        return "invalid_prompt"
    return "server_error"


# --------------------------------------------------------------------------------------
# answer: non-streamed
# --------------------------------------------------------------------------------------


def chat_to_response(completion: dict[str, Any], ctx: ResponsesContext) -> dict[str, Any]:
    """An assembled `chat.completion` -> one `response` object."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choice: dict[str, Any] = {}
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
    message: dict[str, Any] = choice.get("message") or {}
    if not isinstance(message, dict):
        message = {}
    output: list[dict[str, Any]] = []

    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if not isinstance(reasoning, str):
        reasoning = message.get("thinking") if isinstance(message.get("thinking"), str) else None
    if reasoning:
        output.append(_reasoning_item(_new_id("rs_oca"), reasoning))

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
        output.append(_message_item(_new_id("msg_oca"), content, "completed"))

    for n, call in enumerate(message.get("tool_calls") or ()):
        if not isinstance(call, dict):
            continue
        fn = _obj(call.get("function"))
        name = fn.get("name") if isinstance(fn.get("name"), str) else ""
        if not name:
            continue
        args = fn.get("arguments")
        args = args if isinstance(args, str) else (_dumps(args) if args is not None else "")
        call_id = (
            call.get("id") if isinstance(call.get("id"), str) and call.get("id") else f"call_{n}"
        )
        prefix = "ctc_oca" if name in ctx.custom_tools else "fc_oca"
        output.append(_call_item(ctx, _new_id(prefix), str(call_id), name, args, "completed"))

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


# --------------------------------------------------------------------------------------
# answer: streamed
# --------------------------------------------------------------------------------------


class _TextItem:
    __slots__ = ("item_id", "kind", "output_index", "parts")

    def __init__(self, kind: str, item_id: str, output_index: int) -> None:
        self.kind = kind
        self.item_id = item_id
        self.output_index = output_index
        self.parts: list[str] = []


class _Call:
    __slots__ = (
        "args",
        "call_id",
        "custom",
        "emitted",
        "flat",
        "id",
        "item_id",
        "name",
        "output_index",
    )

    def __init__(self) -> None:
        self.id: str | None = None
        self.name = ""
        self.args: list[str] = []
        self.emitted = False
        self.item_id = ""
        self.call_id = ""
        self.flat = ""
        self.custom = False
        self.output_index = -1


def _json_complete(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class ResponsesStream:
    """Upstream chat chunks -> Responses SSE events.

    One output item is open at a time. Reasoning and text stream live. Once a tool call has
    started, one call streams live; fragments of other calls are buffered and each buffered
    call is emitted whole when its turn comes (the live call is closed when another call's
    fragment arrives and its own arguments already form complete JSON, or at the end). Text
    or reasoning that arrives after tool calls started is emitted as new items after them, at
    the end. So every item's arguments are complete and correct whatever the interleaving.
    Custom (freeform) tool input is emitted in one piece when its call closes, because the
    model writes it JSON-encoded.
    """

    def __init__(self, ctx: ResponsesContext) -> None:
        self.ctx = ctx
        self.response: dict[str, Any] | None = None
        self._seq = 0
        self._started = False
        self._done = False
        self._saw_chunk = False
        self._next_index = 0
        self._items: list[dict[str, Any]] = []
        self._open: _TextItem | None = None
        self._calls: list[_Call] = []
        self._by_index: dict[Any, _Call] = {}
        self._live: _Call | None = None
        self._tool_phase = False
        self._late: list[tuple[str, list[str]]] = []
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None

    # -- framing ------------------------------------------------------------------------

    def _emit(self, out: list[bytes], etype: str, payload: dict[str, Any]) -> None:
        obj: dict[str, Any] = {"type": etype, "sequence_number": self._seq}
        obj.update(payload)
        self._seq += 1
        out.append(sse.encode(obj, event=etype))

    def _start(self, out: list[bytes]) -> None:
        self._started = True
        snapshot = response_object(self.ctx, status="in_progress", output=[])
        self._emit(out, "response.created", {"response": snapshot})
        self._emit(out, "response.in_progress", {"response": snapshot})

    # -- text / reasoning items -----------------------------------------------------------

    def _open_text(self, kind: str, out: list[bytes]) -> _TextItem:
        index = self._next_index
        self._next_index += 1
        if kind == "reasoning":
            item = _TextItem(kind, _new_id("rs_oca"), index)
            self._emit(
                out,
                "response.output_item.added",
                {
                    "output_index": index,
                    "item": {"id": item.item_id, "type": "reasoning", "summary": []},
                },
            )
            self._emit(
                out,
                "response.reasoning_summary_part.added",
                {
                    "item_id": item.item_id,
                    "output_index": index,
                    "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""},
                },
            )
        else:
            item = _TextItem(kind, _new_id("msg_oca"), index)
            self._emit(
                out,
                "response.output_item.added",
                {
                    "output_index": index,
                    "item": {
                        "id": item.item_id,
                        "type": "message",
                        "status": "in_progress",
                        "role": "assistant",
                        "content": [],
                    },
                },
            )
            self._emit(
                out,
                "response.content_part.added",
                {
                    "item_id": item.item_id,
                    "output_index": index,
                    "content_index": 0,
                    "part": _text_part(""),
                },
            )
        self._open = item
        return item

    def _text_delta(self, item: _TextItem, text: str, out: list[bytes]) -> None:
        item.parts.append(text)
        if item.kind == "reasoning":
            self._emit(
                out,
                "response.reasoning_summary_text.delta",
                {
                    "item_id": item.item_id,
                    "output_index": item.output_index,
                    "summary_index": 0,
                    "delta": text,
                },
            )
        else:
            # The most frequent event: the same bytes as _emit() gives, from a template.
            out.append(
                b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
                b'"sequence_number":%d,"item_id":%b,"output_index":%d,"content_index":0,'
                b'"delta":%b,"logprobs":[]}\n\n'
                % (self._seq, jsonio.dumps(item.item_id), item.output_index, jsonio.dumps(text))
            )
            self._seq += 1

    def _close_text(self, out: list[bytes], status: str = "completed") -> None:
        item, self._open = self._open, None
        if item is None:
            return
        text = "".join(item.parts)
        ids = {"item_id": item.item_id, "output_index": item.output_index}
        if item.kind == "reasoning":
            self._emit(
                out,
                "response.reasoning_summary_text.done",
                {**ids, "summary_index": 0, "text": text},
            )
            self._emit(
                out,
                "response.reasoning_summary_part.done",
                {**ids, "summary_index": 0, "part": {"type": "summary_text", "text": text}},
            )
            final = _reasoning_item(item.item_id, text)
        else:
            self._emit(
                out,
                "response.output_text.done",
                {**ids, "content_index": 0, "text": text, "logprobs": []},
            )
            self._emit(
                out,
                "response.content_part.done",
                {**ids, "content_index": 0, "part": _text_part(text)},
            )
            final = _message_item(item.item_id, text, status)
        self._items.append(final)
        self._emit(
            out, "response.output_item.done", {"output_index": item.output_index, "item": final}
        )

    def _on_text(self, kind: str, text: str, out: list[bytes]) -> None:
        if self._tool_phase:
            if self._late and self._late[-1][0] == kind:
                self._late[-1][1].append(text)
            else:
                self._late.append((kind, [text]))
            return
        item = self._open
        if item is None or item.kind != kind:
            if item is not None:
                self._close_text(out)
            item = self._open_text(kind, out)
        self._text_delta(item, text, out)

    # -- tool calls -----------------------------------------------------------------------

    def _start_call(self, call: _Call, out: list[bytes]) -> None:
        call.emitted = True
        call.output_index = self._next_index
        self._next_index += 1
        call.flat = call.name
        call.custom = call.name in self.ctx.custom_tools
        call.call_id = call.id or _new_id("call")
        call.item_id = _new_id("ctc_oca" if call.custom else "fc_oca")
        ns, name = self.ctx.tool_names.get(call.flat, (None, call.flat))
        if call.custom:
            item: dict[str, Any] = {
                "id": call.item_id,
                "type": "custom_tool_call",
                "call_id": call.call_id,
                "name": name,
                "input": "",
            }
        else:
            item = {
                "id": call.item_id,
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": call.call_id,
                "name": name,
            }
        if ns:
            item["namespace"] = ns
        self._emit(
            out, "response.output_item.added", {"output_index": call.output_index, "item": item}
        )
        if not call.custom and call.args:
            self._args_delta(call, "".join(call.args), out)

    def _args_delta(self, call: _Call, delta: str, out: list[bytes]) -> None:
        self._emit(
            out,
            "response.function_call_arguments.delta",
            {"item_id": call.item_id, "output_index": call.output_index, "delta": delta},
        )

    def _close_call(self, call: _Call, out: list[bytes], status: str = "completed") -> None:
        if self._live is call:
            self._live = None
        args = "".join(call.args)
        ids = {"item_id": call.item_id, "output_index": call.output_index}
        if call.custom:
            text = _custom_input(args)
            if text:
                self._emit(out, "response.custom_tool_call_input.delta", {**ids, "delta": text})
            self._emit(out, "response.custom_tool_call_input.done", {**ids, "input": text})
        else:
            if not args:
                args = "{}"
                self._args_delta(call, args, out)
            self._emit(out, "response.function_call_arguments.done", {**ids, "arguments": args})
        final = _call_item(self.ctx, call.item_id, call.call_id, call.flat, args, status)
        self._items.append(final)
        self._emit(
            out, "response.output_item.done", {"output_index": call.output_index, "item": final}
        )

    def _next_waiting(self) -> _Call | None:
        for call in self._calls:
            if not call.emitted and call.name:
                return call
        return None

    def _on_tool_fragment(self, tc: Any, out: list[bytes]) -> None:
        if not isinstance(tc, dict):
            return
        tid = tc.get("id") if isinstance(tc.get("id"), str) and tc.get("id") else None
        key: Any = tc.get("index")
        if not isinstance(key, int) or isinstance(key, bool):
            # no usable index: find the call by id, else continue the latest call
            key = ("id", tid) if tid else ("last",)
            if not tid and self._calls:
                key = next(k for k, c in self._by_index.items() if c is self._calls[-1])
        call = self._by_index.get(key)
        if call is None or (tid is not None and call.id is not None and tid != call.id):
            call = _Call()
            self._calls.append(call)
            self._by_index[key] = call
        if tid is not None and call.id is None and not call.emitted:
            call.id = tid
        fn = tc.get("function")
        delta = ""
        if isinstance(fn, dict):
            if isinstance(fn.get("name"), str) and not call.emitted:
                call.name += fn["name"]
            if isinstance(fn.get("arguments"), str):
                delta = fn["arguments"]
        if call.emitted and self._live is not call:
            return  # a fragment for a call already closed: nothing correct can be done
        if delta:
            call.args.append(delta)
        if not self._tool_phase:
            self._tool_phase = True
            self._close_text(out)
        live = self._live
        if live is call:
            if delta and not call.custom:
                self._args_delta(call, delta, out)
            return
        if live is not None:
            if call.name and _json_complete("".join(live.args)):
                self._close_call(live, out)
                live = None
            else:
                return
        waiting = self._next_waiting()
        if waiting is not None:
            self._live = waiting
            self._start_call(waiting, out)

    # -- public API -----------------------------------------------------------------------

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = []
        if not self._started:
            self._start(out)
        if not isinstance(chunk, dict):
            return b"".join(out)
        if "error" in chunk and not chunk.get("choices"):
            err = chunk["error"]
            message = err.get("message") if isinstance(err, dict) else err
            status = _status(err.get("code") if isinstance(err, dict) else None)
            return b"".join(out) + self.fail(status, str(message or "OCA reported an error"))
        self._saw_chunk = True
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = usage
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return b"".join(out)
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if not isinstance(reasoning, str):
                    thinking = delta.get("thinking")
                    reasoning = thinking if isinstance(thinking, str) else None
                if reasoning:
                    self._on_text("reasoning", reasoning, out)
                content = delta.get("content")
                if isinstance(content, str) and content:
                    self._on_text("message", content, out)
                refusal = delta.get("refusal")
                if isinstance(refusal, str) and refusal:
                    self._on_text("message", refusal, out)
                calls = delta.get("tool_calls")
                if isinstance(calls, list):
                    for tc in calls:
                        self._on_tool_fragment(tc, out)
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self._finish_reason = reason
        return b"".join(out)

    def finish(self) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = []
        if not self._started:
            self._start(out)
        if not self._saw_chunk:
            return b"".join(out) + self.fail(502, "OCA ended the stream without sending an answer")
        reason = _INCOMPLETE_REASONS.get(self._finish_reason or "")
        steps: list[tuple[str, Any]] = []
        if self._open is not None:
            steps.append(("text", None))
        if self._live is not None:
            steps.append(("call", self._live))
        steps.extend(("call", c) for c in self._calls if not c.emitted and c.name)
        steps.extend(("late", seg) for seg in self._late)
        last = len(steps) - 1
        for n, (kind, obj) in enumerate(steps):
            status = "incomplete" if reason and n == last else "completed"
            if kind == "text":
                self._close_text(out, status)
            elif kind == "call":
                if not obj.emitted:
                    self._start_call(obj, out)
                self._close_call(obj, out, status)
            else:
                seg_kind, parts = obj
                item = self._open_text(seg_kind, out)
                self._text_delta(item, "".join(parts), out)
                self._close_text(out, status)
        self._done = True
        resp = response_object(
            self.ctx,
            status="incomplete" if reason else "completed",
            output=list(self._items),
            usage=_usage(self._usage),
            incomplete_reason=reason,
        )
        self.response = resp
        self._emit(
            out, "response.incomplete" if reason else "response.completed", {"response": resp}
        )
        self.ctx.remember(resp)
        return b"".join(out)

    def fail(self, status: int, message: str, code: str | None = None) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = []
        if not self._started:
            self._start(out)
        self._close_text(out, "incomplete")
        if self._live is not None:
            self._close_call(self._live, out, "incomplete")
        self._done = True
        message = message or "OCA request failed"
        error = {"code": code or _error_code(status, message), "message": message}
        resp = response_object(
            self.ctx,
            status="failed",
            output=list(self._items),
            usage=_usage(self._usage) if self._usage else None,
            error=error,
        )
        self.response = resp
        self._emit(out, "response.failed", {"response": resp})
        return b"".join(out)


# --------------------------------------------------------------------------------------
# models that serve /responses natively
# --------------------------------------------------------------------------------------


def _strip_minted(items: list[Any]) -> list[Any]:
    """Drop reasoning items the proxy minted; drop proxy-minted ids from other items."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            item_id = item.get("id")
            if isinstance(item_id, str) and item_id.startswith(_MINTED_ID_PREFIXES):
                if item.get("type") == "reasoning" or item_id.startswith(MINTED_REASONING_PREFIX):
                    continue
                item = {k: v for k, v in item.items() if k != "id"}
        out.append(item)
    return out


def prepare_native_responses(
    body: dict[str, Any],
    *,
    target_model: str,
    model_info: dict[str, Any] | None = None,
    reasoning_effort: str | None = None,
    history: ResponseHistory | None = None,
) -> tuple[dict[str, Any], ResponsesContext]:
    """The request for a model that serves /responses itself (always streamed)."""
    _check_body(body)
    raw = body.get("input")
    if raw is not None and not isinstance(raw, (str, list)):
        raise RequestError("'input' must be a string or an array of input items", param="input")
    prev = body.get("previous_response_id")
    if prev is not None and not isinstance(prev, str):
        raise RequestError("'previous_response_id' must be a string", param="previous_response_id")
    out = dict(body)
    out["model"] = target_model
    out["stream"] = True

    if isinstance(raw, str):
        items: list[Any] = [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}
        ]
    else:
        items = list(raw) if isinstance(raw, list) else []
    if prev and history is not None and prev in history:
        items = history.expand(prev) + items
        out.pop("previous_response_id", None)
        out["input"] = _strip_minted(items)
    elif isinstance(raw, list):
        out["input"] = _strip_minted(items)

    client_reasoning = body.get("reasoning")
    has_effort = isinstance(client_reasoning, dict) and bool(client_reasoning.get("effort"))
    asked = client_reasoning.get("effort") if has_effort else reasoning_effort  # type: ignore[union-attr]
    effort = fit_effort(asked, model_info)  # never a value the model does not list
    if has_effort or effort:
        base = dict(client_reasoning) if isinstance(client_reasoning, dict) else {}
        base.pop("effort", None)
        if effort:
            base["effort"] = effort
        if base:
            out["reasoning"] = base
        else:
            out.pop("reasoning", None)

    ctx = _context_from_body(body, None if has_effort else effort, history)
    ctx.input_items = items
    for i, tool in enumerate(ctx.tools):
        if (
            isinstance(tool, dict)
            and tool.get("type") == "custom"
            and isinstance(tool.get("name"), str)
        ):
            ctx.custom_tools.add(tool["name"])
        elif not isinstance(tool, dict):
            raise RequestError(f"tools[{i}] must be an object", param=f"tools[{i}]")
    return out, ctx


class NativeResponsesAssembler:
    """A native upstream Responses SSE stream -> one `response` object.

    The final object is the one from `response.completed` / `.incomplete` / `.failed`; when
    its `output` is empty, the items from `response.output_item.done` are used (in
    `output_index` order). A stream that ends without a terminal event gives a `failed`
    response holding what arrived (unfinished items marked `incomplete`).
    With a `ctx`, `model` is rewritten to the client's model name and the answer is
    remembered for `previous_response_id`.
    """

    _LIFECYCLE = ("response.created", "response.in_progress", "response.queued")
    _TERMINAL = ("response.completed", "response.incomplete", "response.failed")

    def __init__(self, ctx: ResponsesContext | None = None) -> None:
        self.ctx = ctx
        self._snapshot: dict[str, Any] | None = None
        self._final: dict[str, Any] | None = None
        self._done: dict[int, dict[str, Any]] = {}
        self._added: dict[int, dict[str, Any]] = {}
        self._deltas: dict[int, list[str]] = {}
        self._error: dict[str, Any] | None = None

    def feed(self, event: sse.SSEEvent) -> None:
        data = event.data
        if not data or data == "[DONE]":
            return
        try:
            obj = json.loads(data)
        except ValueError:
            return
        if isinstance(obj, dict):
            self.feed_object(obj, event.event)

    def feed_object(self, obj: dict[str, Any], event_name: str | None = None) -> None:
        """One parsed event (`event_name`: its SSE `event:` field, used when it has no type)."""
        etype = obj.get("type") if isinstance(obj.get("type"), str) else event_name
        resp = obj.get("response")
        index = obj.get("output_index")
        if etype in self._LIFECYCLE and isinstance(resp, dict):
            self._snapshot = resp
        elif etype in self._TERMINAL and isinstance(resp, dict):
            self._final = resp
        elif etype == "response.output_item.added" and isinstance(index, int):
            if isinstance(obj.get("item"), dict):
                self._added[index] = dict(obj["item"])
        elif etype == "response.output_item.done" and isinstance(index, int):
            if isinstance(obj.get("item"), dict):
                self._done[index] = obj["item"]
        elif etype in (
            "response.output_text.delta",
            "response.function_call_arguments.delta",
            "response.custom_tool_call_input.delta",
        ) and isinstance(index, int):
            if isinstance(obj.get("delta"), str):
                self._deltas.setdefault(index, []).append(obj["delta"])
        elif etype == "error" or (etype is None and "error" in obj):
            err = _obj(obj.get("error")) or obj
            message = (
                err.get("message") if isinstance(err.get("message"), str) else "upstream error"
            )
            code = err.get("code") if isinstance(err.get("code"), str) else "server_error"
            self._error = {"code": code, "message": message}

    def _items(self, partial: bool) -> list[dict[str, Any]]:
        items = dict(self._done)
        if partial:
            for index, item in self._added.items():
                if index in items:
                    continue
                text = "".join(self._deltas.get(index, ()))
                item = dict(item)
                kind = item.get("type")
                if kind == "message":
                    item["content"] = [_text_part(text)]
                    item["status"] = "incomplete"
                elif kind == "function_call":
                    item["arguments"] = text
                    item["status"] = "incomplete"
                elif kind == "custom_tool_call":
                    item["input"] = text
                items[index] = item
        return [items[i] for i in sorted(items)]

    def result(self) -> dict[str, Any]:
        if self._final is not None:
            resp = dict(self._final)
            if not resp.get("output"):
                resp["output"] = self._items(partial=False)
        else:
            error = self._error or {
                "code": "server_error",
                "message": "The upstream stream ended before the response was complete.",
            }
            if self._snapshot is not None:
                resp = dict(self._snapshot)
                resp.update(status="failed", error=error, output=self._items(partial=True))
            elif self.ctx is not None:
                resp = response_object(
                    self.ctx, status="failed", output=self._items(True), error=error
                )
            else:
                resp = {
                    "id": _new_id("resp"),
                    "object": "response",
                    "created_at": int(time.time()),
                    "status": "failed",
                    "error": error,
                    "incomplete_details": None,
                    "instructions": None,
                    "metadata": {},
                    "model": "",
                    "output": self._items(partial=True),
                    "parallel_tool_calls": True,
                    "temperature": None,
                    "tool_choice": "auto",
                    "tools": [],
                    "top_p": None,
                    "usage": None,
                }
        if self.ctx is not None:
            _as_asked(resp, self.ctx)
            self.ctx.remember(resp)
        return resp


def _as_asked(resp: dict[str, Any], ctx: ResponsesContext) -> dict[str, Any]:
    """A native answer as the client expects it: its model name, its previous_response_id
    (the proxy expanded that itself, so OCA never saw it)."""
    resp["model"] = ctx.requested_model
    if ctx.previous_response_id and not resp.get("previous_response_id"):
        resp["previous_response_id"] = ctx.previous_response_id
    return resp


class NativeResponsesStream:
    """The stream translator (see docs/ARCHITECTURE.md) for a model that serves /responses
    natively: OCA's Responses events go on to the client one by one, re-encoded with
    `event:` = `type`, with these repairs:

    - `response.model` is the model name the client asked for;
    - a terminal event whose `output` is empty (real OCA sends `"output": []`) gets the items
      from the `response.output_item.done` events, so SDK helpers such as
      `responses.stream(...).get_final_response()` see the whole answer;
    - the finished answer is remembered for `previous_response_id`;
    - an upstream failure ends the stream with an `error` event, and a stream that ends
      without a terminal event gets a `response.failed` holding what arrived.
    """

    _TERMINAL = NativeResponsesAssembler._TERMINAL

    def __init__(self, ctx: ResponsesContext) -> None:
        self.ctx = ctx
        self.response: dict[str, Any] | None = None
        self._assembler = NativeResponsesAssembler(ctx)
        self._seq = -1
        self._done = False

    def _encode(self, obj: dict[str, Any]) -> bytes:
        seq = obj.get("sequence_number")
        if isinstance(seq, int) and not isinstance(seq, bool):
            self._seq = max(self._seq, seq)
        else:
            self._seq += 1
        etype = obj.get("type")
        return sse.encode(obj, event=etype if isinstance(etype, str) else None)

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if self._done or not isinstance(chunk, dict):
            return b""
        self._assembler.feed_object(chunk)
        etype = chunk.get("type")
        resp = chunk.get("response")
        if isinstance(resp, dict):
            resp = _as_asked(dict(resp), self.ctx)
            if etype in self._TERMINAL:
                if not resp.get("output"):
                    resp["output"] = self._assembler._items(partial=etype == "response.failed")
                self._done = True
                self.response = resp
                self.ctx.remember(resp)
            chunk = {**chunk, "response": resp}
        elif etype == "error":
            self._done = True
        return self._encode(chunk)

    def finish(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        resp = self._assembler.result()
        self.response = resp
        if not isinstance(resp.get("error"), dict):
            return b""
        return self._encode(
            {"type": "response.failed", "sequence_number": self._seq + 1, "response": resp}
        )

    def fail(self, status: int, message: str) -> bytes:
        if self._done:
            return b""
        self._done = True
        message = message or "OCA request failed"
        return self._encode(
            {
                "type": "error",
                "sequence_number": self._seq + 1,
                "code": _error_code(status, message),
                "message": message,
                "param": None,
            }
        )
