"""Cutting a flow's upstream from outside a hook (the silent-upstream timeout, Keepalive).

mitmproxy cannot kill a flow in transit (flow.kill() only acts at the next hook), so an
upstream that goes silent is cut by cancelling its connection task: the HTTP layer then
sees the connection close and ends the client's answer (cutstream: the terminal error
event, or a 504 when nothing was sent yet), with the reason recorded here. The one public
hook that can do a job here, `client_disconnected`, does (Keepalive calls `forget_client`).

Nothing of mitmproxy is replaced; its internals are read (checked against mitmproxy
12.3.1): Proxyserver.connections, ConnectionHandler.transports and .timeout_watchdog,
ConnectionIO.handler, TimeoutWatchdog.last_activity. Not applied (those changed), nothing
is cut: `close_upstream` answers False and `upstream_last_activity` None.
"""

from __future__ import annotations

from typing import Any

BEHAVIOUR = "silent upstreams cut after oca_upstream_idle_timeout"
REQUIRED = False
# qualified name (under `mitmproxy.`) -> (source hash, parameter names): see patches/__init__
CHECKED: dict[str, tuple[str, tuple[str, ...]]] = {
    # read by close_upstream / upstream_last_activity (connections, transports, handler,
    # timeout_watchdog.last_activity)
    "addons.proxyserver.Proxyserver.__init__": ("618fcf430ee48e83", ("self",)),
    "proxy.server.ConnectionHandler.__init__": ("ffb8e6c9e6c6d020", ("self", "context")),
    "proxy.server.ConnectionIO": ("f498a46ab1b0f40f", ()),
    "proxy.server.TimeoutWatchdog.register_activity": ("41e033f7debf79d3", ("self",)),
}
_applied = False
_cut_reasons: dict[str, str] = {}  # client connection id -> why oca-proxy cut its upstream


def close_upstream(flow: Any, reason: str) -> bool:
    """Close the flow's connection to OCA now; True if there was one to close.

    Reads mitmproxy internals (checked against mitmproxy 12.3.1): Proxyserver.connections,
    ConnectionHandler.transports, ConnectionIO.handler."""
    if not _applied:
        return False
    handler = _connection_handler(flow)
    io = handler.transports.get(flow.server_conn) if handler is not None else None
    task = getattr(io, "handler", None)
    if task is None or task.done():
        return False
    _cut_reasons[flow.client_conn.id] = reason
    task.cancel(reason)
    return True


def take_cut_reason(client_id: str) -> str | None:
    """Why oca-proxy cut this client connection's upstream, if it did (once)."""
    return _cut_reasons.pop(client_id, None)


def forget_client(client_id: str) -> None:
    """A client connection ended: drop any reason that was never used."""
    _cut_reasons.pop(client_id, None)


def upstream_last_activity(flow: Any) -> float | None:
    """When the flow's client connection last saw traffic (time.time()), if known.

    Reads mitmproxy internals (checked against mitmproxy 12.3.1): Proxyserver.connections,
    ConnectionHandler.timeout_watchdog, TimeoutWatchdog.last_activity."""
    if not _applied:
        return None
    watchdog = getattr(_connection_handler(flow), "timeout_watchdog", None)
    return getattr(watchdog, "last_activity", None)


def _connection_handler(flow: Any) -> Any:
    """mitmproxy's handler of the flow's client connection (Proxyserver.connections)."""
    from mitmproxy import ctx

    proxyserver = ctx.master.addons.get("proxyserver")
    return getattr(proxyserver, "connections", {}).get(flow.client_conn.id)


def apply() -> None:
    """Nothing to replace: the internals above may be read from now on."""
    global _applied
    _applied = True
