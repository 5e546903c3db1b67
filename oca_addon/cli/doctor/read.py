"""Reading OCA's answers to the doctor's calls (pure): what arrived where, never the text.

An answer is summed up by its shape only: whether text came (not what it said), where
reasoning arrived, the usage fields' names, a tool call, the finish reason; an error by
its shape, type, code and message (OCA's own words, with the request id kept apart).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from oca_addon.cli.doctor.plan import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES, RESPONSES
from oca_addon.core.refusals import EFFORT_FIELDS, parse_refusal
from oca_addon.core.sse import SSEParser

_REQUEST_ID = re.compile(r"\s*\(?opc-request-id:\s*[\w-]+\)?", re.IGNORECASE)
MAX_MESSAGE = 1000


@dataclass
class Reply:
    """What came back for one call, as received."""

    status: int
    content_type: str
    body: bytes
    ms: float = 0.0
    request_id: str | None = None  # the opc-request-id header of the answer


def summarize(api: str, reply: Reply) -> dict[str, Any]:
    """One answer's shape: status, served, streamed, text, reasoning, usage, tool, error."""
    out: dict[str, Any] = {"status": reply.status, "served": 200 <= reply.status < 300}
    streamed = reply.content_type.startswith("text/event-stream")
    out["streamed"] = streamed
    if not out["served"]:
        out["error"] = error_of(reply)
        return out
    seen = _Seen()
    try:
        if streamed:
            parser = SSEParser()
            for event in parser.feed(reply.body) + parser.feed(b"\n\n"):
                if event.data.strip() == "[DONE]":
                    seen.done = True
                    continue
                try:
                    data = event.json()
                except ValueError:
                    seen.garbage = True
                    continue
                seen.read_event(api, event.event, data)
        else:
            seen.read_whole(api, json.loads(reply.body))
    except (ValueError, UnicodeDecodeError):
        seen.garbage = True
    out |= seen.summary()
    return out


def error_of(reply: Reply) -> dict[str, Any]:
    """An error answer: LiteLLM's {"error": {...}}, OCI's flat {"code", "message"}, or other."""
    try:
        data = json.loads(reply.body)
    except (ValueError, UnicodeDecodeError):
        kind = "html" if b"<html" in reply.body[:500].lower() else "text"
        return {"shape": kind, "message": None, "bytes": len(reply.body)}
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        return {
            "shape": "litellm",
            "keys": sorted(err),
            "type": err.get("type"),
            "param": err.get("param"),
            "code": err.get("code"),
            **_message(err.get("message")),
        }
    if isinstance(data, dict) and "message" in data and "code" in data:
        return {"shape": "oci", "code": data.get("code"), **_message(data.get("message"))}
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return {"shape": "error-string", **_message(data["error"])}
    return {"shape": "other", "message": None}


def _message(value: Any) -> dict[str, Any]:
    """OCA's message, without the request id it quotes (the calls list keeps each id)."""
    if not isinstance(value, str):
        return {"message": None if value is None else json.dumps(value)[:MAX_MESSAGE]}
    return {"message": _REQUEST_ID.sub("", value).strip()[:MAX_MESSAGE]}


def usage_fields(usage: Any, prefix: str = "") -> set[str]:
    """The names in a usage object, nested ones dotted (prompt_tokens_details.cached_tokens)."""
    if not isinstance(usage, dict):
        return set()
    out: set[str] = set()
    for key, value in usage.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= usage_fields(value, name + ".") or {name}
        else:
            out.add(name)
    return out


class _Seen:
    def __init__(self) -> None:
        self.text = False
        self.reasoning: set[str] = set()
        self.usage: set[str] = set()
        self.tool_call = False
        self.finish: str | None = None
        self.error: dict[str, Any] | None = None
        self.done = False
        self.garbage = False
        self.events = 0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text,
            "reasoning": sorted(self.reasoning) or None,
            "usage_fields": sorted(self.usage),
            "tool_call": self.tool_call,
            "finish": self.finish,
        }
        if self.garbage:
            out["unreadable"] = True
        if self.error is not None:
            out["error"] = self.error  # a 200 that carries an error (mid-stream)
        return out

    def _chat_like(self, choice: dict[str, Any], part: dict[str, Any], where: str) -> None:
        if part.get("content") or choice.get("text"):
            self.text = True
        for key in ("reasoning_content", "thinking", "reasoning"):
            if part.get(key):
                self.reasoning.add(f"{where}.{key}")
        if part.get("tool_calls"):
            self.tool_call = True
        if choice.get("finish_reason"):
            self.finish = str(choice["finish_reason"])

    def _error(self, data: Any) -> None:
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            self.error = {"shape": "in-stream", **_message(err.get("message"))}
            self.error["type"] = err.get("type")
            self.error["code"] = err.get("code")

    def read_event(self, api: str, name: str | None, data: Any) -> None:
        self.events += 1
        if not isinstance(data, dict):
            return
        if "error" in data and data.get("type") in (None, "error"):
            self._error(data)
            return
        if api in (CHAT, COMPLETIONS):
            for choice in data.get("choices") or []:
                if isinstance(choice, dict):
                    delta = choice.get("delta")
                    self._chat_like(choice, delta if isinstance(delta, dict) else {}, "delta")
            self.usage |= usage_fields(data.get("usage"))
        elif api == RESPONSES:
            kind = str(data.get("type") or name or "")
            if kind == "response.output_text.delta":
                self.text = True
            elif "reasoning" in kind and kind.endswith(".delta"):
                self.reasoning.add(kind)
            elif kind == "response.output_item.added":
                item = data.get("item") or {}
                if item.get("type") in ("function_call", "custom_tool_call"):
                    self.tool_call = True
            elif kind in ("response.completed", "response.incomplete", "response.failed"):
                response = data.get("response") or {}
                self.usage |= usage_fields(response.get("usage"))
                self.finish = str(response.get("status") or kind)
                if kind == "response.failed":
                    self._error(response)
        elif api == MESSAGES:
            kind = str(data.get("type") or name or "")
            if kind == "content_block_start":
                block = (data.get("content_block") or {}).get("type")
                if block in ("thinking", "redacted_thinking"):
                    self.reasoning.add(f"content_block.{block}")
                elif block == "tool_use":
                    self.tool_call = True
            elif kind == "content_block_delta":
                if (data.get("delta") or {}).get("type") == "text_delta":
                    self.text = True
            elif kind == "message_start":
                self.usage |= usage_fields((data.get("message") or {}).get("usage"))
            elif kind == "message_delta":
                self.usage |= usage_fields(data.get("usage"))
                reason = (data.get("delta") or {}).get("stop_reason")
                self.finish = str(reason) if reason else self.finish

    def read_whole(self, api: str, data: Any) -> None:
        if not isinstance(data, dict):
            self.garbage = True
            return
        if "error" in data:
            self._error(data)
        if api in (CHAT, COMPLETIONS):
            for choice in data.get("choices") or []:
                if isinstance(choice, dict):
                    message = choice.get("message")
                    self._chat_like(choice, message if isinstance(message, dict) else {}, "message")
        elif api == RESPONSES:
            for item in data.get("output") or []:
                kind = item.get("type") if isinstance(item, dict) else None
                if kind == "message":
                    self.text = True
                elif kind == "reasoning":
                    self.reasoning.add("output.reasoning")
                elif kind in ("function_call", "custom_tool_call"):
                    self.tool_call = True
            self.finish = str(data.get("status")) if data.get("status") else None
        elif api == MESSAGES:
            for block in data.get("content") or []:
                kind = block.get("type") if isinstance(block, dict) else None
                if kind == "text":
                    self.text = True
                elif kind in ("thinking", "redacted_thinking"):
                    self.reasoning.add(f"content.{kind}")
                elif kind == "tool_use":
                    self.tool_call = True
            self.finish = data.get("stop_reason")
        elif api == EMBEDDINGS:
            vectors = data.get("data") or []
            self.text = bool(vectors)
        self.usage |= usage_fields(data.get("usage"))


# --- OCA's refusals -----------------------------------------------------------------------


def refusal(message: str | None) -> dict[str, Any] | None:
    """What an OCA refusal says (refusals.parse_refusal: LiteLLM's and the providers'
    wordings): refused params ({"params": [...]}), the efforts taken ({"efforts": [...]}) or
    the output maximum ({"maximum": N}); None when it says none of these."""
    found = parse_refusal(message) if message else None
    if found is None:
        return None
    if found.kind == "param":
        return {"params": list(found.params)}
    if found.kind == "max_tokens" and found.maximum is not None:
        return {"maximum": found.maximum}
    if found.kind == "value" and found.field in EFFORT_FIELDS and found.supported:
        return {"efforts": list(found.supported)}
    return None
