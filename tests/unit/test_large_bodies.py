"""Large request bodies (a Claude Code turn of hundreds of KB): the fast paths give what the
general paths give, and the proxy keeps at most one extra copy of a body per request.

No timing here (bench/ measures that): results and memory only.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import tracemalloc
from typing import Any

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from bench import bigbody
from oca_addon.addons.gateway import Gateway
from oca_addon.core import jsonio
from oca_addon.core.apis import api_for
from oca_addon.core.errors import RequestError
from oca_addon.core.exchange import parse_json_body, prepare
from oca_addon.core.modelinfo import Catalog
from oca_addon.core.routing import Endpoint
from oca_addon.core.settings import Settings
from oca_addon.mitm import annotate
from oca_addon.mitm.state import ProxyState, Upstream
from oca_addon.sim.models import model_info_payload
from oca_addon.translate.anthropic import anthropic_to_chat
from oca_addon.translate.anthropic.blocks import tool_arguments
from oca_addon.translate.count_tokens import count_tokens
from oca_addon.translate.responses import ResponseHistory, responses_to_chat

MODEL = "oca/grok3"  # chat only: Anthropic and Responses are translated
PATHS = {"chat": "/v1/chat/completions", "anthropic": "/v1/messages", "responses": "/v1/responses"}
CATALOG = Catalog.from_model_info(model_info_payload())


def big(kind: str, size: int = 300_000) -> bytes:
    return bigbody.make_body(kind, size, "What next? SIM:chunks=3", MODEL)


# -- the generated bodies ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["chat", "anthropic", "responses"])
def test_bodies_are_deterministic_and_claude_code_shaped(kind: str) -> None:
    raw = big(kind)
    assert raw == big(kind)
    assert 300_000 <= len(raw) < 330_000
    body = json.loads(raw)
    history = body["messages"] if kind != "responses" else body["input"]
    assert len(history) > 150 and len(body["tools"]) >= 15


# -- parsing from bytes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "wanted"),
    [
        (b'{"a": 1, "a": 2}', {"a": 2}),
        (b'{"x": NaN}', None),  # the standard library reads NaN; orjson does not
        (b'{"t": "\\ud83d"}', {"t": "\ud83d"}),  # a lone surrogate, escaped
        ('{"t": "é→中"}'.encode(), {"t": "é→中"}),
    ],
)
def test_parse_from_bytes_reads_what_the_text_path_reads(raw: bytes, wanted: Any) -> None:
    got = parse_json_body(raw, "application/json")
    expected = jsonio.loads(raw.decode())
    if wanted is None:
        assert got.keys() == expected.keys()
    else:
        assert got == expected == wanted


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xef\xbb\xbf{}", "not valid JSON"),
        (b"\xff{}", "not valid UTF-8 (byte 0)"),
        (b"[1]", "must be a JSON object, not list"),
        (b'{"a": }', "not valid JSON: Expecting value at line 1, column 7"),
    ],
)
def test_parse_errors_still_say_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(RequestError) as e:
        parse_json_body(raw, "application/json")
    assert message in e.value.message


# -- the translations -------------------------------------------------------------------


def test_anthropic_estimate_made_later_is_the_same_number() -> None:
    body = json.loads(big("anthropic"))
    now_chat, now = anthropic_to_chat(body, target_model=MODEL)
    later_chat, later = anthropic_to_chat(body, target_model=MODEL, estimate_later=True)
    assert now_chat == later_chat
    assert later.estimate is not None  # waiting
    assert later.input_tokens() == now.input_tokens_estimate == count_tokens(body) > 50_000
    assert later.estimate is None  # made, and what it needed let go


def test_prepare_leaves_the_estimate_to_settle() -> None:
    body = json.loads(big("anthropic"))
    ex = prepare(Endpoint.MESSAGES, body, Settings(), CATALOG, ResponseHistory())
    assert ex.ctx.estimate is not None
    ex.settle()
    assert ex.ctx.estimate is None
    assert ex.ctx.input_tokens_estimate == count_tokens(body)


def test_tool_arguments_are_compact_json_of_the_input() -> None:
    """What a tool_use input becomes as chat arguments: its compact JSON (as the Responses
    translation writes it), each JSON value as it was (1, 1.0 and true apart), non-ASCII as
    is; what orjson cannot write goes the standard library's way."""
    assert tool_arguments({"a": 1, "b": [1.0, True, None]}) == '{"a":1,"b":[1.0,true,null]}'
    assert tool_arguments({"path": "é/日本.py", "s": 'say "hi"\n'}) == (
        '{"path":"é/日本.py","s":"say \\"hi\\"\\n"}'
    )
    assert tool_arguments({"n": 2**70}) == '{"n":1180591620717411303424}'
    assert tool_arguments({}) == "{}"


def test_long_conversations_translate_the_same_twice() -> None:
    """The second request of a conversation gives the same body."""
    body = json.loads(big("anthropic"))
    first, _ = anthropic_to_chat(body, target_model=MODEL)
    second, _ = anthropic_to_chat(json.loads(big("anthropic")), target_model=MODEL)
    assert jsonio.dumps(first) == jsonio.dumps(second)
    calls = [c for m in first["messages"] for c in m.get("tool_calls", ())]
    assert len(calls) > 100
    for call in calls:  # compact JSON, as the Responses translation writes it
        args = call["function"]["arguments"]
        assert args == json.dumps(json.loads(args), ensure_ascii=False, separators=(",", ":"))


def test_responses_history_items_translate_in_order() -> None:
    body = json.loads(big("responses"))
    chat, ctx = responses_to_chat(body, target_model=MODEL)
    roles = [m["role"] for m in chat["messages"]]
    assert roles[0] == "system" and roles[-1] == "user"
    calls = [m for m in chat["messages"] if m.get("tool_calls")]
    tools = [m for m in chat["messages"] if m["role"] == "tool"]
    assert len(calls) == len(tools) > 100
    first_call = next(i for i in body["input"] if i["type"] == "function_call")
    assert calls[0]["tool_calls"][0]["function"]["arguments"] == first_call["arguments"]
    # store: false (as Codex sends it): nothing to remember for previous_response_id
    assert body["store"] is False and ctx.input_items == []
    _, stored = responses_to_chat({**body, "store": True}, target_model=MODEL)
    assert len(stored.input_items) == len(body["input"])


# -- what the request hook keeps --------------------------------------------------------


class _Tokens:
    async def access_token(self) -> str:
        return "at-0123456789"


class _SettingsFile:
    def get(self) -> Settings:
        return Settings()


def _gateway() -> Gateway:
    state = ProxyState()
    state.tokens = _Tokens()  # type: ignore[assignment]
    state.settings_file = _SettingsFile()  # type: ignore[assignment]
    state.upstream = Upstream(
        "http://127.0.0.1:9/20250206/app/litellm", "http://127.0.0.1:9", "id", "reverse"
    )
    state._catalog = CATALOG
    state.models_ttl = 10**9
    return Gateway(state)


def _flow(kind: str, raw: bytes) -> http.HTTPFlow:
    f = tflow.tflow()
    req = f.request
    req.scheme, req.host, req.port = "http", "127.0.0.1", 9
    req.method, req.path = "POST", PATHS[kind]
    req.headers = http.Headers(
        [(b"host", b"127.0.0.1:8669"), (b"content-type", b"application/json")]
    )
    req.raw_content = raw
    return f


@pytest.mark.parametrize("kind", ["chat", "anthropic", "responses"])
def test_a_large_request_keeps_at_most_one_extra_copy(kind: str) -> None:
    """After the request hook (and the work done once the request has gone), the flow holds
    the upstream body and the client's body as text for mitmweb: no parsed copy of either."""
    raw = big(kind, 1_000_000)
    gw = _gateway()

    async def hook() -> tuple[http.HTTPFlow, int, int]:
        # The conversation's previous turn first: what is remembered from turn to turn (the
        # tool-call arguments) is not this request's. Traced from here, so that what the
        # memo lets go of the previous turn counts as well as what it keeps of this one.
        tracemalloc.start()
        await gw._forward(_flow(kind, raw), api_for(PATHS[kind]))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # its work left for after sending
        await asyncio.sleep(0)
        gw.state.inflight.clear()
        f = _flow(kind, raw)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        await gw._forward(f, api_for(PATHS[kind]))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # the work left for after sending
        await asyncio.sleep(0)
        # What the memo pushed out (the previous turn's) is freed as a call ends (Keepalive).
        gw.state.conversations.release()
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return f, kept, len(f.request.raw_content or b"")

    f, kept, sent = asyncio.run(hook())
    client = annotate.meta(f)["client_request"]
    assert client["size"] == len(raw) and client["body"] == raw.decode()
    inflight = gw.state.inflight[f.id]
    assert inflight.exchange.upstream_body == {}  # the bytes on the flow are the request
    # The upstream body (the request itself) and one copy of the client's (as text: 2 bytes a
    # character here, for the CJK in it): the parsed body would be several times its size.
    # The conversation memo keeps one conversation, not one per request: this turn's took
    # the place of the previous one's (read the quick way: its structs, which hold views of
    # this request's bytes, and the chat messages' texts), tests/unit/test_quick.py
    # compares what it keeps with a parsed conversation's.
    text = sys.getsizeof(client["body"])
    # The stream's opening events, written ahead (Exchange.settle): a Responses one echoes
    # the request's instructions and tools, as the API's `response` object does.
    primed = inflight.exchange.primed
    opening = sum(map(len, getattr(primed, "_opening", None) or ()))
    assert kept < sent + text + opening + 250_000, (kept, sent, text, opening)
    assert len(gw.state.conversations) == (0 if kind == "chat" else 1)
