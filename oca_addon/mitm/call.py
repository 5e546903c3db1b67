"""One `Call` per API request: what the hooks carry from the request to the end of its answer.

The plan is the call's `exchange` (core/exchange.py: the client API, the route, the model
choice, OCA's request; replaced whole by a retry); the rest is what the hooks learn on the
way. A call lives on its flow, as `flow.metadata[CALL]`, so every addon finds it there; while
it is open it is also in `ProxyState.inflight` (the upstream idle watch walks those).

Its `record` is the view the log line, the dashboard and the stats read. A flow that is
copied or saved (mitmweb, `-w`) deep-copies its metadata: there a call becomes that view, a
plain dict, never the live objects (stream translators, parsed bodies) it holds; and once the
call ends, the flow keeps only the view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mitmproxy import http

from oca_addon.core.exchange import Exchange
from oca_addon.core.stats import RequestRecord

if TYPE_CHECKING:
    from oca_addon.core.streams import PassthroughTap, StreamDriver
    from oca_addon.mitm.state import ProxyState

CALL = "oca.call"  # flow.metadata key


@dataclass(eq=False)
class Call:
    exchange: Exchange  # the plan (a retry puts its own)
    record: RequestRecord  # the view for the log line, the dashboard and the stats
    access_token: str
    flow: http.HTTPFlow
    driver: StreamDriver | PassthroughTap | None = None  # on a streamed answer
    cut: bool = False  # the idle watch closed its upstream
    first_refusal: str | None = None  # OCA refused the first try: its words (one retry only)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return self.record.as_dict()


def call_of(flow: http.HTTPFlow) -> Call | None:
    """The flow's open API call, if it is one."""
    call = flow.metadata.get(CALL)
    return call if isinstance(call, Call) else None


def open_call(state: ProxyState, call: Call) -> None:
    call.flow.metadata[CALL] = call
    state.inflight[call.flow.id] = call


def close_call(state: ProxyState, flow: http.HTTPFlow) -> Call | None:
    """The call ended (its answer, or an error): the flow keeps only its view."""
    call = state.inflight.pop(flow.id, None)
    if call is not None:
        flow.metadata[CALL] = call.record.as_dict()
    return call
