"""What translating one request leaves for the next turn of the same conversation.

A Claude Code turn sends the whole conversation again: hundreds of messages, up to MBs, of
which only the last two or three are new. Translating all of them again costs about 4 ms
per MB in Python; with the previous turn's translation remembered, a turn costs one
comparison with the previous request (its bytes, a few hundredths of a ms per MB; or its
parsed messages, in C, 0.35 to 1 ms per MB) and the translation of what is new.

The rule that keeps this exact: a remembered translation is used only for a prefix of
messages equal to the ones it was made from, under the same settings (`key`), and the
translators remember only work that depends on nothing else. Equal is told by the bytes
where the client writes compact JSON (translate/layout.py: memcmp), else by `==` on the
parsed JSON. `tests/unit/test_memo.py` checks remembered == fresh over many kinds of edits.

A few conversations are remembered at once (Claude Code's subagents are conversations of
their own); each is its last request's parsed messages plus the translation, so the memory
is bounded: `size` conversations, each forgotten once unused for `max_idle` seconds.
"""

from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from oca_addon.translate import layout as layouts
from oca_addon.translate.layout import Layout


@dataclass(eq=False)
class Remembered:
    """One conversation's last translated request."""

    messages: list[Any]  # the client's messages, as parsed (compared, never changed)
    key: Hashable  # the settings the translation depended on
    state: Any  # what the translator keeps (its checkpoints and output)
    extra: dict[str, Any] = field(default_factory=dict)  # later work (token counts)
    used: float = field(default_factory=time.monotonic)
    layout: Layout | None = None  # where the messages sit in the request's bytes
    pending: RawBody | None = None  # the request, until settle() finds its layout


@dataclass(eq=False)
class RawBody:
    """A request as the client sent it (`raw`), as parsed (`body`), and the field holding its
    messages; `layout` is set by match() when the bytes told what the turn shares."""

    raw: bytes
    body: dict[str, Any]
    field: str
    layout: Layout | None = None


class ConversationMemo:
    def __init__(self, size: int = 8, max_idle: float = 1800.0) -> None:
        self.size = size
        self.max_idle = max_idle
        self._entries: list[Remembered] = []  # the most recently used first
        # Pushed out, not yet freed: freeing a conversation of MBs takes milliseconds, which
        # the caller spends when nobody waits (release(): the addon, as a call ends).
        self._dropped: list[Remembered] = []

    def __len__(self) -> int:
        return len(self._entries)

    def match(
        self, messages: list[Any], key: Hashable, raw: RawBody | None = None
    ) -> tuple[Remembered | None, int]:
        """The remembered conversation that shares the longest prefix of messages with
        `messages` (under the same key), and the length of that prefix (0: none). `raw`:
        the request's bytes, compared with each remembered request's where both have a
        layout (its own layout then goes into `raw.layout`)."""
        best: Remembered | None = None
        best_n = 0
        best_layout: Layout | None = None
        if not messages:
            return None, 0
        first = messages[0]
        for entry in self._entries:
            old = entry.messages
            if entry.key != key or not old:
                continue
            by_bytes = None
            if raw is not None and entry.layout is not None and entry.layout.field == raw.field:
                by_bytes = layouts.extend(entry.layout, raw.raw, raw.body)
            if by_bytes is not None:
                n, found = by_bytes
            elif old[0] != first:
                continue
            else:
                n, found = common_prefix(old, messages), None
            if n > best_n:
                best, best_n, best_layout = entry, n, found
                if n == len(messages):
                    break  # none can share more
        if raw is not None:
            raw.layout = best_layout
        return best, best_n

    def keep(self, entry: Remembered, replaces: Remembered | None = None) -> None:
        """Remember `entry` (most recent first), in place of the one it continues."""
        if self.size <= 0:
            return
        self.expire(entry.used)
        entries = [e for e in self._entries if e is not replaces]
        entries.insert(0, entry)
        self._dropped += entries[self.size :]
        if replaces is not None:
            self._dropped.append(replaces)
        if len(self._dropped) > self.size:  # release() not called lately: never hold more
            self._dropped = []
        del entries[self.size :]
        self._entries = entries

    def remember(
        self,
        messages: list[Any],
        key: Hashable,
        state: Any,
        previous: Remembered | None = None,
        same: int = 0,
        raw: RawBody | None = None,
        *,
        share: bool = True,
    ) -> Remembered:
        """Keep a translated request (`state`) in place of the `previous` one it continued
        (its first `same` messages equal to these): those as they were parsed before, as the
        kept translation holds their text already, so this request's copy of it can go.
        `raw`: the request's bytes (as given to match()), for the next turn's comparison.
        `share=False`: keep these messages whole (views of this request's bytes: taking
        the earlier ones would keep the earlier request's bytes too)."""
        if previous is not None and share:
            kept = previous.messages[:same] + messages[same:]
        else:
            kept = messages
        entry = Remembered(kept, key, state)
        if raw is not None:
            if raw.layout is not None:
                entry.layout = raw.layout
            else:
                entry.pending = raw
        self.keep(entry, replaces=previous)
        return entry

    def settle(self) -> None:
        """Find the layout of the requests remembered without one: a pass over the body
        (orjson writing it again), which the caller makes once the request has gone."""
        for entry in self._entries:
            raw, entry.pending = entry.pending, None
            if raw is not None:
                entry.layout = layouts.index(raw.raw, raw.body, raw.field)

    def release(self) -> None:
        """Free what keep() pushed out."""
        self._dropped = []

    def expire(self, now: float | None = None) -> None:
        """Forget the conversations unused for max_idle seconds (release() frees them)."""
        now = time.monotonic() if now is None else now
        fresh = [e for e in self._entries if now - e.used < self.max_idle]
        if len(fresh) < len(self._entries):
            self._dropped += [e for e in self._entries if e not in fresh]
            self._entries = fresh

    def clear(self) -> None:
        self._entries = []
        self._dropped = []


def common_prefix(a: list[Any], b: list[Any]) -> int:
    """How many leading items of `a` and `b` are equal (the comparisons in C, stopping at
    the first difference)."""
    unequal = map(operator.ne, a, b)
    return next(itertools.compress(itertools.count(), unequal), min(len(a), len(b)))
