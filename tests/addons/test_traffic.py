"""Traffic on its own, under mitmproxy's test context: what a finished call leaves on its
flow (comment, mark, the token redacted), in the stats and in the log (one line a call);
the answers oca-proxy gave itself, traced too."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import TOKEN, State, answered, api_flow, chat_sse, forwarded, oca_answer
from mitmproxy import flow as mflow
from mitmproxy import http
from mitmproxy.test import taddons

from oca_addon.addons.gateway import Gateway
from oca_addon.addons.traffic import Traffic
from oca_addon.core.stats import RequestRecord
from oca_addon.mitm import annotate

MESSAGES = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}],
}
JSON = "application/json"


@pytest.fixture(autouse=True)
def _log_flushed() -> Iterator[None]:
    """The per-call log line is batched on the event loop: none left for the next test."""
    yield
    annotate.traffic_log.flush()


@pytest.fixture
def traffic(tmp_path: Path) -> Iterator[tuple[Traffic, Any]]:
    t = Traffic(State(tmp_path))
    with taddons.context(t) as tctx:
        yield t, tctx


def record(**kw: Any) -> RequestRecord:
    base: dict[str, Any] = {
        "started": time.time() - 1.5,
        "api": "messages",
        "path": "/v1/messages",
        "requested_model": "claude-sonnet-4-6",
        "target_model": "oca/gpt-4.1",
        "route": "translated",
        "stream": False,
        "status": 200,
        "input_tokens": 1234,
        "output_tokens": 56,
        "request_id": "rid-1",
    }
    return RequestRecord(**{**base, **kw})


def chain(tmp_path: Path) -> tuple[Gateway, Traffic]:
    """The Gateway (which makes each call and shapes OCA's answer) and Traffic after it."""
    state = State(tmp_path, settings={"model_mapping": {"claude-sonnet-4-6": "oca/gpt-4.1"}})
    return Gateway(state), Traffic(state)


async def call(gw: Gateway, status: int = 200) -> http.HTTPFlow:
    """An Anthropic client's call, translated for OCA's chat, answered by OCA (a stream of
    text and usage, or an error of `status`), its answer shaped by the Gateway."""
    f = await forwarded(gw, "/v1/messages", MESSAGES)
    gw.state.inflight[f.id].record.started -= 1.5  # it took that long
    if status == 200:
        resp = oca_answer(200, chat_sse("Hi"), "text/event-stream")
    else:
        resp = oca_answer(status, json.dumps({"error": {"message": "no"}}).encode(), JSON)
    return await answered(gw, f, resp)


def rec_of(t: Traffic, f: http.HTTPFlow) -> RequestRecord:
    return t.state.inflight[f.id].record


# -- a call OCA answered ----------------------------------------------------------------------


async def test_a_finished_call_gets_its_comment(tmp_path: Path) -> None:
    gw, t = chain(tmp_path)
    with taddons.context(gw, t):
        f = await call(gw)
        t.response(f)
    assert f.comment.startswith("anthropic → chat · claude-sonnet-4-6 → oca/gpt-4.1 · 7 in / 2")


async def test_a_finished_call_is_counted(tmp_path: Path) -> None:
    gw, t = chain(tmp_path)
    with taddons.context(gw, t):
        f = await call(gw)
        t.response(f)
    (rec,) = t.state.stats.recent
    assert rec is rec_of(t, f) and rec.flow_id == f.id


async def test_a_finished_call_adds_to_the_models_totals(tmp_path: Path) -> None:
    gw, t = chain(tmp_path)
    with taddons.context(gw, t):
        t.response(await call(gw))
    assert t.state.stats.totals["oca/gpt-4.1"] == {
        "requests": 1,
        "input_tokens": 7,
        "output_tokens": 2,
        "errors": 0,
    }


async def test_a_finished_call_takes_its_time(tmp_path: Path) -> None:
    gw, t = chain(tmp_path)
    with taddons.context(gw, t):
        f = await call(gw)
        t.response(f)
    assert 1500 <= rec_of(t, f).latency_ms < 60_000


async def test_a_finished_call_logs_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gw, t = chain(tmp_path)
    with taddons.context(gw, t), caplog.at_level(logging.INFO, "oca_addon.traffic"):
        t.response(await call(gw))
        annotate.traffic_log.flush()  # lines are batched for FLUSH_S
    (line,) = [r.getMessage() for r in caplog.records if r.name == "oca_addon.traffic"]
    assert line.startswith("200 POST /v1/messages · anthropic → chat")  # the client's path


async def test_the_token_is_redacted_once_the_call_ends(tmp_path: Path) -> None:
    gw, t = chain(tmp_path)
    with taddons.context(gw, t):
        f = await call(gw)
        f.request.headers["authorization"] = f"Bearer {TOKEN}"  # as on a replay's flow
        t.response(f)
    assert f.request.headers["authorization"] == "Bearer <redacted>"


async def test_the_summary_is_kept_on_the_flow(tmp_path: Path) -> None:
    gw, t = chain(tmp_path)
    with taddons.context(gw, t):
        f = await call(gw)
        t.response(f)
    assert annotate.meta(f)["summary"]["request_id"] == f.request.headers["opc-request-id"]


async def test_a_failed_call_is_marked_failed(tmp_path: Path) -> None:
    gw, t = chain(tmp_path)
    with taddons.context(gw, t):
        f = await call(gw, status=502)
        t.response(f)
    assert f.marked == annotate.MARK_FAILED


async def test_a_refused_call_is_marked_refused(tmp_path: Path) -> None:
    gw, t = chain(tmp_path)
    with taddons.context(gw, t):
        f = await call(gw, status=400)
        t.response(f)
    assert f.marked == annotate.MARK_REFUSED


async def test_a_failure_counts_as_an_error(tmp_path: Path) -> None:
    gw, t = chain(tmp_path)
    with taddons.context(gw, t):
        t.response(await call(gw, status=429))
    assert t.state.stats.totals["oca/gpt-4.1"]["errors"] == 1


async def test_a_failed_connection_is_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gw, t = chain(tmp_path)
    with taddons.context(gw, t), caplog.at_level(logging.WARNING, "oca_addon"):
        f = await forwarded(gw, "/v1/messages", MESSAGES)
        f.error = mflow.Error("Connection refused")
        gw.error(f)
        t.error(f)
    rec = rec_of(t, f)
    assert list(t.state.stats.recent) == [rec]
    assert f"Request {rec.request_id} to OCA failed: Connection refused" in caplog.text


async def test_the_in_flight_entry_is_left_for_keepalive(tmp_path: Path) -> None:
    gw, t = chain(tmp_path)
    with taddons.context(gw, t):
        f = await call(gw)
        t.response(f)
    assert f.id in t.state.inflight


# -- answers oca-proxy gave itself --------------------------------------------------------------


def local(path: str, status: int, body: bytes = b"", method: str = "GET", **kw: Any) -> Any:
    f = api_flow(path, method=method, **kw)
    ctype = "application/json" if body.startswith(b"{") else "text/html"
    f.response = http.Response.make(status, body, {"content-type": ctype})
    return f


def test_a_refusal_by_oca_proxy_is_traced(traffic: tuple[Traffic, Any]) -> None:
    t, _ = traffic
    body = json.dumps({"error": {"message": "Host refused", "code": "forbidden_host"}}).encode()
    f = local("/v1/chat/completions", 403, body, method="POST")
    t.response(f)
    (rec,) = t.state.stats.recent
    assert (rec.route, rec.status, rec.error) == ("refused", 403, "Host refused")


def test_a_refusal_by_oca_proxy_says_so(traffic: tuple[Traffic, Any]) -> None:
    t, _ = traffic
    body = json.dumps({"error": {"message": "Host refused"}}).encode()
    f = local("/v1/chat/completions", 403, body, method="POST")
    t.response(f)
    assert f.comment.endswith("(refused by oca-proxy)") and f.marked == annotate.MARK_REFUSED


def test_a_page_gets_a_comment(traffic: tuple[Traffic, Any]) -> None:
    t, _ = traffic
    f = local("/", 200, b"<html>")
    t.response(f)
    assert f.comment == "oca-proxy page /" and not t.state.stats.recent


def test_the_model_list_gets_a_comment(traffic: tuple[Traffic, Any]) -> None:
    t, _ = traffic
    f = local("/v1/models", 200, b'{"data": []}')
    t.response(f)
    assert f.comment == "models · answered by oca-proxy from OCA's model list"


def test_client_keys_stay_off_local_answers(traffic: tuple[Traffic, Any]) -> None:
    t, _ = traffic
    f = local("/v1/models", 200, b"{}", headers=[("x-api-key", "sk-client-secret")])
    t.response(f)
    assert f.request.headers["x-api-key"] == annotate.REDACTED


def test_mitmproxys_own_refusal_is_traced(traffic: tuple[Traffic, Any]) -> None:
    t, _ = traffic
    f = local("/v1/chat/completions", 413, b"", method="POST")
    f.error = mflow.Error("body too large")
    t.error(f)
    (rec,) = t.state.stats.recent
    assert (rec.status, rec.error) == (413, "body too large")


def test_a_saved_flow_being_read_is_left_as_it_was(traffic: tuple[Traffic, Any]) -> None:
    t, _ = traffic
    f = local("/", 200, b"<html>")
    f.live = False
    t.response(f)
    assert f.comment == ""


# -- replays and options ------------------------------------------------------------------------


def test_a_replay_of_an_oca_request_is_closed_with_ocas_usage(
    traffic: tuple[Traffic, Any],
) -> None:
    t, _ = traffic
    f = local("/20250206/app/litellm/chat/completions", 200, b"", method="POST")
    usage = {"usage": {"prompt_tokens": 11, "completion_tokens": 3}}
    f.response = http.Response.make(200, json.dumps(usage), {"content-type": "application/json"})
    t.state.replays[f.id] = rec = record(route="replay", input_tokens=0, output_tokens=0)
    t.response(f)
    assert (rec.input_tokens, rec.output_tokens) == (11, 3)
    assert f.comment.startswith("replay, as sent to OCA · ")


def test_the_capture_limit_is_copied_for_the_hot_path(traffic: tuple[Traffic, Any]) -> None:
    t, tctx = traffic
    tctx.configure(t, oca_capture_limit=4096)
    assert t.state.capture_limit == 4096
