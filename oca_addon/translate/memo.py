"""What translating one request leaves for the next turn of the same conversation.

A Claude Code turn sends the whole conversation again: hundreds of messages, up to MBs, of
which only the last two or three are new. Translating all of them again costs about 4 ms
per MB in Python; with the previous turn's translation remembered, a turn costs one
comparison of the messages (in C, about 0.35 ms per MB) and the translation of what is new.

The rule that keeps this exact: a remembered translation is used only for a prefix of
messages equal (`==`, the parsed JSON) to the ones it was made from, under the same
settings (`key`), and the translators remember only work that depends on nothing else.
`tests/test_memo.py` checks remembered == fresh over many kinds of edits.

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


@dataclass(eq=False)
class Remembered:
    """One conversation's last translated request."""

    messages: list[Any]  # the client's messages, as parsed (compared, never changed)
    key: Hashable  # the settings the translation depended on
    state: Any  # what the translator keeps (its checkpoints and output)
    extra: dict[str, Any] = field(default_factory=dict)  # later work (token counts)
    used: float = field(default_factory=time.monotonic)


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

    def match(self, messages: list[Any], key: Hashable) -> tuple[Remembered | None, int]:
        """The remembered conversation that shares the longest prefix of messages with
        `messages` (under the same key), and the length of that prefix (0: none)."""
        best: Remembered | None = None
        best_n = 0
        if not messages:
            return None, 0
        first = messages[0]
        for entry in self._entries:
            old = entry.messages
            if entry.key != key or not old or old[0] != first:
                continue
            n = common_prefix(old, messages)
            if n > best_n:
                best, best_n = entry, n
                if n == len(messages):
                    break  # none can share more
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
    ) -> Remembered:
        """Keep a translated request (`state`) in place of the `previous` one it continued
        (its first `same` messages equal to these): those as they were parsed before, as the
        kept translation holds their text already, so this request's copy of it can go."""
        kept = previous.messages[:same] + messages[same:] if previous is not None else messages
        entry = Remembered(kept, key, state)
        self.keep(entry, replaces=previous)
        return entry

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
