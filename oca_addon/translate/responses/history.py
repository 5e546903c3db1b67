"""The in-memory store behind `previous_response_id` (`ResponseHistory`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from oca_addon.translate.responses.common import previous_response_not_found


class ResponseHistory:
    """Bounded in-memory LRU store of answered turns, for `previous_response_id`.

    Each entry holds the turn's full (already expanded) input items and its output items,
    so expanding an id gives the whole conversation up to and including that answer.
    """

    def __init__(self, max_entries: int = 200) -> None:
        self.max_entries = max(1, max_entries)
        self._entries: OrderedDict[str, tuple[list[Any], list[Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, response_id: object) -> bool:
        return response_id in self._entries

    def remember(self, response_id: str, input_items: list[Any], output_items: list[Any]) -> None:
        if not isinstance(response_id, str) or not response_id:
            return
        with self._lock:
            self._entries[response_id] = (list(input_items or ()), list(output_items or ()))
            self._entries.move_to_end(response_id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def expand(self, previous_response_id: str) -> list[Any]:
        """The earlier turn's input + output items, or the standard 400 if unknown."""
        with self._lock:
            entry = self._entries.get(previous_response_id)
            if entry is None:
                raise previous_response_not_found(str(previous_response_id))
            self._entries.move_to_end(previous_response_id)
            return [*entry[0], *entry[1]]
