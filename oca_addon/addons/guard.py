"""Guard: who may use the proxy. Listens on loopback unless a proxy key is set, refuses
other machines' connections, checks each request's peer, Host, Origin and proxy key
(security.py), and puts the oca_max_body limit on request bodies.

Early in the chain: a refusal sets flow.response, and the addons after it leave such
flows alone.
"""

from __future__ import annotations

import logging
from typing import Any

from mitmproxy import ctx, exceptions, http
from mitmproxy.proxy.mode_specs import ProxyMode

from oca_addon.addons.hardening import client_headers
from oca_addon.core import security
from oca_addon.core.apis import api_for
from oca_addon.core.errors import ApiError, ApiFlavor
from oca_addon.core.routing import is_api_path
from oca_addon.mitm import headerfields, options
from oca_addon.mitm import patches as mitm_patches
from oca_addon.mitm.replies import reply_error
from oca_addon.mitm.state import ProxyState

log = logging.getLogger("oca_addon")


OPTION_RANGES = {"oca_max_body": options.IntRange(0, None, "bytes", "no limit")}


class Guard:
    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self._open_to_network = False  # listening on more than loopback (needs a proxy key)
        self._running = False
        self._mode_rewritten = False  # we moved a listen address to loopback
        self._body_limit_set: str | None = None  # the body_size_limit we put in place
        self._proxy_key_option = ""  # copied by configure(): read on every request

    def load(self, loader: Any) -> None:
        add = loader.add_option
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

    def proxy_key(self) -> str | None:
        """The key clients must present, if any: the option, else the settings file's."""
        opt = self._proxy_key_option
        if opt:
            return str(opt)
        state = self.state
        return state.current_settings().proxy_api_key if state.settings_file else None

    def configure(self, updated: set[str]) -> None:
        options.check_ranges(updated, OPTION_RANGES)
        opts = ctx.options
        self._proxy_key_option = opts.oca_proxy_api_key
        if "mode" in updated or "listen_port" in updated:
            self.state.forget_listen_port()
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

    async def running(self) -> None:
        proxyserver = ctx.master.addons.get("proxyserver")
        if self._mode_rewritten and proxyserver is not None:
            # Scripts load while mitmproxy brings its servers up: make sure they listen
            # where the (rewritten) mode says, on loopback.
            await proxyserver.setup_servers()
        self._running = True

    def client_connected(self, client: Any) -> None:
        peer = client.peername[0] if client.peername else None
        if security.is_loopback_ip(peer) or (self._open_to_network and self.proxy_key()):
            return
        log.warning("Refused a connection from %s: oca-proxy only serves this machine", peer)
        client.error = "oca-proxy only serves this machine"

    def request_early(self, flow: http.HTTPFlow) -> bool:
        """Before the request is sent early (mitm/patches/earlysend.py): True when nothing
        is refused (a refusal is answered by the request hook, the usual way)."""
        return self._refusal(flow, is_api_path(flow.request.path)) is None

    def request(self, flow: http.HTTPFlow) -> None:
        """Peer, Host, Origin and proxy key checks; answers the refusal itself."""
        if flow.response or not flow.live or mitm_patches.sent_early(flow):
            return  # answered already, a saved flow being read (-r), or checked and sent
        if flow.is_replay == "request":
            # Started by whoever runs mitmproxy (mitmweb's replay, oca.replay), never by a
            # network client: mitmproxy sets is_replay itself. A replay of a forwarded call
            # carries OCA's Host; addons/replay.py puts the token only on requests for OCA.
            return
        req = flow.request
        api = is_api_path(req.path)
        refusal = self._refusal(flow, api)
        if refusal is None:
            return
        peer = flow.client_conn.peername[0] if flow.client_conn.peername else None
        log.warning("Refused %s %s from %s: %s", req.method, req.path[:200], peer, refusal.code)
        if api:
            called = api_for(req.path)
            flavor: ApiFlavor = called.flavor if called else "openai"
            reply_error(flow, flavor, ApiError(refusal.status, refusal.message, code=refusal.code))
        else:
            flow.response = http.Response.make(
                refusal.status,
                refusal.message + "\n",
                {"content-type": "text/plain; charset=utf-8", "cache-control": "no-store"},
            )

    def _refusal(self, flow: http.HTTPFlow, api: bool) -> security.Refusal | None:
        req = flow.request
        peer = flow.client_conn.peername[0] if flow.client_conn.peername else None
        return security.check_request(
            method=req.method,
            host_header=req.host_header,
            origin=headerfields.get(req.headers, b"origin"),
            headers=client_headers(req),  # the real keys (the flow shows placeholders)
            peer=peer,
            port=self.state.listen_port(),
            api=api,
            proxy_key=self.proxy_key(),
            open_to_network=self._open_to_network,
        )


def _on_loopback(mode: ProxyMode, default_port: int | None, force: bool = False) -> str:
    """The mode's spec, listening on 127.0.0.1 unless it names its own address."""
    port = mode.listen_port(default_port)
    if port is None or (mode.custom_listen_host is not None and not force):
        return mode.full_spec
    head, at, _ = mode.full_spec.rpartition("@")
    return f"{head if at else mode.full_spec}@127.0.0.1:{port}"
