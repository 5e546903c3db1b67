"""From a client's request to OCA's, and from OCA's answer back to the client's API.

Pure over dicts and bytes (no mitmproxy): the addon calls `read_body()` and
`prepare_body()` in its request hook (an agent's conversation read the quick way where it
can, translate/rawjson.py, then `prepare()`), puts a `StreamDriver` on streamed answers,
and calls `Exchange.client_body()` on buffered ones. What differs per client API is the API's own (core/apis: `ex.api`); translator
modules follow the contract in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

import orjson

from oca_addon.core import jsonio, sse
from oca_addon.core.apis import API, ClientApi, Inputs
from oca_addon.core.apis.base import chat_chunks
from oca_addon.core.errors import ApiError, ApiFlavor, RequestError, upstream_error_message
from oca_addon.core.modelinfo import Catalog
from oca_addon.core.routing import Endpoint, Route, plan_route
from oca_addon.core.settings import ModelChoice, Settings, resolve_model
from oca_addon.core.streams import StreamTranslator, error_status, json_or_none
from oca_addon.translate import anthropic, responses
from oca_addon.translate.memo import ConversationMemo
from oca_addon.translate.rawjson import NotQuick
from oca_addon.translate.shapes import ChatChunk, ChatRequest
from oca_addon.translate.upstream import ADAPTERS, AdaptedStream, answer_chunks

ANTHROPIC_VERSION = "2023-06-01"  # the Messages API version the Messages adapter speaks


@dataclass
class Exchange:
    """Everything the addon needs to carry one request from hook to hook."""

    api: ClientApi  # the client API called (core/apis): it knows what differs per API
    route: Route
    choice: ModelChoice
    client_stream: bool
    upstream_body: dict[str, Any]
    ctx: Any = None
    # Builds the per-request stream translator for translated streams.
    make_translator: Callable[[], StreamTranslator[Any]] | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)  # as OCA reported it
    model_info: dict[str, Any] | None = None  # the target's entry in OCA's model list
    client_body_in: dict[str, Any] | None = None  # the client's body, where a retry needs it
    retry_route: Route | None = None  # legacy completions: where the one retry goes
    # Headers the upstream API wants that the client's did not carry (Messages adapter).
    upstream_headers: dict[str, str] = field(default_factory=dict)
    memo: ConversationMemo | None = None  # what the translation left there, for settle()
    learned_changes: list[str] = field(default_factory=list)  # as OCA said of the model before
    primed: StreamTranslator[Any] | None = None  # settle()'s, for take_translator()

    @property
    def endpoint(self) -> Endpoint:
        return self.api.endpoint

    @property
    def flavor(self) -> ApiFlavor:
        return self.api.flavor

    @property
    def requested_model(self) -> str:
        return self.choice.requested

    @property
    def target(self) -> str:
        return self.choice.target

    def send_chat(
        self, chat: ChatRequest, client: Callable[[], StreamTranslator[ChatChunk]]
    ) -> None:
        """Send a chat request (a client translator's output, or a chat client's own) on
        this exchange's route: as is to /chat/completions, or through the route's upstream
        adapter; `client` makes the stream translator that reads chat chunks."""
        adapter = ADAPTERS.get(self.route.adapter) if self.route.adapter else None
        if adapter is None:
            self.upstream_body = cast(dict[str, Any], chat)  # as any API's body (the same dict)
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
        if self.client_stream and self.make_translator is not None:
            # Its opening events written now, not when OCA's first chunk arrives.
            self.primed = self.make_translator()
            prime = getattr(self.primed, "prime", None)
            if prime is not None:
                prime()

    def take_translator(self) -> StreamTranslator[Any]:
        """The stream translator for OCA's answer (the one settle() primed, once)."""
        primed, self.primed = self.primed, None
        if primed is not None:
            return primed
        assert self.make_translator is not None
        return self.make_translator()

    def client_body(self, upstream: bytes) -> Mapping[str, Any]:
        """A buffered (non-streamed) answer for the client, from OCA's streamed body."""
        if not self.api.streams:
            return _json_object(upstream)
        events = sse.parse_all(upstream)
        if not events:
            raise ApiError(502, _not_a_stream(upstream))
        _raise_stream_error(events)
        if self.route.native:
            return self.api.native_answer(self, events)
        adapter = self.route.adapter
        chunks: Iterable[ChatChunk] = (
            answer_chunks(ADAPTERS[adapter].answer(self.target), events)  # the model's own API
            if adapter is not None
            else chat_chunks(events)
        )
        return self.api.chat_answer(self, chunks)


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


@dataclass
class ClientBody:
    """A client's request body, read the quick way where its API has one (`quick`: the body
    without its conversation, and the conversation; translate/rawjson.py), else parsed whole.
    `whole()` parses it whole when the quick way turns out not to apply."""

    raw: bytes
    content_type: str | None
    quick: tuple[dict[str, Any], Any] | None = None
    parsed: dict[str, Any] | None = None

    def whole(self) -> dict[str, Any]:
        if self.parsed is None:
            self.parsed = parse_json_body(self.raw, self.content_type)
        return self.parsed


def read_body(
    api: ClientApi,
    content: bytes | None,
    content_type: str | None,
    quick_for: Callable[[str], bool] | None = None,
) -> ClientBody:
    """The client's body, or a RequestError that says what is wrong with it.

    `quick_for(model)`: whether a request for that model would be translated to chat, the
    only route the quick way serves; asked when the body names its model first (Claude
    Code's and Codex's do), so that a native call's body is not decoded twice."""
    _check_body(content, content_type)
    assert content is not None
    model = first_model(content) if quick_for is not None else None
    if model is None or quick_for is None or quick_for(model):
        try:
            quick = api.decode_quick(content)
        except NotQuick:
            quick = None
        if quick is not None:
            return ClientBody(content, content_type, quick=quick)
    return ClientBody(content, content_type, parsed=parse_json_body(content, content_type))


_FIRST_MODEL = re.compile(rb'\s*\{\s*"model"\s*:\s*("(?:[^"\\]|\\.){0,200}")')


def first_model(content: bytes) -> str | None:
    """The model a JSON body names, when `model` is its first key (None otherwise)."""
    found = _FIRST_MODEL.match(content)
    if found is None:
        return None
    try:
        model = orjson.loads(found.group(1))
    except orjson.JSONDecodeError:
        return None
    return model if isinstance(model, str) else None


def choose_model(requested: str, settings: Settings, catalog: Catalog | None) -> ModelChoice:
    """The OCA model a request for `requested` goes to: the settings' mapping, else OCA's
    list (where a display name, "OpenAI GPT 4.1", names a model too)."""
    choice = resolve_model(requested, settings, catalog.names if catalog else frozenset())
    if catalog is not None and choice.via in ("default", "oca"):
        by_name = catalog.id_for(requested)
        if by_name and by_name != requested:
            choice = replace(choice, target=by_name, via="display name")
    return choice


def translated_to_chat(
    endpoint: Endpoint, requested: str, settings: Settings, catalog: Catalog | None
) -> bool:
    """Whether prepare() would send a request for `requested` to /chat/completions as is
    (translated there, with no adapter after it)."""
    route = plan_route(endpoint, choose_model(requested, settings, catalog).target, catalog)
    return not route.native and route.adapter is None


def _check_body(content: bytes | None, content_type: str | None) -> None:
    if not content:
        raise RequestError("the request has no body; send a JSON object")
    if content_type and "json" not in content_type.lower() and "text/plain" not in content_type:
        raise RequestError(
            f"Content-Type must be application/json, not {content_type.split(';')[0]!r}",
            status=415,
        )


def parse_json_body(content: bytes | None, content_type: str | None) -> dict[str, Any]:
    """The client's JSON object, or a RequestError that says what is wrong with it."""
    _check_body(content, content_type)
    assert content is not None
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


def prepare(
    endpoint: Endpoint,
    body: dict[str, Any],
    settings: Settings,
    catalog: Catalog | None,
    history: responses.ResponseHistory | None = None,
    memo: ConversationMemo | None = None,
    raw: bytes | None = None,
    quick: Any = None,
) -> Exchange:
    """Map the model, pick native or translated, and build OCA's request body (`memo`:
    conversations translated lately, translate/memo.py; `raw`: the bytes `body` was parsed
    from, which it compares when it can; `quick`: the conversation as the API's quick
    decoding read it, `body` holding the rest; NotQuick when it does not apply)."""
    api = API[endpoint]
    requested = _model_field(body, endpoint)
    client_stream = api.client_stream(body)
    choice = choose_model(requested, settings, catalog)
    # The model list chooses the route and limits only: a model it lacks goes to OCA as
    # asked, and OCA's own answer (quoted) tells the client what is wrong.
    target = choice.target
    info = catalog.info(target) if catalog else None
    route = plan_route(endpoint, target, catalog)
    if quick is not None and (route.native or route.adapter):
        raise NotQuick  # the quick way translates to chat only: the body is wanted whole
    ex = Exchange(api, route, choice, client_stream, {})
    ex.model_info = info
    given = Inputs(target, info, choice.reasoning_effort, catalog, history, memo, raw, quick)
    api.prepare(ex, body, given)
    return ex


def prepare_body(
    endpoint: Endpoint,
    client: ClientBody,
    settings: Settings,
    catalog: Catalog | None,
    history: responses.ResponseHistory | None = None,
    memo: ConversationMemo | None = None,
) -> Exchange:
    """prepare() from a ClientBody: the quick way where it applies, else from the body
    parsed whole (the same result, in more time)."""
    if client.quick is not None:
        rest, conversation = client.quick
        try:
            return prepare(
                endpoint, rest, settings, catalog, history, memo, client.raw, conversation
            )
        except NotQuick:
            pass
    return prepare(endpoint, client.whole(), settings, catalog, history, memo, client.raw)


def completions_via_chat(ex: Exchange) -> Exchange:
    """The same call on the route its API retries on (legacy completions: translated, to
    chat or the model's adapter); ApiError when there is none."""
    retry = ex.api.retry_elsewhere(ex)
    if retry is None:
        raise ApiError(400, f"{ex.endpoint.value} has no other route to OCA")
    return retry


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
