"""Seeing the traffic: real mitmdump / mitmweb processes in front of the simulator, their
saved flows (-w) read back with mitmproxy's own reader, and mitmweb's own API.

Every API call must leave: a one-line comment (and a mark when it failed), what the client
sent before mapping/translation (metadata), what went to OCA (the request), what OCA
answered (metadata), what the client received (the response; streams kept after the end),
and no token anywhere.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from conftest import PREFIX, Proxy, free_port
from mitmproxy import http
from mitmproxy import io as mitm_io

from oca_addon.mitm import contentview

SETTINGS = {
    "model_mapping": {
        "claude-sonnet-4-6": "oca/gpt-4.1",
        "native-claude": "oca/claude-sonnet-4",
    },
    "default_model": "oca/gpt-4.1",
}
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
# A client's own credentials (it may hold real keys for other services): never saved.
CLIENT_SECRETS = {"authorization": "Bearer sk-client-secret-123", "x-api-key": "sk-ant-client-456"}


def read_flows(path: Path) -> list[http.HTTPFlow]:
    with path.open("rb") as f:
        return [fl for fl in mitm_io.FlowReader(f).stream() if isinstance(fl, http.HTTPFlow)]


def run_traffic(proxy: Proxy) -> None:
    oa = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-client-secret-123", max_retries=0)
    an = anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-client-456", max_retries=0)
    # chat, buffered and streamed (with parallel tool calls)
    oa.chat.completions.create(
        model="oca/gpt-4.1", messages=[{"role": "user", "content": "plain chat"}]
    )
    list(
        oa.chat.completions.create(
            model="oca/gpt-4.1",
            stream=True,
            messages=[{"role": "user", "content": "weather and time SIM:parallel"}],
            tools=[
                {"type": "function", "function": {"name": n, "parameters": WEATHER["input_schema"]}}
                for n in ("get_weather", "get_time")
            ],
        )
    )
    # Anthropic, translated to chat: streamed with reasoning and a tool call, and buffered
    with an.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=200,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            {
                "role": "user",
                "content": 'weather? SIM:reasoning SIM:tool=get_weather SIM:args={"city":"Oslo"}',
            }
        ],
    ) as s:
        s.get_final_message()
    an.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=[{"role": "user", "content": "anthropic buffered"}],
    )
    # Anthropic native (the OCA model speaks Messages)
    with an.messages.stream(
        model="native-claude",
        max_tokens=100,
        messages=[{"role": "user", "content": "native anthropic"}],
    ) as s:
        s.get_final_message()
    # Responses: native (gpt-5) and translated to chat (grok3, chat only)
    list(
        oa.responses.create(
            model="oca/gpt-5",
            input="responses native SIM:tool=lookup",
            tools=[{"type": "function", "name": "lookup", "parameters": WEATHER["input_schema"]}],
            stream=True,
        )
    )
    list(oa.responses.create(model="oca/grok3", input="responses translated", stream=True))
    # failures: OCA refuses, a stream breaks, the proxy refuses
    with pytest.raises(openai.RateLimitError):
        oa.chat.completions.create(
            model="oca/gpt-4.1", messages=[{"role": "user", "content": "SIM:error=429"}]
        )
    httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={
            "model": "oca/gpt-4.1",
            "stream": True,
            "messages": [{"role": "user", "content": "SIM:cut"}],
        },
        headers=CLIENT_SECRETS,
        timeout=30,
    )
    r = httpx.post(
        f"{proxy.url}/v1/chat/completions", content=b"{nope", headers=CLIENT_SECRETS, timeout=10
    )
    assert r.status_code in (400, 415)


def by_client_path(flows: list[http.HTTPFlow]) -> list[tuple[str, str, http.HTTPFlow]]:
    out = []
    for fl in flows:
        meta = fl.metadata.get("oca") or {}
        client = meta.get("client_request") or {}
        body = json.loads(client["body"]) if client.get("body") else {}
        out.append(
            (client.get("path", ""), json.dumps(body.get("messages") or body.get("input")), fl)
        )
    return out


def find(flows: list[http.HTTPFlow], path: str, text: str) -> http.HTTPFlow:
    for client_path, said, fl in by_client_path(flows):
        if client_path.startswith(path) and text in said:
            return fl
    raise AssertionError(f"no flow for {path} saying {text!r}")


@pytest.fixture(scope="module")
def saved(sim: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from conftest import start_proxy

    home = tmp_path_factory.mktemp("traffic")
    flow_file = home / "flows.mitm"
    proxy = start_proxy(sim, home, settings=SETTINGS, mitm_args=["-w", str(flow_file)])
    first_refresh_token = json.loads(proxy.token_file.read_text())["refresh_token"]
    try:
        run_traffic(proxy)
    finally:
        proxy.stop()
    return {
        "flows": read_flows(flow_file),
        "raw": flow_file.read_bytes(),
        "refresh_tokens": [
            first_refresh_token,
            json.loads(proxy.token_file.read_text())["refresh_token"],
        ],
        "log": proxy.log(),
        "proxy": proxy,
    }


def test_every_api_call_has_a_comment(saved: dict[str, Any]) -> None:
    api = [fl for fl in saved["flows"] if fl.request.path.startswith(PREFIX)]
    assert len(api) >= 9
    for fl in api:
        assert fl.comment, fl.request.path
        assert " · " in fl.comment
    fl = find(saved["flows"], "/v1/messages", "SIM:tool=get_weather")
    assert fl.comment.startswith("anthropic → chat · claude-sonnet-4-6 → oca/gpt-4.1 · ")
    assert re.search(r"· \d[\d,]* in / \d[\d,]* out · ", fl.comment)
    assert "streamed" in fl.comment
    assert not fl.marked
    native = find(saved["flows"], "/v1/messages", "native anthropic")
    assert native.comment.startswith("anthropic · native-claude → oca/claude-sonnet-4 · ")
    assert find(saved["flows"], "/v1/responses", "responses translated").comment.startswith(
        "responses → chat · oca/grok3"
    )
    # mitmdump's output has the same line
    assert "anthropic → chat · claude-sonnet-4-6 → oca/gpt-4.1" in saved["log"]


def test_failures_are_marked(saved: dict[str, Any]) -> None:
    flows = saved["flows"]
    limited = find(flows, "/v1/chat/completions", "SIM:error=429")
    assert limited.marked and "✗ 429" in limited.comment
    assert limited.metadata["oca"]["oca_response"]["status_code"] == 429
    assert "Simulated upstream error 429" in limited.metadata["oca"]["oca_response"]["body"]
    cut = find(flows, "/v1/chat/completions", "SIM:cut")
    assert cut.marked == ":red_circle:" and "✗ failed: " in cut.comment, cut.comment
    assert contentview.assemble(cut.response.content or b"") is not None  # what did arrive
    refused = [fl for fl in flows if fl.request.path == "/v1/chat/completions"]
    assert refused and refused[0].marked and "refused by oca-proxy" in refused[0].comment
    ok = find(flows, "/v1/chat/completions", "plain chat")
    assert not ok.marked


def test_client_request_and_oca_request_are_both_kept(saved: dict[str, Any]) -> None:
    fl = find(saved["flows"], "/v1/messages", "SIM:tool=get_weather")
    client = fl.metadata["oca"]["client_request"]
    assert client["method"] == "POST" and client["path"].startswith("/v1/messages")
    sent = json.loads(client["body"])
    assert sent["model"] == "claude-sonnet-4-6" and sent["tools"][0]["input_schema"]
    assert not client["truncated"]
    headers = {k.lower(): v for k, v in client["headers"]}
    key = headers.get("x-api-key") or headers.get("authorization")  # as the SDK sends it
    assert key == "<redacted>" and "anthropic-version" in headers
    # flow.request is what went to OCA: mapped and translated
    assert fl.request.path == PREFIX + "/chat/completions"
    upstream = json.loads(fl.request.content or b"")
    assert upstream["model"] == "oca/gpt-4.1" and upstream["stream"] is True
    assert upstream["tools"][0]["type"] == "function"


def test_streamed_bodies_are_kept(saved: dict[str, Any]) -> None:
    flows = saved["flows"]
    fl = find(flows, "/v1/messages", "SIM:tool=get_weather")
    received = (fl.response.content or b"").decode()  # what the client received
    assert "event: message_start" in received and "event: message_stop" in received
    assert '"get_weather"' in received
    oca = fl.metadata["oca"]["oca_response"]  # what OCA answered: chat chunks
    assert oca["status_code"] == 200 and "chat.completion.chunk" in oca["body"]
    assert not oca["truncated"] and fl.metadata["oca"]["client_response"]["streamed"]
    # The assembled views say what happened, with the complete tool arguments.
    got = contentview.assemble(fl.response.content or b"")
    assert got is not None and got.kind == "anthropic"
    assert got.tool_calls[0].name == "get_weather"
    assert json.loads(got.tool_calls[0].text) == {"city": "Oslo"}
    assert got.reasoning and got.complete
    upstream = contentview.assemble(oca["body"].encode())
    assert upstream is not None and upstream.kind == "chat"
    assert json.loads(upstream.tool_calls[0].text) == {"city": "Oslo"}

    chat = find(flows, "/v1/chat/completions", "SIM:parallel")
    got = contentview.assemble(chat.response.content or b"")
    assert got is not None and [c.name for c in got.tool_calls] == ["get_weather", "get_time"]
    assert got.usage and got.complete

    resp = find(flows, "/v1/responses", "responses native")
    got = contentview.assemble(resp.response.content or b"")
    assert got is not None and got.kind == "responses" and got.complete
    assert got.tool_calls[0].name == "lookup"
    translated = find(flows, "/v1/responses", "responses translated")
    got = contentview.assemble(translated.response.content or b"")
    assert got is not None and "You said: responses translated" in got.text
    assert "chat.completion.chunk" in translated.metadata["oca"]["oca_response"]["body"]

    buffered = find(flows, "/v1/messages", "anthropic buffered")
    assert json.loads(buffered.response.content or b"")["type"] == "message"
    assert "chat.completion.chunk" in buffered.metadata["oca"]["oca_response"]["body"]


def test_no_token_anywhere_in_the_flow_file(saved: dict[str, Any]) -> None:
    raw: bytes = saved["raw"]
    for token in saved["refresh_tokens"]:
        assert token.encode() not in raw
    assert b"sim-at-" not in raw  # the simulator's access tokens all start so
    assert b"sim-rt-" not in raw
    for secret in ("sk-client-secret-123", "sk-ant-client-456"):
        assert secret.encode() not in raw
    bearers = set(re.findall(rb"Bearer [^\s\"',\\]*", raw))
    assert bearers <= {b"Bearer <redacted>"}, bearers
    for fl in saved["flows"]:
        if fl.request.path.startswith(PREFIX):
            assert fl.request.headers["authorization"] == "Bearer <redacted>"
    assert "sim-at-" not in saved["log"] and "Bearer sim" not in saved["log"]


def test_capture_limit_bounds_what_is_kept(proxy_factory: Any, tmp_path: Path) -> None:
    flow_file = tmp_path / "small.mitm"
    proxy = proxy_factory(
        settings=SETTINGS, options={"oca_capture_limit": "600"}, mitm_args=["-w", str(flow_file)]
    )
    long_text = "x" * 2000
    with anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0).messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=[{"role": "user", "content": f"SIM:chunks=60 {long_text}"}],
    ) as s:
        final = s.get_final_message()
    assert final.content[0].text  # the client got the whole answer
    proxy.stop()
    fl = read_flows(flow_file)[-1]
    meta = fl.metadata["oca"]
    assert len(fl.response.content or b"") == 600
    assert meta["client_response"]["truncated"] and meta["client_response"]["size"] > 600
    assert meta["oca_response"]["truncated"] and meta["oca_response"]["kept"] == 600
    assert meta["client_request"]["truncated"] and meta["client_request"]["size"] > 2000
    assert len(meta["client_request"]["body"]) == 600
    text = contentview.render_response(
        fl.response.content or b"", "text/event-stream", meta, fl.response.status_code
    )
    assert "raise the oca_capture_limit option" in text


def test_mitmweb_shows_comments_views_and_no_token(proxy_factory: Any, tmp_path: Path) -> None:
    web_port = free_port()
    proxy = proxy_factory(
        settings=SETTINGS,
        program="mitmweb",
        options={"web_port": str(web_port), "web_open_browser": "false", "web_password": "pw"},
    )
    an = anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0)
    with an.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": 'SIM:tool=get_weather SIM:args={"city":"Rome"}'}],
    ) as s:
        s.get_final_message()
    web = f"http://127.0.0.1:{web_port}"
    flows = httpx.get(f"{web}/flows", params={"token": "pw"}, timeout=10).json()
    api = [f for f in flows if f["request"]["path"].startswith(PREFIX + "/chat")]
    assert api and api[-1]["comment"].startswith("anthropic → chat · claude-sonnet-4-6")
    assert "sim-at-" not in json.dumps(flows)
    headers = dict(api[-1]["request"]["headers"])
    assert headers["authorization"] == "Bearer <redacted>"
    fid = api[-1]["id"]
    view = httpx.get(
        f"{web}/flows/{fid}/response/content/auto.json", params={"token": "pw"}, timeout=10
    ).json()
    assert view["view_name"] == "OCA"
    assert "tool call 1: get_weather" in view["text"] and '"city": "Rome"' in view["text"]
    assert "what OCA answered" in view["text"]
    req_view = httpx.get(
        f"{web}/flows/{fid}/request/content/auto.json", params={"token": "pw"}, timeout=10
    ).json()
    assert "what the client sent: POST /v1/messages" in req_view["text"]
    assert "what went to OCA: POST " + PREFIX + "/chat/completions" in req_view["text"]
    options = httpx.get(f"{web}/options", params={"token": "pw"}, timeout=10).json()
    assert "comment" in options["web_columns"]["value"]
    state = httpx.get(f"{proxy.url}/api/state", timeout=10).json()
    assert state["urls"]["mitmweb"] == f"http://127.0.0.1:{web_port}/"
