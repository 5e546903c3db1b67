"""The least any addon in this design does, for the benchmark's "min. addon" column.

It reads the client's request, points it at OCA's chat path with the bearer token, and
streams the answer back through a callable: what oca-addon must do at the very least
(it needs the whole body before it can route it), with none of its work (no parsing,
routing, checks, translation or flow record). Its cost over bare mitmproxy belongs to the
design, a mitmproxy addon, and not to oca-addon's code. Loaded by bench/procs.py (and, in
its other modes, by bench/floors.py) only.
"""

from __future__ import annotations

import os

from mitmproxy import http

PATH = "/20250206/app/litellm/chat/completions"
TOKEN = os.environ.get("BENCH_TOKEN", "")


def _passthrough(data: bytes) -> bytes:
    return data


class FloorAddon:
    """BENCH_FLOOR_MODE (bench/floors.py takes the floor apart):

    - `whole` (the default): read the request whole, then point it at OCA and send it;
    - `stream`: decide at `requestheaders` and stream the request on as it comes, as bare
      mitmproxy does; oca-addon cannot (it routes by the body);
    - `buffer`: no request hook at all (the client sends OCA's path and token itself):
      mitmproxy reading the request whole and sending it, with no addon code before.
    """

    def __init__(self) -> None:
        self.mode = os.environ.get("BENCH_FLOOR_MODE", "whole")
        if self.mode not in ("whole", "stream", "buffer"):
            raise ValueError(f"BENCH_FLOOR_MODE: whole, stream or buffer, not {self.mode!r}")

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if self.mode == "stream":
            self._point_at_oca(flow)
            flow.request.stream = True

    def request(self, flow: http.HTTPFlow) -> None:
        if self.mode == "whole":
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
