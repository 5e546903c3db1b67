"""The quick translation of a Messages request's conversation, for the turns Claude Code sends.

A Claude Code turn is the whole conversation again: hundreds of messages of text, tool_use
and tool_result blocks, megabytes of file contents and command output. `decode()` reads the
body with msgspec into the few block types such a turn holds, every text left as its JSON
literal (translate/rawjson.py); `chat_messages()` then writes the same chat messages
`blocks._RequestBuilder.messages()` writes, with the texts copied in as they are. So the
cost is per block, not per byte, on every turn and on a conversation's first.

The full translation stays the reference: anything else a request may hold (images,
documents, an unknown field, text that is not valid UTF-8...) raises NotQuick and the body
is parsed and translated in full, so nothing a client sends is treated differently
(tests/unit/test_quick.py compares the two on the shapes this one takes).
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from msgspec import Raw, Struct

from oca_addon.translate import caching, count_tokens, rawjson
from oca_addon.translate.anthropic.blocks import Turns, _RequestBuilder
from oca_addon.translate.anthropic.common import _TOOL_ID_OK, _upstream_tool_id
from oca_addon.translate.rawjson import EMPTY, NULL, Fragment, NotQuick

_TWO_NEWLINES = b"\\n\\n"


# gc=False: what msgspec decodes from JSON holds no cycles, and thousands of them are made
# per request (the collector need not track them).
class _Block(Struct, tag_field="type", forbid_unknown_fields=True, gc=False):
    cache_control: Raw = NULL


class Text(_Block, tag="text"):
    text: Raw = NULL


class ToolUse(_Block, tag="tool_use"):
    id: str = ""  # msgspec checks the type; empty (or missing) is NotQuick
    name: str = ""
    input: Raw = NULL


class ToolResult(_Block, tag="tool_result"):
    tool_use_id: str = ""
    content: Raw = NULL
    is_error: Raw = NULL


class Thinking(_Block, tag="thinking", forbid_unknown_fields=False):
    """Dropped on the way to chat, as by the full translation (its fields are not read)."""


class RedactedThinking(_Block, tag="redacted_thinking", forbid_unknown_fields=False):
    pass


Block = Text | ToolUse | ToolResult | Thinking | RedactedThinking


class Message(Struct, forbid_unknown_fields=True, gc=False):
    role: str
    content: str | list[Block]


class Head(Struct):
    """The fields anthropic_to_chat reads; others are skipped, as it ignores them."""

    messages: list[Message]
    model: Raw = NULL
    max_tokens: Raw = NULL
    system: Raw = NULL
    tools: Raw = NULL
    tool_choice: Raw = NULL
    temperature: Raw = NULL
    top_p: Raw = NULL
    stop_sequences: Raw = NULL
    stream: Raw = NULL
    metadata: Raw = NULL
    thinking: Raw = NULL
    output_config: Raw = NULL
    output_format: Raw = NULL


_HEAD_FIELDS = tuple(f for f in Head.__struct_fields__ if f != "messages")
_decode_head = msgspec.json.Decoder(Head).decode
_decode_texts = msgspec.json.Decoder(list[Text]).decode


def decode(raw: bytes) -> tuple[dict[str, Any], list[Message]]:
    """(the body without its messages, parsed as the full translation parses it; the
    messages, their texts raw). NotQuick when the body is not of the shapes this takes."""
    head, body = rawjson.decode_head(_decode_head, raw, _HEAD_FIELDS)
    if not head.messages:
        raise NotQuick  # the full translation says what is wrong
    return body, head.messages


def chat_messages(
    messages: list[Message],
    builder: _RequestBuilder,
    system_parts: list[str],
    resume: tuple[Turns, int] | None = None,
) -> tuple[list[dict[str, Any]], Turns]:
    """What `builder.messages(messages, system_parts, resume)` gives for these messages:
    the chat messages, and what the conversation's next turn can resume from.

    One pass, its steps inline: it runs once per message of a conversation of thousands
    (blocks.py says what each step does and why)."""
    out: list[dict[str, Any]] = []
    pending: dict[str, bool] = {}  # the last assistant turn's call ids -> answered
    starts: list[int] = []  # per turn: its first message
    before: list[tuple[int, tuple[str, ...]]] = []  # per turn: len(out), unanswered ids
    i = 0
    kept = resume[0].resume(resume[1]) if resume is not None else None
    if resume is not None and kept is not None:
        i, starts, before, out, pending = kept
        builder.tool_names.update(resume[0].tool_names)
        for message in messages[:i]:  # the system messages among those: read again
            if message.role == "system":
                _system_message(message.content, builder, system_parts)
    append = out.append
    unchecked: list[bytes] = []  # the literals copied that are not ASCII (rawjson.check_utf8)
    later = unchecked.append
    inputs: list[bytes] = []  # the tool_use inputs written as the client wrote them
    written: list[dict[str, Any] | None] = []  # the function each went to (None: a repeat)
    ids, names = builder._ids, builder._upstream_names
    id_ok, name_for = _TOOL_ID_OK.fullmatch, builder.name
    answer_missing = builder._answer_missing
    n = len(messages)
    while i < n:
        message = messages[i]
        role = message.role
        i += 1
        if role == "system":  # Claude Code sends some: they go to the system prompt
            _system_message(message.content, builder, system_parts)
            continue
        starts.append(i - 1)
        before.append((len(out), tuple(pending) if pending else ()))
        blocks: Any = message.content
        if type(blocks) is not list:
            blocks = _blocks(blocks)
        while i < n:  # one turn, as in Anthropic's API (system messages aside)
            other = messages[i]
            other_role = other.role
            if other_role == role:
                blocks = blocks + _blocks(other.content)
            elif other_role == "system":
                _system_message(other.content, builder, system_parts)
            else:
                break
            i += 1
        cc: Any = None  # the turn's first cache breakpoint
        if role == "assistant":
            if pending:
                answer_missing(out, pending)
            texts: list[bytes] = []
            calls: list[dict[str, Any]] = []
            for block in blocks:
                if block.cache_control is not NULL and cc is None:
                    cc = _breakpoint(block.cache_control)
                kind = type(block)
                if kind is Text:
                    text = bytes(block.text)
                    if text != EMPTY:
                        if text[0] != 34:  # '"': not a string
                            raise NotQuick
                        if not text.isascii():
                            later(text)
                        texts.append(text)
                elif kind is ToolUse:
                    raw_id, name = block.id, block.name
                    if not raw_id or not name:
                        raise NotQuick
                    call_id = ids.get(raw_id)
                    if call_id is None:  # builder.call_id(), inline
                        call_id = raw_id if id_ok(raw_id) else _upstream_tool_id(raw_id)
                        ids[raw_id] = call_id
                    raw_input = bytes(block.input)
                    as_sent = raw_input[0] == 123  # '{': the usual input, as the client wrote it
                    if as_sent:
                        try:
                            arguments = raw_input.decode()
                        except UnicodeDecodeError:
                            raise NotQuick from None
                        inputs.append(raw_input)  # if not as _arguments() writes it: below
                    else:
                        arguments = _arguments(raw_input)
                    function: dict[str, Any] | None = None  # None: a repeated call, dropped
                    if not (calls and any(c["id"] == call_id for c in calls)):
                        function = {
                            "name": names.get(name) or name_for(name),
                            "arguments": arguments,
                        }
                        calls.append({"id": call_id, "type": "function", "function": function})
                    if as_sent:
                        written.append(function)
                # thinking, redacted_thinking: dropped
            if not texts and not calls:
                pending = {}
                continue
            if not texts:
                said: dict[str, Any] = {"role": "assistant", "content": None}
            elif len(texts) == 1:
                said = {"role": "assistant", "content": Fragment(texts[0])}
            else:
                said = {
                    "role": "assistant",
                    "content": Fragment(rawjson.join(texts, _TWO_NEWLINES)),
                }
            if calls:
                said["tool_calls"] = calls
                pending = {c["id"]: False for c in calls}
            else:
                pending = {}
            append(said)
        elif role == "user":
            size = len(out)
            parts: list[dict[str, Any]] = []
            for block in blocks:
                if block.cache_control is not NULL and cc is None:
                    cc = _breakpoint(block.cache_control)
                kind = type(block)
                if kind is ToolResult:
                    raw_id = block.tool_use_id
                    if not raw_id:
                        raise NotQuick
                    call_id = ids.get(raw_id)
                    if call_id is None:  # builder.call_id(), inline
                        call_id = raw_id if id_ok(raw_id) else _upstream_tool_id(raw_id)
                        ids[raw_id] = call_id
                    text = bytes(block.content)
                    if text[0] != 34:
                        text = _result_text(text, unchecked)
                    elif not text.isascii():
                        later(text)
                    if block.is_error is not NULL and bytes(block.is_error) == b"true":
                        text = rawjson.prefixed("Error: ", text) if text != EMPTY else _FAILED
                    if pending.get(call_id) is False:
                        pending[call_id] = True
                        content: Any = Fragment(text) if text != EMPTY else "(no output)"
                        append({"role": "tool", "tool_call_id": call_id, "content": content})
                    else:  # no matching call right before: kept visible as text
                        shown = rawjson.prefixed(f"[Result of tool call {call_id}]\n", text)
                        parts.append({"type": "text", "text": Fragment(shown)})
                elif kind is Text:
                    text = bytes(block.text)
                    if text != EMPTY:
                        if text[0] != 34:
                            raise NotQuick
                        if not text.isascii():
                            later(text)
                        parts.append({"type": "text", "text": Fragment(text)})
                # thinking blocks in a user turn: dropped
            if pending:
                if False in pending.values():
                    answer_missing(out, pending)
                pending = {}
            if parts:
                if out and out[-1]["role"] == "user":
                    raise NotQuick  # two user turns in a row (an assistant turn said nothing)
                append({"role": "user", "content": parts[0]["text"] if len(parts) == 1 else parts})
            elif len(out) == size:
                continue  # nothing written: the breakpoint has no message to go on
        else:
            raise NotQuick  # an invalid role: the full translation says what is wrong
        if cc:
            out[-1][caching.MARK] = cc
    rawjson.check_utf8(unchecked)
    if inputs:
        _compact_arguments(inputs, written)
    turns = Turns(starts, before, out, builder.tool_names)
    chat = list(out)  # `out` stays as it is: the next turn takes its prefix
    answer_missing(chat, pending)
    if not chat:
        raise NotQuick
    return builder.with_system(chat, system_parts), turns


def _system_message(
    content: str | list[Any], builder: _RequestBuilder, system_parts: list[str]
) -> None:
    """A system message among the messages, as `builder.system_message()` reads it: its
    texts to the system prompt, its breakpoint to the system message's."""
    if isinstance(content, str):
        system_parts.append(content)
        return
    for block in content:
        if type(block) is Text:
            system_parts.append(rawjson.string(block.text))
        if block.cache_control is not NULL:
            builder.system_cache = _breakpoint(block.cache_control) or builder.system_cache


def _blocks(content: str | list[Any]) -> list[Any]:
    if isinstance(content, str):
        return [Text(text=Raw(orjson.dumps(content)))]
    return content


def _breakpoint(raw: Raw) -> dict[str, Any] | None:
    return caching.client_breakpoint({"cache_control": orjson.loads(memoryview(raw))})


_FAILED = orjson.dumps("Error: the tool call failed.")


def _result_text(content: bytes, unchecked: list[bytes]) -> bytes:
    """A tool_result's content, not a string, as one literal: its text blocks joined."""
    if content == b"null":
        return EMPTY
    if content[0] != 91:  # '['
        raise NotQuick
    try:
        blocks = _decode_texts(content)  # only text blocks: images and the rest go in full
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        raise NotQuick from None
    if len(blocks) == 1:  # the usual
        return rawjson.literal(blocks[0].text, unchecked)
    texts = []
    for block in blocks:
        text = rawjson.literal(block.text, unchecked)
        if text != EMPTY:
            texts.append(text)
    return rawjson.join(texts, _TWO_NEWLINES) if texts else EMPTY


def _compact_arguments(inputs: list[bytes], functions: list[dict[str, Any] | None]) -> None:
    """Tool inputs go as chat arguments in orjson's compact JSON, as the full translation
    writes them (blocks.tool_arguments). A client's JSON.stringify writes the same bytes,
    so they were copied as they came; checked here all at once (one parse and one write of
    them all, not one of each: the cost is per byte, not per call), and any other written
    out one by one."""
    joined = b"[" + b",".join(inputs) + b"]"
    try:
        if orjson.dumps(orjson.loads(joined)) == joined:
            return  # equal as a whole: equal one by one (each is one JSON value)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        pass  # which one, and whether it is beyond the quick way, is found below
    for raw_input, function in zip(inputs, functions, strict=True):
        arguments = _arguments(raw_input)
        if function is not None:
            function["arguments"] = arguments


def _arguments(raw_input: bytes) -> str:
    """The chat arguments text of a tool_use input, as the full translation writes it
    (blocks.tool_arguments: orjson's compact JSON of the parsed input)."""
    if raw_input == b"null":
        return "{}"
    if raw_input[:1] != b"{":
        raise NotQuick
    try:
        return orjson.dumps(orjson.loads(raw_input)).decode()
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):  # nested beyond orjson's depth
        raise NotQuick from None


def estimate(
    body: dict[str, Any],
    messages: list[Message],
    known: count_tokens.Sums | None = None,
    same: int = 0,
) -> tuple[int, count_tokens.Sums]:
    """count_tokens.estimate() of the request from the raw texts (escapes counted as
    written: a little high, as the estimate errs), and what a later turn can take from it
    (`known`: an earlier turn's, whose first `same` messages are these)."""
    head = (body.get("system"), body.get("tools"), body.get("tool_choice"))
    if known is not None and known.head == head:
        head, head_chars, head_fixed = known.head, known.head_chars, known.head_fixed
    else:
        head_chars, head_fixed = count_tokens.count_head(*head)
    n = min(same, len(known.chars) - 1) if known is not None else 0
    sums = count_tokens.Sums(known.chars[: n + 1], known.fixed[: n + 1]) if known else None
    sums = sums or count_tokens.Sums([0], [0])
    chars, fixed = sums.chars[-1], sums.fixed[-1]
    for i in range(n, len(messages)):
        fixed += count_tokens.MESSAGE_OVERHEAD
        content: Any = messages[i].content
        if type(content) is str:
            chars += len(content)
        else:
            for block in content:
                kind = type(block)
                if kind is Text:
                    chars += len(block.text) - 2
                elif kind is ToolResult:
                    fixed += count_tokens.BLOCK_OVERHEAD
                    chars += len(block.tool_use_id) + len(block.content) - 2
                elif kind is ToolUse:
                    fixed += count_tokens.BLOCK_OVERHEAD
                    raw = bytes(block.input)  # as written, plus the spaces of the full count's
                    chars += len(block.id) + len(block.name) + len(raw)
                    chars += raw.count(b",") + raw.count(b":")
        sums.chars.append(chars)
        sums.fixed.append(fixed)
    sums.head, sums.head_chars, sums.head_fixed = head, head_chars, head_fixed
    counter = count_tokens.Counter()
    counter.chars += chars + head_chars
    counter.fixed += fixed + head_fixed
    return max(1, counter.total()), sums
