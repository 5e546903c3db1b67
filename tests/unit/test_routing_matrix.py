"""Every client API x every kind of OCA model, in process with the real SDKs.

A fake proxy per cell: the SDK's request goes through `gateway.prepare()` (route and upstream
body checked), a hand-written upstream stream in the API the route reaches (chat, Responses,
Messages) goes through the `StreamDriver` the Exchange builds (or the pass-through tap of a
native stream), or through `Exchange.client_body` for buffered answers, and the SDK reads
what comes out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import sdk_harness
from sdk_harness import Outcome
from upstream_streams import Script, upstream_sse

from oca_addon.core.errors import ApiError, anthropic_error, openai_error
from oca_addon.core.exchange import Exchange, completions_via_chat, prepare
from oca_addon.core.modelinfo import Catalog
from oca_addon.core.routing import Endpoint, plan_route
from oca_addon.core.settings import Settings
from oca_addon.core.streams import PassthroughTap, StreamDriver


def _model(mid: str, apis: list[str] | None, **info: Any) -> dict[str, Any]:
    model_info = {"max_output_tokens": 64000, "is_reasoning_model": True, **info}
    if apis is not None:
        model_info["supported_api_list"] = apis
    return {"model_name": mid.upper(), "litellm_params": {"model": mid}, "model_info": model_info}


EFFORTS = {"reasoning_effort_options": ["low", "medium", "high"]}
CATALOG = Catalog.from_model_info(
    {
        "data": [
            _model("oca/chat-only", ["CHAT_COMPLETIONS"], **EFFORTS),
            _model("oca/codex", ["RESPONSES"], **EFFORTS),
            _model("oca/claude", ["messages"]),  # lower case counts
            _model("oca/both", ["RESPONSES", "CHAT_COMPLETIONS"]),
            _model("oca/no-list", None),
            _model("oca/odd", ["EMBEDDINGS"]),
        ]
    }
)
KINDS = {"chat": "oca/chat-only", "responses": "oca/codex", "messages": "oca/claude"}
CLIENTS = ("chat", "responses", "messages", "completions")
ENDPOINT = {
    "chat": Endpoint.CHAT,
    "responses": Endpoint.RESPONSES,
    "messages": Endpoint.MESSAGES,
    "completions": Endpoint.COMPLETIONS,
}
PATH = {"chat": "/chat/completions", "responses": "/responses", "messages": "/v1/messages"}

# -- the routing table ---------------------------------------------------------------------

# (client, model kind) -> (upstream path, native, adapter)
MATRIX = {
    ("chat", "chat"): ("/chat/completions", True, None),
    ("chat", "responses"): ("/responses", False, "responses"),
    ("chat", "messages"): ("/v1/messages", False, "messages"),
    ("responses", "chat"): ("/chat/completions", False, None),
    ("responses", "responses"): ("/responses", True, None),
    ("responses", "messages"): ("/v1/messages", False, "messages"),
    ("messages", "chat"): ("/chat/completions", False, None),
    ("messages", "responses"): ("/responses", False, "responses"),
    ("messages", "messages"): ("/v1/messages", True, None),
}


@pytest.mark.parametrize(("client", "kind"), sorted(MATRIX))
def test_plan_route_matrix(client: str, kind: str) -> None:
    route = plan_route(ENDPOINT[client], KINDS[kind], CATALOG)
    assert (route.upstream_path, route.native, route.adapter) == MATRIX[client, kind]


@pytest.mark.parametrize("client", ["chat", "responses", "messages"])
@pytest.mark.parametrize("model", ["oca/no-list", "oca/odd", "oca/not-in-the-list"])
def test_no_unknown_or_missing_list_is_refused_it_goes_as_chat(client: str, model: str) -> None:
    route = plan_route(ENDPOINT[client], model, CATALOG)
    assert (route.upstream_path, route.adapter) == ("/chat/completions", None)
    assert plan_route(ENDPOINT[client], model, None).upstream_path == "/chat/completions"


def test_a_model_that_lists_chat_too_is_never_adapted() -> None:
    assert plan_route(Endpoint.CHAT, "oca/both", CATALOG).native
    assert plan_route(Endpoint.MESSAGES, "oca/both", CATALOG).adapter is None


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_completions_go_natively_first_and_retry_translated(kind: str) -> None:
    body = {"model": KINDS[kind], "prompt": "Say hi", "max_tokens": 20}
    ex = prepare(Endpoint.COMPLETIONS, body, Settings(), CATALOG)
    assert (ex.route.upstream_path, ex.route.native) == ("/completions", True)
    retry = completions_via_chat(ex)
    assert retry.route.upstream_path == PATH[kind] and not retry.route.native
    assert retry.route.adapter == (None if kind == "chat" else kind)
    assert "Say hi" in json.dumps(retry.upstream_body)
    assert retry.upstream_body["stream"] is True


def test_messages_adapter_names_the_anthropic_version() -> None:
    body = {"model": "oca/claude", "messages": [{"role": "user", "content": "hi"}]}
    ex = prepare(Endpoint.CHAT, body, Settings(), CATALOG)
    assert ex.upstream_headers == {"anthropic-version": "2023-06-01"}
    assert (
        prepare(Endpoint.CHAT, {**body, "model": "oca/codex"}, Settings(), CATALOG).upstream_headers
        == {}
    )


# -- a fake proxy around prepare() and the stream drivers --------------------------------------


@dataclass
class Proxy:
    client: str
    script: Script
    exchanges: list[Exchange] = field(default_factory=list)

    def __call__(self, request: Any) -> Any:
        body = json.loads(request.content)
        endpoint = ENDPOINT[self.client]
        ex = prepare(endpoint, body, Settings(), CATALOG)
        # OCA refuses legacy /completions here: the one retry, on its API's other route.
        ex = ex.api.retry_elsewhere(ex) or ex
        self.exchanges.append(ex)
        data = upstream_sse(ex.route.upstream_path, self.script)
        response = sdk_harness.http_module(self.client).Response
        if ex.client_stream:
            driver: Any
            if ex.make_translator is None:
                driver = PassthroughTap(1 << 20, lambda m: ex.api.terminal_error(502, m))
            else:
                driver = StreamDriver(ex.make_translator())
            out = [piece for i in range(0, len(data), 37) for piece in driver(data[i : i + 37])]
            out += driver(b"")
            sse_head = {"content-type": "text/event-stream"}
            return response(200, headers=sse_head, content=b"".join(out))
        try:
            return response(200, json=ex.client_body(data))
        except ApiError as e:
            shape = anthropic_error if ex.flavor == "anthropic" else openai_error
            return response(e.status, json=shape(e.status, e.message))


# -- each client's request, in its own words, through its SDK (tests/sdk_harness.py) ---------

TOOL = {"name": "weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}  # fmt: skip
QUESTION = [{"role": "user", "content": "Weather in Paris?"}]


def request(client: str, model: str, stream: bool) -> dict[str, Any]:
    if client == "chat":
        return {"model": model, "messages": QUESTION, "tools": [{"type": "function", "function": TOOL}]}  # fmt: skip
    if client == "responses":
        return {"model": model, "input": "Weather in Paris?", "tools": [{"type": "function", **TOOL}]}  # fmt: skip
    if client == "messages":
        tool = {"name": TOOL["name"], "description": TOOL["description"], "input_schema": TOOL["parameters"]}  # fmt: skip
        return {"model": model, "max_tokens": 2000, "messages": QUESTION, "tools": [tool]}
    usage = {"stream_options": {"include_usage": True}} if stream else {}
    return {"model": model, "prompt": "Weather in Paris?", **usage}


def ask(client: str, kind: str, script: Script, stream: bool) -> tuple[Outcome, Proxy]:
    proxy = Proxy(client, script)
    sdk = sdk_harness.client(client, "http://proxy.test", proxy)
    return sdk_harness.ask(client, sdk, stream, **request(client, KINDS[kind], stream)), proxy


# -- the cells -------------------------------------------------------------------------------

CELLS = [(c, k) for c in CLIENTS for k in KINDS]
TEXT = Script(reasoning="Think first.", text="Hello world")
TOOLS = Script(
    reasoning="Think first.",
    text="Looking.",
    calls=[("call_a", "weather", {"city": "Paris"}), ("call_b", "weather", {"city": "Lyon"})],
    finish="tool_calls",
)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "buffered"])
@pytest.mark.parametrize(("client", "kind"), CELLS)
def test_text_reasoning_and_usage(client: str, kind: str, stream: bool) -> None:
    outcome, proxy = ask(client, kind, TEXT, stream)
    (ex,) = proxy.exchanges
    assert ex.route.upstream_path == PATH[kind]  # the model's own API, or chat
    assert ex.upstream_body["model"] == KINDS[kind] and ex.upstream_body["stream"] is True
    assert outcome.error == ""
    assert outcome.text == "Hello world"
    # Legacy completions has no place for reasoning; every other client gets it.
    assert outcome.reasoning == ("" if client == "completions" else "Think first.")
    assert outcome.finish == "stop"
    cached = 0 if client == "completions" else 4  # legacy usage has no cache details
    assert outcome.usage == (10, 5, cached)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "buffered"])
@pytest.mark.parametrize(("client", "kind"), [c for c in CELLS if c[0] != "completions"])
def test_parallel_tool_calls(client: str, kind: str, stream: bool) -> None:
    outcome, _ = ask(client, kind, TOOLS, stream)
    assert outcome.error == ""
    assert outcome.text == "Looking."
    assert outcome.calls == [
        ("call_a", "weather", {"city": "Paris"}),
        ("call_b", "weather", {"city": "Lyon"}),
    ]
    assert outcome.finish == "tool_calls"


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "buffered"])
@pytest.mark.parametrize(("client", "kind"), CELLS)
def test_length_stop(client: str, kind: str, stream: bool) -> None:
    outcome, _ = ask(client, kind, Script(text="Hello wo", finish="length"), stream)
    assert (outcome.text, outcome.finish) == ("Hello wo", "length")


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "buffered"])
@pytest.mark.parametrize(("client", "kind"), CELLS)
def test_upstream_error_in_the_clients_shape(client: str, kind: str, stream: bool) -> None:
    outcome, _ = ask(client, kind, Script(text="Hi", error=(429, "slow down")), stream)
    assert "slow down" in outcome.error
    if not stream and (client, kind) != ("responses", "responses"):
        # The status of the error, for the SDK's retry logic (a native Responses answer
        # is a `failed` response object instead, as OCA's own would be).
        assert "429" in outcome.error


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "buffered"])
@pytest.mark.parametrize(("client", "kind"), [c for c in CELLS if c[1] != "chat"])
def test_a_stream_cut_short_is_an_error(client: str, kind: str, stream: bool) -> None:
    outcome, _ = ask(client, kind, Script(text="Hi", cut=True), stream)
    assert "ended before" in outcome.error


# -- what the requests carry upstream: images, tool results, reasoning ------------------------

PNG = "iVBORw0KGgo="
HISTORY = {
    "chat": {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": [{"type": "function", "function": TOOL}],
    },
    "responses": {
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                                         {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"}]},
            {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ],
        "tools": [{"type": "function", **TOOL}],
    },
    "messages": {
        "max_tokens": 1000,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}]},
        ],
        "tools": [{"name": "weather", "input_schema": TOOL["parameters"]}],
    },
}  # fmt: skip


def image_and_result(path: str, body: dict[str, Any]) -> tuple[str, str]:
    """(the image's base64 data, the tool result's text) as the upstream body carries them."""
    image = result = ""
    if path == "/chat/completions":
        for m in body["messages"]:
            for p in m["content"] if isinstance(m.get("content"), list) else ():
                if p.get("type") == "image_url":
                    image = p["image_url"]["url"].split(",")[1]
            if m["role"] == "tool":
                result = f"{m['tool_call_id']}:{m['content']}"
    elif path == "/responses":
        for item in body["input"]:
            for p in item.get("content") or () if isinstance(item.get("content"), list) else ():
                if p.get("type") == "input_image":
                    image = p["image_url"].split(",")[1]
            if item.get("type") == "function_call_output":
                result = f"{item['call_id']}:{item['output']}"
    else:
        for m in body["messages"]:
            for b in m["content"] if isinstance(m["content"], list) else ():
                if b["type"] == "image":
                    image = b["source"]["data"]
                if b["type"] == "tool_result":
                    result = f"{b['tool_use_id']}:{b['content']}"
    return image, result


@pytest.mark.parametrize(("client", "kind"), [c for c in CELLS if c[0] != "completions"])
def test_images_and_tool_results_reach_every_kind(client: str, kind: str) -> None:
    body = {"model": KINDS[kind], **HISTORY[client]}
    ex = prepare(ENDPOINT[client], body, Settings(), CATALOG)
    assert image_and_result(ex.route.upstream_path, ex.upstream_body) == (PNG, "call_1:sunny")


REASONING_ASKED = {
    "chat": {"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "high"},
    "responses": {"input": "hi", "reasoning": {"effort": "high"}},
    "messages": {"max_tokens": 30000, "messages": [{"role": "user", "content": "hi"}],
                 "thinking": {"type": "enabled", "budget_tokens": 20000}},
}  # fmt: skip


@pytest.mark.parametrize(("client", "kind"), [c for c in CELLS if c[0] != "completions"])
def test_reasoning_asked_reaches_every_kind(client: str, kind: str) -> None:
    body = {"model": KINDS[kind], **REASONING_ASKED[client]}
    ex = prepare(ENDPOINT[client], body, Settings(), CATALOG)
    up = ex.upstream_body
    if ex.route.upstream_path == "/chat/completions":
        assert up["reasoning_effort"] == "high"
    elif ex.route.upstream_path == "/responses":
        assert up["reasoning"]["effort"] == "high"
    elif ex.route.native:  # the client's own thinking budget, as sent
        assert up["thinking"] == {"type": "enabled", "budget_tokens": 20000}
    else:
        assert up["thinking"]["type"] == "enabled" and up["thinking"]["budget_tokens"] >= 1024
