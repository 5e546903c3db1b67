"""OCA's model list (`GET /v1/model/info`), and the lists clients see at `/v1/models`.

The list chooses routes and limits; it is never a gate (OCA-FACTS: forward, let OCA answer).
In real OCA an entry's id, the name requests carry, is `litellm_params.model` ("oca/gpt-4.1");
`model_name` is a display name for people ("OpenAI GPT 4.1").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

# Values of model_info.supported_api_list seen in real clients (compared case-insensitively).
CHAT = "CHAT_COMPLETIONS"
RESPONSES = "RESPONSES"
MESSAGES = "MESSAGES"


@dataclass(frozen=True)
class ModelEntry:
    id: str  # litellm_params.model: what requests carry
    display_name: str  # model_name: for people
    info: dict[str, Any]  # model_info, with max_output_tokens filled in where known

    @property
    def apis(self) -> frozenset[str]:
        """supported_api_list upper-cased; empty when OCA gives none (then: chat only)."""
        apis = self.info.get("supported_api_list")
        if not isinstance(apis, list):
            return frozenset()
        return frozenset(a.upper() for a in apis if isinstance(a, str))

    @property
    def banner(self) -> str | None:
        banner = self.info.get("banner")
        return banner if isinstance(banner, str) and banner.strip() else None


def _entries(payload: Any) -> list[Any]:
    """`{"data": [...]}` (LiteLLM) or a bare array (the original tool's write-up shows both)."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        return payload["data"]
    return []


def _entry(raw: Any) -> ModelEntry | None:
    if not isinstance(raw, dict):
        return None
    params = raw.get("litellm_params")
    params = params if isinstance(params, dict) else {}
    display = raw.get("model_name")
    model_id = params.get("model")
    if not isinstance(model_id, str) or not model_id:
        model_id = display  # only when the entry has no id of its own
    if not isinstance(model_id, str) or not model_id:
        return None
    info = raw.get("model_info")
    info = dict(info) if isinstance(info, dict) else {}
    # litellm_params.max_tokens may equal the context window: only a fallback for the output cap.
    limit = params.get("max_tokens")
    if info.get("max_output_tokens") is None and isinstance(limit, int) and limit > 0:
        window = info.get("context_window")
        if not (isinstance(window, int) and limit >= window):
            info["max_output_tokens"] = limit
    name = display if isinstance(display, str) and display else model_id
    return ModelEntry(model_id, name, info)


@dataclass
class Catalog:
    """OCA's models by id, and the display names that point to them."""

    entries: dict[str, ModelEntry] = field(default_factory=dict)
    fetched_at: float = field(default_factory=time.time)
    _by_display: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for e in self.entries.values():
            if e.display_name != e.id:
                self._by_display.setdefault(e.display_name, e.id)
                self._by_display.setdefault(e.display_name.lower(), e.id)

    @classmethod
    def from_model_info(cls, payload: Any) -> Catalog:
        entries: dict[str, ModelEntry] = {}
        for raw in _entries(payload):
            entry = _entry(raw)
            if entry is not None and entry.id not in entries:
                entries[entry.id] = entry
        return cls(entries)

    @property
    def names(self) -> frozenset[str]:
        """The model ids."""
        return frozenset(self.entries)

    @property
    def models(self) -> dict[str, dict[str, Any]]:
        """id -> model_info."""
        return {k: e.info for k, e in self.entries.items()}

    def info(self, model: str) -> dict[str, Any] | None:
        entry = self.entries.get(model)
        return entry.info if entry else None

    def id_for(self, name: str) -> str | None:
        """The id of a model named by its id or its display name ("OpenAI GPT 4.1")."""
        if name in self.entries:
            return name
        return self._by_display.get(name) or self._by_display.get(name.lower())

    def apis(self, model: str) -> frozenset[str] | None:
        """The model's APIs; None for a model the list does not hold."""
        entry = self.entries.get(model)
        return entry.apis if entry else None


def supports(catalog: Catalog | None, model: str, api: str) -> bool:
    """Does the list say the model speaks `api`? Unknown models and empty lists: chat only."""
    apis = catalog.apis(model) if catalog else None
    if not apis:
        return api == CHAT
    return api in apis


def openai_model_list(catalog: Catalog | None, aliases: list[str]) -> dict[str, Any]:
    created = int(catalog.fetched_at) if catalog else int(time.time())
    entries = sorted(catalog.entries.values(), key=lambda e: e.id) if catalog else []
    data: list[dict[str, Any]] = [
        {"id": e.id, "object": "model", "created": created, "owned_by": "oca"}
        | ({"display_name": e.display_name} if e.display_name != e.id else {})
        for e in entries
    ]
    known = catalog.entries if catalog else {}
    data += [
        {"id": a, "object": "model", "created": created, "owned_by": "oca-proxy"}
        for a in aliases
        if a not in known
    ]
    return {"object": "list", "data": data}


def anthropic_model_list(catalog: Catalog | None, aliases: list[str]) -> dict[str, Any]:
    entries = catalog.entries if catalog else {}
    ids = list(aliases) + sorted(entries)
    data = [
        {
            "type": "model",
            "id": n,
            "display_name": entries[n].display_name if n in entries else n,
            "created_at": "2025-01-01T00:00:00Z",
        }
        for n in dict.fromkeys(ids)
    ]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


# Reasoning efforts from least to most; "none" is only sent where a model lists it.
_EFFORT_ORDER = ("none", "minimal", "low", "medium", "high", "xhigh")


def fit_effort(effort: Any, info: dict[str, Any] | None) -> str | None:
    """The reasoning effort to send for a model: one of its `reasoning_effort_options`.

    An exact option is kept; otherwise the nearest listed one (ties go up). A model whose
    list is empty gets no effort: never send a value the model does not list. With no list
    at all, `is_reasoning_model` decides; a model OCA's list lacks (info None) gets the
    value as asked: OCA decides.
    """
    if not isinstance(effort, str) or not effort.strip():
        return None
    effort = effort.strip().lower()
    if info is None:
        return effort
    raw = info.get("reasoning_effort_options")
    if not isinstance(raw, list):
        if not info.get("is_reasoning_model") or effort == "none":
            return None
        return "low" if effort == "minimal" else effort  # minimal: GPT-5's own word
    options = [o.lower() for o in raw if isinstance(o, str)]
    if effort in options:
        return effort
    ranked = [o for o in options if o in _EFFORT_ORDER and o != "none"]
    if effort == "none" or effort not in _EFFORT_ORDER or not ranked:
        return None
    rank = _EFFORT_ORDER.index(effort)
    return min(ranked, key=lambda o: (abs(_EFFORT_ORDER.index(o) - rank), -_EFFORT_ORDER.index(o)))


def takes_thinking(info: dict[str, Any] | None) -> bool:
    """Does the model take Anthropic-style `thinking: {type, budget_tokens}` (thinking_config)?"""
    return bool(info and info.get("thinking_config"))


def caches_prompts(info: dict[str, Any] | None) -> bool:
    return bool(info and info.get("supports_caching"))
