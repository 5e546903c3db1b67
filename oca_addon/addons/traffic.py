"""Traffic: what each call leaves on its flow and in the log (annotate.py): the comment,
mark, summary and the batched per-call log line, the token redacted, the stats; comments
on the answers oca-proxy gave itself; the "OCA" content view.

After the Gateway in the chain: it closes a call once the answer for the client is final.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from mitmproxy import ctx, http

from oca_addon.core.stats import RequestRecord
from oca_addon.core.streams import token_counts, usage_from_stream
from oca_addon.mitm import annotate, contentview, options, owncalls
from oca_addon.mitm import patches as mitm_patches
from oca_addon.mitm.call import Call, call_of
from oca_addon.mitm.owncalls import OWN_CALL
from oca_addon.mitm.state import ProxyState

log = logging.getLogger("oca_addon")


OPTION_RANGES = {"oca_capture_limit": options.IntRange(0, None, "bytes", "keep nothing")}


class Traffic:
    def __init__(self, state: ProxyState) -> None:
        self.state = state

    def load(self, loader: Any) -> None:
        contentview.register()  # the OCA view: assembled streams, client vs OCA side by side
        loader.add_option(
            "oca_capture_limit",
            int,
            2 * 1024 * 1024,
            "Bytes of each streamed body kept for display after the stream ends.",
        )

    def configure(self, updated: set[str]) -> None:
        options.check_ranges(updated, OPTION_RANGES)
        self.state.capture_limit = ctx.options.oca_capture_limit

    def running(self) -> None:
        annotate.show_comments_in_mitmweb()

    def response(self, flow: http.HTTPFlow) -> None:
        if mitm_patches.resend_pending(flow):
            return  # OCA is asked once more: the call goes on
        replay = self.state.replays.pop(flow.id, None)
        if replay is not None:
            self._close_replay(flow, replay)
            return
        st = call_of(flow)
        if st is None or flow.response is None:
            refusal = annotate.local_answer(flow)
            if refusal is not None:  # refused or failed by oca-proxy itself: traced too
                self.state.stats.record(refusal)
            return
        self._close(flow, st)

    def error(self, flow: http.HTTPFlow) -> None:
        replay = self.state.replays.pop(flow.id, None)
        if replay is not None:
            self._close_replay(flow, replay)
            return
        st = call_of(flow)
        if st is None:
            if flow.live and flow.response is not None and flow.response.status_code >= 400:
                # mitmproxy answered it (e.g. 413 for a body over the limit): leave a trace.
                msg = flow.error.msg if flow.error else ""
                self.state.stats.record(annotate.refused(flow, flow.response.status_code, msg))
            return
        self._close(flow, st)
        log.warning("Request %s to OCA failed: %s", st.record.request_id, st.record.error)

    def _close(self, flow: http.HTTPFlow, st: Call) -> None:
        rec = st.record
        rec.latency_ms = (time.time() - rec.started) * 1000
        data = annotate.meta(flow)
        rec.flow_id, rec.replay_of = flow.id, str(data.get("replay_of") or "")
        self.state.stats.record(rec)
        annotate.finish(flow, rec)  # comment, mark, token redacted, log line

    def _close_replay(self, flow: http.HTTPFlow, rec: RequestRecord) -> None:
        """A replay of a request made for OCA (addons/replay.py): its answer is OCA's own."""
        resp = flow.response
        rec.latency_ms = (time.time() - rec.started) * 1000
        rec.flow_id = flow.id
        rec.status = resp.status_code if resp is not None else 502
        if flow.error is not None:
            rec.error = flow.error.msg
        if flow.metadata.get(OWN_CALL):  # oca-proxy's own (the model list): no call's stats
            annotate.finish(flow, rec)
            owncalls.finished(self.state, flow)
            return
        if resp is not None:
            raw = resp.raw_content or b""
            if "text/event-stream" in resp.headers.get("content-type", ""):
                usage = usage_from_stream(raw)
            else:
                usage = _json_usage(raw)
            rec.input_tokens, rec.output_tokens = token_counts(usage)
            data = annotate.meta(flow)
            data["oca_response"] = {
                "status_code": resp.status_code,
                "content_type": resp.headers.get("content-type", ""),
                "headers": annotate.safe_headers(resp.headers),
                "same_as_client": True,
            }
            data["client_response"] = {"replay": True, "size": len(raw)}
        self.state.stats.record(rec)
        annotate.finish(flow, rec)

    def done(self) -> None:
        annotate.redact_all()  # flows still open at shutdown are saved (-w) after this
        annotate.traffic_log.flush()


def _json_usage(raw: bytes) -> dict[str, Any] | None:
    import json

    try:
        body = json.loads(raw)
    except ValueError:
        return None
    usage = body.get("usage") if isinstance(body, dict) else None
    return usage if isinstance(usage, dict) else None
