"""OpenAI Responses API <-> OCA Chat Completions.

- `request`, `items`: a Responses body (`input` items, `instructions`, flat/namespace/custom
  tools, `text.format`, `reasoning`, `previous_response_id`, ...) -> one streamed
  `/chat/completions` request (`responses_to_chat`).
- `stream`: upstream `chat.completion.chunk`s -> the Responses SSE grammar
  (`response.created` ... `response.completed`) (`ResponsesStream`).
- `answer`: an assembled chat completion -> one `response` object (`chat_to_response`).
- `native`: models that serve `/responses` themselves (`prepare_native_responses`,
  `NativeResponsesStream`, `NativeResponsesAssembler`).
- `quick`: the same conversion of a Codex turn's items, its texts copied as written
  (translate/rawjson.py).
- `history`: the in-memory store behind `previous_response_id` (`ResponseHistory`).
- `context`, `common`: the per-request context, the `response` object, shared helpers.

Pure Python over dicts and bytes: no mitmproxy here.
"""

from oca_addon.translate.responses import quick
from oca_addon.translate.responses.answer import chat_to_response
from oca_addon.translate.responses.common import MINTED_REASONING_PREFIX, flat_tool_name
from oca_addon.translate.responses.context import ResponsesContext, response_object
from oca_addon.translate.responses.history import ResponseHistory
from oca_addon.translate.responses.native import (
    NativeResponsesAssembler,
    NativeResponsesStream,
    prepare_native_responses,
)
from oca_addon.translate.responses.request import responses_to_chat
from oca_addon.translate.responses.stream import ResponsesStream

__all__ = [
    "MINTED_REASONING_PREFIX",
    "NativeResponsesAssembler",
    "NativeResponsesStream",
    "ResponseHistory",
    "ResponsesContext",
    "ResponsesStream",
    "chat_to_response",
    "flat_tool_name",
    "prepare_native_responses",
    "quick",
    "response_object",
    "responses_to_chat",
]
