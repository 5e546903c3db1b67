"""The OCA token in the request head on the wire only: flows never hold it.

The OCA access token must reach OCA but never the flow (mitmweb, saved flows, dumps): the
flow's request carries a placeholder (`REDACTED`), and the real value
(`set_wire_headers`) is put into the bytes sent upstream, right when the request head is
written. Not a public hook: none runs between the `request` hook and the request head
going on the wire.

REQUIRED: applied even when the code it wraps changed (see patches/__init__), since
without it no call reaches OCA with its token; the wrapper only sets header values on the
event's request while mitmproxy's own method runs.

Patch (checked against mitmproxy 12.3.1): `_http1.Http1Client.send` and
`_http2.Http2Client._handle_event2`, the upstream side, where the request head is written,
wrapped by `_with_wire_headers`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from mitmproxy import http
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http import _http1, _http2
from mitmproxy.proxy.layers.http._events import RequestHeaders

BEHAVIOUR = "the token on the wire only"
REQUIRED = True
# qualified name (under `mitmproxy.`) -> (source hash, parameter names): see patches/__init__
CHECKED: dict[str, tuple[str, tuple[str, ...]]] = {
    # wrapped by _with_wire_headers
    "proxy.layers.http._http1.Http1Client.send": ("35d961e20d481204", ("self", "event")),
    "proxy.layers.http._http2.Http2Client._handle_event2": (
        "a3b722b18c3f46fa",
        ("self", "event"),
    ),
}
_applied = False

WIRE_ATTR = "_oca_wire_headers"
REDACTED = "Bearer <redacted>"  # what flows show (same as annotate.REDACTED_BEARER)


def set_wire_headers(request: http.Request, headers: dict[str, str]) -> None:
    """Send these header values upstream instead of what the flow shows.

    Kept in a private attribute: flow copies and saved flows never carry it (a replay in
    place does: see clear_wire_headers)."""
    setattr(request, WIRE_ATTR, headers)


def clear_wire_headers(request: http.Request) -> None:
    """Forget them (a flow replayed in place keeps its request object, and so its first
    run's token: a replay gets its own, or none)."""
    if hasattr(request, WIRE_ATTR):
        delattr(request, WIRE_ATTR)


# Patch (checked against mitmproxy 12.3.1): Http1Client.send and Http2Client._handle_event2,
# the upstream side, where the request head is written.
def _with_wire_headers(original: Any) -> Any:
    def send(self: Any, event: Any) -> Generator[commands.Command, Any, None]:
        wire = getattr(event, "request", None) if isinstance(event, RequestHeaders) else None
        secrets = getattr(wire, WIRE_ATTR, None) if wire is not None else None
        if not secrets:
            yield from original(self, event)
            return
        assert wire is not None
        shown = {k: wire.headers.get_all(k) for k in secrets}
        for k, v in secrets.items():
            wire.headers[k] = v
        try:
            # Sending a request head only yields plain commands: run it now, while the
            # real values are in place, then put the placeholders back.
            cmds = list(original(self, event))
        finally:
            for k, values in shown.items():
                wire.headers.set_all(k, values)
        yield from cmds

    return send


def apply() -> None:
    global _applied
    if not _applied:
        _http1.Http1Client.send = _with_wire_headers(_http1.Http1Client.send)  # type: ignore[method-assign]
        _http2.Http2Client._handle_event2 = _with_wire_headers(_http2.Http2Client._handle_event2)  # type: ignore[method-assign]
        _applied = True
