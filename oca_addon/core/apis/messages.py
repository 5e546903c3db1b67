"""The Anthropic Messages API (`/v1/messages`): native for models that serve it, else
translated to chat (translate/anthropic)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oca_addon.core import sse
from oca_addon.core.apis.base import KEPT_HEADERS, ClientApi, Inputs
from oca_addon.core.errors import anthropic_error
from oca_addon.core.routing import Endpoint
from oca_addon.translate import anthropic
from oca_addon.translate.shapes import ChatCompletion

if TYPE_CHECKING:
    from oca_addon.core.exchange import Exchange

# A native call keeps the client's API version and betas (Claude Code's tools need them).
_KEPT_NATIVE = KEPT_HEADERS | {b"anthropic-version", b"anthropic-beta"}


class MessagesApi(ClientApi):
    endpoint = Endpoint.MESSAGES
    flavor = "anthropic"

    @property
    def label(self) -> str:
        return "anthropic"

    def decode_quick(self, raw: bytes) -> tuple[dict[str, Any], Any]:
        return anthropic.quick.decode(raw)

    def prepare(self, ex: Exchange, body: dict[str, Any], given: Inputs) -> None:
        if ex.route.native:
            ex.upstream_body = anthropic.prepare_native_messages(
                body, target_model=given.target, model_info=given.info
            )
            requested = ex.choice.requested
            ex.make_translator = lambda: anthropic.NativeMessagesStream(requested)
            return
        chat, ctx = anthropic.anthropic_to_chat(
            body,
            target_model=given.target,
            model_info=given.info,
            reasoning_effort=given.effort,
            estimate_later=True,  # Exchange.settle()
            memo=given.memo,
            raw=given.raw,
            quick_messages=given.quick,
        )
        ex.memo = given.memo
        ex.ctx = ctx
        ex.send_chat(chat, lambda: anthropic.AnthropicStream(ctx))

    def kept_headers(self, ex: Exchange) -> frozenset[bytes]:
        return _KEPT_NATIVE if ex.route.native else KEPT_HEADERS

    def native_answer(self, ex: Exchange, events: list[sse.SSEEvent]) -> dict[str, Any]:
        msgs = anthropic.NativeMessagesAssembler()
        for ev in events:
            msgs.feed(ev)
        return msgs.result(ex.requested_model)

    def from_chat(self, ex: Exchange, completion: ChatCompletion) -> dict[str, Any]:
        return anthropic.chat_to_anthropic(completion, ex.ctx)

    def with_effort(self, body: dict[str, Any], effort: str) -> None:
        config = body.get("output_config")
        body["output_config"] = {**(config if isinstance(config, dict) else {}), "effort": effort}

    def terminal_error(self, status: int, message: str) -> bytes:
        return sse.encode(anthropic_error(status, message), event="error")
