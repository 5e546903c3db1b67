"""Upstream chat.completion.chunks -> the Anthropic Messages SSE grammar (`AnthropicStream`)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from oca_addon.core import jsonio, sse
from oca_addon.core.errors import anthropic_error
from oca_addon.translate.anthropic.common import (
    AnthropicContext,
    _new_message_id,
    _new_tool_id,
    _signature,
    _stop_reason,
    _usage,
)
from oca_addon.translate.shapes import ChatChunk, Usage


class _Tool:
    __slots__ = ("args", "checked", "closed", "complete", "id", "name", "opened", "size", "uid")

    def __init__(self) -> None:
        self.uid: str | None = None  # the upstream id
        self.id: str | None = None  # the id sent to the client
        self.name: str | None = None
        self.args: list[str] = []
        self.size = 0  # total length of args
        self.opened = False
        self.closed = False
        self.complete = False  # arguments known to form a whole JSON value
        self.checked = -1  # size when completeness was last checked


class AnthropicStream:
    """Upstream chat.completion.chunks -> Anthropic Messages SSE frames.

    One block is open at a time; block indices count up in emission order. Tool calls are
    streamed live while they arrive one after the other; a call whose fragments interleave
    with the open one's is buffered until the open call's arguments form a whole JSON value
    (or the stream ends), then emitted in one piece.
    """

    def __init__(self, ctx: AnthropicContext) -> None:
        self.ctx = ctx
        self.message_id = _new_message_id()
        self._started = False
        self._done = False
        self._index = 0  # index of the next block
        self._open: str | None = None  # "text" | "thinking" | "tool_use"
        self._open_tool: _Tool | None = None
        self._sig: Any = None  # hashlib object of the open thinking block
        self._by_index: dict[int, _Tool] = {}
        self._by_id: dict[str, _Tool] = {}
        self._last_tool: _Tool | None = None
        self._pending: list[_Tool] = []  # seen upstream, not yet opened, in order of appearance
        self._tool_blocks = 0
        self._chars = 0
        self._finish_reason: str | None = None
        self._usage: Usage | None = None
        self._opening: list[bytes] | None = None  # prime()'s frames, until the first chunk

    # ---- frames

    def _frame(self, out: list[bytes], kind: str, payload: dict[str, Any]) -> None:
        out.append(sse.encode({"type": kind, **payload}, event=kind))

    def prime(self) -> None:
        """Write the opening frames ahead (message_start, ping), while OCA has yet to answer:
        its first chunk then costs only its own frames. The output is the same."""
        if not self._started and self._opening is None:
            self._opening = []
            self._render_start(self._opening)

    def _start(self, out: list[bytes]) -> None:
        self._started = True
        if self._opening is not None:
            out += self._opening
            self._opening = None
        else:
            self._render_start(out)

    def _render_start(self, out: list[bytes]) -> None:
        self._frame(
            out,
            "message_start",
            {
                "message": {
                    "id": self.message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.ctx.requested_model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": max(1, self.ctx.input_tokens()),
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                        "output_tokens": 1,
                    },
                }
            },
        )
        self._frame(out, "ping", {})

    def _open_block(self, out: list[bytes], kind: str, block: dict[str, Any]) -> None:
        self._open = kind
        self._frame(out, "content_block_start", {"index": self._index, "content_block": block})

    def _delta(self, out: list[bytes], delta: dict[str, Any]) -> None:
        self._frame(out, "content_block_delta", {"index": self._index, "delta": delta})

    def _close(self, out: list[bytes]) -> None:
        kind = self._open
        if kind is None:
            return
        if kind == "thinking":
            self._delta(
                out, {"type": "signature_delta", "signature": _signature(self._sig.digest())}
            )
            self._sig = None
        elif kind == "tool_use":
            tool = self._open_tool
            if tool is not None:
                if not tool.size:
                    self._delta(out, {"type": "input_json_delta", "partial_json": "{}"})
                tool.closed = True
            self._open_tool = None
        self._frame(out, "content_block_stop", {"index": self._index})
        self._index += 1
        self._open = None

    # ---- content

    def _thinking(self, out: list[bytes], text: str) -> None:
        if self._open != "thinking":
            self._close(out)
            self._sig = hashlib.sha256()
            self._open_block(out, "thinking", {"type": "thinking", "thinking": "", "signature": ""})
        self._sig.update(text.encode("utf-8", "surrogatepass"))
        self._chars += len(text)
        self._delta(out, {"type": "thinking_delta", "thinking": text})

    def _text(self, out: list[bytes], text: str) -> None:
        if self._open != "text":
            self._close(out)
            self._open_block(out, "text", {"type": "text", "text": ""})
        self._chars += len(text)
        # The most frequent frame: the same bytes as _delta() gives, from a template.
        out.append(
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
            b'"delta":{"type":"text_delta","text":%b}}\n\n' % (self._index, jsonio.dumps(text))
        )

    def _open_tool_block(self, out: list[bytes], tool: _Tool) -> None:
        self._close(out)
        self._pending.remove(tool)
        tool.opened = True
        tool.id = tool.uid or _new_tool_id()
        self._open_tool = tool
        self._tool_blocks += 1
        self._open_block(
            out,
            "tool_use",
            {
                "type": "tool_use",
                "id": tool.id,
                "name": self.ctx.original_tool_name(tool.name or ""),
                "input": {},
            },
        )
        if tool.size:
            buffered = "".join(tool.args)
            tool.args = [buffered]
            self._delta(out, {"type": "input_json_delta", "partial_json": buffered})

    def _is_complete(self, tool: _Tool) -> bool:
        if tool.complete:
            return True
        if tool.size == tool.checked:
            return False
        tool.checked = tool.size
        text = "".join(tool.args).rstrip()
        if not text.endswith(("}", "]")):
            return False
        try:
            json.loads(text)
        except ValueError:
            return False
        tool.complete = True
        return True

    def _find_tool(self, index: int | None, call_id: str | None) -> _Tool:
        tool: _Tool | None = None
        if call_id is not None:
            tool = self._by_id.get(call_id)
        if tool is None and index is not None:
            tool = self._by_index.get(index)
            if tool is not None and call_id is not None and tool.uid not in (None, call_id):
                tool = None  # the same index reused for another call
        if tool is None and index is None and call_id is None:
            tool = self._last_tool
        if tool is None:
            tool = _Tool()
            self._pending.append(tool)
        if index is not None:
            self._by_index[index] = tool
        if call_id is not None and tool.uid is None and not tool.opened:
            tool.uid = call_id
            self._by_id[call_id] = tool
        self._last_tool = tool
        return tool

    def _tool_fragment(self, out: list[bytes], tc: Any) -> None:
        if not isinstance(tc, dict):
            return
        call_id = tc.get("id")
        fn = tc.get("function")
        fn = fn if isinstance(fn, dict) else {}
        name = fn.get("name")
        args = fn.get("arguments")
        index = tc.get("index")
        tool = self._find_tool(
            index if isinstance(index, int) and not isinstance(index, bool) else None,
            call_id if isinstance(call_id, str) and call_id else None,
        )
        if isinstance(name, str) and name and not tool.name:
            tool.name = name
        if tool.closed:
            return  # a late fragment for a call already closed: nothing valid can carry it
        if isinstance(args, str) and args:
            tool.args.append(args)
            tool.size += len(args)
            self._chars += len(args)
            if tool is self._open_tool:
                self._delta(out, {"type": "input_json_delta", "partial_json": args})
                return
        if tool.opened or not tool.name:
            return
        current = self._open_tool
        if current is not None and not self._is_complete(current):
            return  # interleaved with the open call: keep buffering
        self._open_tool_block(out, tool)

    # ---- driver

    def feed(self, chunk: ChatChunk) -> bytes:
        if self._done or not isinstance(chunk, dict):
            return b""
        out: list[bytes] = []
        if not self._started:
            self._start(out)
        usage = chunk.get("usage")
        if isinstance(usage, dict) and usage:
            self._usage = usage
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict) or choice.get("index", 0) not in (0, None):
                    continue
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                    if not isinstance(reasoning, str):
                        reasoning = delta.get("thinking")
                    if isinstance(reasoning, str) and reasoning:
                        self._thinking(out, reasoning)
                    text = delta.get("content")
                    if isinstance(text, str) and text:
                        self._text(out, text)
                    calls = delta.get("tool_calls")
                    if isinstance(calls, list):
                        for tc in calls:
                            self._tool_fragment(out, tc)
                reason = choice.get("finish_reason")
                if isinstance(reason, str) and reason:
                    self._finish_reason = reason
        return b"".join(out)

    def finish(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        out: list[bytes] = []
        if not self._started:
            self._start(out)
        self._close(out)
        for tool in list(self._pending):
            if tool.name:
                self._open_tool_block(out, tool)
                self._close(out)
        usage = _usage(self._usage, self.ctx, max(1, -(-self._chars // 4)))
        self._frame(
            out,
            "message_delta",
            {
                "delta": {
                    "stop_reason": _stop_reason(self._finish_reason, self._tool_blocks > 0),
                    "stop_sequence": None,
                },
                "usage": usage,
            },
        )
        self._frame(out, "message_stop", {})
        return b"".join(out)

    def fail(self, status: int, message: str) -> bytes:
        if self._done:
            return b""
        self._done = True
        out: list[bytes] = []
        if self._started:
            self._close(out)
        out.append(sse.encode(anthropic_error(status, message), event="error"))
        return b"".join(out)
