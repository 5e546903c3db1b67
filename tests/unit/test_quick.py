"""The quick translations (translate/anthropic/quick.py, translate/responses/quick.py): a
request read the quick way gives OCA exactly what the full translation gives it, turn after
turn with the memo, or says NotQuick and is translated in full; what it keeps per
conversation is less than a parsed conversation."""

from __future__ import annotations

import gc
import json
import re
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import bigbody
from oca_addon.core.apis import API
from oca_addon.core.errors import RequestError
from oca_addon.core.exchange import (
    first_model,
    parse_json_body,
    prepare,
    prepare_body,
    read_body,
    translated_to_chat,
)
from oca_addon.core.modelinfo import Catalog
from oca_addon.core.routing import Endpoint
from oca_addon.core.settings import Settings
from oca_addon.sim.models import model_info_payload
from oca_addon.translate import anthropic, rawjson, responses
from oca_addon.translate.anthropic import anthropic_to_chat
from oca_addon.translate.memo import ConversationMemo
from oca_addon.translate.rawjson import NotQuick
from oca_addon.translate.responses import responses_to_chat
from tests.unit.test_memo import CACHING, NO_VISION, item_series, request_series

ROOT = Path(__file__).resolve().parents[2]
CATALOG = Catalog.from_model_info(model_info_payload())

# Texts with what JSON escapes or writes as more than one byte: the literals are copied as
# the client wrote them, so these must come out as the full translation writes them.
_odd_text = st.text(alphabet='ab \n\t"\\/é€😀\u2028', max_size=10)
WIRES = {
    "compact": lambda body: json.dumps(body, ensure_ascii=False, separators=(",", ":")),
    "spaced": json.dumps,  # ASCII escapes (\u00e9) and spaces
}


def _normal(chat: Any) -> Any:
    """A chat body as OCA reads it (the quick one holds raw literals: orjson.Fragment)."""
    return orjson.loads(orjson.dumps(chat))


def _oddly(messages: list[dict[str, Any]], texts: list[str]) -> list[dict[str, Any]]:
    """The messages with their texts made odd (escapes, non-ASCII), one by one."""
    it = iter(texts * 100)

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            return {
                k: (next(it) + x if k == "text" and isinstance(x, str) else walk(x))
                for k, x in v.items()
            }
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(messages)


# -- Anthropic ----------------------------------------------------------------------------


def _quick_anthropic(
    raw: bytes, info: Any, memo: ConversationMemo | None = None
) -> tuple[Any, int, Any]:
    rest, messages = anthropic.quick.decode(raw)
    chat, ctx = anthropic_to_chat(
        rest,
        target_model="oca/x",
        model_info=info,
        memo=memo,
        quick_messages=messages,
        estimate_later=True,
    )
    return chat, ctx.input_tokens(), ctx


@settings(max_examples=300, deadline=None)
@given(
    series=request_series(),
    odd=st.lists(_odd_text, min_size=1, max_size=4),
    system=st.sampled_from([None, "You are helpful.", [{"type": "text", "text": "S"}]]),
    info=st.sampled_from([None, CACHING, NO_VISION]),
    wire=st.sampled_from(sorted(WIRES)),
    system_message_at=st.none() | st.integers(0, 20),
    system_message=st.sampled_from(
        ["be brief", [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]]
    ),
)
def test_property_anthropic_quick_is_the_full_translation(
    series: list[list[dict[str, Any]]],
    odd: list[str],
    system: Any,
    info: Any,
    wire: str,
    system_message_at: int | None,
    system_message: Any,
) -> None:
    memo = ConversationMemo(size=2)
    made: list[tuple[Any, bytes]] = []
    for messages in series:
        if system_message_at is not None and system_message_at < len(messages):
            # Claude Code sends system messages among the messages
            messages = [*messages]
            messages.insert(system_message_at, {"role": "system", "content": system_message})
        body: dict[str, Any] = {"model": "m", "max_tokens": 1000, "messages": _oddly(messages, odd)}
        if system is not None:
            body["system"] = system
        raw = WIRES[wire](body).encode()
        try:
            full, ctx = anthropic_to_chat(json.loads(raw), target_model="oca/x", model_info=info)
        except RequestError as e:
            with pytest.raises((RequestError, NotQuick)) as got:
                _quick_anthropic(raw, info, memo)
            if isinstance(got.value, RequestError):
                assert got.value.message == e.message
            continue
        try:
            chat, tokens, _ = _quick_anthropic(raw, info, memo)
        except NotQuick:
            continue  # images, two user turns in a row...: translated in full
        assert _normal(chat) == _normal(full)
        # The estimate counts the escaped texts: never lower, as the estimate errs high.
        fresh = ctx.input_tokens()
        assert fresh <= tokens <= 2 * fresh + 16
        made.append((chat, orjson.dumps(chat)))
    for chat, sent in made:  # no later request changed an earlier one's translation
        assert orjson.dumps(chat) == sent


def test_a_claude_code_turn_goes_the_quick_way_turn_after_turn() -> None:
    """The benchmark's Claude Code conversation (tool_use, tool_result as text and as
    blocks, the breakpoint on the newest messages): each turn quick, each the full one's."""
    memo = ConversationMemo()
    for j in range(4):
        raw = bigbody.make_body("anthropic", 150_000, "next?", "oca/grok3", more=j)
        chat, _, _ = _quick_anthropic(raw, CACHING, memo)
        full, _ = anthropic_to_chat(json.loads(raw), target_model="oca/x", model_info=CACHING)
        assert _normal(chat) == _normal(full)
    assert len(memo) == 1


# -- Responses ----------------------------------------------------------------------------


def _quick_responses(raw: bytes, memo: ConversationMemo | None = None) -> Any:
    rest, items = responses.quick.decode(raw)
    chat, _ = responses_to_chat(rest, target_model="oca/x", memo=memo, quick_items=items)
    return chat


@settings(max_examples=300, deadline=None)
@given(
    series=item_series(),
    odd=st.lists(_odd_text, min_size=1, max_size=4),
    instructions=st.sampled_from([None, "Be Codex."]),
    wire=st.sampled_from(sorted(WIRES)),
)
def test_property_responses_quick_is_the_full_translation(
    series: list[list[dict[str, Any]]], odd: list[str], instructions: str | None, wire: str
) -> None:
    memo = ConversationMemo(size=2)
    made: list[tuple[Any, bytes]] = []
    for items in series:
        body: dict[str, Any] = {"model": "m", "store": False, "input": _oddly(items, odd)}
        if instructions:
            body["instructions"] = instructions
        raw = WIRES[wire](body).encode()
        try:
            full, _ = responses_to_chat(json.loads(raw), target_model="oca/x")
        except RequestError as e:
            with pytest.raises((RequestError, NotQuick)) as got:
                _quick_responses(raw, memo)
            if isinstance(got.value, RequestError):
                assert got.value.message == e.message
            continue
        try:
            chat = _quick_responses(raw, memo)
        except NotQuick:
            continue  # custom tools, outputs as parts, orphan outputs: translated in full
        assert _normal(chat) == _normal(full)
        made.append((chat, orjson.dumps(chat)))
    for chat, sent in made:
        assert orjson.dumps(chat) == sent


def test_a_codex_turn_goes_the_quick_way_turn_after_turn() -> None:
    memo = ConversationMemo()
    for j in range(4):
        raw = bigbody.make_body("responses", 150_000, "next?", "oca/grok3", more=j)
        chat = _quick_responses(raw, memo)
        full, _ = responses_to_chat(json.loads(raw), target_model="oca/x")
        assert _normal(chat) == _normal(full)
    assert len(memo) == 1


# -- through prepare: what goes the quick way, what goes in full -------------------------

_CLAUDE = {"model": "oca/grok3", "max_tokens": 100, "stream": True}
_CODEX = {"model": "oca/grok3", "stream": True, "store": False}


def _user(*blocks: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


_TEXT = {"type": "text", "text": "hi"}
_IMAGE = {"type": "image", "source": {"type": "url", "url": "https://example.invalid/i.png"}}

QUICK = [
    (Endpoint.MESSAGES, {**_CLAUDE, "messages": [_user(_TEXT)]}),
    (
        Endpoint.MESSAGES,
        {**_CLAUDE, "messages": [_user(_TEXT), {"role": "system", "content": "s"}]},
    ),
    (Endpoint.MESSAGES, {**_CLAUDE, "messages": [{"role": "user", "content": "hi"}], "x": 1}),
    (
        Endpoint.RESPONSES,
        {**_CODEX, "input": [{"type": "message", "role": "user", "content": "hi"}]},
    ),
]
FULL = [  # (endpoint, body): what the quick way leaves to the full translation
    (Endpoint.MESSAGES, {**_CLAUDE, "messages": [_user(_TEXT, _IMAGE)]}),
    (Endpoint.MESSAGES, {**_CLAUDE, "messages": [_user({**_TEXT, "citations": []})]}),
    (
        Endpoint.MESSAGES,
        {**_CLAUDE, "messages": [{"role": "developer", "content": "s"}, _user(_TEXT)]},
    ),
    (Endpoint.MESSAGES, {**_CLAUDE, "messages": [_user({"type": "text", "text": 5})]}),
    (Endpoint.MESSAGES, {**_CLAUDE, "model": "oca/claude-sonnet-4", "messages": [_user(_TEXT)]}),
    (Endpoint.MESSAGES, {**_CLAUDE, "model": "oca/gpt-5-codex", "messages": [_user(_TEXT)]}),
    (Endpoint.RESPONSES, {**_CODEX, "input": "hi"}),
    (
        Endpoint.RESPONSES,
        {**_CODEX, "store": True, "input": [{"type": "message", "role": "user", "content": "hi"}]},
    ),
    (
        Endpoint.RESPONSES,
        {
            **_CODEX,
            "input": [
                {
                    "type": "function_call_output",
                    "call_id": "c",
                    "output": [{"type": "input_text", "text": "t"}],
                }
            ],
        },
    ),
]


def _both(endpoint: Endpoint, raw: bytes) -> tuple[Any, Any, bool]:
    """(the upstream body the quick way, the full one's, whether it went the quick way)."""
    client = read_body(API[endpoint], raw, "application/json")
    ex = prepare_body(endpoint, client, Settings(), CATALOG)
    full = prepare(endpoint, parse_json_body(raw, None), Settings(), CATALOG)
    return _normal(ex.upstream_body), _normal(full.upstream_body), client.parsed is None


@pytest.mark.parametrize(("endpoint", "body"), QUICK)
def test_usual_requests_go_the_quick_way(endpoint: Endpoint, body: dict[str, Any]) -> None:
    quick, full, was_quick = _both(endpoint, json.dumps(body).encode())
    assert was_quick and quick == full


@pytest.mark.parametrize(("endpoint", "body"), FULL)
def test_the_rest_is_translated_in_full(endpoint: Endpoint, body: dict[str, Any]) -> None:
    try:
        quick, full, was_quick = _both(endpoint, json.dumps(body).encode())
    except RequestError as e:  # the same error as the full translation's
        with pytest.raises(RequestError) as got:
            prepare_body(
                endpoint,
                read_body(API[endpoint], json.dumps(body).encode(), None),
                Settings(),
                CATALOG,
            )
        assert got.value.message == e.message
        return
    assert not was_quick and quick == full


def test_a_native_calls_body_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A body that names its model first (Claude Code's) for a model that speaks Messages
    itself is parsed whole at once, not decoded the quick way first."""

    def never(raw: bytes) -> Any:
        raise AssertionError("decoded the quick way")

    monkeypatch.setattr(anthropic.quick, "decode", never)
    raw = json.dumps({**_CLAUDE, "model": "oca/claude-sonnet-4", "messages": [_user(_TEXT)]})
    quick_for = lambda model: translated_to_chat(Endpoint.MESSAGES, model, Settings(), CATALOG)  # noqa: E731
    client = read_body(API[Endpoint.MESSAGES], raw.encode(), None, quick_for)
    assert client.parsed is not None
    assert first_model(b' {"model" : "a\\"b", "x": 1}') == 'a"b'
    assert first_model(b'{"x": 1, "model": "m"}') is None


@pytest.mark.parametrize("endpoint", [Endpoint.MESSAGES, Endpoint.RESPONSES])
def test_text_that_is_not_utf8_gets_the_full_translations_error(endpoint: Endpoint) -> None:
    """msgspec leaves a raw text unchecked: the quick way checks what it copies."""
    body = QUICK[0][1] if endpoint is Endpoint.MESSAGES else QUICK[2][1]
    raw = json.dumps(body).encode().replace(b'"hi"', b'"h\xff"')
    with pytest.raises(RequestError, match="not valid UTF-8"):
        prepare_body(endpoint, read_body(API[endpoint], raw, None), Settings(), CATALOG)


# Every place a text is copied from: each body holds the marker once per place.
_EVERY_TEXT = [
    (
        Endpoint.MESSAGES,
        {
            **_CLAUDE,
            "messages": [
                _user({"type": "text", "text": "user MARK"}),
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "assistant MARK"},
                        {"type": "tool_use", "id": "t1", "name": "Read", "input": {"p": "in MARK"}},
                        {"type": "tool_use", "id": "t2", "name": "Read", "input": {"p": "x"}},
                    ],
                },
                _user(
                    {"type": "tool_result", "tool_use_id": "t1", "content": "result MARK"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t2",
                        "content": [{"type": "text", "text": "listed MARK"}],
                        "is_error": True,
                    },
                ),
                {"role": "system", "content": [{"type": "text", "text": "system MARK"}]},
            ],
        },
    ),
    (
        Endpoint.RESPONSES,
        {
            **_CODEX,
            "input": [
                {"type": "message", "role": "developer", "content": "dev"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "user MARK"}],
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "assistant MARK"}],
                },
                {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "MARK"},
                {"type": "function_call_output", "call_id": "c1", "output": "output MARK"},
            ],
        },
    ),
]


@pytest.mark.parametrize(("endpoint", "body"), _EVERY_TEXT)
def test_every_text_copied_is_checked_as_utf8(endpoint: Endpoint, body: dict[str, Any]) -> None:
    """The quick way takes the body as it is (and equal to the full translation); with bytes
    that are not UTF-8 in any one of the texts it copies, the full translation's error."""
    raw = json.dumps(body).encode()
    quick, full, was_quick = _both(endpoint, raw)
    assert was_quick and quick == full
    places = raw.count(b"MARK")
    assert places >= 4
    for n in range(places):
        at = -1
        for _ in range(n + 1):
            at = raw.index(b"MARK", at + 1)
        bad = raw[:at] + b"M\xff" + raw[at + 2 :]  # M?RK
        with pytest.raises(RequestError, match="not valid UTF-8"):
            prepare_body(endpoint, read_body(API[endpoint], bad, None), Settings(), CATALOG)


# Tool inputs as clients spell them: JSON.stringify's compact form (sent as it came) and
# others, which are written out again as the full translation writes them.
_INPUTS = [
    b'{"path":"a.py","limit":20,"all":true,"x":null}',
    b'{"path": "a.py", "limit": 20}',
    b'{"s":"caf\\u00e9 \\/ \\u001b \\"q\\" \\\\"}',
    b'{"f":1.50,"g":1e2,"h":-0.0,"i":[1,{"j":{}}]}',
    b'{"a":1,"a":2}',
    b"{}",
]


@pytest.mark.parametrize("spelling", range(len(_INPUTS)))
def test_tool_inputs_are_written_as_the_full_translation_writes_them(spelling: int) -> None:
    """All the inputs of a turn are checked at once (a second call's input spelled another
    way than the first's too), and each is the same as in the full translation."""
    calls = b",".join(
        b'{"type":"tool_use","id":"t%d","name":"Read","input":%s}' % (i, raw)
        for i, raw in enumerate([_INPUTS[0], _INPUTS[spelling]])
    )
    results = b",".join(
        b'{"type":"tool_result","tool_use_id":"t%d","content":"ok"}' % i for i in range(2)
    )
    body = (
        b'{"model":"oca/grok3","max_tokens":100,"messages":[{"role":"user","content":"hi"},'
        b'{"role":"assistant","content":[' + calls + b"]},"
        b'{"role":"user","content":[' + results + b"]}]}"
    )
    quick, full, was_quick = _both(Endpoint.MESSAGES, body)
    assert was_quick and quick == full
    arguments = [c["function"]["arguments"] for c in quick["messages"][1]["tool_calls"]]
    assert arguments[1] == orjson.dumps(orjson.loads(_INPUTS[spelling])).decode()


def test_a_system_prompt_and_tools_sent_again_are_parsed_once() -> None:
    """The big fields every request carries again are kept as parsed, by their bytes, and
    shared by the requests: what the translations do with them leaves them as they were."""
    tools = [
        {"name": f"t{i}", "description": "d" * 300, "input_schema": {"type": "object"}}
        for i in range(8)
    ]
    body = {**_CLAUDE, "system": "s" * 3000, "tools": tools, "messages": [_user(_TEXT)]}
    raw = json.dumps(body).encode()
    first = anthropic.quick.decode(raw)[0]
    again = anthropic.quick.decode(bytes(bytearray(raw)))[0]
    assert first["tools"] is again["tools"] and first["system"] is again["system"]
    for _ in range(2):
        client = read_body(API[Endpoint.MESSAGES], raw, None)
        prepare_body(Endpoint.MESSAGES, client, Settings(), CATALOG).settle()
    assert first["tools"] == tools and first["system"] == "s" * 3000
    for size in ("s" * 10, "s" * 600_000):  # too small to keep, or too large
        raw = json.dumps({**body, "system": size}).encode()
        assert (
            anthropic.quick.decode(raw)[0]["system"] is not anthropic.quick.decode(raw)[0]["system"]
        )


@pytest.mark.parametrize("bad_at", [None, 0, 7, 19])
def test_the_utf8_check_finds_a_bad_literal_in_any_group(bad_at: int | None) -> None:
    """rawjson.check_utf8 decodes the literals a few KB at a time: a bad one is found in
    the first group, one in the middle or the last, and good ones pass."""
    good = orjson.dumps("é" * 5000)  # ~10 KB: a group holds three or four
    literals = [good] * 20
    if bad_at is not None:
        literals[bad_at] = good[:-1] + b'\xff"'
    if bad_at is None:
        rawjson.check_utf8(literals)
    else:
        with pytest.raises(NotQuick):
            rawjson.check_utf8(literals)


def test_bad_json_is_the_same_error_either_way() -> None:
    deep = b'{"model": "m", "x": ' + b"[" * 5000 + b"]" * 5000 + b', "messages": []}'
    for raw in (b'{"model": "m", "messages": [', b"[1]", b'{"model": "m", "messages": NaN}', deep):
        with pytest.raises(RequestError) as quick:
            prepare_body(
                Endpoint.MESSAGES, read_body(API[Endpoint.MESSAGES], raw, None), Settings(), CATALOG
            )
        with pytest.raises(RequestError) as full:
            prepare(Endpoint.MESSAGES, parse_json_body(raw, None), Settings(), CATALOG)
        assert quick.value.message == full.value.message


# -- what the quick translations read ----------------------------------------------------


@pytest.mark.parametrize(
    ("head", "sources"),
    [
        (
            anthropic.quick.Head,
            [
                "translate/anthropic/request.py",
                "translate/anthropic/blocks.py",
                "core/apis/messages.py",
            ],
        ),
        (
            responses.quick.Head,
            [
                "translate/responses/request.py",
                "translate/responses/context.py",
                "core/apis/responses.py",
            ],
        ),
    ],
)
def test_the_quick_decoders_keep_every_field_the_translation_reads(
    head: Any, sources: list[str]
) -> None:
    """A field the translation reads but the quick decoder skipped would be lost: the
    decoders name every `body.get("...")` of the code that reads the body."""
    read: set[str] = set()
    for source in [*sources, "core/apis/base.py", "core/exchange.py"]:
        text = (ROOT / "oca_addon" / source).read_text()
        read |= set(re.findall(r'body\.get\("(\w+)"', text))
        read |= set(re.findall(r'body\["(\w+)"\]', text))
    assert read <= set(head.__struct_fields__), read - set(head.__struct_fields__)


# -- memory -------------------------------------------------------------------------------


def _memo_size(kind: str, quick: bool, turns: int = 3) -> int:
    """What the memo holds for one conversation of ~300 KB, `turns` turns on."""
    endpoint = Endpoint.MESSAGES if kind == "anthropic" else Endpoint.RESPONSES
    memo = ConversationMemo()
    bodies = [bigbody.make_body(kind, 300_000, "next?", "oca/grok3", more=j) for j in range(turns)]
    tracemalloc.start()
    try:
        for raw in bodies:
            raw = bytes(bytearray(raw))  # its own buffer, as a flow's
            if quick:
                ex = prepare_body(
                    endpoint, read_body(API[endpoint], raw, None), Settings(), CATALOG, memo=memo
                )
            else:
                ex = prepare(endpoint, json.loads(raw), Settings(), CATALOG, memo=memo, raw=raw)
            ex.settle()
            memo.release()
            del ex, raw
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        memo.clear()
        gc.collect()
        return held - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", ["anthropic", "responses"])
def test_a_quick_conversation_takes_less_memory_than_a_parsed_one(kind: str) -> None:
    quick, parsed = _memo_size(kind, True), _memo_size(kind, False)
    assert 0 < quick < parsed, (quick, parsed)


def test_a_remembered_quick_turn_keeps_no_older_request() -> None:
    """The memo keeps a quick turn's structs whole, views of this request's bytes, never
    of an earlier turn's: what it holds does not grow with the turns."""
    one, three = _memo_size("anthropic", True, turns=1), _memo_size("anthropic", True, turns=3)
    assert three < 1.2 * one, (one, three)
