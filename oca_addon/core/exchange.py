"""From a client's request to OCA's, and from OCA's answer back to the client's API.

Pure over dicts and bytes (no mitmproxy): the addon calls `prepare()` in its request hook,
puts a `StreamDriver` on streamed answers, and calls `Exchange.client_body()` on buffered
ones. Translator modules follow the contract in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from oca_addon.core import jsonio, sse
from oca_addon.core.errors import ApiError, ApiFlavor, RequestError, upstream_error_message
from oca_addon.core.modelinfo import Catalog, fit_effort
from oca_addon.core.routing import TRANSLATED_TO_CHAT, Endpoint, Route, plan_route, translated_route
from oca_addon.core.settings import ModelChoice, Settings, resolve_model
from oca_addon.core.streams import StreamTranslator, error_status, json_or_none
from oca_addon.translate import anthropic, completions, responses
from oca_addon.translate.chat import (
    ChatAssembler,
    ChatStream,
    prepare_chat_request,
    validate_chat_request,
)
from oca_addon.translate.memo import ConversationMemo
from oca_addon.translate.upstream import ADAPTERS, AdaptedStream, answer_chunks

ANTHROPIC_VERSION = "2023-06-01"  # the Messages API version the Messages adapter speaks


@dataclass
class Exchange:
    """Everything the addon needs to carry one request from hook to hook."""

    endpoint: Endpoint
    route: Route
    choice: ModelChoice
    client_stream: bool
    upstream_body: dict[str, Any]
    ctx: Any = None
    # Builds the per-request stream translator for translated streams.
    make_translator: Callable[[], StreamTranslator] | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] | None = None  # the target's entry in OCA's model list
    client_body_in: dict[str, Any] | None = None  # the client's body, where a retry needs it
    retry_route: Route | None = None  # legacy completions: where the one retry goes
    # Headers the upstream API wants that the client's did not carry (Messages adapter).
    upstream_headers: dict[str, str] = field(default_factory=dict)
    memo: ConversationMemo | None = None  # what the translation left there, for settle()
    learned_changes: list[str] = field(default_factory=list)  # as OCA said of the model before

    @property
    def flavor(self) -> ApiFlavor:
        return self.endpoint.flavor

    @property
    def requested_model(self) -> str:
        return self.choice.requested

    @property
    def target(self) -> str:
        return self.choice.target

    def send_chat(self, chat: dict[str, Any], client: Callable[[], StreamTranslator]) -> None:
        """Send a chat request (a client translator's output, or a chat client's own) on
        this exchange's route: as is to /chat/completions, or through the route's upstream
        adapter; `client` makes the stream translator that reads chat chunks."""
        adapter = ADAPTERS.get(self.route.adapter) if self.route.adapter else None
        if adapter is None:
            self.upstream_body = chat
            self.make_translator = client
            return
        self.upstream_body = adapter.request(chat, model_info=self.model_info)
        if self.route.adapter == "messages":
            self.upstream_headers = {"anthropic-version": ANTHROPIC_VERSION}
        target = self.target
        self.make_translator = lambda: AdaptedStream(adapter.answer(target), client())

    def settle(self) -> None:
        """What may wait until the request has gone to OCA, done now: the input-token
        estimate of a translated Anthropic request (a pass over the whole body, needed
        only once OCA answers), and where the request's messages sit in its bytes, for the
        conversation's next turn (translate/memo.py). The addon calls it right after the
        request hook."""
        if isinstance(self.ctx, anthropic.AnthropicContext):
            self.ctx.settle()
        if self.memo is not None:
            self.memo.settle()

    def client_body(self, upstream: bytes) -> dict[str, Any]:
        """A buffered (non-streamed) answer for the client, from OCA's streamed body."""
        if self.endpoint is Endpoint.EMBEDDINGS:
            return _json_object(upstream)
        events = sse.parse_all(upstream)
        if not events:
            raise ApiError(502, _not_a_stream(upstream))
        _raise_stream_error(events)
        ep, native = self.endpoint, self.route.native
        if ep is Endpoint.MESSAGES and native:
            msgs = anthropic.NativeMessagesAssembler()
            for ev in events:
                msgs.feed(ev)
            return msgs.result(self.requested_model)
        if ep is Endpoint.RESPONSES and native:
            resp = responses.NativeResponsesAssembler(self.ctx)
            for ev in events:
                resp.feed(ev)
            return resp.result()
        if ep is Endpoint.COMPLETIONS and native:
            return completions.assemble_completion_stream(
                events, requested_model=self.requested_model
            )
        adapter = self.route.adapter
        if adapter is not None:  # the model's own API -> chat chunks, then as below
            chunks = answer_chunks(ADAPTERS[adapter].answer(self.target), events)
            if ep is Endpoint.COMPLETIONS:
                stream = completions.CompletionsStream(self.ctx)
                for chunk in chunks:
                    stream.feed(chunk)
                stream.finish()
                assert stream.completion is not None
                self.usage = stream.completion["usage"]
                return stream.completion
            assembler = ChatAssembler()
            for chunk in chunks:
                assembler.feed(chunk)
        elif ep is Endpoint.COMPLETIONS:  # all `n` choices (ChatAssembler keeps only the first)
            return completions.chat_stream_to_completion(events, self.ctx)
        else:
            assembler = ChatAssembler()
            for ev in events:
                if ev.data != "[DONE]":
                    chunk = json_or_none(ev.data)
                    if isinstance(chunk, dict):
                        assembler.feed(chunk)
        completion = assembler.result()
        self.usage = completion.get("usage") or {}
        if ep is Endpoint.CHAT:
            return completion
        if ep is Endpoint.MESSAGES:
            return anthropic.chat_to_anthropic(completion, self.ctx)
        if ep is Endpoint.RESPONSES:
            return responses.chat_to_response(completion, self.ctx)
        return completions.chat_to_completion(completion, self.ctx)


def _json_object(body: bytes) -> dict[str, Any]:
    data = json_or_none(body.decode("utf-8", "replace"))
    if not isinstance(data, dict):
        raise ApiError(502, "OCA answered with something that is not JSON")
    return data


def _not_a_stream(body: bytes) -> str:
    return f"OCA did not answer with an event stream: {upstream_error_message(body, 200)}"


def _raise_stream_error(events: list[sse.SSEEvent]) -> None:
    """An error event inside a stream (LiteLLM sends `data: {"error": ...}`) fails the call."""
    for ev in events:
        if ev.event == "error" or ev.data.startswith('{"error"'):
            data = json_or_none(ev.data)
            if isinstance(data, dict) and "error" in data:
                raise ApiError(error_status(data), upstream_error_message(ev.data.encode(), 502))
        elif ev.data != "[DONE]" and json_or_none(ev.data) is None:
            raise ApiError(502, f"OCA sent a stream event that is not JSON: {ev.data[:200]!r}")


# -- preparing the upstream request ------------------------------------------------


def parse_json_body(content: bytes | None, content_type: str | None) -> dict[str, Any]:
    """The client's JSON object, or a RequestError that says what is wrong with it."""
    if not content:
        raise RequestError("the request has no body; send a JSON object")
    if content_type and "json" not in content_type.lower() and "text/plain" not in content_type:
        raise RequestError(
            f"Content-Type must be application/json, not {content_type.split(';')[0]!r}",
            status=415,
        )
    try:
        # The usual body straight from its bytes: orjson checks the UTF-8 as it goes, and a
        # Claude Code body is hundreds of KB (decoding it first costs a copy and a pass).
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        pass  # the slow way below, which also says what is wrong
    else:
        if isinstance(data, dict):
            return data
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestError(f"the body is not valid UTF-8 (byte {e.start})") from None
    try:
        data = jsonio.loads(text)
    except json.JSONDecodeError as e:
        raise RequestError(
            f"the body is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"
        ) from None
    except jsonio.BeyondLimits as e:
        raise RequestError(f"the body cannot be read: {e}") from None
    if not isinstance(data, dict):
        raise RequestError(f"the body must be a JSON object, not {type(data).__name__}")
    return data


def _model_field(body: dict[str, Any], endpoint: Endpoint) -> str:
    model = body.get("model")
    if model is None or model == "":
        raise RequestError("'model' is required", param="model")
    if not isinstance(model, str):
        raise RequestError(f"'model' must be a string, not {type(model).__name__}", param="model")
    if not model.isascii():
        try:
            model.encode("utf-8")
        except UnicodeEncodeError as e:  # a lone surrogate ("\ud800"): no text can hold it
            bad = model[e.start]
            raise RequestError(
                f"'model' is not valid Unicode text: it holds a lone surrogate "
                f"(\\u{ord(bad):04x}) at character {e.start}; send the model's name",
                param="model",
            ) from None
    return model


def _stream_flag(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise RequestError("'stream' must be true or false", param="stream")
    return stream


def prepare(
    endpoint: Endpoint,
    body: dict[str, Any],
    settings: Settings,
    catalog: Catalog | None,
    history: responses.ResponseHistory | None = None,
    memo: ConversationMemo | None = None,
    raw: bytes | None = None,
) -> Exchange:
    """Map the model, pick native or translated, and build OCA's request body (`memo`:
    conversations translated lately, translate/memo.py; `raw`: the bytes `body` was parsed
    from, which it compares when it can)."""
    requested = _model_field(body, endpoint)
    client_stream = _stream_flag(body) if endpoint is not Endpoint.EMBEDDINGS else False
    choice = resolve_model(requested, settings, catalog.names if catalog else frozenset())
    if catalog is not None and choice.via in ("default", "oca"):
        # A display name ("OpenAI GPT 4.1") names a model too.
        by_name = catalog.id_for(requested)
        if by_name and by_name != requested:
            choice = replace(choice, target=by_name, via="display name")
    # The model list chooses the route and limits only: a model it lacks goes to OCA as
    # asked, and OCA's own answer (quoted) tells the client what is wrong.
    target = choice.target
    route = plan_route(endpoint, target, catalog)
    info = catalog.info(target) if catalog else None
    effort = choice.reasoning_effort
    ex = Exchange(endpoint, route, choice, client_stream, {})
    ex.model_info = info

    if endpoint is Endpoint.CHAT:
        validate_chat_request(body)
        out = prepare_chat_request({**body, "model": target})
        asked = out.pop("reasoning_effort", None) or effort
        fitted = fit_effort(asked, info)  # never a value the model does not list
        if fitted:
            out["reasoning_effort"] = fitted
        if route.adapter:
            ex.send_chat(out, ChatStream)
        else:
            ex.upstream_body = out
    elif endpoint is Endpoint.EMBEDDINGS:
        if "input" not in body:
            raise RequestError("'input' is required", param="input")
        ex.upstream_body = {**body, "model": target}
    elif endpoint is Endpoint.MESSAGES:
        if route.native:
            ex.upstream_body = anthropic.prepare_native_messages(
                body, target_model=target, model_info=info
            )
            requested = choice.requested
            ex.make_translator = lambda: anthropic.NativeMessagesStream(requested)
        else:
            chat, ctx = anthropic.anthropic_to_chat(
                body,
                target_model=target,
                model_info=info,
                reasoning_effort=effort,
                estimate_later=True,  # Exchange.settle()
                memo=memo,
                raw=raw,
            )
            ex.memo = memo
            ex.ctx = ctx
            ex.send_chat(chat, lambda: anthropic.AnthropicStream(ctx))
    elif endpoint is Endpoint.RESPONSES:
        if route.native:
            ex.upstream_body, ex.ctx = responses.prepare_native_responses(
                body, target_model=target, model_info=info, reasoning_effort=effort, history=history
            )
            native_ctx = ex.ctx
            ex.make_translator = lambda: responses.NativeResponsesStream(native_ctx)
        else:
            chat, rctx = responses.responses_to_chat(
                body,
                target_model=target,
                model_info=info,
                reasoning_effort=effort,
                history=history,
                memo=memo,
                raw=raw,
            )
            ex.memo = memo
            ex.ctx = rctx
            ex.send_chat(chat, lambda: responses.ResponsesStream(rctx))
    elif endpoint is Endpoint.COMPLETIONS:
        ex.upstream_body = completions.prepare_native_completions(
            body, target_model=target, model_info=info
        )
        ex.client_body_in = body  # kept for the one retry, translated (completions_via_chat)
        ex.retry_route = translated_route(target, catalog)
    else:  # pragma: no cover - callers only pass API endpoints
        raise RequestError(f"{endpoint.value} is not a model call")
    return ex


def completions_via_chat(ex: Exchange) -> Exchange:
    """The same legacy completions call, translated to chat: for when OCA refused the
    native call before any byte reached the client (no source says OCA serves it). It goes
    to /chat/completions, or through the upstream adapter of a Responses- or Messages-only
    model (`ex.retry_route`, planned by prepare())."""
    assert ex.endpoint is Endpoint.COMPLETIONS and ex.client_body_in is not None
    chat, ctx = completions.completions_to_chat(
        ex.client_body_in,
        target_model=ex.choice.target,
        model_info=ex.model_info,
        reasoning_effort=ex.choice.reasoning_effort,
    )
    route = ex.retry_route or TRANSLATED_TO_CHAT
    out = Exchange(ex.endpoint, route, ex.choice, ex.client_stream, {}, ctx)
    out.model_info = ex.model_info
    out.send_chat(chat, lambda: completions.CompletionsStream(ctx))
    return out


_UNKNOWN_MODEL = re.compile(
    r"invalid model|model[^.]{0,80}(not found|not exist|unknown|not available|not supported)"
    r"|unknown model|no such model|model_not_found|not a valid model",
    re.IGNORECASE,
)


def explain_upstream_error(status: int, message: str, ex: Exchange, catalog: Catalog | None) -> str:
    """OCA's own message, plus the models its list holds when OCA does not know the model."""
    if status not in (400, 404, 422) or not catalog or not catalog.entries:
        return message
    target = ex.choice.target
    if target not in message and not _UNKNOWN_MODEL.search(message):
        return message
    if target in catalog.entries and not _UNKNOWN_MODEL.search(message):
        return message  # about the model, but the list knows it: something else is wrong
    listed = ", ".join(sorted(catalog.entries)[:30])
    how = (
        ""
        if ex.choice.via == "oca"
        else f" ('{ex.choice.requested}' maps to it via {ex.choice.via})"
    )
    return (
        f"{message} [oca-proxy sent the model '{target}'{how}. Models in OCA's list: {listed}. "
        "Ask for one of them, or change model_mapping/default_model in the settings.]"
    )
