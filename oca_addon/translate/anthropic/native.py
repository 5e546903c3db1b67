"""Models that speak Messages natively: the request nearly as sent (`prepare_native_messages`),
the stream passed on with repairs (`NativeMessagesStream`) and assembled into one `Message`
for clients that did not stream (`NativeMessagesAssembler`).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from oca_addon.core import sse
from oca_addon.core.errors import ApiError, RequestError, anthropic_error
from oca_addon.translate.anthropic.common import (
    BILLING_PREFIX,
    ERROR_STATUS,
    MIN_THINKING_BUDGET,
    _int,
    _new_message_id,
    _parse_arguments,
    _strip_billing,
    _type_name,
    merge_usage,
)


def prepare_native_messages(
    body: dict[str, Any], *, target_model: str, model_info: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The body for a model that speaks Messages natively: OCA's model name, always streamed,
    Claude Code's per-request billing line dropped (it defeats prompt caching), max_tokens
    (and a thinking budget with it) fitted to the model's output limit, the rest as is."""
    if not isinstance(body, dict):
        raise RequestError(f"request body must be a JSON object, got {_type_name(body)}")
    out = dict(body)
    out["model"] = target_model
    out["stream"] = True
    _fit_native_max_tokens(out, model_info)
    _drop_translated_thinking(out)
    system = out.get("system")
    if isinstance(system, str) and BILLING_PREFIX in system:
        out["system"] = _strip_billing(system)
    elif isinstance(system, list):
        blocks = []
        for block in system:
            if (
                isinstance(block, dict)
                and block.get("type") == "text"
                and isinstance(block.get("text"), str)
                and BILLING_PREFIX in block["text"]
            ):
                text = _strip_billing(block["text"])
                if not text:
                    continue
                block = {**block, "text": text}
            blocks.append(block)
        out["system"] = blocks
    return out


_OUR_SIGNATURE = b"oca-reasoning:"


def _is_our_signature(signature: Any) -> bool:
    if not isinstance(signature, str) or len(signature) < 20:
        return False
    try:
        return base64.b64decode(signature[:20] + "==", validate=False).startswith(_OUR_SIGNATURE)
    except (binascii.Error, ValueError):
        return False


def _drop_translated_thinking(out: dict[str, Any]) -> None:
    """Thinking blocks the translator made up (a chat model's reasoning, our signature) are
    refused by a real Anthropic model, e.g. after `/model` switches a Claude Code session from
    a translated to a native model: drop them. If the turn being continued loses its
    thinking, ask for none this once (Anthropic wants the final assistant turn of a tool
    loop to start with a thinking block when thinking is on)."""
    messages = out.get("messages")
    if not isinstance(messages, list):
        return
    last_assistant = max(
        (i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"),
        default=-1,
    )
    kept: list[Any] = []
    changed = lost_in_last = False
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list) or message.get("role") != "assistant":
            kept.append(message)
            continue
        blocks = [
            b
            for b in content
            if not (
                isinstance(b, dict)
                and b.get("type") == "thinking"
                and _is_our_signature(b.get("signature"))
            )
        ]
        if len(blocks) == len(content):
            kept.append(message)
            continue
        changed = True
        lost_in_last = lost_in_last or i == last_assistant
        if blocks:
            kept.append({**message, "content": blocks})
    if not changed:
        return
    out["messages"] = kept
    thinking = out.get("thinking")
    if lost_in_last and isinstance(thinking, dict) and thinking.get("type") != "disabled":
        del out["thinking"]


def _fit_native_max_tokens(out: dict[str, Any], info: dict[str, Any] | None) -> None:
    """Clients ask for their own model's output limit (Claude Code: 32000 to 128000); the
    provider behind OCA refuses more than its model's, so ask for at most that. A thinking
    budget must stay below max_tokens: it shrinks along (or goes, if nothing is left)."""
    limit = _int(info.get("max_output_tokens")) if isinstance(info, dict) else 0
    max_tokens = out.get("max_tokens")
    if not limit or isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        return
    if max_tokens <= limit:
        return
    out["max_tokens"] = limit
    thinking = out.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if isinstance(budget, int) and not isinstance(budget, bool) and budget >= limit:
        if limit - 1 >= MIN_THINKING_BUDGET:
            out["thinking"] = {**thinking, "budget_tokens": limit - 1}
        else:
            del out["thinking"]


class NativeMessagesStream:
    """A native Messages stream from OCA -> the client, event by event (the StreamDriver's
    translator for native answers): OCA's model name in `message_start` becomes the name the
    client asked for, and a stream that ends without `message_stop` ends with an `error`
    event instead of looking complete."""

    def __init__(self, requested_model: str) -> None:
        self.requested_model = requested_model
        self._stopped = False
        self._done = False

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if self._done or not isinstance(chunk, dict):
            return b""
        kind = chunk.get("type")
        if kind == "message_start" and isinstance(chunk.get("message"), dict):
            chunk = {**chunk, "message": {**chunk["message"], "model": self.requested_model}}
        elif kind == "message_stop":
            self._stopped = True
        return sse.encode(chunk, event=kind if isinstance(kind, str) and kind else None)

    def finish(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        if self._stopped:
            return b""
        return sse.encode(
            anthropic_error(502, "OCA's stream ended before the message was complete"),
            event="error",
        )

    def fail(self, status: int, message: str) -> bytes:
        if self._done:
            return b""
        self._done = True
        return sse.encode(anthropic_error(status, message), event="error")


class NativeMessagesAssembler:
    """A streamed native Messages answer -> one non-streamed `Message` dict.

    `result()` raises errors.ApiError when the stream carried an `error` event.
    """

    def __init__(self) -> None:
        self.message: dict[str, Any] = {}
        self.content: list[dict[str, Any]] = []
        self._json: dict[int, list[str]] = {}
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        self.error: dict[str, Any] | None = None
        self.stopped = False  # message_stop seen

    def feed(self, event: sse.SSEEvent) -> None:
        try:
            data = json.loads(event.data)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        kind = data.get("type") or event.event
        if kind == "message_start":
            message = data.get("message")
            if isinstance(message, dict):
                self.message = message
                if isinstance(message.get("usage"), dict):
                    self.usage = merge_usage(self.usage, message["usage"])
                if isinstance(message.get("content"), list):
                    self.content = [b for b in message["content"] if isinstance(b, dict)]
        elif kind == "content_block_start":
            block = data.get("content_block")
            if isinstance(block, dict):
                index = data.get("index")
                block = dict(block)
                if isinstance(index, int) and index == len(self.content):
                    self.content.append(block)
                elif isinstance(index, int) and 0 <= index < len(self.content):
                    self.content[index] = block
                else:
                    self.content.append(block)
        elif kind == "content_block_delta":
            self._delta(data.get("index"), data.get("delta"))
        elif kind == "content_block_stop":
            index = data.get("index")
            if isinstance(index, int) and index in self._json and 0 <= index < len(self.content):
                raw = "".join(self._json.pop(index))
                block = self.content[index]
                block["input"] = _parse_arguments(raw) if raw.strip() else block.get("input") or {}
        elif kind == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, dict):
                if "stop_reason" in delta:
                    self.stop_reason = delta.get("stop_reason")
                if "stop_sequence" in delta:
                    self.stop_sequence = delta.get("stop_sequence")
                for key in ("container", "stop_details"):
                    if delta.get(key) is not None:
                        self.message[key] = delta[key]
            usage = data.get("usage")
            if isinstance(usage, dict):
                self.usage = merge_usage(self.usage, usage)
        elif kind == "message_stop":
            self.stopped = True
        elif kind == "error":
            error = data.get("error")
            self.error = error if isinstance(error, dict) else {"message": str(error)}

    def _delta(self, index: Any, delta: Any) -> None:
        if not isinstance(index, int) or not isinstance(delta, dict):
            return
        if not 0 <= index < len(self.content):
            return
        block = self.content[index]
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str):
            block["text"] = (block.get("text") or "") + delta["text"]
        elif kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
            block["thinking"] = (block.get("thinking") or "") + delta["thinking"]
        elif kind == "signature_delta" and isinstance(delta.get("signature"), str):
            block["signature"] = delta["signature"]
        elif kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            self._json.setdefault(index, []).append(delta["partial_json"])
        elif kind == "citations_delta" and delta.get("citation") is not None:
            block.setdefault("citations", []).append(delta["citation"])

    def result(self, requested_model: str) -> dict[str, Any]:
        if self.error is not None:
            kind = self.error.get("type")
            message = self.error.get("message")
            raise ApiError(
                ERROR_STATUS.get(kind, 502) if isinstance(kind, str) else 502,
                message if isinstance(message, str) and message else "OCA's stream failed",
            )
        if not self.stopped and self.stop_reason is None:
            raise ApiError(502, "OCA's stream ended before the message was complete")
        for index, parts in list(self._json.items()):  # blocks never stopped
            if 0 <= index < len(self.content):
                self.content[index]["input"] = _parse_arguments("".join(parts))
        self._json.clear()
        usage = {
            "input_tokens": _int(self.usage.get("input_tokens")),
            "output_tokens": _int(self.usage.get("output_tokens")),
        }
        for key, value in self.usage.items():
            if key not in usage and value is not None:
                usage[key] = value
        out = {k: v for k, v in self.message.items() if v is not None}
        out.update(
            {
                "id": self.message.get("id") or _new_message_id(),
                "type": "message",
                "role": "assistant",
                "model": requested_model,
                "content": self.content,
                "stop_reason": self.stop_reason or "end_turn",
                "stop_sequence": self.stop_sequence,
                "usage": usage,
            }
        )
        return out
