"""Gateway: the API calls. Forwards them to OCA (token, model mapping, route, translation,
via oca_addon/core/exchange.py), answers /v1/models and count_tokens itself, puts a stream
translator (or a pass-through tap) on streamed answers, and shapes buffered answers and
OCA's errors in the client's API.

It keeps what the client sent and what OCA answered on the flow (annotate.keep_*) right
before it replaces them; closing the call (stats, comment, log line) is Traffic's.

request_early   -> OCA's request the moment the body is in, when nothing must be awaited
                   (mitm/patches/earlysend.py: mitmproxy then writes it before the
                   request hooks run)
request         -> /v1/models, count_tokens, or OCA's request (a Call on the flow)
responseheaders -> a stream translator or tap on streamed answers
response        -> buffered answers for the client; OCA's errors in the client's shape
error           -> what failed, for Traffic's record (the client's error body comes
                   from mitm_patches)
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import ctx, http

from oca_addon.core import jsonio, sse
from oca_addon.core.apis import ClientApi, LocalRequest, api_for
from oca_addon.core.errors import ApiError, upstream_error_message
from oca_addon.core.exchange import (
    Exchange,
    explain_upstream_error,
    parse_json_body,
    prepare_body,
    read_body,
    translated_to_chat,
)
from oca_addon.core.modelinfo import Catalog
from oca_addon.core.refusals import LearnedFacts, learned_facts_path
from oca_addon.core.settings import Settings
from oca_addon.core.stats import RequestRecord
from oca_addon.core.streams import (
    PassthroughTap,
    StreamDriver,
    token_counts,
    usage_from_stream,
)
from oca_addon.mitm import annotate, headerfields, options
from oca_addon.mitm import patches as mitm_patches
from oca_addon.mitm.call import Call, call_of, open_call
from oca_addon.mitm.replies import JSON, reply_error
from oca_addon.mitm.retry import RefusalRetry, both_refusals, route_label
from oca_addon.mitm.state import CLIENT_HEADERS, ProxyState
from oca_addon.translate.anthropic import client_error_message

log = logging.getLogger("oca_addon")

_CLIENT_FIELDS = [(k.encode(), v.encode()) for k, v in CLIENT_HEADERS.items()]
# OCA's response headers a stream to the client replaces (translated: the length too).
_STREAM_DROP = frozenset({b"content-type", b"cache-control"})
_TRANSLATED_STREAM_DROP = _STREAM_DROP | {b"content-length", b"transfer-encoding"}


def wants_close(fields: Any) -> bool:
    """Whether a head's `Connection` fields hold the `close` token."""
    return any(
        k.lower() == b"connection" and b"close" in (t.strip() for t in v.lower().split(b","))
        for k, v in fields
    )


def _json_bytes(body: Any) -> bytes:
    """A buffered answer as JSON, its text as is; a lone surrogate (half an emoji OCA cut)
    as an escape, since UTF-8 cannot hold it."""
    text = json.dumps(body, ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(body).encode()


def after_send(callback: Callable[..., None], *args: Any) -> None:
    """Call `callback(*args)` once mitmproxy has written the request this hook is making.

    mitmproxy runs a hook inside its connection's event handler, which holds a lock: the
    hook's task resumes (and sends) only when woken in the loop's next round, behind any
    callback the hook scheduled. A callback scheduled from that callback runs after it
    (checked against mitmproxy 12.3.1, tests/e2e/test_gateway_timing.py; were that to change,
    the work would only be done before the send again, never skipped). Were the
    connection to OCA still opening, the work runs meanwhile."""
    loop = asyncio.get_running_loop()
    loop.call_soon(loop.call_soon, callback, *args)


def pause_gc_until_sent() -> None:
    """The cyclic garbage collector paused until mitmproxy has written the request this hook
    makes. An agent's request makes tens of thousands of objects (its parse, its
    translation, what the memo keeps), enough to set off collections of the older
    generations: 1 to 10 ms with a few conversations remembered, before OCA sees the request.
    They run right after it instead. (A hook that waits, on a login, resumes the collector
    early: nothing is lost but the gain.)"""
    if gc.isenabled():
        gc.disable()
        after_send(gc.enable)


OPTION_RANGES = {
    "oca_models_ttl": options.IntRange(0, 365 * options.DAY, "seconds", "ask OCA every time"),
    "oca_completions_refusal_ttl": options.IntRange(
        0, 365 * options.DAY, "seconds", "ask /completions natively every time"
    ),
    "oca_conversation_memo": options.IntRange(0, 10_000, "conversations", "none kept"),
    "oca_learned_ttl": options.IntRange(
        0, 10 * 365 * options.DAY, "seconds", "what OCA's refusals teach is not kept"
    ),
}


class Gateway:
    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self.retry = RefusalRetry(state)

    def load(self, loader: Any) -> None:
        loader.add_option("oca_models_ttl", int, 300, "Seconds to cache OCA's model list.")
        loader.add_option(
            "oca_completions_refusal_ttl",
            int,
            3600,
            "After OCA refuses a model's native /v1/completions, send its completions "
            "translated for this many seconds (0: ask /completions natively every time).",
        )

        loader.add_option(
            "oca_learn_from_refusals",
            bool,
            True,
            "When OCA refuses a call and says why (a parameter, effort or output size the "
            "model does not take), send it once more without the cause and remember that "
            "per model (false: pass OCA's refusal on).",
        )
        loader.add_option(
            "oca_learned_ttl",
            int,
            7 * 24 * 3600,
            "Seconds a fact learned from OCA's refusals is kept (also across restarts).",
        )
        loader.add_option(
            "oca_learned_file",
            str,
            "",
            "Where the facts learned from OCA's refusals are kept (default: "
            "oca-proxy.learned.json beside the settings file).",
        )
        loader.add_option(
            "oca_conversation_memo",
            int,
            8,
            "Conversations whose last translated request is kept, so that their next turn "
            "translates only its new messages (0: translate every turn whole). Each costs "
            "memory of about three times its request's size.",
        )

    def configure(self, updated: set[str]) -> None:
        options.check_ranges(updated, OPTION_RANGES)
        state = self.state
        state.models_ttl = ctx.options.oca_models_ttl
        state.completions_refusal_ttl = ctx.options.oca_completions_refusal_ttl
        state.learning = ctx.options.oca_learn_from_refusals
        if updated & {"oca_learned_ttl", "oca_learned_file", "oca_config"}:
            state.learned = LearnedFacts(self._learned_path(), ctx.options.oca_learned_ttl)
            state.learned.load()
        if "oca_conversation_memo" in updated:
            self.state.conversations.size = ctx.options.oca_conversation_memo
            self.state.conversations.clear()

    # -- request -----------------------------------------------------------------------

    def request_early(self, flow: http.HTTPFlow) -> bool:
        """The request hook's work, done the moment the body is complete (mitm/patches/
        earlysend.py: mitmproxy then writes the request at once, the request hooks run
        after): True once the request is OCA's. False, with the flow as it was, when
        something must be awaited (a token renewal, the model list) or answered (a local
        API, an error): the request hook does it then."""
        if flow.id in self.state.replays:
            return False
        api = api_for(flow.request.path)
        tokens = self.state.tokens
        if api is None or api.local or tokens is None:
            return False
        token = tokens.access_token_now()
        if token is None:
            return False
        ready, catalog = self.state.catalog_now(token)
        if not ready:
            return False
        pause_gc_until_sent()
        try:
            self._send(flow, api, self._client_body(flow.request, api), token, catalog)
        except ApiError as e:
            reply_error(flow, api.flavor, e)  # the flow takes the usual way, answered
            return False
        except Exception as e:  # a bug must cost one request, never the proxy
            self._failed(flow, api, e)
            return False
        return True

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or not flow.live or mitm_patches.sent_early(flow):
            return  # answered already (refusal, local page), a saved flow being read, or sent
        if flow.id in self.state.replays:
            return  # a replay of a request made for OCA: never translated again
        req = flow.request
        path = req.path
        api = api_for(path)
        if api is None:
            return  # not an API call (LocalPages answers those)
        try:
            if api.local:
                await self._answer_locally(flow, api)
            else:
                pause_gc_until_sent()
                await self._forward(flow, api)
        except ApiError as e:
            reply_error(flow, api.flavor, e)
        except Exception as e:  # a bug must cost one request, never the proxy
            self._failed(flow, api, e)

    @staticmethod
    def _failed(flow: http.HTTPFlow, api: ClientApi, e: Exception) -> None:
        req = flow.request
        log.exception("Unexpected error handling %s %s", req.method, req.path)
        reply_error(
            flow,
            api.flavor,
            ApiError(500, f"oca-proxy failed on this request: {type(e).__name__}: {e}"),
        )

    def _learned_path(self) -> Path:
        chosen = ctx.options.oca_learned_file
        if chosen:
            return Path(chosen).expanduser()
        settings = self.state.settings_file
        return learned_facts_path(settings.path if settings is not None else None)

    async def _forward(self, flow: http.HTTPFlow, api: ClientApi) -> None:
        parsed = self._client_body(flow.request, api)
        token = await self._access_token()
        self._send(flow, api, parsed, token, await self.state.catalog(token))

    def _client_body(self, req: http.Request, api: ClientApi) -> tuple[Any, Settings]:
        """The client's body, parsed (and the settings it was read with)."""
        if req.method != "POST":
            raise ApiError(405, f"{req.path.split('?')[0]} takes POST, not {req.method}")
        state = self.state
        settings = state.current_settings()
        known = state.cached_catalog
        body = read_body(
            api,
            req.raw_content,
            headerfields.get(req.headers, b"content-type"),
            lambda model: translated_to_chat(api.endpoint, model, settings, known),
        )
        return body, settings

    def _send(
        self,
        flow: http.HTTPFlow,
        api: ClientApi,
        parsed: tuple[Any, Settings],
        token: str,
        catalog: Catalog | None,
    ) -> None:
        """OCA's request on the flow and its Call opened (raises ApiError before changing
        anything)."""
        state = self.state
        req = flow.request
        body, settings = parsed
        ex = prepare_body(
            api.endpoint,
            body,
            settings,
            catalog,
            state.history,
            state.conversations,
        )
        ex = self.retry.plan(ex)  # what OCA said of the model before, applied
        request_id = secrets.token_hex(16)
        record = RequestRecord(
            started=time.time(),
            api=api.endpoint.value,
            path=req.path.split("?")[0],
            requested_model=ex.choice.requested,
            target_model=ex.choice.target,
            route=route_label(ex),
            stream=ex.client_stream,
            request_id=request_id,
            learned="; ".join(ex.learned_changes),
        )
        client_body = annotate.keep_client_head(flow)
        self._rewrite_upstream(flow, ex, token, request_id)
        open_call(state, Call(ex, record, token, flow))
        # Once mitmproxy has sent the request: the work OCA's answer does not wait for, off
        # the time to first token. Freeing the parsed bodies is part of it (a few ms for a
        # Claude Code request of 2 MB), so are the token estimate and the memo's layout.
        after_send(self._after_send, flow, ex, client_body, state.capture_limit, body)

    @staticmethod
    def _after_send(
        flow: http.HTTPFlow, ex: Exchange, client_body: bytes, limit: int, parsed: Any
    ) -> None:
        annotate.keep_client_body(flow, client_body, limit)  # the text, for mitmweb
        ex.settle()
        # The bytes on the flow are the request now: the parsed bodies (as large) need not
        # live as long as the answer.
        ex.upstream_body = {}
        del parsed

    def _rewrite_upstream(
        self, flow: http.HTTPFlow, ex: Exchange, token: str, request_id: str
    ) -> None:
        upstream = self.state.upstream
        assert upstream
        req = flow.request
        mitm_patches.remember_client_path(req)  # mitmproxy's own errors are shaped by it
        keep = ex.api.kept_headers(ex)
        # The whole head at once (mitmproxy's header edits one by one are a hot spot): the
        # client's headers we keep, in their order, then ours. Emptied before the host and
        # port setters, so that they do not rewrite a Host header that is going anyway.
        fields = [(k, v) for k, v in req.headers.fields if k.lower() in keep]
        # mitmproxy closes the client's connection after the answer when the request (this
        # one, rewritten) says `Connection: close`: kept, so the client's word still counts.
        close = wants_close(req.headers.fields)
        sent = {k.lower() for k, _ in fields}
        fields += [(k, v) for k, v in _CLIENT_FIELDS if k not in sent]
        # What the upstream API wants that the client's did not carry (Messages adapter).
        fields += [
            (k.encode(), v.encode())
            for k, v in ex.upstream_headers.items()
            if k.encode() not in sent
        ]
        scheme, host, port = upstream.origin
        if (req.scheme, req.host, req.port) != (scheme, host, port):  # same in reverse mode
            req.headers = http.Headers()
            req.scheme, req.host, req.port = scheme, host, port
        req.path = upstream.prefix + ex.route.upstream_path
        host_header = host if port in (80, 443) else f"{host}:{port}"
        body = jsonio.dumps(ex.upstream_body)
        h2 = req.is_http2 or req.is_http3
        if not h2:
            fields.append((b"Host", host_header.encode("utf-8", "surrogateescape")))
        accept = b"text/event-stream" if ex.api.streams else b"application/json"
        fields += [
            # The token goes on the wire only: the flow (mitmweb, saved flows) shows a placeholder.
            (b"authorization", mitm_patches.REDACTED.encode()),
            (b"content-type", b"application/json"),
            (b"accept", accept),
            (b"accept-encoding", b"identity"),  # streams are translated byte by byte
            (b"opc-request-id", request_id.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        if close:
            fields.append((b"connection", b"close"))
        req.headers = http.Headers(fields)
        if h2:
            req.host_header = host_header  # the :authority
        mitm_patches.set_wire_headers(req, {"authorization": f"Bearer {token}"})
        req.raw_content = body

    async def _access_token(self) -> str:
        tokens = self.state.tokens
        assert tokens
        token = await tokens.access_token()
        if token is None:
            why = tokens.problem or "not logged in"
            raise ApiError(
                401,
                f"oca-proxy is not logged in to OCA ({why}). "
                f"Open http://localhost:{self.state.listen_port()}/login in your browser to sign in.",
                code="login_required",
            )
        return token

    async def _answer_locally(self, flow: http.HTTPFlow, api: ClientApi) -> None:
        """/v1/models and count_tokens: oca-proxy's own answer, in the API's shape."""
        req = flow.request
        body = (
            parse_json_body(req.raw_content, headerfields.get(req.headers, b"content-type"))
            if api.takes_body
            else None
        )
        catalog = await self.state.catalog(await self._access_token()) if api.needs_login else None
        aliases = [
            n for n in self.state.current_settings().model_mapping if not any(c in n for c in "*?[")
        ]
        local = LocalRequest(body, catalog, aliases, "anthropic-version" in req.headers)
        flow.response = http.Response.make(200, json.dumps(api.answer(local)), JSON)

    # -- answer --------------------------------------------------------------------------

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        st = call_of(flow)
        resp = flow.response
        if st is None or resp is None:
            return
        annotate.keep_oca_head(flow)  # and redacts the token: the request has gone
        st.record.ttfb_ms = (time.time() - st.record.started) * 1000
        ex = st.exchange
        streaming = (
            resp.status_code == 200
            and ex.client_stream
            and "text/event-stream" in (headerfields.get(resp.headers, b"content-type") or "")
        )
        if not streaming:
            return  # buffered: shaped for the client in the response hook
        limit = self.state.capture_limit
        # The head for the client in one go (mitmproxy's header edits one by one are a
        # hot spot): OCA's, less what we set, then ours. A translated stream has a length
        # of its own, so it goes chunked.
        make_translator = ex.make_translator
        drop = _STREAM_DROP if make_translator is None else _TRANSLATED_STREAM_DROP
        fields = [(k, v) for k, v in resp.headers.fields if k.lower() not in drop]
        if make_translator is not None:
            st.driver = StreamDriver(ex.take_translator(), limit)
            if flow.request.http_version == "HTTP/1.1":
                fields.append((b"transfer-encoding", b"chunked"))
        else:
            st.driver = PassthroughTap(limit, lambda msg: ex.api.terminal_error(502, msg))
        fields += [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
        ]
        resp.headers = http.Headers(fields)
        resp.stream = st.driver

    async def response(self, flow: http.HTTPFlow) -> None:
        st = call_of(flow)
        resp = flow.response
        if st is None or resp is None:
            return  # answered by oca-proxy itself
        rec = st.record
        rec.status = resp.status_code
        annotate.keep_oca_answer(flow, st.driver, self.state.capture_limit)
        if resp.stream:
            usage = st.driver.usage if isinstance(st.driver, StreamDriver) else None
            if usage is None and isinstance(st.driver, PassthroughTap):
                usage = usage_from_stream(bytes(st.driver.captured))
            rec.input_tokens, rec.output_tokens = token_counts(usage)
            return
        try:
            if resp.status_code >= 400 and await self.retry.try_again(flow, st):
                return  # sent again: its answer comes through these hooks once more
            if resp.status_code >= 400:
                self._upstream_error(flow, st)
            else:
                self._buffered_answer(flow, st)
        except Exception as e:  # a bug costs this call, never the chain's later hooks
            log.exception("Unexpected error answering %s", flow.request.path)
            err = ApiError(500, f"oca-proxy failed on this answer: {type(e).__name__}: {e}")
            reply_error(flow, st.exchange.flavor, err, rec)

    def _buffered_answer(self, flow: http.HTTPFlow, st: Call) -> None:
        ex, resp = st.exchange, flow.response
        assert resp is not None
        raw = resp.raw_content or b""
        try:
            body = ex.client_body(raw)
        except ApiError as e:
            e.message = f"{e.message} (OCA request id {st.record.request_id})"
            reply_error(flow, ex.flavor, e, st.record)
            return
        st.record.input_tokens, st.record.output_tokens = token_counts(
            ex.usage or body.get("usage")
        )
        headers = {
            **JSON,
            "opc-request-id": resp.headers.get("opc-request-id", st.record.request_id),
        }
        if ex.client_stream:
            # A stream was asked for but OCA answered in one piece (e.g. JSON): still a stream.
            flow.response = http.Response.make(
                200, sse.encode(body), {"content-type": "text/event-stream"}
            )
        else:
            flow.response = http.Response.make(200, _json_bytes(body), headers)

    def _upstream_error(self, flow: http.HTTPFlow, st: Call) -> None:
        resp, tokens = flow.response, self.state.tokens
        assert resp is not None and tokens
        status = resp.status_code
        request_id = resp.headers.get("opc-request-id") or st.record.request_id
        message = upstream_error_message(resp.raw_content or b"", status)
        message = explain_upstream_error(status, message, st.exchange, self.state.cached_catalog)
        headers: dict[str, str] = {}
        if status == 401:
            # OCA refused a token we thought valid: refresh now; the SDK retries by itself.
            tokens.invalidate(st.access_token)
            tokens.refresh_now()
            headers["x-should-retry"] = "true"
            message = f"OCA rejected the access token; oca-proxy is refreshing it, please retry ({message})"
        if "retry-after" in resp.headers:
            headers["retry-after"] = resp.headers["retry-after"]
        if st.exchange.flavor == "anthropic":  # context overflow in the words Claude Code acts on
            message = client_error_message(status, message)
        if st.first_refusal:  # refused twice: both of OCA's reasons
            message = both_refusals(st.first_refusal, message)
        err = ApiError(
            status,
            f"OCA answered {status}: {message} (OCA request id {request_id})",
            headers=headers,
        )
        st.record.error = message
        reply_error(flow, st.exchange.flavor, err, st.record)

    def error(self, flow: http.HTTPFlow) -> None:
        st = call_of(flow)
        if st is None:
            return
        st.record.status = flow.response.status_code if flow.response else 502
        st.record.error = flow.error.msg if flow.error else "connection failed"
        if st.cut:  # our idle watch closed it: say so rather than "connection closed"
            st.record.status = flow.response.status_code if flow.response else 504
            st.record.error = f"OCA went silent for {ctx.options.oca_upstream_idle_timeout} s"
        annotate.keep_oca_answer(flow, st.driver, self.state.capture_limit)
