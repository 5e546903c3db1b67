"""Guard on its own, under mitmproxy's test context: who may connect and call. A refusal
sets flow.response (in the called API's error shape, or a plain page), which the addons
after it leave alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import MODE, PORT, State, api_flow
from mitmproxy import exceptions
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.test import taddons, tflow

from oca_addon.addons.guard import Guard

CHAT = {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[tuple[Guard, Any]]:
    g = Guard(State(tmp_path))
    with taddons.context(Proxyserver(), g) as tctx:
        tctx.configure(g, mode=[MODE])
        yield g, tctx


def error_of(flow: Any) -> dict[str, Any]:
    assert flow.response is not None
    return json.loads(flow.response.content)


def test_listens_on_loopback_unless_told(guard: tuple[Guard, Any]) -> None:
    _, tctx = guard
    assert tctx.options.mode == [f"reverse:http://127.0.0.1:9@127.0.0.1:{PORT}"]


def test_an_address_of_the_users_own_is_kept(guard: tuple[Guard, Any]) -> None:
    g, tctx = guard
    tctx.configure(g, mode=["reverse:http://127.0.0.1:9@::1:8700"])
    assert tctx.options.mode == ["reverse:http://127.0.0.1:9@::1:8700"]


def test_listening_beyond_loopback_without_a_key_is_refused_while_running(
    guard: tuple[Guard, Any],
) -> None:
    g, tctx = guard
    g._running = True  # as running() leaves it (which would also start the servers here)
    with pytest.raises(exceptions.OptionsError, match=r"refuses to listen on 0\.0\.0\.0"):
        tctx.configure(g, mode=["reverse:http://127.0.0.1:9@0.0.0.0:8700"])
    assert tctx.options.mode == [f"reverse:http://127.0.0.1:9@127.0.0.1:{PORT}"]


def test_listening_beyond_loopback_without_a_key_at_start_stays_on_loopback(
    guard: tuple[Guard, Any], caplog: pytest.LogCaptureFixture
) -> None:
    g, tctx = guard
    tctx.configure(g, mode=["reverse:http://127.0.0.1:9@0.0.0.0:8700"])
    assert tctx.options.mode == ["reverse:http://127.0.0.1:9@127.0.0.1:8700"]
    assert "refuses to listen on 0.0.0.0" in caplog.text


def test_listening_beyond_loopback_with_a_key_is_allowed(guard: tuple[Guard, Any]) -> None:
    g, tctx = guard
    tctx.configure(g, oca_proxy_api_key="k", mode=["reverse:http://127.0.0.1:9@0.0.0.0:8700"])
    assert tctx.options.mode == ["reverse:http://127.0.0.1:9@0.0.0.0:8700"]


def test_a_local_call_passes(guard: tuple[Guard, Any]) -> None:
    g, _ = guard
    f = api_flow("/v1/chat/completions", CHAT)
    g.request(f)
    assert f.response is None


def test_another_machine_is_refused(guard: tuple[Guard, Any]) -> None:
    g, _ = guard
    f = api_flow("/v1/chat/completions", CHAT, peer="198.51.100.7")
    g.request(f)
    assert error_of(f)["error"]["code"] == "forbidden_peer"


def test_another_machines_connection_is_refused(guard: tuple[Guard, Any]) -> None:
    g, _ = guard
    client = tflow.tclient_conn()
    client.peername = ("198.51.100.7", 50000)
    g.client_connected(client)
    assert client.error == "oca-proxy only serves this machine"


def test_a_host_not_ours_is_refused_in_the_openai_shape(guard: tuple[Guard, Any]) -> None:
    g, _ = guard
    f = api_flow("/v1/chat/completions", CHAT, host=f"evil.example:{PORT}")
    g.request(f)
    assert f.response is not None and f.response.status_code == 403
    assert error_of(f)["error"]["code"] == "forbidden_host"


def test_a_host_not_ours_is_refused_in_the_anthropic_shape(guard: tuple[Guard, Any]) -> None:
    g, _ = guard
    f = api_flow("/v1/messages", CHAT, host="rebound.example")
    g.request(f)
    body = error_of(f)
    assert (body["type"], body["error"]["type"]) == ("error", "permission_error")


def test_a_cross_site_origin_is_refused(guard: tuple[Guard, Any]) -> None:
    g, _ = guard
    f = api_flow("/v1/chat/completions", CHAT, headers=[("origin", "https://evil.example")])
    g.request(f)
    assert error_of(f)["error"]["code"] == "forbidden_origin"


def test_our_own_pages_origin_passes(guard: tuple[Guard, Any]) -> None:
    g, _ = guard
    origin = [("origin", f"http://localhost:{PORT}")]
    f = api_flow("/v1/chat/completions", CHAT, headers=origin)
    g.request(f)
    assert f.response is None


def test_a_page_refusal_is_plain_text(guard: tuple[Guard, Any]) -> None:
    g, _ = guard
    f = api_flow("/", method="GET", host="evil.example")
    g.request(f)
    assert f.response is not None and f.response.status_code == 403
    assert f.response.headers["content-type"] == "text/plain; charset=utf-8"


def test_the_proxy_key_is_required_when_set(guard: tuple[Guard, Any]) -> None:
    g, tctx = guard
    tctx.configure(g, oca_proxy_api_key="pk-1")
    f = api_flow("/v1/chat/completions", CHAT)
    g.request(f)
    assert f.response is not None and f.response.status_code == 401
    assert error_of(f)["error"]["code"] == "missing_api_key"


def test_a_wrong_proxy_key_is_refused(guard: tuple[Guard, Any]) -> None:
    g, tctx = guard
    tctx.configure(g, oca_proxy_api_key="pk-1")
    f = api_flow("/v1/messages", CHAT, headers=[("x-api-key", "pk-2")])
    g.request(f)
    assert error_of(f)["error"]["type"] == "authentication_error"


def test_the_right_proxy_key_passes(guard: tuple[Guard, Any]) -> None:
    g, tctx = guard
    tctx.configure(g, oca_proxy_api_key="pk-1")
    f = api_flow("/v1/chat/completions", CHAT, headers=[("authorization", "Bearer pk-1")])
    g.request(f)
    assert f.response is None


def test_the_settings_files_proxy_key_counts(tmp_path: Path) -> None:
    g = Guard(State(tmp_path, settings={"proxy_api_key": "from-file"}))
    with taddons.context(Proxyserver(), g) as tctx:
        tctx.configure(g, mode=[MODE])
        f = api_flow("/v1/chat/completions", CHAT, headers=[("x-api-key", "from-file")])
        g.request(f)
        assert f.response is None


def test_a_replay_started_inside_mitmproxy_passes(guard: tuple[Guard, Any]) -> None:
    g, _ = guard
    f = api_flow("/v1/chat/completions", CHAT, host="oca.example")
    f.is_replay = "request"
    g.request(f)
    assert f.response is None


def test_an_answered_flow_is_left_alone(guard: tuple[Guard, Any]) -> None:
    g, _ = guard
    f = api_flow("/v1/chat/completions", CHAT, host="evil.example")
    f.response = tflow.tresp()
    g.request(f)
    assert f.response.status_code == 200


def test_oca_max_body_becomes_mitmproxys_body_limit(guard: tuple[Guard, Any]) -> None:
    g, tctx = guard
    tctx.configure(g, oca_max_body=1000)
    assert tctx.options.body_size_limit == "1000"
    tctx.configure(g, oca_max_body=0)
    assert tctx.options.body_size_limit is None


def test_a_body_limit_of_the_users_own_is_kept(guard: tuple[Guard, Any]) -> None:
    g, tctx = guard
    tctx.options.update(body_size_limit="5m")
    tctx.configure(g, oca_max_body=1000)
    assert tctx.options.body_size_limit == "5m"
