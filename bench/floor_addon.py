"""The least any addon in this design does, for the benchmark's "min. addon" column.

It reads the client's request, points it at OCA's chat path with the bearer token, and
streams the answer back through a callable: what oca-addon must do at the very least
(it needs the whole body before it can route it), with none of its work (no parsing,
routing, checks, translation or flow record). Its cost over bare mitmproxy belongs to the
design, a mitmproxy addon, and not to oca-addon's code. Loaded by bench/procs.py only.
"""

from __future__ import annotations

import os

from mitmproxy import http

PATH = "/20250206/app/litellm/chat/completions"
TOKEN = os.environ["BENCH_TOKEN"]


def _passthrough(data: bytes) -> bytes:
    return data


class FloorAddon:
    def request(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        req.path = PATH
        req.headers["authorization"] = f"Bearer {TOKEN}"

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            flow.response.stream = _passthrough


addons = [FloorAddon()]
