"""The client APIs oca-proxy serves, one object each, kept by endpoint: the one place that
knows what differs between them (`base.ClientApi`). Adding one is a module here and a line
below."""

from __future__ import annotations

from oca_addon.core.apis.base import ClientApi, Inputs
from oca_addon.core.apis.chat import ChatApi
from oca_addon.core.apis.completions import CompletionsApi
from oca_addon.core.apis.embeddings import EmbeddingsApi
from oca_addon.core.apis.local import CountTokensApi, LocalRequest, ModelsApi
from oca_addon.core.apis.messages import MessagesApi
from oca_addon.core.apis.responses import ResponsesApi
from oca_addon.core.routing import Endpoint, classify

CHAT = ChatApi()
RESPONSES = ResponsesApi()
MESSAGES = MessagesApi()
COMPLETIONS = CompletionsApi()
EMBEDDINGS = EmbeddingsApi()
MODELS = ModelsApi()
COUNT_TOKENS = CountTokensApi()

API: dict[Endpoint, ClientApi] = {
    api.endpoint: api
    for api in (CHAT, RESPONSES, MESSAGES, COMPLETIONS, EMBEDDINGS, MODELS, COUNT_TOKENS)
}


def label(name: str) -> str:
    """A record's API name (an endpoint's value, or "oca", "page") as people read it."""
    try:
        return API[Endpoint(name)].label
    except ValueError:
        return name


def api_for(path: str) -> ClientApi | None:
    """The client API a request path calls (`/v1/chat/completions?x` -> CHAT); None for
    anything that is not the API."""
    endpoint = classify(path)
    return API[endpoint] if endpoint is not None else None


__all__ = [
    "API",
    "CHAT",
    "COMPLETIONS",
    "COUNT_TOKENS",
    "EMBEDDINGS",
    "MESSAGES",
    "MODELS",
    "RESPONSES",
    "ClientApi",
    "Inputs",
    "LocalRequest",
    "api_for",
    "label",
]
