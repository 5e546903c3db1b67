"""OCA's model catalogue (`GET /v1/model/info`), and the lists clients see at `/v1/models`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

CHAT = "CHAT_COMPLETIONS"
RESPONSES = "RESPONSES"
MESSAGES = "MESSAGES"
COMPLETIONS = "COMPLETIONS"
EMBEDDINGS = "EMBEDDINGS"


@dataclass
class Catalog:
    """Model name -> OCA `model_info` dict (context_window, supported_api_list, ...)."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetched_at: float = field(default_factory=time.time)

    @classmethod
    def from_model_info(cls, payload: Any) -> Catalog:
        models: dict[str, dict[str, Any]] = {}
        entries = payload.get("data") if isinstance(payload, dict) else None
        for entry in entries or ():
            if not isinstance(entry, dict):
                continue
            name = entry.get("model_name") or (entry.get("litellm_params") or {}).get("model")
            if not isinstance(name, str) or not name:
                continue
            info = dict(entry.get("model_info") or {})
            limit = (entry.get("litellm_params") or {}).get("max_tokens")
            if info.get("max_output_tokens") is None and isinstance(limit, int):
                info["max_output_tokens"] = limit
            models[name] = info
        return cls(models)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.models)

    def info(self, model: str) -> dict[str, Any] | None:
        return self.models.get(model)

    def supports(self, model: str, api: str) -> bool:
        info = self.models.get(model)
        if info is None:
            return api == CHAT
        apis = info.get("supported_api_list")
        if not apis:
            return api == CHAT  # LiteLLM's default: chat only
        return api in apis


def openai_model_list(catalog: Catalog | None, aliases: list[str]) -> dict[str, Any]:
    created = int(catalog.fetched_at) if catalog else int(time.time())
    names = sorted(catalog.models) if catalog else []
    data = [{"id": n, "object": "model", "created": created, "owned_by": "oca"} for n in names]
    data += [
        {"id": a, "object": "model", "created": created, "owned_by": "oca-proxy"}
        for a in aliases
        if a not in (catalog.models if catalog else {})
    ]
    return {"object": "list", "data": data}


def anthropic_model_list(catalog: Catalog | None, aliases: list[str]) -> dict[str, Any]:
    names = list(aliases) + (sorted(catalog.models) if catalog else [])
    data = [
        {
            "type": "model",
            "id": n,
            "display_name": n,
            "created_at": "2025-01-01T00:00:00Z",
        }
        for n in dict.fromkeys(names)
    ]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
