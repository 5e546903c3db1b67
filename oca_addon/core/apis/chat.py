"""The OpenAI chat API (`/v1/chat/completions`): OCA's own, so native unless the model
serves neither it nor chat (then through the model's API's adapter)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from oca_addon.core import sse
from oca_addon.core.apis.base import ClientApi, Inputs, chat_chunks
from oca_addon.core.modelinfo import fit_effort
from oca_addon.core.routing import Endpoint
from oca_addon.translate.chat import ChatStream, prepare_chat_request, validate_chat_request
from oca_addon.translate.shapes import ChatCompletion, ChatRequest

if TYPE_CHECKING:
    from oca_addon.core.exchange import Exchange


class ChatApi(ClientApi):
    endpoint = Endpoint.CHAT

    def prepare(self, ex: Exchange, body: dict[str, Any], given: Inputs) -> None:
        validate_chat_request(body)
        out = prepare_chat_request({**body, "model": given.target})
        asked = out.pop("reasoning_effort", None) or given.effort
        fitted = fit_effort(asked, given.info)  # never a value the model does not list
        if fitted:
            out["reasoning_effort"] = fitted
        if ex.route.adapter:
            # (the client's own chat body, its fields as sent: a ChatRequest)
            ex.send_chat(cast(ChatRequest, out), ChatStream)
        else:
            ex.upstream_body = out

    def native_answer(self, ex: Exchange, events: list[sse.SSEEvent]) -> Mapping[str, Any]:
        return self.chat_answer(ex, chat_chunks(events))

    def from_chat(self, ex: Exchange, completion: ChatCompletion) -> ChatCompletion:
        return completion

    def with_effort(self, body: dict[str, Any], effort: str) -> None:
        body["reasoning_effort"] = effort
