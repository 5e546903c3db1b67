"""Event streams made readable in mitmweb and mitmdump: the assembled answer (text,
reasoning, every tool call with its complete arguments, usage) instead of hundreds of
`data:` lines, plus what oca-proxy kept about the call (annotate.py): what the client sent
before any mapping or translation, and what OCA answered before it was translated back.

The top of this module is pure (bytes and dicts in, text out) and unit-tested on its own:
`assemble()` recognises an OpenAI chat completion stream, an OpenAI Responses stream, an
Anthropic Messages stream and a legacy completions stream; `render_stream()`,
`render_request()` and `render_response()` make the text. `OcaContentview` at the bottom is
the mitmproxy contentview (new-style API), registered by `register()` from the addon's load
hook; mitmproxy picks it automatically for `text/event-stream` bodies and for API calls that
went through oca-proxy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from oca_addon.core import sse
from oca_addon.translate.chat import ChatAssembler
from oca_addon.translate.shapes import is_chunk

META_KEY = "oca"  # flow.metadata[META_KEY]: what annotate.py keeps about a call
NAME = "OCA"

KIND_LABELS = {
    "chat": "OpenAI chat completion stream",
    "completions": "OpenAI completions stream",
    "responses": "OpenAI Responses stream",
    "anthropic": "Anthropic Messages stream",
}

_ANTHROPIC_EVENTS = {
    "message_start",
    "message_delta",
    "message_stop",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "ping",
}


@dataclass
class Part:
    """One piece of an answer, in the order it arrived."""

    kind: str  # "text" | "reasoning" | "tool_call" | "item"
    text: str = ""
    name: str = ""
    id: str = ""


@dataclass
class Assembled:
    kind: str  # "chat" | "completions" | "responses" | "anthropic"
    events: int = 0
    model: str | None = None
    id: str | None = None
    parts: list[Part] = field(default_factory=list)
    usage: Mapping[str, Any] | None = None
    stop: str | None = None
    errors: list[str] = field(default_factory=list)
    complete: bool = False  # the stream's own end marker arrived

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if p.kind == "text")

    @property
    def reasoning(self) -> str:
        return "".join(p.text for p in self.parts if p.kind == "reasoning")

    @property
    def tool_calls(self) -> list[Part]:
        return [p for p in self.parts if p.kind == "tool_call"]


# -- recognising and assembling --------------------------------------------------------


def looks_like_sse(data: bytes) -> bool:
    head = data.lstrip()[:64]
    return head.startswith((b"data:", b"event:", b":", b"id:"))


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _kind_of(events: list[tuple[sse.SSEEvent, Any]]) -> str | None:
    for ev, obj in events:
        if not isinstance(obj, dict):
            continue
        kind = obj.get("type") if isinstance(obj.get("type"), str) else ev.event
        if isinstance(kind, str) and kind.startswith("response."):
            return "responses"
        if kind in _ANTHROPIC_EVENTS:
            return "anthropic"
        obj_type = obj.get("object")
        if obj_type == "chat.completion.chunk":
            return "chat"
        if obj_type == "text_completion":
            return "completions"
        if isinstance(obj.get("choices"), list):
            choice = obj["choices"][0] if obj["choices"] else {}
            if isinstance(choice, dict) and "text" in choice and "delta" not in choice:
                return "completions"
            return "chat"
    return None


def _error_text(obj: Any) -> str:
    err = obj.get("error") if isinstance(obj, dict) and "error" in obj else obj
    if isinstance(err, dict):
        message = err.get("message")
        kind = err.get("type") or err.get("code")
        text = message if isinstance(message, str) else json.dumps(err, ensure_ascii=False)
        return f"{kind}: {text}" if kind else text
    return str(err)


def assemble(body: bytes) -> Assembled | None:
    """The answer an event stream carries, or None if it is not a stream we know."""
    parsed = [(ev, _json(ev.data)) for ev in sse.parse_all(body)]
    kind = _kind_of(parsed)
    if kind is None:
        return None
    out = Assembled(kind, events=len(parsed))
    if kind == "chat":
        _assemble_chat(parsed, out)
    elif kind == "completions":
        _assemble_completions(parsed, out)
    elif kind == "responses":
        _ResponsesParts(out).run(parsed)
    else:
        _AnthropicParts(out).run(parsed)
    return out


def _assemble_chat(events: list[tuple[sse.SSEEvent, Any]], out: Assembled) -> None:
    chat = ChatAssembler()
    for ev, obj in events:
        if ev.data == "[DONE]":
            out.complete = True
        elif isinstance(obj, dict) and "error" in obj:
            out.errors.append(_error_text(obj))
        elif is_chunk(obj):
            chat.feed(obj)
    out.model, out.id, out.usage = chat.model, chat.id, chat.usage
    out.stop = chat.finish_reason
    if chat.reasoning:
        out.parts.append(Part("reasoning", "".join(chat.reasoning)))
    if chat.content:
        out.parts.append(Part("text", "".join(chat.content)))
    for _, call in sorted(chat.tool_calls.items()):
        fn = call["function"]
        out.parts.append(Part("tool_call", fn["arguments"], fn["name"], call["id"] or ""))


def _assemble_completions(events: list[tuple[sse.SSEEvent, Any]], out: Assembled) -> None:
    text: list[str] = []
    for ev, obj in events:
        if ev.data == "[DONE]":
            out.complete = True
            continue
        if not isinstance(obj, dict):
            continue
        if "error" in obj:
            out.errors.append(_error_text(obj))
            continue
        out.model = out.model or obj.get("model")
        out.id = out.id or obj.get("id")
        if isinstance(obj.get("usage"), dict):
            out.usage = obj["usage"]
        for choice in obj.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                if isinstance(choice.get("text"), str):
                    text.append(choice["text"])
                if choice.get("finish_reason"):
                    out.stop = choice["finish_reason"]
    if text:
        out.parts.append(Part("text", "".join(text)))


class _ResponsesParts:
    """Responses events -> parts, by output_index; `output_item.done` has the last word."""

    def __init__(self, out: Assembled) -> None:
        self.out = out
        self.items: dict[int, Part] = {}

    def part(self, index: Any, kind: str = "text") -> Part | None:
        if not isinstance(index, int):
            return None
        if index not in self.items:
            self.items[index] = Part(kind)
        return self.items[index]

    def run(self, events: list[tuple[sse.SSEEvent, Any]]) -> None:
        out = self.out
        for ev, obj in events:
            if ev.data == "[DONE]":
                out.complete = True
                continue
            if not isinstance(obj, dict):
                continue
            kind = obj.get("type") if isinstance(obj.get("type"), str) else ev.event
            resp = obj.get("response") if isinstance(obj.get("response"), dict) else None
            index = obj.get("output_index")
            delta = obj.get("delta") if isinstance(obj.get("delta"), str) else None
            if resp is not None:
                out.id = resp.get("id") or out.id
                out.model = resp.get("model") or out.model
                if isinstance(resp.get("usage"), dict):
                    out.usage = resp["usage"]
                if kind in ("response.completed", "response.incomplete", "response.failed"):
                    out.complete = True
                    out.stop = resp.get("status") or kind.split(".")[-1]
                    details = resp.get("incomplete_details")
                    if isinstance(details, dict) and details.get("reason"):
                        out.stop = f"{out.stop} ({details['reason']})"
                    if resp.get("error"):
                        out.errors.append(_error_text(resp["error"]))
                    if not self.items:
                        for i, item in enumerate(resp.get("output") or ()):
                            self.item(i, item)
            elif kind in ("response.output_item.added", "response.output_item.done"):
                self.item(index, obj.get("item"))
            elif delta is not None and kind in (
                "response.output_text.delta",
                "response.refusal.delta",
                "response.reasoning_summary_text.delta",
                "response.reasoning_text.delta",
                "response.function_call_arguments.delta",
                "response.custom_tool_call_input.delta",
            ):
                part = self.part(index)
                if part is not None:
                    if "reasoning" in kind:
                        part.kind = "reasoning"
                    elif "call" in kind and part.kind == "text":
                        part.kind = "tool_call"
                    part.text += delta
            elif kind == "response.function_call_arguments.done":
                part = self.part(index, "tool_call")
                if part is not None and isinstance(obj.get("arguments"), str):
                    part.text = obj["arguments"]
            elif kind == "error" or "error" in obj:
                out.errors.append(_error_text(obj.get("error") or obj))
        out.parts.extend(self.items[i] for i in sorted(self.items))

    def item(self, index: Any, item: Any) -> None:
        if not isinstance(item, dict):
            return
        part = self.part(index)
        if part is None:
            return
        kind = item.get("type")
        final = item.get("status") == "completed" or "status" not in item
        if kind == "message":
            part.kind = "text"
            texts = [
                c.get("text") or c.get("refusal") or ""
                for c in item.get("content") or ()
                if isinstance(c, dict)
            ]
            if any(texts) and final:
                part.text = "".join(texts)
        elif kind == "reasoning":
            part.kind = "reasoning"
            pieces = [
                s.get("text") or ""
                for key in ("summary", "content")
                for s in item.get(key) or ()
                if isinstance(s, dict)
            ]
            if any(pieces):
                part.text = "\n\n".join(p for p in pieces if p)
        elif kind in ("function_call", "custom_tool_call"):
            part.kind = "tool_call"
            part.name = item.get("name") or part.name
            part.id = item.get("call_id") or item.get("id") or part.id
            args = item.get("arguments") if kind == "function_call" else item.get("input")
            if isinstance(args, str) and args:
                part.text = args
        else:
            part.kind = "item"
            part.name = str(kind)
            part.text = json.dumps(item, ensure_ascii=False, indent=2)


class _AnthropicParts:
    def __init__(self, out: Assembled) -> None:
        self.out = out
        self.blocks: dict[int, Part] = {}

    def run(self, events: list[tuple[sse.SSEEvent, Any]]) -> None:
        out = self.out
        usage: dict[str, Any] = {}
        for ev, obj in events:
            if not isinstance(obj, dict):
                continue
            kind = obj.get("type") if isinstance(obj.get("type"), str) else ev.event
            index = obj.get("index")
            if kind == "message_start" and isinstance(obj.get("message"), dict):
                msg = obj["message"]
                out.id, out.model = msg.get("id"), msg.get("model")
                if isinstance(msg.get("usage"), dict):
                    usage.update(msg["usage"])
            elif kind == "content_block_start" and isinstance(index, int):
                block = obj.get("content_block")
                if isinstance(block, dict):
                    self.blocks[index] = self.start(block)
            elif kind == "content_block_delta" and index in self.blocks:
                self.delta(self.blocks[index], obj.get("delta"))
            elif kind == "message_delta":
                delta = obj.get("delta")
                if isinstance(delta, dict) and delta.get("stop_reason"):
                    out.stop = delta["stop_reason"]
                if isinstance(obj.get("usage"), dict):
                    usage.update({k: v for k, v in obj["usage"].items() if v is not None})
            elif kind == "message_stop":
                out.complete = True
            elif kind == "error":
                out.errors.append(_error_text(obj))
        out.usage = usage or None
        out.parts.extend(self.blocks[i] for i in sorted(self.blocks))

    @staticmethod
    def start(block: dict[str, Any]) -> Part:
        kind = block.get("type")
        if kind == "text":
            return Part("text", block.get("text") or "")
        if kind == "thinking":
            return Part("reasoning", block.get("thinking") or "")
        if kind == "redacted_thinking":
            return Part("reasoning", "[redacted thinking]")
        if kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
            initial = block.get("input")
            text = json.dumps(initial, ensure_ascii=False) if initial else ""
            return Part("tool_call", text, block.get("name") or "", block.get("id") or "")
        return Part("item", json.dumps(block, ensure_ascii=False, indent=2), str(kind))

    @staticmethod
    def delta(part: Part, delta: Any) -> None:
        if not isinstance(delta, dict):
            return
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str):
            part.text += delta["text"]
        elif kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
            part.text += delta["thinking"]
        elif kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            if part.text in ("{}",):  # an empty initial input, then the real one streams in
                part.text = ""
            part.text += delta["partial_json"]


# -- rendering ---------------------------------------------------------------------------


def _rule(title: str) -> str:
    return f"── {title} " + "─" * max(3, 60 - len(title))


def _pretty_args(text: str) -> str:
    if not text.strip():
        return "(no arguments)"
    value = _json(text)
    if value is None:
        return f"{text}\n(not complete JSON)"
    return json.dumps(value, ensure_ascii=False, indent=2)


def _fmt_usage(usage: Mapping[str, Any]) -> str:
    flat = [
        f"{k} {v:,}"
        for k, v in usage.items()
        if isinstance(v, int) and not isinstance(v, bool) and v
    ]
    return " · ".join(flat)


def render_assembled(a: Assembled) -> str:
    head = [KIND_LABELS.get(a.kind, a.kind), f"{a.events} events"]
    if a.model:
        head.append(f"model {a.model}")
    if a.id:
        head.append(str(a.id))
    lines = [" · ".join(head)]
    facts = []
    if a.stop:
        facts.append(f"finished: {a.stop}")
    if a.usage:
        facts.append(f"usage: {_fmt_usage(a.usage)}")
    if facts:
        lines.append(" · ".join(facts))
    if not a.complete:
        lines.append(
            "(the stream has no end marker: it was cut, failed, or only its start was kept)"
        )
    for err in a.errors:
        lines.append(f"ERROR {err}")
    calls = 0
    for part in a.parts:
        lines.append("")
        if part.kind == "tool_call":
            calls += 1
            title = f"tool call {calls}: {part.name or '?'}" + (f" ({part.id})" if part.id else "")
            lines += [_rule(title), _pretty_args(part.text)]
        elif part.kind == "item":
            lines += [_rule(part.name or "item"), part.text]
        else:
            lines += [_rule(part.kind), part.text]
    if not a.parts:
        lines += ["", "(no content)"]
    if a.usage:
        lines += ["", _rule("usage"), json.dumps(a.usage, ensure_ascii=False, indent=2)]
    return "\n".join(lines)


def render_stream(body: bytes) -> str:
    """An event stream as its assembled answer (or its events, if the kind is unknown)."""
    assembled = assemble(body)
    if assembled is not None:
        return render_assembled(assembled)
    events = sse.parse_all(body)
    lines = [f"event stream · {len(events)} events", ""]
    for ev in events:
        lines.append(f"{ev.event or 'data'}: {ev.data}")
    return "\n".join(lines)


def render_body(data: bytes, content_type: str | None = None) -> str:
    """Any body: streams assembled, JSON indented, anything else as text."""
    if not data:
        return "(empty)"
    ctype = (content_type or "").lower()
    if "event-stream" in ctype or looks_like_sse(data):
        return render_stream(data)
    text = data.decode("utf-8", "replace")
    value = _json(text)
    if value is not None and (isinstance(value, dict | list)):
        return json.dumps(value, ensure_ascii=False, indent=2)
    return text


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} kB"
    return f"{n / 1024 / 1024:.1f} MB"


def _kept_note(kept: dict[str, Any]) -> str:
    if not kept.get("truncated"):
        return ""
    size = kept.get("size")
    of = f" of {_size(size)}" if isinstance(size, int) else ""
    n = kept.get("kept")
    return (
        f"\n(only the first {_size(n if isinstance(n, int) else 0)}{of} were kept for display: "
        "raise the oca_capture_limit option to keep more)"
    )


def _summary_line(meta: dict[str, Any]) -> list[str]:
    summary = meta.get("summary")
    if isinstance(summary, dict) and summary.get("comment"):
        return [str(summary["comment"]), ""]
    return []


def render_request(data: bytes, meta: dict[str, Any] | None, method: str, path: str) -> str:
    """A request body that went to OCA, under what the client sent before mapping."""
    client = (meta or {}).get("client_request")
    if not isinstance(client, dict):
        return render_body(data, "application/json")
    lines = _summary_line(meta or {})
    body = client.get("body")
    body = body if isinstance(body, str) else ""
    lines += [
        _rule(f"what the client sent: {client.get('method', 'POST')} {client.get('path', '')}"),
        render_body(body.encode(), "application/json") + _kept_note(client),
        "",
        _rule(f"what went to OCA: {method} {path}"),
        render_body(data, "application/json"),
    ]
    return "\n".join(lines)


def render_response(
    data: bytes, content_type: str | None, meta: dict[str, Any] | None, status: int | None
) -> str:
    """What the client received, and below it what OCA answered (when that differs)."""
    meta = meta or {}
    oca = meta.get("oca_response")
    client = meta.get("client_response") if isinstance(meta.get("client_response"), dict) else {}
    if not isinstance(oca, dict) and not client:
        return render_body(data, content_type)
    lines = _summary_line(meta)
    if client and client.get(
        "replay"
    ):  # mitmproxy replayed the request made for OCA: OCA's own answer
        title = f"what OCA answered the replay: {status if status is not None else ''}"
        return "\n".join([*lines, _rule(title.rstrip()), render_body(data, content_type)])
    lines += [
        _rule(f"what the client received: {status if status is not None else ''}".rstrip()),
        render_body(data, content_type) + _kept_note(client or {}),
    ]
    if isinstance(oca, dict):
        lines.append("")
        title = f"what OCA answered: {oca.get('status_code', '')}".rstrip()
        if oca.get("same_as_client"):
            lines += [_rule(title), "(the same bytes: the client got OCA's answer unchanged)"]
        else:
            body = oca.get("body")
            body = body if isinstance(body, str) else ""
            lines += [
                _rule(title),
                render_body(body.encode(), oca.get("content_type")) + _kept_note(oca),
            ]
    return "\n".join(lines)


# -- the mitmproxy contentview -----------------------------------------------------------

from mitmproxy import contentviews, http  # noqa: E402  (the pure part above needs none)
from mitmproxy.contentviews import Contentview, Metadata  # noqa: E402


def _oca_meta(metadata: Metadata) -> dict[str, Any] | None:
    flow = metadata.flow
    meta = flow.metadata.get(META_KEY) if flow is not None else None
    return meta if isinstance(meta, dict) else None


class OcaContentview(Contentview):
    """`OCA`: assembled event streams, and for API calls what the client sent and got."""

    @property
    def name(self) -> str:
        return NAME

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        meta = _oca_meta(metadata)
        message = metadata.http_message
        if meta is not None and isinstance(message, http.Request):
            return render_request(data, meta, message.method, message.path)
        if meta is not None and isinstance(message, http.Response):
            return render_response(data, metadata.content_type, meta, message.status_code)
        return render_body(data, metadata.content_type)

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        if metadata.content_type == "text/event-stream" and data:
            return 2
        if _oca_meta(metadata) is not None and metadata.http_message is not None:
            return 1.5  # above the JSON view: it shows the same JSON, and the other side
        return -1


_view: OcaContentview | None = None


def register() -> None:
    """Add the view to mitmproxy (idempotent: a script reload replaces it)."""
    global _view
    if _view is None:
        _view = OcaContentview()
    if contentviews.registry.get(NAME.lower()) is not _view:
        contentviews.add(_view)
