"""JSON strings kept as the client wrote them, for the quick translations (anthropic/quick.py,
responses/quick.py).

A Claude Code or Codex turn is megabytes of text (file contents, command output) inside a
few thousand small objects. The quick translations decode the objects (msgspec) and leave
every text a `msgspec.Raw`: its JSON literal, quotes and escapes included, never turned into
a Python string. The chat body is then written with the literals copied in as they are
(`orjson.Fragment`): a JSON string is escaped the same way in every API, so the work is per
object, not per byte.

A literal here is `bytes` holding one JSON string, `"..."`. Joining and prefixing work on
the escaped text: escapes never span two strings, so `"a" + "b"` is `"ab"` escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec
import orjson

EMPTY = b'""'
NULL = msgspec.Raw(b"null")  # a Raw field's default: the field was not sent (or was null)
Fragment = orjson.Fragment  # JSON written into orjson's output as it is


class NotQuick(Exception):
    """The request holds something the quick translation leaves to the full one (a block type
    it does not know, an unusual shape, bytes it cannot vouch for): translate it in full."""


def literal(raw: msgspec.Raw, unchecked: list[bytes]) -> bytes:
    """A Raw that must be a JSON string, as bytes (NotQuick when it is another JSON value);
    set aside in `unchecked` when it is not ASCII (see check_utf8)."""
    b = bytes(raw)
    if b[:1] != b'"':
        raise NotQuick
    if not b.isascii():
        unchecked.append(b)
    return b


def check_utf8(unchecked: list[bytes]) -> None:
    """NotQuick unless the literals set aside are UTF-8: msgspec does not check the strings
    it leaves raw. Only what is sent on is checked (a field no translation reads is skipped
    unchecked, as it is not sent), and only what is not ASCII: a few at a time, each group
    decoded joined (each literal is a whole JSON string, its quotes included, so no
    character spans two). Less than one decode each; groups of up to _GROUP bytes, as one
    decode of megabytes costs more again, in fresh memory for the text it makes."""
    group: list[bytes] = []
    size = 0
    try:
        for lit in unchecked:
            group.append(lit)
            size += len(lit)
            if size >= _GROUP:
                b"".join(group).decode("utf-8")
                group, size = [], 0
        if group:
            b"".join(group).decode("utf-8")
    except UnicodeDecodeError:
        raise NotQuick from None


_GROUP = 32 * 1024


def string(raw: msgspec.Raw) -> str:
    """A Raw that must be a JSON string, parsed (orjson checks its UTF-8)."""
    b = bytes(raw)
    if b[:1] != b'"':
        raise NotQuick
    try:
        value: str = orjson.loads(b)
    except orjson.JSONDecodeError:
        raise NotQuick from None
    return value


def join(literals: list[bytes], sep: bytes) -> bytes:
    """The literals' texts joined by `sep` (escaped: b"\\\\n\\\\n" for two newlines)."""
    if len(literals) == 1:
        return literals[0]
    return b'"' + sep.join([s[1:-1] for s in literals]) + b'"'


def prefixed(prefix: str, lit: bytes) -> bytes:
    """`prefix` + the literal's text, as one literal."""
    return orjson.dumps(prefix)[:-1] + lit[1:]


class _Parsed:
    """The big fields a client sends again on every request (system prompt, tools: tens of
    KB each, the same for all of a client's conversations) as parsed before, by their
    bytes: comparing bytes costs a fraction of parsing them. Shared by the requests, so
    never changed: the translations read them (and edits of an upstream body copy what they
    change, core/refusals.py)."""

    SMALLEST = 2048  # smaller fields are parsed each time
    LARGEST = 512 * 1024  # and larger ones: what is kept stays bounded (KEPT x LARGEST)
    KEPT = 8

    def __init__(self) -> None:
        self._by_bytes: dict[bytes, Any] = {}

    def loads(self, value: msgspec.Raw) -> Any:
        if not self.SMALLEST <= len(value) <= self.LARGEST:
            return orjson.loads(memoryview(value))
        key = bytes(value)
        cache = self._by_bytes
        parsed = cache.pop(key, _MISSING)
        if parsed is _MISSING:
            parsed = orjson.loads(key)
            if len(cache) >= self.KEPT:
                del cache[next(iter(cache))]  # the least lately used
        cache[key] = parsed
        return parsed


_MISSING = object()
_parsed = _Parsed()


def decode_head[Head](
    decode: Callable[[bytes], Head], raw: bytes, fields: Iterable[str]
) -> tuple[Head, dict[str, Any]]:
    """(the body as `decode` reads it, its `fields` parsed as the full translation parses
    them: with orjson, the same numbers and the same refusals). The fields the decoder
    leaves `Raw` are those; NotQuick when either cannot read the body."""
    try:
        head = decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        raise NotQuick from None  # RecursionError: msgspec's answer to deep nesting
    body: dict[str, Any] = {}
    loads = _parsed.loads
    for name in fields:
        value = getattr(head, name)
        if value is not NULL:
            try:
                body[name] = loads(value)
            except orjson.JSONDecodeError:
                raise NotQuick from None
    return head, body
