"""OpenAI Responses request -> OCA /chat/completions request (`responses_to_chat`): tools
(flat, namespaced, custom), tool choice, limits, reasoning, text format.
"""

from __future__ import annotations

from typing import Any

from oca_addon.core.errors import RequestError
from oca_addon.core.modelinfo import fit_effort
from oca_addon.translate.memo import ConversationMemo, RawBody
from oca_addon.translate.responses import quick
from oca_addon.translate.responses.common import as_int, as_object, flat_tool_name, is_number
from oca_addon.translate.responses.context import (
    ResponsesContext,
    _check_body,
    _context_from_body,
    _input_items,
)
from oca_addon.translate.responses.history import ResponseHistory
from oca_addon.translate.responses.items import items_to_messages, text_of
from oca_addon.translate.shapes import ChatRequest


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
                texts.append(text_of(item.get("content"), f"instructions[{i}]"))
        return "\n\n".join(t for t in texts if t)
    raise RequestError("'instructions' must be a string", param="instructions")


def _request_identity(body: dict[str, Any], chat: ChatRequest) -> None:
    """`prompt_cache_key`, `safety_identifier` and `metadata`: chat has the same fields, so
    they go on as sent (chat's `metadata` is OCA's gateway's own: LiteLLM keeps it with the
    call). The types are checked as the Responses API checks them."""
    for key in ("prompt_cache_key", "safety_identifier"):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise RequestError(f"Invalid type for '{key}': expected a string", param=key)
        if value:
            chat[key] = value
    metadata = body.get("metadata")
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise RequestError("Invalid type for 'metadata': expected an object", param="metadata")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise RequestError(
                f"Invalid type for 'metadata.{key}': expected a string", param=f"metadata.{key}"
            )
    if metadata:
        chat["metadata"] = dict(metadata)


def responses_to_chat(
    body: dict[str, Any],
    *,
    target_model: str,
    model_info: dict[str, Any] | None = None,
    reasoning_effort: str | None = None,
    history: ResponseHistory | None = None,
    memo: ConversationMemo | None = None,
    raw: bytes | None = None,
    quick_items: list[Any] | None = None,
) -> tuple[ChatRequest, ResponsesContext]:
    """A Responses request -> (OCA /chat/completions request, context for the answer).

    `memo`: the conversations translated lately; the items this request shares with one are
    taken from it, and this request's are kept for the next turn. `raw`: the bytes `body`
    was parsed from, which the memo compares when it can (translate/layout.py).

    `quick_items`: the input items as quick.decode() read them (`body` then holds the other
    fields): converted by quick.items_to_messages(), which raises NotQuick for what it leaves
    to the full translation."""
    _check_body(body)
    items = _input_items(body, history) if quick_items is None else quick_items
    is_reasoning = isinstance(model_info, dict) and model_info.get("is_reasoning_model") is True

    client_effort = body.get("reasoning", {}).get("effort") if isinstance(body.get("reasoning"), dict) else None  # fmt: skip
    effort = _effort(client_effort, reasoning_effort, model_info)
    ctx = _context_from_body(body, effort if not client_effort else None, history)
    if ctx.store is not False:  # kept for previous_response_id (history): not stored, not kept
        ctx.input_items = items

    instructions = _instructions_text(body.get("instructions"))
    # The bytes tell only about the client's own list (not one a previous_response_id extends).
    own_list = isinstance(body.get("input"), list) and not body.get("previous_response_id")
    if quick_items is not None:
        # Compared by value (msgspec structs, their texts as bytes: in C), kept whole (the
        # structs hold views of this request's bytes, never of an older one's).
        memo_key, source = _QUICK_MEMO_KEY, None
        previous, same = memo.match(items, memo_key) if memo is not None else (None, 0)
        messages, item_system, converted = quick.items_to_messages(
            items, (previous.state, same) if previous is not None else None
        )
    else:
        memo_key = _MEMO_KEY
        source = (
            RawBody(raw, body, "input")
            if memo is not None and raw is not None and own_list
            else None
        )
        previous, same = memo.match(items, memo_key, source) if memo is not None else (None, 0)
        messages, item_system, converted = items_to_messages(
            items, (previous.state, same) if previous is not None else None
        )
    system = [instructions, *item_system] if instructions else item_system
    if not messages:
        raise RequestError(
            "'input' must contain at least one message or tool output", param="input"
        )
    if system:
        messages.insert(0, {"role": "system", "content": "\n\n".join(system)})

    chat: ChatRequest = {"model": target_model, "messages": messages}

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
        if not is_number(max_out) or max_out < 1:
            raise RequestError(
                "'max_output_tokens' must be a positive integer", param="max_output_tokens"
            )
        limit = as_int(as_object(model_info).get("max_output_tokens"))
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
        if not is_number(value):
            raise RequestError(f"'{key}' must be a number", param=key)
        if not is_reasoning:
            chat[key] = value

    fmt = _response_format(body.get("text"))
    if fmt:
        chat["response_format"] = fmt
    if isinstance(body.get("user"), str):
        chat["user"] = body["user"]
    _request_identity(body, chat)

    chat["stream"] = True
    chat["stream_options"] = {"include_usage": True}
    if memo is not None:
        share = quick_items is None  # parsed dicts: the earlier turn's, equal, are kept
        memo.remember(items, memo_key, converted, previous, same, source, share=share)
    return chat, ctx


_MEMO_KEY = "responses"  # nothing about the model shapes the items' chat messages
_QUICK_MEMO_KEY = "responses, quick"  # the same, from quick.decode()'s items
