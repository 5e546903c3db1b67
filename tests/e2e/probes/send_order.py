"""Loaded next to oca_addon.py by tests/e2e/test_gateway_timing.py: writes to $HOME/order.log,
in order, each request written to OCA ("sent"), each run of the gateway's request hook
("request_hook") and of its after-send work ("after_send"), to show when each runs. It
adds no addon (no hook of its own): it wraps what is there."""

from __future__ import annotations

from asyncio import selector_events
from pathlib import Path
from typing import Any

from oca_addon.addons import gateway

LOG = Path.home() / "order.log"
_write = selector_events._SelectorSocketTransport.write
_after_send = gateway.Gateway._after_send
_request = gateway.Gateway.request


def _note(what: str) -> None:
    with LOG.open("a") as f:
        f.write(what + "\n")


def transport_write(self: Any, data: Any) -> None:
    if bytes(data[:5]) == b"POST ":  # a request head: only the proxy's to OCA in these tests
        _note("sent")
    _write(self, data)


def after_send(*args: Any) -> None:
    _note("after_send")
    _after_send(*args)


async def gateway_request(self: Any, flow: Any) -> None:
    _note("request_hook")
    await _request(self, flow)


selector_events._SelectorSocketTransport.write = transport_write  # type: ignore[method-assign]
gateway.Gateway._after_send = staticmethod(after_send)  # type: ignore[method-assign]
gateway.Gateway.request = gateway_request  # type: ignore[method-assign]
