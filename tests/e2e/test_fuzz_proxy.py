"""Issue 7, "bad input gets a clear answer", property-based (hypothesis).

1. `gateway.prepare` (model mapping, routing and every translator's request side) over every
   API endpoint, with the simulator's model catalog and without one: any generated body is
   either prepared into a JSON-able OCA request or refused with a 4xx ApiError.
2. The running proxy (mitmdump in front of the simulator): generated JSON bodies, junk bytes,
   wrong content types and non-UTF-8 to every API path. Nothing gets a 5xx made by the proxy
   itself, every error is JSON in the called API's shape, and the proxy keeps serving.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import Proxy, Sim, sse_events, start_proxy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from oca_addon.core import sse
from oca_addon.core.errors import ApiError
from oca_addon.core.exchange import prepare
from oca_addon.core.modelinfo import Catalog
from oca_addon.core.routing import Endpoint
from oca_addon.core.settings import MappingTarget, Settings
from oca_addon.core.streams import StreamDriver
from oca_addon.sim.models import model_info_payload
from oca_addon.translate.chat import prepare_chat_request, validate_chat_request
from oca_addon.translate.responses import ResponseHistory

EXAMPLES = int(os.environ.get("OCA_FUZZ_EXAMPLES", "150"))

# -- strategies ----------------------------------------------------------------------------

text = st.text(max_size=20).map(lambda s: s.replace("SIM:", "SIM-"))
leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
junk: st.SearchStrategy[Any] = st.recursive(
    leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


def maybe(strategy: st.SearchStrategy[Any], bad: int = 10) -> st.SearchStrategy[Any]:
    """The well-formed value, or (one time in `bad`) anything at all."""
    return st.integers(1, bad).flatmap(lambda i: junk if i == 1 else strategy)


def model(*good: str) -> st.SearchStrategy[Any]:
    """A name this endpoint can serve, now and then any name (or not a name)."""
    return st.integers(1, 5).flatmap(lambda i: maybe(MODELS) if i == 1 else st.sampled_from(good))


MODELS = st.sampled_from(
    [
        "oca/gpt-4.1",
        "oca/gpt-5",
        "oca/gpt-5-codex",
        "oca/claude-sonnet-4",
        "oca/llama-4",
        "oca/text-embedding-3-small",
        "oca/no-such-model",
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
        "gpt-5-mapped",
        "anything",
        "",
        "\ud800",  # issue 23.6: a lone surrogate (UTF-8 cannot hold it)
        "oca/gpt-4.1\udfff",
    ]
)
ROLES = st.sampled_from(["user", "assistant", "system", "tool", "developer", "function", "x"])

chat_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": maybe(text)}),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": maybe(
                st.fixed_dictionaries(
                    {"url": st.just("data:image/png;base64,iVBORw0KGgo=")},
                    optional={"detail": st.sampled_from(["low", "high", "auto"])},
                )
            ),
        }
    ),
    junk,
)
tool_call = st.fixed_dictionaries(
    {
        "id": maybe(text),
        "type": st.just("function"),
        "function": maybe(st.fixed_dictionaries({"name": maybe(text), "arguments": maybe(text)})),
    }
)
chat_message = st.fixed_dictionaries(
    {"role": maybe(ROLES)},
    optional={
        "content": st.one_of(text, st.lists(chat_part, max_size=3), junk),
        # issue 23.6: a number, a boolean, ... (junk) through an adapter was a 500
        "tool_calls": maybe(st.lists(tool_call, max_size=2), bad=4),
        "tool_call_id": maybe(text),
        "name": maybe(text),
    },
)
function_tool = st.fixed_dictionaries(
    {
        "type": st.just("function"),
        "function": maybe(
            st.fixed_dictionaries(
                {"name": maybe(text)},
                optional={"parameters": maybe(st.just({"type": "object", "properties": {}}))},
            )
        ),
    }
)
COMMON = {
    "stream": maybe(st.booleans()),
    "temperature": maybe(st.floats(0, 2)),
    "max_tokens": maybe(st.integers(1, 200)),
    "top_p": maybe(st.floats(0, 1)),
    "metadata": junk,
    "unknown_field": junk,
}
chat_body = st.fixed_dictionaries(
    {
        "model": model(
            "oca/gpt-4.1",
            "claude-sonnet-4-6",
            "gpt-5-mapped",
            "oca/llama-4",
            "oca/gpt-5-codex",  # Responses-only: through the upstream adapter
            "oca/claude-opus-4",  # Messages-only: through the upstream adapter
        ),
        "messages": maybe(st.lists(chat_message, min_size=1, max_size=4)),
    },
    optional={
        **COMMON,
        "tools": maybe(st.lists(function_tool, max_size=2)),
        "tool_choice": maybe(st.sampled_from(["auto", "none", "required"])),
        "reasoning_effort": maybe(st.sampled_from(["low", "medium", "high"])),
        "stream_options": junk,
        "n": maybe(st.integers(1, 3)),
    },
)

anthropic_block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": maybe(text)}),
    st.fixed_dictionaries(
        {
            "type": st.just("tool_use"),
            "id": maybe(text),
            "name": maybe(text),
            "input": maybe(st.dictionaries(text, leaf, max_size=2)),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("tool_result"),
            "tool_use_id": maybe(text),
            "content": st.one_of(text, st.lists(junk, max_size=2)),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("image"),
            "source": maybe(
                st.fixed_dictionaries(
                    {
                        "type": st.just("base64"),
                        "media_type": st.just("image/png"),
                        "data": st.just("iVBORw0KGgo="),
                    }
                )
            ),
        }
    ),
    st.fixed_dictionaries({"type": st.just("thinking"), "thinking": maybe(text)}),
    junk,
)
anthropic_message = st.fixed_dictionaries(
    {
        "role": maybe(st.sampled_from(["user", "assistant", "system"])),
        "content": st.one_of(text, st.lists(anthropic_block, max_size=3), junk),
    }
)
anthropic_tool = st.fixed_dictionaries(
    {"name": maybe(text), "input_schema": maybe(st.just({"type": "object"}))},
    optional={"description": maybe(text), "type": maybe(st.sampled_from(["custom", "bash_x"]))},
)
messages_body = st.fixed_dictionaries(
    {
        "model": model("claude-sonnet-4-6", "oca/claude-sonnet-4", "claude-haiku-4-5"),
        "max_tokens": maybe(st.integers(1, 300)),
        "messages": maybe(st.lists(anthropic_message, min_size=1, max_size=4)),
    },
    optional={
        **{k: v for k, v in COMMON.items() if k != "max_tokens"},
        "system": st.one_of(text, st.lists(anthropic_block, max_size=2), junk),
        "tools": maybe(st.lists(anthropic_tool, max_size=2)),
        "tool_choice": maybe(
            st.fixed_dictionaries({"type": st.sampled_from(["auto", "any", "tool", "none"])})
        ),
        "thinking": maybe(
            st.fixed_dictionaries(
                {"type": st.just("enabled"), "budget_tokens": st.integers(0, 5000)}
            )
        ),
        "stop_sequences": maybe(st.lists(text, max_size=2)),
    },
)
responses_item = st.one_of(
    st.fixed_dictionaries(
        {"role": maybe(ROLES), "content": st.one_of(text, st.lists(junk, max_size=2))},
        optional={"type": st.just("message")},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("function_call"),
            "call_id": maybe(text),
            "name": maybe(text),
            "arguments": maybe(text),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("function_call_output"), "call_id": maybe(text), "output": maybe(text)}
    ),
    junk,
)
responses_body = st.fixed_dictionaries(
    {
        "model": model("oca/gpt-4.1", "oca/gpt-5", "oca/gpt-5-codex"),
        "input": st.one_of(text, st.lists(responses_item, max_size=4), junk),
    },
    optional={
        **COMMON,
        "instructions": maybe(text),
        "max_output_tokens": maybe(st.integers(1, 300)),
        "reasoning": maybe(st.fixed_dictionaries({"effort": st.sampled_from(["low", "high"])})),
        "previous_response_id": maybe(text),
        "store": maybe(st.booleans()),
        "tools": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["function", "web_search"]), "name": maybe(text)}
                ),
                max_size=2,
            )
        ),
    },
)
completions_body = st.fixed_dictionaries(
    {
        "model": model("oca/gpt-4.1", "oca/llama-4"),
        "prompt": st.one_of(text, st.lists(text, max_size=3), junk),
    },
    optional={**COMMON, "echo": maybe(st.booleans()), "suffix": maybe(text), "n": junk},
)
embeddings_body = st.fixed_dictionaries(
    {
        "model": model("oca/text-embedding-3-small"),
        "input": st.one_of(text, st.lists(text, max_size=3), junk),
    },
    optional={"encoding_format": maybe(st.sampled_from(["float", "base64"])), "x": junk},
)
count_tokens_body = st.fixed_dictionaries(
    {
        "model": model("claude-sonnet-4-6"),
        "messages": maybe(st.lists(anthropic_message, max_size=3)),
    },
    optional={"system": junk, "tools": junk},
)

BODIES: dict[Endpoint, st.SearchStrategy[dict[str, Any]]] = {
    Endpoint.CHAT: chat_body,
    Endpoint.MESSAGES: messages_body,
    Endpoint.RESPONSES: responses_body,
    Endpoint.COMPLETIONS: completions_body,
    Endpoint.EMBEDDINGS: embeddings_body,
    Endpoint.COUNT_TOKENS: count_tokens_body,
}

SETTINGS = Settings(
    model_mapping={
        "claude-sonnet-4-6": MappingTarget("oca/gpt-4.1"),
        "claude-*haiku*": MappingTarget("oca/llama-4"),
        "gpt-5-mapped": MappingTarget("oca/gpt-5", "high"),
    },
    default_model="oca/gpt-4.1",
)
CATALOG = Catalog.from_model_info(model_info_payload())

CHAT_STREAM = (
    b"".join(
        sse.encode(c)
        for c in (
            {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "oca/gpt-4.1",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}],
            },
            {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "oca/gpt-4.1",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            },
            {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "oca/gpt-4.1",
                "choices": [],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            },
        )
    )
    + sse.DONE
)

# -- 1. the pure request side ------------------------------------------------------------------

PREPARED = [e for e in BODIES if e is not Endpoint.COUNT_TOKENS]


@pytest.mark.parametrize("endpoint", PREPARED, ids=[e.value for e in PREPARED])
@pytest.mark.parametrize("with_catalog", [True, False], ids=["catalog", "no-catalog"])
def test_prepare_never_fails_unexpectedly(endpoint: Endpoint, with_catalog: bool) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=BODIES[endpoint])
    def check(body: dict[str, Any]) -> None:
        try:
            ex = prepare(
                endpoint, body, SETTINGS, CATALOG if with_catalog else None, ResponseHistory()
            )
        except ApiError as e:
            assert 400 <= e.status < 500, (e.status, e.message)
            assert e.message
            return
        out = json.loads(json.dumps(ex.upstream_body, allow_nan=False))
        assert isinstance(out.get("model"), str) and out["model"].startswith("oca/")
        if endpoint is not Endpoint.EMBEDDINGS:
            assert out.get("stream") is True
        # A chat stream is what OCA answers on these routes (an adapter's route gets the
        # model's own API's stream: tests/unit/test_routing_matrix.py covers those).
        translated = not ex.route.native and ex.route.adapter is None
        if ex.make_translator is not None and translated:
            # the answer side of the same request: a plain chat stream translates cleanly
            driver = StreamDriver(ex.make_translator())
            produced = b""
            for k in range(0, len(CHAT_STREAM), 7):
                produced += b"".join(driver(CHAT_STREAM[k : k + 7]))
            produced += b"".join(driver(b""))
            for ev in sse.parse_all(produced):
                if ev.data != "[DONE]":
                    json.loads(ev.data)
        if translated or (endpoint is Endpoint.CHAT and ex.route.native):
            assert isinstance(ex.client_body(CHAT_STREAM), dict)

    check()


@settings(max_examples=EXAMPLES, deadline=None)
@given(body=chat_body)
def test_chat_prepare(body: dict[str, Any]) -> None:
    try:
        validate_chat_request(body)
    except ApiError as e:
        assert e.status == 400 and "messages" in e.message
        return
    out = prepare_chat_request(body)
    assert out["stream"] is True and out["stream_options"]["include_usage"] is True
    json.dumps(out)
    for m in out["messages"]:
        for part in m.get("content") if isinstance(m.get("content"), list) else ():
            if isinstance(part, dict) and isinstance(part.get("image_url"), dict):
                assert "detail" not in part["image_url"]


# -- 2. the running proxy ----------------------------------------------------------------------

PATHS: dict[Endpoint, str] = {
    Endpoint.CHAT: "/v1/chat/completions",
    Endpoint.MESSAGES: "/v1/messages",
    Endpoint.RESPONSES: "/v1/responses",
    Endpoint.COMPLETIONS: "/v1/completions",
    Endpoint.EMBEDDINGS: "/v1/embeddings",
    Endpoint.COUNT_TOKENS: "/v1/messages/count_tokens",
}
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/html",
        "",
    ]
)


@st.composite
def payloads(draw: st.DrawFn, endpoint: Endpoint) -> tuple[bytes, dict[str, str]]:
    kinds = ["json"] * 6 + ["junk-json", "bytes", "non-utf8", "type", "deep", "huge-int"]
    kinds += ["surrogate"]
    kind = draw(st.sampled_from(kinds))
    headers = {"content-type": "application/json"}
    if kind == "deep":  # issue 14.5: beyond orjson's 1,024 levels, and the stdlib's stack
        depth = draw(st.integers(1_025, 12_000))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        inner = opener * depth + b"1" + closer * depth
        body = b'{"model": "oca/gpt-4.1", "x": ' + inner + b"}"
    elif kind == "huge-int":  # beyond the 4,300 digits Python converts
        digits = b"9" * draw(st.integers(4_301, 6_000))
        sign = draw(st.sampled_from([b"", b"-"]))
        field = draw(st.sampled_from([b"max_tokens", b"model", b"temperature", b"x"]))
        body = b'{"model": "oca/gpt-4.1", "' + field + b'": ' + sign + digits + b"}"
    elif kind == "surrogate":  # issue 23.6: a lone surrogate as the model (JSON escapes it)
        bad = draw(st.sampled_from(["\ud800", "\udfff", "a\udc80b", "oca/gpt-4.1\ud83d"]))
        body = json.dumps({**draw(BODIES[endpoint]), "model": bad}).encode()
    elif kind == "json":
        body = json.dumps(draw(BODIES[endpoint])).encode()
    elif kind == "junk-json":
        body = json.dumps(draw(junk)).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=200))
    elif kind == "non-utf8":
        body = json.dumps(draw(BODIES[endpoint])).encode()[:-1] + b'\xff"}'
    else:
        body = json.dumps(draw(BODIES[endpoint])).encode()
        headers = {"content-type": draw(CONTENT_TYPES)}
        if not headers["content-type"]:
            headers = {}
    return body, headers


@pytest.fixture(scope="module")
def fuzz_proxy(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    mapping = {
        "model_mapping": {
            "claude-sonnet-4-6": "oca/gpt-4.1",
            "claude-*haiku*": "oca/llama-4",
            "gpt-5-mapped": {"target": "oca/gpt-5", "reasoning_effort": "high"},
        },
        "default_model": "oca/gpt-4.1",
    }
    p = start_proxy(
        sim,
        tmp_path_factory.mktemp("fuzz"),
        settings=mapping,
        options={"oca_upstream_idle_timeout": "20"},
    )
    yield p
    p.stop()


def check_answer(r: httpx.Response, endpoint: Endpoint) -> None:
    flavor = endpoint.flavor
    ctype = r.headers.get("content-type", "")
    if r.status_code >= 500:
        # Only OCA's own failures may be 5xx (relayed with its status); none from the proxy.
        message = r.json()["error"]["message"]
        assert message.startswith(("OCA answered", "OCA sent", "oca-proxy could not get")), (
            r.status_code,
            message,
        )
        pytest.fail(f"OCA failed on a generated request: {r.status_code} {message}")
    if r.status_code >= 400:
        assert "application/json" in ctype, (r.status_code, r.text[:300])
        body = r.json()
        if flavor == "anthropic":
            assert body["type"] == "error" and body["error"]["message"], body
        else:
            assert body["error"]["message"] and body["error"]["type"], body
        return
    assert r.status_code == 200, r.text[:300]
    if "text/event-stream" in ctype:
        events = sse_events(r.text)
        assert events
        for _, data in events:
            if data != "[DONE]":
                json.loads(data)
    else:
        assert isinstance(r.json(), dict)


@pytest.mark.parametrize("endpoint", list(PATHS), ids=[e.value for e in PATHS])
def test_running_proxy_survives_generated_requests(fuzz_proxy: Proxy, endpoint: Endpoint) -> None:
    url = fuzz_proxy.url + PATHS[endpoint]
    seen: dict[int, int] = {}
    with httpx.Client(timeout=30) as client:

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @given(payload=payloads(endpoint))
        def check(payload: tuple[bytes, dict[str, str]]) -> None:
            body, headers = payload
            assume(b"SIM:" not in body)
            r = client.post(url, content=body, headers=headers)
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
            check_answer(r, endpoint)

        check()
    print(f"{endpoint.value}: statuses {dict(sorted(seen.items()))}")
    h = fuzz_proxy.health()
    assert h["status"] == "ok" and h["inflight"] == 0
    assert 200 in seen or endpoint is Endpoint.EMBEDDINGS or len(seen) > 1
    assert "Traceback" not in fuzz_proxy.log(), fuzz_proxy.log()[-3000:]


@pytest.mark.parametrize("model", ["oca/gpt-5-codex", "oca/claude-opus-4"])
def test_found_by_the_fuzz_tools_not_an_array_through_an_adapter(
    fuzz_proxy: Proxy, model: str
) -> None:
    """A chat request with `"tools": true` for a model reached through an upstream adapter
    (Responses-only, Messages-only) was a 500; it cannot be translated: a 400 saying so."""
    body = {"model": model, "messages": [{"role": "user"}], "tools": True}
    r = httpx.post(fuzz_proxy.url + PATHS[Endpoint.CHAT], json=body, timeout=30)
    check_answer(r, Endpoint.CHAT)
    assert r.status_code == 400 and "'tools' must be an array" in r.json()["error"]["message"]


@settings(
    max_examples=max(20, EXAMPLES // 5), deadline=None, suppress_health_check=list(HealthCheck)
)
@given(csrf=st.text(max_size=40), header=st.sampled_from(["form", "header"]))
def test_logout_form_with_any_text(fuzz_proxy: Proxy, csrf: str, header: str) -> None:
    """Non-ASCII form fields (issue 14.5): a 400 or 403 page, never a 500."""
    if header == "form":
        r = httpx.post(f"{fuzz_proxy.url}/logout", data={"csrf": csrf}, timeout=10)
    else:
        # what HTTP itself allows in a header value (h11 refuses the rest on the client side)
        assume(csrf == csrf.strip() and not any(c < " " or c == "\x7f" for c in csrf))
        r = httpx.post(
            f"{fuzz_proxy.url}/logout", headers={"x-csrf-token": csrf.encode()}, timeout=10
        )
    assert r.status_code in (400, 403), (r.status_code, r.text[:200])
    assert fuzz_proxy.token_file.exists()


@settings(
    max_examples=max(10, EXAMPLES // 10), deadline=None, suppress_health_check=list(HealthCheck)
)
@given(
    count=st.one_of(st.integers(0, 2_000), st.integers(245, 255)),
    size=st.sampled_from([1, 100, 10_000, 70_000, 300_000]),
)
def test_huge_headers_get_an_answer(fuzz_proxy: Proxy, count: int, size: int) -> None:
    """Many and huge headers (issue 14): a 431, or an ordinary answer; never a hang or 5xx."""
    headers = {f"x-h{i}": "v" * (size if i == 0 else 1) for i in range(count)}
    try:
        r = httpx.post(
            f"{fuzz_proxy.url}/v1/chat/completions",
            json={"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "x"}]},
            headers=headers,
            timeout=30,
        )
    except httpx.RemoteProtocolError:
        pytest.fail("the proxy closed the connection without an answer")
    # httpx adds 7 fields of its own (host, accept, user-agent, content-length, ...)
    too_big = count + 7 > 256 or (count > 0 and size > 65_536)
    if too_big:
        assert r.status_code == 431, (count, size, r.status_code)
        assert r.json()["error"]["message"]
    else:
        assert r.status_code == 200, (count, size, r.text[:200])


# -- issue 23.6: found by the attack ------------------------------------------------------------


@pytest.mark.parametrize("model", ["oca/gpt-5-codex", "oca/claude-opus-4"])
@pytest.mark.parametrize("calls", [5, -1, True, 0.5, "x", {}], ids=repr)
def test_found_by_the_attack_tool_calls_not_an_array_through_an_adapter(
    fuzz_proxy: Proxy, model: str, calls: Any
) -> None:
    """`tool_calls` given as a number (or anything but an array) on a model reached through
    an upstream adapter was a 500 TypeError: now a 400 naming the field."""
    body = {
        "model": model,
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "user", "content": "y"},
        ],
    }
    r = httpx.post(fuzz_proxy.url + PATHS[Endpoint.CHAT], json=body, timeout=30)
    check_answer(r, Endpoint.CHAT)
    assert r.status_code == 400, r.text
    assert "'messages[1].tool_calls' must be an array" in r.json()["error"]["message"]
    assert "Traceback" not in fuzz_proxy.log()


@pytest.mark.parametrize("endpoint", list(PATHS), ids=[e.value for e in PATHS])
def test_found_by_the_attack_lone_surrogate_model(fuzz_proxy: Proxy, endpoint: Endpoint) -> None:
    """A lone surrogate as the model (`{"model":"\\ud800"}`) was a 500 UnicodeEncodeError on
    /v1/responses; on chat it took the dashboard down (500 until restart) and lost that
    batch's log lines. Now a 400 naming the model, and everything after works."""
    body = {
        "model": "\ud800",
        "messages": [{"role": "user", "content": "x"}],
        "input": "x",
        "prompt": "x",
        "max_tokens": 5,
    }
    r = httpx.post(
        fuzz_proxy.url + PATHS[endpoint],
        content=json.dumps(body).encode(),  # "\ud800" escaped, as a client's JSON has it
        headers={"content-type": "application/json"},
        timeout=30,
    )
    check_answer(r, endpoint)
    if endpoint is not Endpoint.COUNT_TOKENS:  # counted locally: the model is not used
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert "'model'" in message and "surrogate" in message
    # the next call still gets its log line, and the dashboard still renders
    line = "200 POST /v1/chat/completions · chat · oca/gpt-4.1"
    before = fuzz_proxy.log().count(line)
    ok = httpx.post(
        fuzz_proxy.url + "/v1/chat/completions",
        json={"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "after"}]},
        timeout=30,
    )
    assert ok.status_code == 200
    page = httpx.get(fuzz_proxy.url + "/", timeout=30)
    assert page.status_code == 200 and page.content.decode("utf-8")
    assert httpx.get(fuzz_proxy.url + "/api/state", timeout=30).status_code == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and fuzz_proxy.log().count(line) == before:
        time.sleep(0.1)
    log = fuzz_proxy.log()
    assert log.count(line) > before, log[-2000:]
    if endpoint is not Endpoint.COUNT_TOKENS:
        assert f"400 POST {PATHS[endpoint]} " in log
    assert "Traceback" not in log, log[-3000:]


def _csrf(p: Proxy) -> str:
    page = httpx.get(p.url + "/", timeout=30).text
    return page.split("name=csrf-token content='", 1)[1].split("'", 1)[0]


DASHBOARD_BODIES = {
    "deep-object": b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    "deep-array": b"[" * 5_000 + b"]" * 5_000,
    "huge-int": b'{"flow": ' + b"9" * 5_000 + b"}",
    "non-utf8": b'{"flow": "\xff"}',
    "not-json": b"{nope",
    "surrogate": b'{"flow": "\\ud800", "model": "\\ud800", "default_model": "\\ud800"}',
    "model-not-text": b'{"flow": "x", "model": [[[1]]], "effort": {}}',
}


@pytest.mark.parametrize("path", ["/api/settings", "/api/replay"])
@pytest.mark.parametrize("kind", list(DASHBOARD_BODIES))
def test_found_by_the_attack_dashboard_writes_with_odd_json(
    fuzz_proxy: Proxy, path: str, kind: str
) -> None:
    """/api/settings and /api/replay with 5,000-deep JSON (and a valid CSRF token) were a
    500: now a 400 in the dashboard's own shape ({"ok": false, "error": ...})."""
    r = httpx.post(
        fuzz_proxy.url + path,
        content=DASHBOARD_BODIES[kind],
        headers={"x-csrf-token": _csrf(fuzz_proxy), "content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 400, (r.status_code, r.text[:300])
    body = r.json()
    assert body["ok"] is False and body["error"], body
    assert "Traceback" not in fuzz_proxy.log()


@settings(
    max_examples=max(20, EXAMPLES // 5), deadline=None, suppress_health_check=list(HealthCheck)
)
@given(
    payload=st.one_of(
        junk.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=100),
        st.integers(1_025, 8_000).map(lambda n: b"[" * n + b"]" * n),
        st.text(max_size=20).map(lambda t: json.dumps({"flow": t, "model": t}).encode()),
    ),
    path=st.sampled_from(["/api/replay", "/api/settings"]),
)
def test_dashboard_writes_with_any_body(fuzz_proxy: Proxy, payload: bytes, path: str) -> None:
    """Whatever the body of a dashboard write (with a valid CSRF token): never a 500."""
    if path == "/api/settings":  # a well-formed mapping would be saved: only what cannot be
        with contextlib.suppress(ValueError, RecursionError):
            value = json.loads(payload)
            assume(not (isinstance(value, dict) and "default_model" in value))
    r = httpx.post(
        fuzz_proxy.url + path,
        content=payload,
        headers={"x-csrf-token": _csrf(fuzz_proxy), "content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code in (400, 409), (r.status_code, r.text[:300])
    assert r.json()["ok"] is False
