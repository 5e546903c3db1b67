"""Upstream adapters: one module per kind of model that speaks neither the client's API nor
chat. Every client translator produces a chat/completions request and reads chat chunks; an
adapter turns that request into the model's own API (`request`) and the model's events back
into chat chunks (`Answer`). So a new kind of upstream is one module, not one per client.

- `responses`: models that list only RESPONSES (OCA's Codex models), at `/responses`.
- `messages`: models that list only MESSAGES (Claude models), at `/v1/messages`.
- `common`: the answer-half contract (`UpstreamAnswer`), chat chunk building, the
  composition with a client stream translator (`AdaptedStream`) and the buffered path
  (`answer_chunks`).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

from oca_addon.translate.upstream import messages, responses
from oca_addon.translate.upstream.common import AdaptedStream, UpstreamAnswer, answer_chunks


class Adapter(NamedTuple):
    request: Callable[..., dict[str, Any]]  # (chat body, *, model_info) -> upstream body
    answer: Callable[[str], UpstreamAnswer]  # (model name for the chunks) -> answer half


ADAPTERS = {
    "responses": Adapter(responses.request, responses.Answer),
    "messages": Adapter(messages.request, messages.Answer),
}

__all__ = ["ADAPTERS", "AdaptedStream", "Adapter", "UpstreamAnswer", "answer_chunks"]
