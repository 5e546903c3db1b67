"""The routing matrix end to end: every client API (chat, Responses, Messages, legacy
completions) x every kind of OCA model (chat-only, Responses-only, Messages-only), through a
real mitmdump in front of the simulator, with the real `openai` and `anthropic` SDKs.

Each cell is asked streamed and buffered: text with reasoning asked for, parallel tool calls
then their results (with an image) in a second turn, a length stop, an upstream 429. The
simulator's recorded requests tell which OCA path each cell used: a model that lists the
client's API is reached natively, the others through chat or an upstream adapter. With the
simulator's `rejects_unlisted_api` guess on, OCA refuses every other path, so an answer at
all proves the route.

The module has its own simulator, serving the catalogue plus one test-only entry: no
chat-only model of the catalogue takes images or reasoning efforts (oca/grok3, oca/llama-4),
and the cells need both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import sdk_harness
from conftest import Proxy, Sim, start_proxy, start_sim
from sdk_harness import Outcome

from oca_addon.sim.models import model_info_payload

CHAT_ONLY = {
    "model_name": "Chat-only vision reasoner (test entry)",
    "litellm_params": {"model": "oca/chat-vision", "max_tokens": 16000},
    "model_info": {
        "context_window": 131072,
        "max_output_tokens": 16000,
        "supports_vision": True,
        "is_reasoning_model": True,
        "reasoning_effort_options": ["low", "medium", "high"],
        "supported_api_list": ["CHAT_COMPLETIONS"],
    },
}
KINDS = {"chat": "oca/chat-vision", "responses": "oca/gpt-5-codex", "messages": "oca/claude-opus-4"}
PATH = {"chat": "/chat/completions", "responses": "/responses", "messages": "/v1/messages"}
CLIENTS = ("chat", "responses", "messages", "completions")
CELLS = [(c, k) for c in CLIENTS for k in KINDS]
TOOL_CELLS = [(c, k) for c, k in CELLS if c != "completions"]  # legacy has no tools
STREAM = pytest.mark.parametrize("stream", [True, False], ids=["stream", "buffered"])
# A real 1x1 PNG.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="  # fmt: skip
TOOLS = [
    ("weather", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    ("clock", {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}),
]  # fmt: skip
EFFORTS = ("low", "medium", "high")


@dataclass
class Rig:
    sim: Sim
    proxy: Proxy

    def upstream(self, marker: str) -> list[dict[str, Any]]:
        """The model calls OCA received whose body holds the marker, oldest first."""
        reqs = httpx.get(f"{self.sim.url}/__sim/requests", timeout=10).json()
        return [
            r
            for r in reqs
            if r["method"] == "POST"
            and r["path"].endswith(("/chat/completions", "/responses", "/messages", "/completions"))
            and marker in json.dumps(r["body"])
        ]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    home = tmp_path_factory.mktemp("matrix")
    payload = model_info_payload()
    payload["data"].append(CHAT_ONLY)
    (home / "model_info.json").write_text(json.dumps(payload))
    sim = start_sim("--model-info", str(home / "model_info.json"), "--recent-requests", "400")
    # Whatever OCA_SIM_GUESSES says: legacy completions go the retry way unless a test says.
    sim.config(serves_completions=False)
    proxy = start_proxy(sim, home / "proxy")
    yield Rig(sim, proxy)
    proxy.stop()
    sim.proc.terminate()
    sim.proc.wait(10)


# -- the requests, in each client's own words ---------------------------------------------


@dataclass
class Turn:
    text: str
    image: bool = False
    tools: bool = False
    reasoning: bool = False
    # A second turn: the model's calls (id, name, args) and their results, in order.
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    results: list[str] = field(default_factory=list)


def chat_body(t: Turn) -> dict[str, Any]:
    content: Any = t.text
    if t.image:
        url = f"data:image/png;base64,{PNG}"
        content = [{"type": "text", "text": t.text}, {"type": "image_url", "image_url": {"url": url}}]  # fmt: skip
    messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
    if t.calls:
        tool_calls = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, n, a in t.calls
        ]
        messages.append({"role": "assistant", "content": None, "tool_calls": tool_calls})
        messages += [
            {"role": "tool", "tool_call_id": i, "content": r}
            for (i, _, _), r in zip(t.calls, t.results, strict=True)
        ]
    body: dict[str, Any] = {"messages": messages}
    if t.tools:
        body["tools"] = [
            {"type": "function", "function": {"name": n, "description": n, "parameters": p}}
            for n, p in TOOLS
        ]
    if t.reasoning:
        body["reasoning_effort"] = "high"
    return body


def responses_body(t: Turn) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "input_text", "text": t.text}]
    if t.image:
        content.append({"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"})
    items: list[dict[str, Any]] = [{"role": "user", "content": content}]
    items += [
        {"type": "function_call", "call_id": i, "name": n, "arguments": json.dumps(a)}
        for i, n, a in t.calls
    ]
    items += [
        {"type": "function_call_output", "call_id": i, "output": r}
        for (i, _, _), r in zip(t.calls, t.results, strict=True)
    ]
    body: dict[str, Any] = {"input": items}
    if t.tools:
        body["tools"] = [
            {"type": "function", "name": n, "description": n, "parameters": p} for n, p in TOOLS
        ]
    if t.reasoning:
        body["reasoning"] = {"effort": "high", "summary": "auto"}
    return body


def messages_body(t: Turn) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": t.text}]
    if t.image:
        source = {"type": "base64", "media_type": "image/png", "data": PNG}
        content.append({"type": "image", "source": source})
    messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
    if t.calls:
        uses = [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in t.calls]
        messages.append({"role": "assistant", "content": uses})
        results = [
            {"type": "tool_result", "tool_use_id": i, "content": r}
            for (i, _, _), r in zip(t.calls, t.results, strict=True)
        ]
        messages.append({"role": "user", "content": results})
    body: dict[str, Any] = {"max_tokens": 8000, "messages": messages}
    if t.tools:
        body["tools"] = [{"name": n, "description": n, "input_schema": p} for n, p in TOOLS]
    if t.reasoning:
        body["thinking"] = {"type": "enabled", "budget_tokens": 2048}
    return body


# -- through each client's SDK (tests/sdk_harness.py) -----------------------------------------

BODY = {"chat": chat_body, "responses": responses_body, "messages": messages_body}


def ask(
    rig: Rig, client: str, kind: str, t: Turn, stream: bool, model: str | None = None
) -> Outcome:
    request: dict[str, Any] = {"model": model or KINDS[kind]}
    if client == "completions":
        request |= {"prompt": t.text, "max_tokens": 500}
    else:
        request |= BODY[client](t)
    if stream and client in ("chat", "completions"):
        request["stream_options"] = {"include_usage": True}
    out = sdk_harness.ask(client, sdk_harness.client(client, rig.proxy.url), stream, **request)
    # No HTTP error, yet no whole answer (a failed response, a stream with no end): that
    # fails the test here, whatever it expects.
    assert out.status or not out.error, out.error
    return out


def marker(request: pytest.FixtureRequest) -> str:
    """A word unique to the test, to find its requests among those OCA recorded."""
    return "m" + format(abs(hash(request.node.nodeid)), "x")[:12]


def upstream_paths(calls: list[dict[str, Any]]) -> list[str]:
    return [next(p for p in (*PATH.values(), "/completions") if c["path"].endswith(p)) for c in calls]  # fmt: skip


def expected_paths(client: str, kind: str) -> list[str]:
    # Legacy completions: natively first (refused here: serves_completions off), then the
    # one retry through chat or the model's adapter.
    return ["/completions", PATH[kind]] if client == "completions" else [PATH[kind]]


def reasoning_asked(path: str, body: dict[str, Any]) -> bool:
    """Does the OCA request ask for reasoning, in the form of the API it goes to?"""
    if path == "/chat/completions":
        return body.get("reasoning_effort") in EFFORTS
    if path == "/responses":
        return body.get("reasoning", {}).get("effort") in EFFORTS
    thinking = body.get("thinking") or {}
    return thinking.get("type") == "enabled" and thinking.get("budget_tokens", 0) >= 1024


# -- the cells ----------------------------------------------------------------------------------


@STREAM
@pytest.mark.parametrize(("client", "kind"), CELLS)
def test_text_reasoning_usage(
    rig: Rig, request: pytest.FixtureRequest, client: str, kind: str, stream: bool
) -> None:
    word = marker(request)
    out = ask(rig, client, kind, Turn(f"Say hi {word}", reasoning=True), stream)
    assert out.status == 0, out.error
    assert out.text == f"Hello from the OCA simulator ({KINDS[kind]}). You said: Say hi {word}"
    assert out.finish == "stop"
    assert out.usage[0] > 0 and out.usage[1] > 0
    calls = rig.upstream(word)
    assert upstream_paths(calls) == expected_paths(client, kind)
    last = calls[-1]["body"]
    assert last["model"] == KINDS[kind] and last["stream"] is True
    if client == "completions":
        assert out.reasoning == ""  # legacy completions has no place for it
        return
    # Reasoning asked in the client's form reaches OCA in the form of the API it goes to,
    # and the model's reasoning comes back in the client's form.
    assert reasoning_asked(PATH[kind], last), last
    assert out.reasoning.startswith("Thinking about"), out


@STREAM
@pytest.mark.parametrize(("client", "kind"), TOOL_CELLS)
def test_parallel_tool_calls_then_results_with_an_image(
    rig: Rig, request: pytest.FixtureRequest, client: str, kind: str, stream: bool
) -> None:
    word = marker(request)
    first = Turn(f"Look {word} SIM:parallel", image=True, tools=True)
    out = ask(rig, client, kind, first, stream)
    assert out.status == 0, out.error
    assert out.finish == "tool_calls"
    assert [(name, args) for _, name, args in out.calls] == [
        ("weather", {"city": "sim"}),
        ("clock", {"zone": "sim"}),
    ]
    ids = [i for i, _, _ in out.calls]
    assert len(set(ids)) == 2 and all(ids)

    results = [f"sunny-{word}", f"noon-{word}"]
    second = Turn(first.text, image=True, tools=True, calls=out.calls, results=results)
    out2 = ask(rig, client, kind, second, stream)
    assert out2.status == 0, out2.error
    assert out2.text.startswith("Tool result received: ") and word in out2.text
    assert out2.finish == "stop" and not out2.calls

    calls = rig.upstream(word)
    assert upstream_paths(calls) == [PATH[kind]] * 2
    body = calls[-1]["body"]
    # OCA gets the image and both results, each paired with its call, in its own API's form.
    image, paired = image_and_results(PATH[kind], body)
    assert image == PNG
    assert paired == list(zip(ids, results, strict=True))


def image_and_results(path: str, body: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """(the image's base64 data, [(call id, result text)]) as the OCA request carries them,
    each result's call id checked against the calls the request holds."""
    image, paired, call_ids = "", [], set()
    if path == "/chat/completions":
        for m in body["messages"]:
            for p in m["content"] if isinstance(m.get("content"), list) else ():
                if p.get("type") == "image_url":
                    image = p["image_url"]["url"].split(",")[1]
            call_ids |= {c["id"] for c in m.get("tool_calls") or ()}
            if m["role"] == "tool":
                paired.append((m["tool_call_id"], m["content"]))
    elif path == "/responses":
        for item in body["input"]:
            for p in item["content"] if isinstance(item.get("content"), list) else ():
                if p.get("type") == "input_image":
                    image = p["image_url"].split(",")[1]
            if item.get("type") == "function_call":
                call_ids.add(item["call_id"])
            if item.get("type") == "function_call_output":
                paired.append((item["call_id"], item["output"]))
    else:
        for m in body["messages"]:
            for b in m["content"] if isinstance(m["content"], list) else ():
                if b["type"] == "image":
                    image = b["source"]["data"]
                if b["type"] == "tool_use":
                    call_ids.add(b["id"])
                if b["type"] == "tool_result":
                    text = b["content"]
                    if isinstance(text, list):
                        text = "".join(x.get("text", "") for x in text)
                    paired.append((b["tool_use_id"], text))
    assert {i for i, _ in paired} <= call_ids, (paired, call_ids)
    return image, paired


@STREAM
@pytest.mark.parametrize(("client", "kind"), CELLS)
def test_length_stop(
    rig: Rig, request: pytest.FixtureRequest, client: str, kind: str, stream: bool
) -> None:
    word = marker(request)
    out = ask(rig, client, kind, Turn(f"Go on {word} SIM:length"), stream)
    assert out.status == 0, out.error
    assert out.finish == "length" and word in out.text
    assert upstream_paths(rig.upstream(word)) == expected_paths(client, kind)


@STREAM
@pytest.mark.parametrize(("client", "kind"), CELLS)
def test_upstream_error_in_the_clients_shape(
    rig: Rig, request: pytest.FixtureRequest, client: str, kind: str, stream: bool
) -> None:
    word = marker(request)
    out = ask(rig, client, kind, Turn(f"Fail {word} SIM:error=429"), stream)
    assert out.status == 429, out
    if client == "messages":
        assert out.body["type"] == "error"
        assert out.body["error"]["type"] == "rate_limit_error"
        message = out.body["error"]["message"]
    else:  # the SDK reads OpenAI's {"error": {...}} envelope
        assert isinstance(out.body, dict) and isinstance(out.body.get("type"), str), out.body
        message = out.body["message"]
    assert "Simulated upstream error 429" in message
    assert upstream_paths(rig.upstream(word)) == expected_paths(client, kind)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_completions_served_natively_stay_native(
    rig: Rig, request: pytest.FixtureRequest, kind: str
) -> None:
    """Where OCA serves /completions for a model, no retry goes elsewhere."""
    rig.sim.config(serves_completions=True)
    try:
        word = marker(request)
        out = ask(rig, "completions", kind, Turn(f"Native {word}"), stream=True)
    finally:
        rig.sim.config(serves_completions=False)
    assert out.status == 0 and word in out.text and out.finish == "stop"
    assert upstream_paths(rig.upstream(word)) == ["/completions"]


@pytest.mark.parametrize("client", CLIENTS)
def test_catalogue_chat_only_model(rig: Rig, request: pytest.FixtureRequest, client: str) -> None:
    """oca/grok3 as public fixtures show it (chat only, no reasoning): the same routes."""
    word = marker(request)
    sdk_turn = Turn(f"Hi grok {word}")
    out = ask(rig, client, "chat", sdk_turn, stream=True, model="oca/grok3")
    assert out.status == 0, out.error
    assert out.text == f"Hello from the OCA simulator (oca/grok3). You said: Hi grok {word}"
    assert out.reasoning == "" and out.finish == "stop"
    assert upstream_paths(rig.upstream(word)) == expected_paths(client, "chat")
