"""Prompt-caching breakpoints on a translated chat request, for models that cache.

OCA lists `model_info.supports_caching`; for those, known clients put
`cache_control: {type: ephemeral}` on chat content parts (Cline: the system message and the
last two user messages). A client's own Anthropic breakpoints are kept at the end of the
chat message that ends the marked turn; with none given, Cline's choice is used.
"""

from __future__ import annotations

from typing import Any

from orjson import Fragment

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
    cache); with no marks at all, mark the system message and the last two user messages.

    Never changes a message: a marked one is replaced in `messages` by a copy (the messages
    may be a remembered turn's, shared with the conversation's next request; translate/memo.py).
    """
    marks = {i: m[MARK] for i, m in enumerate(messages) if MARK in m}
    for i in marks:
        messages[i] = {k: v for k, v in messages[i].items() if k != MARK}
    if not enabled:
        return
    if not marks:
        users: list[int] = []
        for i in range(len(messages) - 1, -1, -1):
            if messages[i].get("role") == "user":
                users.insert(0, i)
                if len(users) == 2:
                    break
        system = [0] if messages and messages[0].get("role") == "system" else []
        marks = {i: dict(EPHEMERAL) for i in system + users}
    chosen = sorted(marks)
    if len(chosen) > MAX_BREAKPOINTS:  # the system prompt and the latest turns matter most
        keep = [i for i in chosen if messages[i].get("role") == "system"][:1]
        chosen = keep + [i for i in chosen if i not in keep][-(MAX_BREAKPOINTS - len(keep)) :]
    for i in chosen:
        messages[i] = _put(messages[i], marks[i])


def _put(message: dict[str, Any], cc: dict[str, Any]) -> dict[str, Any]:
    """`message` with `cc` on its last text part (or its last part): a copy."""
    content = message.get("content")
    if isinstance(content, Fragment):  # a text kept as the client wrote it (never empty)
        return {**message, "content": [{"type": "text", "text": content, "cache_control": cc}]}
    if isinstance(content, str):
        if content:
            return {**message, "content": [{"type": "text", "text": content, "cache_control": cc}]}
    elif isinstance(content, list) and content:
        texts = [
            k for k, p in enumerate(content) if isinstance(p, dict) and p.get("type") == "text"
        ]
        k = texts[-1] if texts else len(content) - 1
        part = content[k]
        if isinstance(part, dict):
            parts = list(content)
            parts[k] = {**part, "cache_control": cc}
            return {**message, "content": parts}
    return message
