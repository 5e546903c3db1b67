"""The quick translation of a Responses request's input items, for the turns Codex sends.

A Codex turn (`store: false`) is the whole conversation again: hundreds of messages,
function calls and their outputs, megabytes of command output. `decode()` reads the body with
msgspec into the few item types such a turn holds, every text left as its JSON literal
(translate/rawjson.py); `items_to_messages()` then writes the chat messages
`items.items_to_messages()` writes, with the texts copied in as they are: the cost is per
item, not per byte.

The full translation stays the reference: anything else (images, files, custom tools, a
`previous_response_id`, a stored response, text that is not valid UTF-8...) raises NotQuick
and the body is parsed and translated in full (tests/unit/test_quick.py compares the two).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec
import orjson
from msgspec import Raw, Struct

from oca_addon.translate import rawjson
from oca_addon.translate.rawjson import EMPTY, NULL, Fragment, NotQuick
from oca_addon.translate.responses.common import _NO_OUTPUT_TEXT, flat_tool_name
from oca_addon.translate.responses.items import _MARK_EVERY, Converted, resumed


class _Part(Struct, tag_field="type"):
    text: Raw = NULL


class InputText(_Part, tag="input_text"):
    pass


class OutputText(_Part, tag="output_text"):
    pass


class PlainText(_Part, tag="text"):
    pass


Part = InputText | OutputText | PlainText


class _Item(Struct, tag_field="type"):
    pass


class Message(_Item, tag="message"):
    role: str = ""
    content: str | list[Part] | None = None


class FunctionCall(_Item, tag="function_call"):
    call_id: str = ""
    name: Raw = NULL
    arguments: Raw = NULL
    namespace: Raw = NULL


class FunctionCallOutput(_Item, tag="function_call_output"):
    call_id: str = ""
    output: Raw = NULL


class Reasoning(_Item, tag="reasoning"):
    """Dropped on the way to chat, as by the full translation (its fields are not read)."""


Item = Message | FunctionCall | FunctionCallOutput | Reasoning


class Head(Struct):
    """The fields responses_to_chat reads; others are skipped, as it ignores them."""

    input: list[Item]
    model: Raw = NULL
    instructions: Raw = NULL
    tools: Raw = NULL
    tool_choice: Raw = NULL
    parallel_tool_calls: Raw = NULL
    max_output_tokens: Raw = NULL
    max_tool_calls: Raw = NULL
    reasoning: Raw = NULL
    temperature: Raw = NULL
    top_p: Raw = NULL
    top_logprobs: Raw = NULL
    text: Raw = NULL
    user: Raw = NULL
    prompt_cache_key: Raw = NULL
    safety_identifier: Raw = NULL
    metadata: Raw = NULL
    stream: Raw = NULL
    store: Raw = NULL
    previous_response_id: Raw = NULL
    include: Raw = NULL
    truncation: Raw = NULL
    service_tier: Raw = NULL
    background: Raw = NULL


HEAD_FIELDS = tuple(f for f in Head.__struct_fields__ if f != "input")
_decode_head = msgspec.json.Decoder(Head).decode


def decode(raw: bytes) -> tuple[dict[str, Any], list[Any]]:
    """(the body without its input, parsed as the full translation parses it; the input
    items, their texts raw). NotQuick when the body is not of the shapes this takes."""
    head, body = rawjson.decode_head(_decode_head, raw, HEAD_FIELDS)
    if body.get("store") is not False or body.get("previous_response_id") is not None:
        raise NotQuick  # a stored conversation: its items are kept as parsed (history.py)
    return body, head.input


class _Turn:
    __slots__ = ("calls", "texts")

    def __init__(self) -> None:
        self.texts: list[bytes] = []
        self.calls: list[dict[str, Any]] = []


def items_to_messages(
    items: list[Any], resume: tuple[Converted, int] | None = None
) -> tuple[list[dict[str, Any]], list[str], Converted]:
    """What `items.items_to_messages(items, resume)` gives for these items (its comments say
    what each step does and why)."""
    begin, kept = resumed(resume, lambda b: map(_output_id, items[b:]))
    marks, sizes, messages, system = kept.marks, kept.sizes, kept.messages, kept.system
    used, used_at, unanswered = kept.used, kept.used_at, kept.unanswered

    unchecked: list[bytes] = []  # the literals copied that are not ASCII (rawjson.check_utf8)
    names: dict[bytes, str] = {}  # a function's name literal -> the name (each used often)
    outputs: dict[str, deque[int]] = {}
    for i in range(begin, len(items)):
        item = items[i]
        if type(item) is FunctionCallOutput and item.call_id:
            outputs.setdefault(item.call_id, deque()).append(i)

    consumed: set[int] = set()
    horizon = -1
    used_ids = set(used)
    turn: _Turn | None = None
    append = messages.append

    def use(cid: str, i: int) -> None:
        used_ids.add(cid)
        used.append(cid)
        used_at.append(i)

    def flush(at: int) -> None:
        nonlocal turn, horizon
        current, turn = turn, None
        if current is None:
            return
        text = rawjson.join(current.texts, b"")
        if not current.calls:
            if text != EMPTY:
                append({"role": "assistant", "content": Fragment(text)})
            return
        append(
            {
                "role": "assistant",
                "content": Fragment(text) if text != EMPTY else None,
                "tool_calls": current.calls,
            }
        )
        for call in current.calls:
            cid = call["id"]
            queue = outputs.get(cid)
            content: Any
            if queue:
                pos = queue.popleft()
                consumed.add(pos)
                horizon = max(horizon, pos)
                content = _output(items[pos], unchecked)
            else:
                unanswered.append((at, cid))
                content = _NO_OUTPUT_TEXT
            append({"role": "tool", "tool_call_id": cid, "content": content})

    for i in range(begin, len(items)):
        if turn is None and horizon < i and (not marks or i - marks[-1] >= _MARK_EVERY):
            marks.append(i)
            sizes.append((len(messages), len(system)))
        item = items[i]
        kind = type(item)
        if kind is Message:
            role = item.role
            if role == "assistant":
                texts = _texts(item.content, unchecked)
                if turn is not None and turn.calls:
                    flush(i)
                if turn is None:
                    turn = _Turn()
                turn.texts.append(rawjson.join(texts, b"") if texts else EMPTY)
            elif role == "user":
                content = _user_content(item.content, unchecked)
                flush(i)
                append({"role": "user", "content": content})
            elif role == "system" or role == "developer":
                texts = _texts(item.content, unchecked)
                text = orjson.loads(rawjson.join(texts, b"")) if texts else ""
                if text:
                    system.append(text)
            else:
                raise NotQuick  # the full translation says what is wrong
        elif kind is FunctionCall:
            cid = item.call_id
            if not cid:
                continue
            raw_name = bytes(item.name)
            name = names.get(raw_name)
            if name is None:
                name = names[raw_name] = rawjson.string(item.name) if raw_name != b"null" else ""
            if not name:
                raise NotQuick
            ns = item.namespace
            if ns is not NULL:
                namespace = orjson.loads(memoryview(ns))
                flat = flat_tool_name(namespace, name) if isinstance(namespace, str) else name
            else:
                flat = name
            args = _arguments(item.arguments, unchecked)
            if cid in used_ids:
                continue
            use(cid, i)
            if turn is None:
                turn = _Turn()
            turn.calls.append(
                {"id": cid, "type": "function", "function": {"name": flat, "arguments": args}}
            )
        elif kind is FunctionCallOutput:
            flush(i)
            if i in consumed:
                continue
            cid = item.call_id
            if not cid:
                continue
            queue = outputs.get(cid)
            if queue and i in queue:
                queue.remove(i)
            if cid in used_ids:
                continue
            raise NotQuick  # an output with no call before it: the full translation's case
        # reasoning items: dropped
    end = len(items)
    if turn is None and horizon < end:
        marks.append(end)
        sizes.append((len(messages), len(system)))
    converted = Converted(marks, sizes, messages, system, used, used_at, unanswered)
    messages = list(messages)
    append = messages.append
    flush(end)
    rawjson.check_utf8(unchecked)
    return messages, system, converted


def _output_id(item: Any) -> str | None:
    return item.call_id if type(item) is FunctionCallOutput else None


def _texts(content: str | list[Any] | None, unchecked: list[bytes]) -> list[bytes]:
    """The text literals of a message's content."""
    if content is None:
        return []
    if isinstance(content, str):
        return [orjson.dumps(content)]
    return [rawjson.literal(part.text, unchecked) for part in content]


def _user_content(content: str | list[Any] | None, unchecked: list[bytes]) -> Any:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if len(content) == 1:
        return Fragment(rawjson.literal(content[0].text, unchecked))
    texts = [rawjson.literal(part.text, unchecked) for part in content]
    if not texts:
        return ""
    return [{"type": "text", "text": Fragment(t)} for t in texts]


def _output(item: FunctionCallOutput, unchecked: list[bytes]) -> Any:
    """A function_call_output's text for its tool message."""
    output = bytes(item.output)
    if output[0] != 34:  # '"'
        if output == b"null":
            return ""
        raise NotQuick  # parts (images, files) or another value: the full translation's
    if not output.isascii():
        unchecked.append(output)
    return Fragment(output)


def _arguments(raw: Raw, unchecked: list[bytes]) -> Any:
    """A function_call's arguments text: the client's JSON text as it is."""
    args = bytes(raw)
    if args == b"null" or args == EMPTY:
        return "{}"
    if args[0] != 34:
        raise NotQuick  # an object for arguments: the full translation writes it out
    if not args.isascii():
        unchecked.append(args)
    return Fragment(args)
