"""Issue 23.7: every oca_ option is checked in `configure`, mitmproxy's way. An out-of-range
value raises OptionsError naming the option (a change is rolled back; at start-up mitmdump
says why and exits) instead of meaning something else ("unlimited" for a negative cap)."""

from __future__ import annotations

import importlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, SCRIPT, free_port
from mitmproxy import exceptions
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.test import taddons

from oca_addon.addons import config, gateway, guard, hardening, keepalive, traffic, viewlimit
from oca_addon.mitm.state import ProxyState

# option -> (values refused, a value accepted)
BAD: dict[str, tuple[list[Any], Any]] = {
    "oca_view_limit_flows": ([-1, -1000], 0),
    "oca_view_limit_mb": ([-1], 0),
    "oca_capture_limit": ([-1], 0),
    "oca_max_body": ([-1], 0),
    "oca_max_header_size": ([-1, 0, 100], 1024),
    "oca_max_headers": ([-1], 0),
    "oca_models_ttl": ([-1, 10**12], 0),
    "oca_completions_refusal_ttl": ([-5], 0),
    "oca_conversation_memo": ([-1, 10**9], 0),
    "oca_keepalive": ([-1, 10**12], 0),
    "oca_upstream_idle_timeout": ([-1, 10**12], 0),
    "oca_refresh_margin": ([-1, 10**9], 60),
    "oca_mode": (["intenral", "INTERNAL"], "external"),
    "oca_base_url": (["ftp://x", "localhost:8080", "http://", "http://h:port/"], "http://h:1/p"),
    "oca_idcs_url": (["nope"], "https://idcs.example"),
}


@pytest.fixture
def chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[Any]]]:
    """The whole addon chain under mitmproxy's test context (HOME of the test's own)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    script = importlib.import_module("oca_addon._script")
    state = ProxyState()
    # The chain of _script.py, made anew: each addon of its kind, given this test's state.
    addons = [type(a)(state) if "state" in vars(a) else type(a)() for a in script.addons]
    # mitmproxy's own options the addons read (connection_strategy, mode, ...) come with
    # its proxy server addon.
    with taddons.context(Proxyserver(), *addons) as tctx:
        yield tctx, addons


@pytest.mark.parametrize("name", sorted(BAD))
def test_out_of_range_option_is_refused_naming_it(chain: tuple[Any, list[Any]], name: str) -> None:
    tctx, _ = chain
    bad, good = BAD[name]
    before = getattr(tctx.options, name)
    for value in bad:
        with pytest.raises(exceptions.OptionsError, match=name):
            tctx.options.update(**{name: value})
        assert getattr(tctx.options, name) == before  # rolled back
    tctx.options.update(**{name: good})
    assert getattr(tctx.options, name) == good


def test_negative_view_limit_is_not_unlimited(chain: tuple[Any, list[Any]]) -> None:
    """The issue's own case: -1 used to become max(0, -1) = 0, no limit at all."""
    tctx, addons = chain
    limit = next(a for a in addons if isinstance(a, viewlimit.ViewLimit))
    tctx.options.update(oca_view_limit_flows=40)
    with pytest.raises(exceptions.OptionsError, match="oca_view_limit_flows must be 0 or more"):
        tctx.options.update(oca_view_limit_flows=-1)
    assert limit.max_flows == 40


def test_every_int_option_has_a_range(chain: tuple[Any, list[Any]]) -> None:
    """A new integer option gets its range too (the ranges sit next to each add_option)."""
    tctx, _ = chain
    ranges: dict[str, Any] = {
        **config.OPTION_RANGES,
        **gateway.OPTION_RANGES,
        **guard.OPTION_RANGES,
        **hardening.HEAD_LIMIT_RANGES,
        **keepalive.OPTION_RANGES,
        **traffic.OPTION_RANGES,
        **viewlimit.OPTION_RANGES,
    }
    ints = {
        name
        for name, option in tctx.options._options.items()
        if name.startswith("oca_") and option.typespec is int
    }
    assert ints == set(ranges), ints ^ set(ranges)


@pytest.mark.slow  # a process of its own
def test_mitmdump_refuses_to_start_with_a_bad_option(tmp_path: Path) -> None:
    port = free_port()
    done = subprocess.run(
        [
            str(BIN / "mitmdump"),
            "-s",
            str(SCRIPT),
            "--mode",
            f"reverse:http://127.0.0.1:9@127.0.0.1:{port}",
            "--set",
            "oca_open_browser=false",
            "--set",
            "oca_view_limit_flows=-1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(tmp_path), "PATH": str(BIN)},
        cwd=str(SCRIPT.parent),
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "oca_view_limit_flows must be 0 or more" in out, out
