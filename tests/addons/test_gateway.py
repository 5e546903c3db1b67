"""Gateway on its own, under mitmproxy's test context: what it answers itself (/v1/models,
count_tokens), the request it makes for OCA out of the client's, and OCA's answer (or its
error, or a failed connection) for the client. OCA's side is a ProxyState with a fake
login and the simulator's model list (tests/addons/fakes.py)."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path
from typing import Any

import pytest
from fakes import (
    MODE,
    PREFIX,
    TOKEN,
    State,
    answered,
    api_flow,
    chat_sse,
    forwarded,
    oca_answer,
)
from mitmproxy import flow as mflow
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from oca_addon.addons.gateway import Gateway
from oca_addon.addons.keepalive import Keepalive
from oca_addon.mitm import patches as mitm_patches

CHAT = {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}],
}
SETTINGS = {"model_mapping": {"claude-sonnet-4-6": "oca/gpt-4.1"}}


def gateway(tmp_path: Path, **state: Any) -> Gateway:
    return Gateway(State(tmp_path, settings=SETTINGS, **state))


def body_of(f: http.HTTPFlow) -> Any:
    assert f.response is not None
    return json.loads(f.response.content or b"")


# -- answered by oca-proxy itself ----------------------------------------------------------


async def test_models_are_listed_from_the_catalogue_and_the_mapping(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/models", None, method="GET")
    ids = [m["id"] for m in body_of(f)["data"]]
    assert "oca/gpt-4.1" in ids and "claude-sonnet-4-6" in ids


async def test_models_for_an_anthropic_client_in_its_shape(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        headers = [("anthropic-version", "2023-06-01")]
        f = await forwarded(gw, "/v1/models", None, method="GET", headers=headers)
    assert {m["type"] for m in body_of(f)["data"]} == {"model"}


async def test_models_answered_locally_is_no_call_to_oca(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        await forwarded(gw, "/v1/models", None, method="GET")
    assert gw.state.inflight == {}


async def test_count_tokens_is_answered_locally(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/messages/count_tokens", MESSAGES)
    assert f.response is not None and f.response.status_code == 200
    assert body_of(f)["input_tokens"] > 0


async def test_count_tokens_without_messages_is_an_anthropic_400(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/messages/count_tokens", {"model": "x"})
    body = body_of(f)
    assert f.response is not None and f.response.status_code == 400
    assert (body["type"], body["error"]["type"]) == ("error", "invalid_request_error")


# -- the request for OCA ---------------------------------------------------------------------


async def test_a_chat_call_goes_to_ocas_chat_path(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/chat/completions", CHAT)
    assert f.request.path == PREFIX + "/chat/completions"


async def test_the_token_is_a_placeholder_on_the_flow(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/chat/completions", CHAT)
    assert f.request.headers["authorization"] == mitm_patches.REDACTED
    assert TOKEN not in str(f.request.headers) and TOKEN.encode() not in f.request.raw_content


async def test_the_request_carries_an_opc_request_id_of_its_own(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/chat/completions", CHAT)
    rid = f.request.headers["opc-request-id"]
    assert len(rid) == 32 and gw.state.inflight[f.id].record.request_id == rid


async def test_the_client_names_itself_to_oca(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/chat/completions", CHAT)
    assert f.request.headers["client"] == "oca-addon"


async def test_the_host_is_ocas(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/chat/completions", CHAT)
    assert f.request.headers["host"] == "127.0.0.1:9"


async def test_the_client_asks_buffered_oca_is_asked_to_stream(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/chat/completions", CHAT)
    assert json.loads(f.request.raw_content or b"")["stream"] is True


async def test_a_mapped_anthropic_call_goes_translated_to_chat(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/messages", MESSAGES)
    sent = json.loads(f.request.raw_content or b"")
    assert (f.request.path, sent["model"]) == (PREFIX + "/chat/completions", "oca/gpt-4.1")


async def test_each_forwarded_call_is_in_flight(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/messages", MESSAGES)
    rec = gw.state.inflight[f.id].record
    assert (rec.api, rec.requested_model, rec.target_model) == (
        "messages",
        "claude-sonnet-4-6",
        "oca/gpt-4.1",
    )


async def test_not_logged_in_is_a_401_that_says_where_to_log_in(tmp_path: Path) -> None:
    gw = gateway(tmp_path, token=None)
    with taddons.context(gw) as tctx:
        tctx.options.update(mode=[MODE])
        f = await forwarded(gw, "/v1/chat/completions", CHAT)
    err = body_of(f)["error"]
    assert f.response is not None and f.response.status_code == 401
    assert err["code"] == "login_required" and "/login" in err["message"]


async def test_bad_json_is_a_400_in_the_openai_shape(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = api_flow("/v1/chat/completions")
        f.request.raw_content = b"{nope"
        await gw.request(f)
    assert f.response is not None and f.response.status_code == 400
    assert body_of(f)["error"]["type"] == "invalid_request_error"


async def test_a_bad_body_is_a_400_in_the_anthropic_shape(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/messages", {"model": "claude-sonnet-4-6"})
    body = body_of(f)
    assert f.response is not None and f.response.status_code == 400
    assert (body["type"], body["error"]["type"]) == ("error", "invalid_request_error")


async def test_get_on_an_api_path_is_a_405(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/chat/completions", None, method="GET")
    assert f.response is not None and f.response.status_code == 405


async def test_an_answered_flow_is_left_alone(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = api_flow("/v1/chat/completions", CHAT)
        f.response = tflow.tresp(status_code=403)
        await gw.request(f)
    assert f.response.status_code == 403 and gw.state.inflight == {}


async def test_a_page_is_not_the_gateways(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/dashboard", None, method="GET")
    assert f.response is None and f.request.path == "/dashboard"


# -- OCA's answer -----------------------------------------------------------------------------


async def test_a_buffered_answer_is_assembled_from_ocas_stream(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/chat/completions", CHAT)
        await answered(gw, f, oca_answer(200, chat_sse("Hello"), "text/event-stream"))
    assert body_of(f)["choices"][0]["message"]["content"] == "Hello"


async def test_a_buffered_answer_counts_its_tokens(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/chat/completions", CHAT)
        await answered(gw, f, oca_answer(200, chat_sse(), "text/event-stream"))
    rec = gw.state.inflight[f.id].record
    assert (rec.status, rec.input_tokens, rec.output_tokens) == (200, 7, 2)


async def test_a_translated_buffered_answer_is_in_the_clients_api(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/messages", MESSAGES)
        await answered(gw, f, oca_answer(200, chat_sse("Hi there"), "text/event-stream"))
    body = body_of(f)
    assert (body["type"], body["content"][0]["text"]) == ("message", "Hi there")


async def test_a_streamed_answer_gets_a_translator(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/messages", {**MESSAGES, "stream": True})
        f.response = oca_answer(200, b"", "text/event-stream")
        gw.responseheaders(f)
    assert f.response.stream is gw.state.inflight[f.id].driver is not None
    assert f.response.headers["content-type"] == "text/event-stream; charset=utf-8"


async def test_ocas_error_in_the_openai_shape(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/chat/completions", CHAT)
        oca = json.dumps({"error": {"message": "slow down"}}).encode()
        await answered(gw, f, oca_answer(429, oca, "application/json", **{"retry-after": "3"}))
    assert f.response is not None and f.response.status_code == 429
    assert "OCA answered 429: slow down" in body_of(f)["error"]["message"]


async def test_ocas_retry_after_is_passed_on(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/chat/completions", CHAT)
        oca = json.dumps({"error": {"message": "slow down"}}).encode()
        await answered(gw, f, oca_answer(429, oca, "application/json", **{"retry-after": "3"}))
    assert f.response is not None and f.response.headers["retry-after"] == "3"


async def test_ocas_error_in_the_anthropic_shape(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/messages", MESSAGES)
        oca = json.dumps({"error": {"message": "overloaded"}}).encode()
        await answered(gw, f, oca_answer(529, oca, "application/json"))
    body = body_of(f)
    assert body["type"] == "error" and "overloaded" in body["error"]["message"]


async def test_ocas_401_invalidates_the_token_and_asks_for_a_retry(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/chat/completions", CHAT)
        await answered(gw, f, oca_answer(401, b'{"error": "expired"}', "application/json"))
    assert gw.state.tokens.invalidated == [TOKEN]  # type: ignore[union-attr]
    assert f.response is not None and f.response.headers["x-should-retry"] == "true"


async def test_a_failed_connection_is_recorded(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = await forwarded(gw, "/v1/chat/completions", CHAT)
        f.error = mflow.Error("Connection refused")
        gw.error(f)
    rec = gw.state.inflight[f.id].record
    assert (rec.status, rec.error) == (502, "Connection refused")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_an_answer_to_a_call_not_in_flight_is_left_alone(tmp_path: Path, path: str) -> None:
    gw = gateway(tmp_path)
    with taddons.context(gw):
        f = api_flow(path, CHAT)
        await answered(gw, f, oca_answer(500, b"oops", "text/plain"))
    assert f.response is not None and f.response.content == b"oops"


async def test_a_failed_model_list_read_is_not_repeated_on_every_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OCA's model list could not be read: the next calls route by what is known (chat) and
    do not each ask OCA again first; a while later, or after a new login, it is asked again."""
    from oca_addon.mitm import owncalls
    from oca_addon.mitm import state as state_module
    from oca_addon.mitm.state import ProxyState

    asked: list[str] = []

    async def no_answer(state: Any, path: str, what: str, timeout: float) -> None:
        asked.append(path)
        return None  # OCA did not answer

    monkeypatch.setattr(owncalls, "call_oca", no_answer)
    real = ProxyState()
    real.upstream = State(tmp_path).upstream
    with taddons.context(Keepalive(real)):
        assert await real.catalog("token") is None
        assert await real.catalog("token") is None
        assert asked == ["/v1/model/info"]  # once, not per call
        real._catalog_retry_at -= state_module.CATALOG_RETRY_S + 1  # time passes
        assert await real.catalog("token") is None
        assert len(asked) == 2
        real.forget_catalog()  # a new login, or OCA moved
        assert await real.catalog("token") is None
        assert len(asked) == 3


# -- the garbage collector, paused until the request is sent ---------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [("/v1/messages", json.dumps(MESSAGES).encode()), ("/v1/chat/completions", b"{nope")],
)
async def test_the_collector_waits_until_the_request_is_sent(
    tmp_path: Path, path: str, body: bytes
) -> None:
    """An agent's request makes tens of thousands of objects: a collection they set off runs
    once mitmproxy has written the request (after_send), not before; also when the hook
    answers the call itself (a bad body)."""
    gw = gateway(tmp_path)
    assert gc.isenabled()
    with taddons.context(gw):
        f = api_flow(path)
        f.request.raw_content = body
        await gw.request(f)
        assert not gc.isenabled()  # the hook is done; mitmproxy has not written yet
        for _ in range(2):  # the rounds of the loop in which mitmproxy writes the request
            await asyncio.sleep(0)
        assert gc.isenabled()


async def test_a_collector_paused_by_someone_else_stays_paused(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    gc.disable()
    try:
        with taddons.context(gw):
            await forwarded(gw, "/v1/messages", MESSAGES)
            for _ in range(3):
                await asyncio.sleep(0)
            assert not gc.isenabled()
    finally:
        gc.enable()
