"""Legacy OpenAI Completions (`/v1/completions`) <-> OCA Chat Completions.

- `request`: the prompt becomes one user message (`completions_to_chat`).
- `stream`: chat chunks -> `text_completion` chunks (`CompletionsStream`).
- `answer`: chat answers -> one `text_completion` (`chat_to_completion`,
  `chat_stream_to_completion`).
- `native`: models that serve `/completions` themselves (`prepare_native_completions`,
  `assemble_completion_stream`).
- `common`: the per-request context and shared helpers.
"""

from oca_addon.translate.completions.answer import chat_stream_to_completion, chat_to_completion
from oca_addon.translate.completions.common import CompletionsContext
from oca_addon.translate.completions.native import (
    assemble_completion_stream,
    prepare_native_completions,
)
from oca_addon.translate.completions.request import completions_to_chat
from oca_addon.translate.completions.stream import CompletionsStream

__all__ = [
    "CompletionsContext",
    "CompletionsStream",
    "assemble_completion_stream",
    "chat_stream_to_completion",
    "chat_to_completion",
    "completions_to_chat",
    "prepare_native_completions",
]
