"""Where the gateway's own work falls in time, through a running mitmdump: what OCA's
answer does not wait for (the client's body kept for mitmweb, the token estimate, the
memo's layout, freeing the parsed bodies) runs once the request has been written to OCA,
not on the way to the first token (addons/gateway.py after_send)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Proxy, Sim, start_proxy

PROBE = Path(__file__).parent / "probes" / "send_order.py"


@pytest.fixture(scope="module")
def probed(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proxy, Path]]:
    home = tmp_path_factory.mktemp("timing-proxy")
    p = start_proxy(sim, home, mitm_args=["-s", str(PROBE)])
    yield p, home / "order.log"
    p.stop()


def test_the_after_send_work_runs_once_the_request_has_gone(
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
    assert order == ["sent", "after_send"] * 6
