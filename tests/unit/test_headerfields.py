"""oca_addon/mitm/headerfields.py gives what mitmproxy's own header lookups give."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from mitmproxy import http

from oca_addon.mitm import headerfields

_names = st.sampled_from([b"Content-Type", b"content-type", b"Origin", b"X-Api-Key", b"A"])
_values = st.binary(max_size=8).filter(lambda b: b"\r" not in b and b"\n" not in b)


@given(st.lists(st.tuples(_names, _values), max_size=6), _names)
def test_the_same_values_as_mitmproxys_lookups(
    fields: list[tuple[bytes, bytes]], name: bytes
) -> None:
    headers = http.Headers(fields)
    assert headerfields.get(headers, name.lower()) == headers.get(name.decode())
    assert headerfields.get(headers, name.lower(), "d") == headers.get(name.decode(), "d")
    hidden = frozenset({b"x-api-key"})
    assert headerfields.listed(headers, hidden, "<r>") == [
        [k, "<r>" if k.lower() == "x-api-key" else v] for k, v in headers.items(True)
    ]


def test_repeated_headers_are_folded_and_odd_bytes_kept() -> None:
    headers = http.Headers([(b"Accept", b"a"), (b"accept", b"b"), (b"X", b"\xff")])
    assert headerfields.get(headers, b"accept") == "a, b" == headers.get("accept")
    assert headerfields.get(headers, b"x") == headers.get("x")
    assert headerfields.get(headers, b"missing") is None
