"""bench/floor_addon.py, but deciding at `requestheaders` and streaming the request body on
as it comes, as bare mitmproxy does (`stream_large_bodies`): for `python -m bench.floors`,
which shows where the minimal addon's distance to bare mitmproxy comes from. oca-addon
cannot work this way: it routes by the body (model name, API), so it must read it whole.
"""

from __future__ import annotations

import os

from mitmproxy import http

PATH = "/20250206/app/litellm/chat/completions"
TOKEN = os.environ["BENCH_TOKEN"]


def _passthrough(data: bytes) -> bytes:
    return data


class StreamedFloorAddon:
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        req.path = PATH
        req.headers["authorization"] = f"Bearer {TOKEN}"
        req.stream = True

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            flow.response.stream = _passthrough


addons = [StreamedFloorAddon()]
