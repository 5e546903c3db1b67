"""Embeddings (`/v1/embeddings`): sent to OCA as they are (its JSON answer comes back)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oca_addon.core.apis.base import ClientApi, Inputs
from oca_addon.core.errors import RequestError
from oca_addon.core.routing import Endpoint

if TYPE_CHECKING:
    from oca_addon.core.exchange import Exchange


class EmbeddingsApi(ClientApi):
    endpoint = Endpoint.EMBEDDINGS
    streams = False

    def client_stream(self, body: dict[str, Any]) -> bool:
        return False

    def prepare(self, ex: Exchange, body: dict[str, Any], given: Inputs) -> None:
        if "input" not in body:
            raise RequestError("'input' is required", param="input")
        ex.upstream_body = {**body, "model": given.target}
