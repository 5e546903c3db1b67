"""ViewLimit (issue 15) on its own: the oldest flows go first, a live one never; the
cap through a real mitmweb is in tests/e2e/test_view_limit.py."""

from __future__ import annotations

from typing import Any

from oca_addon.addons.viewlimit import ViewLimit, flow_size


class _FakeView:
    def __init__(self) -> None:
        self.flows: dict[str, Any] = {}

    def get_by_id(self, fid: str) -> Any:
        return self.flows.get(fid)

    def remove(self, flows: list[Any]) -> None:
        for f in flows:
            self.flows.pop(f.id, None)


def test_the_oldest_go_first_and_live_flows_stay() -> None:
    from mitmproxy.test import tflow

    from oca_addon.mitm.state import ProxyState

    limit = ViewLimit(ProxyState())
    limit.view = _FakeView()
    limit.max_flows, limit.max_bytes = 3, 0
    made = []
    for _ in range(5):
        f = tflow.tflow(resp=True)
        f.live = False
        limit.view.flows[f.id] = f
        made.append(f)
        limit._account(f)
    assert list(limit.view.flows) == [f.id for f in made[2:]]
    assert limit.total == sum(flow_size(f) for f in made[2:])
    # Bytes: a flow over the cap on its own leaves only itself.
    limit.max_flows, limit.max_bytes = 0, flow_size(made[-1])
    limit._trim()
    assert list(limit.view.flows) == [made[-1].id]
    # A flow being replayed (live) is never dropped under the user's hands.
    limit.max_bytes = 1
    made[-1].live = True
    limit._trim()
    assert list(limit.view.flows) == [made[-1].id]
