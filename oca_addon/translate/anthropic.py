"""Anthropic Messages API <-> OpenAI Chat Completions.

Requests: a `/v1/messages` body becomes an OCA `/chat/completions` body (`anthropic_to_chat`).
Answers: upstream `chat.completion.chunk`s become the Messages SSE grammar the Anthropic SDK
and Claude Code enforce (`AnthropicStream`), or one `Message` (`chat_to_anthropic`).
Models that speak Messages natively get the body nearly untouched
(`prepare_native_messages`), and their streamed answer can be assembled into one `Message`
for clients that did not ask for a stream (`NativeMessagesAssembler`).

Pure Python over dicts and bytes: no mitmproxy here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from .. import jsonio, sse
from ..errors import ApiError, RequestError, anthropic_error
from ..modelinfo import caches_prompts, fit_effort, takes_thinking
from . import caching
from .count_tokens import count_tokens

__all__ = [
    "AnthropicContext",
    "AnthropicStream",
    "NativeMessagesAssembler",
    "NativeMessagesStream",
    "anthropic_to_chat",
    "chat_to_anthropic",
    "client_error_message",
    "prepare_native_messages",
    "upstream_tool_name",
]

BILLING_PREFIX = "x-anthropic-billing-header:"
MAX_STOP_SEQUENCES = 4  # OpenAI's limit; LiteLLM passes `stop` on to OpenAI models as is
_TOOL_NAME_OK = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_TOOL_NAME_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_TOOL_ID_OK = re.compile(r"[a-zA-Z0-9_-]{1,40}")  # OpenAI rejects tool_call ids over 40 chars
_CLIENT_EFFORT = {"low": "low", "medium": "medium", "high": "high", "max": "high"}
_STOP_REASONS = {
    "stop": "end_turn",
    "end_turn": "end_turn",
    "length": "max_tokens",
    "max_tokens": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "tool_use": "tool_use",
    "content_filter": "refusal",
    "refusal": "refusal",
    "stop_sequence": "stop_sequence",
}
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


@dataclass
class AnthropicContext:
    """What the answer translation needs to know about its request."""

    requested_model: str
    tool_names: dict[str, str] = field(default_factory=dict)  # upstream name -> client's name
    input_tokens_estimate: int = 1
    target_model: str = ""
    stream: bool = False  # whether the client asked for a streamed answer
    reasoning_effort: str | None = None  # what was sent upstream

    def original_tool_name(self, name: str) -> str:
        return self.tool_names.get(name, name)


# --------------------------------------------------------------------------- helpers


def upstream_tool_name(name: str) -> str:
    """`name` as OpenAI accepts it (`[a-zA-Z0-9_-]{1,64}`): unchanged when valid, otherwise
    shortened deterministically to a cleaned prefix plus a hash of the full name."""
    if _TOOL_NAME_OK.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{_TOOL_NAME_BAD_CHARS.sub('_', name)[:53]}_{digest}"


def _upstream_tool_id(tool_id: str) -> str:
    # Applied to tool_use ids and tool_result references alike, so they still pair up; ids
    # in answers come from upstream and need no mapping back.
    if _TOOL_ID_OK.fullmatch(tool_id):
        return tool_id
    return "toolu_" + hashlib.sha256(tool_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _strip_billing(text: str) -> str:
    if BILLING_PREFIX not in text:
        return text
    lines = [ln for ln in text.split("\n") if not ln.lstrip().startswith(BILLING_PREFIX)]
    return "\n".join(lines).strip("\n")


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
        return max(int(value), 0)
    return 0


def _new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def _new_tool_id() -> str:
    return "toolu_" + uuid.uuid4().hex[:24]


def _signature(digest: bytes) -> str:
    return base64.b64encode(b"oca-reasoning:" + digest).decode()


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _require_str(value: Any, path: str, *, empty_ok: bool = True) -> str:
    if not isinstance(value, str):
        raise RequestError(f"{path}: expected a string, got {_type_name(value)}", param=path)
    if not empty_ok and not value:
        raise RequestError(f"{path}: must not be empty", param=path)
    return value


# --------------------------------------------------------------------------- request


def anthropic_to_chat(
    body: dict[str, Any],
    *,
    target_model: str,
    model_info: dict[str, Any] | None = None,
    reasoning_effort: str | None = None,
) -> tuple[dict[str, Any], AnthropicContext]:
    """A Messages request body -> (OCA chat/completions body, context for the answer)."""
    if not isinstance(body, dict):
        raise RequestError(f"request body must be a JSON object, got {_type_name(body)}")
    model = body.get("model")
    if model is None:
        raise RequestError("model: field required", param="model")
    if not isinstance(model, str) or not model.strip():
        raise RequestError("model: must be a non-empty string", param="model")
    messages = body.get("messages")
    if messages is None:
        raise RequestError("messages: field required", param="messages")
    if not isinstance(messages, list):
        raise RequestError(
            f"messages: expected an array, got {_type_name(messages)}", param="messages"
        )
    if not messages:
        raise RequestError("messages: at least one message is required", param="messages")
    info = model_info if isinstance(model_info, dict) else None

    builder = _RequestBuilder(info)
    system_parts = builder.system(body.get("system"))
    tools = builder.tools(body.get("tools"))
    chat_messages = builder.messages(messages, system_parts)
    caching.apply(chat_messages, enabled=caches_prompts(info))

    out: dict[str, Any] = {"model": target_model, "messages": chat_messages}

    max_tokens = body.get("max_tokens")
    limit = _int(info.get("max_output_tokens")) if info else 0
    if isinstance(max_tokens, float) and max_tokens.is_integer():
        max_tokens = int(max_tokens)  # 1024.0 from some JSON encoders
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise RequestError(
                f"max_tokens: expected a positive integer, got {json.dumps(max_tokens)}",
                param="max_tokens",
            )
        out["max_tokens"] = min(max_tokens, limit) if limit else max_tokens
    elif limit:
        out["max_tokens"] = limit

    is_reasoning = bool(info.get("is_reasoning_model")) if info else False
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RequestError(f"{name}: expected a number, got {_type_name(value)}", param=name)
        if not is_reasoning:
            out[name] = value

    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list):
            raise RequestError(
                f"stop_sequences: expected an array of strings, got {_type_name(stop)}",
                param="stop_sequences",
            )
        for i, s in enumerate(stop):
            _require_str(s, f"stop_sequences[{i}]")
        stops = [s for s in stop if s][:MAX_STOP_SEQUENCES]
        if stops:
            out["stop"] = stops

    if tools:
        out["tools"] = tools
        choice, parallel = _tool_choice(
            body.get("tool_choice"), {t["function"]["name"] for t in tools}
        )
        if choice is not None:
            out["tool_choice"] = choice
        if parallel is False:
            out["parallel_tool_calls"] = False

    thinking = _thinking_budget(body)
    cap = out.get("max_tokens")
    if thinking is not None and isinstance(cap, int) and thinking >= cap:
        thinking = cap - 1 if cap > _MIN_THINKING_BUDGET else None  # budget < max_tokens
    if thinking is not None and takes_thinking(info):
        # The model takes a budget (thinking_config): pass it on rather than an effort.
        out["thinking"] = {"type": "enabled", "budget_tokens": thinking}
    else:
        effort = fit_effort(_reasoning_effort(body, reasoning_effort), info)
        if effort:
            out["reasoning_effort"] = effort

    response_format = _response_format(body)
    if response_format is not None:
        out["response_format"] = response_format

    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        user_id = metadata.get("user_id")
        if isinstance(user_id, str) and user_id:
            out["user"] = (
                user_id
                if len(user_id) <= 64
                else "user_"
                + hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
            )

    out["stream"] = True
    out["stream_options"] = {"include_usage": True}

    ctx = AnthropicContext(
        requested_model=model,
        tool_names=builder.tool_names,
        input_tokens_estimate=count_tokens(body),
        target_model=target_model,
        stream=body.get("stream") is True,
        reasoning_effort=out.get("reasoning_effort"),
    )
    return out, ctx


def _tool_choice(choice: Any, names: set[str]) -> tuple[Any, bool | None]:
    """(chat tool_choice or None, False when parallel tool use is disabled)."""
    if choice is None:
        return None, None
    if isinstance(choice, str):  # lenient: the bare type
        choice = {"type": choice}
    if not isinstance(choice, dict):
        raise RequestError(
            f"tool_choice: expected an object, got {_type_name(choice)}", param="tool_choice"
        )
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") is True else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool":
        name = _require_str(choice.get("name"), "tool_choice.name", empty_ok=False)
        upstream = upstream_tool_name(name)
        if upstream not in names:  # e.g. a hosted tool that was dropped: let the model choose
            return "auto", parallel
        return {"type": "function", "function": {"name": upstream}}, parallel
    raise RequestError(
        f"tool_choice.type: expected one of 'auto', 'any', 'tool', 'none', got {json.dumps(kind)}",
        param="tool_choice.type",
    )


def _reasoning_effort(body: dict[str, Any], default: str | None) -> str | None:
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return None
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if isinstance(effort, str) and effort in _CLIENT_EFFORT:
        return _CLIENT_EFFORT[effort]
    if kind == "enabled" and isinstance(thinking, dict):
        budget = thinking.get("budget_tokens")
        if isinstance(budget, int) and not isinstance(budget, bool):
            if budget <= 4096:
                return "low"
            if budget <= 16384:
                return "medium"
            return "high"
        return "medium"
    if kind == "adaptive":
        return "medium"
    return default


_MIN_THINKING_BUDGET = 1024  # Anthropic's smallest budget


def _thinking_budget(body: dict[str, Any]) -> int | None:
    """The client's `thinking: {type: enabled, budget_tokens}` budget, if it set one."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        return None
    return budget


def _response_format(body: dict[str, Any]) -> dict[str, Any] | None:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt is None:
        fmt = body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        if isinstance(schema, dict):
            return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    return None


class _RequestBuilder:
    def __init__(self, info: dict[str, Any] | None) -> None:
        self.tool_names: dict[str, str] = {}
        self.vision = not (info and info.get("supports_vision") is False)
        self.pdf = not (info and info.get("supports_pdf_input") is False)
        self.system_cache: dict[str, Any] | None = None  # a client breakpoint on the system

    def name(self, name: str) -> str:
        upstream = upstream_tool_name(name)
        if upstream != name:
            self.tool_names[upstream] = name
        return upstream

    # ---- system

    def system(self, system: Any) -> list[str]:
        if system is None:
            return []
        if isinstance(system, str):
            return [system]
        if not isinstance(system, list):
            raise RequestError(
                f"system: expected a string or an array of text blocks, got {_type_name(system)}",
                param="system",
            )
        parts = []
        for i, block in enumerate(system):
            path = f"system[{i}]"
            if not isinstance(block, dict):
                raise RequestError(
                    f"{path}: expected a text block object, got {_type_name(block)}", param=path
                )
            if block.get("type") == "text":
                parts.append(_require_str(block.get("text"), f"{path}.text"))
            self.system_cache = caching.client_breakpoint(block) or self.system_cache
        return parts

    # ---- tools

    def tools(self, tools: Any) -> list[dict[str, Any]]:
        if tools is None:
            return []
        if not isinstance(tools, list):
            raise RequestError(f"tools: expected an array, got {_type_name(tools)}", param="tools")
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, tool in enumerate(tools):
            path = f"tools[{i}]"
            if not isinstance(tool, dict):
                raise RequestError(
                    f"{path}: expected an object, got {_type_name(tool)}", param=path
                )
            if tool.get("type") not in (None, "custom"):
                continue  # hosted tools (web_search_*, bash_*, text_editor_*, ...) run at Anthropic
            name = _require_str(tool.get("name"), f"{path}.name", empty_ok=False)
            upstream = self.name(name)
            if upstream in seen:
                continue
            seen.add(upstream)
            function: dict[str, Any] = {"name": upstream}
            description = tool.get("description")
            if description is not None:
                function["description"] = _require_str(description, f"{path}.description")
            schema = tool.get("input_schema")
            if schema is None:
                schema = {"type": "object", "properties": {}}
            elif not isinstance(schema, dict):
                raise RequestError(
                    f"{path}.input_schema: expected an object, got {_type_name(schema)}",
                    param=f"{path}.input_schema",
                )
            function["parameters"] = schema
            out.append({"type": "function", "function": function})
        return out

    # ---- messages

    def messages(self, messages: list[Any], system_parts: list[str]) -> list[dict[str, Any]]:
        # Anthropic merges consecutive same-role messages; so do we, before converting.
        turns: list[tuple[str, list[tuple[Any, str]]]] = []
        for i, message in enumerate(messages):
            path = f"messages[{i}]"
            if not isinstance(message, dict):
                raise RequestError(
                    f"{path}: expected an object, got {_type_name(message)}", param=path
                )
            role = message.get("role")
            if role not in ("user", "assistant", "system"):
                raise RequestError(
                    f"{path}.role: expected 'user' or 'assistant', got {json.dumps(role)}",
                    param=f"{path}.role",
                )
            content = message.get("content")
            cpath = f"{path}.content"
            if isinstance(content, str):
                blocks: list[tuple[Any, str]] = [({"type": "text", "text": content}, cpath)]
            elif isinstance(content, list):
                blocks = [(b, f"{cpath}[{j}]") for j, b in enumerate(content)]
            else:
                raise RequestError(
                    f"{cpath}: expected a string or an array of content blocks, "
                    f"got {_type_name(content)}",
                    param=cpath,
                )
            if role == "system":
                system_parts.extend(self.system_message(blocks))
                continue
            if turns and turns[-1][0] == role:
                turns[-1][1].extend(blocks)
            else:
                turns.append((role, blocks))

        out: list[dict[str, Any]] = []
        pending: dict[str, bool] = {}  # tool_call ids of the last assistant message -> answered
        for role, blocks in turns:
            before = len(out)
            if role == "assistant":
                self._answer_missing(out, pending)
                message = self.assistant(blocks)
                if message is not None:
                    out.append(message)
                    pending = {c["id"]: False for c in message.get("tool_calls", ())}
                else:
                    pending = {}
            else:
                self.user(blocks, out, pending)
                pending = {}
            # A client's cache breakpoint covers its turn: it goes where that turn ends.
            cc = next((c for b, _ in blocks if (c := caching.client_breakpoint(b))), None)
            if cc and len(out) > before:
                out[-1][caching.MARK] = cc
        self._answer_missing(out, pending)

        # An assistant turn that had nothing to send leaves two user messages in a row.
        merged: list[dict[str, Any]] = []
        for message in out:
            if merged and message["role"] == "user" and merged[-1]["role"] == "user":
                merged[-1]["content"].extend(message["content"])
                if caching.MARK in message:
                    merged[-1][caching.MARK] = message[caching.MARK]
            else:
                merged.append(message)
        if not merged:
            raise RequestError(
                "messages: nothing to send, every message is empty", param="messages"
            )
        for message in merged:
            if message["role"] == "user":
                parts = message["content"]
                if len(parts) == 1 and parts[0]["type"] == "text":
                    message["content"] = parts[0]["text"]

        system = "\n\n".join(p for p in (_strip_billing(s) for s in system_parts) if p)
        if system:
            merged.insert(0, {"role": "system", "content": system})
            if self.system_cache:
                merged[0][caching.MARK] = self.system_cache
        return merged

    def system_message(self, blocks: list[tuple[Any, str]]) -> list[str]:
        parts = []
        for block, path in blocks:
            if not isinstance(block, dict):
                raise RequestError(
                    f"{path}: expected an object, got {_type_name(block)}", param=path
                )
            if block.get("type") == "text":
                parts.append(_require_str(block.get("text"), f"{path}.text"))
            self.system_cache = caching.client_breakpoint(block) or self.system_cache
        return parts

    @staticmethod
    def _answer_missing(out: list[dict[str, Any]], pending: dict[str, bool]) -> None:
        # Chat Completions requires an answer to every tool call before the conversation goes on.
        for call_id, answered in pending.items():
            if not answered:
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": call_id,
                        "content": "Error: no result was provided for this tool call.",
                    }
                )
                pending[call_id] = True

    def assistant(self, blocks: list[tuple[Any, str]]) -> dict[str, Any] | None:
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        seen_ids: set[str] = set()
        for block, path in blocks:
            kind = _block_type(block, path)
            if kind == "text":
                text = _require_str(block.get("text"), f"{path}.text")
                if text:
                    texts.append(text)
            elif kind == "tool_use":
                call_id = _upstream_tool_id(
                    _require_str(block.get("id"), f"{path}.id", empty_ok=False)
                )
                name = _require_str(block.get("name"), f"{path}.name", empty_ok=False)
                args = block.get("input")
                if args is None:
                    args = {}
                elif not isinstance(args, dict):
                    raise RequestError(
                        f"{path}.input: expected an object, got {_type_name(args)}",
                        param=f"{path}.input",
                    )
                if call_id in seen_ids:
                    continue
                seen_ids.add(call_id)
                calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": self.name(name),
                            "arguments": json.dumps(args, ensure_ascii=False),
                        },
                    }
                )
            # thinking, redacted_thinking, server tool blocks, unknown blocks: dropped
        if not texts and not calls:
            return None
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "\n\n".join(texts) if texts else None,
        }
        if calls:
            message["tool_calls"] = calls
        return message

    def user(
        self, blocks: list[tuple[Any, str]], out: list[dict[str, Any]], pending: dict[str, bool]
    ) -> None:
        tool_messages: list[dict[str, Any]] = []
        moved: list[dict[str, Any]] = []  # images/files out of tool results
        parts: list[dict[str, Any]] = []
        for block, path in blocks:
            kind = _block_type(block, path)
            if kind == "tool_result":
                call_id = _upstream_tool_id(
                    _require_str(block.get("tool_use_id"), f"{path}.tool_use_id", empty_ok=False)
                )
                text, extra = self.tool_result_content(block.get("content"), f"{path}.content")
                if block.get("is_error") is True:
                    text = f"Error: {text}" if text else "Error: the tool call failed."
                if pending.get(call_id) is False:
                    pending[call_id] = True
                    if not text:
                        text = "(see the attached content)" if extra else "(no output)"
                    tool_messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
                    if extra:
                        moved.append(
                            {"type": "text", "text": f"Content returned by tool call {call_id}:"}
                        )
                        moved.extend(extra)
                else:  # no matching call right before: keep the result visible as text
                    parts.append(
                        {"type": "text", "text": f"[Result of tool call {call_id}]\n{text}"}
                    )
                    parts.extend(extra)
            else:
                parts.extend(self.user_block(kind, block, path))
        out.extend(tool_messages)
        self._answer_missing(out, pending)
        if moved or parts:
            out.append({"role": "user", "content": moved + parts})

    def tool_result_content(self, content: Any, path: str) -> tuple[str, list[dict[str, Any]]]:
        if content is None:
            return "", []
        if isinstance(content, str):
            return content, []
        if not isinstance(content, list):
            raise RequestError(
                f"{path}: expected a string or an array of content blocks, "
                f"got {_type_name(content)}",
                param=path,
            )
        texts: list[str] = []
        extra: list[dict[str, Any]] = []
        for j, block in enumerate(content):
            bpath = f"{path}[{j}]"
            kind = _block_type(block, bpath)
            for part in self.user_block(kind, block, bpath):
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    extra.append(part)
        return "\n\n".join(texts), extra

    def user_block(self, kind: str, block: dict[str, Any], path: str) -> list[dict[str, Any]]:
        if kind == "text":
            text = _require_str(block.get("text"), f"{path}.text")
            return [{"type": "text", "text": text}] if text else []
        if kind == "image":
            return [self.image(block, path)]
        if kind == "document":
            return self.document(block, path)
        if kind == "search_result":
            return self.search_result(block, path)
        return []  # thinking, tool_use in a user turn, server tool blocks, unknown: dropped

    def image(self, block: dict[str, Any], path: str) -> dict[str, Any]:
        source = block.get("source")
        spath = f"{path}.source"
        if not isinstance(source, dict):
            raise RequestError(
                f"{spath}: expected an object, got {_type_name(source)}", param=spath
            )
        kind = source.get("type")
        if kind == "base64":
            media_type = _require_str(
                source.get("media_type"), f"{spath}.media_type", empty_ok=False
            )
            data = _require_str(source.get("data"), f"{spath}.data", empty_ok=False)
            url = f"data:{media_type};base64,{data}"
        elif kind == "url":
            url = _require_str(source.get("url"), f"{spath}.url", empty_ok=False)
        else:
            raise RequestError(
                f"{spath}.type: image source {json.dumps(kind)} is not supported "
                "(use 'base64' or 'url')",
                param=f"{spath}.type",
            )
        if not self.vision:
            return {"type": "text", "text": "[image omitted: this model does not accept images]"}
        return {"type": "image_url", "image_url": {"url": url}}

    def document(self, block: dict[str, Any], path: str) -> list[dict[str, Any]]:
        source = block.get("source")
        spath = f"{path}.source"
        if not isinstance(source, dict):
            raise RequestError(
                f"{spath}: expected an object, got {_type_name(source)}", param=spath
            )
        title = block.get("title") if isinstance(block.get("title"), str) else None
        context = block.get("context") if isinstance(block.get("context"), str) else None
        header = f"[Document: {title}]" if title else "[Document]"
        if context:
            header += f"\n{context}"
        kind = source.get("type")
        if kind == "text":
            data = _require_str(source.get("data"), f"{spath}.data")
            return [{"type": "text", "text": f"{header}\n\n{data}"}]
        if kind == "base64":
            media_type = _require_str(
                source.get("media_type"), f"{spath}.media_type", empty_ok=False
            )
            data = _require_str(source.get("data"), f"{spath}.data", empty_ok=False)
            if media_type == "application/pdf":
                if not self.pdf:
                    return [
                        {
                            "type": "text",
                            "text": f"{header}\n[PDF omitted: this model does not accept PDFs]",
                        }
                    ]
                filename = title if title else "document.pdf"
                return [
                    {"type": "text", "text": header},
                    {
                        "type": "file",
                        "file": {
                            "file_data": f"data:application/pdf;base64,{data}",
                            "filename": filename,
                        },
                    },
                ]
            if media_type.startswith("text/"):
                try:
                    text = base64.b64decode(data, validate=False).decode("utf-8", "replace")
                except (binascii.Error, ValueError) as exc:
                    raise RequestError(
                        f"{spath}.data: not valid base64", param=f"{spath}.data"
                    ) from exc
                return [{"type": "text", "text": f"{header}\n\n{text}"}]
            raise RequestError(
                f"{spath}.media_type: document type {json.dumps(media_type)} is not supported",
                param=f"{spath}.media_type",
            )
        if kind == "content":
            content = source.get("content")
            if isinstance(content, str):
                return [{"type": "text", "text": f"{header}\n\n{content}"}]
            if not isinstance(content, list):
                raise RequestError(
                    f"{spath}.content: expected a string or an array of content blocks, "
                    f"got {_type_name(content)}",
                    param=f"{spath}.content",
                )
            parts: list[dict[str, Any]] = [{"type": "text", "text": header}]
            for j, inner in enumerate(content):
                ipath = f"{spath}.content[{j}]"
                inner_kind = _block_type(inner, ipath)
                if inner_kind in ("text", "image"):
                    parts.extend(self.user_block(inner_kind, inner, ipath))
            return parts
        if kind == "url":
            url = _require_str(source.get("url"), f"{spath}.url", empty_ok=False)
            return [{"type": "text", "text": f"{header}\nDocument URL (not fetched): {url}"}]
        raise RequestError(
            f"{spath}.type: document source {json.dumps(kind)} is not supported "
            "(use 'text', 'base64', 'content' or 'url')",
            param=f"{spath}.type",
        )

    def search_result(self, block: dict[str, Any], path: str) -> list[dict[str, Any]]:
        title = block.get("title") if isinstance(block.get("title"), str) else ""
        source = block.get("source") if isinstance(block.get("source"), str) else ""
        lines = [f"[Search result: {title}]" + (f" ({source})" if source else "")]
        content = block.get("content")
        if isinstance(content, list):
            for j, inner in enumerate(content):
                ipath = f"{path}.content[{j}]"
                if _block_type(inner, ipath) == "text":
                    lines.append(_require_str(inner.get("text"), f"{ipath}.text"))
        return [{"type": "text", "text": "\n".join(lines)}]


def _block_type(block: Any, path: str) -> str:
    if not isinstance(block, dict):
        raise RequestError(
            f"{path}: expected a content block object, got {_type_name(block)}", param=path
        )
    kind = block.get("type")
    if not isinstance(kind, str):
        raise RequestError(
            f"{path}.type: expected a string, got {_type_name(kind)}", param=f"{path}.type"
        )
    return kind


# --------------------------------------------------------------------------- answers


def _usage(usage: Any, ctx: AnthropicContext, output_estimate: int) -> dict[str, int]:
    if not isinstance(usage, dict):
        return {
            "input_tokens": ctx.input_tokens_estimate,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_estimate,
        }
    prompt = _int(usage.get("prompt_tokens")) or _int(usage.get("input_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    cached = cached or _int(usage.get("cache_read_input_tokens"))
    created = _int(usage.get("cache_creation_input_tokens"))
    output = _int(usage.get("completion_tokens")) or _int(usage.get("output_tokens"))
    return {
        "input_tokens": max(prompt - cached - created, 0),
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": cached,
        "output_tokens": output,
    }


def _stop_reason(finish_reason: Any, has_tool_use: bool) -> str:
    reason = (
        _STOP_REASONS.get(finish_reason, "end_turn")
        if isinstance(finish_reason, str)
        else "end_turn"
    )
    if has_tool_use and reason in ("end_turn", "tool_use"):
        return "tool_use"
    if reason == "tool_use" and not has_tool_use:
        return "end_turn"
    return reason


def _parse_arguments(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_raw": arguments}


def chat_to_anthropic(completion: dict[str, Any], ctx: AnthropicContext) -> dict[str, Any]:
    """A `chat.completion` (as assembled by translate.chat.ChatAssembler) -> a `Message`."""
    choice: Any = None
    if isinstance(completion, dict):
        choices = completion.get("choices")
        if isinstance(choices, list) and choices:
            choice = choices[0]
    choice = choice if isinstance(choice, dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}

    content: list[dict[str, Any]] = []
    chars = 0
    reasoning = (
        message.get("reasoning_content") or message.get("reasoning") or message.get("thinking")
    )
    if isinstance(reasoning, str) and reasoning:
        content.append(
            {
                "type": "thinking",
                "thinking": reasoning,
                "signature": _signature(
                    hashlib.sha256(reasoning.encode("utf-8", "surrogatepass")).digest()
                ),
            }
        )
        chars += len(reasoning)
    text = message.get("content")
    if isinstance(text, list):  # some providers answer with content parts
        text = "".join(
            p.get("text", "")
            for p in text
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
        chars += len(text)
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if not isinstance(call, dict):
            continue
        fn = call.get("function")
        fn = fn if isinstance(fn, dict) else {}
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            continue
        call_id = call.get("id")
        arguments = fn.get("arguments")
        chars += len(arguments) if isinstance(arguments, str) else 0
        content.append(
            {
                "type": "tool_use",
                "id": call_id if isinstance(call_id, str) and call_id else _new_tool_id(),
                "name": ctx.original_tool_name(name),
                "input": _parse_arguments(arguments),
            }
        )
    has_tool_use = any(block["type"] == "tool_use" for block in content)
    usage = completion.get("usage") if isinstance(completion, dict) else None
    return {
        "id": _new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": ctx.requested_model,
        "content": content,
        "stop_reason": _stop_reason(choice.get("finish_reason"), has_tool_use),
        "stop_sequence": None,
        "usage": _usage(usage, ctx, max(1, -(-chars // 4))),
    }


class _Tool:
    __slots__ = ("args", "checked", "closed", "complete", "id", "name", "opened", "size", "uid")

    def __init__(self) -> None:
        self.uid: str | None = None  # the upstream id
        self.id: str | None = None  # the id sent to the client
        self.name: str | None = None
        self.args: list[str] = []
        self.size = 0  # total length of args
        self.opened = False
        self.closed = False
        self.complete = False  # arguments known to form a whole JSON value
        self.checked = -1  # size when completeness was last checked


class AnthropicStream:
    """Upstream chat.completion.chunks -> Anthropic Messages SSE frames.

    One block is open at a time; block indices count up in emission order. Tool calls are
    streamed live while they arrive one after the other; a call whose fragments interleave
    with the open one's is buffered until the open call's arguments form a whole JSON value
    (or the stream ends), then emitted in one piece.
    """

    def __init__(self, ctx: AnthropicContext) -> None:
        self.ctx = ctx
        self.message_id = _new_message_id()
        self._started = False
        self._done = False
        self._index = 0  # index of the next block
        self._open: str | None = None  # "text" | "thinking" | "tool_use"
        self._open_tool: _Tool | None = None
        self._sig: Any = None  # hashlib object of the open thinking block
        self._by_index: dict[int, _Tool] = {}
        self._by_id: dict[str, _Tool] = {}
        self._last_tool: _Tool | None = None
        self._pending: list[_Tool] = []  # seen upstream, not yet opened, in order of appearance
        self._tool_blocks = 0
        self._chars = 0
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None

    # ---- frames

    def _frame(self, out: list[bytes], kind: str, payload: dict[str, Any]) -> None:
        out.append(sse.encode({"type": kind, **payload}, event=kind))

    def _start(self, out: list[bytes]) -> None:
        self._started = True
        self._frame(
            out,
            "message_start",
            {
                "message": {
                    "id": self.message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.ctx.requested_model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": max(1, self.ctx.input_tokens_estimate),
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                        "output_tokens": 1,
                    },
                }
            },
        )
        self._frame(out, "ping", {})

    def _open_block(self, out: list[bytes], kind: str, block: dict[str, Any]) -> None:
        self._open = kind
        self._frame(out, "content_block_start", {"index": self._index, "content_block": block})

    def _delta(self, out: list[bytes], delta: dict[str, Any]) -> None:
        self._frame(out, "content_block_delta", {"index": self._index, "delta": delta})

    def _close(self, out: list[bytes]) -> None:
        kind = self._open
        if kind is None:
            return
        if kind == "thinking":
            self._delta(
                out, {"type": "signature_delta", "signature": _signature(self._sig.digest())}
            )
            self._sig = None
        elif kind == "tool_use":
            tool = self._open_tool
            if tool is not None:
                if not tool.size:
                    self._delta(out, {"type": "input_json_delta", "partial_json": "{}"})
                tool.closed = True
            self._open_tool = None
        self._frame(out, "content_block_stop", {"index": self._index})
        self._index += 1
        self._open = None

    # ---- content

    def _thinking(self, out: list[bytes], text: str) -> None:
        if self._open != "thinking":
            self._close(out)
            self._sig = hashlib.sha256()
            self._open_block(out, "thinking", {"type": "thinking", "thinking": "", "signature": ""})
        self._sig.update(text.encode("utf-8", "surrogatepass"))
        self._chars += len(text)
        self._delta(out, {"type": "thinking_delta", "thinking": text})

    def _text(self, out: list[bytes], text: str) -> None:
        if self._open != "text":
            self._close(out)
            self._open_block(out, "text", {"type": "text", "text": ""})
        self._chars += len(text)
        # The most frequent frame: the same bytes as _delta() gives, from a template.
        out.append(
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
            b'"delta":{"type":"text_delta","text":%b}}\n\n' % (self._index, jsonio.dumps(text))
        )

    def _open_tool_block(self, out: list[bytes], tool: _Tool) -> None:
        self._close(out)
        self._pending.remove(tool)
        tool.opened = True
        tool.id = tool.uid or _new_tool_id()
        self._open_tool = tool
        self._tool_blocks += 1
        self._open_block(
            out,
            "tool_use",
            {
                "type": "tool_use",
                "id": tool.id,
                "name": self.ctx.original_tool_name(tool.name or ""),
                "input": {},
            },
        )
        if tool.size:
            buffered = "".join(tool.args)
            tool.args = [buffered]
            self._delta(out, {"type": "input_json_delta", "partial_json": buffered})

    def _is_complete(self, tool: _Tool) -> bool:
        if tool.complete:
            return True
        if tool.size == tool.checked:
            return False
        tool.checked = tool.size
        text = "".join(tool.args).rstrip()
        if not text.endswith(("}", "]")):
            return False
        try:
            json.loads(text)
        except ValueError:
            return False
        tool.complete = True
        return True

    def _find_tool(self, index: int | None, call_id: str | None) -> _Tool:
        tool: _Tool | None = None
        if call_id is not None:
            tool = self._by_id.get(call_id)
        if tool is None and index is not None:
            tool = self._by_index.get(index)
            if tool is not None and call_id is not None and tool.uid not in (None, call_id):
                tool = None  # the same index reused for another call
        if tool is None and index is None and call_id is None:
            tool = self._last_tool
        if tool is None:
            tool = _Tool()
            self._pending.append(tool)
        if index is not None:
            self._by_index[index] = tool
        if call_id is not None and tool.uid is None and not tool.opened:
            tool.uid = call_id
            self._by_id[call_id] = tool
        self._last_tool = tool
        return tool

    def _tool_fragment(self, out: list[bytes], tc: Any) -> None:
        if not isinstance(tc, dict):
            return
        call_id = tc.get("id")
        fn = tc.get("function")
        fn = fn if isinstance(fn, dict) else {}
        name = fn.get("name")
        args = fn.get("arguments")
        index = tc.get("index")
        tool = self._find_tool(
            index if isinstance(index, int) and not isinstance(index, bool) else None,
            call_id if isinstance(call_id, str) and call_id else None,
        )
        if isinstance(name, str) and name and not tool.name:
            tool.name = name
        if tool.closed:
            return  # a late fragment for a call already closed: nothing valid can carry it
        if isinstance(args, str) and args:
            tool.args.append(args)
            tool.size += len(args)
            self._chars += len(args)
            if tool is self._open_tool:
                self._delta(out, {"type": "input_json_delta", "partial_json": args})
                return
        if tool.opened or not tool.name:
            return
        current = self._open_tool
        if current is not None and not self._is_complete(current):
            return  # interleaved with the open call: keep buffering
        self._open_tool_block(out, tool)

    # ---- driver

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if self._done or not isinstance(chunk, dict):
            return b""
        out: list[bytes] = []
        if not self._started:
            self._start(out)
        usage = chunk.get("usage")
        if isinstance(usage, dict) and usage:
            self._usage = usage
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict) or choice.get("index", 0) not in (0, None):
                    continue
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                    if not isinstance(reasoning, str):
                        reasoning = delta.get("thinking")
                    if isinstance(reasoning, str) and reasoning:
                        self._thinking(out, reasoning)
                    text = delta.get("content")
                    if isinstance(text, str) and text:
                        self._text(out, text)
                    calls = delta.get("tool_calls")
                    if isinstance(calls, list):
                        for tc in calls:
                            self._tool_fragment(out, tc)
                reason = choice.get("finish_reason")
                if isinstance(reason, str) and reason:
                    self._finish_reason = reason
        return b"".join(out)

    def finish(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        out: list[bytes] = []
        if not self._started:
            self._start(out)
        self._close(out)
        for tool in list(self._pending):
            if tool.name:
                self._open_tool_block(out, tool)
                self._close(out)
        usage = _usage(self._usage, self.ctx, max(1, -(-self._chars // 4)))
        self._frame(
            out,
            "message_delta",
            {
                "delta": {
                    "stop_reason": _stop_reason(self._finish_reason, self._tool_blocks > 0),
                    "stop_sequence": None,
                },
                "usage": usage,
            },
        )
        self._frame(out, "message_stop", {})
        return b"".join(out)

    def fail(self, status: int, message: str) -> bytes:
        if self._done:
            return b""
        self._done = True
        out: list[bytes] = []
        if self._started:
            self._close(out)
        out.append(sse.encode(anthropic_error(status, message), event="error"))
        return b"".join(out)


# --------------------------------------------------------------------------- errors

_OVERFLOW = re.compile(
    r"context[ _-]?(length|window)|maximum context|too many (input )?tokens|"
    r"input tokens exceed|exceeds? the (model'?s? )?(maximum )?(context|token limit)",
    re.IGNORECASE,
)
_SPLIT = re.compile(r"(\d+) in the messages, (\d+) in the completion")
_LIMIT = re.compile(
    r"maximum context length is (\d+)|context (?:window|length|limit)(?: of| is)? (\d+)|"
    r"limit of (\d+) tokens|(\d+) tokens? maximum",
    re.IGNORECASE,
)
_ACTUAL = re.compile(
    r"resulted in (\d+) tokens|requested (\d+) tokens|prompt (?:is|has|contains) (\d+) tokens",
    re.IGNORECASE,
)


def _first_number(pattern: re.Pattern[str], text: str) -> int | None:
    match = pattern.search(text)
    if match is None:
        return None
    return int(next(g for g in match.groups() if g is not None))


def client_error_message(status: int, message: str) -> str:
    """An upstream error message in the words Claude Code acts on.

    A chat model's context overflow ("This model's maximum context length is ...") reads
    like Anthropic's: `prompt is too long: N tokens > M maximum` makes Claude Code compact
    the conversation, `input length and max_tokens exceed context limit: a + b > M` makes
    it ask for fewer output tokens. Anything else is returned unchanged."""
    if status not in (400, 413) or "prompt is too long" in message.lower():
        return message
    if "exceed context limit" in message or not _OVERFLOW.search(message):
        return message
    limit = _first_number(_LIMIT, message)
    split = _SPLIT.search(message)
    if split and limit:
        prompt, completion = int(split.group(1)), int(split.group(2))
        if prompt <= limit:
            return (
                f"input length and `max_tokens` exceed context limit: {prompt} + {completion} "
                f"> {limit}, decrease input length or `max_tokens` and try again ({message})"
            )
        return f"prompt is too long: {prompt} tokens > {limit} maximum ({message})"
    actual = _first_number(_ACTUAL, message)
    if actual and limit:
        return f"prompt is too long: {actual} tokens > {limit} maximum ({message})"
    return f"prompt is too long ({message})"


# --------------------------------------------------------------------------- native


def prepare_native_messages(
    body: dict[str, Any], *, target_model: str, model_info: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The body for a model that speaks Messages natively: OCA's model name, always streamed,
    Claude Code's per-request billing line dropped (it defeats prompt caching), max_tokens
    (and a thinking budget with it) fitted to the model's output limit, the rest as is."""
    if not isinstance(body, dict):
        raise RequestError(f"request body must be a JSON object, got {_type_name(body)}")
    out = dict(body)
    out["model"] = target_model
    out["stream"] = True
    _fit_native_max_tokens(out, model_info)
    _drop_translated_thinking(out)
    system = out.get("system")
    if isinstance(system, str) and BILLING_PREFIX in system:
        out["system"] = _strip_billing(system)
    elif isinstance(system, list):
        blocks = []
        for block in system:
            if (
                isinstance(block, dict)
                and block.get("type") == "text"
                and isinstance(block.get("text"), str)
                and BILLING_PREFIX in block["text"]
            ):
                text = _strip_billing(block["text"])
                if not text:
                    continue
                block = {**block, "text": text}
            blocks.append(block)
        out["system"] = blocks
    return out


MIN_THINKING_BUDGET = 1024  # Anthropic's floor for thinking.budget_tokens
_OUR_SIGNATURE = b"oca-reasoning:"


def _is_our_signature(signature: Any) -> bool:
    if not isinstance(signature, str) or len(signature) < 20:
        return False
    try:
        return base64.b64decode(signature[:20] + "==", validate=False).startswith(_OUR_SIGNATURE)
    except (binascii.Error, ValueError):
        return False


def _drop_translated_thinking(out: dict[str, Any]) -> None:
    """Thinking blocks the translator made up (a chat model's reasoning, our signature) are
    refused by a real Anthropic model, e.g. after `/model` switches a Claude Code session from
    a translated to a native model: drop them. If the turn being continued loses its
    thinking, ask for none this once (Anthropic wants the final assistant turn of a tool
    loop to start with a thinking block when thinking is on)."""
    messages = out.get("messages")
    if not isinstance(messages, list):
        return
    last_assistant = max(
        (i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"),
        default=-1,
    )
    kept: list[Any] = []
    changed = lost_in_last = False
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list) or message.get("role") != "assistant":
            kept.append(message)
            continue
        blocks = [
            b
            for b in content
            if not (
                isinstance(b, dict)
                and b.get("type") == "thinking"
                and _is_our_signature(b.get("signature"))
            )
        ]
        if len(blocks) == len(content):
            kept.append(message)
            continue
        changed = True
        lost_in_last = lost_in_last or i == last_assistant
        if blocks:
            kept.append({**message, "content": blocks})
    if not changed:
        return
    out["messages"] = kept
    thinking = out.get("thinking")
    if lost_in_last and isinstance(thinking, dict) and thinking.get("type") != "disabled":
        del out["thinking"]


def _fit_native_max_tokens(out: dict[str, Any], info: dict[str, Any] | None) -> None:
    """Clients ask for their own model's output limit (Claude Code: 32000 to 128000); the
    provider behind OCA refuses more than its model's, so ask for at most that. A thinking
    budget must stay below max_tokens: it shrinks along (or goes, if nothing is left)."""
    limit = _int(info.get("max_output_tokens")) if isinstance(info, dict) else 0
    max_tokens = out.get("max_tokens")
    if not limit or isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        return
    if max_tokens <= limit:
        return
    out["max_tokens"] = limit
    thinking = out.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if isinstance(budget, int) and not isinstance(budget, bool) and budget >= limit:
        if limit - 1 >= MIN_THINKING_BUDGET:
            out["thinking"] = {**thinking, "budget_tokens": limit - 1}
        else:
            del out["thinking"]


class NativeMessagesStream:
    """A native Messages stream from OCA -> the client, event by event (the StreamDriver's
    translator for native answers): OCA's model name in `message_start` becomes the name the
    client asked for, and a stream that ends without `message_stop` ends with an `error`
    event instead of looking complete."""

    def __init__(self, requested_model: str) -> None:
        self.requested_model = requested_model
        self._stopped = False
        self._done = False

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if self._done or not isinstance(chunk, dict):
            return b""
        kind = chunk.get("type")
        if kind == "message_start" and isinstance(chunk.get("message"), dict):
            chunk = {**chunk, "message": {**chunk["message"], "model": self.requested_model}}
        elif kind == "message_stop":
            self._stopped = True
        return sse.encode(chunk, event=kind if isinstance(kind, str) and kind else None)

    def finish(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        if self._stopped:
            return b""
        return sse.encode(
            anthropic_error(502, "OCA's stream ended before the message was complete"),
            event="error",
        )

    def fail(self, status: int, message: str) -> bytes:
        if self._done:
            return b""
        self._done = True
        return sse.encode(anthropic_error(status, message), event="error")


class NativeMessagesAssembler:
    """A streamed native Messages answer -> one non-streamed `Message` dict.

    `result()` raises errors.ApiError when the stream carried an `error` event.
    """

    def __init__(self) -> None:
        self.message: dict[str, Any] = {}
        self.content: list[dict[str, Any]] = []
        self._json: dict[int, list[str]] = {}
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        self.error: dict[str, Any] | None = None
        self.stopped = False  # message_stop seen

    def feed(self, event: sse.SSEEvent) -> None:
        try:
            data = json.loads(event.data)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        kind = data.get("type") or event.event
        if kind == "message_start":
            message = data.get("message")
            if isinstance(message, dict):
                self.message = message
                if isinstance(message.get("usage"), dict):
                    self.usage.update(message["usage"])
                if isinstance(message.get("content"), list):
                    self.content = [b for b in message["content"] if isinstance(b, dict)]
        elif kind == "content_block_start":
            block = data.get("content_block")
            if isinstance(block, dict):
                index = data.get("index")
                block = dict(block)
                if isinstance(index, int) and index == len(self.content):
                    self.content.append(block)
                elif isinstance(index, int) and 0 <= index < len(self.content):
                    self.content[index] = block
                else:
                    self.content.append(block)
        elif kind == "content_block_delta":
            self._delta(data.get("index"), data.get("delta"))
        elif kind == "content_block_stop":
            index = data.get("index")
            if isinstance(index, int) and index in self._json and 0 <= index < len(self.content):
                raw = "".join(self._json.pop(index))
                block = self.content[index]
                block["input"] = _parse_arguments(raw) if raw.strip() else block.get("input") or {}
        elif kind == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, dict):
                if "stop_reason" in delta:
                    self.stop_reason = delta.get("stop_reason")
                if "stop_sequence" in delta:
                    self.stop_sequence = delta.get("stop_sequence")
                for key in ("container", "stop_details"):
                    if delta.get(key) is not None:
                        self.message[key] = delta[key]
            usage = data.get("usage")
            if isinstance(usage, dict):
                self.usage.update({k: v for k, v in usage.items() if v is not None})
        elif kind == "message_stop":
            self.stopped = True
        elif kind == "error":
            error = data.get("error")
            self.error = error if isinstance(error, dict) else {"message": str(error)}

    def _delta(self, index: Any, delta: Any) -> None:
        if not isinstance(index, int) or not isinstance(delta, dict):
            return
        if not 0 <= index < len(self.content):
            return
        block = self.content[index]
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str):
            block["text"] = (block.get("text") or "") + delta["text"]
        elif kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
            block["thinking"] = (block.get("thinking") or "") + delta["thinking"]
        elif kind == "signature_delta" and isinstance(delta.get("signature"), str):
            block["signature"] = delta["signature"]
        elif kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            self._json.setdefault(index, []).append(delta["partial_json"])
        elif kind == "citations_delta" and delta.get("citation") is not None:
            block.setdefault("citations", []).append(delta["citation"])

    def result(self, requested_model: str) -> dict[str, Any]:
        if self.error is not None:
            kind = self.error.get("type")
            message = self.error.get("message")
            raise ApiError(
                ERROR_STATUS.get(kind, 502) if isinstance(kind, str) else 502,
                message if isinstance(message, str) and message else "OCA's stream failed",
            )
        if not self.stopped and self.stop_reason is None:
            raise ApiError(502, "OCA's stream ended before the message was complete")
        for index, parts in list(self._json.items()):  # blocks never stopped
            if 0 <= index < len(self.content):
                self.content[index]["input"] = _parse_arguments("".join(parts))
        self._json.clear()
        usage = {
            "input_tokens": _int(self.usage.get("input_tokens")),
            "output_tokens": _int(self.usage.get("output_tokens")),
        }
        for key, value in self.usage.items():
            if key not in usage and value is not None:
                usage[key] = value
        out = {k: v for k, v in self.message.items() if v is not None}
        out.update(
            {
                "id": self.message.get("id") or _new_message_id(),
                "type": "message",
                "role": "assistant",
                "model": requested_model,
                "content": self.content,
                "stop_reason": self.stop_reason or "end_turn",
                "stop_sequence": self.stop_sequence,
                "usage": usage,
            }
        )
        return out
