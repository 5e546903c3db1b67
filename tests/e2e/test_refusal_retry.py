"""Issue 22: a proxy that learns from OCA's refusals, end to end.

A real mitmdump in front of the simulator, whose `refusals` knob makes models refuse what
their list entry does not announce (a parameter, an effort the list offers, output tokens
the list allows), in LiteLLM's words. On every route (native chat, Responses and Messages,
the translations to chat, both upstream adapters, legacy completions), streamed and not,
with the real `openai` and `anthropic` SDKs:
- the client gets its 200, the first call costs exactly one extra upstream call, and the
  next call none (what was learned is applied before sending);
- a second refusal goes to the client with both of OCA's messages;
- what was learned shows on /health, can be forgotten (CSRF-protected), survives a restart
  and is not used when learning is off.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from conftest import PREFIX, Proxy, Sim, free_port, start_proxy, start_sim

SETTINGS = {
    "model_mapping": {
        "claude-sonnet-4-6": "oca/gpt-4.1",
        "claude-effort": {"target": "oca/gpt-5", "reasoning_effort": "medium"},
    },
    "default_model": "oca/gpt-4.1",
}


@dataclass(frozen=True)
class Route:
    """A client API reaching an OCA model: natively, via chat, or through an adapter."""

    id: str
    client: str  # chat | responses | messages | completions
    model: str  # what the client asks for
    target: str  # the OCA model
    upstream: str  # the OCA path the call goes to
    param: str = "temperature"  # a parameter that reaches OCA on this route
    reasoning: bool = True  # an effort reaches OCA on this route
    sends_param: dict[str, Any] | None = None  # what the client sends for it (default: same)


ROUTES = [
    Route("chat-native", "chat", "oca/gpt-5", "oca/gpt-5", "/chat/completions"),
    Route("responses-native", "responses", "oca/gpt-5", "oca/gpt-5", "/responses"),
    # (temperature goes nowhere there: the reasoning model's effort is on)
    Route("messages-to-chat", "messages", "claude-effort", "oca/gpt-5", "/chat/completions", param="user", sends_param={"metadata": {"user_id": "user-7"}}),
    Route("messages-native", "messages", "oca/claude-sonnet-4", "oca/claude-sonnet-4", "/v1/messages", reasoning=False),
    Route("responses-to-chat", "responses", "oca/llama-4", "oca/llama-4", "/chat/completions", reasoning=False),
    Route("chat-via-responses", "chat", "oca/gpt-5-codex", "oca/gpt-5-codex", "/responses", param="safety_identifier"),
    Route("chat-via-messages", "chat", "oca/claude-opus-4", "oca/claude-opus-4", "/v1/messages", reasoning=False),
    Route("completions-native", "completions", "oca/gpt-5", "oca/gpt-5", "/completions"),
]  # fmt: skip
LIMIT = {  # the client's own name for its output cap
    "chat": "max_tokens",
    "responses": "max_output_tokens",
    "messages": "max_tokens",
    "completions": "max_tokens",
}
REAL_MAX = 1000  # output tokens the model really takes (its list says more)


@dataclass(frozen=True)
class Case:
    """One kind of refusal on one route."""

    route: Route
    kind: str  # param | effort | max_tokens

    @property
    def id(self) -> str:
        return f"{self.route.id}-{self.kind}"

    @property
    def refusal(self) -> dict[str, Any]:
        """The simulator's refusals entry for the route's model."""
        if self.kind == "param":
            return {"params": [self.route.param]}
        if self.kind == "effort":
            return {"efforts": ["low", "high"]}
        return {"max_output_tokens": REAL_MAX}

    @property
    def extra(self) -> dict[str, Any]:
        """What the client sends that the model refuses."""
        if self.kind == "param":
            if self.route.sends_param is not None:
                return self.route.sends_param
            return {self.route.param: "user-7" if self.route.param != "temperature" else 0.2}
        if self.kind == "effort":
            # the Anthropic client's effort comes from the mapping (claude-effort: medium)
            if self.route.client == "messages":
                return {}
            if self.route.client == "responses":
                return {"reasoning": {"effort": "medium"}}
            return {"reasoning_effort": "medium"}
        return {LIMIT[self.route.client]: 3 * REAL_MAX}

    def sent(self, body: dict[str, Any]) -> Any:
        """The refused thing, as found in an upstream body (None: not there)."""
        if self.kind == "param":
            return body.get(self.route.param)
        if self.kind == "effort":
            effort = body.get("reasoning_effort")
            return effort if effort is not None else (body.get("reasoning") or {}).get("effort")
        for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
            if key in body:
                return body[key]
        return None


TEMPERATURE = Case(ROUTES[0], "param")  # chat, oca/gpt-5 refusing temperature
CASES = [
    Case(r, kind)
    for r in ROUTES
    for kind in ("param", "effort", "max_tokens")
    if kind != "effort" or r.reasoning
]
STREAM = pytest.mark.parametrize("stream", [True, False], ids=["stream", "buffered"])


@pytest.fixture(scope="module")
def rsim() -> Iterator[Sim]:
    s = start_sim()
    s.config(serves_completions=True)
    yield s
    s.proc.terminate()
    s.proc.wait(10)


@pytest.fixture(scope="module")
def rproxy(rsim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    p = start_proxy(rsim, tmp_path_factory.mktemp("refusals"), settings=SETTINGS)
    yield p
    p.stop()


def upstream_calls(sim: Sim, path: str, since: float = 0.0) -> list[dict[str, Any]]:
    """The model calls the simulator received at `path` after `since` (its clock)."""
    got: list[dict[str, Any]] = httpx.get(
        f"{sim.url}/__sim/requests", params={"path": path}, timeout=10
    ).json()
    return [
        r
        for r in got
        if r["path"].split("?")[0] == PREFIX + path and r["time"] > since  # not /chat/...
    ]


def now(sim: Sim) -> float:
    """The time of the simulator's newest request (it keeps only the last few)."""
    got = httpx.get(f"{sim.url}/__sim/requests", params={"last": "1"}, timeout=10).json()
    return float(got[-1]["time"]) if got else 0.0


def csrf(proxy: Proxy) -> str:
    page = httpx.get(f"{proxy.url}/", timeout=10).text
    return page.split("name=csrf-token content='", 1)[1].split("'", 1)[0]


def forget_all(proxy: Proxy) -> httpx.Response:
    return httpx.post(
        f"{proxy.url}/api/learned",
        json={"all": True},
        headers={"x-csrf-token": csrf(proxy)},
        timeout=10,
    )


def call(proxy: Proxy, case: Case, stream: bool, **extra: Any) -> str:
    """The case's call through the SDK of its API; the answer's text."""
    fields = {**case.extra, **extra}
    client_api, model = case.route.client, case.route.model
    if client_api == "messages":
        client = anthropic.Anthropic(base_url=proxy.url, api_key="dummy", max_retries=0)
        # The SDK's own parameters, the rest as raw fields (its 2.x has no `temperature`).
        kw: dict[str, Any] = {"max_tokens": fields.pop("max_tokens", 200)}
        if fields:
            kw["extra_body"] = fields
        msgs: Any = [{"role": "user", "content": "hello"}]
        if stream:
            events = client.messages.create(model=model, messages=msgs, stream=True, **kw)
            return "".join(
                e.delta.text
                for e in events
                if e.type == "content_block_delta" and e.delta.type == "text_delta"
            )
        msg = client.messages.create(model=model, messages=msgs, **kw)
        return "".join(b.text for b in msg.content if b.type == "text")
    oai = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="dummy", max_retries=0)
    if client_api == "chat":
        msgs = [{"role": "user", "content": "hello"}]
        if stream:
            parts = oai.chat.completions.create(model=model, messages=msgs, stream=True, **fields)
            return "".join(c.choices[0].delta.content or "" for c in parts if c.choices)
        done = oai.chat.completions.create(model=model, messages=msgs, **fields)
        return done.choices[0].message.content or ""
    if client_api == "responses":
        if stream:
            text = ""
            for ev in oai.responses.create(model=model, input="hello", stream=True, **fields):
                if ev.type == "response.output_text.delta":
                    text += ev.delta
            return text
        return oai.responses.create(model=model, input="hello", **fields).output_text
    kw = {"max_tokens": fields.pop("max_tokens", 50)}
    if fields:  # (the SDK's legacy completions have no reasoning_effort)
        kw["extra_body"] = fields
    if stream:
        chunks = oai.completions.create(model=model, prompt="hello", stream=True, **kw)
        return "".join(c.choices[0].text for c in chunks if c.choices)
    return oai.completions.create(model=model, prompt="hello", **kw).choices[0].text


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@STREAM
def test_a_refusal_is_retried_once_then_learned(
    rproxy: Proxy, rsim: Sim, case: Case, stream: bool
) -> None:
    assert forget_all(rproxy).json()["ok"]
    rsim.config(refusals={case.route.target: case.refusal})
    before = now(rsim)
    assert call(rproxy, case, stream)  # the client got its answer
    first = upstream_calls(rsim, case.route.upstream, before)
    # Exactly one extra upstream call: the refused one, then the one that removed the cause.
    assert len(first) == 2, [c["body"] for c in first]
    assert all(c["body"]["model"] == case.route.target for c in first)
    refused, retried = first[0]["body"], first[1]["body"]
    assert case.sent(refused) is not None
    assert case.sent(retried) != case.sent(refused)
    if case.kind == "param":
        assert case.sent(retried) is None  # dropped
    elif case.kind == "effort":
        assert case.sent(retried) == "high"  # the nearest OCA named (a tie goes up)
    else:
        assert case.sent(retried) == REAL_MAX
    # The rest of the request is as it was.
    strip = (case.route.param, "reasoning_effort", "reasoning", "max_tokens", "max_output_tokens")
    strip += ("thinking",)  # a budget is lowered with the output cap
    assert {k: v for k, v in refused.items() if k not in strip} == {
        k: v for k, v in retried.items() if k not in strip
    }
    assert first[0]["headers"]["opc-request-id"] != first[1]["headers"]["opc-request-id"]

    # The next call: sent as learned, no extra upstream call.
    assert call(rproxy, case, stream)
    second = upstream_calls(rsim, case.route.upstream, before)[2:]
    assert len(second) == 1
    assert case.sent(second[0]["body"]) == case.sent(retried)

    learned = [f for f in rproxy.health()["learned"] if f["model"] == case.route.target]
    assert learned, rproxy.health()


def test_the_log_and_dashboard_say_what_was_learned(rproxy: Proxy, rsim: Sim) -> None:
    case = TEMPERATURE
    assert forget_all(rproxy).json()["ok"]
    rsim.config(refusals={"oca/gpt-5": case.refusal})
    call(rproxy, case, stream=False)
    call(rproxy, case, stream=False)
    log = rproxy.log()
    assert "OCA refuses temperature for oca/gpt-5" in log
    assert "retried: dropped temperature" in log
    assert "adapted: dropped temperature" in log
    page = httpx.get(f"{rproxy.url}/api/state", timeout=10).json()
    facts = page["learned"]
    assert any(f["model"] == "oca/gpt-5" and "temperature" in f["detail"] for f in facts)
    recent = page["recent"]
    assert recent[1]["retried"] == "dropped temperature"  # newest first
    assert recent[0]["learned"] == "dropped temperature"


def test_forget_needs_the_csrf_token(rproxy: Proxy) -> None:
    r = httpx.post(f"{rproxy.url}/api/learned", json={"all": True}, timeout=10)
    assert r.status_code == 403
    r = httpx.post(
        f"{rproxy.url}/api/learned",
        json={"all": True},
        headers={"x-csrf-token": csrf(rproxy), "origin": "https://evil.example"},
        timeout=10,
    )
    assert r.status_code == 403
    r = httpx.post(
        f"{rproxy.url}/api/learned", json={}, headers={"x-csrf-token": csrf(rproxy)}, timeout=10
    )
    assert r.status_code == 400


def test_one_model_forgotten_asks_oca_as_the_list_says(rproxy: Proxy, rsim: Sim) -> None:
    case = TEMPERATURE
    rsim.config(refusals={"oca/gpt-5": case.refusal})
    call(rproxy, case, stream=False)
    assert any(f["model"] == case.route.target for f in rproxy.health()["learned"])
    r = httpx.post(
        f"{rproxy.url}/api/learned",
        json={"model": case.route.target},
        headers={"x-csrf-token": csrf(rproxy)},
        timeout=10,
    )
    assert r.json()["ok"] and r.json()["forgotten"] >= 1
    assert not any(f["model"] == case.route.target for f in rproxy.health()["learned"])
    before = now(rsim)
    call(rproxy, case, stream=False)
    assert len(upstream_calls(rsim, case.route.upstream, before)) == 2  # refused, retried


def test_a_second_refusal_carries_both_of_ocas_messages(rproxy: Proxy, rsim: Sim) -> None:
    """Temperature refused, then the effort: one retry only, so the client gets a 400 that
    quotes both; both facts are learned, so the next call goes through first time."""
    assert forget_all(rproxy).json()["ok"]
    rsim.config(refusals={"oca/gpt-5": {"params": ["temperature"], "efforts": ["low", "high"]}})
    try:
        oai = openai.OpenAI(base_url=f"{rproxy.url}/v1", api_key="dummy", max_retries=0)
        kw: dict[str, Any] = {
            "model": "oca/gpt-5",
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.3,
            "reasoning_effort": "medium",
        }
        before = now(rsim)
        with pytest.raises(openai.BadRequestError) as got:
            oai.chat.completions.create(**kw)
        text = str(got.value)
        assert "temperature" in text and "Supported values are" in text, text
        assert "retried once" in text
        assert len(upstream_calls(rsim, "/chat/completions", before)) == 2
        assert oai.chat.completions.create(**kw).choices[0].message.content
        assert len(upstream_calls(rsim, "/chat/completions", before)) == 3
    finally:
        rsim.config(refusals={})


def test_an_unknown_refusal_is_passed_on_untouched(rproxy: Proxy, rsim: Sim) -> None:
    before = now(rsim)
    oai = openai.OpenAI(base_url=f"{rproxy.url}/v1", api_key="dummy", max_retries=0)
    with pytest.raises(openai.BadRequestError) as got:
        oai.chat.completions.create(
            model="oca/gpt-4.1", messages=[{"role": "user", "content": "hi SIM:error=400"}]
        )
    assert "OCA answered 400" in str(got.value)
    assert "retried" not in str(got.value)
    assert len(upstream_calls(rsim, "/chat/completions", before)) == 1


def test_learned_facts_survive_a_restart_and_learning_can_be_off(rsim: Sim, tmp_path: Path) -> None:
    case = TEMPERATURE
    rsim.config(refusals={"oca/gpt-5": case.refusal})
    home = tmp_path / "home"
    p = start_proxy(rsim, home, settings=SETTINGS)
    try:
        call(p, case, stream=False)
        facts = home / ".config" / "oca" / "oca-proxy.learned.json"
        assert facts.exists() and facts.stat().st_mode & 0o077 == 0
        assert "temperature" in facts.read_text()
        assert "Bearer" not in facts.read_text()
    finally:
        p.stop()
    p = start_proxy(rsim, home, settings=SETTINGS, logged_in=False)
    try:
        assert any(f["model"] == case.route.target for f in p.health()["learned"])
    finally:
        p.stop()
    p = start_proxy(
        rsim,
        tmp_path / "off",
        settings=SETTINGS,
        options={"oca_learn_from_refusals": "false"},
    )
    try:
        oai = openai.OpenAI(base_url=f"{p.url}/v1", api_key="dummy", max_retries=0)
        with pytest.raises(openai.BadRequestError) as got:
            oai.chat.completions.create(
                model="oca/gpt-5", messages=[{"role": "user", "content": "hi"}], temperature=0.2
            )
        assert "does not support parameters" in str(got.value)
        assert p.health()["learned"] == []
    finally:
        p.stop()


def test_completions_refused_goes_translated_and_stays_streamed(rproxy: Proxy, rsim: Sim) -> None:
    """OCA not serving /completions: the one retry goes to chat through mitmproxy, and a
    streamed call stays streamed (its answer arrives as completion chunks)."""
    rsim.config(serves_completions=False)
    try:
        with httpx.stream(
            "POST",
            f"{rproxy.url}/v1/completions",
            json={"model": "oca/gpt-4.1", "prompt": "hi", "max_tokens": 20, "stream": True},
            timeout=30,
        ) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            body = r.read().decode()
        chunks = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: {")]
        assert chunks and all(c["object"] == "text_completion" for c in chunks)
        assert body.rstrip().endswith("data: [DONE]")
    finally:
        rsim.config(serves_completions=True)


def test_mitmweb_shows_the_refused_attempt_beside_the_retry(rsim: Sim, tmp_path: Path) -> None:
    """The retry is the client's own flow, sent again by mitmproxy; the refused attempt is a
    flow of its own in mitmweb, and each names the other."""
    rsim.config(refusals={"oca/gpt-4.1": {"params": ["temperature"]}})
    web_port = free_port()
    p = start_proxy(
        rsim,
        tmp_path / "web",
        settings=SETTINGS,
        program="mitmweb",
        options={"web_port": str(web_port), "web_open_browser": "false", "web_password": "pw"},
    )
    try:
        oai = openai.OpenAI(base_url=f"{p.url}/v1", api_key="dummy", max_retries=0)
        got = oai.chat.completions.create(
            model="oca/gpt-4.1", messages=[{"role": "user", "content": "hi"}], temperature=0.5
        )
        assert got.choices[0].message.content
        web = f"http://127.0.0.1:{web_port}"
        flows = httpx.get(f"{web}/flows", params={"token": "pw"}, timeout=10).json()
        # The model list oca-proxy read for routing is a flow too (no second HTTP client).
        own = [f for f in flows if f["request"]["path"] == PREFIX + "/v1/model/info"]
        assert len(own) == 1 and own[0]["response"]["status_code"] == 200, own
        assert own[0]["comment"].startswith("oca-proxy's own call: OCA's model list")
        api = [f for f in flows if f["request"]["path"].startswith(PREFIX + "/chat")]
        refused = [f for f in api if f["response"] and f["response"]["status_code"] == 400]
        answered = [f for f in api if f["response"] and f["response"]["status_code"] == 200]
        assert len(refused) == 1 and len(answered) == 1, [f["comment"] for f in api]
        assert refused[0]["comment"].startswith("refused by OCA (400); retried as flow ")
        assert answered[0]["id"] in refused[0]["comment"]
        assert "retried: dropped temperature" in answered[0]["comment"]
        assert "Bearer <redacted>" in json.dumps(refused[0]["request"]["headers"])
        # Each shows its own request: the refused one with temperature, the retry without.
        for f, has in ((refused[0], True), (answered[0], False)):
            body = httpx.get(
                f"{web}/flows/{f['id']}/request/content.data", params={"token": "pw"}, timeout=10
            ).content
            assert (b'"temperature"' in body) is has, body
        assert "sim-at-" not in json.dumps(flows)  # no token, in either
    finally:
        p.stop()


def test_a_changed_model_list_entry_forgets_what_was_learned(rsim: Sim, tmp_path: Path) -> None:
    """What OCA taught about a model holds while its list entry stays the same: when the
    list changes that model, the facts go, and the next call is sent as the list says."""
    from oca_addon.sim.models import model_info_payload

    rsim.config(refusals={"oca/gpt-5": TEMPERATURE.refusal})
    p = start_proxy(rsim, tmp_path / "home", settings=SETTINGS, options={"oca_models_ttl": "1"})
    try:
        call(p, TEMPERATURE, stream=False)
        assert [f["model"] for f in p.health()["learned"]] == ["oca/gpt-5"]
        payload = model_info_payload()
        for entry in payload["data"]:
            if entry["litellm_params"]["model"] == "oca/gpt-5":
                entry["model_info"]["max_output_tokens"] = 64000  # OCA changed the model
        rsim.config(model_info=payload, refusals={})
        time.sleep(1.5)  # past oca_models_ttl: the next call reads the list again
        before = now(rsim)
        call(p, TEMPERATURE, stream=False)
        sent = upstream_calls(rsim, "/chat/completions", before)
        assert len(sent) == 1 and sent[0]["body"]["temperature"] == 0.2
        assert p.health()["learned"] == []
        assert "OCA's model list changed for oca/gpt-5" in p.log()
    finally:
        rsim.config(model_info=None, refusals={})
        p.stop()
