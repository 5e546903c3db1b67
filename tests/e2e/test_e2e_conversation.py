"""A conversation going on, turn after turn, through a running mitmdump: what reaches the
simulator is what a fresh translation of each request gives (the proxy remembers each
conversation's last request and translates only the new turns: translate/memo.py), with
oca_conversation_memo on and off."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import Proxy, Sim, start_proxy

from bench import bigbody
from oca_addon.core.exchange import prepare
from oca_addon.core.modelinfo import Catalog
from oca_addon.core.routing import Endpoint
from oca_addon.core.settings import Settings
from oca_addon.sim.models import model_info_payload

CATALOG = Catalog.from_model_info(model_info_payload())
PATHS = {Endpoint.MESSAGES: "/v1/messages", Endpoint.RESPONSES: "/v1/responses"}


@pytest.fixture(scope="module", params=["8", "0"], ids=["memo", "no-memo"])
def conv_proxy(
    request: pytest.FixtureRequest, sim: Sim, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxy]:
    p = start_proxy(
        sim,
        tmp_path_factory.mktemp("conv-proxy"),
        options={"oca_conversation_memo": request.param},
    )
    yield p
    p.stop()


def _upstream_bodies(sim: Sim, path: str, last: int) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"path": path, "last": last}
    reqs = httpx.get(f"{sim.url}/__sim/requests", params=params, timeout=10).json()
    return [r["body"] for r in reqs]


def _turns(endpoint: Endpoint, model: str) -> list[dict[str, Any]]:
    """Six requests of one conversation: Claude-Code- or Codex-shaped, each a turn longer
    than the one before, the breakpoint (Anthropic) on the last message each time."""
    kind = "anthropic" if endpoint is Endpoint.MESSAGES else "responses"
    full = json.loads(bigbody.make_body(kind, 60_000, "What next? SIM:chunks=2", model, more=6))
    field = "messages" if kind == "anthropic" else "input"
    history, last = full[field][:-1], full[field][-1]
    bodies = []
    for cut in range(len(history) - 15, len(history) + 1, 3):
        messages = copy.deepcopy([*history[:cut], last])
        if kind == "anthropic":
            messages[-2]["content"][-1]["cache_control"] = {"type": "ephemeral"}
        bodies.append({**full, field: messages, "stream": False})
    return bodies


# How the client writes its JSON: compact, as Claude Code and httpx do (the memo compares
# the turns' bytes), or spaced and ASCII-escaped, as json.dumps does by default (the memo
# compares the parsed messages: translate/layout.py).
ENCODINGS = {
    "compact": lambda body: json.dumps(body, ensure_ascii=False, separators=(",", ":")),
    "spaced": json.dumps,
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize(
    ("endpoint", "model"),
    [
        (Endpoint.MESSAGES, "oca/grok3"),  # chat
        (Endpoint.MESSAGES, "oca/gpt-5-codex"),  # chat, then the Responses adapter
        (Endpoint.RESPONSES, "oca/grok3"),  # chat
        (Endpoint.RESPONSES, "oca/claude-opus-4"),  # chat, then the Messages adapter
    ],
)
def test_each_turn_reaches_oca_as_a_fresh_translation(
    conv_proxy: Proxy, sim: Sim, endpoint: Endpoint, model: str, encoding: str
) -> None:
    bodies = _turns(endpoint, model)
    upstream_path = prepare(endpoint, bodies[0], Settings(), CATALOG).route.upstream_path
    for body in bodies:
        r = httpx.post(
            f"{conv_proxy.url}{PATHS[endpoint]}",
            content=ENCODINGS[encoding](body).encode(),
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
    sent = _upstream_bodies(sim, upstream_path, len(bodies))
    assert len(sent) == len(bodies)
    for body, got in zip(bodies, sent, strict=True):
        fresh = prepare(endpoint, copy.deepcopy(body), Settings(), CATALOG)
        assert got == json.loads(json.dumps(fresh.upstream_body))
