"""The per-chunk and per-request fast paths give what the general paths give.

jsonio (orjson with the standard library behind it), the pass-through tap's event checks,
the stream driver's one-event fast path, and the batched per-call log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oca_addon.core import jsonio, sse
from oca_addon.core.streams import PassthroughTap, StreamDriver
from oca_addon.mitm import annotate

# -- jsonio ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
@settings(max_examples=300)
def test_dumps_reads_back_as_the_standard_library_does(value: object) -> None:
    out = jsonio.dumps(value)
    assert isinstance(out, bytes)
    assert json.loads(out) == value
    assert jsonio.loads(out) == value


def test_dumps_is_compact_utf8_like_the_standard_library() -> None:
    value = {"a": [1, "é\u2028", None], "b": {"c": True}}
    assert jsonio.dumps(value) == json.dumps(
        value, ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")


def test_what_orjson_refuses_goes_to_the_standard_library() -> None:
    # A lone surrogate (half an emoji cut between upstream chunks) stays an escape.
    assert jsonio.dumps({"t": "x\ud83d"}) == b'{"t":"x\\ud83d"}'
    assert json.loads(jsonio.dumps({"t": "\ud83d"}))["t"] == "\ud83d"
    assert jsonio.dumps({"n": 2**70}) == b'{"n":1180591620717411303424}'
    assert jsonio.dumps({1: "a"}) == b'{"1":"a"}'
    assert jsonio.loads('"\\ud83d"') == "\ud83d"
    assert math.isnan(jsonio.loads("NaN"))


def test_loads_errors_carry_the_standard_library_message() -> None:
    with pytest.raises(json.JSONDecodeError) as e:
        jsonio.loads('{"a": 1,}')
    assert (e.value.msg, e.value.lineno, e.value.colno) == (
        "Expecting property name enclosed in double quotes",
        1,
        9,
    )
    with pytest.raises(ValueError):
        jsonio.loads(b"\xff")


# -- the pass-through tap's checks ----------------------------------------------------------


def _frame(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _fail(msg: str) -> bytes:
    return b"data: " + json.dumps({"error": msg}).encode() + b"\n\n"


def _run(tap: PassthroughTap, chunks: list[bytes]) -> bytes:
    out = b"".join(b"".join(tap(c)) for c in chunks)
    return out + b"".join(tap(b""))


GOOD = [_frame({"i": i, "t": "x" * i}) for i in range(5)]


def test_tap_passes_events_untouched_and_keeps_a_copy() -> None:
    tap = PassthroughTap(1 << 20, _fail)
    stream = [*GOOD, b": keep-alive\n\n", b"event: x\ndata: [1, 2]\r\n\r\n", b"data: [DONE]\n\n"]
    assert _run(tap, stream) == b"".join(stream)
    assert bytes(tap.captured) == b"".join(stream)
    assert not tap.failed


@pytest.mark.parametrize(
    "bad",
    [
        b"data: <html>oops</html>\n\n",  # not even the shape of JSON
        b'data: {"a": 1\n\n',  # cut
        b"data:\n\n",  # empty
        b"data: [DONE] and more\n\n",
    ],
)
def test_tap_stops_at_a_bad_event_later_in_the_stream(bad: bytes) -> None:
    tap = PassthroughTap(1 << 20, _fail)
    out = _run(tap, [*GOOD, bad, GOOD[0]])
    good = b"".join(GOOD)
    assert out.startswith(good)
    tail = out[len(good) :]
    assert b"not JSON" in tail and tail.endswith(b"\n\n") and GOOD[0] not in tail
    assert tap.failed


def test_tap_parses_the_first_event_in_full() -> None:
    # The right shape, but not JSON: only a full parse sees it (done for the first event).
    tap = PassthroughTap(1 << 20, _fail)
    out = _run(tap, [b"data: {not json}\n\n", GOOD[0]])
    assert b"not JSON" in out and b"{not json}" in out and GOOD[0] not in out


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_tap_output_does_not_depend_on_where_reads_split(sizes: list[int]) -> None:
    stream = b"".join([*GOOD, b"data: <garbage>\n\n", GOOD[1]])
    pieces, pos = [], 0
    for n in sizes:
        pieces.append(stream[pos : pos + n])
        pos += n
    pieces.append(stream[pos:])
    whole = _run(PassthroughTap(1 << 20, _fail), [stream])
    assert _run(PassthroughTap(1 << 20, _fail), [p for p in pieces if p]) == whole


def test_tap_capture_is_bounded() -> None:
    tap = PassthroughTap(100, _fail)
    out = _run(tap, GOOD * 5)
    assert out == b"".join(GOOD * 5)
    assert len(tap.captured) == 100 and tap.truncated and tap.seen == len(out)


# -- the stream driver's one-event fast path ------------------------------------------------


class _Echo:
    """A translator that writes back what it was fed (to compare the driver's paths)."""

    def feed(self, chunk: dict[str, object]) -> bytes:
        return sse.encode(chunk)

    def finish(self) -> bytes:
        return b"<finish>"

    def fail(self, status: int, message: str) -> bytes:
        return f"<fail {status} {message}>".encode()


@given(st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=20))
def test_driver_fast_path_and_parser_agree(sizes: list[int]) -> None:
    stream = b"".join(
        [
            *GOOD,
            b'event: e\ndata: {"named": 1}\n\n',
            _frame({"usage": {"prompt_tokens": 3}}),
            b"data: {broken}\n\n",
            GOOD[2],
        ]
    )

    def run(chunks: list[bytes]) -> tuple[bytes, object]:
        d = StreamDriver(_Echo(), 1 << 20)
        out = b"".join(b"".join(d(c)) for c in chunks) + b"".join(d(b""))
        return out, d.usage

    whole = run([stream])  # one read: the parser's general path
    by_event = run([e + b"\n\n" for e in stream.split(b"\n\n") if e])  # mostly the fast path
    pieces, pos = [], 0
    for n in sizes:
        pieces.append(stream[pos : pos + n])
        pos += n
    pieces.append(stream[pos:])
    split = run([p for p in pieces if p])
    assert whole == by_event == split
    assert whole[1] == {"prompt_tokens": 3}
    assert b"<fail 502 OCA sent a stream event that is not JSON" in whole[0]


# -- the per-call log line --------------------------------------------------------------------


def test_log_lines_of_a_burst_share_one_record(caplog: pytest.LogCaptureFixture) -> None:
    async def burst() -> None:
        log = annotate.TrafficLog()
        for i in range(3):
            log.add(f"200 POST /v1/messages · call {i}")
        assert not [r for r in caplog.records if "call" in r.getMessage()]  # not yet
        await asyncio.sleep(log.FLUSH_S * 3)
        log.add("200 POST /v1/messages · call 3")
        log.flush()  # what done() does at shutdown

    with caplog.at_level(logging.INFO, logger="oca_addon.traffic"):
        asyncio.run(burst())
    records = [r.getMessage() for r in caplog.records if "call" in r.getMessage()]
    assert len(records) == 2
    lines = records[0].split("\n")
    assert lines[0] == "200 POST /v1/messages · call 0"
    # Each later line is stamped like mitmproxy stamps the first: [HH:MM:SS.mmm].
    assert all(re.fullmatch(r"\[\d\d:\d\d:\d\d\.\d{3}\] 200 POST .*", x) for x in lines[1:])
    assert len(lines) == 3 and records[1] == "200 POST /v1/messages · call 3"


def test_log_line_without_an_event_loop_is_logged_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="oca_addon.traffic"):
        annotate.TrafficLog().add("200 POST /v1/chat/completions · now")
    assert [r.getMessage() for r in caplog.records] == ["200 POST /v1/chat/completions · now"]
