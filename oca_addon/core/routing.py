"""Which endpoint a request is for, and how it reaches OCA (natively or translated)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from oca_addon.core.errors import ApiFlavor
from oca_addon.core.modelinfo import CHAT, MESSAGES, RESPONSES, Catalog, supports


class Endpoint(Enum):
    CHAT = "chat"
    RESPONSES = "responses"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    MESSAGES = "messages"
    COUNT_TOKENS = "count_tokens"
    MODELS = "models"

    @property
    def flavor(self) -> ApiFlavor:
        return "anthropic" if self in (Endpoint.MESSAGES, Endpoint.COUNT_TOKENS) else "openai"


# Clients configure base URLs with and without /v1; both work.
_API_PATHS = {
    "/chat/completions": Endpoint.CHAT,
    "/responses": Endpoint.RESPONSES,
    "/completions": Endpoint.COMPLETIONS,
    "/embeddings": Endpoint.EMBEDDINGS,
    "/messages": Endpoint.MESSAGES,
    "/messages/count_tokens": Endpoint.COUNT_TOKENS,
    "/models": Endpoint.MODELS,
}


def classify(path: str) -> Endpoint | None:
    """`/v1/chat/completions?x=y` -> Endpoint.CHAT; None for anything that is not the API."""
    bare = path.split("?", 1)[0].rstrip("/")
    if bare.startswith("/v1/"):
        bare = bare[3:]
    return _API_PATHS.get(bare)


def is_api_path(path: str) -> bool:
    return path.startswith("/v1/") or classify(path) is not None


@dataclass(frozen=True)
class Route:
    """How one request travels: the OCA path, whether its body is translated, and through
    which upstream adapter (translate/upstream/) when the model speaks neither the client's
    API nor chat."""

    upstream_path: str
    native: bool  # True: the client's API goes to OCA as is (model rewritten)
    adapter: str | None = None  # None (native or chat), "responses" or "messages"

    @property
    def translated(self) -> bool:
        return not self.native


CHAT_ROUTE = Route("/chat/completions", native=True)
# Sent natively always, as the original tool sends them: no source says which models
# OCA serves these for, so OCA decides (completions fall back once: see completions_retry).
_ALWAYS_NATIVE = {
    Endpoint.EMBEDDINGS: Route("/embeddings", native=True),
    Endpoint.COMPLETIONS: Route("/completions", native=True),
}
_NATIVE = {
    Endpoint.CHAT: (CHAT, CHAT_ROUTE),
    Endpoint.RESPONSES: (RESPONSES, Route("/responses", native=True)),
    Endpoint.MESSAGES: (MESSAGES, Route("/v1/messages", native=True)),
}
TRANSLATED_TO_CHAT = Route("/chat/completions", native=False)
VIA_RESPONSES = Route("/responses", native=False, adapter="responses")
VIA_MESSAGES = Route("/v1/messages", native=False, adapter="messages")


def plan_route(endpoint: Endpoint, model: str, catalog: Catalog | None) -> Route:
    """Native when the model list says the model speaks the client's API; else through chat
    (the pivot every client translator speaks), or, for a model that lists Responses or
    Messages but not chat, through that API's upstream adapter.

    The list only chooses the route: a model it lacks still goes to OCA (as chat)."""
    if endpoint in _ALWAYS_NATIVE:
        return _ALWAYS_NATIVE[endpoint]
    api, native = _NATIVE[endpoint]
    if supports(catalog, model, api):
        return native
    translated = translated_route(model, catalog)
    return (
        CHAT_ROUTE if translated is TRANSLATED_TO_CHAT and endpoint is Endpoint.CHAT else translated
    )


def translated_route(model: str, catalog: Catalog | None) -> Route:
    """Where a request translated to chat goes: chat unless the model lists Responses or
    Messages and not chat (an empty, unknown or missing list means chat: never refuse)."""
    apis = catalog.apis(model) if catalog else None
    if not apis or CHAT in apis:
        return TRANSLATED_TO_CHAT
    if RESPONSES in apis:
        return VIA_RESPONSES
    if MESSAGES in apis:
        return VIA_MESSAGES
    return TRANSLATED_TO_CHAT
