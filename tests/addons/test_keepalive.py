"""Keepalive under mitmproxy's test context: last in the chain, it ends each call (the
in-flight entry the Gateway made goes on response or error, after every other addon saw
it) and arms the idle memory collection once nothing is in flight."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fakes import State, api_flow, forwarded
from mitmproxy import flow as mflow
from mitmproxy import http
from mitmproxy.exceptions import OptionsError
from mitmproxy.test import taddons

from oca_addon.addons.gateway import Gateway
from oca_addon.addons.keepalive import Keepalive

CHAT = {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}


def chain(tmp_path: Path) -> tuple[Gateway, Keepalive]:
    """The Gateway (which puts each call in flight) and Keepalive, sharing their state."""
    state = State(tmp_path)
    return Gateway(state), Keepalive(state)


async def call(gw: Gateway) -> http.HTTPFlow:
    f = await forwarded(gw, "/v1/chat/completions", CHAT)
    assert f.id in gw.state.inflight
    return f


async def test_the_entry_goes_when_the_answer_is_final(tmp_path: Path) -> None:
    gw, k = chain(tmp_path)
    with taddons.context(gw, k):
        f = await call(gw)
        f.response = http.Response.make(200, b"{}")
        k.response(f)
        k.done()
    assert k.state.inflight == {}


async def test_the_entry_goes_when_the_call_fails(tmp_path: Path) -> None:
    gw, k = chain(tmp_path)
    with taddons.context(gw, k):
        f = await call(gw)
        f.error = mflow.Error("Connection refused")
        k.error(f)
        k.done()
    assert k.state.inflight == {}


async def test_only_the_finished_calls_entry_goes(tmp_path: Path) -> None:
    gw, k = chain(tmp_path)
    with taddons.context(gw, k):
        done, other = await call(gw), await call(gw)
        done.response = http.Response.make(200, b"{}")
        k.response(done)
    assert list(k.state.inflight) == [other.id]


async def test_an_answer_oca_proxy_gave_itself_changes_nothing(tmp_path: Path) -> None:
    gw, k = chain(tmp_path)
    with taddons.context(gw, k):
        other = await call(gw)
        page = api_flow("/", method="GET")
        page.response = http.Response.make(200, b"<html>")
        k.response(page)
    assert list(k.state.inflight) == [other.id] and k._idle_gc is None


async def test_the_idle_collection_is_armed_when_the_last_call_ends(tmp_path: Path) -> None:
    gw, k = chain(tmp_path)
    with taddons.context(gw, k):
        f = await call(gw)
        f.response = http.Response.make(200, b"{}")
        k.response(f)
        assert k._idle_gc is not None
        k.done()


async def test_no_idle_collection_while_calls_are_in_flight(tmp_path: Path) -> None:
    gw, k = chain(tmp_path)
    with taddons.context(gw, k):
        done, _ = await call(gw), await call(gw)
        done.error = mflow.Error("Connection refused")
        k.error(done)
    assert k._idle_gc is None


async def test_an_entry_whose_flow_ended_unseen_is_dropped_by_the_idle_watch(
    tmp_path: Path,
) -> None:
    gw, k = chain(tmp_path)
    with taddons.context(gw, k):
        f = await call(gw)
        f.live = False  # neither response nor error came (should not happen): no leak
        k.state.inflight[f.id].record.started = time.time() - 100
        k._cut_silent_upstreams(60)
    assert k.state.inflight == {}


def test_the_idle_timeout_must_be_in_range(tmp_path: Path) -> None:
    k = Keepalive(State(tmp_path))
    with taddons.context(k) as tctx, pytest.raises(OptionsError, match="oca_upstream_idle"):
        tctx.configure(k, oca_upstream_idle_timeout=-1)
