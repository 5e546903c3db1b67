"""The real `openai` and `anthropic` SDKs as a client would call the proxy, and what each
makes of the answer, in one shape (`Outcome`): chat completions, Responses, Messages and
legacy completions, streamed or not.

Shared by tests/unit/test_routing_matrix.py (the SDKs in process, over a MockTransport to a
fake proxy) and tests/e2e/test_e2e_matrix.py (a real mitmdump): the caller builds the
request in the API's own words, `ask()` sends it and reads the answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import openai

try:  # anthropic >= 2.x runs on httpx2
    import httpx2
except ImportError:  # pragma: no cover
    httpx2 = httpx  # type: ignore[no-redef]

APIS = ("chat", "responses", "messages", "completions")
Handler = Callable[[Any], Any]


@dataclass
class Outcome:
    text: str = ""
    reasoning: str = ""
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    finish: str = ""  # in chat's words: stop, tool_calls, length
    usage: tuple[int, int, int] = (0, 0, 0)  # input (cached included), output, cached
    status: int = 0  # an error's HTTP status (0: none, or an error with no status)
    error: str = ""  # what went wrong, as the SDK says it ("" when nothing did)
    body: Any = None  # an error's body, as the SDK read it


def http_module(api: str) -> Any:
    """The httpx the API's SDK runs on (for MockTransport handlers' responses)."""
    return httpx2 if api == "messages" else httpx


def client(api: str, proxy_url: str, handler: Handler | None = None, **kw: Any) -> Any:
    """The API's SDK client for the proxy at `proxy_url`, no retries; with `handler`, its
    requests go to that function (httpx.MockTransport) instead of the network."""
    mod = http_module(api)
    if handler is not None:
        kw["http_client"] = mod.Client(transport=mod.MockTransport(handler))
    if api == "messages":
        return anthropic.Anthropic(base_url=proxy_url, api_key="k", max_retries=0, **kw)
    return openai.OpenAI(base_url=proxy_url + "/v1", api_key="k", max_retries=0, **kw)


def ask(api: str, sdk: Any, stream: bool, **request: Any) -> Outcome:
    """Send the request (the API's own keyword arguments) through the SDK and read the
    answer; an error the SDK raises is an Outcome too (its status, message and body)."""
    try:
        return ASK[api](sdk, stream, **request)
    except (openai.APIStatusError, anthropic.APIStatusError) as e:
        return Outcome(status=e.status_code, error=str(e), body=e.body)
    except (openai.APIError, anthropic.APIError) as e:
        return Outcome(error=str(e), body=e.body)


def chat(sdk: openai.OpenAI, stream: bool, **request: Any) -> Outcome:
    out = Outcome()
    if not stream:
        done = sdk.chat.completions.create(**request)
        msg = done.choices[0].message
        out.text, out.finish = msg.content or "", done.choices[0].finish_reason
        out.reasoning = (msg.model_extra or {}).get("reasoning_content") or ""
        out.calls = [
            (c.id, c.function.name, json.loads(c.function.arguments))  # type: ignore[union-attr]
            for c in msg.tool_calls or ()
        ]
        u = done.usage
        assert u is not None
        cached = u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else 0
        out.usage = (u.prompt_tokens, u.completion_tokens, cached or 0)
        return out
    calls: dict[int, list[str]] = {}
    for chunk in sdk.chat.completions.create(**request, stream=True):
        if chunk.usage:
            d = chunk.usage.prompt_tokens_details
            out.usage = (
                chunk.usage.prompt_tokens,
                chunk.usage.completion_tokens,
                (d.cached_tokens or 0) if d else 0,
            )
        for choice in chunk.choices:
            delta = choice.delta
            out.text += delta.content or ""
            out.reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
            for tc in delta.tool_calls or ():
                entry = calls.setdefault(tc.index, ["", "", ""])
                entry[0] += tc.id or ""
                entry[1] += (tc.function.name or "") if tc.function else ""
                entry[2] += (tc.function.arguments or "") if tc.function else ""
            out.finish = choice.finish_reason or out.finish
    out.calls = [(i, n, json.loads(a)) for i, n, a in (calls[k] for k in sorted(calls))]
    return out


def responses(sdk: openai.OpenAI, stream: bool, **request: Any) -> Outcome:
    out = Outcome()
    if stream:
        final: Any = None
        for event in sdk.responses.create(**request, stream=True):
            if event.type in ("response.completed", "response.incomplete", "response.failed"):
                final = event.response
            elif event.type == "error":
                out.error = event.message
        if final is None:
            out.error = out.error or "the stream ended without its final response event"
            return out
        resp = final
    else:
        resp = sdk.responses.create(**request)
    if resp.status == "failed":
        out.error = resp.error.message if resp.error else "failed"
        return out
    for item in resp.output:
        if item.type == "reasoning":
            out.reasoning += "".join(s.text for s in item.summary)
        elif item.type == "message":
            out.text += "".join(getattr(c, "text", "") for c in item.content)
        elif item.type == "function_call":
            out.calls.append((item.call_id, item.name, json.loads(item.arguments)))
    if resp.status == "incomplete":
        out.finish = "length"
    else:
        out.finish = "tool_calls" if out.calls else "stop"
    u = resp.usage
    assert u is not None
    out.usage = (u.input_tokens, u.output_tokens, u.input_tokens_details.cached_tokens)
    return out


_STOP = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}


def messages(sdk: anthropic.Anthropic, stream: bool, **request: Any) -> Outcome:
    if stream:
        with sdk.messages.stream(**request) as s:
            for _ in s:
                pass
            msg = s.get_final_message()
    else:
        msg = sdk.messages.create(**request)
    out = Outcome(finish=_STOP[msg.stop_reason or ""])
    for block in msg.content:
        if block.type == "text":
            out.text += block.text
        elif block.type == "thinking":
            assert block.signature  # a thinking block the SDK can send back carries one
            out.reasoning += block.thinking
        elif block.type == "tool_use":
            out.calls.append((block.id, block.name, dict(block.input)))  # type: ignore[call-overload]
    u = msg.usage
    cached = u.cache_read_input_tokens or 0
    out.usage = (
        u.input_tokens + cached + (u.cache_creation_input_tokens or 0),
        u.output_tokens,
        cached,
    )
    return out


def completions(sdk: openai.OpenAI, stream: bool, **request: Any) -> Outcome:
    out = Outcome()
    if not stream:
        done = sdk.completions.create(**request)
        out.text, out.finish = done.choices[0].text, done.choices[0].finish_reason
        assert done.usage is not None
        out.usage = (done.usage.prompt_tokens, done.usage.completion_tokens, 0)
        return out
    for chunk in sdk.completions.create(**request, stream=True):
        if chunk.usage:
            out.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens, 0)
        for choice in chunk.choices:
            out.text += choice.text
            out.finish = choice.finish_reason or out.finish
    return out


ASK: dict[str, Callable[..., Outcome]] = {
    "chat": chat,
    "responses": responses,
    "messages": messages,
    "completions": completions,
}
