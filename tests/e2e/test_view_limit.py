"""A long mitmweb session stays bounded (issue 15): mitmweb keeps the newest flows up to
oca_view_limit_flows / oca_view_limit_mb and drops the oldest, says so once in the log and
on the dashboard, and its memory stops growing. Through a real mitmweb."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import openai
from conftest import free_port
from test_replay import Web

NOTE = "older flows are dropped from the view"


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_mitmweb_keeps_the_newest_flows_and_stops_growing(proxy_factory: Any) -> None:
    # OCA_TEST_VIEW_FLOWS=0 OCA_TEST_VIEW_MB=0 shows the failure this guards against (RSS
    # +70 MiB over these calls, where the cap keeps it near +20).
    web_port = free_port()
    proxy = proxy_factory(
        program="mitmweb",
        options={
            "web_port": str(web_port),
            "web_open_browser": "false",
            "web_password": "pw",
            "oca_view_limit_flows": os.environ.get("OCA_TEST_VIEW_FLOWS", "40"),
            "oca_view_limit_mb": os.environ.get("OCA_TEST_VIEW_MB", "8"),
        },
    )
    web = Web(web_port)
    oa = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
    big = "x" * 300_000

    def batch(n: int) -> None:
        for i in range(n):
            oa.chat.completions.create(
                model="oca/gpt-4.1", messages=[{"role": "user", "content": f"{i} {big}"}]
            )

    batch(40)
    time.sleep(2)  # Keepalive's idle collection
    first = _rss_mib(proxy.proc.pid)
    for _ in range(3):
        batch(40)
        flows = web.flows()
        assert len(flows) <= 40
    time.sleep(2)
    last = _rss_mib(proxy.proc.pid)
    # 120 more calls of 300 kB each (kept as request, metadata and answer): ~100+ MiB
    # if nothing were dropped; the cap is 8 MiB.
    print(f"RSS {first:.0f} -> {last:.0f} MiB")
    assert last - first < 40, (first, last)
    flows = web.flows()
    api = [f for f in flows if f["request"]["path"].endswith("/chat/completions")]
    assert 0 < len(api) <= 40
    assert sum((f["request"]["contentLength"] or 0) for f in api) <= 8 * 1024 * 1024
    log = proxy.log()
    assert log.count(NOTE) == 1, log[-3000:]
    state = httpx.get(proxy.url + "/api/state", timeout=10).json()
    assert NOTE in (state["view_note"] or "") and "Dropped so far" in state["view_note"]
