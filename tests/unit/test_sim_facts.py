"""The simulator follows OCA-FACTS.md: the published model-info sample, ids versus display
names, the facts that hold with every guess switched off, and each guess on and off."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import strategies as st

from oca_addon.sim import MODELS, SimConfig, SimServer
from oca_addon.sim.config import GUESSES, GUESSES_ENV, guesses_on
from oca_addon.sim.models import CHAT_COMPLETIONS, MESSAGES, RESPONSES, parse_model_info

SAMPLE_PATH = Path(__file__).parents[1] / "fixtures" / "oca_model_info_sample.json"
SAMPLE = json.loads(SAMPLE_PATH.read_text())
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(SimConfig(port=0, allow_any_redirect_port=True)) as server:
        yield server


@pytest.fixture(autouse=True)
def default_knobs(sim: SimServer) -> Iterator[None]:
    sim.admin("config", {"guesses": "all"})
    sim.admin("reset", {})
    yield
    sim.admin(
        "config",
        {
            "guesses": "all",
            "reasoning_field": "reasoning_content",
            "error_shape": "litellm",
            "lost_login": "invalid_grant",
            "fail_refresh": False,
            "model_info": None,
        },
    )


@pytest.fixture
def client(sim: SimServer) -> Iterator[httpx.Client]:
    token = sim.mint()["access_token"]
    with httpx.Client(
        base_url=sim.api_base, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as c:
        yield c


def sse_json(resp: httpx.Response) -> list[dict[str, Any]]:
    out = []
    for block in resp.content.split(b"\n\n"):
        data = [line[6:] for line in block.split(b"\n") if line.startswith(b"data: ")]
        if data and data[0] != b"[DONE]":
            out.append(json.loads(b"\n".join(data)))
    return out


def chat(client: httpx.Client, model: str, messages: Any = None, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": messages or HI, "stream": True, **extra}
    return client.post("/chat/completions", json=body)


def usage_of(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    usage: dict[str, Any] = sse_json(resp)[-1]["usage"]
    return usage


# --- the catalogue ------------------------------------------------------------------


def test_catalogue_entry_is_the_published_sample() -> None:
    assert MODELS["oca/gpt-4.1"].info() == SAMPLE["data"][0]
    assert all(key == m.id and key.startswith("oca/") for key, m in MODELS.items())
    assert all(m.display_name != m.id for m in MODELS.values())


def test_supported_api_list_case_and_absence() -> None:
    assert MODELS["oca/gpt-5"].supports(RESPONSES)  # served as "responses"
    assert MODELS["oca/gpt-4.1"].supports(RESPONSES)
    assert not MODELS["oca/llama-4"].supports(RESPONSES)
    mistral = MODELS["oca/mistral-large"]
    assert mistral.supported_api_list is None
    assert mistral.supports(CHAT_COMPLETIONS) and not mistral.supports(MESSAGES)
    assert mistral.output_limit == 8192  # litellm_params.max_tokens when max_output_tokens lacks
    assert MODELS["oca/gpt-4.1"].output_limit == 32768  # not the context-sized max_tokens


def test_parse_model_info_accepts_both_forms() -> None:
    for payload in (SAMPLE, SAMPLE["data"]):
        models = parse_model_info(payload)
        assert list(models) == ["oca/gpt-4.1"]
        assert models["oca/gpt-4.1"] == MODELS["oca/gpt-4.1"]
    assert parse_model_info({"data": [{"model_name": "No id"}, 3]}) == {}


# --- requests carry the id ------------------------------------------------------------


def test_model_names_the_gateway_refuses(sim: SimServer, client: httpx.Client) -> None:
    for name in ("OpenAI GPT 4.1", "gpt-4.1"):  # a display name, a name without oca/
        resp = chat(client, name)
        assert resp.status_code == 400, name
        assert f"model={name}" in resp.json()["error"]["message"]
    unknown = chat(client, "oca/xyz")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"].startswith(
        "Invalid model name passed in model=oca/xyz. Call `/v1/models` to view available models"
    )
    sim.admin("config", {"unknown_model_message": False})
    assert chat(client, "oca/xyz").status_code == 404
    assert chat(client, "OpenAI GPT 4.1").status_code == 400  # known, guess or not


def test_gpt41_serves_responses_natively(client: httpx.Client) -> None:
    for model in ("oca/gpt-4.1", "oca/gpt-5"):  # gpt-5 lists "responses" in lower case
        resp = client.post("/responses", json={"model": model, "input": "hi", "stream": True})
        assert resp.status_code == 200, resp.text
        assert sse_json(resp)[-1]["response"]["model"] == model


# --- reasoning field, error shapes ------------------------------------------------------


def test_reasoning_as_delta_thinking(sim: SimServer, client: httpx.Client) -> None:
    def reasoning(key: str) -> str:
        chunks = sse_json(chat(client, "oca/gpt-5"))
        return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks if c["choices"])

    assert reasoning("reasoning_content") and not reasoning("thinking")
    sim.admin("config", {"reasoning_field": "thinking"})
    assert reasoning("thinking").startswith("Thinking about")
    assert not reasoning("reasoning_content")
    bad = httpx.post(f"{sim.url}/__sim/config", json={"reasoning_field": "thoughts"})
    assert bad.status_code == 400


def test_oci_flat_errors(sim: SimServer, client: httpx.Client) -> None:
    resp = chat(client, "oca/gpt-4.1", [{"role": "user", "content": "SIM:error=429:oci"}])
    assert resp.status_code == 429 and resp.headers["retry-after"] == "2"
    body = resp.json()
    assert set(body) == {"code", "message"} and body["code"] == "TooManyRequests"
    assert resp.headers["opc-request-id"] in body["message"]
    # The knob turns every API error flat, validation and auth included.
    sim.admin("config", {"error_shape": "oci"})
    assert chat(client, "gpt-4.1").json()["code"] == "InvalidParameter"
    resp = httpx.post(f"{sim.api_base}/chat/completions", json={"model": "oca/gpt-4.1"})
    assert resp.status_code == 401 and resp.json()["code"] == "NotAuthenticated"
    # Plain SIM:error=503 follows the knob.
    assert chat(client, "oca/gpt-4.1", [{"role": "user", "content": "SIM:error=503"}]).json()[
        "code"
    ] == ("ServiceUnavailable")


# --- guesses --------------------------------------------------------------------------


def test_guess_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert guesses_on("all") == set(GUESSES) and guesses_on("none") == set()
    assert guesses_on("stream_only, serves_embeddings") == {"stream_only", "serves_embeddings"}
    with pytest.raises(ValueError, match="nope"):
        guesses_on("stream_only,nope")
    monkeypatch.setenv(GUESSES_ENV, "none")
    assert not any(SimConfig().guesses().values())
    monkeypatch.setenv(GUESSES_ENV, "reject_image_detail")
    assert {g for g, on in SimConfig().guesses().items() if on} == {"reject_image_detail"}
    monkeypatch.delenv(GUESSES_ENV)
    assert all(SimConfig().guesses().values())
    assert SimConfig(stream_only=False).stream_only is False  # explicit beats the default


def test_admin_switches_guesses(sim: SimServer) -> None:
    assert not any(sim.admin("config", {"guesses": "none"})[g] for g in GUESSES)
    conf = sim.admin("config", {"guesses": ["stream_only"]})
    assert [g for g in GUESSES if conf[g]] == ["stream_only"]
    assert httpx.post(f"{sim.url}/__sim/config", json={"guesses": "bogus"}).status_code == 400


def test_stream_only_guess(sim: SimServer, client: httpx.Client) -> None:
    body = {"model": "oca/gpt-4.1", "messages": HI}
    assert client.post("/chat/completions", json=body).status_code == 400
    sim.admin("config", {"stream_only": False})
    resp = client.post("/chat/completions", json=body)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    answer = resp.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"].endswith("You said: hi")
    assert answer["choices"][0]["finish_reason"] == "stop" and answer["usage"]["total_tokens"]


def test_whole_answers_for_every_api(sim: SimServer, client: httpx.Client) -> None:
    sim.admin("config", {"guesses": "none"})
    tools = [{"type": "function", "function": {"name": "ls", "parameters": {}}}]
    msg = [{"role": "user", "content": "SIM:tool=ls"}]
    call = client.post(
        "/chat/completions", json={"model": "oca/gpt-5", "messages": msg, "tools": tools}
    )
    message = call.json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "ls" and message["reasoning_content"]
    resp = client.post("/responses", json={"model": "oca/gpt-5-codex", "input": "hi"}).json()
    assert resp["object"] == "response" and resp["status"] == "completed"
    assert [i["type"] for i in resp["output"]] == ["reasoning", "message"]
    body = {"model": "oca/claude-sonnet-4", "max_tokens": 50, "messages": HI}
    m = client.post("/v1/messages", json=body).json()
    assert m["type"] == "message" and [b["type"] for b in m["content"]] == ["thinking", "text"]
    assert m["stop_reason"] == "end_turn" and m["content"][0]["signature"]
    # Completions with the serving guess on, stream_only still off.
    sim.admin("config", {"serves_completions": True})
    c = client.post("/completions", json={"model": "oca/llama-4", "prompt": "go"}).json()
    assert c["object"] == "text_completion" and c["choices"][0]["text"].endswith("You said: go")


def test_image_detail_guess(sim: SimServer, client: httpx.Client) -> None:
    image = {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}
    msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": image}]}]
    assert chat(client, "oca/gpt-4.1", msgs).status_code == 400
    sim.admin("config", {"reject_image_detail": False})
    assert chat(client, "oca/gpt-4.1", msgs).status_code == 200
    assert chat(client, "oca/llama-4", msgs).status_code == 400  # no vision: known from the list


def test_serving_embeddings_and_completions_guesses(sim: SimServer, client: httpx.Client) -> None:
    emb = {"model": "oca/text-embedding-3-small", "input": "x"}
    comp = {"model": "oca/gpt-4.1", "prompt": "x", "stream": True}
    assert client.post("/embeddings", json=emb).status_code == 200
    assert client.post("/completions", json=comp).status_code == 200  # any chat model
    sim.admin("config", {"serves_embeddings": False, "serves_completions": False})
    for path, body in (("/embeddings", emb), ("/v1/completions", comp)):
        resp = client.post(path, json=body)
        assert resp.status_code == 404, path
        assert "Not found" in resp.json()["error"]["message"]


def test_effort_options_guess(sim: SimServer, client: httpx.Client) -> None:
    assert chat(client, "oca/gpt-5", reasoning_effort="max").status_code == 400
    sim.admin("config", {"enforce_effort_options": False})
    assert chat(client, "oca/gpt-5", reasoning_effort="max").status_code == 200


def test_rejects_unlisted_api_guess(sim: SimServer, client: httpx.Client) -> None:
    body = {"model": "oca/llama-4", "input": "hi", "stream": True}
    assert client.post("/responses", json=body).status_code == 400
    assert chat(client, "oca/gpt-5-codex").status_code == 400
    sim.admin("config", {"rejects_unlisted_api": False})
    assert client.post("/responses", json=body).status_code == 200
    assert chat(client, "oca/gpt-5-codex").status_code == 200


def test_facts_hold_with_every_guess_off(sim: SimServer, client: httpx.Client) -> None:
    sim.admin("config", {"guesses": "none"})
    assert chat(client, "gpt-4.1").status_code == 400  # no oca/ prefix
    assert httpx.post(f"{sim.api_base}/chat/completions", json={}).status_code == 401
    resp = chat(client, "oca/gpt-4.1", stream_options={"include_usage": True})
    chunks = sse_json(resp)
    assert chunks[-1]["usage"]["prompt_tokens"] > 0
    assert resp.content.endswith(b"data: [DONE]\n\n")
    assert client.get("/v1/model/info").json()["data"][0]["model_name"] == "OpenAI GPT 4.1"


# --- recorded requests, the token endpoint ----------------------------------------------


def test_recorded_requests(sim: SimServer, client: httpx.Client) -> None:
    body = {"model": "oca/gpt-4.1", "messages": HI, "stream": True}
    headers = {"Client": "oca-addon", "Client-Version": "1.2"}
    assert client.post("/chat/completions", json=body, headers=headers).status_code == 200
    client.get("/v1/model/info")
    got = sim.last_request("/chat/completions")
    assert got["body"]["model"] == "oca/gpt-4.1"
    assert got["headers"]["client"] == "oca-addon" and got["headers"]["client-version"] == "1.2"
    assert got["headers"]["authorization"] == "Bearer <redacted>"
    over_http = httpx.get(f"{sim.url}/__sim/requests", params={"path": "/chat/completions"})
    assert over_http.json()[-1]["body"] == got["body"]
    assert [r["path"] for r in httpx.get(f"{sim.url}/__sim/requests?last=1").json()] == [
        sim.api_base.removeprefix(sim.url) + "/v1/model/info"
    ]
    with pytest.raises(KeyError):
        sim.last_request("/nothing")


def test_refresh_form_is_recorded(sim: SimServer) -> None:
    rt = sim.mint()["refresh_token"]
    form = {
        "grant_type": "refresh_token",
        "refresh_token": rt,
        "client_id": "a8331954c0cf48ba99b5dd223a14c6ea",
    }
    assert httpx.post(f"{sim.url}/oauth2/v1/token", data=form).status_code == 200
    assert sim.last_request("/oauth2/v1/token")["body"] == form


@pytest.mark.parametrize(
    ("lost", "status", "error"),
    [
        ("invalid_grant", 400, "invalid_grant"),
        ("invalid_token", 400, "invalid_token"),
        ("unauthorized_client", 400, "unauthorized_client"),
        ("401", 401, "unauthorized"),
        ("403", 403, "forbidden"),
    ],
)
def test_lost_login_answers(sim: SimServer, lost: str, status: int, error: str) -> None:
    sim.admin("config", {"lost_login": lost})
    form = {
        "grant_type": "refresh_token",
        "refresh_token": "gone",
        "client_id": "a8331954c0cf48ba99b5dd223a14c6ea",
    }
    resp = httpx.post(f"{sim.url}/oauth2/v1/token", data=form)
    assert resp.status_code == status and resp.json()["error"] == error
    sim.admin("config", {"fail_refresh": True})
    form["refresh_token"] = sim.mint()["refresh_token"]
    assert httpx.post(f"{sim.url}/oauth2/v1/token", data=form).status_code == status


# --- prompt caching, thinking ---------------------------------------------------------------


def cached_conversation(tag: str, turns: int) -> list[dict[str, Any]]:
    """Cline's breakpoints: the system message and the last two user messages."""
    eph = {"cache_control": {"type": "ephemeral"}}
    msgs: list[dict[str, Any]] = [{"role": "system", "content": f"{tag} " + "s" * 4000, **eph}]
    for i in range(turns):
        msgs += [{"role": "user", "content": f"question {i} " + "q" * 400}]
        msgs += [{"role": "assistant", "content": f"answer {i}"}]
    msgs.append({"role": "user", "content": "last question"})
    for i in [j for j, m in enumerate(msgs) if m["role"] == "user"][-2:]:
        msgs[i] |= eph
    return msgs


def test_chat_prompt_caching(client: httpx.Client) -> None:
    opts = {"stream_options": {"include_usage": True}}
    first = usage_of(chat(client, "oca/claude-sonnet-4", cached_conversation("a", 1), **opts))
    assert first["cache_creation_input_tokens"] > 1000
    assert first["cache_read_input_tokens"] == first["prompt_tokens_details"]["cached_tokens"] == 0
    # Next turn: the earlier prefix is read, the new tail written.
    second = usage_of(chat(client, "oca/claude-sonnet-4", cached_conversation("a", 2), **opts))
    assert second["cache_read_input_tokens"] >= 1000
    assert second["prompt_tokens_details"]["cached_tokens"] == second["cache_read_input_tokens"]
    assert 0 < second["cache_creation_input_tokens"] < second["cache_read_input_tokens"]
    assert (
        second["cache_read_input_tokens"] + second["cache_creation_input_tokens"]
        <= (second["prompt_tokens"])
    )
    # The same request again: all read, nothing written.
    again = usage_of(chat(client, "oca/claude-sonnet-4", cached_conversation("a", 2), **opts))
    assert again["cache_creation_input_tokens"] == 0 and again["cache_read_input_tokens"] > 1000
    # A model without supports_caching reports nothing.
    other = usage_of(chat(client, "oca/gpt-4.1", cached_conversation("a", 2), **opts))
    assert other["cache_read_input_tokens"] == other["cache_creation_input_tokens"] == 0


def test_messages_prompt_caching(client: httpx.Client) -> None:
    def usage() -> dict[str, Any]:
        body = {
            "model": "oca/claude-sonnet-4",
            "max_tokens": 100,
            "stream": True,
            "system": [
                {"type": "text", "text": "m" * 6000, "cache_control": {"type": "ephemeral"}}
            ],
            "messages": HI,
        }
        resp = client.post("/v1/messages", json=body)
        assert resp.status_code == 200
        events = sse_json(resp)
        start = next(e for e in events if e["type"] == "message_start")["message"]["usage"]
        delta = next(e for e in events if e["type"] == "message_delta")["usage"]
        assert set(delta) == {"output_tokens"}  # the input counts are message_start's
        return {**start, **delta}

    first, second = usage(), usage()
    assert first["cache_creation_input_tokens"] > 1000 and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] == 0
    assert second["input_tokens"] == first["input_tokens"] > 0


def test_thinking_on_a_model_with_thinking_config(sim: SimServer, client: httpx.Client) -> None:
    entry = json.loads(json.dumps(SAMPLE["data"][0]))
    entry["litellm_params"]["model"] = "oca/thinker"
    entry["model_info"]["thinking_config"] = {"max_budget": 16000}
    sim.admin("config", {"model_info": {"data": [entry, SAMPLE["data"][0]]}})

    def reasoning(model: str, **extra: Any) -> str:
        chunks = sse_json(chat(client, model, **extra))
        return "".join(
            c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c["choices"]
        )

    thinking = {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert reasoning("oca/thinker", **thinking).startswith("Thinking about")
    assert reasoning("oca/thinker") == ""
    assert reasoning("oca/gpt-4.1", **thinking) == ""  # no thinking_config: ignored


# --- serving a given model-info payload ---------------------------------------------------


def test_serves_the_sample_verbatim(sim: SimServer, client: httpx.Client) -> None:
    for payload in (SAMPLE, SAMPLE["data"]):
        sim.admin("config", {"model_info": payload})
        assert client.get("/v1/model/info").json() == payload
        assert chat(client, "oca/gpt-4.1").status_code == 200
        assert chat(client, "oca/gpt-5").status_code == 400  # not in the served list
    sim.admin("config", {"model_info": None})
    assert chat(client, "oca/gpt-5").status_code == 200


@pytest.mark.slow  # a process of its own
def test_cli_serves_a_model_info_file() -> None:
    args = ["--port", "0", "--model-info", str(SAMPLE_PATH), "--guesses", "none"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "oca_addon.sim", *args, "--error-shape", "oci"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        match = re.fullmatch(r"OCA simulator listening on (http://\S+)", line)
        assert match, line
        url = match.group(1)
        token = httpx.post(f"{url}/__sim/mint", json={}).json()["access_token"]
        info = httpx.get(
            f"{url}/20250206/app/litellm/v1/model/info",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert info.json() == SAMPLE
        conf = httpx.get(f"{url}/__sim/config").json()
        assert conf["error_shape"] == "oci" and not any(conf[g] for g in GUESSES)
    finally:
        proc.terminate()
        proc.wait(10)


# -- bad input never makes the simulator fail ------------------------------------------------

_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = ("messages", "input", "prompt", "tools", "tool_choice", "max_tokens", "reasoning",
           "thinking", "stream_options", "system", "reasoning_effort")  # fmt: skip


@pytest.mark.parametrize(
    "path", ["/chat/completions", "/responses", "/completions", "/v1/messages"]
)
def test_generated_bodies_get_answers_not_500s(client: httpx.Client, path: str) -> None:
    # A gateway answers malformed input with a 4xx; a 500 from the simulator would make the
    # proxy's own fuzz tests fail for the simulator's sake (and is not how OCA answers).
    from hypothesis import HealthCheck, given, settings

    model = "oca/claude-sonnet-4" if path == "/v1/messages" else "oca/gpt-4.1"
    hello = [{"role": "user", "content": "hi"}]
    valid = {  # a good body, some of whose fields each example replaces
        "/chat/completions": {"messages": hello},
        "/responses": {"input": "hi"},
        "/completions": {"prompt": "hi"},
        "/v1/messages": {"messages": hello, "max_tokens": 10},
    }[path]

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(extra=st.dictionaries(st.sampled_from(_FIELDS), _ANY_JSON, max_size=3))
    def check(extra: dict[str, Any]) -> None:
        r = client.post(path, json={"model": model, "stream": True, **valid, **extra})
        assert r.status_code < 500, (extra, r.text[:300])

    check()


@pytest.mark.parametrize(
    ("path", "tool"),
    [
        ("/chat/completions", {"type": "function", "function": {"name": "f", "parameters": True}}),
        ("/chat/completions", {"type": "function", "function": {"name": "", "parameters": [1]}}),
        ("/responses", {"type": "function", "name": "f", "parameters": "x"}),
        ("/v1/messages", {"name": "f", "input_schema": 3}),
    ],
)
def test_a_tool_schema_that_is_not_an_object_gets_a_400(
    client: httpx.Client, path: str, tool: dict[str, Any]
) -> None:
    """Found by the proxy's fuzz test: `parameters: true` made the simulator answer 500."""
    model = "oca/claude-sonnet-4" if path == "/v1/messages" else "oca/gpt-4.1"
    body: dict[str, Any] = {"model": model, "tools": [tool], "max_tokens": 10, "stream": True}
    body.update(
        {"input": "hi"}
        if path == "/responses"
        else {"messages": [{"role": "user", "content": "hi"}]}
    )
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text[:300]
    assert "Input should be a valid dictionary" in r.text
