"""Anthropic Messages API <-> OpenAI Chat Completions.

- `request`, `blocks`: a `/v1/messages` body -> an OCA `/chat/completions` body
  (`anthropic_to_chat`).
- `stream`: upstream `chat.completion.chunk`s -> the Messages SSE grammar the Anthropic SDK
  and Claude Code enforce (`AnthropicStream`).
- `answer`: an assembled chat completion -> one `Message` (`chat_to_anthropic`); upstream
  error messages in Claude Code's words (`client_error_message`).
- `native`: models that speak Messages themselves (`prepare_native_messages`,
  `NativeMessagesStream`, `NativeMessagesAssembler`).
- `quick`: the same translation of a Claude Code turn's conversation, its texts copied
  as written (translate/rawjson.py).
- `common`: the context and helpers the others share.

Pure Python over dicts and bytes: no mitmproxy here.
"""

from oca_addon.translate.anthropic import quick
from oca_addon.translate.anthropic.answer import chat_to_anthropic, client_error_message
from oca_addon.translate.anthropic.common import (
    BILLING_PREFIX,
    ERROR_STATUS,
    MAX_STOP_SEQUENCES,
    MIN_THINKING_BUDGET,
    AnthropicContext,
    merge_usage,
    upstream_tool_name,
)
from oca_addon.translate.anthropic.native import (
    NativeMessagesAssembler,
    NativeMessagesStream,
    prepare_native_messages,
)
from oca_addon.translate.anthropic.request import anthropic_to_chat
from oca_addon.translate.anthropic.stream import AnthropicStream

__all__ = [
    "BILLING_PREFIX",
    "ERROR_STATUS",
    "MAX_STOP_SEQUENCES",
    "MIN_THINKING_BUDGET",
    "AnthropicContext",
    "AnthropicStream",
    "NativeMessagesAssembler",
    "NativeMessagesStream",
    "anthropic_to_chat",
    "chat_to_anthropic",
    "client_error_message",
    "merge_usage",
    "prepare_native_messages",
    "quick",
    "upstream_tool_name",
]
