"""Loaded after oca_addon.py by tests/e2e/test_gateway_timing.py: a user's script with a
`request` hook, which may change a request before it goes (here: a header OCA must see).
Its presence means every request takes mitmproxy's usual way (mitm/patches/earlysend.py)."""

from __future__ import annotations

from pathlib import Path

from mitmproxy import http

LOG = Path.home() / "order.log"


class Stamp:
    def request(self, flow: http.HTTPFlow) -> None:
        with LOG.open("a") as f:
            f.write("script_hook\n")
        flow.request.headers["x-script-saw"] = "yes"


addons = [Stamp()]
