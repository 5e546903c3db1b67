"""Keepalive: the long-running upkeep. Refreshes the login now and then even when idle,
fails calls whose upstream goes silent (oca_upstream_idle_timeout), and frees memory once
the proxy is idle.

Last in the chain: its response/error hooks end the call (the in-flight entry goes), after
every other addon has seen it.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import time
from typing import Any

from mitmproxy import ctx, http

from oca_addon.mitm import options
from oca_addon.mitm import patches as mitm_patches
from oca_addon.mitm.call import close_call
from oca_addon.mitm.state import ProxyState

log = logging.getLogger("oca_addon")

try:
    _malloc_trim: Any = ctypes.CDLL("libc.so.6").malloc_trim  # glibc (Linux) only
except (OSError, AttributeError):
    _malloc_trim = None


OPTION_RANGES = {
    "oca_keepalive": options.IntRange(0, 365 * options.DAY, "seconds", "never"),
    "oca_upstream_idle_timeout": options.IntRange(0, 365 * options.DAY, "seconds", "wait forever"),
}


class Keepalive:
    IDLE_GC_S = 1.0

    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self._keepalive: asyncio.Task[None] | None = None
        self._idle_watch: asyncio.Task[None] | None = None
        self._idle_gc: asyncio.TimerHandle | None = None
        self._last_done = 0.0  # time.monotonic() when the last API call ended
        self._done_since_gc = 0

    def load(self, loader: Any) -> None:
        add = loader.add_option
        add(
            "oca_keepalive",
            int,
            6 * 3600,
            "Refresh the login every this many seconds even when idle (0: never).",
        )
        add(
            "oca_upstream_idle_timeout",
            int,
            300,
            "Seconds OCA may stay silent (before or within an answer) before the request "
            "fails with a clear error (0: wait forever).",
        )

    def configure(self, updated: set[str]) -> None:
        options.check_ranges(updated, OPTION_RANGES)

    def running(self) -> None:
        loop = asyncio.get_running_loop()
        if ctx.options.oca_keepalive > 0:
            self._keepalive = loop.create_task(self._keep_alive())
        self._idle_watch = loop.create_task(self._watch_idle())
        # Modules, classes and options live as long as the process: out of the garbage
        # collector's way, so that its full passes (see _collect_when_idle) are short.
        gc.freeze()

    def done(self) -> None:
        if self._keepalive:
            self._keepalive.cancel()
        if self._idle_watch:
            self._idle_watch.cancel()
        if self._idle_gc:
            self._idle_gc.cancel()

    # -- the end of a call -------------------------------------------------------------

    def response(self, flow: http.HTTPFlow) -> None:
        if mitm_patches.resend_pending(flow):
            return  # OCA is asked once more: the call goes on
        if close_call(self.state, flow) is not None and flow.response is not None:
            self._call_done()

    def error(self, flow: http.HTTPFlow) -> None:
        if close_call(self.state, flow) is not None:
            self._call_done()

    def client_disconnected(self, client: Any) -> None:
        mitm_patches.forget_client(client.id)  # a cut reason that was never used

    # -- the login -------------------------------------------------------------------------

    async def _keep_alive(self) -> None:
        """Refresh tokens go stale when unused for days: refresh now and then even if idle."""
        while True:
            await asyncio.sleep(max(1, ctx.options.oca_keepalive))
            tokens = self.state.tokens
            if tokens and (await tokens.status()).logged_in:
                await tokens.refresh_now()

    # -- silent upstreams ----------------------------------------------------------------

    async def _watch_idle(self) -> None:
        """Fail requests whose upstream stays silent longer than oca_upstream_idle_timeout (and
        forget the conversations unused for long, translate/memo.py).

        mitmproxy would wait for OCA as long as the TCP connection lives; a client must get
        a clear error instead (504, or its API's terminal error event mid-stream)."""
        while True:
            limit = ctx.options.oca_upstream_idle_timeout
            await asyncio.sleep(min(5.0, max(0.25, limit / 4)) if limit > 0 else 5.0)
            self.state.conversations.expire()  # an idle proxy gives their memory back
            if limit <= 0:
                continue
            try:
                self._cut_silent_upstreams(limit)
            except Exception:  # the watch must outlive any surprise in mitmproxy's internals
                log.exception("Upstream idle watch failed")

    def _cut_silent_upstreams(self, limit: int) -> None:
        now = time.time()
        inflight = self.state.inflight
        for st in list(inflight.values()):
            flow = st.flow
            if st.cut:
                continue
            if not flow.live:
                # Neither response nor error came (should not happen): never leak the entry.
                if now - st.record.started > limit:
                    close_call(self.state, flow)
                continue
            last = max(st.record.started, mitm_patches.upstream_last_activity(flow) or 0.0)
            if now - last > limit:
                why = (
                    f"OCA sent nothing for {limit} s (oca_upstream_idle_timeout); "
                    f"oca-proxy gave up (OCA request id {st.record.request_id})"
                )
                if mitm_patches.close_upstream(flow, why):
                    st.cut = True
                    log.warning("Request %s: %s", st.record.request_id, why)

    # -- memory ------------------------------------------------------------------------------

    def _call_done(self) -> None:
        """An API call ended. Its flow (with the bodies kept on it) sits in mitmproxy's
        per-connection reference cycles, which only the cyclic garbage collector frees, and
        its full passes are rare: after a burst of streams the memory would stay taken for
        a long time. So once nothing has been in flight for a second, collect."""
        self._last_done = time.monotonic()
        self._done_since_gc += 1
        # Conversations the memo pushed out (MBs each): freed while nobody waits for them,
        # not on the way to a first token (translate/memo.py).
        self.state.conversations.release()
        if self._idle_gc is None and not self.state.inflight:
            loop = asyncio.get_running_loop()
            self._idle_gc = loop.call_later(self.IDLE_GC_S, self._collect_when_idle)

    def _collect_when_idle(self) -> None:
        self._idle_gc = None
        if self.state.inflight or not self._done_since_gc:
            return  # busy again (the next call to end re-arms this), or nothing to free
        wait = self._last_done + self.IDLE_GC_S - time.monotonic()
        if wait > 0:
            loop = asyncio.get_running_loop()
            self._idle_gc = loop.call_later(wait, self._collect_when_idle)
            return
        self._done_since_gc = 0
        gc.collect()
        if _malloc_trim is not None:
            _malloc_trim(0)  # and the freed pages back to the system (glibc keeps them)
