"""Models that serve /responses natively: the request (`prepare_native_responses`), the stream
passed on with repairs (`NativeResponsesStream`) and assembled into one object
(`NativeResponsesAssembler`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from oca_addon.core import sse
from oca_addon.core.errors import RequestError
from oca_addon.core.modelinfo import fit_effort
from oca_addon.translate.responses.common import (
    _MINTED_ID_PREFIXES,
    MINTED_REASONING_PREFIX,
    _error_code,
    _text_part,
    as_object,
    new_id,
)
from oca_addon.translate.responses.context import (
    ResponsesContext,
    _check_body,
    _context_from_body,
    response_object,
)
from oca_addon.translate.responses.history import ResponseHistory


def _strip_minted(items: list[Any]) -> list[Any]:
    """Drop reasoning items the proxy minted; drop proxy-minted ids from other items."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            item_id = item.get("id")
            if isinstance(item_id, str) and item_id.startswith(_MINTED_ID_PREFIXES):
                if item.get("type") == "reasoning" or item_id.startswith(MINTED_REASONING_PREFIX):
                    continue
                item = {k: v for k, v in item.items() if k != "id"}
        out.append(item)
    return out


def prepare_native_responses(
    body: dict[str, Any],
    *,
    target_model: str,
    model_info: dict[str, Any] | None = None,
    reasoning_effort: str | None = None,
    history: ResponseHistory | None = None,
) -> tuple[dict[str, Any], ResponsesContext]:
    """The request for a model that serves /responses itself (always streamed)."""
    _check_body(body)
    raw = body.get("input")
    if raw is not None and not isinstance(raw, (str, list)):
        raise RequestError("'input' must be a string or an array of input items", param="input")
    prev = body.get("previous_response_id")
    if prev is not None and not isinstance(prev, str):
        raise RequestError("'previous_response_id' must be a string", param="previous_response_id")
    out = dict(body)
    out["model"] = target_model
    out["stream"] = True

    if isinstance(raw, str):
        items: list[Any] = [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}
        ]
    else:
        items = list(raw) if isinstance(raw, list) else []
    if prev and history is not None and prev in history:
        items = history.expand(prev) + items
        out.pop("previous_response_id", None)
        out["input"] = _strip_minted(items)
    elif isinstance(raw, list):
        out["input"] = _strip_minted(items)

    client_reasoning = body.get("reasoning")
    has_effort = isinstance(client_reasoning, dict) and bool(client_reasoning.get("effort"))
    asked = client_reasoning.get("effort") if has_effort else reasoning_effort  # type: ignore[union-attr]
    effort = fit_effort(asked, model_info)  # never a value the model does not list
    if has_effort or effort:
        base = dict(client_reasoning) if isinstance(client_reasoning, dict) else {}
        base.pop("effort", None)
        if effort:
            base["effort"] = effort
        if base:
            out["reasoning"] = base
        else:
            out.pop("reasoning", None)

    ctx = _context_from_body(body, None if has_effort else effort, history)
    ctx.input_items = items
    for i, tool in enumerate(ctx.tools):
        if (
            isinstance(tool, dict)
            and tool.get("type") == "custom"
            and isinstance(tool.get("name"), str)
        ):
            ctx.custom_tools.add(tool["name"])
        elif not isinstance(tool, dict):
            raise RequestError(f"tools[{i}] must be an object", param=f"tools[{i}]")
    return out, ctx


class NativeResponsesAssembler:
    """A native upstream Responses SSE stream -> one `response` object.

    The final object is the one from `response.completed` / `.incomplete` / `.failed`; when
    its `output` is empty, the items from `response.output_item.done` are used (in
    `output_index` order). A stream that ends without a terminal event gives a `failed`
    response holding what arrived (unfinished items marked `incomplete`).
    With a `ctx`, `model` is rewritten to the client's model name and the answer is
    remembered for `previous_response_id`.
    """

    _LIFECYCLE = ("response.created", "response.in_progress", "response.queued")
    _TERMINAL = ("response.completed", "response.incomplete", "response.failed")

    def __init__(self, ctx: ResponsesContext | None = None) -> None:
        self.ctx = ctx
        self._snapshot: dict[str, Any] | None = None
        self._final: dict[str, Any] | None = None
        self._done: dict[int, dict[str, Any]] = {}
        self._added: dict[int, dict[str, Any]] = {}
        self._deltas: dict[int, list[str]] = {}
        self._error: dict[str, Any] | None = None

    def feed(self, event: sse.SSEEvent) -> None:
        data = event.data
        if not data or data == "[DONE]":
            return
        try:
            obj = json.loads(data)
        except ValueError:
            return
        if isinstance(obj, dict):
            self.feed_object(obj, event.event)

    def feed_object(self, obj: dict[str, Any], event_name: str | None = None) -> None:
        """One parsed event (`event_name`: its SSE `event:` field, used when it has no type)."""
        etype = obj.get("type") if isinstance(obj.get("type"), str) else event_name
        resp = obj.get("response")
        index = obj.get("output_index")
        if etype in self._LIFECYCLE and isinstance(resp, dict):
            self._snapshot = resp
        elif etype in self._TERMINAL and isinstance(resp, dict):
            self._final = resp
        elif etype == "response.output_item.added" and isinstance(index, int):
            if isinstance(obj.get("item"), dict):
                self._added[index] = dict(obj["item"])
        elif etype == "response.output_item.done" and isinstance(index, int):
            if isinstance(obj.get("item"), dict):
                self._done[index] = obj["item"]
        elif etype in (
            "response.output_text.delta",
            "response.function_call_arguments.delta",
            "response.custom_tool_call_input.delta",
        ) and isinstance(index, int):
            if isinstance(obj.get("delta"), str):
                self._deltas.setdefault(index, []).append(obj["delta"])
        elif etype == "error" or (etype is None and "error" in obj):
            err = as_object(obj.get("error")) or obj
            message = (
                err.get("message") if isinstance(err.get("message"), str) else "upstream error"
            )
            code = err.get("code") if isinstance(err.get("code"), str) else "server_error"
            self._error = {"code": code, "message": message}

    def _items(self, partial: bool) -> list[dict[str, Any]]:
        items = dict(self._done)
        if partial:
            for index, item in self._added.items():
                if index in items:
                    continue
                text = "".join(self._deltas.get(index, ()))
                item = dict(item)
                kind = item.get("type")
                if kind == "message":
                    item["content"] = [_text_part(text)]
                    item["status"] = "incomplete"
                elif kind == "function_call":
                    item["arguments"] = text
                    item["status"] = "incomplete"
                elif kind == "custom_tool_call":
                    item["input"] = text
                items[index] = item
        return [items[i] for i in sorted(items)]

    def result(self) -> dict[str, Any]:
        if self._final is not None:
            resp = dict(self._final)
            if not resp.get("output"):
                resp["output"] = self._items(partial=False)
        else:
            error = self._error or {
                "code": "server_error",
                "message": "The upstream stream ended before the response was complete.",
            }
            if self._snapshot is not None:
                resp = dict(self._snapshot)
                resp.update(status="failed", error=error, output=self._items(partial=True))
            elif self.ctx is not None:
                resp = response_object(
                    self.ctx, status="failed", output=self._items(True), error=error
                )
            else:
                resp = {
                    "id": new_id("resp"),
                    "object": "response",
                    "created_at": int(time.time()),
                    "status": "failed",
                    "error": error,
                    "incomplete_details": None,
                    "instructions": None,
                    "metadata": {},
                    "model": "",
                    "output": self._items(partial=True),
                    "parallel_tool_calls": True,
                    "temperature": None,
                    "tool_choice": "auto",
                    "tools": [],
                    "top_p": None,
                    "usage": None,
                }
        if self.ctx is not None:
            _as_asked(resp, self.ctx)
            self.ctx.remember(resp)
        return resp


def _as_asked(resp: dict[str, Any], ctx: ResponsesContext) -> dict[str, Any]:
    """A native answer as the client expects it: its model name, its previous_response_id
    (the proxy expanded that itself, so OCA never saw it)."""
    resp["model"] = ctx.requested_model
    if ctx.previous_response_id and not resp.get("previous_response_id"):
        resp["previous_response_id"] = ctx.previous_response_id
    return resp


class NativeResponsesStream:
    """The stream translator (see docs/ARCHITECTURE.md) for a model that serves /responses
    natively: OCA's Responses events go on to the client one by one, re-encoded with
    `event:` = `type`, with these repairs:

    - `response.model` is the model name the client asked for;
    - a terminal event whose `output` is empty (real OCA sends `"output": []`) gets the items
      from the `response.output_item.done` events, so SDK helpers such as
      `responses.stream(...).get_final_response()` see the whole answer;
    - the finished answer is remembered for `previous_response_id`;
    - an upstream failure ends the stream with an `error` event, and a stream that ends
      without a terminal event gets a `response.failed` holding what arrived.
    """

    _TERMINAL = NativeResponsesAssembler._TERMINAL

    def __init__(self, ctx: ResponsesContext) -> None:
        self.ctx = ctx
        self.response: dict[str, Any] | None = None
        self._assembler = NativeResponsesAssembler(ctx)
        self._seq = -1
        self._done = False

    def _encode(self, obj: dict[str, Any]) -> bytes:
        seq = obj.get("sequence_number")
        if isinstance(seq, int) and not isinstance(seq, bool):
            self._seq = max(self._seq, seq)
        else:
            self._seq += 1
        etype = obj.get("type")
        return sse.encode(obj, event=etype if isinstance(etype, str) else None)

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if self._done or not isinstance(chunk, dict):
            return b""
        self._assembler.feed_object(chunk)
        etype = chunk.get("type")
        resp = chunk.get("response")
        if isinstance(resp, dict):
            resp = _as_asked(dict(resp), self.ctx)
            if etype in self._TERMINAL:
                if not resp.get("output"):
                    resp["output"] = self._assembler._items(partial=etype == "response.failed")
                self._done = True
                self.response = resp
                self.ctx.remember(resp)
            chunk = {**chunk, "response": resp}
        elif etype == "error":
            self._done = True
        return self._encode(chunk)

    def finish(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        resp = self._assembler.result()
        self.response = resp
        if not isinstance(resp.get("error"), dict):
            return b""
        return self._encode(
            {"type": "response.failed", "sequence_number": self._seq + 1, "response": resp}
        )

    def fail(self, status: int, message: str) -> bytes:
        if self._done:
            return b""
        self._done = True
        message = message or "OCA request failed"
        return self._encode(
            {
                "type": "error",
                "sequence_number": self._seq + 1,
                "code": _error_code(status, message),
                "message": message,
                "param": None,
            }
        )
