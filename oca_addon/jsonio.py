"""JSON in and out on the hot paths: every streamed chunk, every request body.

orjson decodes a chat chunk 4-5x and encodes a frame 10x faster than the standard
library (bench/README: the per-chunk and requests-per-second figures). It is stricter, so
what it refuses goes to the standard library, which gives the same result, or the error
message a client is shown: NaN and Infinity, lone surrogates, integers beyond 64 bits on
output, non-string keys. (On input orjson reads an integer beyond 64 bits as a float.)
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_compact_ascii = json.JSONEncoder(separators=(",", ":"))


def loads(data: bytes | bytearray | str) -> Any:
    """Like json.loads; raises json.JSONDecodeError (a ValueError) with the standard
    library's message on bad input, BeyondLimits (a ValueError) on nesting or numbers beyond
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
        if isinstance(e, json.JSONDecodeError):
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
