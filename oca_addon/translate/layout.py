"""Where each message of a request sits in its bytes: two turns of a conversation compared
by their bytes (memcmp, a few hundredths of a ms per MB) instead of their parsed JSON (`==`,
about 2 ms per MB on a slow laptop, the largest cost left on a remembered turn).

The rule that keeps it exact: byte offsets are only trusted for a body that is, byte for
byte, the compact serialization (orjson's) of what was parsed from it. Claude Code's
JSON.stringify, httpx and serde_json write that; a body that differs in any way (spaces,
escapes, a field named twice) has no layout, and the memo compares its parsed messages
instead (translate/memo.py). The proof, for a turn whose bytes share a prefix with a
checked body: the shared bytes parse to the same values; the new messages after them and
the rest of the object are checked to be the compact serialization of what was parsed, so
the body names its list once and the shared messages are the parsed ones.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

import orjson

_BLOCK = 1 << 17  # bytes compared at a time while looking for the first difference
_JSON_SPACE = b" \t\r\n"


@dataclass(frozen=True, eq=False)
class Layout:
    """A checked body and the offsets of its list `field`: `ends[i]` is just past item i,
    `end` is the offset of the list's closing bracket."""

    raw: bytes
    field: str
    ends: list[int]
    end: int


def index(raw: bytes, body: dict[str, Any], field: str) -> Layout | None:
    """The layout of `raw` (which parsed into `body`), if it is the compact serialization
    of `body` and `body[field]` is a list; None otherwise."""
    if not raw.startswith(b"{"):
        return None
    pos = 1
    ends: list[int] = []
    end = -1
    try:
        for i, (key, value) in enumerate(body.items()):
            pos = _skip(raw, pos + (i > 0), orjson.dumps(key) + b":", i > 0)
            if pos < 0:
                return None
            if key != field:
                pos = _skip(raw, pos, orjson.dumps(value))
                if pos < 0:
                    return None
                continue
            if not (isinstance(value, list) and raw.startswith(b"[", pos)):
                return None
            pos += 1
            for j, item in enumerate(value):
                pos = _skip(raw, pos + (j > 0), orjson.dumps(item), j > 0)
                if pos < 0:
                    return None
                ends.append(pos)
            if not raw.startswith(b"]", pos):
                return None
            end, pos = pos, pos + 1
    except orjson.JSONEncodeError:  # what orjson will not write (a lone surrogate)
        return None
    if end < 0 or raw[pos:].rstrip(_JSON_SPACE) != b"}":
        return None
    return Layout(raw, field, ends, end)


def extend(old: Layout, raw: bytes, body: dict[str, Any]) -> tuple[int, Layout] | None:
    """How many leading items `raw` (parsed into `body`) shares with the checked body
    `old`, by their bytes, and raw's layout; None when that cannot be told by bytes (nothing
    shared, or raw is not the compact serialization of `body`): compare the parsed items."""
    items = body.get(old.field)
    if not isinstance(items, list) or not old.ends:
        return None
    shared = bisect_right(old.ends, common_bytes(old.raw, raw, old.ends[-1]))
    if shared == 0 or shared > len(items):
        return None
    ends = old.ends[:shared]
    pos = ends[-1]
    try:
        for item in itertools.islice(items, shared, None):
            pos = _skip(raw, pos + 1, orjson.dumps(item), True)
            if pos < 0:
                return None
            ends.append(pos)
    except orjson.JSONEncodeError:
        return None
    if not raw.startswith(b"]", pos):
        return None
    rest = memoryview(old.raw)[old.end :]
    if not (len(raw) - pos == len(rest) and raw.startswith(rest, pos)) and not _rest_checks(
        raw, pos + 1, body, old.field
    ):
        return None
    return shared, Layout(raw, old.field, ends, pos)


def common_bytes(a: bytes, b: bytes, limit: int) -> int:
    """The length of the common prefix of `a` and `b`, at most `limit` (memcmp in blocks,
    then halving the block that differs)."""
    n = min(len(a), len(b), limit)
    view = memoryview(a)
    lo = 0
    while lo < n:
        hi = min(n, lo + _BLOCK)
        if b.startswith(view[lo:hi], lo):
            lo = hi
            continue
        while hi - lo > 1:  # the first difference is in [lo, hi)
            mid = (lo + hi) // 2
            if b.startswith(view[lo:mid], lo):
                lo = mid
            else:
                hi = mid
        return lo
    return n


def _skip(raw: bytes, pos: int, piece: bytes, comma: bool = False) -> int:
    """The offset past `piece` at `pos` (after a comma before it, when `comma`); -1 if the
    bytes there are not that."""
    if comma and not raw.startswith(b",", pos - 1):
        return -1
    return pos + len(piece) if raw.startswith(piece, pos) else -1


def _rest_checks(raw: bytes, pos: int, body: dict[str, Any], field: str) -> bool:
    """Whether raw from `pos` (just past the list) is the compact serialization of the
    fields that follow `field` in `body`, then the closing brace."""
    keys = list(body)
    try:
        for key in keys[keys.index(field) + 1 :]:
            pos = _skip(raw, pos + 1, orjson.dumps(key) + b":", True)
            pos = _skip(raw, pos, orjson.dumps(body[key])) if pos >= 0 else -1
            if pos < 0:
                return False
    except orjson.JSONEncodeError:
        return False
    return raw[pos:].rstrip(_JSON_SPACE) == b"}"
