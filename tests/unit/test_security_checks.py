"""Issue 7, "nobody else gets in", the pure checks (oca_addon/core/security.py): loopback
only, Host and Origin, the proxy key, secrets redacted; the same through real mitmdump and
mitmweb processes is in tests/e2e/test_security.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oca_addon.cli.main import _parser, build_mitmproxy_args
from oca_addon.core import security
from oca_addon.core.security import (
    any_key_matches,
    check_request,
    client_key,
    host_allowed,
    is_loopback_bind,
    is_loopback_ip,
    origin_allowed,
    split_host_port,
)

# -- pure checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "ok"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.168.1.5", False),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("fe80::1%eth0", False),
        ("8.8.8.8", False),
        ("", False),
        (None, False),
        ("localhost", False),  # a peer is an address, never a name
        ("not an ip", False),
    ],
)
def test_is_loopback_ip(addr: str | None, ok: bool) -> None:
    assert is_loopback_ip(addr) is ok


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("", False),  # every interface
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        (None, False),
    ],
)
def test_is_loopback_bind(host: str | None, ok: bool) -> None:
    assert is_loopback_bind(host) is ok


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("localhost:8669", ("localhost", 8669)),
        ("LocalHost:8669", ("localhost", 8669)),
        ("127.0.0.1", ("127.0.0.1", None)),
        ("[::1]:8669", ("::1", 8669)),
        ("[::1]", ("::1", None)),
        ("::1", None),  # IPv6 needs brackets
        ("localhost:", None),
        ("localhost:0", None),
        ("localhost:99999", None),
        ("localhost:86a9", None),
        (":8669", None),
        ("evil.com@localhost:8669", None),
        ("localhost:8669/x", None),
        ("local host:8669", None),
        ("[::1]x", None),
        ("", None),
    ],
)
def test_split_host_port(value: str, parsed: tuple[str, int | None] | None) -> None:
    assert split_host_port(value) == parsed


@given(st.text(max_size=40))
def test_split_host_port_never_raises(value: str) -> None:
    split_host_port(value)
    host_allowed(value, 8669)
    origin_allowed(value, 8669, value)


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("localhost:8669", True),
        ("127.0.0.1:8669", True),
        ("[::1]:8669", True),
        ("localhost", True),
        ("localhost:8668", False),  # another port: another service
        ("evil.example:8669", False),  # DNS rebinding
        ("127.0.0.1.nip.io:8669", False),
        ("localhost.evil.example:8669", False),
        ("192.168.1.5:8669", False),
        ("0.0.0.0:8669", False),
        ("", False),
        (None, False),
    ],
)
def test_host_allowed(host: str | None, ok: bool) -> None:
    assert host_allowed(host, 8669) is ok


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        (None, True),  # SDKs, curl and top-level navigations send none
        ("http://localhost:8669", True),
        ("http://127.0.0.1:8669", True),
        ("http://[::1]:8669", True),
        ("HTTP://LOCALHOST:8669/", True),
        ("http://localhost:8668", False),
        ("https://localhost:8669", False),
        ("http://evil.example", False),
        ("http://evil.example:8669", False),
        ("null", False),  # sandboxed frames, file:// pages
        ("", False),
    ],
)
def test_origin_allowed(origin: str | None, ok: bool) -> None:
    assert origin_allowed(origin, 8669) is ok


def test_origin_same_as_host_only_when_given() -> None:
    assert origin_allowed("http://box.lan:8669", 8669, "box.lan:8669")
    assert not origin_allowed("http://box.lan:8669", 8669, "other.lan:8669")
    assert not origin_allowed("http://box.lan:8669", 8669)


def test_client_key_and_constant_time_match() -> None:
    assert client_key({"x-api-key": "k1"}) == ["k1"]
    assert client_key({"authorization": "Bearer k2"}) == ["k2"]
    assert client_key({"authorization": "bearer  k2 "}) == ["k2"]
    assert client_key({"authorization": "Basic abc"}) == []
    assert client_key({}) == []
    assert any_key_matches({"x-api-key": "dummy", "authorization": "Bearer s3cret"}, "s3cret")
    assert not any_key_matches({"x-api-key": "s3cre"}, "s3cret")
    assert not any_key_matches({"x-api-key": "ключ"}, "s3cret")  # non-ASCII: no TypeError
    assert any_key_matches({"x-api-key": "ключ"}, "ключ")


def _check(**kw: Any) -> security.Refusal | None:
    base: dict[str, Any] = {
        "method": "POST",
        "host_header": "localhost:8669",
        "origin": None,
        "headers": {},
        "peer": "127.0.0.1",
        "port": 8669,
        "api": True,
        "proxy_key": None,
        "open_to_network": False,
    }
    return check_request(**{**base, **kw})


def test_check_request_matrix() -> None:
    assert _check() is None
    assert _check(peer="10.1.2.3").code == "forbidden_peer"  # type: ignore[union-attr]
    assert _check(host_header="evil.example:8669").code == "forbidden_host"  # type: ignore[union-attr]
    assert _check(origin="http://evil.example").code == "forbidden_origin"  # type: ignore[union-attr]
    # pages: a foreign Origin only matters when the request changes something
    assert _check(api=False, method="GET", origin="http://evil.example") is None
    assert _check(api=False, method="POST", origin="http://evil.example") is not None
    # no Origin, but the browser says where the request comes from
    assert _check(headers={"sec-fetch-site": "cross-site"}).code == "forbidden_origin"  # type: ignore[union-attr]
    assert _check(headers={"sec-fetch-site": "same-site"}) is not None
    assert _check(headers={"sec-fetch-site": "same-origin"}) is None
    assert _check(headers={"sec-fetch-site": "none"}) is None
    assert _check(api=False, method="GET", headers={"sec-fetch-site": "cross-site"}) is None
    # a key: the API needs it, pages from this machine do not
    assert _check(proxy_key="k").code == "missing_api_key"  # type: ignore[union-attr]
    assert _check(proxy_key="k", headers={"x-api-key": "x"}).code == "invalid_api_key"  # type: ignore[union-attr]
    assert _check(proxy_key="k", headers={"x-api-key": "k"}) is None
    assert _check(proxy_key="k", api=False, method="GET") is None
    # opened up to the network: other machines need the key on everything, any Host
    remote = {"peer": "10.1.2.3", "open_to_network": True, "host_header": "box.lan:8669"}
    assert _check(**remote).code == "forbidden_peer"  # type: ignore[union-attr]
    assert _check(**remote, proxy_key="k").code == "missing_api_key"  # type: ignore[union-attr]
    assert _check(**remote, proxy_key="k", api=False, method="GET").status == 401  # type: ignore[union-attr]
    assert _check(**remote, proxy_key="k", headers={"authorization": "Bearer k"}) is None
    # ... but on this machine a rebinding Host is still refused
    assert (
        _check(open_to_network=True, proxy_key="k", host_header="evil.example:8669").code  # type: ignore[union-attr]
        == "forbidden_host"
    )


def test_cli_refuses_non_loopback_without_key(tmp_path: Path) -> None:
    cfg = tmp_path / "s.json"
    cfg.write_text("{}")
    args = _parser().parse_args(["--host", "0.0.0.0", "--config", str(cfg)])
    with pytest.raises(SystemExit, match=r"refusing to listen on 0\.0\.0\.0"):
        build_mitmproxy_args(args, [])
    _, argv = build_mitmproxy_args(args, ["--set", "oca_proxy_api_key=k"])
    assert any(a.endswith("@0.0.0.0:8669") for a in argv)
    cfg.write_text(json.dumps({"proxy_api_key": "k"}))
    build_mitmproxy_args(args, [])
    default = _parser().parse_args(["--config", str(cfg)])
    _, argv = build_mitmproxy_args(default, [])
    assert any(a.endswith("@127.0.0.1:8669") for a in argv)


# -- issue 14: pure helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("b'POST / HTTP/1.1\\r\\nx-api-key: k-123456\\r\\n'", "k-123456"),
        ("b'...\\r\\nauthorization: Bearer sim-at-abc_DEF.9\\r\\n'", "sim-at-abc_DEF.9"),
        ("Headers[(b'x-api-key', b'k-123456'), (b'authorization', b'Basic dXNlcg==')]", "dXNlcg=="),
        ("Headers[(b'authorization', b'Bearer sim-at-x')]", "sim-at-x"),
        ('{"refresh_token": "sim-rt-1", "access_token":"sim-at-2"}', "sim-rt-1"),
        ('{"refresh_token": "sim-rt-1", "access_token":"sim-at-2"}', "sim-at-2"),
        ("authorization: Bearer sim-at-trunc…", "sim-at-trunc"),
        ("the key is pk-literal-1", "pk-literal-1"),
    ],
)
def test_redact_secrets(text: str, secret: str) -> None:
    out = security.redact_secrets(text, frozenset({"pk-literal-1"}))
    assert secret not in out and "<redacted>" in out


def test_redact_secrets_leaves_prose_alone() -> None:
    for text in (
        "Logged in (token file /home/u/.oca/refresh_token.json)",
        "login held in memory only: cannot write /h/.oca/refresh_token.json: No space left",
        "Bearer <redacted>",
        "IDCS sent no authorization code.",
    ):
        assert security.redact_secrets(text) == text


def test_escape_controls() -> None:
    assert security.escape_controls("plain · text") == "plain · text"
    assert security.escape_controls("a\nb\r\x1b[2J\x00\u2028") == "a\\nb\\r\\x1b[2J\\x00\\u2028"


def test_with_frame_ancestors() -> None:
    assert security.with_frame_ancestors(None) == "frame-ancestors 'none'"
    merged = security.with_frame_ancestors("default-src 'self'; frame-ancestors *")
    assert merged == "default-src 'self'; frame-ancestors 'none'"


def test_head_problem() -> None:
    from oca_addon.mitm.patches import head_problem

    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"a: b\r\n" * 10 + b"\r\nbody"
    assert head_problem(head, 1000, 11) is None
    assert "header fields" in (head_problem(head, 1000, 10) or "")
    assert "bytes" in (head_problem(b"GET / HTTP/1.1\r\n" + b"a" * 2000, 1000, 100) or "")
    assert head_problem(b"GET / HTTP/1.1\r\nHost: x", 1000, 100) is None  # not complete yet


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://code.aiservice.us-chicago-1.oci.oraclecloud.com/20250206/app/litellm", None),
        ("https://idcs-9dc693e80d9b469480d7afe00e743931.identity.oraclecloud.com", None),
        ("https://login.oracle.com/", None),
        ("https://oracle.com", None),
        ("http://127.0.0.1:9000", "127.0.0.1 is not on Oracle's domains"),
        ("https://eviloracle.com", "eviloracle.com is not on Oracle's domains"),
        ("https://oraclecloud.com.evil.example", "is not on Oracle's domains"),
        ("https://x.oraclecloud.com@evil.example/", "evil.example is not on Oracle's domains"),
        ("http://login.oracle.com", "it is http, not https"),
        ("https://a.oracle.com:99999", "not a valid URL"),
        ("not a url", "not a valid URL"),
    ],
)
def test_urls_off_oracles_domains_are_named(url: str, why: str | None) -> None:
    """Issue 23, item 1: allowed (the simulator, tests), but said at start and on the
    dashboard (tests/e2e/test_cli.py, test_dashboard_browser.py)."""
    from oca_addon.core.settings import DEPLOYMENTS, off_oracle, upstream_notices

    found = off_oracle(url)
    assert found is None if why is None else why in (found or ""), found
    for dep in DEPLOYMENTS.values():
        assert upstream_notices(dep.base_url, dep.idcs_url) == []
