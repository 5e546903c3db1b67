"""The least any addon in this design does, for the benchmark's "min. addon" column.

It reads the client's request, points it at OCA's chat path with the bearer token, and
streams the answer back through a callable: what oca-addon must do at the very least
(it needs the whole body before it can route it), with none of its work (no parsing,
routing, checks, translation or flow record). Its cost over bare mitmproxy belongs to the
design, a mitmproxy addon, and not to oca-addon's code. Loaded by bench/procs.py (and,
streaming the request on, by bench/floors.py) only.
"""

from __future__ import annotations

import os

from mitmproxy import http

PATH = "/20250206/app/litellm/chat/completions"
TOKEN = os.environ["BENCH_TOKEN"]


def _passthrough(data: bytes) -> bytes:
    return data


class FloorAddon:
    """BENCH_STREAM_REQUEST=1 (bench/floors.py): decide at `requestheaders` and stream the
    request on as it comes, as bare mitmproxy does; oca-addon cannot (it routes by the body)."""

    def __init__(self) -> None:
        self.stream_request = os.environ.get("BENCH_STREAM_REQUEST") == "1"

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if self.stream_request:
            self._point_at_oca(flow)
            flow.request.stream = True

    def request(self, flow: http.HTTPFlow) -> None:
        if not self.stream_request:
            self._point_at_oca(flow)

    @staticmethod
    def _point_at_oca(flow: http.HTTPFlow) -> None:
        req = flow.request
        req.path = PATH
        req.headers["authorization"] = f"Bearer {TOKEN}"

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            flow.response.stream = _passthrough


addons = [FloorAddon()]
