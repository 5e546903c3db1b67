"""JSON in and out on the hot paths: every streamed chunk, every request body.

orjson decodes a chat chunk 4-5x and encodes a frame 10x faster than the standard
library (bench/README: the per-chunk and requests-per-second figures). It is stricter, so
what it refuses goes to the standard library, which gives the same result, or the error
message a client is shown: NaN and Infinity, lone surrogates, integers beyond 64 bits on
output, non-string keys. (On input orjson reads an integer beyond 64 bits as a float.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

import orjson

_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_compact_ascii = json.JSONEncoder(separators=(",", ":"))


def _raise_type_error(obj: Any) -> Any:
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


def _spaced_encoder(default: Callable[[Any], Any]) -> Callable[[Any], str]:
    """json.dumps(obj, ensure_ascii=False, default=default) with its encoder built once: the
    standard library builds one per call with these arguments (a hot spot on tool-call
    arguments, hundreds per Claude Code request). No check for circular references: the
    values are parsed JSON."""
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - CPython always has the C encoder
        encoder = json.JSONEncoder(ensure_ascii=False, default=default)
        return encoder.encode
    make = c_make_encoder(None, default, encode_basestring, None, ": ", ", ", False, False, True)

    def encode(obj: Any) -> str:
        if isinstance(obj, str):
            return encode_basestring(obj)
        return "".join(make(obj, 0))

    return encode


# The standard library's default look (", " and ": "), where the text is shown to a model
# and must not change: tool-call arguments made from Anthropic tool_use inputs.
dumps_spaced = _spaced_encoder(_raise_type_error)
dumps_spaced_any = _spaced_encoder(str)  # default=str: anything goes (token estimates)


def loads(data: bytes | bytearray | str) -> Any:
    """Like json.loads; raises json.JSONDecodeError (a ValueError) with the standard
    library's message on bad input (UnicodeDecodeError, one too, on bytes that are not
    text), BeyondLimits (a ValueError) on nesting or numbers beyond
    what is parsed."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data)  # accepts what orjson does not (NaN), else says why not
    except RecursionError:  # orjson stops at 1024 levels; the standard library's stack less gently
        raise BeyondLimits("the JSON is nested too deeply") from None
    except ValueError as e:
        if isinstance(e, json.JSONDecodeError | UnicodeDecodeError):
            raise
        # int("7" * 5000): Python refuses integers of more than 4300 digits
        raise BeyondLimits("a number in the JSON has too many digits") from None


class BeyondLimits(ValueError):
    """JSON that is well formed but beyond what is parsed: nesting or number size."""


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON: what json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    gives, encoded. A lone surrogate (half an emoji cut by an upstream chunk) stays a
    \\uXXXX escape, so a client joining the pieces gets the character back."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        try:
            return _compact.encode(obj).encode()
        except UnicodeEncodeError:
            return _compact_ascii.encode(obj).encode()
