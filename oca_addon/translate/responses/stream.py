"""Upstream chat chunks -> the Responses SSE grammar (`ResponsesStream`)."""

from __future__ import annotations

import json
from typing import Any

from oca_addon.core import jsonio, sse
from oca_addon.translate.responses.common import (
    _INCOMPLETE_REASONS,
    _error_code,
    _message_item,
    _reasoning_item,
    _status,
    _text_part,
    _usage,
    custom_tool_input,
    new_id,
    unique_call_id,
)
from oca_addon.translate.responses.context import ResponsesContext, call_item, response_object
from oca_addon.translate.shapes import ChatChunk, Usage


class _TextItem:
    __slots__ = ("item_id", "kind", "output_index", "parts")

    def __init__(self, kind: str, item_id: str, output_index: int) -> None:
        self.kind = kind
        self.item_id = item_id
        self.output_index = output_index
        self.parts: list[str] = []


class _Call:
    __slots__ = (
        "args",
        "call_id",
        "custom",
        "emitted",
        "flat",
        "id",
        "item_id",
        "name",
        "output_index",
    )

    def __init__(self) -> None:
        self.id: str | None = None
        self.name = ""
        self.args: list[str] = []
        self.emitted = False
        self.item_id = ""
        self.call_id = ""
        self.flat = ""
        self.custom = False
        self.output_index = -1


def _json_complete(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class ResponsesStream:
    """Upstream chat chunks -> Responses SSE events.

    One output item is open at a time. Reasoning and text stream live. Once a tool call has
    started, one call streams live; fragments of other calls are buffered and each buffered
    call is emitted whole when its turn comes (the live call is closed when another call's
    fragment arrives and its own arguments already form complete JSON, or at the end). Text
    or reasoning that arrives after tool calls started is emitted as new items after them, at
    the end. So every item's arguments are complete and correct whatever the interleaving.
    Custom (freeform) tool input is emitted in one piece when its call closes, because the
    model writes it JSON-encoded.
    """

    def __init__(self, ctx: ResponsesContext) -> None:
        self.ctx = ctx
        self.response: dict[str, Any] | None = None
        self._seq = 0
        self._started = False
        self._done = False
        self._saw_chunk = False
        self._next_index = 0
        self._items: list[dict[str, Any]] = []
        self._open: _TextItem | None = None
        self._calls: list[_Call] = []
        self._call_ids: set[str] = set()
        self._by_index: dict[Any, _Call] = {}
        self._live: _Call | None = None
        self._tool_phase = False
        self._late: list[tuple[str, list[str]]] = []
        self._finish_reason: str | None = None
        self._usage: Usage | None = None
        self._opening: list[bytes] | None = None  # prime()'s events, until the first chunk

    # -- framing ------------------------------------------------------------------------

    def _emit(self, out: list[bytes], etype: str, payload: dict[str, Any]) -> None:
        obj: dict[str, Any] = {"type": etype, "sequence_number": self._seq}
        obj.update(payload)
        self._seq += 1
        out.append(sse.encode(obj, event=etype))

    def prime(self) -> None:
        """Write the opening events ahead (response.created, response.in_progress), while
        OCA has yet to answer: its first chunk then costs only its own. The output is the
        same (their sequence numbers are the first two either way)."""
        if not self._started and self._opening is None:
            seq = self._seq
            self._opening = []
            self._render_start(self._opening)
            self._seq = seq

    def _start(self, out: list[bytes]) -> None:
        self._started = True
        if self._opening is not None:
            out += self._opening
            self._seq += len(self._opening)
            self._opening = None
        else:
            self._render_start(out)

    def _render_start(self, out: list[bytes]) -> None:
        snapshot = response_object(self.ctx, status="in_progress", output=[])
        self._emit(out, "response.created", {"response": snapshot})
        self._emit(out, "response.in_progress", {"response": snapshot})

    # -- text / reasoning items -----------------------------------------------------------

    def _open_text(self, kind: str, out: list[bytes]) -> _TextItem:
        index = self._next_index
        self._next_index += 1
        if kind == "reasoning":
            item = _TextItem(kind, new_id("rs_oca"), index)
            self._emit(
                out,
                "response.output_item.added",
                {
                    "output_index": index,
                    "item": {"id": item.item_id, "type": "reasoning", "summary": []},
                },
            )
            self._emit(
                out,
                "response.reasoning_summary_part.added",
                {
                    "item_id": item.item_id,
                    "output_index": index,
                    "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""},
                },
            )
        else:
            item = _TextItem(kind, new_id("msg_oca"), index)
            self._emit(
                out,
                "response.output_item.added",
                {
                    "output_index": index,
                    "item": {
                        "id": item.item_id,
                        "type": "message",
                        "status": "in_progress",
                        "role": "assistant",
                        "content": [],
                    },
                },
            )
            self._emit(
                out,
                "response.content_part.added",
                {
                    "item_id": item.item_id,
                    "output_index": index,
                    "content_index": 0,
                    "part": _text_part(""),
                },
            )
        self._open = item
        return item

    def _text_delta(self, item: _TextItem, text: str, out: list[bytes]) -> None:
        item.parts.append(text)
        if item.kind == "reasoning":
            self._emit(
                out,
                "response.reasoning_summary_text.delta",
                {
                    "item_id": item.item_id,
                    "output_index": item.output_index,
                    "summary_index": 0,
                    "delta": text,
                },
            )
        else:
            # The most frequent event: the same bytes as _emit() gives, from a template.
            out.append(
                b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
                b'"sequence_number":%d,"item_id":%b,"output_index":%d,"content_index":0,'
                b'"delta":%b,"logprobs":[]}\n\n'
                % (self._seq, jsonio.dumps(item.item_id), item.output_index, jsonio.dumps(text))
            )
            self._seq += 1

    def _close_text(self, out: list[bytes], status: str = "completed") -> None:
        item, self._open = self._open, None
        if item is None:
            return
        text = "".join(item.parts)
        ids = {"item_id": item.item_id, "output_index": item.output_index}
        if item.kind == "reasoning":
            self._emit(
                out,
                "response.reasoning_summary_text.done",
                {**ids, "summary_index": 0, "text": text},
            )
            self._emit(
                out,
                "response.reasoning_summary_part.done",
                {**ids, "summary_index": 0, "part": {"type": "summary_text", "text": text}},
            )
            final = _reasoning_item(item.item_id, text)
        else:
            self._emit(
                out,
                "response.output_text.done",
                {**ids, "content_index": 0, "text": text, "logprobs": []},
            )
            self._emit(
                out,
                "response.content_part.done",
                {**ids, "content_index": 0, "part": _text_part(text)},
            )
            final = _message_item(item.item_id, text, status)
        self._items.append(final)
        self._emit(
            out, "response.output_item.done", {"output_index": item.output_index, "item": final}
        )

    def _on_text(self, kind: str, text: str, out: list[bytes]) -> None:
        if self._tool_phase:
            if self._late and self._late[-1][0] == kind:
                self._late[-1][1].append(text)
            else:
                self._late.append((kind, [text]))
            return
        item = self._open
        if item is None or item.kind != kind:
            if item is not None:
                self._close_text(out)
            item = self._open_text(kind, out)
        self._text_delta(item, text, out)

    # -- tool calls -----------------------------------------------------------------------

    def _start_call(self, call: _Call, out: list[bytes]) -> None:
        call.emitted = True
        call.output_index = self._next_index
        self._next_index += 1
        call.flat = call.name
        call.custom = call.name in self.ctx.custom_tools
        call.call_id = unique_call_id(call.id or new_id("call"), self._call_ids)
        call.item_id = new_id("ctc_oca" if call.custom else "fc_oca")
        ns, name = self.ctx.tool_names.get(call.flat, (None, call.flat))
        if call.custom:
            item: dict[str, Any] = {
                "id": call.item_id,
                "type": "custom_tool_call",
                "call_id": call.call_id,
                "name": name,
                "input": "",
            }
        else:
            item = {
                "id": call.item_id,
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": call.call_id,
                "name": name,
            }
        if ns:
            item["namespace"] = ns
        self._emit(
            out, "response.output_item.added", {"output_index": call.output_index, "item": item}
        )
        if not call.custom and call.args:
            self._args_delta(call, "".join(call.args), out)

    def _args_delta(self, call: _Call, delta: str, out: list[bytes]) -> None:
        self._emit(
            out,
            "response.function_call_arguments.delta",
            {"item_id": call.item_id, "output_index": call.output_index, "delta": delta},
        )

    def _close_call(self, call: _Call, out: list[bytes], status: str = "completed") -> None:
        if self._live is call:
            self._live = None
        args = "".join(call.args)
        ids = {"item_id": call.item_id, "output_index": call.output_index}
        if call.custom:
            text = custom_tool_input(args)
            if text:
                self._emit(out, "response.custom_tool_call_input.delta", {**ids, "delta": text})
            self._emit(out, "response.custom_tool_call_input.done", {**ids, "input": text})
        else:
            if not args:
                args = "{}"
                self._args_delta(call, args, out)
            self._emit(out, "response.function_call_arguments.done", {**ids, "arguments": args})
        final = call_item(self.ctx, call.item_id, call.call_id, call.flat, args, status)
        self._items.append(final)
        self._emit(
            out, "response.output_item.done", {"output_index": call.output_index, "item": final}
        )

    def _next_waiting(self) -> _Call | None:
        for call in self._calls:
            if not call.emitted and call.name:
                return call
        return None

    def _on_tool_fragment(self, tc: Any, out: list[bytes]) -> None:
        if not isinstance(tc, dict):
            return
        tid = tc.get("id") if isinstance(tc.get("id"), str) and tc.get("id") else None
        key: Any = tc.get("index")
        if not isinstance(key, int) or isinstance(key, bool):
            # no usable index: find the call by id, else continue the latest call
            key = ("id", tid) if tid else ("last",)
            if not tid and self._calls:
                key = next(k for k, c in self._by_index.items() if c is self._calls[-1])
        call = self._by_index.get(key)
        if call is None or (tid is not None and call.id is not None and tid != call.id):
            call = _Call()
            self._calls.append(call)
            self._by_index[key] = call
        if tid is not None and call.id is None and not call.emitted:
            call.id = tid
        fn = tc.get("function")
        delta = ""
        if isinstance(fn, dict):
            if isinstance(fn.get("name"), str) and not call.emitted:
                call.name += fn["name"]
            if isinstance(fn.get("arguments"), str):
                delta = fn["arguments"]
        if call.emitted and self._live is not call:
            return  # a fragment for a call already closed: nothing correct can be done
        if delta:
            call.args.append(delta)
        if not self._tool_phase:
            self._tool_phase = True
            self._close_text(out)
        live = self._live
        if live is call:
            if delta and not call.custom:
                self._args_delta(call, delta, out)
            return
        if live is not None:
            if call.name and _json_complete("".join(live.args)):
                self._close_call(live, out)
                live = None
            else:
                return
        waiting = self._next_waiting()
        if waiting is not None:
            self._live = waiting
            self._start_call(waiting, out)

    # -- public API -----------------------------------------------------------------------

    def feed(self, chunk: ChatChunk) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = []
        if not self._started:
            self._start(out)
        if not isinstance(chunk, dict):
            return b"".join(out)
        if "error" in chunk and not chunk.get("choices"):
            err = chunk["error"]
            message = err.get("message") if isinstance(err, dict) else err
            status = _status(err.get("code") if isinstance(err, dict) else None)
            return b"".join(out) + self.fail(status, str(message or "OCA reported an error"))
        self._saw_chunk = True
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = usage
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return b"".join(out)
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if not isinstance(reasoning, str):
                    thinking = delta.get("thinking")
                    reasoning = thinking if isinstance(thinking, str) else None
                if reasoning:
                    self._on_text("reasoning", reasoning, out)
                content = delta.get("content")
                if isinstance(content, str) and content:
                    self._on_text("message", content, out)
                refusal = delta.get("refusal")
                if isinstance(refusal, str) and refusal:
                    self._on_text("message", refusal, out)
                calls = delta.get("tool_calls")
                if isinstance(calls, list):
                    for tc in calls:
                        self._on_tool_fragment(tc, out)
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self._finish_reason = reason
        return b"".join(out)

    def finish(self) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = []
        if not self._started:
            self._start(out)
        if not self._saw_chunk:
            return b"".join(out) + self.fail(502, "OCA ended the stream without sending an answer")
        reason = _INCOMPLETE_REASONS.get(self._finish_reason or "")
        steps: list[tuple[str, Any]] = []
        if self._open is not None:
            steps.append(("text", None))
        if self._live is not None:
            steps.append(("call", self._live))
        steps.extend(("call", c) for c in self._calls if not c.emitted and c.name)
        steps.extend(("late", seg) for seg in self._late)
        last = len(steps) - 1
        for n, (kind, obj) in enumerate(steps):
            status = "incomplete" if reason and n == last else "completed"
            if kind == "text":
                self._close_text(out, status)
            elif kind == "call":
                if not obj.emitted:
                    self._start_call(obj, out)
                self._close_call(obj, out, status)
            else:
                seg_kind, parts = obj
                item = self._open_text(seg_kind, out)
                self._text_delta(item, "".join(parts), out)
                self._close_text(out, status)
        self._done = True
        resp = response_object(
            self.ctx,
            status="incomplete" if reason else "completed",
            output=list(self._items),
            usage=_usage(self._usage),
            incomplete_reason=reason,
        )
        self.response = resp
        self._emit(
            out, "response.incomplete" if reason else "response.completed", {"response": resp}
        )
        self.ctx.remember(resp)
        return b"".join(out)

    def fail(self, status: int, message: str, code: str | None = None) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = []
        if not self._started:
            self._start(out)
        self._close_text(out, "incomplete")
        if self._live is not None:
            self._close_call(self._live, out, "incomplete")
        self._done = True
        message = message or "OCA request failed"
        error = {"code": code or _error_code(status, message), "message": message}
        resp = response_object(
            self.ctx,
            status="failed",
            output=list(self._items),
            usage=_usage(self._usage) if self._usage else None,
            error=error,
        )
        self.response = resp
        self._emit(out, "response.failed", {"response": resp})
        return b"".join(out)
