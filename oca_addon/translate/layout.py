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
    items = body.get(field)
    if not isinstance(items, list) or not raw.startswith(b"{"):
        return None
    keys = list(body)
    at = keys.index(field)
    try:
        pos = _fields(raw, 1, body, keys[:at], comma=False)
        pos = _piece(raw, pos, (b"," if at else b"") + orjson.dumps(field) + b":[")
        ends: list[int] = []
        for j, item in enumerate(items):
            pos = _piece(raw, _piece(raw, pos, b",") if j else pos, orjson.dumps(item))
            ends.append(pos)
    except (_NotCompact, orjson.JSONEncodeError):  # JSONEncodeError: a lone surrogate
        return None
    if not _closes(raw, pos, body, field):
        return None
    return Layout(raw, field, ends, pos)


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
            pos = _piece(raw, _piece(raw, pos, b","), orjson.dumps(item))
            ends.append(pos)
    except (_NotCompact, orjson.JSONEncodeError):
        return None
    # The rest of the object: byte for byte the old one's (checked then), or checked now.
    rest = memoryview(old.raw)[old.end :]
    same_rest = len(raw) - pos == len(rest) and raw.startswith(rest, pos)
    if not (same_rest or _closes(raw, pos, body, old.field)):
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


class _NotCompact(Exception):
    """The bytes are not the compact serialization of what was parsed."""


def _piece(raw: bytes, pos: int, piece: bytes) -> int:
    """The offset past `piece`, which must be at `pos`."""
    if not raw.startswith(piece, pos):
        raise _NotCompact
    return pos + len(piece)


def _fields(raw: bytes, pos: int, body: dict[str, Any], keys: list[str], comma: bool) -> int:
    """The offset past `"key":value` for each of `keys`, comma-separated (a comma before
    the first one too, when `comma`)."""
    for i, key in enumerate(keys):
        head = (b"," if i or comma else b"") + orjson.dumps(key) + b":"
        pos = _piece(raw, _piece(raw, pos, head), orjson.dumps(body[key]))
    return pos


def _closes(raw: bytes, pos: int, body: dict[str, Any], field: str) -> bool:
    """Whether raw from `pos` (its list `field`'s closing bracket) is that bracket, the
    compact serialization of the fields after `field` in `body`, then the closing brace."""
    keys = list(body)
    try:
        pos = _fields(raw, _piece(raw, pos, b"]"), body, keys[keys.index(field) + 1 :], True)
    except (_NotCompact, orjson.JSONEncodeError):
        return False
    return raw[pos:].rstrip(_JSON_SPACE) == b"}"
