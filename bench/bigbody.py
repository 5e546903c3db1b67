"""Claude-Code-shaped request bodies of a given size, for the large-request section.

A Claude Code turn sends the whole conversation every time: a long system prompt, a list of
tools with long descriptions and JSON schemas, and hundreds of messages of history, most of
them tool calls (Read, Bash, Grep, Edit) and their results (file contents, command output).
The same conversation is written in each client API: Anthropic Messages (`tool_use` /
`tool_result` blocks), Responses (`function_call` / `function_call_output` items, as Codex
sends them) and chat (`tool_calls` / `tool` messages), each grown to the same size.

`more=j` gives the same conversation j requests later: request j+1 is request j and one turn
more (the assistant's text and tool call, the tool's result, the user's text), in every API.
In Anthropic's, the cache breakpoints move along as Claude Code moves them: on the last block
of the last two messages, gone from the ones before (and on the system prompt's last block).

Deterministic: the same (kind, size, text) gives the same bytes, run after run.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cache
from typing import Any

SEED = 20261202
_WORDS = [
    "the",
    "request",
    "body",
    "stream",
    "chunk",
    "token",
    "model",
    "proxy",
    "client",
    "server",
    "answer",
    "upstream",
    "route",
    "translate",
    "message",
    "content",
    "tool",
    "result",
    "call",
    "history",
    "system",
    "prompt",
    "cache",
    "limit",
    "usage",
    "error",
    "status",
    "header",
    "path",
    "value",
    "field",
    "schema",
    "object",
    "array",
    "string",
    "number",
    "boolean",
    "config",
    "option",
    "session",
    "refresh",
    "login",
    "flow",
    "event",
    "buffer",
    "parse",
    "encode",
    "decode",
    "count",
    "file",
    "line",
    "function",
    "class",
    "return",
    "import",
    "async",
    "await",
    "yield",
    "lambda",
    "dict",
    "list",
    "tuple",
    "set",
]
_IDENTS = [
    "request",
    "response",
    "handler",
    "gateway",
    "exchange",
    "driver",
    "parser",
    "reader",
    "writer",
    "builder",
    "catalog",
    "settings",
    "options",
    "tokens",
    "state",
    "record",
    "context",
    "message",
    "chunk",
    "frame",
    "buffer",
    "cursor",
    "index",
]
# Some non-ASCII, quotes, backslashes and tabs, as real files and outputs have them.
_EXTRAS = ("é", "—", "→", "✓", "中文", '"quoted"', "C:\\path\\to", "\t", "naïve", "ß")
_TOOL_NAMES = [
    "Task",
    "Bash",
    "Glob",
    "Grep",
    "ExitPlanMode",
    "Read",
    "Edit",
    "MultiEdit",
    "Write",
    "NotebookEdit",
    "WebFetch",
    "TodoWrite",
    "WebSearch",
    "BashOutput",
    "KillShell",
    "SlashCommand",
    "mcp__ide__getDiagnostics",
    "mcp__ide__executeCode",
]
_CALLED = ("Read", "Bash", "Grep", "Edit", "Glob", "Read", "Bash", "TodoWrite")


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(n)]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), rng.choice(_EXTRAS))
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(_sentence(rng, rng.randint(6, 18)) for _ in range(sentences))


def _code_line(rng: random.Random) -> str:
    indent = "    " * rng.randint(0, 3)
    a, b, c = rng.choice(_IDENTS), rng.choice(_IDENTS), rng.choice(_WORDS)
    shape = rng.randrange(6)
    if shape == 0:
        return f"{indent}def {a}_{c}(self, {b}: dict[str, Any]) -> {b.capitalize()} | None:"
    if shape == 1:
        return f'{indent}{a} = self.{b}.get("{c}", {rng.randint(0, 999)})'
    if shape == 2:
        return f"{indent}# {_sentence(rng, rng.randint(4, 12))}"
    if shape == 3:
        return f'{indent}raise ValueError(f"{c}: {{{a}!r}} is not a {b}")'
    if shape == 4:
        return f"{indent}return [{a} for {a} in {b}s if {a}.{c}]"
    return f'{indent}log.info("%s %s", {a}, "{rng.choice(_EXTRAS)}")'


def _file_contents(rng: random.Random, lines: int) -> str:
    """Read's output: numbered lines of code, as Claude Code shows them to the model."""
    start = rng.randint(1, 400)
    return "\n".join(f"{start + i:>6}\t{_code_line(rng)}" for i in range(lines))


def _command_output(rng: random.Random, lines: int) -> str:
    out = []
    for _ in range(lines):
        path = f"src/{rng.choice(_IDENTS)}/{rng.choice(_IDENTS)}.py"
        out.append(f"{path}:{rng.randint(1, 900)}: {_sentence(rng, rng.randint(3, 10))}")
    return "\n".join(out)


@dataclass(frozen=True)
class Turn:
    """One step of the conversation: the assistant says something and calls a tool, the
    tool answers; now and then the user says something first."""

    user: str | None
    said: str
    tool: str
    call_id: str
    args: dict[str, Any]
    result: str


def _turn(rng: random.Random, i: int) -> Turn:
    tool = _CALLED[i % len(_CALLED)]
    path = f"/home/dev/project/src/{rng.choice(_IDENTS)}/{rng.choice(_IDENTS)}.py"
    args: dict[str, Any]
    if tool == "Read":
        args = {"file_path": path}
        result = _file_contents(rng, rng.randint(20, 120))
    elif tool == "Bash":
        args = {
            "command": f"uv run pytest tests/test_{rng.choice(_IDENTS)}.py -x -q",
            "description": _sentence(rng, 5),
        }
        result = _command_output(rng, rng.randint(5, 40))
    elif tool == "Grep":
        args = {"pattern": rng.choice(_IDENTS), "path": "src", "output_mode": "content"}
        result = _command_output(rng, rng.randint(5, 30))
    elif tool == "Edit":
        old = "\n".join(_code_line(rng) for _ in range(rng.randint(2, 8)))
        new = "\n".join(_code_line(rng) for _ in range(rng.randint(2, 8)))
        args = {"file_path": path, "old_string": old, "new_string": new}
        result = f"The file {path} has been updated. Here's the result:\n" + _file_contents(
            rng, rng.randint(5, 15)
        )
    elif tool == "Glob":
        args = {"pattern": "**/*.py"}
        result = "\n".join(
            f"/home/dev/project/src/{rng.choice(_IDENTS)}/{rng.choice(_IDENTS)}.py"
            for _ in range(rng.randint(5, 30))
        )
    else:
        args = {
            "todos": [
                {
                    "content": _sentence(rng, 6),
                    "status": rng.choice(("pending", "in_progress", "completed")),
                    "activeForm": _sentence(rng, 4),
                }
                for _ in range(rng.randint(2, 6))
            ]
        }
        result = "Todos have been modified successfully."
    user = _paragraph(rng, rng.randint(1, 3)) if i % 9 == 4 else None
    return Turn(
        user, _sentence(rng, rng.randint(5, 25)), tool, f"toolu_{i:05d}{SEED}", args, result
    )


@cache
def _turns(n: int) -> tuple[Turn, ...]:
    rng = random.Random(SEED)
    return tuple(_turn(rng, i) for i in range(n))


@cache
def _system_and_tools() -> tuple[list[str], list[dict[str, Any]]]:
    rng = random.Random(SEED + 1)
    system = [
        "You are Claude Code, Anthropic's official CLI for Claude.",
        "\n\n".join(_paragraph(rng, 6) for _ in range(24)),  # ~15 KB of instructions
    ]
    tools = []
    for name in _TOOL_NAMES:
        props = {
            f"{rng.choice(_IDENTS)}_{k}": {
                "type": rng.choice(("string", "number", "boolean")),
                "description": _sentence(rng, rng.randint(6, 20)),
            }
            for k in range(rng.randint(1, 5))
        }
        tools.append(
            {
                "name": name,
                "description": "\n\n".join(_paragraph(rng, 4) for _ in range(rng.randint(1, 6))),
                "input_schema": {
                    "type": "object",
                    "properties": props,
                    "required": list(props)[:1],
                    "additionalProperties": False,
                    "$schema": "http://json-schema.org/draft-07/schema#",
                },
            }
        )
    return system, tools


# -- the conversation in each API -----------------------------------------------------
#
# A turn of history is (now and then a user prompt,) the assistant's text and tool call, and
# the tool's result. The turns at the end of the conversation, from the one a request first
# ends with on, are the conversation going on: the assistant's text and call, the tool's
# result, then the user's `text` (the simulator reads its SIM: directives from the last user
# text). Claude Code sends that as one user message, the tool_result block and a text block
# (as it sends a tool's result with a reminder); Codex and chat clients as a user message
# after the tool's output. Each next request is the previous one and one such turn more.

EPHEMERAL = {"type": "ephemeral"}


def _anthropic_messages(t: Turn, i: int, text: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if t.user is not None and text is None:
        out.append({"role": "user", "content": [{"type": "text", "text": t.user}]})
    out.append(
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": t.said},
                {"type": "tool_use", "id": t.call_id, "name": t.tool, "input": t.args},
            ],
        }
    )
    # As Claude Code 2.1 writes a result (its Bash and Read results seen on the CLI, and
    # checked in tests/e2e/test_claude_code.py): its own tools' output a string, a Bash
    # command's with is_error; one in eight as text blocks, as an MCP tool's or a
    # subagent's comes.
    content: Any = [{"type": "text", "text": t.result}] if i % 8 == 3 else t.result
    result: dict[str, Any] = {"tool_use_id": t.call_id, "type": "tool_result", "content": content}
    if t.tool == "Bash":
        result["is_error"] = False
    blocks: list[dict[str, Any]] = [result]
    if text is not None:
        blocks.append({"type": "text", "text": text})
    out.append({"role": "user", "content": blocks})
    return out


def _responses_items(t: Turn, i: int, text: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if t.user is not None and text is None:
        out.append(
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": t.user}]}
        )
    out += [
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": t.said}],
        },
        {
            "type": "function_call",
            "call_id": t.call_id,
            "name": t.tool,
            "arguments": json.dumps(t.args, ensure_ascii=False),
        },
        {"type": "function_call_output", "call_id": t.call_id, "output": t.result},
    ]
    if text is not None:
        out.append(
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        )
    return out


def _chat_messages(t: Turn, i: int, text: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if t.user is not None and text is None:
        out.append({"role": "user", "content": t.user})
    out += [
        {
            "role": "assistant",
            "content": t.said,
            "tool_calls": [
                {
                    "id": t.call_id,
                    "type": "function",
                    "function": {
                        "name": t.tool,
                        "arguments": json.dumps(t.args, ensure_ascii=False),
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": t.call_id, "content": t.result},
    ]
    if text is not None:
        out.append({"role": "user", "content": text})
    return out


_PER_TURN = {
    "anthropic": _anthropic_messages,
    "responses": _responses_items,
    "chat": _chat_messages,
}


def _head(kind: str, model: str) -> tuple[dict[str, Any], str]:
    """(body without its history, the history's field)."""
    system, tools = _system_and_tools()
    if kind == "anthropic":
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": 32000,
            "stream": True,
            "temperature": 1,
            "metadata": {"user_id": "user_" + "5f" * 32 + "_account__session_" + "ab12" * 9},
            "system": [
                {"type": "text", "text": system[0]},
                {"type": "text", "text": system[1], "cache_control": EPHEMERAL},
            ],
            "tools": tools,
        }
        return body, "messages"
    if kind == "responses":
        body = {
            "model": model,
            "stream": True,
            "store": False,  # as Codex sends it: the history is in the request
            "instructions": "\n\n".join(system),
            "parallel_tool_calls": False,
            "prompt_cache_key": "bench-" + "0" * 32,
            "tools": [
                {
                    "type": "function",
                    "name": t["name"],
                    "description": t["description"],
                    "parameters": t["input_schema"],
                    "strict": False,
                }
                for t in tools
            ],
        }
        return body, "input"
    if kind == "chat":
        body = {
            "model": model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": 16000,
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": t["name"],
                        "description": t["description"],
                        "parameters": t["input_schema"],
                    },
                }
                for t in tools
            ],
        }
        return body, "messages"
    raise ValueError(kind)


SESSION = b"Session 000000"  # in the first prompt: new_conversation() makes it another


def _first_prompt(kind: str) -> dict[str, Any]:
    text = SESSION.decode() + ": the tests fail after the refactor; find out why and fix it."
    if kind == "anthropic":
        return {"role": "user", "content": [{"type": "text", "text": text}]}
    if kind == "responses":
        return {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
    return {"role": "user", "content": text}


def _turn_at(i: int) -> Turn:
    return _turns(max(64, 1 << (i + 1).bit_length()))[i]


def make_body(kind: str, size: int, text: str, model: str, more: int = 0) -> bytes:
    """A `kind` request body of about `size` bytes (at least; within one turn), as compact
    JSON: the system prompt, the tools, the first prompt and as many turns of history as fill
    it, the last of them ending with the user's `text`; `more` turns beyond that, each ending
    with `text` too (the same conversation `more` requests later). Anthropic: Claude Code's
    cache breakpoints, on the system prompt's last block and on the last block of the last
    two messages (where the conversation ends now: no other message has one)."""
    body, field = _head(kind, model)
    per_turn = _PER_TURN[kind]
    history: list[dict[str, Any]] = []
    if kind == "chat":
        system, _ = _system_and_tools()
        history.append({"role": "system", "content": "\n\n".join(system)})
    history.append(_first_prompt(kind))
    # Claude Code (2.1) ends its messages with a system message (the agent types it offers).
    tail = [{"role": "system", "content": _agent_types()}] if kind == "anthropic" else []
    total = _size(body) + 20 + sum(_size(m) for m in history + tail)
    i = 0
    while True:  # history, until the turn that, ending with `text`, reaches the size
        t = _turn_at(i)
        if total + sum(_size(m) for m in per_turn(t, i, text)) >= size:
            break
        msgs = per_turn(t, i)
        history += msgs
        total += sum(_size(m) for m in msgs)
        i += 1
    for j in range(i, i + more + 1):  # the conversation going on
        history += per_turn(_turn_at(j), j, text)
    if kind == "anthropic":
        for m in history[-2:]:
            m["content"][-1] = {**m["content"][-1], "cache_control": EPHEMERAL}
    body[field] = history + tail
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


@cache
def _agent_types() -> str:
    rng = random.Random(SEED + 2)
    kinds = ["general-purpose", "Explore", "Plan", "statusline-setup", "output-style-setup"]
    lines = [f"- {k}: {_sentence(rng, rng.randint(20, 40))} (Tools: *)" for k in kinds]
    return "Available agent types for the Agent tool:\n" + "\n".join(lines)


def new_conversation(raw: bytes, n: int) -> bytes:
    """The same body as the first request of another conversation (its first prompt names
    session `n`, its tool calls have ids of their own): nothing of it is remembered from
    earlier requests, not even by a call's id."""
    return raw.replace(SESSION, b"Session %06d" % n, 1).replace(_ID_TAIL, b'%08d"' % n)


_ID_TAIL = b'%d"' % SEED  # how every tool call id ends (toolu_00012 + SEED)


def _size(obj: Any) -> int:
    return len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()) + 1
