"""Anthropic system, tools and content blocks -> chat messages and tools (`_RequestBuilder`).

Consecutive same-role turns merge, tool results become `tool` messages paired with their
calls, images become `image_url` parts, documents become text or `file` parts.
"""

from __future__ import annotations

import base64
import binascii
import json
from bisect import bisect_left
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from oca_addon.core import jsonio
from oca_addon.core.errors import RequestError
from oca_addon.translate import caching
from oca_addon.translate.anthropic.common import (
    _require_str,
    _strip_billing,
    _type_name,
    _upstream_tool_id,
    upstream_tool_name,
)


class _RequestBuilder:
    def __init__(self, info: dict[str, Any] | None) -> None:
        self.tool_names: dict[str, str] = {}
        self._upstream_names: dict[str, str] = {}
        self._ids: dict[str, str] = {}  # tool_use id -> upstream id (tool_results look it up)
        self.vision = not (info and info.get("supports_vision") is False)
        self.pdf = not (info and info.get("supports_pdf_input") is False)
        self.system_cache: dict[str, Any] | None = None  # a client breakpoint on the system

    def name(self, name: str) -> str:
        upstream = self._upstream_names.get(name)
        if upstream is None:  # each tool is called many times in a long conversation
            upstream = self._upstream_names[name] = upstream_tool_name(name)
            if upstream != name:
                self.tool_names[upstream] = name
        return upstream

    def call_id(self, tool_id: str) -> str:
        upstream = self._ids.get(tool_id)
        if upstream is None:
            upstream = self._ids[tool_id] = _upstream_tool_id(tool_id)
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
    #
    # A Claude Code request holds hundreds of messages and thousands of blocks, so the usual
    # blocks (text, tool_use, tool_result) are checked inline, and a block's path for error
    # messages ("messages[3].content[1].text") is only written when there is an error: each
    # block goes around as (block, i, j), message i, block j (None: string content).

    def messages(
        self,
        messages: list[Any],
        system_parts: list[str],
        resume: tuple[Turns, int] | None = None,
    ) -> tuple[list[dict[str, Any]], Turns | None]:
        """The chat messages, and what is kept for the conversation's next turn. `resume`:
        the previous turn's Turns and how many leading messages are equal to its; the turns
        they hold are taken from it, not translated again (the system messages among them,
        which go to the system prompt, are read again)."""
        out: list[dict[str, Any]] = []
        pending: dict[str, bool] = {}  # tool_call ids of the last assistant message -> answered
        starts: list[int] = []
        before: list[tuple[int, tuple[str, ...]]] = []
        begin = 0
        kept = resume[0].resume(resume[1]) if resume is not None else None
        if resume is not None and kept is not None:
            begin, starts, before, out, pending = kept
            self.tool_names.update(resume[0].tool_names)
            for i in range(begin):  # the system messages among those: read again
                message = messages[i]
                if type(message) is dict and message.get("role") == "system":
                    system_parts.extend(self.system_message(_content_blocks(message, i)))

        # Anthropic merges consecutive same-role messages; so do we, before converting.
        turns: list[tuple[str, list[_Block], int]] = []
        for i in range(begin, len(messages)):
            message = messages[i]
            if not isinstance(message, dict):
                path = f"messages[{i}]"
                raise RequestError(
                    f"{path}: expected an object, got {_type_name(message)}", param=path
                )
            role = message.get("role")
            if role not in ("user", "assistant", "system"):
                raise RequestError(
                    f"messages[{i}].role: expected 'user' or 'assistant', got {json.dumps(role)}",
                    param=f"messages[{i}].role",
                )
            blocks = _content_blocks(message, i)
            if role == "system":
                system_parts.extend(self.system_message(blocks))
                continue
            if turns and turns[-1][0] == role:
                turns[-1][1].extend(blocks)
            else:
                turns.append((role, blocks, i))

        for role, blocks, first in turns:
            starts.append(first)
            before.append((len(out), tuple(pending)))
            if role == "assistant":
                if pending:
                    self._answer_missing(out, pending)
                message = self.assistant(blocks)
                if message is not None:
                    out.append(message)
                    pending = {c["id"]: False for c in message.get("tool_calls", ())}
                else:
                    pending = {}
                wrote = message is not None
            else:
                size = len(out)
                last = out[-1] if out else None
                wrote = self.user(blocks, out, pending)
                pending = {}
                if size and out[size - 1] is not last:
                    # Merged into the message before (after an assistant turn that had
                    # nothing to send): the turns since that message's cannot be resumed.
                    while before and before[-1][0] >= size:
                        del starts[-1], before[-1]
            # A client's cache breakpoint covers its turn: it goes where that turn ends.
            cc = _first_breakpoint(blocks) if wrote else None
            if cc:
                out[-1][caching.MARK] = cc  # a message this turn made (never a kept one)
        done_turns = Turns(starts, before, out, self.tool_names)
        chat = list(out)
        self._answer_missing(chat, pending)
        if not chat:
            raise RequestError(
                "messages: nothing to send, every message is empty", param="messages"
            )
        return self.with_system(chat, system_parts), done_turns

    def with_system(
        self, chat: list[dict[str, Any]], system_parts: list[str]
    ) -> list[dict[str, Any]]:
        """`chat` with the system message first, when there is a system prompt."""
        system = "\n\n".join(p for p in (_strip_billing(s) for s in system_parts) if p)
        if system:
            head: dict[str, Any] = {"role": "system", "content": system}
            if self.system_cache:
                head[caching.MARK] = self.system_cache
            chat.insert(0, head)
        return chat

    def system_message(self, blocks: list[_Block]) -> list[str]:
        parts = []
        for block, i, j in blocks:
            if not isinstance(block, dict):
                path = _where(i, j)
                raise RequestError(
                    f"{path}: expected an object, got {_type_name(block)}", param=path
                )
            if block.get("type") == "text":
                parts.append(_require_str(block.get("text"), f"{_where(i, j)}.text"))
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

    def assistant(self, blocks: list[_Block]) -> dict[str, Any] | None:
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        seen_ids: set[str] = set()
        for block, i, j in blocks:
            kind = block.get("type") if type(block) is dict else None
            if type(kind) is not str:
                kind = _block_type(block, _where(i, j))
            if kind == "text":
                text = block.get("text")
                if type(text) is not str:
                    text = _require_str(text, f"{_where(i, j)}.text")
                if text:
                    texts.append(text)
            elif kind == "tool_use":
                raw_id, name = block.get("id"), block.get("name")
                if type(raw_id) is not str or not raw_id:
                    raw_id = _require_str(raw_id, f"{_where(i, j)}.id", empty_ok=False)
                call_id = self.call_id(raw_id)
                if type(name) is not str or not name:
                    name = _require_str(name, f"{_where(i, j)}.name", empty_ok=False)
                args = block.get("input")
                if args is None:
                    args = {}
                elif not isinstance(args, dict):
                    path = _where(i, j)
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
                            "arguments": tool_arguments(args),
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
        self, blocks: list[_Block], out: list[dict[str, Any]], pending: dict[str, bool]
    ) -> bool:
        """Adds the turn's messages to `out`; whether it added any, or changed the last."""
        size = len(out)
        tool_messages: list[dict[str, Any]] = []
        moved: list[dict[str, Any]] = []  # images/files out of tool results
        parts: list[dict[str, Any]] = []
        for block, i, j in blocks:
            kind = block.get("type") if type(block) is dict else None
            if type(kind) is not str:
                kind = _block_type(block, _where(i, j))
            if kind == "tool_result":
                raw_id = block.get("tool_use_id")
                if type(raw_id) is not str or not raw_id:
                    raw_id = _require_str(raw_id, f"{_where(i, j)}.tool_use_id", empty_ok=False)
                call_id = self.call_id(raw_id)
                content = block.get("content")
                if type(content) is str:
                    text, extra = content, _NO_PARTS
                else:
                    text, extra = self.tool_result_content(content, f"{_where(i, j)}.content")
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
            elif kind == "text" and type(text := block.get("text")) is str:
                if text:
                    parts.append({"type": "text", "text": text})
            else:
                parts.extend(self.user_block(kind, block, _where(i, j)))
        out.extend(tool_messages)
        if pending:
            self._answer_missing(out, pending)
        if not (moved or parts):
            return len(out) > size
        content = moved + parts
        last = out[-1] if out else None
        if last is not None and last["role"] == "user":
            # An assistant turn that had nothing to send leaves two user turns in a row:
            # one message (a new one: `last` may be a kept turn's, never changed).
            said = last["content"]
            if isinstance(said, str):
                said = [{"type": "text", "text": said}]
            out[-1] = {**last, "content": said + content}
        elif len(content) == 1 and content[0]["type"] == "text":
            out.append({"role": "user", "content": content[0]["text"]})
        else:
            out.append({"role": "user", "content": content})
        return True

    def tool_result_content(self, content: Any, path: str) -> tuple[str, list[dict[str, Any]]]:
        if content is None:
            return "", _NO_PARTS
        if isinstance(content, str):
            return content, _NO_PARTS
        if not isinstance(content, list):
            raise RequestError(
                f"{path}: expected a string or an array of content blocks, "
                f"got {_type_name(content)}",
                param=path,
            )
        texts: list[str] = []
        extra: list[dict[str, Any]] = []
        for j, block in enumerate(content):
            if (
                type(block) is dict
                and block.get("type") == "text"
                and type(text := block.get("text")) is str
            ):
                if text:
                    texts.append(text)
                continue
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


@dataclass(eq=False)
class Turns:
    """The builder's work on a conversation's messages, kept for its next turn: where each
    turn starts, what was written before it, and the chat messages the turns gave (shared
    with later turns' requests: never changed once made)."""

    starts: list[int]  # the message index each turn starts at
    before: list[tuple[int, tuple[str, ...]]]  # per turn: len(out), unanswered call ids
    out: list[dict[str, Any]]
    tool_names: dict[str, str]

    def resume(self, same: int) -> Resumed | None:
        """Where a request whose first `same` messages equal this one's starts translating
        (the first message of the last turn that starts inside them) and what it takes from
        here: the turns before that one (their starts, what was written before each), their
        chat messages, and the calls left unanswered. None when no whole turn is shared."""
        t = bisect_left(self.starts, same) - 1  # the last turn that starts in the prefix
        if t <= 0:  # turns 0..t-1 end before it: theirs are the same chat messages
            return None
        size, unanswered = self.before[t]
        pending = dict.fromkeys(unanswered, False)
        return self.starts[t], self.starts[:t], self.before[:t], self.out[:size], pending


# Turns.resume(): (begin, starts, before, out, pending)
Resumed = tuple[
    int, list[int], list[tuple[int, tuple[str, ...]]], list[dict[str, Any]], dict[str, bool]
]


def tool_arguments(args: dict[str, Any]) -> str:
    """A tool_use input as chat `arguments` text: compact JSON, as the Responses translation
    and the models themselves write it (fewer tokens on every turn than `json.dumps`'s
    spaced form, for hundreds of calls in a long conversation)."""
    return jsonio.dumps(args).decode()


_Block = tuple[Any, int, int | None]  # (block, message index, block index or None)
_NO_PARTS: list[dict[str, Any]] = []  # shared, never changed: read-only "no extra parts"


def _content_blocks(message: dict[str, Any], i: int) -> list[_Block]:
    """Message i's content as blocks (string content: one text block)."""
    content = message.get("content")
    if isinstance(content, str):
        return [({"type": "text", "text": content}, i, None)]
    if isinstance(content, list):
        return list(zip(content, repeat(i), range(len(content))))  # (b, i, j)
    cpath = f"messages[{i}].content"
    raise RequestError(
        f"{cpath}: expected a string or an array of content blocks, got {_type_name(content)}",
        param=cpath,
    )


def _where(i: int, j: int | None) -> str:
    """The path of block j of message i, for error messages."""
    return f"messages[{i}].content" if j is None else f"messages[{i}].content[{j}]"


def _first_breakpoint(blocks: list[_Block]) -> dict[str, Any] | None:
    for block, _, _ in blocks:
        if isinstance(block, dict) and "cache_control" in block:
            cc = caching.client_breakpoint(block)
            if cc:
                return cc
    return None


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
