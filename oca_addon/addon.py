"""The mitmproxy addon: a thin layer of hooks over the pure modules.

request         -> local pages, or prepare the OCA request (token, model, translation)
responseheaders -> put a stream translator (or a pass-through tap) on streamed answers
response        -> assemble buffered answers, shape errors in the client's API, record stats
error           -> record failures (the client's error body comes from mitm_patches)
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gc
import json
import logging
import os
import secrets
import shutil
import sys
import time
import uuid
import webbrowser
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from mitmproxy import ctx, exceptions, http
from mitmproxy.proxy.mode_specs import ProxyMode, ReverseMode

from . import __version__, annotate, contentview, jsonio, mitm_patches, security, sse
from .addons.hardening import client_headers
from .config import DEPLOYMENTS, Settings, SettingsFile, find_config_file
from .errors import ApiError, ApiFlavor, error_bytes, upstream_error_message
from .gateway import (
    Exchange,
    PassthroughTap,
    StreamDriver,
    parse_json_body,
    prepare,
    terminal_error_frame,
    token_counts,
    usage_from_stream,
)
from .idcs import Idcs
from .local import LocalPages
from .modelinfo import Catalog
from .routing import Endpoint, classify, is_api_path
from .stats import RequestRecord, Stats
from .tokens import TokenManager, TokenStore, default_token_path
from .translate.anthropic import client_error_message
from .translate.responses import ResponseHistory

log = logging.getLogger("oca_addon")

try:
    _malloc_trim: Any = ctypes.CDLL("libc.so.6").malloc_trim  # glibc (Linux) only
except (OSError, AttributeError):
    _malloc_trim = None

JSON = {"content-type": "application/json"}
# Client headers passed on to OCA (lower-case, as bytes: compared with the raw head).
_KEEP = frozenset(
    {b"user-agent", b"client", b"client-version", b"client-ide", b"client-ide-version"}
)
_KEEP_NATIVE_MESSAGES = _KEEP | {b"anthropic-version", b"anthropic-beta"}
# OCA's response headers a stream to the client replaces (translated: the length too).
_STREAM_DROP = frozenset({b"content-type", b"cache-control"})
_TRANSLATED_STREAM_DROP = _STREAM_DROP | {b"content-length", b"transfer-encoding"}


@dataclass
class Upstream:
    """Where OCA is, resolved from options, the reverse-mode target and the settings file."""

    base_url: str
    idcs_url: str
    client_id: str
    mode: str

    @functools.cached_property  # read on every request
    def origin(self) -> tuple[str, str, int]:
        parts = urlsplit(self.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.scheme, parts.hostname or "", port

    @functools.cached_property
    def prefix(self) -> str:
        return urlsplit(self.base_url).path.rstrip("/")


@dataclass
class InFlight:
    """One API request between hooks (kept off flow.metadata: that is saved to flow files)."""

    exchange: Exchange
    record: RequestRecord
    access_token: str
    driver: StreamDriver | PassthroughTap | None = None
    upstream_raw: bytearray = field(default_factory=bytearray)
    flow: http.HTTPFlow | None = None  # for the upstream idle watch (security.py's sibling)
    cut: bool = False  # the idle watch closed its upstream


class OcaAddon:
    def __init__(self) -> None:
        self.settings_file: SettingsFile | None = None
        self.tokens: TokenManager | None = None
        self.upstream: Upstream | None = None
        self.stats = Stats()
        self.history = ResponseHistory()
        self.local = LocalPages(self)
        self._catalog: Catalog | None = None
        self._catalog_task: asyncio.Task[Catalog | None] | None = None
        self._inflight: dict[str, InFlight] = {}
        self._keepalive: asyncio.Task[None] | None = None
        self._idle_watch: asyncio.Task[None] | None = None
        self._open_to_network = False  # listening on more than loopback (needs a proxy key)
        self._running = False
        self._mode_rewritten = False  # we moved a listen address to loopback
        self._body_limit_set: str | None = None  # the body_size_limit we put in place
        self._listen_port: int | None = None  # cached: needed on every request
        self._idle_gc: asyncio.TimerHandle | None = None
        self._last_done = 0.0  # time.monotonic() when the last API call ended
        self._done_since_gc = 0
        # Options read on every request, copied here by configure() (ctx.options costs a
        # deep copy per read).
        self._capture_limit = 2 * 1024 * 1024
        self._models_ttl = 300
        self._proxy_key_option = ""

    # -- options ---------------------------------------------------------------------

    def load(self, loader: Any) -> None:
        mitm_patches.apply()
        contentview.register()  # the OCA view: assembled streams, client vs OCA side by side
        add = loader.add_option
        add(
            "oca_mode",
            str,
            "",
            "OCA deployment: internal or external (default: settings file, else internal).",
        )
        add(
            "oca_base_url",
            str,
            "",
            "OCA API base URL (default: the reverse-mode target, the settings file, or the mode's).",
        )
        add("oca_idcs_url", str, "", "IDCS (login) URL (default: settings file, else the mode's).")
        add("oca_client_id", str, "", "OAuth client id (default: settings file, else the mode's).")
        add(
            "oca_config",
            str,
            "",
            "Settings file (default: ~/.config/oca/oca-proxy.config.json or .yaml, or ~/.oca/oca-proxy-config.json).",
        )
        add("oca_token_file", str, "", "Refresh token file (default: ~/.oca/refresh_token.json).")
        add(
            "oca_open_browser",
            bool,
            True,
            "Open the login page in a browser at start when not logged in.",
        )
        add(
            "oca_refresh_margin",
            int,
            300,
            "Refresh the access token this many seconds before it expires.",
        )
        add(
            "oca_keepalive",
            int,
            6 * 3600,
            "Refresh the login every this many seconds even when idle (0: never).",
        )
        add("oca_models_ttl", int, 300, "Seconds to cache OCA's model list.")
        add(
            "oca_capture_limit",
            int,
            2 * 1024 * 1024,
            "Bytes of each streamed body kept for display after the stream ends.",
        )
        add(
            "oca_proxy_api_key",
            str,
            "",
            "Key clients must send (x-api-key or Authorization: Bearer); needed to listen on "
            "more than loopback (default: proxy_api_key of the settings file).",
        )
        add(
            "oca_max_body",
            int,
            32 * 1024 * 1024,
            "Largest request body accepted, bytes (larger: 413 before reading it; 0: no limit).",
        )
        add(
            "oca_upstream_idle_timeout",
            int,
            300,
            "Seconds OCA may stay silent (before or within an answer) before the request "
            "fails with a clear error (0: wait forever).",
        )

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        self._capture_limit = opts.oca_capture_limit
        self._models_ttl = opts.oca_models_ttl
        self._proxy_key_option = opts.oca_proxy_api_key
        if "mode" in updated or "listen_port" in updated:
            self._listen_port = None
        if "connection_strategy" in updated or "oca_mode" in updated or not self.upstream:
            # Lazy: an unreachable OCA must not take the local pages down with it.
            if opts.connection_strategy != "lazy":
                opts.update(connection_strategy="lazy")
            # We check and rewrite Host ourselves; keep the client's for the DNS-rebinding check.
            if not opts.keep_host_header:
                opts.update(keep_host_header=True)
        if self.settings_file is None or "oca_config" in updated:
            self.settings_file = SettingsFile(find_config_file(opts.oca_config or None))
            level = _TERMLOG_LEVELS.get((self.settings_file.get().log_level or "").lower())
            if level and "termlog_verbosity" in opts and opts.termlog_verbosity != level:
                opts.update(termlog_verbosity=level)  # the original tool's log_level setting
        self._configure_hardening(updated)
        keys = {
            "oca_mode",
            "oca_base_url",
            "oca_idcs_url",
            "oca_client_id",
            "oca_token_file",
            "oca_refresh_margin",
            "mode",
        }
        if self.tokens is None or updated & keys:
            self.upstream = self._resolve_upstream()
            token_path = (
                Path(opts.oca_token_file).expanduser()
                if opts.oca_token_file
                else default_token_path()
            )
            self.tokens = TokenManager(
                TokenStore(token_path),
                Idcs(self.upstream.idcs_url, self.upstream.client_id),
                refresh_margin=float(opts.oca_refresh_margin),
            )
            self._catalog = None

    def _resolve_upstream(self) -> Upstream:
        opts = ctx.options
        assert self.settings_file is not None
        s = self.settings_file.get()
        mode = opts.oca_mode or s.mode or "internal"
        if mode not in DEPLOYMENTS:
            log.error("Unknown OCA mode %r: use internal or external. Using internal.", mode)
            mode = "internal"
        dep = DEPLOYMENTS[mode]
        base = opts.oca_base_url or self._reverse_target(s.base_url) or s.base_url or dep.base_url
        return Upstream(
            base_url=base.rstrip("/"),
            idcs_url=opts.oca_idcs_url or s.idcs_url or dep.idcs_url,
            client_id=opts.oca_client_id or s.client_id or dep.client_id,
            mode=mode,
        )

    @staticmethod
    def _reverse_target(settings_base: str | None) -> str | None:
        """The reverse-mode target plus OCA's API path (the mode spec carries no path)."""
        for spec in ctx.options.mode:
            try:
                mode = ProxyMode.parse(spec)
            except ValueError:
                continue
            if isinstance(mode, ReverseMode):
                host, port = mode.address
                scheme = "https" if mode.scheme == "https" else "http"
                default = 443 if scheme == "https" else 80
                origin = f"{scheme}://{host}" + ("" if port == default else f":{port}")
                if settings_base and settings_base.startswith(origin):
                    return settings_base
                from .config import API_PREFIX

                return origin + API_PREFIX
        return None

    def listen_port(self) -> int:
        if self._listen_port is None:  # parsing the modes costs more than a request's checks
            self._listen_port = self._find_listen_port()
        return self._listen_port

    def _find_listen_port(self) -> int:
        for spec in ctx.options.mode:
            try:
                port = ProxyMode.parse(spec).listen_port(ctx.options.listen_port)
            except ValueError:
                continue
            if port:
                return port
        return ctx.options.listen_port or 8669

    def current_settings(self) -> Settings:
        assert self.settings_file is not None
        return self.settings_file.get()

    # -- hardening (checks in security.py) ----------------------------------------------

    def proxy_key(self) -> str | None:
        """The key clients must present, if any: the option, else the settings file's."""
        opt = self._proxy_key_option
        if opt:
            return str(opt)
        return self.current_settings().proxy_api_key if self.settings_file else None

    def _configure_hardening(self, updated: set[str]) -> None:
        opts = ctx.options
        if "mode" in updated or "listen_host" in updated or "oca_proxy_api_key" in updated:
            specs: list[ProxyMode] = []
            for spec in opts.mode:
                try:
                    specs.append(ProxyMode.parse(spec))
                except ValueError:
                    continue  # mitmproxy reports it
            if not opts.listen_host and any(m.custom_listen_host is None for m in specs):
                # mitmproxy's default is every interface; ours is this machine only. The
                # address goes into the mode itself: servers may already be coming up.
                self._mode_rewritten = True
                opts.update(mode=[_on_loopback(m, opts.listen_port) for m in specs])
                return  # configure runs again for the new mode
            hosts = [m.listen_host(opts.listen_host) for m in specs]
            self._open_to_network = any(not security.is_loopback_bind(h) for h in hosts)
            if self._open_to_network and not self.proxy_key():
                shown = ", ".join(sorted({h or "*" for h in hosts}))
                msg = (
                    f"oca-proxy refuses to listen on {shown}: other machines could use your "
                    "OCA login. Listen on 127.0.0.1, or set a proxy key (proxy_api_key in the "
                    "settings file, or --set oca_proxy_api_key=...) that clients must send."
                )
                if self._running:
                    raise exceptions.OptionsError(msg)  # the change is rolled back
                # Starting up: mitmproxy exits on this error before serving anything; until
                # then nothing listens beyond loopback (and client_connected refuses others).
                log.error(msg)
                self._mode_rewritten = True
                opts.update(
                    mode=[_on_loopback(m, opts.listen_port, force=True) for m in specs],
                    listen_host="127.0.0.1",
                )
                self._open_to_network = False
                return
        if "oca_max_body" in updated or "body_size_limit" in updated:
            limit = opts.oca_max_body
            wanted = str(limit) if limit > 0 else None
            if opts.body_size_limit is None or opts.body_size_limit == self._body_limit_set:
                # mitmproxy refuses bigger bodies before reading them (413, see mitm_patches).
                self._body_limit_set = wanted
                if opts.body_size_limit != wanted:
                    opts.update(body_size_limit=wanted)

    def client_connected(self, client: Any) -> None:
        peer = client.peername[0] if client.peername else None
        if security.is_loopback_ip(peer) or (self._open_to_network and self.proxy_key()):
            return
        log.warning("Refused a connection from %s: oca-proxy only serves this machine", peer)
        client.error = "oca-proxy only serves this machine"

    def client_disconnected(self, client: Any) -> None:
        mitm_patches.forget_client(client.id)

    def _refused(self, flow: http.HTTPFlow) -> bool:
        """Peer, Host, Origin and proxy key checks; answers the refusal itself."""
        req = flow.request
        api = is_api_path(req.path)
        peer = flow.client_conn.peername[0] if flow.client_conn.peername else None
        refusal = security.check_request(
            method=req.method,
            host_header=req.host_header,
            origin=req.headers.get("origin"),
            headers=client_headers(req),  # the real keys (the flow shows placeholders)
            peer=peer,
            port=self.listen_port(),
            api=api,
            proxy_key=self.proxy_key(),
            open_to_network=self._open_to_network,
        )
        if refusal is None:
            return False
        log.warning("Refused %s %s from %s: %s", req.method, req.path[:200], peer, refusal.code)
        if api:
            endpoint = classify(req.path)
            flavor: ApiFlavor = endpoint.flavor if endpoint else "openai"
            self._reply_error(
                flow, flavor, ApiError(refusal.status, refusal.message, code=refusal.code)
            )
        else:
            flow.response = http.Response.make(
                refusal.status,
                refusal.message + "\n",
                {"content-type": "text/plain; charset=utf-8", "cache-control": "no-store"},
            )
        return True

    async def _watch_idle(self) -> None:
        """Fail requests whose upstream stays silent longer than oca_upstream_idle_timeout.

        mitmproxy would wait for OCA as long as the TCP connection lives; a client must get
        a clear error instead (504, or its API's terminal error event mid-stream)."""
        while True:
            limit = ctx.options.oca_upstream_idle_timeout
            await asyncio.sleep(min(5.0, max(0.25, limit / 4)) if limit > 0 else 5.0)
            if limit <= 0:
                continue
            try:
                self._cut_silent_upstreams(limit)
            except Exception:  # the watch must outlive any surprise in mitmproxy's internals
                log.exception("Upstream idle watch failed")

    def _cut_silent_upstreams(self, limit: int) -> None:
        now = time.time()
        for flow_id, st in list(self._inflight.items()):
            flow = st.flow
            if flow is None or st.cut:
                continue
            if not flow.live:
                # Neither response nor error came (should not happen): never leak the entry.
                if now - st.record.started > limit:
                    self._inflight.pop(flow_id, None)
                continue
            last = max(st.record.started, mitm_patches.upstream_last_activity(flow) or 0.0)
            if now - last > limit:
                why = (
                    f"OCA sent nothing for {limit} s (oca_upstream_idle_timeout); "
                    f"oca-proxy gave up (OCA request id {st.record.request_id})"
                )
                if mitm_patches.close_upstream(flow, why):
                    st.cut = True
                    log.warning("Request %s: %s", st.record.request_id, why)

    # -- lifecycle -------------------------------------------------------------------

    async def running(self) -> None:
        assert self.tokens and self.upstream
        proxyserver = ctx.master.addons.get("proxyserver")
        if self._mode_rewritten and proxyserver is not None:
            # Scripts load while mitmproxy brings its servers up: make sure they listen
            # where the (rewritten) mode says, on loopback.
            await proxyserver.setup_servers()
        login_url = f"http://localhost:{self.listen_port()}/login"
        log.info(
            "oca-proxy %s: OCA %s (%s mode), login via %s",
            __version__,
            self.upstream.base_url,
            self.upstream.mode,
            self.upstream.idcs_url,
        )
        status = await self.tokens.status()
        if status.logged_in:
            log.info("Logged in (token file %s)", self.tokens.store.path)
        else:
            log.warning("Not logged in (%s). Log in at %s", status.problem, login_url)
            if ctx.options.oca_open_browser and _has_display():
                await asyncio.to_thread(webbrowser.open, login_url)
        if ctx.options.oca_keepalive > 0:
            self._keepalive = asyncio.get_running_loop().create_task(self._keep_alive())
        self._idle_watch = asyncio.get_running_loop().create_task(self._watch_idle())
        self._running = True
        # Modules, classes and options live as long as the process: out of the garbage
        # collector's way, so that its full passes (see _collect_when_idle) are short.
        gc.freeze()
        annotate.show_comments_in_mitmweb()

    async def _keep_alive(self) -> None:
        """Refresh tokens go stale when unused for days: refresh now and then even if idle."""
        while True:
            await asyncio.sleep(max(1, ctx.options.oca_keepalive))
            if self.tokens and (await self.tokens.status()).logged_in:
                await self.tokens.refresh_now()

    def done(self) -> None:
        annotate.redact_all()  # flows still open at shutdown are saved (-w) after this
        annotate.traffic_log.flush()
        if self._keepalive:
            self._keepalive.cancel()
        if self._idle_watch:
            self._idle_watch.cancel()
        if self._idle_gc:
            self._idle_gc.cancel()

    # -- hooks -----------------------------------------------------------------------

    async def request(self, flow: http.HTTPFlow) -> None:
        if not flow.live:
            return  # a saved flow being read (-r): shown as it was, not handled again
        if self._refused(flow):
            return
        req = flow.request
        path = req.path
        endpoint = classify(path)
        if endpoint is None:
            # Local pages (dashboard, login, health, ...) answered without touching OCA.
            await self.local.handle(flow)
            return
        flavor = endpoint.flavor
        try:
            if endpoint is Endpoint.MODELS:
                await self._models(flow, flavor)
            elif endpoint is Endpoint.COUNT_TOKENS:
                self._count_tokens(flow)
            else:
                await self._forward(flow, endpoint)
        except ApiError as e:
            self._reply_error(flow, flavor, e)
        except Exception as e:  # a bug must cost one request, never the proxy
            log.exception("Unexpected error handling %s %s", req.method, path)
            self._reply_error(
                flow,
                flavor,
                ApiError(500, f"oca-proxy failed on this request: {type(e).__name__}: {e}"),
            )

    async def _forward(self, flow: http.HTTPFlow, endpoint: Endpoint) -> None:
        req = flow.request
        if req.method != "POST":
            raise ApiError(405, f"{req.path.split('?')[0]} takes POST, not {req.method}")
        body = parse_json_body(req.raw_content, req.headers.get("content-type"))
        token = await self._access_token(endpoint.flavor)
        catalog = await self.catalog(token)
        ex = prepare(endpoint, body, self.current_settings(), catalog, self.history)
        request_id = secrets.token_hex(16)
        record = RequestRecord(
            started=time.time(),
            api=endpoint.value,
            path=req.path.split("?")[0],
            requested_model=ex.choice.requested,
            target_model=ex.choice.target,
            route="native" if ex.route.native else "translated",
            stream=ex.client_stream,
            request_id=request_id,
        )
        annotate.keep_client_request(flow, self._capture_limit)
        self._rewrite_upstream(flow, ex, token, request_id)
        self._inflight[flow.id] = InFlight(ex, record, token, flow=flow)

    def _rewrite_upstream(
        self, flow: http.HTTPFlow, ex: Exchange, token: str, request_id: str
    ) -> None:
        assert self.upstream
        req = flow.request
        mitm_patches.remember_client_path(req)  # mitmproxy's own errors are shaped by it
        keep = (
            _KEEP_NATIVE_MESSAGES if ex.endpoint is Endpoint.MESSAGES and ex.route.native else _KEEP
        )
        # The whole head at once (mitmproxy's header edits one by one are a hot spot): the
        # client's headers we keep, in their order, then ours. Emptied before the host and
        # port setters, so that they do not rewrite a Host header that is going anyway.
        fields = [(k, v) for k, v in req.headers.fields if k.lower() in keep]
        scheme, host, port = self.upstream.origin
        if (req.scheme, req.host, req.port) != (scheme, host, port):  # same in reverse mode
            req.headers = http.Headers()
            req.scheme, req.host, req.port = scheme, host, port
        req.path = self.upstream.prefix + ex.route.upstream_path
        host_header = host if port in (80, 443) else f"{host}:{port}"
        body = jsonio.dumps(ex.upstream_body)
        h2 = req.is_http2 or req.is_http3
        if not h2:
            fields.append((b"Host", host_header.encode("utf-8", "surrogateescape")))
        accept = b"application/json" if ex.endpoint is Endpoint.EMBEDDINGS else b"text/event-stream"
        fields += [
            # The token goes on the wire only: the flow (mitmweb, saved flows) shows a placeholder.
            (b"authorization", mitm_patches.REDACTED.encode()),
            (b"content-type", b"application/json"),
            (b"accept", accept),
            (b"accept-encoding", b"identity"),  # streams are translated byte by byte
            (b"opc-request-id", request_id.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        req.headers = http.Headers(fields)
        if h2:
            req.host_header = host_header  # the :authority
        mitm_patches.set_wire_headers(req, {"authorization": f"Bearer {token}"})
        req.raw_content = body

    async def _access_token(self, flavor: ApiFlavor) -> str:
        assert self.tokens
        token = await self.tokens.access_token()
        if token is None:
            why = self.tokens.problem or "not logged in"
            raise ApiError(
                401,
                f"oca-proxy is not logged in to OCA ({why}). "
                f"Open http://localhost:{self.listen_port()}/login in your browser to sign in.",
                code="login_required",
            )
        return token

    async def catalog(self, token: str | None = None) -> Catalog | None:
        """OCA's model list, cached; None (so: route everything as chat) if unavailable."""
        cat = self._catalog
        if cat is not None and time.time() - cat.fetched_at < self._models_ttl:
            return cat
        if token is None:
            return cat
        if self._catalog_task is None or self._catalog_task.done():
            self._catalog_task = asyncio.get_running_loop().create_task(self._fetch_catalog(token))
        return await asyncio.shield(self._catalog_task)

    async def _fetch_catalog(self, token: str) -> Catalog | None:
        assert self.upstream
        url = f"{self.upstream.base_url}/v1/model/info"
        headers = {"authorization": f"Bearer {token}", "opc-request-id": uuid.uuid4().hex}
        try:
            # A silent OCA costs no more here than oca_upstream_idle_timeout on a request.
            wait = min(15, ctx.options.oca_upstream_idle_timeout or 15)
            resp = await asyncio.to_thread(requests.get, url, headers=headers, timeout=wait)
            resp.raise_for_status()
            self._catalog = Catalog.from_model_info(resp.json())
        except (requests.RequestException, ValueError) as e:
            log.warning(
                "Could not load OCA's model list (%s); routing by the chat API only",
                type(e).__name__,
            )
            return self._catalog
        return self._catalog

    async def _models(self, flow: http.HTTPFlow, flavor: ApiFlavor) -> None:
        from .modelinfo import anthropic_model_list, openai_model_list

        token = await self._access_token(flavor)
        catalog = await self.catalog(token)
        aliases = [
            n for n in self.current_settings().model_mapping if not any(c in n for c in "*?[")
        ]
        anthropic_client = "anthropic-version" in flow.request.headers
        body = (
            anthropic_model_list(catalog, aliases)
            if anthropic_client
            else openai_model_list(catalog, aliases)
        )
        flow.response = http.Response.make(200, json.dumps(body), JSON)

    def _count_tokens(self, flow: http.HTTPFlow) -> None:
        from .translate.count_tokens import count_tokens

        body = parse_json_body(flow.request.raw_content, flow.request.headers.get("content-type"))
        if not isinstance(body.get("messages"), list):
            raise ApiError(400, "'messages' must be an array")
        flow.response = http.Response.make(
            200, json.dumps({"input_tokens": count_tokens(body)}), JSON
        )

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        st = self._inflight.get(flow.id)
        resp = flow.response
        if st is None or resp is None:
            return
        annotate.keep_oca_head(flow)  # and redacts the token: the request has gone
        st.record.ttfb_ms = (time.time() - st.record.started) * 1000
        ex = st.exchange
        streaming = (
            resp.status_code == 200
            and ex.client_stream
            and "text/event-stream" in resp.headers.get("content-type", "")
        )
        if not streaming:
            return  # buffered: shaped for the client in the response hook
        limit = self._capture_limit
        # The head for the client in one go (mitmproxy's header edits one by one are a
        # hot spot): OCA's, less what we set, then ours. A translated stream has a length
        # of its own, so it goes chunked.
        make_translator = ex.make_translator
        drop = _STREAM_DROP if make_translator is None else _TRANSLATED_STREAM_DROP
        fields = [(k, v) for k, v in resp.headers.fields if k.lower() not in drop]
        if make_translator is not None:
            st.driver = StreamDriver(make_translator(), limit)
            if flow.request.http_version == "HTTP/1.1":
                fields.append((b"transfer-encoding", b"chunked"))
        else:
            st.driver = PassthroughTap(
                limit, lambda msg: terminal_error_frame(ex.endpoint, 502, msg)
            )
        fields += [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
        ]
        resp.headers = http.Headers(fields)
        resp.stream = st.driver

    async def response(self, flow: http.HTTPFlow) -> None:
        st = self._inflight.pop(flow.id, None)
        resp = flow.response
        if st is None or resp is None:
            annotate.local_answer(flow)
            return
        rec = st.record
        rec.status = resp.status_code
        annotate.keep_oca_answer(flow, st.driver, self._capture_limit)
        try:
            if resp.stream:
                usage = st.driver.usage if isinstance(st.driver, StreamDriver) else None
                if usage is None and isinstance(st.driver, PassthroughTap):
                    usage = usage_from_stream(bytes(st.driver.captured))
                rec.input_tokens, rec.output_tokens = token_counts(usage)
            elif resp.status_code >= 400:
                await self._upstream_error(flow, st)
            else:
                self._buffered_answer(flow, st)
        finally:
            rec.latency_ms = (time.time() - rec.started) * 1000
            self.stats.record(rec)
            annotate.finish(flow, rec)  # comment, mark, token redacted
            self._call_done()

    def _buffered_answer(self, flow: http.HTTPFlow, st: InFlight) -> None:
        ex, resp = st.exchange, flow.response
        assert resp is not None
        raw = resp.raw_content or b""
        try:
            body = ex.client_body(raw)
        except ApiError as e:
            e.message = f"{e.message} (OCA request id {st.record.request_id})"
            self._reply_error(flow, ex.flavor, e, st.record)
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
            flow.response = http.Response.make(
                200, json.dumps(body, ensure_ascii=False).encode(), headers
            )

    async def _upstream_error(self, flow: http.HTTPFlow, st: InFlight) -> None:
        resp = flow.response
        assert resp is not None and self.tokens
        status = resp.status_code
        request_id = resp.headers.get("opc-request-id") or st.record.request_id
        message = upstream_error_message(resp.raw_content or b"", status)
        headers: dict[str, str] = {}
        if status == 401:
            # OCA refused a token we thought valid: refresh now; the SDK retries by itself.
            self.tokens.invalidate(st.access_token)
            self.tokens.refresh_now()
            headers["x-should-retry"] = "true"
            message = f"OCA rejected the access token; oca-proxy is refreshing it, please retry ({message})"
        if "retry-after" in resp.headers:
            headers["retry-after"] = resp.headers["retry-after"]
        if st.exchange.flavor == "anthropic":  # context overflow in the words Claude Code acts on
            message = client_error_message(status, message)
        err = ApiError(
            status,
            f"OCA answered {status}: {message} (OCA request id {request_id})",
            headers=headers,
        )
        st.record.error = message
        self._reply_error(flow, st.exchange.flavor, err, st.record)

    def error(self, flow: http.HTTPFlow) -> None:
        st = self._inflight.pop(flow.id, None)
        if st is None:
            return
        st.record.status = flow.response.status_code if flow.response else 502
        st.record.error = flow.error.msg if flow.error else "connection failed"
        if st.cut:  # our idle watch closed it: say so rather than "connection closed"
            st.record.status = flow.response.status_code if flow.response else 504
            st.record.error = f"OCA went silent for {ctx.options.oca_upstream_idle_timeout} s"
        st.record.latency_ms = (time.time() - st.record.started) * 1000
        self.stats.record(st.record)
        annotate.keep_oca_answer(flow, st.driver, self._capture_limit)
        annotate.finish(flow, st.record)
        log.warning("Request %s to OCA failed: %s", st.record.request_id, st.record.error)
        self._call_done()

    # -- memory ----------------------------------------------------------------------

    IDLE_GC_S = 1.0

    def _call_done(self) -> None:
        """An API call ended. Its flow (with the bodies kept on it) sits in mitmproxy's
        per-connection reference cycles, which only the cyclic garbage collector frees, and
        its full passes are rare: after a burst of streams the memory would stay taken for
        a long time. So once nothing has been in flight for a second, collect."""
        self._last_done = time.monotonic()
        self._done_since_gc += 1
        if self._idle_gc is None and not self._inflight:
            loop = asyncio.get_running_loop()
            self._idle_gc = loop.call_later(self.IDLE_GC_S, self._collect_when_idle)

    def _collect_when_idle(self) -> None:
        self._idle_gc = None
        if self._inflight or not self._done_since_gc:
            return  # busy again (the next call to end re-arms this), or nothing to free
        wait = self._last_done + self.IDLE_GC_S - time.monotonic()
        if wait > 0:
            loop = asyncio.get_running_loop()
            self._idle_gc = loop.call_later(wait, self._collect_when_idle)
            return
        self._done_since_gc = 0
        gc.collect()
        if _malloc_trim is not None:
            _malloc_trim(0)  # and the freed pages back to the system (glibc keeps them)

    # -- helpers ---------------------------------------------------------------------

    def _reply_error(
        self,
        flow: http.HTTPFlow,
        flavor: ApiFlavor,
        err: ApiError,
        record: RequestRecord | None = None,
    ) -> None:
        kw = {} if flavor == "anthropic" else {"param": err.param, "code": err.code}
        headers = {**JSON, **err.headers}
        if record is not None:
            headers["opc-request-id"] = record.request_id
            record.status = err.status
            record.error = record.error or err.message
        flow.response = http.Response.make(
            err.status, error_bytes(flavor, err.status, err.message, **kw), headers
        )


def _on_loopback(mode: ProxyMode, default_port: int | None, force: bool = False) -> str:
    """The mode's spec, listening on 127.0.0.1 unless it names its own address."""
    port = mode.listen_port(default_port)
    if port is None or (mode.custom_listen_host is not None and not force):
        return mode.full_spec
    head, at, _ = mode.full_spec.rpartition("@")
    return f"{head if at else mode.full_spec}@127.0.0.1:{port}"


_TERMLOG_LEVELS = {
    "error": "error",
    "fatal": "error",
    "critical": "error",
    "warn": "warn",
    "warning": "warn",
    "info": "info",
    "debug": "debug",
    "trace": "debug",
}


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return (
        bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
        and shutil.which("xdg-open") is not None
    )
