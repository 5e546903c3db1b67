"""Recent requests and token totals, for the dashboard and /health."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestRecord:
    started: float
    api: str
    path: str
    requested_model: str
    target_model: str
    route: str  # "native" | "translated" (via chat) | "via responses" | "via messages" | "refused"
    stream: bool
    status: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    ttfb_ms: float | None = None
    error: str | None = None
    request_id: str = ""
    flow_id: str = ""  # the mitmproxy flow (the dashboard's Replay button names it)
    replay_of: str = ""  # the flow this call replays (oca.replay)
    learned: str = ""  # what was changed as OCA said of the model before (addons/retry.py)
    retried: str = ""  # OCA refused the first try: what the one retry changed

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)  # plain values only: no need for asdict's deep copy


@dataclass
class Stats:
    recent: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=200))
    totals: dict[str, dict[str, int]] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def record(self, rec: RequestRecord) -> None:
        self.recent.append(rec)
        t = self.totals.setdefault(
            rec.target_model, {"requests": 0, "input_tokens": 0, "output_tokens": 0, "errors": 0}
        )
        t["requests"] += 1
        t["input_tokens"] += rec.input_tokens
        t["output_tokens"] += rec.output_tokens
        if rec.status >= 400 or rec.error:
            t["errors"] += 1
