"""The OpenAI Responses API (`/v1/responses`): native for models that serve it, else
translated to chat (translate/responses)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oca_addon.core import sse
from oca_addon.core.apis.base import ClientApi, Inputs
from oca_addon.core.routing import Endpoint
from oca_addon.translate import responses
from oca_addon.translate.shapes import ChatCompletion

if TYPE_CHECKING:
    from oca_addon.core.exchange import Exchange


class ResponsesApi(ClientApi):
    endpoint = Endpoint.RESPONSES

    def decode_quick(self, raw: bytes) -> tuple[dict[str, Any], Any]:
        return responses.quick.decode(raw)

    def prepare(self, ex: Exchange, body: dict[str, Any], given: Inputs) -> None:
        if ex.route.native:
            ex.upstream_body, ctx = responses.prepare_native_responses(
                body,
                target_model=given.target,
                model_info=given.info,
                reasoning_effort=given.effort,
                history=given.history,
            )
            ex.ctx = ctx
            ex.make_translator = lambda: responses.NativeResponsesStream(ctx)
            return
        chat, rctx = responses.responses_to_chat(
            body,
            target_model=given.target,
            model_info=given.info,
            reasoning_effort=given.effort,
            history=given.history,
            memo=given.memo,
            raw=given.raw,
            quick_items=given.quick,
        )
        ex.memo = given.memo
        ex.ctx = rctx
        ex.send_chat(chat, lambda: responses.ResponsesStream(rctx))

    def native_answer(self, ex: Exchange, events: list[sse.SSEEvent]) -> dict[str, Any]:
        resp = responses.NativeResponsesAssembler(ex.ctx)
        for ev in events:
            resp.feed(ev)
        return resp.result()

    def from_chat(self, ex: Exchange, completion: ChatCompletion) -> dict[str, Any]:
        return responses.chat_to_response(completion, ex.ctx)

    def with_effort(self, body: dict[str, Any], effort: str) -> None:
        reasoning = body.get("reasoning")
        body["reasoning"] = {**(reasoning if isinstance(reasoning, dict) else {}), "effort": effort}

    def terminal_error(self, status: int, message: str) -> bytes:
        body = {"type": "error", "code": "server_error", "message": message, "param": None}
        return sse.encode(body, event="error")
