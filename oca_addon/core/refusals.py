"""When OCA refuses a request: what it refuses, the smallest change that removes it, and what
is learned per model so a later call never meets the same refusal.

OCA is a LiteLLM proxy: a refusal is HTTP 400 whose reason is only in the message text
(OCA-FACTS, "When OCA refuses"). `parse_refusal` reads that text (LiteLLM's and the
providers' own wordings, with LiteLLM's prefixes and tails, JSON nested in the string) and
returns None for anything it does not recognise: it never guesses. `fix_request` makes the
smallest change to the body actually sent; `LearnedFacts` remembers the fact per model and
applies it to every later body (`apply`, cheap when nothing is known).

Pure: no mitmproxy, no network; dicts, strings and one JSON file. The proxy's side:

    body, changes = learned.apply(model, body, api)         # before every send
    refusal = parse_refusal(text)                           # on a 400 from OCA
    fix = fix_request(body, api, refusal) if refusal else None
    if fix:                                                 # send fix.body once more
        for fact in fix.facts:                              # all of them, not only fix.fact
            if learned.learn(model, fact, catalog.info(model)):
                log.info(fact.describe(model))
    learned.reconcile(catalog.models)                       # the model list fetched again
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeGuard

from oca_addon.core.private import write_private

log = logging.getLogger(__name__)

UpstreamApi = Literal["chat", "responses", "messages", "completions"]

# The reasoning efforts in order: modelinfo._EFFORT_ORDER, and "max" above them (OpenAI's
# newest value, and Anthropic's output_config.effort). The nearest is fitted, ties go up.
EFFORT_ORDER = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
MIN_THINKING_BUDGET = 1024  # Anthropic's floor for thinking.budget_tokens

# Never dropped, whatever OCA says: without them there is no request (model, messages, input,
# prompt, stream: the proxy relies on streaming), or another request (system, instructions,
# tools: what the model is told and can do).
PROTECTED = frozenset(
    {"model", "messages", "input", "prompt", "stream", "system", "instructions", "tools"}
)

# Output-cap fields, in the order the APIs use them.
CAP_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
# chat and completions; Responses; Messages (Anthropic's effort, Claude 4.5 and later)
EFFORT_FIELDS = ("reasoning_effort", "reasoning.effort", "output_config.effort")
# Fields a request of that API cannot go without (Anthropic requires max_tokens).
_REQUIRED: dict[str, frozenset[str]] = {"messages": frozenset({"max_tokens"})}

# One field under its names across the APIs (the first is the canonical name a Fact keeps).
_ALIAS_GROUPS: tuple[tuple[str, ...], ...] = (
    CAP_FIELDS,
    EFFORT_FIELDS,
    ("reasoning_summary", "reasoning.summary"),
    ("stop", "stop_sequences"),
)
_ALIASES = {name: group for group in _ALIAS_GROUPS for name in group}


# -- what OCA refuses ----------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    kind: Literal["param", "value", "max_tokens"]
    params: tuple[str, ...] = ()  # kind "param": the names as OCA wrote them
    rename_to: str | None = None  # kind "param": "Use 'max_completion_tokens' instead"
    field: str | None = None  # kind "value": the field ("reasoning_effort", "reasoning.effort")
    value: str | None = None  # kind "value": the refused value, as a string
    supported: tuple[str, ...] = ()  # kind "value": the values OCA named, in its order
    maximum: int | None = None  # kind "max_tokens": the model's real output cap


_NAME = r"[A-Za-z_][\w.\[\]-]*"  # a parameter as written (checked by _removable afterwards)
_FIELD_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")  # top level or dotted objects
_QUOTED = re.compile(r"""'([^'\\]*)'|"([^"\\]*)"|`([^`\\]*)`""")
_PARAM_HINT = re.compile(r"""['"]param['"]\s*:\s*['"]([A-Za-z_][\w.]*)['"]""")

# Output caps: each pattern's first group is the model's real maximum.
_MAX_PATTERNS: tuple[re.Pattern[str], ...] = (
    # OpenAI chat: "max_tokens is too large: 32000. This model supports at most 16384
    # completion tokens, whereas you provided 32000."
    re.compile(
        r"max_tokens is too large: \d+\. This model supports at most (\d+) completion tokens"
    ),
    # Anthropic: "max_tokens: 64000 > 32000, which is the maximum allowed number of output
    # tokens for claude-opus-4-20250514"
    re.compile(r"max_tokens: \d+ > (\d+), which is the maximum allowed number of output tokens"),
    # OpenAI Responses: "Invalid 'max_output_tokens': integer above maximum value. Expected a
    # value <= 128000, but got 200000 instead." (Volcengine writes it in lower case)
    re.compile(
        r"""['"`]?(?:max_output_tokens|max_completion_tokens|max_tokens)['"`]?[^.\n]{0,80}?"""
        r"integer above maximum value[.,]? expected a value <= (\d+)",
        re.IGNORECASE,
    ),
    # Groq: "max_tokens for `llama-3.1-8b-instant` must be less than or equal to 8000"
    re.compile(
        r"`?max_(?:completion_)?tokens`?(?: for `[^`]{1,200}`)? must be less than or equal to `?(\d+)"
    ),
    # DeepSeek: "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]"
    re.compile(r"the valid range of max_tokens is \[\d+, ?(\d+)\]"),
)

_UNSUPPORTED_VALUE = re.compile(
    r"Unsupported value: '(?P<field>[^']+)' does not support (?P<value>'[^']*'|\S+?) with this"
    r" model\.\s*(?:Supported values are: (?P<supported>[^\n]*?)\.(?:\s|$|\\|\")"
    r"|Only the default \((?P<default>[^)]*)\) value is supported)"
)
# OpenAI names the field only in the error's "param": "Invalid value: 'max'. Supported values
# are: 'low', 'medium', and 'high'."
_INVALID_VALUE = re.compile(
    r"Invalid value: '(?P<value>[^']*)'\. Supported values are: (?P<supported>[^\n]*?)\.(?:\s|$|\\|\"|')"
)
# Pydantic, as vLLM and SGLang answer: {'type': 'literal_error', 'loc': ('body',
# 'reasoning_effort'), 'msg': "Input should be 'low', 'medium' or 'high'", 'input': 'xhigh'
_LITERAL_ERROR = re.compile(
    r"""['"]?loc['"]?\s*:\s*[(\[]\s*['"]body['"]\s*,\s*['"](?P<field>[A-Za-z_]\w*)['"]\s*[)\]]"""
    r"""\s*,\s*['"]?msg['"]?\s*:\s*\\?["'](?P<supported>Input should be [^"\\]*?)\\?["']"""
    r"""\s*,\s*['"]?input['"]?\s*:\s*\\?['"](?P<value>[^'"\\]*)\\?['"]"""
)
# LiteLLM's own checks of an effort a model lacks (OpenAI GPT-5 and Anthropic adapters):
# "reasoning_effort='xhigh' is only supported for gpt-5.1-codex-max, gpt-5.2, ...",
# "effort='max' is only supported by Claude Opus 4.6"
_ONLY_SUPPORTED = re.compile(
    r"(?<![\w.])(?P<field>reasoning_effort|effort)='(?P<value>\w+)' is only supported (?:for|by) "
)
_LITELLM_PARAMS = re.compile(
    r"does not support parameters: (?P<list>[\[{].*?[\]}])(?:, for model=|\s|$)"
)
_LITELLM_REASONING = re.compile(
    r"doesn't support (?P<name>[A-Za-z_]\w*)=\S+ while reasoning is active"
)
_PARAM_PATTERNS: tuple[re.Pattern[str], ...] = (
    # OpenAI: "Unsupported parameter: 'max_tokens' is not supported with this model. Use
    # 'max_completion_tokens' instead."
    re.compile(
        rf"Unsupported parameter: '(?P<name>{_NAME})' is not supported with this model\."
        r"(?:\s*Use '(?P<rename>[A-Za-z_][\w.]*)' instead)?"
    ),
    # OpenAI: "Unknown parameter: 'reasoningSummary'."
    re.compile(rf"Unknown parameter: '(?P<name>{_NAME})'"),
    # OpenAI: "Unrecognized request argument supplied: system_prompt"
    re.compile(
        r"Unrecognized request arguments? supplied: "
        r"(?P<names>[A-Za-z_][\w.]*(?:, ?[A-Za-z_][\w.]*)*)"
    ),
    # xAI: "Argument not supported on this model: frequencyPenalty"
    re.compile(r"Argument not supported on this model: (?P<name>[A-Za-z_][\w.]*)"),
    # Anthropic (also through Bedrock and Vertex): "context_management: Extra inputs are not
    # permitted", "output_config.effort: Extra inputs are not permitted"
    re.compile(rf"(?<![\w.\[\]-])(?P<name>{_NAME}): Extra inputs are not permitted"),
    # Bedrock: "extraneous key [stream] is not permitted"
    re.compile(r"extraneous key \[(?P<name>[A-Za-z_]\w*)\] is not permitted"),
    # Gemini: 'Unknown name "frequency_penalty": Cannot find field.' (top level only: a
    # field named "at 'generation_config'" is in Gemini's own body, not the one sent)
    re.compile(r"""Unknown name \\?"(?P<name>[A-Za-z_]\w*)\\?": Cannot find field"""),
)
# Refusals of a combination, each fixed by dropping the one named here.
_FIXED_PARAMS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    # Anthropic (Claude 4.5 and later): "`temperature` and `top_p` cannot both be specified
    # for this model. Please use only one." -> top_p goes (temperature is what clients set).
    (re.compile(r"`?temperature`? and `?top_p`? cannot both be specified"), ("top_p",)),
    # Anthropic: "`temperature` may only be set to 1 when thinking is enabled"
    (
        re.compile(r"`?temperature`? may only be set to 1 when thinking is enabled"),
        ("temperature",),
    ),
    # Gemini: "Penalty is not enabled for models/gemini-2.5-flash"
    (
        re.compile(r"\bPenalty is not enabled for (?:this model|models/)"),
        ("frequency_penalty", "presence_penalty"),
    ),
)


def parse_refusal(message: str) -> Refusal | None:
    """OCA's 400 message text (the error.message, or the whole body text) -> what it refuses;
    None when not recognised (never guess)."""
    if not isinstance(message, str) or not message:
        return None
    message = message[:65536]
    hint = _PARAM_HINT.search(message)
    for text in _texts(message):
        refusal = _parse_one(re.sub(r"\s+", " ", text), hint.group(1) if hint else None)
        if refusal is not None:
            return refusal
    return None


def _texts(message: str) -> Iterator[str]:
    """The strings to read: those in JSON nested in the message (deepest first: no escaped
    quotes), then the message itself."""
    found: list[str] = []
    _nested_strings(message, found, depth=0)
    yield from reversed(found)
    yield message


_DECODER = json.JSONDecoder()
_OBJECT_START = re.compile(r'\{\s*"')  # where a JSON object may start: {"
_MAX_DECODES = 16  # attempts per string: a failed one costs the length of the text before it


def _nested_strings(text: str, found: list[str], depth: int) -> None:
    if depth > 4 or len(found) > 32:
        return
    pos, attempts = 0, 0
    while len(found) <= 32 and attempts < _MAX_DECODES:
        m = _OBJECT_START.search(text, pos)
        if m is None:
            return
        attempts += 1
        try:
            obj, end = _DECODER.raw_decode(text, m.start())
        except (ValueError, RecursionError):
            pos = m.start() + 1
            continue
        for s in _strings(obj):
            found.append(s)
            _nested_strings(s, found, depth + 1)
        pos = end


def _strings(obj: Any) -> Iterator[str]:
    """The strings in decoded JSON, in document order (iterative: JSON may nest deeply)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _value_refusal(name: str, value: str, supported: tuple[str, ...]) -> Refusal | None:
    if not _removable(name):
        return None
    return Refusal("value", field=name, value=value, supported=supported)


def _parse_one(text: str, param: str | None) -> Refusal | None:
    for pattern in _MAX_PATTERNS:
        m = pattern.search(text)
        if m:
            maximum = int(m.group(1))
            return Refusal("max_tokens", maximum=maximum) if maximum > 0 else None

    m = _UNSUPPORTED_VALUE.search(text)
    if m:
        name = m.group("field")
        if m.group("default") is not None:  # "Only the default (1) value is supported"
            return _params_refusal([name])
        return _value_refusal(name, _unquote(m.group("value")), _quoted(m.group("supported")))
    m = _INVALID_VALUE.search(text)
    if m and param:
        return _value_refusal(param, m.group("value"), _quoted(m.group("supported")))
    m = _LITERAL_ERROR.search(text)
    if m:
        return _value_refusal(m.group("field"), m.group("value"), _quoted(m.group("supported")))
    m = _ONLY_SUPPORTED.search(text)
    if m:
        name = "output_config.effort" if m.group("field") == "effort" else m.group("field")
        return _value_refusal(name, m.group("value"), ())

    m = _LITELLM_REASONING.search(text)
    if m:
        return _params_refusal([m.group("name")])
    m = _LITELLM_PARAMS.search(text)
    if m:
        return _params_refusal(_top_level_names(m.group("list")))

    for pattern in _PARAM_PATTERNS:
        m = pattern.search(text)
        if not m:
            continue
        groups = m.groupdict()
        if groups.get("names"):
            names = [n.strip() for n in groups["names"].split(",")]
        else:
            names = [groups["name"]]
        rename = groups.get("rename")
        if rename and len(names) == 1 and _removable(names[0]) and _removable(rename):
            return Refusal("param", params=(names[0],), rename_to=rename)
        return _params_refusal(names)
    for pattern, params in _FIXED_PARAMS:
        if pattern.search(text):
            return Refusal("param", params=params)
    return None


def _quoted(text: str | None) -> tuple[str, ...]:
    """'minimal', 'low', 'medium', and 'high' -> ("minimal", "low", "medium", "high")."""
    return tuple(a or b or c for a, b, c in _QUOTED.findall(text or ""))


def _params_refusal(names: list[str]) -> Refusal | None:
    names = [n.rstrip(".") for n in names]
    if not names or not all(_removable(n) for n in names):
        return None  # something inside messages/input, or a name we cannot remove safely
    return Refusal("param", params=tuple(dict.fromkeys(names)))


def _removable(name: str) -> bool:
    """A top-level field or a dotted path through objects, not one we never drop."""
    if len(name) > 100 or name.count(".") > 3 or not _FIELD_PATH.fullmatch(name):
        return False
    return _snake(name.split(".", 1)[0]) not in PROTECTED


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _top_level_names(text: str) -> list[str]:
    """The names in LiteLLM's `['temperature', 'top_p']` or `{'temperature': 0.2, ...}`: the
    quoted strings one level deep (in a dict, only its keys)."""
    names: list[str] = []
    depth = 0
    i = 0
    is_dict = text.startswith("{")
    while i < len(text):
        ch = text[i]
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch in "'\"":
            end = text.find(ch, i + 1)
            if end == -1:
                break
            if depth == 1:
                rest = text[end + 1 :].lstrip()
                if not is_dict or rest.startswith(":"):
                    names.append(text[i + 1 : end])
            i = end
        i += 1
    return names


def _snake(name: str) -> str:
    """frequencyPenalty -> frequency_penalty; each part of a dotted path alike."""
    return ".".join(
        re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", part).lower() for part in name.split(".")
    )


def canonical(name: str) -> str:
    """The name a Fact keeps for a body field: snake_case, one name per alias group."""
    snake = _snake(name)
    group = _ALIASES.get(snake)
    return group[0] if group else snake


# -- what is learned ------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """One thing learned about one model."""

    kind: Literal["param", "efforts", "max_tokens"]
    param: str | None = None  # kind "param": the canonical snake_case body field dropped
    efforts: tuple[str, ...] = ()  # kind "efforts": the efforts the model really takes
    maximum: int | None = None  # kind "max_tokens"
    rename_to: str | None = None  # kind "param": sent under this name instead of dropped
    # kind "efforts": efforts refused when OCA named no list ("reasoning_effort='xhigh' is only
    # supported for ..."): the next lower one is sent instead
    refused: tuple[str, ...] = ()

    def describe(self, model: str) -> str:
        if self.kind == "param" and self.rename_to:
            return f"OCA refuses {self.param} for {model}: sent as {self.rename_to} from now on"
        if self.kind == "param":
            return f"OCA refuses {self.param} for {model}: dropped from now on"
        if self.kind == "efforts" and not self.efforts:
            return (
                f"OCA refuses {', '.join(self.refused)} as reasoning effort for {model}:"
                " a lower effort sent from now on"
            )
        if self.kind == "efforts":
            return (
                f"OCA takes only {', '.join(self.allowed)} as reasoning effort for {model}:"
                " efforts fitted to those from now on"
            )
        return (
            f"OCA caps {model}'s output at {self.maximum} tokens:"
            " max tokens lowered to that from now on"
        )

    def detail(self) -> str:
        """The fact without the model, for the dashboard."""
        if self.kind == "param" and self.rename_to:
            return f"{self.param} refused: sent as {self.rename_to}"
        if self.kind == "param":
            return f"{self.param} refused: dropped"
        if self.kind == "efforts" and not self.efforts:
            return f"reasoning efforts refused: {', '.join(self.refused)}"
        if self.kind == "efforts":
            return f"reasoning efforts: {', '.join(self.allowed)}"
        return f"at most {self.maximum} output tokens"

    @property
    def allowed(self) -> tuple[str, ...]:
        """kind "efforts": the efforts the model takes, less any refused since."""
        return tuple(e for e in self.efforts if e not in self.refused)

    def merged(self, older: Fact) -> Fact:
        """This fact with what an older one of the same key still adds (efforts refused one
        by one add up; a list OCA named loses the efforts refused since)."""
        if self.kind != "efforts" or older.kind != "efforts" or self.efforts:
            return self
        refused = tuple(dict.fromkeys((*older.refused, *self.refused)))
        if older.efforts and any(e not in refused for e in older.efforts):
            return Fact("efforts", efforts=older.efforts, refused=refused)
        return Fact("efforts", refused=refused)

    @property
    def valid(self) -> bool:
        """Something apply can act on (a fact read from a file is checked too)."""
        if self.kind == "param":
            names = (self.param or "", *([self.rename_to] if self.rename_to else []))
            return all(_removable(n) for n in names)
        if self.kind == "efforts":
            return bool(self.efforts or self.refused)
        return self.kind == "max_tokens" and _is_count(self.maximum) and self.maximum > 0

    @property
    def key(self) -> tuple[str, str]:
        """What a later fact of the same subject replaces."""
        return (self.kind, self.param or "") if self.kind == "param" else (self.kind, "")


@dataclass
class Fix:
    body: dict[str, Any]  # a new dict: the upstream body with the smallest change
    change: str  # for people: "dropped temperature", "reasoning_effort medium -> high"
    fact: Fact
    more_facts: tuple[Fact, ...] = ()  # when OCA refused several params at once

    @property
    def facts(self) -> tuple[Fact, ...]:
        """Every fact learned from the refusal (learn them all)."""
        return (self.fact, *self.more_facts)


# -- changing a body ------------------------------------------------------------------------


def _get(body: dict[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = body
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _spellings(name: str) -> tuple[str, ...]:
    """A canonical field under every name a body may carry it (the name itself first)."""
    group = _ALIASES.get(name)
    return group if group else (name,)


class _Editor:
    """Copy-on-write edits of a body: the input and its nested objects are never mutated; only
    the objects on an edited path are copied (never the messages)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.original = body
        self.body = body
        self._copied: set[int] = set()  # ids of the objects this editor made (safe to change)

    def _own(self, path: tuple[str, ...]) -> dict[str, Any]:
        """The (copied) object at path, copying each object on the way."""
        if self.body is self.original:
            self.body = dict(self.body)
            self._copied.add(id(self.body))
        node = self.body
        for part in path:
            child = node[part]
            if id(child) not in self._copied:
                child = dict(child)
                node[part] = child
                self._copied.add(id(child))
            node = child
        return node

    def delete(self, path: str) -> None:
        parts = path.split(".")
        parent = self._own(tuple(parts[:-1]))
        del parent[parts[-1]]
        # An object emptied by the deletion goes too ("reasoning": {} after its effort).
        for depth in range(len(parts) - 1, 0, -1):
            holder = self._own(tuple(parts[: depth - 1]))
            if holder.get(parts[depth - 1]) == {}:
                del holder[parts[depth - 1]]
            else:
                break

    def set(self, path: str, value: Any) -> None:
        parts = path.split(".")
        parent = self._own(tuple(parts[:-1]))
        parent[parts[-1]] = value

    @property
    def changed(self) -> bool:
        return self.body is not self.original


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _lower_effort(effort: str, refused: tuple[str, ...]) -> str | None:
    """The effort to send for a refused one: the next lower not refused, else the next higher;
    None when the effort is off the scale (or every other is refused)."""
    if effort not in EFFORT_ORDER:
        return None
    rank = EFFORT_ORDER.index(effort)
    lower = [e for e in reversed(EFFORT_ORDER[:rank]) if e not in refused]
    higher = [e for e in EFFORT_ORDER[rank + 1 :] if e not in refused]
    return lower[0] if lower else higher[0] if higher else None


def _nearest_effort(effort: str, supported: tuple[str, ...]) -> str | None:
    """The supported effort nearest to `effort` on EFFORT_ORDER (ties go up); None when the
    effort or every supported value is off the scale."""
    ranked = [s for s in supported if s in EFFORT_ORDER]
    if effort not in EFFORT_ORDER or not ranked:
        return None
    rank = EFFORT_ORDER.index(effort)
    return min(ranked, key=lambda o: (abs(EFFORT_ORDER.index(o) - rank), -EFFORT_ORDER.index(o)))


def _apply_param(ed: _Editor, fact: Fact, api: str) -> list[str]:
    name = fact.param or ""
    if not name or not _removable(name):
        return []
    changes: list[str] = []
    if fact.rename_to:
        # A chat field's new name ("Use 'max_completion_tokens' instead"): chat bodies only.
        found, value = _get(ed.body, name)
        if api not in ("chat", "completions") or not found:
            return []
        if "." in name or "." in fact.rename_to or name == fact.rename_to:
            return []
        ed.delete(name)
        if fact.rename_to not in ed.body:
            ed.set(fact.rename_to, value)
        return [f"renamed {name} to {fact.rename_to}"]
    required = _REQUIRED.get(api, frozenset())
    for path in _spellings(name):
        if path not in required and _get(ed.body, path)[0]:
            ed.delete(path)
            changes.append(f"dropped {path}")
    return changes


def _apply_efforts(ed: _Editor, fact: Fact) -> list[str]:
    allowed = fact.allowed
    changes: list[str] = []
    for path in EFFORT_FIELDS:
        found, value = _get(ed.body, path)
        if not found or not isinstance(value, str):
            continue
        effort = value.strip().lower()
        if fact.efforts:
            if effort in allowed:
                continue
            fitted = _nearest_effort(effort, allowed)
        elif effort in fact.refused:
            fitted = _lower_effort(effort, fact.refused)
        else:
            continue
        if fitted is None:
            ed.delete(path)
            changes.append(f"dropped {path} {value}")
        else:
            ed.set(path, fitted)
            changes.append(f"{path} {value} -> {fitted}")
    return changes


def _apply_max_tokens(ed: _Editor, maximum: int) -> list[str]:
    above = [
        (path, value)
        for path in CAP_FIELDS
        for found, value in [_get(ed.body, path)]
        if found and _is_count(value) and value > maximum
    ]
    if not above:
        return []
    changes = []
    for path, value in above:
        ed.set(path, maximum)
        changes.append(f"{path} {value} -> {maximum}")
    asked = max(value for _, value in above)
    thinking = ed.body.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    if _is_count(budget) and budget >= maximum:
        if maximum <= MIN_THINKING_BUDGET:
            ed.delete("thinking")
            changes[-1] += " (thinking dropped)"
        else:
            # In proportion to the cap (the answer keeps its share), at least Anthropic's
            # floor, and below max_tokens as Anthropic wants.
            lowered = max(MIN_THINKING_BUDGET, min(budget * maximum // asked, maximum - 1))
            ed.set("thinking.budget_tokens", lowered)
            changes[-1] += f" (thinking budget {budget} -> {lowered})"
    return changes


def apply_fact(
    body: dict[str, Any], fact: Fact, api: UpstreamApi = "chat"
) -> tuple[dict[str, Any], list[str]]:
    """One fact applied to an upstream body: (the body, a new dict if anything changed, else
    the same object; the changes for people)."""
    ed = _Editor(body)
    if fact.kind == "param":
        changes = _apply_param(ed, fact, api)
    elif fact.kind == "efforts":
        changes = _apply_efforts(ed, fact)
    elif fact.kind == "max_tokens" and fact.maximum is not None and fact.maximum > 0:
        changes = _apply_max_tokens(ed, fact.maximum)
    else:
        changes = []
    return ed.body, changes


def _facts_for(body: dict[str, Any], refusal: Refusal) -> list[Fact]:
    """The facts a refusal teaches, named as the body carries them."""
    if refusal.kind == "max_tokens":
        return [Fact("max_tokens", maximum=refusal.maximum)] if refusal.maximum else []
    if refusal.kind == "param":
        if refusal.rename_to:
            # Only the field as named: a body already using the new name was not refused.
            name = _snake(refusal.params[0])
            if "." in name or name == refusal.rename_to or not _get(body, name)[0]:
                return []
            return [Fact("param", param=name, rename_to=refusal.rename_to)]
        return [Fact("param", param=canonical(p)) for p in refusal.params if _removable(p)]
    # kind "value"
    name = refusal.field or ""
    if not _removable(name):
        return []
    supported = tuple(s.strip().lower() for s in refusal.supported)
    if canonical(name) == "reasoning_effort":
        value = (refusal.value or "").strip().lower()
        if any(s in EFFORT_ORDER for s in supported):
            return [Fact("efforts", efforts=supported)]
        if not supported and value in EFFORT_ORDER:
            return [Fact("efforts", refused=(value,))]
    return [Fact("param", param=canonical(name))]


def fix_request(body: dict[str, Any], api: UpstreamApi, refusal: Refusal) -> Fix | None:
    """The smallest change to the body actually sent that removes the refused thing; None when
    the body does not carry it (then the proxy passes OCA's refusal on)."""
    if not isinstance(body, dict):
        return None
    out = body
    changes: list[str] = []
    facts: list[Fact] = []
    for fact in _facts_for(body, refusal):
        out, done = apply_fact(out, fact, api)
        if done:
            changes += done
            facts.append(fact)
    if not facts or out is body:
        return None
    return Fix(out, "; ".join(changes), facts[0], tuple(facts[1:]))


# -- the facts learned, per model -----------------------------------------------------------

# Catalogue fields that say nothing about what a model takes (a changed banner is no reason
# to forget what was learned).
_COSMETIC = frozenset({"banner", "survey_id", "survey_content", "description"})


def fingerprint(entry: dict[str, Any] | None) -> str | None:
    """A stable digest of a model's catalogue entry (key order does not matter)."""
    if not isinstance(entry, dict):
        return None
    kept = {k: v for k, v in entry.items() if k not in _COSMETIC}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class _Known:
    fact: Fact
    learned_at: float
    expires_at: float
    entry: str | None  # fingerprint of the catalogue entry when learned


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


LEARNED_FILE = "oca-proxy.learned.json"


def learned_facts_path(settings_path: Path | None = None) -> Path:
    """The learned-facts file the proxy and `oca-proxy doctor` share: beside the settings
    file (`~/.config/oca/oca-proxy.learned.json` for the default settings file)."""
    if settings_path is None:
        from oca_addon.core.settings import config_dir

        return config_dir() / LEARNED_FILE
    return Path(settings_path).expanduser().parent / LEARNED_FILE


class LearnedFacts:
    """What OCA's refusals taught, per model, kept for `ttl` seconds (and in a file when a path
    is given). `apply` runs on every request: one dict lookup when nothing is known.

    `learn`, `forget`, `reconcile` save at once (blocking file I/O, small and rare)."""

    def __init__(
        self,
        path: Path | None = None,
        ttl: float = 7 * 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.RLock()
        # model -> its facts; a list is replaced, never changed in place (apply reads lock-free)
        self._models: dict[str, tuple[_Known, ...]] = {}
        if path is not None:
            self.load()

    # -- learning and applying

    def learn(self, model: str, fact: Fact, entry: dict[str, Any] | None = None) -> bool:
        """Remember a fact; True when it is new (log fact.describe(model) once then)."""
        if not fact.valid:
            return False
        now = self.clock()
        with self._lock:
            known = tuple(k for k in self._models.get(model, ()) if k.expires_at > now)
            for k in known:
                if k.fact.key == fact.key:
                    fact = fact.merged(k.fact)
                    if k.fact == fact:
                        return False
            kept = tuple(k for k in known if k.fact.key != fact.key)
            self._models[model] = (*kept, _Known(fact, now, now + self.ttl, fingerprint(entry)))
            self._save_quietly()
        return True

    def apply(
        self, model: str, body: dict[str, Any], api: UpstreamApi
    ) -> tuple[dict[str, Any], list[str]]:
        """What is known for the model applied to an upstream body before it is sent: (the
        body, a new dict when changed, else the same object; the changes)."""
        known = self._models.get(model)
        if not known:
            return body, []
        now = self.clock()
        changes: list[str] = []
        for k in known:
            if k.expires_at > now:
                body, done = apply_fact(body, k.fact, api)
                changes += done
        return body, changes

    def _live(self, model: str) -> Iterator[Fact]:
        now = self.clock()
        for k in self._models.get(model, ()):
            if k.expires_at > now:
                yield k.fact

    def efforts(self, model: str) -> tuple[str, ...] | None:
        """The efforts the model takes as OCA listed them (less any refused since); None when
        no list is known (efforts refused without one: see facts())."""
        for fact in self._live(model):
            if fact.kind == "efforts" and fact.efforts:
                return fact.allowed
        return None

    def max_tokens(self, model: str) -> int | None:
        for fact in self._live(model):
            if fact.kind == "max_tokens":
                return fact.maximum
        return None

    def facts(self, model: str) -> list[Fact]:
        return list(self._live(model))

    # -- forgetting

    def forget(self, model: str | None = None) -> int:
        """Forget one model's facts, or all; how many went. Saves."""
        with self._lock:
            if model is None:
                gone = sum(len(v) for v in self._models.values())
                self._models = {}
            else:
                gone = len(self._models.pop(model, ()))
            if gone:
                self._save_quietly()
        return gone

    def reconcile(self, entries: dict[str, dict[str, Any]]) -> list[str]:
        """The model list was fetched again: forget what was learned about each model whose
        catalogue entry changed since (or appeared, or went). The models forgotten."""
        forgotten: list[str] = []
        with self._lock:
            for model, known in list(self._models.items()):
                now_print = fingerprint(entries.get(model))
                kept = tuple(k for k in known if k.entry == now_print)
                if len(kept) != len(known):
                    forgotten.append(model)
                    if kept:
                        self._models[model] = kept
                    else:
                        del self._models[model]
            if forgotten:
                self._save_quietly()
        return forgotten

    # -- showing

    def snapshot(self) -> list[dict[str, Any]]:
        """For the dashboard and /health: one row per live fact, no secrets."""
        now = self.clock()
        rows = []
        for model, known in sorted(self._models.items()):
            for k in known:
                if k.expires_at > now:
                    rows.append(
                        {
                            "model": model,
                            "kind": k.fact.kind,
                            "detail": k.fact.detail(),
                            "learned_at": _iso(k.learned_at),
                            "expires_at": _iso(k.expires_at),
                        }
                    )
        return rows

    # -- the file

    def load(self) -> None:
        """Read the file; a missing one means nothing learned, an unreadable or corrupt one
        too (with a warning). Expired facts are dropped."""
        with self._lock:
            self._models = {}
            if self.path is None:
                return
            try:
                text = self.path.read_text(encoding="utf-8")
            except FileNotFoundError:
                return
            except (OSError, UnicodeDecodeError) as e:
                log.warning(
                    "cannot read the learned facts in %s (%s): starting afresh", self.path, e
                )
                return
            try:
                data = json.loads(text)
            except ValueError:
                log.warning("%s is not valid JSON (corrupt?): starting afresh", self.path)
                return
            models = data.get("models") if isinstance(data, dict) else None
            if (
                not isinstance(data, dict)
                or data.get("version") != 1
                or not isinstance(models, dict)
            ):
                log.warning(
                    "%s is not a learned-facts file of version 1: starting afresh", self.path
                )
                return
            now = self.clock()
            bad = 0
            for model, raw in models.items():
                items = raw.get("facts") if isinstance(raw, dict) else None
                if not isinstance(model, str) or not isinstance(items, list):
                    bad += 1
                    continue
                known = []
                for item in items:
                    k = _known_from(item)
                    if k is None:
                        bad += 1
                    elif k.expires_at > now:
                        known.append(k)
                if known:
                    self._models[model] = tuple(known)
            if bad:
                log.warning("%s: %d unreadable entries skipped", self.path, bad)

    def save(self) -> None:
        """Write the file atomically (temp file + rename), file 0600 in a 0700 folder."""
        if self.path is None:
            return
        with self._lock:
            payload = {
                "version": 1,
                "models": {
                    model: {"facts": [_known_to(k) for k in known]}
                    for model, known in sorted(self._models.items())
                },
            }
            data = json.dumps(payload, indent=2, sort_keys=True) + "\n"
            write_private(self.path, data.encode())

    def _save_quietly(self) -> None:
        """Save; a failure is logged (what was learned still holds in memory)."""
        try:
            self.save()
        except OSError as e:
            log.warning("cannot save the learned facts to %s: %s", self.path, e)


def _known_to(k: _Known) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": k.fact.kind}
    if k.fact.param is not None:
        out["param"] = k.fact.param
    if k.fact.rename_to is not None:
        out["rename_to"] = k.fact.rename_to
    if k.fact.efforts:
        out["efforts"] = list(k.fact.efforts)
    if k.fact.refused:
        out["refused"] = list(k.fact.refused)
    if k.fact.maximum is not None:
        out["maximum"] = k.fact.maximum
    out.update(learned_at=k.learned_at, expires_at=k.expires_at, entry=k.entry)
    return out


def _strs(value: Any) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_time(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _known_from(item: Any) -> _Known | None:
    if not isinstance(item, dict):
        return None
    kind = item.get("kind")
    learned_at, expires_at = item.get("learned_at"), item.get("expires_at")
    entry = item.get("entry")
    if not (_is_time(learned_at) and _is_time(expires_at)):
        return None
    if entry is not None and not isinstance(entry, str):
        return None
    param, rename, maximum = item.get("param"), item.get("rename_to"), item.get("maximum")
    efforts, refused = item.get("efforts", []), item.get("refused", [])
    if kind not in ("param", "efforts", "max_tokens") or not (_strs(efforts) and _strs(refused)):
        return None
    if not all(v is None or isinstance(v, str) for v in (param, rename)):
        return None
    fact = Fact(
        kind,
        param=param,
        rename_to=rename,
        efforts=tuple(efforts),
        refused=tuple(refused),
        maximum=maximum if _is_count(maximum) else None,
    )
    if not fact.valid:
        return None
    return _Known(fact, float(learned_at), float(expires_at), entry)


__all__ = [
    "Fact",
    "Fix",
    "LearnedFacts",
    "Refusal",
    "UpstreamApi",
    "apply_fact",
    "fix_request",
    "parse_refusal",
]
