"""Prompt-caching breakpoints on a translated chat request, for models that cache.

OCA lists `model_info.supports_caching`; for those, known clients put
`cache_control: {type: ephemeral}` on chat content parts (Cline: the system message and the
last two user messages). A client's own Anthropic breakpoints are kept at the end of the
chat message that ends the marked turn; with none given, Cline's choice is used.
"""

from __future__ import annotations

from typing import Any

EPHEMERAL = {"type": "ephemeral"}
MAX_BREAKPOINTS = 4  # Anthropic's limit per request
MARK = "_cache_control"  # set on a chat message while it is being built; removed here


def client_breakpoint(block: Any) -> dict[str, Any] | None:
    """The `cache_control` of one Anthropic block, reduced to what providers take."""
    cc = block.get("cache_control") if isinstance(block, dict) else None
    if not isinstance(cc, dict) or cc.get("type") != "ephemeral":
        return None
    ttl = cc.get("ttl")
    return {**EPHEMERAL, "ttl": ttl} if isinstance(ttl, str) else dict(EPHEMERAL)


def apply(messages: list[dict[str, Any]], *, enabled: bool) -> None:
    """Move the builder's marks onto content parts (or drop them when the model does not
    cache); with no marks at all, mark the system message and the last two user messages."""
    marked = [m for m in messages if m.get(MARK)]
    marks = {id(m): m.pop(MARK) for m in marked}
    if not enabled:
        return
    if not marks:
        users = [m for m in messages if m.get("role") == "user"][-2:]
        system = [m for m in messages[:1] if m.get("role") == "system"]
        marked = system + users
        marks = {id(m): dict(EPHEMERAL) for m in marked}
    if len(marked) > MAX_BREAKPOINTS:  # the system prompt and the latest turns matter most
        keep = [m for m in marked if m.get("role") == "system"][:1]
        marked = keep + [m for m in marked if m not in keep][-(MAX_BREAKPOINTS - len(keep)) :]
    for m in marked:
        _put(m, marks[id(m)])


def _put(message: dict[str, Any], cc: dict[str, Any]) -> None:
    content = message.get("content")
    if isinstance(content, str):
        if content:
            message["content"] = [{"type": "text", "text": content, "cache_control": cc}]
    elif isinstance(content, list) and content:
        texts = [p for p in content if isinstance(p, dict) and p.get("type") == "text"]
        part = texts[-1] if texts else content[-1]
        if isinstance(part, dict):
            part["cache_control"] = cc
