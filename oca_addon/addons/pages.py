"""LocalPages: the pages oca-proxy answers itself (dashboard, login, callback, logout,
health), without touching OCA. The pages are in oca_addon/site/local.py; this hands them the
flows that are not API calls.
"""

from __future__ import annotations

from mitmproxy import http

from oca_addon.core.routing import classify
from oca_addon.mitm import patches as mitm_patches
from oca_addon.mitm.state import ProxyState
from oca_addon.site.local import LocalSite


class LocalPages:
    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self.site = LocalSite(state)

    def request_early(self, flow: http.HTTPFlow) -> bool:
        """Before a request is sent early (mitm/patches/earlysend.py): True for an API call
        (nothing to do here); a page takes the usual way."""
        return classify(flow.request.path) is not None and flow.id not in self.state.replays

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or not flow.live or mitm_patches.sent_early(flow):
            return  # refused already, a saved flow being read (-r), or an API call sent
        if flow.id in self.state.replays:
            return  # a replay of a request made for OCA: goes there as it is
        if classify(flow.request.path) is not None:
            return  # an API call: the gateway's
        await self.site.handle(flow)
