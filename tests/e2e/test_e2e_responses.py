"""The Responses API and legacy completions through a real mitmdump process in front of the
simulator, driven by the `openai` SDK: a model that serves /responses natively and also chat
(oca/gpt-5), one that serves only /responses (oca/gpt-5-codex), and chat-only models whose
requests are translated (oca/grok3; oca/mistral-large, whose entry has no supported_api_list)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from conftest import Proxy, Sim, sse_events

from oca_addon.sim.config import GUESSES_ENV, guesses_on

NATIVE = ["oca/gpt-5", "oca/gpt-5-codex"]
TRANSLATED = ["oca/grok3"]
ALL = NATIVE + TRANSLATED

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
APPLY_PATCH: Any = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files with a patch.",
    "format": {
        "type": "grammar",
        "syntax": "lark",
        "definition": 'start: "*** Begin Patch" LF hunk+ "*** End Patch"',
    },
}
PERSON: Any = {
    "type": "json_schema",
    "name": "person",
    "schema": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    },
    "strict": True,
}
TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def client(proxy: Proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="dummy", max_retries=0)


def upstream(sim: Sim, path: str = "") -> dict[str, Any]:
    """The last API request the simulator received (optionally: on a path ending so)."""
    for req in reversed(sim.state()["requests"]):
        if req["method"] == "POST" and req["path"].endswith(path or ""):
            return req
    raise AssertionError(f"no upstream request on {path!r}")


def upstream_path(model: str) -> str:
    return "/responses" if model in NATIVE else "/chat/completions"


def items_of(response: Any) -> list[dict[str, Any]]:
    """Output items as plain dicts, ready to go back as input."""
    return [item.model_dump(exclude_none=True) for item in response.output]


def raw_stream(proxy: Proxy, body: dict[str, Any], path: str = "/v1/responses") -> list[Any]:
    r = httpx.post(f"{proxy.url}{path}", json={**body, "stream": True}, timeout=60)
    assert r.status_code == 200, r.text
    return [(ev, json.loads(data)) for ev, data in sse_events(r.text) if data != "[DONE]"]


# -- plain text ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ALL)
def test_create_non_stream(proxy: Proxy, model: str) -> None:
    r = client(proxy).responses.create(model=model, input="hello there", instructions="Be brief.")
    assert r.object == "response" and r.status == "completed"
    assert r.model == model
    assert "You said: hello there" in r.output_text
    assert r.usage is not None and r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    if model in NATIVE:  # reasoning models: the sim's reasoning summary comes through
        assert [i.type for i in r.output] == ["reasoning", "message"]
    else:
        assert [i.type for i in r.output] == ["message"]
    sent = upstream(proxy.sim, upstream_path(model))
    assert sent["body"]["stream"] is True  # OCA only streams: the answer was assembled
    assert sent["body"]["model"] == model


@pytest.mark.parametrize("model", ALL)
def test_create_stream(proxy: Proxy, model: str) -> None:
    events = list(client(proxy).responses.create(model=model, input="stream me", stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "You said: stream me" in text
    final = events[-1].response
    assert final.output_text == text  # the final event carries the whole output
    assert final.usage is not None and final.usage.output_tokens > 0
    assert upstream(proxy.sim, upstream_path(model))["body"]["model"] == model


@pytest.mark.parametrize("model", ALL)
def test_stream_helper_final_response(proxy: Proxy, model: str) -> None:
    deltas: list[str] = []
    with client(proxy).responses.stream(model=model, input="helper please") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert final.status == "completed"
    assert final.output_text == "".join(deltas)
    assert "You said: helper please" in final.output_text


@pytest.mark.parametrize("model", ALL)
def test_stream_split_anywhere(proxy: Proxy, model: str) -> None:
    """OCA's bytes arrive split mid-line and mid-character (U+2028 inside JSON strings)."""
    events = list(client(proxy).responses.create(model=model, input="SIM:split", stream=True))
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text.endswith(" [split\u2028line é 漢字 🙂]")


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_mapped_model_name_comes_back(proxy: Proxy, stream: bool) -> None:
    """The client sees the model name it asked for; OCA gets the mapped one (native)."""
    c = client(proxy)
    if stream:
        events = list(c.responses.create(model="gpt-5-mapped", input="model?", stream=True))
        assert {e.response.model for e in events if hasattr(e, "response")} == {"gpt-5-mapped"}
    else:
        assert c.responses.create(model="gpt-5-mapped", input="model?").model == "gpt-5-mapped"
    sent = upstream(proxy.sim, "/responses")["body"]
    assert sent["model"] == "oca/gpt-5" and sent["reasoning"]["effort"] == "high"


# -- tools -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ALL)
@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_function_tool_round_trip(proxy: Proxy, model: str, stream: bool) -> None:
    c = client(proxy)
    prompt = {"role": "user", "content": 'Weather? SIM:tool=get_weather SIM:args={"city":"Oslo"}'}
    if stream:
        with c.responses.stream(model=model, input=[prompt], tools=[WEATHER]) as s:
            first = s.get_final_response()
    else:
        first = c.responses.create(model=model, input=[prompt], tools=[WEATHER])
    calls = [i for i in first.output if i.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Oslo"}
    assert call.call_id and call.status == "completed"

    history = [prompt, *items_of(first)]
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}
    if stream:
        with c.responses.stream(model=model, input=[*history, output], tools=[WEATHER]) as s:
            second = s.get_final_response()
    else:
        second = c.responses.create(model=model, input=[*history, output], tools=[WEATHER])
    assert "Tool result received: sunny, 21C" in second.output_text

    sent = upstream(proxy.sim, upstream_path(model))["body"]
    if model in NATIVE:
        last_two = sent["input"][-2:]
        assert last_two[0]["type"] == "function_call" and last_two[0]["call_id"] == call.call_id
        assert last_two[1] == output
    else:
        assert sent["messages"][-2]["tool_calls"][0]["id"] == call.call_id
        assert sent["messages"][-1] == {
            "role": "tool",
            "tool_call_id": call.call_id,
            "content": "sunny, 21C",
        }


@pytest.mark.parametrize("model", ["oca/grok3", "oca/gpt-5-codex"])
def test_custom_tool_round_trip(proxy: Proxy, model: str) -> None:
    """A free-form (custom) tool like Codex's apply_patch: a function with one `input`
    string for a chat model, passed through as is for a native one."""
    c = client(proxy)
    if model in NATIVE:  # the simulator sends a custom tool's SIM:args as its raw input
        directive, patch = "SIM:tool=apply_patch SIM:args=***_Begin_Patch", "***_Begin_Patch"
    else:  # ... and a function's as JSON arguments (the translated custom tool's `input`)
        directive = 'SIM:tool=apply_patch SIM:args={"input":"***\\u0020Begin\\u0020Patch"}'
        patch = "*** Begin Patch"
    prompt = {"role": "user", "content": f"Patch it. {directive}"}
    first = c.responses.create(model=model, input=[prompt], tools=[APPLY_PATCH])
    calls = [i for i in first.output if i.type == "custom_tool_call"]
    assert len(calls) == 1, first.output
    call = calls[0]
    assert call.name == "apply_patch"
    assert call.input == patch
    if model not in NATIVE:
        tools = upstream(proxy.sim, "/chat/completions")["body"]["tools"]
        params = tools[0]["function"]["parameters"]
        assert tools[0]["function"]["name"] == "apply_patch" and "input" in params["properties"]

    output = {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done!"}
    events = list(
        c.responses.create(
            model=model,
            input=[prompt, *items_of(first), output],
            tools=[APPLY_PATCH],
            stream=True,
        )
    )
    assert events[-1].type == "response.completed"
    assert "Tool result received: Done!" in events[-1].response.output_text
    if model not in NATIVE:
        assistant, result = upstream(proxy.sim, "/chat/completions")["body"]["messages"][-2:]
        fn = assistant["tool_calls"][0]["function"]
        assert fn["name"] == "apply_patch" and json.loads(fn["arguments"]) == {"input": patch}
        assert result == {"role": "tool", "tool_call_id": call.call_id, "content": "Done!"}


def test_streamed_tool_call_events(proxy: Proxy) -> None:
    """The argument deltas add up to the arguments in the done events (translated: no
    supported_api_list means chat only)."""
    events = raw_stream(
        proxy,
        {
            "model": "oca/mistral-large",
            "input": 'SIM:tool=get_weather SIM:args={"city":"Rome"}',
            "tools": [WEATHER],
        },
    )
    deltas = "".join(
        d["delta"] for _, d in events if d["type"] == "response.function_call_arguments.delta"
    )
    done = [d for _, d in events if d["type"] == "response.function_call_arguments.done"]
    assert json.loads(deltas) == {"city": "Rome"} and done[0]["arguments"] == deltas
    assert all(ev == d["type"] for ev, d in events)  # `event:` names match `type`
    assert events[-1][1]["response"]["output"][0]["type"] == "function_call"


# -- structured output -----------------------------------------------------------------------


@pytest.mark.parametrize("model", ALL)
def test_json_schema_output(proxy: Proxy, model: str) -> None:
    r = client(proxy).responses.create(
        model=model, input="Describe Ada as JSON", text={"format": PERSON}
    )
    assert r.status == "completed" and r.output_text
    assert r.text is not None and r.text.format is not None
    assert r.text.format.type == "json_schema"
    sent = upstream(proxy.sim, upstream_path(model))["body"]
    if model in NATIVE:
        assert sent["text"]["format"] == PERSON
    else:
        assert sent["response_format"] == {
            "type": "json_schema",
            "json_schema": {
                "name": "person",
                "schema": PERSON["schema"],
                "strict": True,
            },
        }


# -- conversation state ----------------------------------------------------------------------


@pytest.mark.parametrize("model", ALL)
def test_previous_response_id(proxy: Proxy, model: str) -> None:
    c = client(proxy)
    first = c.responses.create(model=model, input="My name is Ada.")
    second = c.responses.create(
        model=model, input="What is my name?", previous_response_id=first.id
    )
    assert "You said: What is my name?" in second.output_text
    assert second.previous_response_id == first.id
    sent = upstream(proxy.sim, upstream_path(model))["body"]
    # The proxy expanded the earlier turn itself: OCA need not store anything.
    text = json.dumps(sent["input"] if model in NATIVE else sent["messages"])
    assert "My name is Ada." in text and "You said: My name is Ada." in text
    assert "previous_response_id" not in sent

    # Streamed answers are remembered too.
    events = list(
        c.responses.create(
            model=model, input="And my age?", previous_response_id=second.id, stream=True
        )
    )
    assert events[-1].type == "response.completed"
    third = c.responses.create(
        model=model, input="Bye.", previous_response_id=events[-1].response.id
    )
    assert third.status == "completed"
    text = json.dumps(upstream(proxy.sim, upstream_path(model))["body"])
    for said in ("My name is Ada.", "What is my name?", "And my age?", "Bye."):
        assert said in text


def test_unknown_previous_response_id(proxy: Proxy) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client(proxy).responses.create(
            model="oca/grok3", input="hi", previous_response_id="resp_nope"
        )
    assert "resp_nope" in str(e.value) and "not found" in str(e.value)


@pytest.mark.parametrize("model", NATIVE)
def test_minted_reasoning_is_stripped_for_native_upstream(proxy: Proxy, model: str) -> None:
    """History from a translated turn (reasoning items and ids the proxy made up) sent to a
    native model: OCA must not see ids it never issued."""
    c = client(proxy)
    prompt = {"role": "user", "content": "Think first. SIM:reasoning"}
    translated = c.responses.create(model="oca/grok3", input=[prompt])
    minted = items_of(translated)
    assert [i["type"] for i in minted] == ["reasoning", "message"]
    assert minted[0]["id"].startswith("rs_oca_") and minted[1]["id"].startswith("msg_oca_")

    follow = {"role": "user", "content": "Go on."}
    r = c.responses.create(model=model, input=[prompt, *minted, follow])
    assert r.status == "completed"
    sent = upstream(proxy.sim, "/responses")["body"]["input"]
    assert not any(i.get("type") == "reasoning" for i in sent)
    assert "_oca_" not in json.dumps(sent)
    assert [i.get("role") for i in sent] == ["user", "assistant", "user"]
    assert "You said: Think first." in json.dumps(sent[1])


# -- errors and unusual endings --------------------------------------------------------------


@pytest.mark.parametrize("model", ALL)
@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_upstream_error_before_stream(proxy: Proxy, model: str, stream: bool) -> None:
    with pytest.raises(openai.RateLimitError) as e:
        c = client(proxy)
        if stream:
            list(c.responses.create(model=model, input="SIM:error=429", stream=True))
        else:
            c.responses.create(model=model, input="SIM:error=429")
    assert e.value.status_code == 429
    assert e.value.response.headers["retry-after"] == "2"
    body = e.value.response.json()
    assert body["error"]["type"] == "rate_limit_error"
    assert "OCA request id" in body["error"]["message"]


@pytest.mark.parametrize("model", ALL)
def test_mid_stream_error(proxy: Proxy, model: str) -> None:
    events = raw_stream(proxy, {"model": model, "input": "SIM:midstream_error"})
    types = [d["type"] for _, d in events]
    assert types[0] == "response.created"
    assert "response.completed" not in types
    if model in NATIVE:  # OCA's own error event, passed on
        assert types[-1] == "error"
        assert "mid-stream" in events[-1][1]["message"]
    else:
        assert types[-1] == "response.failed"
        failed = events[-1][1]["response"]
        assert failed["status"] == "failed" and "mid-stream" in failed["error"]["message"]


@pytest.mark.parametrize("model", ALL)
def test_mid_stream_error_buffered(proxy: Proxy, model: str) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        client(proxy).responses.create(model=model, input="SIM:midstream_error")
    assert e.value.status_code >= 500 and "mid-stream" in str(e.value)


@pytest.mark.parametrize("model", ALL)
def test_cut_stream_gets_a_terminal_event(proxy: Proxy, model: str) -> None:
    events = raw_stream(proxy, {"model": model, "input": "SIM:cut"})
    assert events[-1][1]["type"] in ("error", "response.failed"), events[-1]


@pytest.mark.parametrize("model", ALL)
def test_length_is_incomplete(proxy: Proxy, model: str) -> None:
    c = client(proxy)
    r = c.responses.create(model=model, input="Go long. SIM:length")
    assert r.status == "incomplete"
    assert r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    assert "You said" in r.output_text
    events = list(c.responses.create(model=model, input="Go long. SIM:length", stream=True))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize("model", NATIVE)
def test_empty_final_output_is_filled(proxy: Proxy, model: str) -> None:
    """Real OCA sends `response.completed` with `"output": []`: the items come from the
    `output_item.done` events, buffered or streamed."""
    sim = proxy.sim
    sim.config(empty_final_output=True)
    try:
        c = client(proxy)
        prompt = 'Both. SIM:tool=get_weather SIM:args={"city":"Oslo"}'
        r = c.responses.create(model=model, input=prompt, tools=[WEATHER])
        assert [i.type for i in r.output] == ["reasoning", "function_call"]
        assert json.loads(r.output[1].arguments) == {"city": "Oslo"}  # type: ignore[union-attr]
        r = c.responses.create(model=model, input="text please")
        assert "You said: text please" in r.output_text
        with c.responses.stream(model=model, input="streamed text") as s:
            final = s.get_final_response()
        assert "You said: streamed text" in final.output_text
    finally:
        sim.config(empty_final_output=False)


# -- legacy completions ----------------------------------------------------------------------

# OCA's list names no API for legacy completions (no source says OCA serves them): the
# proxy sends them natively, and when OCA refuses, once more through chat. Both ways run:
# the simulator serving /completions (a guess) and refusing it.
COMPLETION_WAYS = ["native", "via-chat"]


@contextlib.contextmanager
def oca_serves_completions(sim: Sim, on: bool) -> Iterator[None]:
    sim.config(serves_completions=on)
    try:
        yield
    finally:  # back to what this run's OCA_SIM_GUESSES says
        sim.config(
            serves_completions="serves_completions" in guesses_on(os.environ.get(GUESSES_ENV))
        )


@pytest.fixture(params=COMPLETION_WAYS)
def completions_way(request: pytest.FixtureRequest, proxy: Proxy) -> Iterator[str]:
    with oca_serves_completions(proxy.sim, request.param == "native"):
        yield request.param


def test_completions_non_stream(proxy: Proxy, completions_way: str) -> None:
    model = "oca/gpt-4.1"
    r = client(proxy).completions.create(model=model, prompt="Say hi", max_tokens=50)
    assert r.object == "text_completion" and r.model == model
    assert len(r.choices) == 1 and "You said: Say hi" in r.choices[0].text
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.completion_tokens > 0
    path = "/completions" if completions_way == "native" else "/chat/completions"
    sent = upstream(proxy.sim, path)
    assert sent["path"].endswith(f"/litellm{path}") and sent["body"]["stream"] is True
    if completions_way == "via-chat":  # the refused native call came first
        assert upstream(proxy.sim, "/litellm/completions")["body"]["prompt"] == "Say hi"


def test_completions_stream(proxy: Proxy, completions_way: str) -> None:
    chunks = list(
        client(proxy).completions.create(
            model="oca/gpt-4.1",
            prompt="Stream hi",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "text_completion" for c in chunks)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert "You said: Stream hi" in text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_completions_stream_ends_with_done(proxy: Proxy) -> None:
    r = httpx.post(
        f"{proxy.url}/v1/completions",
        json={"model": "oca/gpt-4.1", "prompt": "x", "stream": True},
        timeout=30,
    )
    events = sse_events(r.text)
    assert events[-1][1] == "[DONE]"
    assert all(json.loads(d)["object"] == "text_completion" for _, d in events[:-1])


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_completions_translated_n_echo_stop(proxy: Proxy, stream: bool) -> None:
    with oca_serves_completions(proxy.sim, False):  # OCA refuses: the retry goes through chat
        _completions_translated_n_echo_stop(proxy, stream)


def _completions_translated_n_echo_stop(proxy: Proxy, stream: bool) -> None:
    c = client(proxy)
    kw: Any = {"model": "oca/gpt-4.1", "prompt": "Echo me", "n": 2, "echo": True, "stop": ["\n\n"]}
    if stream:
        texts: dict[int, str] = {}
        finish: dict[int, str | None] = {}
        for chunk in c.completions.create(**kw, stream=True):
            for ch in chunk.choices:
                texts[ch.index] = texts.get(ch.index, "") + ch.text
                if ch.finish_reason:
                    finish[ch.index] = ch.finish_reason
        choices = [(i, texts[i], finish.get(i)) for i in sorted(texts)]
    else:
        r = c.completions.create(**kw)
        choices = [(ch.index, ch.text, ch.finish_reason) for ch in r.choices]
    # Both choices are there (the simulator only ever answers one).
    assert [i for i, _, _ in choices] == [0, 1]
    assert all(text.startswith("Echo me") for _, text, _ in choices)  # echo
    assert "You said: Echo me" in choices[0][1]
    assert all(f == "stop" for _, _, f in choices)
    sent = upstream(proxy.sim, "/chat/completions")["body"]
    assert sent["n"] == 2 and sent["stop"] == ["\n\n"]
    assert sent["messages"] == [{"role": "user", "content": "Echo me"}]


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_completions_native_passes_options(proxy: Proxy, stream: bool) -> None:
    with oca_serves_completions(proxy.sim, True):
        _completions_native_passes_options(proxy, stream)


def _completions_native_passes_options(proxy: Proxy, stream: bool) -> None:
    c = client(proxy)
    kw: Any = {"model": "oca/llama-4", "prompt": "Native", "n": 2, "echo": True, "stop": "END"}
    if stream:
        text = "".join(
            ch.choices[0].text for ch in c.completions.create(**kw, stream=True) if ch.choices
        )
    else:
        text = c.completions.create(**kw).choices[0].text
    assert "You said: Native" in text
    sent = upstream(proxy.sim, "/completions")["body"]
    assert sent["model"] == "oca/llama-4" and sent["prompt"] == "Native"
    assert (sent["n"], sent["echo"], sent["stop"]) == (2, True, "END")
    assert sent["stream"] is True and sent["stream_options"]["include_usage"] is True


def test_completions_mapped_name_native(proxy: Proxy) -> None:
    with oca_serves_completions(proxy.sim, True):
        r = client(proxy).completions.create(model="claude-haiku-4-5", prompt="map me")
    assert r.model == "claude-haiku-4-5"
    assert upstream(proxy.sim, "/completions")["body"]["model"] == "oca/llama-4"


def test_completions_error_before_stream(proxy: Proxy, completions_way: str) -> None:
    with pytest.raises(openai.RateLimitError) as e:
        client(proxy).completions.create(model="oca/gpt-4.1", prompt="SIM:error=429")
    assert e.value.response.headers["retry-after"] == "2"
