"""The legacy completions API (`/v1/completions`). No source says which models OCA serves
it for, so it goes natively first (as the original tool does); refused there, the one retry
goes translated (`retry_elsewhere`): to chat, or through the model's own API's adapter."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from oca_addon.core import sse
from oca_addon.core.apis.base import ClientApi, Inputs
from oca_addon.core.errors import ApiError
from oca_addon.core.routing import TRANSLATED_TO_CHAT, Endpoint, translated_route
from oca_addon.translate import completions
from oca_addon.translate.shapes import ChatChunk

if TYPE_CHECKING:
    from oca_addon.core.exchange import Exchange


class CompletionsApi(ClientApi):
    endpoint = Endpoint.COMPLETIONS

    def prepare(self, ex: Exchange, body: dict[str, Any], given: Inputs) -> None:
        ex.upstream_body = completions.prepare_native_completions(
            body, target_model=given.target, model_info=given.info
        )
        ex.client_body_in = body  # kept for the one retry, translated (retry_elsewhere)
        ex.retry_route = translated_route(given.target, given.catalog)

    def native_answer(self, ex: Exchange, events: list[sse.SSEEvent]) -> dict[str, Any]:
        return completions.assemble_completion_stream(events, requested_model=ex.requested_model)

    def chat_answer(self, ex: Exchange, chunks: Iterable[ChatChunk]) -> dict[str, Any]:
        # All `n` choices (a chat answer keeps only the first).
        stream = completions.CompletionsStream(ex.ctx)
        for chunk in chunks:  # (an error in the stream has raised before: client_body)
            stream.feed(chunk)
        stream.finish()
        assert stream.completion is not None
        ex.usage = stream.completion["usage"]
        return stream.completion

    def retry_elsewhere(self, ex: Exchange) -> Exchange | None:
        if not ex.route.native or ex.client_body_in is None:
            return None
        from oca_addon.core.exchange import Exchange  # the retry's own exchange

        try:
            chat, ctx = completions.completions_to_chat(
                ex.client_body_in,
                target_model=ex.choice.target,
                model_info=ex.model_info,
                reasoning_effort=ex.choice.reasoning_effort,
            )
        except ApiError:  # a body only OCA's /completions takes: its refusal stands
            return None
        route = ex.retry_route or TRANSLATED_TO_CHAT
        out = Exchange(self, route, ex.choice, ex.client_stream, {}, ctx)
        out.model_info = ex.model_info
        out.send_chat(chat, lambda: completions.CompletionsStream(ctx))
        return out
