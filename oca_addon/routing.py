"""Which endpoint a request is for, and how it reaches OCA (natively or translated)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .errors import ApiFlavor
from .modelinfo import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES, RESPONSES, Catalog


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
    """How one request travels: the OCA path and whether its body is translated."""

    upstream_path: str
    native: bool  # True: the client's API goes to OCA as is (model rewritten)

    @property
    def translated(self) -> bool:
        return not self.native


CHAT_ROUTE = Route("/chat/completions", native=True)
_NATIVE = {
    Endpoint.RESPONSES: (RESPONSES, "/responses"),
    Endpoint.MESSAGES: (MESSAGES, "/v1/messages"),
    Endpoint.COMPLETIONS: (COMPLETIONS, "/completions"),
}


def plan_route(endpoint: Endpoint, model: str, catalog: Catalog | None) -> Route:
    """Native when the OCA model lists the client's API, otherwise translated to chat."""
    if endpoint is Endpoint.CHAT:
        return CHAT_ROUTE
    if endpoint is Endpoint.EMBEDDINGS:
        return Route("/embeddings", native=True)
    api, path = _NATIVE[endpoint]
    if catalog is not None and catalog.supports(model, api):
        return Route(path, native=True)
    return Route("/chat/completions", native=False)


def model_serves(catalog: Catalog | None, model: str, endpoint: Endpoint) -> bool:
    """False only when we know the model and it can serve neither this API nor chat."""
    if catalog is None or catalog.info(model) is None:
        return True
    if endpoint is Endpoint.EMBEDDINGS:
        return catalog.supports(model, EMBEDDINGS)
    api = _NATIVE[endpoint][0] if endpoint in _NATIVE else CHAT
    return catalog.supports(model, api) or catalog.supports(model, CHAT)
