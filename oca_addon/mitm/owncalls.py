"""oca-proxy's own calls to OCA (its model list): mitmproxy flows, like every call to OCA.

Each is made as a client replay (`replay.client`): mitmproxy sends it with its upstream
options and connection handling, mitmweb shows it, the Replays addon puts a fresh token on
the wire (the flow shows a placeholder), and Traffic closes it and hands the finished flow
to the caller waiting here. No second HTTP client talks to OCA.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from mitmproxy import connection, ctx, http

from oca_addon.mitm.state import CLIENT_HEADERS, ProxyState

OWN_CALL = "oca.own_call"  # flow.metadata: what the call is for, in words


async def call_oca(state: ProxyState, path: str, what: str, timeout: float) -> http.HTTPFlow | None:
    """GET OCA's `path` (under the API prefix) as a flow of its own; the finished flow (its
    response None when the call failed), or None when no answer came within `timeout`."""
    upstream = state.upstream
    assert upstream is not None
    scheme, host, port = upstream.origin
    now = time.time()
    host_header = host if port in (80, 443) else f"{host}:{port}"
    headers = http.Headers(
        [
            (b"host", host_header.encode("utf-8", "surrogateescape")),
            (b"accept", b"application/json"),
            (b"opc-request-id", uuid.uuid4().hex.encode()),
            *((k.encode(), v.encode()) for k, v in CLIENT_HEADERS.items()),
        ]
    )
    request = http.Request(
        host, port, b"GET", scheme.encode(), b"", (upstream.prefix + path).encode(),
        b"HTTP/1.1", headers, b"", None, now, now,
    )  # fmt: skip
    client = connection.Client(
        peername=("127.0.0.1", 0), sockname=("127.0.0.1", 0), timestamp_start=now
    )
    flow = http.HTTPFlow(client, connection.Server(address=(host, port)))
    flow.request = request
    flow.metadata[OWN_CALL] = what
    flow.comment = f"oca-proxy's own call: {what}"
    done: asyncio.Future[http.HTTPFlow] = asyncio.get_running_loop().create_future()
    state.own_calls[flow.id] = done
    view = ctx.master.addons.get("view")
    if view is not None:
        view.add([flow])
    ctx.master.commands.call("replay.client", [flow])
    try:
        return await asyncio.wait_for(asyncio.shield(done), timeout)
    except TimeoutError:
        return None
    finally:
        state.own_calls.pop(flow.id, None)


def finished(state: ProxyState, flow: http.HTTPFlow) -> None:
    """Traffic closed an own call: the caller gets its flow."""
    done = state.own_calls.pop(flow.id, None)
    if done is not None and not done.done():
        done.set_result(flow)
