"""Where the gateway's own work falls in time, through a running mitmdump: the request is
written to OCA as soon as its body is in and the gateway has made it OCA's, before the
chain's `request` hooks run (mitm/patches/earlysend.py), unless a script's `request` hook
may still change it or mitmproxy's intercept may hold it; and what OCA's answer does not
wait for (the client's body kept for mitmweb, the token estimate, the memo's layout,
freeing the parsed bodies) runs once the request has gone, not on the way to the first
token (addons/gateway.py after_send)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Proxy, Sim, start_proxy

PROBE = Path(__file__).parent / "probes" / "send_order.py"
SCRIPT_HOOK = Path(__file__).parent / "probes" / "request_hook.py"
CHAT = {"model": "oca/grok3", "messages": [{"role": "user", "content": "hi SIM:chunks=2"}]}


@pytest.fixture(scope="module")
def probed(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proxy, Path]]:
    home = tmp_path_factory.mktemp("timing-proxy")
    p = start_proxy(sim, home, mitm_args=["-s", str(PROBE)])
    yield p, home / "order.log"
    p.stop()


def test_the_request_goes_before_the_request_hooks_and_the_after_send_work(
    probed: tuple[Proxy, Path],
) -> None:
    proxy, log = probed
    chat = {"model": "oca/grok3", "messages": [{"role": "user", "content": "hi SIM:chunks=2"}]}
    anthropic = {
        "model": "oca/grok3",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi SIM:chunks=2"}],
    }
    with httpx.Client(base_url=proxy.url, timeout=30) as client:  # one connection, kept alive
        client.post("/v1/chat/completions", json=chat).raise_for_status()  # opens OCA's
        log.write_text("")
        for _ in range(3):
            for path, body in (("/v1/chat/completions", chat), ("/v1/messages", anthropic)):
                r = client.post(path, content=json.dumps(body), headers={"x-api-key": "k"})
                r.raise_for_status()
    order = log.read_text().split()
    # Sent first (earlysend), then the chain's request hooks, then the after-send work.
    assert order == ["sent", "request_hook", "after_send"] * 6


def _calls(proxy: Proxy, log: Path, n: int = 3) -> list[str]:
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        client.post("/v1/chat/completions", json=CHAT).raise_for_status()  # opens OCA's
        log.write_text("")
        for _ in range(n):
            client.post("/v1/chat/completions", json=CHAT).raise_for_status()
    return log.read_text().split()


def test_a_script_with_a_request_hook_gets_the_request_before_it_goes(
    sim: Sim, tmp_path: Path
) -> None:
    """A user's script whose `request` hook may change the request: the usual way (the
    hooks first, then the send), and what it changed reaches OCA."""
    p = start_proxy(sim, tmp_path, mitm_args=["-s", str(PROBE), "-s", str(SCRIPT_HOOK)])
    try:
        order = _calls(p, tmp_path / "order.log")
    finally:
        p.stop()
    assert order == ["request_hook", "script_hook", "sent", "after_send"] * 3
    assert sim.state()["requests"][-1]["headers"].get("x-script-saw") == "yes"


def test_an_intercept_filter_holds_the_request(sim: Sim, tmp_path: Path) -> None:
    """mitmweb's intercept: a matching request is held (the usual way), never sent early."""
    p = start_proxy(sim, tmp_path, program="mitmweb", mitm_args=["--set", "intercept=~bq held"])
    try:
        marker = f"held {secrets.token_hex(8)}"
        body = {**CHAT, "messages": [{"role": "user", "content": marker}]}
        with httpx.Client(base_url=p.url, timeout=3) as client:
            client.post("/v1/chat/completions", json=CHAT).raise_for_status()  # not held
            with pytest.raises(httpx.ReadTimeout):
                client.post("/v1/chat/completions", json=body)
        assert marker not in json.dumps(sim.state()["requests"])  # held: OCA saw nothing
    finally:
        p.stop()
