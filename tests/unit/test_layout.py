"""translate/layout.py: a body's messages located in its bytes, and two turns compared by
bytes only where that is exact (the body is the compact serialization of what was parsed);
everywhere else it says "can't tell" and the memo compares the parsed JSON."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from oca_addon.translate.layout import common_bytes, extend, index
from oca_addon.translate.memo import common_prefix


def compact(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _body(messages: list[Any], **rest: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "messages": messages, "max_tokens": 64, **rest}


MESSAGES = [
    {"role": "user", "content": 'Héllo → 中文 "quoted" C:\\path\t\u001b[0m'},
    {"role": "assistant", "content": [{"type": "text", "text": "hi"}, {"type": "x", "n": 1.5}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
]


def test_common_bytes() -> None:
    assert common_bytes(b"", b"abc", 10) == 0
    assert common_bytes(b"abc", b"abc", 10) == 3
    assert common_bytes(b"abcd", b"abxd", 10) == 2
    assert common_bytes(b"abcd", b"abcd", 2) == 2
    big = bytes(range(256)) * 4000  # a difference beyond the first block, and in the last
    for at in (0, 1, 70_000, 131_072, 500_000, len(big) - 1):
        other = big[:at] + bytes([(big[at] + 1) % 256]) + big[at + 1 :]
        assert common_bytes(big, other, len(big)) == at
    assert common_bytes(big, big + b"more", 10**9) == len(big)


def test_a_compact_body_has_a_layout_with_each_message_end() -> None:
    body = _body(MESSAGES, system=[{"type": "text", "text": "be brief"}])
    raw = compact(body)
    lay = index(raw, body, "messages")
    assert lay is not None and lay.raw is raw and len(lay.ends) == 3
    start = raw.index(b'"messages":[') + len(b'"messages":[')
    pieces = [start, *(e + 1 for e in lay.ends[:-1])]
    for i, (s, e) in enumerate(zip(pieces, lay.ends, strict=True)):
        assert json.loads(raw[s:e]) == MESSAGES[i]
    assert raw[lay.end : lay.end + 1] == b"]" and lay.end == lay.ends[-1]
    assert index(raw + b"\n", body, "messages") is not None  # trailing whitespace is JSON too
    assert index(compact(_body([])), _body([]), "messages") is not None


def test_a_body_written_any_other_way_has_no_layout() -> None:
    body = _body(MESSAGES)
    # A number as the standard library writes it (1e-07; orjson: 1e-7).
    big = {"messages": [{"n": 1e-7}]}
    assert index(compact(big), json.loads(compact(big)), "messages") is None
    assert index(json.dumps(body).encode(), body, "messages") is None  # spaces, \\u escapes
    spaced = json.dumps(body, ensure_ascii=False, separators=(", ", ":")).encode()
    assert index(spaced, body, "messages") is None
    escaped = compact(body).replace("é".encode(), b"\\u00e9")
    assert index(escaped, json.loads(escaped), "messages") is None
    assert index(compact(body).replace(b"1.5", b"1.50"), body, "messages") is None
    assert index(b" " + compact(body), body, "messages") is None
    # The field missing or not a list: nothing to locate.
    assert index(compact({"model": "m"}), {"model": "m"}, "messages") is None
    assert index(compact({"messages": "hi"}), {"messages": "hi"}, "messages") is None
    # Named twice: the parsed body holds the second list, the bytes the first.
    twice = b'{"messages":[{"a":1}],"x":1,"messages":[{"a":2}]}'
    assert index(twice, json.loads(twice), "messages") is None
    # What orjson will not write (a lone surrogate) is no error: no layout.
    lone = {"messages": ["\ud800"]}
    assert index(json.dumps(lone).encode(), lone, "messages") is None


def _turn(messages: list[Any], **rest: Any) -> tuple[bytes, dict[str, Any]]:
    raw = orjson.dumps(_body(messages, **rest))
    return raw, orjson.loads(raw)


def test_a_next_turn_is_compared_by_its_bytes() -> None:
    raw, body = _turn(MESSAGES)
    old = index(raw, body, "messages")
    assert old is not None
    more = [*MESSAGES, {"role": "assistant", "content": "done"}, {"role": "user", "content": "go"}]
    raw2, body2 = _turn(more)
    found = extend(old, raw2, body2)
    assert found is not None
    shared, lay = found
    assert shared == 3 and lay.raw is raw2
    assert lay.ends == index(raw2, body2, "messages").ends  # type: ignore[union-attr]
    # The last message changed (a moved cache breakpoint): the ones before it are shared.
    edited = [*MESSAGES[:2], {**MESSAGES[2], "cache_control": {"type": "ephemeral"}}]
    raw3, body3 = _turn(edited)
    found = extend(old, raw3, body3)
    assert found is not None and found[0] == 2
    # Fewer messages; the rest of the object changed (checked on its own).
    raw4, body4 = _turn(MESSAGES[:2], system="now with a system prompt")
    found = extend(old, raw4, body4)
    assert found is not None and found[0] == 2
    assert found[1].ends == index(raw4, body4, "messages").ends  # type: ignore[union-attr]


def test_what_bytes_cannot_tell_is_left_to_the_parsed_comparison() -> None:
    raw, body = _turn(MESSAGES)
    old = index(raw, body, "messages")
    assert old is not None
    # Nothing shared: another conversation.
    other, other_body = _turn([{"role": "user", "content": "another"}])
    assert extend(old, other, other_body) is None
    # The new messages or the rest written another way.
    spaced_tail = raw[: old.ends[-1]] + b', {"role": "user", "content": "x"}' + raw[old.end :]
    assert extend(old, spaced_tail, json.loads(spaced_tail)) is None
    spaced_rest = raw[: old.end + 1] + b', "max_tokens": 64}'
    assert extend(old, spaced_rest, json.loads(spaced_rest)) is None
    # The list named again after the shared bytes: the parsed body holds the second one.
    for key in (b'"messages"', b'"\\u006dessages"'):
        twice = raw[:-1] + b"," + key + b':[{"role":"user","content":"other"}]}'
        parsed = json.loads(twice)
        assert parsed["messages"] == [{"role": "user", "content": "other"}]
        assert extend(old, twice, parsed) is None
    # Another field named twice after the list: not the compact form of the parsed body.
    twice = raw[:-1] + b',"max_tokens":65}'
    assert extend(old, twice, json.loads(twice)) is None
    # A field that is not a list any more.
    raw5, body5 = _turn([])
    body5["messages"] = "text"
    assert extend(old, raw5, body5) is None


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet="abcr", max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
_message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "c": _json})


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_message, min_size=1, max_size=6),
    st.lists(_message, max_size=3),
    st.integers(0, 6),
    _json,
)
def test_property_bytes_share_what_the_parsed_messages_share(
    old_messages: list[Any], new_tail: list[Any], cut: int, extra: Any
) -> None:
    """Whatever the edit: when the bytes tell, they tell a prefix of equal messages, the
    longest one unless equal values are written differently (0.0 and -0.0), and the new
    layout is the one indexing the new body finds."""
    raw, body = _turn(old_messages)
    old = index(raw, body, "messages")
    assert old is not None
    new_messages = [*old_messages[:cut], *new_tail]
    raw2, body2 = _turn(new_messages, extra=extra)
    found = extend(old, raw2, body2)
    deep = common_prefix(body["messages"], body2["messages"])
    if found is None:
        assert deep == 0 or raw[: old.ends[0]] != raw2[: old.ends[0]]
        return
    shared, lay = found
    assert 0 < shared <= deep
    assert body["messages"][:shared] == body2["messages"][:shared]
    if orjson.dumps(body["messages"][:deep]) == orjson.dumps(body2["messages"][:deep]):
        assert shared == deep
    fresh = index(raw2, body2, "messages")
    assert fresh is not None and lay.ends == fresh.ends and lay.end == fresh.end
