"""The conversation memo (translate/memo.py): a turn translated with what the conversation's
previous requests left is exactly the turn translated fresh, whatever changed between them,
and no request's translation is changed by a later one."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import bigbody
from oca_addon.core.exchange import prepare
from oca_addon.core.modelinfo import Catalog
from oca_addon.core.routing import Endpoint
from oca_addon.core.settings import Settings
from oca_addon.sim.models import model_info_payload
from oca_addon.translate import memo as memo_module
from oca_addon.translate.anthropic import anthropic_to_chat
from oca_addon.translate.memo import ConversationMemo, Remembered, common_prefix
from oca_addon.translate.responses import responses_to_chat

CACHING = {"supports_caching": True}
NO_VISION = {"supports_vision": False, "supports_pdf_input": False}


# -- the memo itself ----------------------------------------------------------------------


def test_common_prefix() -> None:
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2, 3], [1, 2, 3]) == 3
    assert common_prefix([1, 2, 3], [1, 2]) == 2
    assert common_prefix([1, 2, 3], [1, 9, 3]) == 1
    assert common_prefix([{"a": [1]}], [{"a": [1]}, {}]) == 1  # equal, not the same object
    assert common_prefix([{"a": 1}], [{"a": 1.5}]) == 0


def test_match_takes_the_longest_prefix_under_the_same_key() -> None:
    memo = ConversationMemo(size=3)
    short = Remembered([{"m": 0}, {"m": 1}], "k", "short")
    long = Remembered([{"m": 0}, {"m": 1}, {"m": 2}], "k", "long")
    other_key = Remembered([{"m": 0}, {"m": 1}, {"m": 2}, {"m": 3}], "other", "x")
    for e in (short, long, other_key):
        memo.keep(e)
    assert memo.match([{"m": 0}, {"m": 1}, {"m": 2}, {"m": 3}], "k") == (long, 3)
    assert memo.match([{"m": 0}, {"m": 5}], "k") == (long, 1) or memo.match(
        [{"m": 0}, {"m": 5}], "k"
    ) == (short, 1)
    assert memo.match([{"m": 9}], "k") == (None, 0)  # another conversation
    assert memo.match([], "k") == (None, 0)


def test_keep_replaces_what_it_continues_and_stays_bounded() -> None:
    memo = ConversationMemo(size=2)
    a, b, c = (Remembered([{"c": n}], None, n) for n in range(3))
    memo.keep(a)
    memo.keep(b)
    a2 = Remembered([{"c": 0}, {"x": 1}], None, "a2")
    memo.keep(a2, replaces=a)
    assert len(memo) == 2 and memo.match([{"c": 0}], None)[0] is a2
    memo.keep(c)  # the least recently used (b) goes
    assert len(memo) == 2 and memo.match([{"c": 1}], None) == (None, 0)
    off = ConversationMemo(size=0)
    off.keep(a)
    assert len(off) == 0


# -- remembered == fresh -----------------------------------------------------------------

_text = st.text(alphabet="abc xyz\n", min_size=0, max_size=12)
_cache = st.sampled_from(
    [None, None, None, {"type": "ephemeral"}, {"type": "ephemeral", "ttl": "1h"}]
)


def _with_cache(block: dict[str, Any], cc: Any) -> dict[str, Any]:
    return {**block, "cache_control": cc} if cc else block


@st.composite
def _assistant(draw: st.DrawFn, n: int) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["text", "tool_use", "tool_use", "thinking"]))
        if kind == "text":
            blocks.append({"type": "text", "text": draw(_text)})
        elif kind == "thinking":
            blocks.append({"type": "thinking", "thinking": draw(_text), "signature": "s"})
        else:
            tid = draw(st.sampled_from([f"toolu_{n}_{len(blocks)}", "toolu_dup", "bad id!"]))
            name = draw(st.sampled_from(["Read", "Bash", "mcp.server/tool"]))
            args = draw(st.sampled_from([{}, {"path": "a.py"}, {"n": 1}, {"n": 1.0}]))
            blocks.append({"type": "tool_use", "id": tid, "name": name, "input": args})
    if blocks:
        blocks[-1] = _with_cache(blocks[-1], draw(_cache))
    return {"role": "assistant", "content": blocks}


@st.composite
def _user(draw: st.DrawFn, calls: list[str]) -> dict[str, Any]:
    if draw(st.integers(0, 5)) == 0:
        return {"role": "user", "content": draw(_text)}
    blocks: list[dict[str, Any]] = []
    for cid in calls:
        if draw(st.integers(0, 4)) == 0:
            continue  # a call left unanswered
        content = draw(
            st.sampled_from(
                [
                    "out",
                    "",
                    [{"type": "text", "text": "listed"}],
                    [
                        {"type": "text", "text": "see"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                        },
                    ],
                ]
            )
        )
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": cid, "content": content}
        if draw(st.booleans()) and draw(st.booleans()):
            block["is_error"] = True
        blocks.append(block)
    if draw(st.booleans()) or not blocks:
        blocks.append({"type": "text", "text": draw(_text)})
    if draw(st.integers(0, 6)) == 0:
        blocks.append({"type": "tool_result", "tool_use_id": "toolu_orphan", "content": "x"})
    if draw(st.integers(0, 6)) == 0:
        blocks.append(
            {"type": "image", "source": {"type": "url", "url": "https://example.invalid/i.png"}}
        )
    blocks[-1] = _with_cache(blocks[-1], draw(_cache))
    return {"role": "user", "content": blocks}


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A conversation as a client builds it: user and assistant turns (sometimes two of a
    role in a row), tool calls and their results, breakpoints here and there."""
    messages = [draw(_user([]))]
    for n in range(draw(st.integers(1, 12))):
        assistant = draw(_assistant(n))
        messages.append(assistant)
        calls = [b["id"] for b in assistant["content"] if b["type"] == "tool_use"]
        if draw(st.integers(0, 8)) == 0:
            messages.append(draw(_assistant(n + 100)))  # two assistant messages in a row
        messages.append(draw(_user(calls)))
        if draw(st.integers(0, 8)) == 0:
            messages.append(draw(_user([])))  # two user messages in a row
    return messages


@st.composite
def request_series(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """The message lists of a series of requests of one conversation: mostly growing, with
    the breakpoint moved, earlier messages edited, or the history cut short (compaction)."""
    full = draw(conversations())
    series = []
    end = draw(st.integers(1, len(full)))
    for _ in range(draw(st.integers(2, 6))):
        messages = copy.deepcopy(full[:end])
        change = draw(st.sampled_from(["grow", "grow", "grow", "edit", "uncache", "cut"]))
        if change == "edit" and messages:
            i = draw(st.integers(0, len(messages) - 1))
            messages[i] = {**messages[i], "content": "edited"}
        elif change == "uncache":
            for m in messages:
                if isinstance(m["content"], list):
                    m["content"] = [
                        {k: v for k, v in b.items() if k != "cache_control"} for b in m["content"]
                    ]
        elif change == "cut":
            end = max(1, end // 2)
        series.append(messages)
        end = min(len(full), end + draw(st.integers(0, 3)))
    return series


def _body(messages: list[dict[str, Any]], system: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "claude-sonnet-4-6", "max_tokens": 1000, "messages": messages}
    if system is not None:
        body["system"] = system
    return body


# How the client wrote the request: no bytes given (the memo compares the parsed
# messages), compact (it compares the bytes, once settle() has found where the messages sit:
# translate/layout.py), or spaced (no layout: the parsed messages again).
WIRES: dict[str, Any] = {
    "none": None,
    "compact": lambda body: json.dumps(body, ensure_ascii=False, separators=(",", ":")),
    "spaced": json.dumps,
}


def _sent(body: dict[str, Any], wire: str) -> tuple[bytes | None, dict[str, Any]]:
    """(the bytes the client sent, the body parsed from them)."""
    write = WIRES[wire]
    if write is None:
        return None, body
    raw = write(body).encode()
    return raw, json.loads(raw)


def _fresh(body: dict[str, Any], info: dict[str, Any] | None) -> tuple[Any, int]:
    chat, ctx = anthropic_to_chat(copy.deepcopy(body), target_model="oca/x", model_info=info)
    return chat, ctx.input_tokens()


@settings(max_examples=300, deadline=None)
@given(
    series=request_series(),
    system=st.sampled_from([None, "You are helpful.", [{"type": "text", "text": "S"}]]),
    infos=st.lists(st.sampled_from([None, CACHING, NO_VISION]), min_size=1, max_size=2),
    system_message_at=st.none() | st.integers(0, 20),
    wire=st.sampled_from(sorted(WIRES)),
    settled=st.booleans(),
)
def test_property_remembered_turns_translate_as_fresh_ones(
    series: list[list[dict[str, Any]]],
    system: Any,
    infos: list[Any],
    system_message_at: int | None,
    wire: str,
    settled: bool,
) -> None:
    memo = ConversationMemo(size=2)
    made: list[tuple[Any, str]] = []
    for n, messages in enumerate(series):
        if system_message_at is not None and system_message_at < len(messages):
            messages = [*messages]
            messages.insert(system_message_at, {"role": "system", "content": "be brief"})
        raw, body = _sent(_body(messages, system), wire)
        info = infos[n % len(infos)]
        try:
            expected = _fresh(body, info)
        except Exception as e:  # the same refusal either way
            with pytest.raises(type(e)):
                anthropic_to_chat(body, target_model="oca/x", model_info=info, memo=memo, raw=raw)
            continue
        chat, ctx = anthropic_to_chat(
            body, target_model="oca/x", model_info=info, memo=memo, estimate_later=True, raw=raw
        )
        assert (chat, ctx.input_tokens()) == expected
        if settled:
            memo.settle()
        made.append((chat, json.dumps(chat, sort_keys=True)))
    for chat, text in made:  # no later request changed an earlier one's translation
        assert json.dumps(chat, sort_keys=True) == text


def test_a_growing_claude_code_conversation_translates_as_fresh() -> None:
    """The benchmark's conversation, turn after turn, with Claude Code's breakpoint on the
    last message moving along: each request's body as a fresh translation gives it."""
    memo = ConversationMemo()
    raw = bigbody.make_body("anthropic", 300_000, "next?", "claude-sonnet-4-6")
    full = json.loads(raw)
    messages = full["messages"]
    for end in range(len(messages) - 8, len(messages) + 1, 2):
        body = {**full, "messages": copy.deepcopy(messages[:end])}
        last = body["messages"][-1]
        if isinstance(last["content"], list):
            last["content"][-1]["cache_control"] = {"type": "ephemeral"}
        expected = _fresh(body, CACHING)
        chat, ctx = anthropic_to_chat(body, target_model="oca/x", model_info=CACHING, memo=memo)
        assert (chat, ctx.input_tokens()) == expected
    assert len(memo) == 1  # one conversation, its last request


@pytest.mark.parametrize(("kind", "field"), [("anthropic", "messages"), ("responses", "input")])
def test_a_compact_conversation_is_compared_by_its_bytes(
    kind: str, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claude Code and Codex write compact JSON: once the first request has settled, each
    next turn is compared by its bytes, never by its parsed messages, and translates as a
    fresh one."""
    catalog = Catalog.from_model_info(model_info_payload())
    endpoint = Endpoint.MESSAGES if kind == "anthropic" else Endpoint.RESPONSES
    memo = ConversationMemo()
    turns = [bigbody.make_body(kind, 100_000, "next?", "oca/grok3", more=j) for j in range(4)]
    ex = prepare(endpoint, json.loads(turns[0]), Settings(), catalog, memo=memo, raw=turns[0])
    ex.settle()  # the first request's layout, found once it has gone
    monkeypatch.setattr(memo_module, "common_prefix", _never)
    for raw in turns[1:]:
        fresh = prepare(endpoint, json.loads(raw), Settings(), catalog)
        ex = prepare(endpoint, json.loads(raw), Settings(), catalog, memo=memo, raw=raw)
        assert ex.upstream_body == fresh.upstream_body
        ex.settle()
    (entry,) = memo._entries
    assert entry.layout is not None and entry.layout.raw is turns[-1]
    assert len(entry.layout.ends) == len(json.loads(turns[-1])[field])


def _never(*args: Any) -> int:
    raise AssertionError("compared the parsed messages")


def test_prepare_shares_the_memo_across_routes() -> None:
    """Through prepare(), on a chat route and through the Responses adapter: the upstream
    body of a remembered turn is the fresh one."""
    catalog = Catalog.from_model_info(model_info_payload())
    memo = ConversationMemo()
    full = json.loads(bigbody.make_body("anthropic", 100_000, "next?", "x"))
    for model in ("oca/grok3", "oca/gpt-5-codex", "oca/grok3"):
        for end in (len(full["messages"]) - 2, len(full["messages"])):
            body = {**full, "model": model, "messages": full["messages"][:end]}
            fresh = prepare(Endpoint.MESSAGES, copy.deepcopy(body), Settings(), catalog)
            ex = prepare(Endpoint.MESSAGES, body, Settings(), catalog, memo=memo)
            assert ex.upstream_body == fresh.upstream_body
            assert ex.route == fresh.route
    # One conversation, remembered once per way its images go (grok3 takes none).
    assert len(memo) == 2


# -- Responses items ---------------------------------------------------------------------


@st.composite
def _items(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Input items as Codex (and odder clients) send them: messages of every role, calls
    whose outputs come right after, later, twice or never, outputs with no call, reasoning."""
    items: list[dict[str, Any]] = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]}
    ]
    late: list[dict[str, Any]] = []
    for n in range(draw(st.integers(1, 14))):
        kind = draw(
            st.sampled_from(
                ["call", "call", "call", "say", "user", "developer", "reasoning", "orphan", "late"]
            )
        )
        if kind == "say":
            items.append(
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": draw(_text)}],
                }
            )
        elif kind == "user":
            items.append({"type": "message", "role": "user", "content": draw(_text)})
        elif kind == "developer":
            items.append({"type": "message", "role": "developer", "content": "rules " + str(n)})
        elif kind == "reasoning":
            items.append({"type": "reasoning", "summary": []})
        elif kind == "orphan":
            items.append({"type": "function_call_output", "call_id": f"orphan{n}", "output": "o"})
        elif kind == "late" and late:
            items.append(late.pop(0))
        else:
            cid = draw(st.sampled_from([f"call_{n}", "call_dup"]))
            custom = draw(st.integers(0, 5)) == 0
            call: dict[str, Any] = (
                {"type": "custom_tool_call", "call_id": cid, "name": "apply_patch", "input": "x"}
                if custom
                else {
                    "type": "function_call",
                    "call_id": cid,
                    "name": draw(st.sampled_from(["shell", "read"])),
                    "arguments": draw(st.sampled_from(['{"cmd":"ls"}', "", '{"n":1}'])),
                }
            )
            items.append(call)
            output: dict[str, Any] = {
                "type": "custom_tool_call_output" if custom else "function_call_output",
                "call_id": cid,
                "output": draw(
                    st.sampled_from(
                        ["done", "", [{"type": "input_text", "text": "t"}], {"ok": True}]
                    )
                ),
            }
            when = draw(st.sampled_from(["now", "now", "now", "later", "never", "twice"]))
            if when in ("now", "twice"):
                items.append(output)
            if when == "twice":
                items.append({**output, "output": "again"})
            if when == "later":
                late.append(output)
    return items


@st.composite
def item_series(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    full = draw(_items())
    series = []
    end = draw(st.integers(1, len(full)))
    for _ in range(draw(st.integers(2, 6))):
        items = copy.deepcopy(full[:end])
        change = draw(st.sampled_from(["grow", "grow", "grow", "edit", "cut"]))
        if change == "edit":
            i = draw(st.integers(0, len(items) - 1))
            items[i] = {"type": "message", "role": "user", "content": "edited"}
        elif change == "cut":
            end = max(1, end // 2)
        series.append(items)
        end = min(len(full), end + draw(st.integers(0, 4)))
    return series


@settings(max_examples=300, deadline=None)
@given(
    series=item_series(),
    instructions=st.sampled_from([None, "Be Codex."]),
    wire=st.sampled_from(sorted(WIRES)),
    settled=st.booleans(),
)
def test_property_remembered_items_translate_as_fresh_ones(
    series: list[list[dict[str, Any]]], instructions: str | None, wire: str, settled: bool
) -> None:
    memo = ConversationMemo(size=2)
    made: list[tuple[Any, str]] = []
    for items in series:
        body: dict[str, Any] = {"model": "gpt-5", "input": items, "store": False}
        if instructions:
            body["instructions"] = instructions
        raw, body = _sent(body, wire)
        try:
            expected, _ = responses_to_chat(copy.deepcopy(body), target_model="oca/x")
        except Exception as e:
            with pytest.raises(type(e)):
                responses_to_chat(body, target_model="oca/x", memo=memo, raw=raw)
            continue
        chat, _ = responses_to_chat(body, target_model="oca/x", memo=memo, raw=raw)
        assert chat == expected
        if settled:
            memo.settle()
        made.append((chat, json.dumps(chat, sort_keys=True)))
    for chat, text in made:
        assert json.dumps(chat, sort_keys=True) == text


def test_a_growing_codex_conversation_translates_as_fresh() -> None:
    memo = ConversationMemo()
    full = json.loads(bigbody.make_body("responses", 300_000, "next?", "gpt-5"))
    items = full["input"]
    for end in range(len(items) - 12, len(items) + 1, 3):
        body = {**full, "input": copy.deepcopy(items[:end])}
        expected, _ = responses_to_chat(copy.deepcopy(body), target_model="oca/x")
        chat, _ = responses_to_chat(body, target_model="oca/x", memo=memo)
        assert chat == expected
    assert len(memo) == 1


def test_a_call_whose_output_comes_in_a_later_request_is_paired_with_it() -> None:
    """Request 1 ends with a call that has no output yet (its tool message says so);
    request 2 brings the output after a user message: the call takes it, as fresh."""
    memo = ConversationMemo()
    user = {"type": "message", "role": "user", "content": "go"}
    call = {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{}"}
    items = [user, call, {"type": "message", "role": "user", "content": "wait"}]
    responses_to_chat({"model": "m", "input": items}, target_model="x", memo=memo)
    later = [*items, {"type": "function_call_output", "call_id": "c1", "output": "ok"}]
    expected, _ = responses_to_chat({"model": "m", "input": copy.deepcopy(later)}, target_model="x")
    chat, _ = responses_to_chat({"model": "m", "input": later}, target_model="x", memo=memo)
    assert chat == expected
    assert {"role": "tool", "tool_call_id": "c1", "content": "ok"} in chat["messages"]


def test_conversations_unused_for_long_are_forgotten() -> None:
    memo = ConversationMemo(size=4, max_idle=60)
    old = Remembered([{"c": 0}], None, "old", used=1000.0)
    new = Remembered([{"c": 1}], None, "new", used=1050.0)
    memo.keep(old)
    memo.keep(new)
    assert len(memo) == 2
    memo.expire(now=1070.0)  # old: 70 s unused
    assert memo.match([{"c": 0}], None) == (None, 0) and len(memo) == 1
    memo.keep(Remembered([{"c": 2}], None, "later", used=1200.0))  # expires the rest too
    assert len(memo) == 1


def test_what_is_pushed_out_is_freed_on_release() -> None:
    """keep() only sets pushed-out conversations aside (freeing MBs takes milliseconds, which
    the gateway spends once the request has gone); release() lets go of them."""
    import gc
    import weakref

    class Messages(list):  # type: ignore[type-arg]  # a list that can be weakly referenced
        pass

    memo = ConversationMemo(size=1)
    first = Remembered(Messages([{"c": 0}]), None, "first")
    ref = weakref.ref(first.messages)
    memo.keep(first)
    del first
    memo.keep(Remembered([{"c": 1}], None, "second"))  # pushes the first out
    gc.collect()
    assert ref() is not None  # set aside, still alive
    memo.release()
    gc.collect()
    assert ref() is None
