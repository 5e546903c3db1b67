"""A local estimate of the input tokens of an Anthropic Messages request.

Serves `/v1/messages/count_tokens` (OCA has no tokenizer endpoint) and the
`message_start` usage of translated streams. Clients use the number to decide when the
context is full, so it errs HIGH: about one token per 3.5 characters, rounded up, plus a
fixed overhead per message, per tool and per image. It never returns 0, never touches the
network and never raises, whatever the body holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from oca_addon.core.jsonio import dumps_spaced_any

CHARS_PER_TOKEN = 3.5
BASE_OVERHEAD = 8  # request framing
MESSAGE_OVERHEAD = 5  # role + separators per message
BLOCK_OVERHEAD = 3  # per tool_use / tool_result block
TOOL_OVERHEAD = 12  # per tool definition (framing of name, description, schema)
IMAGE_TOKENS = 1600  # Anthropic's ceiling for one image (~1.15 megapixels)
PDF_MIN_TOKENS = 1600
PDF_BYTES_PER_TOKEN = 30  # a base64 PDF's decoded size / 30 (~2k tokens per 60 kB page)


def count_tokens(body: dict[str, Any]) -> int:
    """Estimated input tokens of a Messages request body (system, messages, tools)."""
    return estimate(body)[0]


@dataclass(eq=False)
class Sums:
    """What a conversation's next turn need not count again (translate/memo.py): running
    totals over its messages, `chars[i]` and `fixed[i]` covering `messages[:i]`, and the
    count of its system prompt and tools (`head`), which Claude Code sends alike each turn."""

    chars: list[int]
    fixed: list[int]
    head: tuple[Any, Any, Any] = (None, None, None)  # system, tools, tool_choice
    head_chars: int = 0
    head_fixed: int = 0


def estimate(
    body: dict[str, Any], known: Sums | None = None, same: int = 0
) -> tuple[int, Sums | None]:
    """count_tokens, and what a later turn can take from it. `known`: what an earlier
    request's estimate left, whose first `same` messages are equal to these (they are not
    counted again, nor its system prompt and tools if they are equal too)."""
    if not isinstance(body, dict):
        return max(1, Counter().total()), None
    counter = Counter()
    head = (body.get("system"), body.get("tools"), body.get("tool_choice"))
    if known is not None and known.head == head:
        head = known.head  # the equal one kept before: this request's copy can go
        head_chars, head_fixed = known.head_chars, known.head_fixed
    else:
        head_chars, head_fixed = count_head(*head)
    messages = body.get("messages")
    sums = _message_sums(messages, known, same) if isinstance(messages, list) else Sums([0], [0])
    sums.head, sums.head_chars, sums.head_fixed = head, head_chars, head_fixed
    counter.chars += sums.chars[-1] + head_chars
    counter.fixed += sums.fixed[-1] + head_fixed
    return max(1, counter.total()), sums


def count_head(system: Any, tools: Any, tool_choice: Any) -> tuple[int, int]:
    """(characters, fixed tokens) of the system prompt, tools and tool choice; the last few
    counted are remembered, as a client's new conversations share them (Claude Code's are
    ~70 KB: counting them is most of a new conversation's estimate)."""
    head = (system, tools, tool_choice)
    for seen, chars, fixed in _RECENT_HEADS:
        if seen == head:
            return chars, fixed
    chars, fixed = _count_head(system, tools, tool_choice)
    _RECENT_HEADS.insert(0, (head, chars, fixed))
    del _RECENT_HEADS[_RECENT_HEADS_KEPT:]
    return chars, fixed


_RECENT_HEADS: list[tuple[tuple[Any, Any, Any], int, int]] = []
_RECENT_HEADS_KEPT = 4


def _count_head(system: Any, tools: Any, tool_choice: Any) -> tuple[int, int]:
    counter = Counter()
    counter.fixed = 0
    counter.system(system)
    if isinstance(tools, list):
        for tool in tools:
            counter.fixed += TOOL_OVERHEAD
            counter.any(tool)
    if tool_choice is not None:
        counter.any(tool_choice)
    return counter.chars, counter.fixed


def _message_sums(messages: list[Any], known: Sums | None, same: int) -> Sums:
    n = min(same, len(known.chars) - 1) if known is not None else 0
    sums = Sums(known.chars[: n + 1], known.fixed[: n + 1]) if known else Sums([0], [0])
    counter = Counter()
    counter.chars, counter.fixed = sums.chars[-1], sums.fixed[-1]
    for i in range(n, len(messages)):
        message = messages[i]
        counter.fixed += MESSAGE_OVERHEAD
        if isinstance(message, dict):
            counter.content(message.get("content"))
        else:
            counter.any(message)
        sums.chars.append(counter.chars)
        sums.fixed.append(counter.fixed)
    return sums


class Counter:
    __slots__ = ("chars", "fixed")

    def __init__(self) -> None:
        self.chars = 0
        self.fixed = BASE_OVERHEAD

    def total(self) -> int:
        return math.ceil(self.chars / CHARS_PER_TOKEN) + self.fixed

    def system(self, system: Any) -> None:
        if isinstance(system, str):
            self.chars += len(system)
        elif system is not None:
            self.content(system)

    def content(self, content: Any) -> None:
        if isinstance(content, str):
            self.chars += len(content)
        elif isinstance(content, list):
            for block in content:
                # The usual blocks of a long conversation here, the rest in block(): a
                # Claude Code request has thousands (same count, fewer calls).
                kind = block.get("type") if type(block) is dict else None
                if kind == "text" and type(text := block.get("text")) is str:
                    self.chars += len(text)
                elif kind == "tool_result" and type(result := block.get("content")) is str:
                    self.fixed += BLOCK_OVERHEAD
                    self.any(block.get("tool_use_id"))
                    self.chars += len(result)
                else:
                    self.block(block)
        elif content is not None:
            self.any(content)

    def block(self, block: Any) -> None:
        if not isinstance(block, dict):
            self.any(block)
            return
        kind = block.get("type")
        if kind == "text":
            self.any(block.get("text"))
        elif kind == "image":
            self.fixed += IMAGE_TOKENS
        elif kind == "document":
            self.document(block)
        elif kind in ("tool_use", "server_tool_use"):
            self.fixed += BLOCK_OVERHEAD
            self.any(block.get("name"))
            self.any(block.get("id"))
            self.json(block.get("input"))
        elif kind == "tool_result":
            self.fixed += BLOCK_OVERHEAD
            self.any(block.get("tool_use_id"))
            self.content(block.get("content"))
        elif kind in ("thinking", "redacted_thinking"):
            # Never sent upstream by the translator (and Anthropic drops earlier turns' thinking).
            return
        else:
            self.any(block)

    def document(self, block: dict[str, Any]) -> None:
        self.any(block.get("title"))
        self.any(block.get("context"))
        source = block.get("source")
        if not isinstance(source, dict):
            self.any(source)
            return
        kind = source.get("type")
        data = source.get("data")
        if kind == "base64" and isinstance(data, str):
            if source.get("media_type") == "application/pdf":
                decoded = len(data) * 3 // 4
                self.fixed += max(PDF_MIN_TOKENS, decoded // PDF_BYTES_PER_TOKEN)
            else:
                self.chars += len(data) * 3 // 4
        elif kind == "content":
            self.content(source.get("content"))
        else:
            self.any(data if kind == "text" else source)

    def json(self, value: Any) -> None:
        try:
            # json.dumps(value, ensure_ascii=False, default=str), its encoder built once
            self.chars += len(dumps_spaced_any(value))
        except (ValueError, TypeError, RecursionError):
            self.any(value)

    def any(self, value: Any) -> None:
        """Every string leaf (keys too) of an arbitrary JSON value; images at a fixed cost."""
        if isinstance(value, str):
            self.chars += len(value)
            return
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                self.chars += len(item)
            elif isinstance(item, dict):
                if item.get("type") == "image":
                    self.fixed += IMAGE_TOKENS
                    continue
                for key, val in item.items():
                    self.chars += len(key) if isinstance(key, str) else 1
                    stack.append(val)
            elif isinstance(item, list | tuple):
                stack.extend(item)
            elif item is not None:
                self.chars += len(str(item))
