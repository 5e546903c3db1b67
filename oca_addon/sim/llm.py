"""The scripted model: reads the conversation, obeys SIM: directives, plans the answer.

The answer is fully decided before anything is sent (a Plan); streams.py then
renders it in each API's wire grammar. Everything is deterministic except ids.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from oca_addon.sim.models import SimModel

DIRECTIVE_RE = re.compile(r"SIM:(\w+)(?:=(\S+))?")

DEFAULT_TEXT_DELTAS = 10
MAX_PARALLEL_TOOLS = 3
# Non-ASCII on purpose: U+2028 breaks parsers that use str.splitlines(); the
# multi-byte characters let split writes land in the middle of a UTF-8 sequence.
SPLIT_SUFFIX = " [split\u2028line é 漢字 🙂]"


@dataclass
class Directives:
    tool: str | None = None
    args: str | None = None
    parallel: bool = False
    error: int | None = None
    error_shape: str | None = None  # "oci" with SIM:error=STATUS:oci
    midstream_error: bool = False
    cut: bool = False
    html: bool = False
    garbage: bool = False
    slow_ms: int = 0
    ttft_ms: int = 0
    chunks: int | None = None
    length: bool = False
    reasoning: bool = False
    split: bool = False


_FLAGS = {"parallel", "midstream_error", "cut", "html", "garbage", "length", "reasoning", "split"}
_INTS = {"slow": "slow_ms", "ttft": "ttft_ms", "chunks": "chunks", "error": "error"}


def parse_directives(text: str) -> Directives:
    """Collect SIM:name[=value] directives; malformed values are ignored."""
    d = Directives()
    for name, value in DIRECTIVE_RE.findall(text):
        if name in _FLAGS:
            setattr(d, name, True)
        elif name == "tool" and value:
            d.tool = value
        elif name == "args" and value:
            d.args = value
        elif name == "error" and value.endswith(":oci") and value[:-4].isdigit():
            d.error, d.error_shape = int(value[:-4]), "oci"
        elif name in _INTS and value.isdigit():
            setattr(d, _INTS[name], int(value))
    if d.error is not None and not 400 <= d.error <= 599:
        d.error = None
    if d.chunks is not None and d.chunks < 1:
        d.chunks = None
    return d


@dataclass
class Tool:
    name: str
    kind: str  # "function" or "custom" (Responses free-form tools)
    schema: dict[str, Any]


@dataclass
class Conversation:
    """What the scripted model needs from a request, whatever the API."""

    user_text: str
    tool_result: str | None  # set when the last message is a tool result
    tools: list[Tool]
    prompt_chars: int  # size of the prompt JSON, for token estimates


def content_text(content: Any) -> str:
    """Text of a message content: a string or a list of text-ish parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n".join(texts)
    return ""


def _size(*parts: Any) -> int:
    return sum(len(json.dumps(p, ensure_ascii=False, default=str)) for p in parts if p)


def from_chat(body: dict[str, Any]) -> Conversation:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    user_text = next(
        (content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"),
        "",
    )
    tool_result = None
    if messages and messages[-1].get("role") in ("tool", "function"):
        tool_result = content_text(messages[-1].get("content"))
    tools = []
    for t in body.get("tools") or []:
        fn = t.get("function") if isinstance(t, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            tools.append(Tool(fn["name"], "function", fn.get("parameters") or {}))
    return Conversation(user_text, tool_result, tools, _size(body.get("messages")))


def from_responses(body: dict[str, Any]) -> Conversation:
    raw = body.get("input")
    items: list[Any] = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw or []
    items = [i for i in items if isinstance(i, dict)]
    user_text = next(
        (
            content_text(i.get("content"))
            for i in reversed(items)
            if i.get("role") == "user" and i.get("type", "message") == "message"
        ),
        "",
    )
    tool_result = None
    if items and items[-1].get("type") in ("function_call_output", "custom_tool_call_output"):
        tool_result = content_text(items[-1].get("output"))
    tools = []
    for t in body.get("tools") or []:
        if isinstance(t, dict) and isinstance(t.get("name"), str):
            if t.get("type") == "function":
                tools.append(Tool(t["name"], "function", t.get("parameters") or {}))
            elif t.get("type") == "custom":
                tools.append(Tool(t["name"], "custom", {}))
    return Conversation(
        user_text, tool_result, tools, _size(body.get("instructions"), body.get("input"))
    )


def from_messages(body: dict[str, Any]) -> Conversation:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]

    def text_of(m: dict[str, Any]) -> str:
        content = m.get("content")
        if isinstance(content, list):  # drop tool_result blocks
            content = [b for b in content if isinstance(b, dict) and b.get("type") == "text"]
        return content_text(content)

    # The last user turn that has text (a tool_result-only turn has none).
    user_text = next(
        (t for m in reversed(messages) if m.get("role") == "user" and (t := text_of(m))), ""
    )
    tool_result = None
    if messages and messages[-1].get("role") == "user":
        content = messages[-1].get("content")
        blocks = content if isinstance(content, list) else []
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        if results:
            tool_result = content_text(results[0].get("content"))
    tools = [
        Tool(t["name"], "function", t.get("input_schema") or {})
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("name"), str)
    ]
    return Conversation(user_text, tool_result, tools, _size(body.get("system"), messages))


def from_completions(body: dict[str, Any]) -> Conversation:
    prompt = body.get("prompt")
    text = prompt if isinstance(prompt, str) else content_text(prompt)
    return Conversation(text, None, [], _size(prompt))


@dataclass
class ToolCall:
    call_id: str
    item_id: str  # Responses item id (fc_... / ctc_...)
    name: str
    kind: str
    arguments: str  # JSON text for functions, raw text for custom tools
    fragments: list[str]


@dataclass
class Plan:
    model: SimModel
    directives: Directives
    reasoning: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish: str = "stop"  # "stop" | "length" | "tool_calls" (chat vocabulary)
    prompt_tokens: int = 1
    cached_tokens: int = 0  # read from the prompt cache
    cache_creation_tokens: int = 0  # written to the prompt cache

    @property
    def completion_tokens(self) -> int:
        n = len(self.reasoning) + len(self.text) + sum(len(c.fragments) for c in self.tool_calls)
        return max(1, n)

    @property
    def reasoning_tokens(self) -> int:
        return len(self.reasoning)

    @property
    def full_text(self) -> str:
        return "".join(self.text)

    @property
    def full_reasoning(self) -> str:
        return "".join(self.reasoning)


def split_even(text: str, n: int) -> list[str]:
    """Split text into min(n, len(text)) non-empty pieces of near-equal size."""
    n = max(1, min(n, len(text)))
    if not text:
        return [""]
    size, extra = divmod(len(text), n)
    pieces, pos = [], 0
    for i in range(n):
        end = pos + size + (1 if i < extra else 0)
        pieces.append(text[pos:end])
        pos = end
    return pieces


def args_from_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Fill the required properties with simple placeholder values."""
    props = schema.get("properties") or {}
    out: dict[str, Any] = {}
    for name in schema.get("required") or []:
        prop = props.get(name) or {}
        kind = prop.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        if prop.get("enum"):
            out[name] = prop["enum"][0]
        elif kind in ("number", "integer"):
            out[name] = 1
        elif kind == "boolean":
            out[name] = True
        elif kind == "array":
            out[name] = []
        elif kind == "object":
            out[name] = {}
        else:
            out[name] = "sim"
    return out


# Words of a tool's name that say nothing about what it is for.
_GENERIC_WORDS = frozenset(
    {"get", "set", "list", "run", "do", "make", "fetch", "create", "update", "delete", "call",
     "use", "tool", "the", "and", "for", "with", "exec", "command", "current", "info", "data"}
)  # fmt: skip
ASKED_MAX_CHARS = 300  # longer prompts are real clients' (system reminders, context)


def _name_words(name: str) -> list[str]:
    """`get_weather` -> ["weather"]; `WebFetch` -> ["web"]: the telling words of a name."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    words = re.split(r"[^A-Za-z0-9]+", spaced)
    return [w.lower() for w in words if len(w) >= 4 and w.lower() not in _GENERIC_WORDS]


def tool_asked_for(text: str, tools: list[Tool]) -> Tool | None:
    """The offered tool a short prompt asks for, without a SIM: directive: one it names
    (`use get_weather`), or whose name's telling words it uses (`Weather in Oslo?` for
    `get_weather`). Like a model would, so the docs' examples run against the demo; long
    prompts (coding tools' context) and prompts with directives are left alone."""
    if not tools or len(text) > ASKED_MAX_CHARS or "SIM:" in text:
        return None
    for tool in tools:
        if re.search(rf"(?<![\w-]){re.escape(tool.name)}(?![\w-])", text):
            return tool
    lowered = re.findall(r"[a-z0-9]+", text.lower())
    for tool in tools:
        words = _name_words(tool.name)
        if words and any(w in lowered for w in words):
            return tool
    return None


def _new_id() -> str:
    return uuid.uuid4().hex[:24]


def _make_call(tool: Tool, args: str | None) -> ToolCall:
    if tool.kind == "custom":
        arguments = args if args is not None else "sim"
    else:
        parsed = None
        if args is not None:
            try:
                parsed = json.loads(args)
            except ValueError:
                parsed = None
        if not isinstance(parsed, dict):
            parsed = args_from_schema(tool.schema)
        arguments = json.dumps(parsed, separators=(",", ":"))
    prefix = "ctc" if tool.kind == "custom" else "fc"
    return ToolCall(
        call_id=f"call_{_new_id()}",
        item_id=f"{prefix}_{_new_id()}",
        name=tool.name,
        kind=tool.kind,
        arguments=arguments,
        fragments=split_even(arguments, 4),
    )


def build_plan(
    model: SimModel, conv: Conversation, d: Directives, *, thinking: bool = False
) -> Plan:
    """The answer; `thinking`: the request enabled thinking on a model with thinking_config."""
    plan = Plan(model=model, directives=d)
    plan.prompt_tokens = max(1, conv.prompt_chars // 4)

    if model.is_reasoning_model or d.reasoning or thinking:
        said = DIRECTIVE_RE.sub("", conv.user_text).strip()[:40]
        subject = "the tool result" if conv.tool_result is not None else repr(said)
        plan.reasoning = split_even(f"Thinking about {subject} step by step.", 3)

    # Content priority: a tool result is acknowledged; else a requested tool call; else hello.
    if conv.tool_result is None:
        offered = {t.name: t for t in conv.tools}
        if d.parallel and offered:
            plan.tool_calls = [_make_call(t, None) for t in conv.tools[:MAX_PARALLEL_TOOLS]]
        elif d.tool and d.tool in offered:
            plan.tool_calls = [_make_call(offered[d.tool], d.args)]
        elif (asked := tool_asked_for(conv.user_text, conv.tools)) is not None:
            plan.tool_calls = [_make_call(asked, None)]
    if plan.tool_calls:
        plan.finish = "tool_calls"
        return plan

    if conv.tool_result is not None:
        answer = f"Tool result received: {conv.tool_result[:200]}"
    else:
        answer = f"Hello from the OCA simulator ({model.name}). You said: {conv.user_text[:100]}"
    if d.split:
        answer += SPLIT_SUFFIX
    n = d.chunks or DEFAULT_TEXT_DELTAS
    plan.text = split_even(answer, min(n, DEFAULT_TEXT_DELTAS))
    # Long streams (benchmarks): pad with small filler deltas up to n.
    plan.text += [f" t{i}" for i in range(len(plan.text), n)]
    plan.finish = "length" if d.length else "stop"
    return plan
