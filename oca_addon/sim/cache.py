"""Prompt caching: cache_control breakpoints on chat messages or Anthropic blocks.

The first time a prefix up to a breakpoint is seen its tokens are written to the
cache (cache_creation_input_tokens); later the longest cached prefix is read
(cache_read_input_tokens, prompt_tokens_details.cached_tokens). The cache is a
dict in SimState: prefix hash -> tokens.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from oca_addon.sim.models import CHAT_COMPLETIONS, MESSAGES


def _marked(obj: Any) -> bool:
    return isinstance(obj, dict) and "cache_control" in obj


def _strip(obj: Any) -> Any:
    """The element without its cache_control markers (they are not part of the prompt)."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k != "cache_control"}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _units(api: str, body: dict[str, Any]) -> list[tuple[Any, bool]]:
    """The prompt in order, as (element, is a breakpoint) pairs."""
    units: list[tuple[Any, bool]] = []

    def message(m: Any) -> None:
        content = m.get("content") if isinstance(m, dict) else None
        parts = content if isinstance(content, list) else []
        units.append((_strip(m), _marked(m) or any(_marked(p) for p in parts)))

    if api == MESSAGES:
        for tool in body.get("tools") or []:
            units.append((_strip(tool), _marked(tool)))
        system = body.get("system")
        for block in system if isinstance(system, list) else [system] if system else []:
            units.append((_strip(block), _marked(block)))
    for m in body.get("messages") or []:
        message(m)
    return units


def prefixes(api: str, body: dict[str, Any]) -> list[str]:
    """JSON of the prompt prefix ending at each breakpoint, shortest first."""
    if api not in (CHAT_COMPLETIONS, MESSAGES):
        return []
    units = _units(api, body)
    return [
        json.dumps([u for u, _ in units[: i + 1]], sort_keys=True, ensure_ascii=False)
        for i, (_, marked) in enumerate(units)
        if marked
    ]


def account(
    cache: dict[str, int], model_id: str, found: list[str], prompt_tokens: int
) -> tuple[int, int]:
    """(read, created) tokens for a request with these breakpoint prefixes; fills the cache."""
    if not found:
        return 0, 0
    keyed = [
        (hashlib.sha256(f"{model_id}\n{p}".encode()).hexdigest(), min(prompt_tokens, len(p) // 4))
        for p in found
    ]
    read = max((tokens for key, tokens in keyed if key in cache), default=0)
    longest_key, longest = keyed[-1]
    created = 0 if longest_key in cache else max(0, longest - read)
    for key, tokens in keyed:
        cache[key] = tokens
    return read, created
