"""The two APIs oca-proxy answers itself: the model list (`/v1/models`, in the OpenAI or
Anthropic shape) and Anthropic's token count (`/v1/messages/count_tokens`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oca_addon.core.apis.base import ClientApi
from oca_addon.core.errors import RequestError
from oca_addon.core.modelinfo import Catalog, anthropic_model_list, openai_model_list
from oca_addon.core.routing import Endpoint
from oca_addon.translate.count_tokens import count_tokens


@dataclass(frozen=True)
class LocalRequest:
    """What a local answer is made from."""

    body: dict[str, Any] | None  # the client's JSON (None for a GET)
    catalog: Catalog | None  # OCA's model list (fetched only for `needs_login` APIs)
    aliases: list[str]  # the mapping's names that are not patterns
    anthropic_client: bool  # the client sent anthropic-version


class ModelsApi(ClientApi):
    endpoint = Endpoint.MODELS
    local = True
    takes_body = False
    local_note = "answered by oca-proxy from OCA's model list"

    def answer(self, req: LocalRequest) -> dict[str, Any]:
        if req.anthropic_client:
            return anthropic_model_list(req.catalog, req.aliases)
        return openai_model_list(req.catalog, req.aliases)


class CountTokensApi(ClientApi):
    endpoint = Endpoint.COUNT_TOKENS
    flavor = "anthropic"
    local = True
    needs_login = False  # a local estimate: no call to OCA
    local_note = "counted by oca-proxy"

    @property
    def label(self) -> str:
        return "anthropic count_tokens"

    def answer(self, req: LocalRequest) -> dict[str, Any]:
        body = req.body or {}
        if not isinstance(body.get("messages"), list):
            raise RequestError("'messages' must be an array")
        return {"input_tokens": count_tokens(body)}
