"""A request the addons have made final is written upstream as soon as its body is in, and
the `request` hooks run after it has gone (the time to first token).

mitmproxy reads a request whole, runs the `request` hook over the whole chain (every addon
asked, then asked again for `update`), and only when that hook task has come back through
the event loop writes the request. Its own streamed-request mode (`stream_large_bodies`)
writes first and runs the `request` hook afterwards. Here the same order is used for a
buffered request whose every `request` hook is known to have nothing left to do once the
request is sent: the oca-proxy addons do their part synchronously, at the moment the body
is complete (`request_early`), and mitmproxy writes the request at once; the `request`
hook then runs for the whole chain as usual (mitmweb, scripts reading flows, ...), after
the send. No public hook runs between a buffered request's last byte and its write.

The rule (`early_ready`), for each flow, checked when its body is complete:

- the flow is live, not a replay, not intercepted, killed or answered, and has no trailers;
- every `request` hook of the chain (every addon, scripts' ones too, as mitmproxy finds
  them) is either
  - an addon offering `request_early(flow) -> bool`, called in chain order: True says its
    `request` hook has nothing left to do for this flow (it did it here, or there is
    nothing to do); False, that the flow takes mitmproxy's usual way (and the addons
    before it, which returned True, changed nothing: only the last of them, the Gateway,
    changes the flow), or
  - one of mitmproxy's own, listed in BUILTIN, that leaves this flow alone under the
    current options (its own state said so): no `intercept` filter active, no
    map_local/map_remote/modify_body/block_list/server replay/sticky cookie or auth,
    anticache or anticomp, not the onboarding app's host, no h2c upgrade, no CRL path;
- anything else with a `request` hook (a user's script or addon, an unknown built-in)
  means the usual way, for every flow, as long as it is loaded.

A flow sent early carries `sent_early(flow)` until its `request` hooks have run: those of
the addons that did their work in `request_early` leave it alone. If the connection to OCA cannot be opened,
mitmproxy's error hook runs and, as for its streamed requests, no `request` hook.

Patch (checked against mitmproxy 12.3.1): `HttpStream.state_consume_request_body`,
wrapped by `_consume_request_body` (mitmproxy's own code still sends the request: the
`request` hook command is answered at once, then yielded once the request has gone).
`AddonManager.register` and `.remove` wrapped (the chain is looked at again). Read:
`AddonManager.chain`, `addonmanager.traverse`, and the built-ins' `request` hooks (and what
they call) below. Not applied (any of that changed): every request takes
mitmproxy's usual way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any

from mitmproxy import addonmanager, ctx, http
from mitmproxy.addons import (
    anticache,
    anticomp,
    asgiapp,
    blocklist,
    disable_h2c,
    intercept,
    maplocal,
    mapremote,
    modifybody,
    onboarding,
    save,
    serverplayback,
    stickyauth,
    stickycookie,
    tlsconfig,
)
from mitmproxy.proxy.layers.http import HttpStream
from mitmproxy.proxy.layers.http._events import RequestEndOfMessage
from mitmproxy.proxy.layers.http._hooks import HttpRequestHook

from oca_addon.mitm import headerfields

BEHAVIOUR = "requests written to OCA before the request hooks run (time to first token)"
REQUIRED = False
# qualified name (under `mitmproxy.`) -> (source hash, parameter names): see patches/__init__
CHECKED: dict[str, tuple[str, tuple[str, ...]]] = {
    # wrapped by _consume_request_body
    "proxy.layers.http.HttpStream.state_consume_request_body": (
        "45459c1bbd8bdb1a",
        ("self", "event"),
    ),
    # how mitmproxy finds the hooks: every addon of the chain, by attribute name
    "addonmanager.traverse": ("bad3d9f88bdf9269", ("chain",)),
    "addonmanager.AddonManager._iter_hooks": ("350b419ab7284091", ("self", "addon", "event")),
    # wrapped: an addon registered or removed means the chain is looked at again
    "addonmanager.AddonManager.register": ("01ddcca314eebbd3", ("self", "addon")),
    "addonmanager.AddonManager.remove": ("2e93aab2204a39f6", ("self", "addon")),
    # the built-ins whose `request` hook BUILTIN says leaves a flow alone, and when
    "addons.anticache.AntiCache.request": ("b48d2e8a6a567262", ("self", "flow")),
    "addons.anticomp.AntiComp.request": ("b0d9e97431cee67e", ("self", "flow")),
    "addons.asgiapp.ASGIApp.request": ("602d253086c75a35", ("self", "flow")),
    "addons.asgiapp.ASGIApp.should_serve": ("4f7a8f8411d51f35", ("self", "flow")),
    "addons.blocklist.BlockList.request": ("b57fd28ef2853c16", ("self", "flow")),
    "addons.disable_h2c.DisableH2C.request": ("5fc158d4cd890e20", ("self", "f")),
    "addons.disable_h2c.DisableH2C.process_flow": ("9cbfa1a9226ff6bf", ("self", "f")),
    "addons.intercept.Intercept.request": ("5fc158d4cd890e20", ("self", "f")),
    "addons.intercept.Intercept.should_intercept": ("3b726101835215b7", ("self", "f")),
    "addons.intercept.Intercept.process_flow": ("7a9d602ca4681e5b", ("self", "f")),
    "addons.maplocal.MapLocal.request": ("4c6bf038aa472f3e", ("self", "flow")),
    "addons.mapremote.MapRemote.request": ("e7caae41db682e44", ("self", "flow")),
    "addons.modifybody.ModifyBody.request": ("5fb02b2517e09723", ("self", "flow")),
    "addons.onboarding.Onboarding.request": ("f6e48a4764c85df0", ("self", "f")),
    "addons.save.Save.request": ("5b91fa00461227c1", ("self", "flow")),
    "addons.serverplayback.ServerPlayback.request": ("e39ec867c40b012a", ("self", "f")),
    "addons.stickyauth.StickyAuth.request": ("76b0bbaeb50614fa", ("self", "flow")),
    "addons.stickycookie.StickyCookie.request": ("d57c78803120ae99", ("self", "flow")),
    "addons.tlsconfig.TlsConfig.request": ("4979371e5dca6057", ("self", "flow")),
}
_applied = False
log = logging.getLogger("oca_addon")

SENT_KEY = "oca.sent_early"  # flow.metadata: the request went before the request hooks

# A built-in addon's `request` hook -> (whether it can leave flows alone under the current
# options and its own state, read when the chain is looked at again), then (whether it
# leaves this flow alone, per flow; None: nothing to check per flow).
Static = Callable[[Any], bool]
PerFlow = Callable[[Any, http.HTTPFlow], bool] | None


def _opt(name: str) -> Any:
    return getattr(ctx.options, name, None)


BUILTIN: dict[type, tuple[Static, PerFlow]] = {
    anticache.AntiCache: (lambda a: not _opt("anticache"), None),
    anticomp.AntiComp: (lambda a: not _opt("anticomp"), None),
    blocklist.BlockList: (lambda a: not a.items, None),
    disable_h2c.DisableH2C: (
        lambda a: True,
        lambda a, f: f.request.method != "PRI" and "upgrade" not in f.request.headers,
    ),
    intercept.Intercept: (lambda a: a.filt is None or not _opt("intercept_active"), None),
    maplocal.MapLocal: (lambda a: not a.replacements, None),
    mapremote.MapRemote: (lambda a: not a.replacements, None),
    modifybody.ModifyBody: (lambda a: not a.replacements, None),
    onboarding.Onboarding: (lambda a: True, lambda a, f: not (_onboarding and _serves(a, f))),
    asgiapp.ASGIApp: (lambda a: True, lambda a, f: not _serves(a, f)),
    asgiapp.WSGIApp: (lambda a: True, lambda a, f: not _serves(a, f)),
    save.Save: (lambda a: True, None),  # notes the flow for a stream file; the request untouched
    serverplayback.ServerPlayback: (lambda a: True, lambda a, f: not a.flowmap),
    stickyauth.StickyAuth: (lambda a: a.flt is None, None),
    stickycookie.StickyCookie: (lambda a: a.flt is None, None),
    tlsconfig.TlsConfig: (
        lambda a: not (_opt("emudhra") or _opt("emudhra_old")),
        lambda a, f: not f.request.path.endswith(".crl"),
    ),
}
_onboarding = True  # the option, read when the chain is looked at


def _serves(app: Any, flow: http.HTTPFlow) -> bool:
    """ASGIApp.should_serve, read only when the Host header names the app's host (its
    `pretty_host` comes from that header; without one, from the request's host)."""
    want = app.host
    host = headerfields.get(flow.request.headers, b"host")
    if host is not None and want.isascii() and want.lower() not in host.lower():
        return False
    return bool(app.should_serve(flow))


class _Chain:
    """The chain's `request` hooks as the rule sees them, looked at again (at the next
    request) when an addon comes or goes (AddonManager.register/remove, wrapped) or an
    option changes (`options_changed`)."""

    def __init__(self) -> None:
        self.stale = True
        self.possible = False  # no hook that always means the usual way
        self.per_flow: list[tuple[Any, Callable[[Any, http.HTTPFlow], bool]]] = []
        self.early: list[Callable[[http.HTTPFlow], bool]] = []

    def refresh(self, manager: Any) -> None:
        global _onboarding
        self.stale = False
        self.possible = False
        self.per_flow, self.early = [], []
        _onboarding = bool(_opt("onboarding"))
        for addon in addonmanager.traverse(manager.chain):
            hook = getattr(addon, "request", None)
            if hook is None or not callable(hook):
                continue  # mitmproxy skips a module named `request` too
            early = getattr(addon, "request_early", None)
            if callable(early):
                self.early.append(early)
                continue
            known = BUILTIN.get(type(addon))
            if known is None or not known[0](addon):
                return
            if known[1] is not None:
                self.per_flow.append((addon, known[1]))
        self.possible = True


_chain = _Chain()


def options_changed() -> None:
    """An option changed: the built-ins' state is read again (at the next request)."""
    _chain.stale = True


def sent_early(flow: http.HTTPFlow) -> bool:
    """True for a flow whose request went before the `request` hooks ran."""
    return SENT_KEY in flow.metadata


def early_ready(flow: http.HTTPFlow) -> bool:
    """The rule above; the addons' `request_early` run here (the Gateway's rewrites the
    request for OCA). True: send it now."""
    if (
        not flow.live
        or flow.is_replay
        or flow.response is not None
        or flow.error is not None
        or flow.intercepted
        or flow.request.trailers
    ):
        return False
    if _chain.stale:
        _chain.refresh(ctx.master.addons)
    if not _chain.possible:
        return False
    for addon, leaves_alone in _chain.per_flow:
        if not leaves_alone(addon, flow):
            return False
    for early in _chain.early:
        if not early(flow):
            return False
    flow.metadata[SENT_KEY] = True
    return True


def _ready(flow: http.HTTPFlow) -> bool:
    try:
        return early_ready(flow)
    except Exception:  # a bug must cost the early send, never mitmproxy's connection
        log.exception("oca-proxy could not send %s early", flow.request.path[:200])
        flow.metadata.pop(SENT_KEY, None)
        return False


def _consume_request_body(self: Any, event: Any) -> Generator[Any, Any, None]:
    steps = _original_consume(self, event)
    if not isinstance(event, RequestEndOfMessage):
        yield from steps
        return
    early = False
    try:
        command = next(steps)
        while True:
            if isinstance(command, HttpRequestHook) and not early and _ready(self.flow):
                # As if the hook had run: mitmproxy sends the request now.
                early = True
                command = steps.send(None)
                continue
            result = yield command
            command = steps.send(result)
    except StopIteration:
        pass
    flow = self.flow
    if early:
        if flow.live and flow.error is None:
            # Sent: the `request` hook of the whole chain now, as after a streamed request.
            yield HttpRequestHook(flow)
        # Only for those hooks: never kept in a saved flow, nor seen by a replay of this one.
        flow.metadata.pop(SENT_KEY, None)


def _register(self: Any, addon: Any) -> Any:
    _chain.stale = True
    return _original_register(self, addon)


def _remove(self: Any, addon: Any) -> None:
    _chain.stale = True
    _original_remove(self, addon)


_original_consume = HttpStream.state_consume_request_body
_original_register = addonmanager.AddonManager.register
_original_remove = addonmanager.AddonManager.remove


def apply() -> None:
    global _applied
    if not _applied:
        HttpStream.state_consume_request_body = _consume_request_body  # type: ignore[method-assign]
        addonmanager.AddonManager.register = _register  # type: ignore[method-assign]
        addonmanager.AddonManager.remove = _remove  # type: ignore[method-assign]
        _applied = True
