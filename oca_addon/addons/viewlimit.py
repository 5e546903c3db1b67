"""ViewLimit: a long mitmweb session stays bounded. mitmweb (and mitmproxy's console) keep
every flow with its bodies for as long as they run: a day of coding-tool traffic would take
gigabytes. This keeps the newest flows, up to `oca_view_limit_flows` flows and
`oca_view_limit_mb` MiB of bodies, and drops the oldest from mitmproxy's `view`; it says so
once, in the log and on the dashboard.

mitmdump keeps no flows (it has no `view`): nothing to do there.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from mitmproxy import ctx, http

from oca_addon.mitm import annotate, options
from oca_addon.mitm import patches as mitm_patches
from oca_addon.mitm.state import ProxyState

log = logging.getLogger("oca_addon")


def flow_size(flow: http.HTTPFlow) -> int:
    """Bytes a finished flow holds: its bodies, and the bodies kept in its metadata."""
    size = len(flow.request.raw_content or b"")
    if flow.response is not None:
        size += len(flow.response.raw_content or b"")
    data = flow.metadata.get(annotate.META_KEY)
    if isinstance(data, dict):
        for key in ("client_request", "oca_response"):
            kept = data.get(key)
            body = kept.get("body") if isinstance(kept, dict) else None
            if isinstance(body, str):
                size += len(body)
    return size


OPTION_RANGES = {
    "oca_view_limit_mb": options.IntRange(0, None, "MiB", "no limit"),
    "oca_view_limit_flows": options.IntRange(0, None, "flows", "no limit"),
}


class ViewLimit:
    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self.view: Any = None
        self.max_bytes = 256 * 1024 * 1024
        self.max_flows = 1000
        self.sizes: OrderedDict[str, int] = OrderedDict()  # finished flows, oldest first
        self.total = 0
        self.dropped = 0

    def load(self, loader: Any) -> None:
        add = loader.add_option
        add(
            "oca_view_limit_mb",
            int,
            256,
            "mitmweb keeps the newest flows up to this many MiB of bodies and drops the "
            "oldest (0: no limit).",
        )
        add(
            "oca_view_limit_flows",
            int,
            1000,
            "mitmweb keeps at most this many flows and drops the oldest (0: no limit).",
        )

    def configure(self, updated: set[str]) -> None:
        options.check_ranges(updated, OPTION_RANGES)
        self.max_bytes = ctx.options.oca_view_limit_mb * 1024 * 1024
        self.max_flows = ctx.options.oca_view_limit_flows
        if self.view is not None:
            self._trim()

    def running(self) -> None:
        view = ctx.master.addons.get("view")
        if view is None:
            return  # mitmdump: flows are not kept
        self.view = view
        # Flows the user removes or clears leave the count at once.
        view.sig_store_remove.connect(self._removed)
        view.sig_store_refresh.connect(self._refreshed)

    def response(self, flow: http.HTTPFlow) -> None:
        if not mitm_patches.resend_pending(flow):  # else OCA is asked once more
            self._account(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._account(flow)

    def _account(self, flow: http.HTTPFlow) -> None:
        if self.view is None:
            return
        size = flow_size(flow)
        self.total += size - self.sizes.pop(flow.id, 0)  # a replay in place counts anew
        self.sizes[flow.id] = size
        self._trim()

    def _over(self) -> bool:
        return bool(
            (self.max_flows and len(self.sizes) > self.max_flows)
            or (self.max_bytes and self.total > self.max_bytes)
        )

    def _trim(self) -> None:
        while self.sizes and self._over():
            flow_id = next(iter(self.sizes))
            flow = self.view.get_by_id(flow_id)
            if flow is not None and flow.live:
                break  # being replayed: it counts again when it ends
            self.total -= self.sizes.pop(flow_id)
            if flow is not None:
                self.view.remove([flow])  # one at a time: mitmproxy alerts on every batch
                self.dropped += 1
                self._announce()

    def _announce(self) -> None:
        note = (
            f"mitmweb keeps the newest {self.max_flows or 'unlimited'} flows and "
            f"{self.max_bytes // (1024 * 1024) or 'unlimited'} MiB of bodies; older flows "
            "are dropped from the view (options oca_view_limit_flows, oca_view_limit_mb; "
            "0 keeps all)."
        )
        if self.state.view_note is None:
            log.warning("%s", note)  # once
        self.state.view_note = f"{note} Dropped so far: {self.dropped}."

    def _removed(self, flow: Any) -> None:
        size = self.sizes.pop(flow.id, None)
        if size is not None:
            self.total -= size

    def _refreshed(self) -> None:
        # view.clear / clear_unmarked: keep only the flows still in the store.
        store = self.view.get_by_id
        for flow_id in [i for i in self.sizes if store(i) is None]:
            self.total -= self.sizes.pop(flow_id)
