"""Closed-loop load: C clients, each on its own keep-alive connection, sending one
request after another; plus the statistics the report uses."""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from dataclasses import dataclass, field

from .client import Conn, Result, Target


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); nan for no values."""
    vals = sorted(v for v in values if not math.isnan(v))
    if not vals:
        return float("nan")
    if len(vals) == 1:
        return vals[0]
    pos = (len(vals) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


def median(values: list[float]) -> float:
    return percentile(values, 50)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (from /proc, no psutil)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class LoadResult:
    target: str
    concurrency: int
    requests: int
    errors: int
    wall: float
    ttft: list[float] = field(default_factory=list)
    # Every request's TTFT in order, nan for failures (lines up across interleaved targets).
    ttft_in_turn: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    max_gap: list[float] = field(default_factory=list)
    proxy_cpu: float | None = None  # CPU seconds the proxy process used meanwhile
    first_error: str = ""

    @property
    def rps(self) -> float:
        ok = self.requests - self.errors
        return ok / self.wall if self.wall > 0 else 0.0

    def summary(self) -> dict[str, float | int | str | None]:
        ms = 1000.0
        return {
            "requests": self.requests,
            "errors": self.errors,
            "rps": self.rps,
            "ttft_p50_ms": percentile(self.ttft, 50) * ms,
            "ttft_p99_ms": percentile(self.ttft, 99) * ms,
            "total_p50_ms": percentile(self.total, 50) * ms,
            "total_p99_ms": percentile(self.total, 99) * ms,
            "proxy_cpu_ms_per_request": (
                self.proxy_cpu / max(1, self.requests) * ms if self.proxy_cpu is not None else None
            ),
            "first_error": self.first_error,
        }


async def run_load(
    target: Target,
    text: str,
    *,
    concurrency: int,
    requests: int,
    proxy_pid: int | None = None,
    timeout: float = 120.0,
) -> LoadResult:
    """`requests` requests in total, `concurrency` at a time (each client its own connection)."""
    conns = [Conn(target) for _ in range(concurrency)]
    payload = target.request_bytes(text)
    # Connect first, so connection set-up is not part of the measurement.
    for c in conns:
        await c.connect()
    remaining = requests
    results: list[Result] = []

    async def client(conn: Conn) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            results.append(await conn.request(text, timeout=timeout, payload=payload))

    cpu0 = cpu_seconds(proxy_pid) if proxy_pid else None
    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(client(c) for c in conns))
    finally:
        wall = time.perf_counter() - t0
        cpu1 = cpu_seconds(proxy_pid) if proxy_pid else None
        for c in conns:
            c.close()
    res = LoadResult(target.name, concurrency, len(results), 0, wall)
    if cpu0 is not None and cpu1 is not None:
        res.proxy_cpu = cpu1 - cpu0
    for r in results:
        if r.ok:
            res.ttft.append(r.ttft)
            res.total.append(r.total)
            res.max_gap.append(r.max_gap)
        else:
            res.errors += 1
            if not res.first_error:
                res.first_error = f"status {r.status}: {r.error}"
    return res


def turn_orders(columns: int, turns: int, seed: int = 20261207) -> list[list[int]]:
    """The order the columns take in each turn: shuffled turn by turn (the same shuffles
    every run). A column that follows one served by the same process finds that process
    warm (its code and data in the CPU's caches), one that follows another process's finds
    it cold: with the order only rotated, the first addon column was always the cold one
    (chat pass-through: ~0.4 ms at 1 client here), the others always warm."""
    rng = random.Random(seed)
    orders = []
    for _ in range(turns):
        order = list(range(columns))
        rng.shuffle(order)
        orders.append(order)
    return orders


async def run_interleaved(
    targets: list[Target], text: str, *, requests: int, timeout: float = 120.0, seed: int = 0
) -> list[LoadResult]:
    """One client per target, taking turns request by request (in an order shuffled turn by
    turn: turn_orders): whatever the machine does meanwhile hits every target alike, so their latencies compare
    even when other programs load the machine. Requests per second here is 1 / mean total."""
    conns = [Conn(t) for t in targets]
    payloads = [t.request_bytes(text) for t in targets]
    for c in conns:
        await c.connect()
    results: list[list[Result]] = [[] for _ in targets]
    try:
        for order in turn_orders(len(targets), requests, seed=20261207 + seed):
            for j in order:
                results[j].append(
                    await conns[j].request(text, timeout=timeout, payload=payloads[j])
                )
    finally:
        for c in conns:
            c.close()
    out = []
    for t, rs in zip(targets, results, strict=True):
        busy = sum(r.total for r in rs)
        res = LoadResult(t.name, 1, len(rs), 0, busy)
        for r in rs:
            res.ttft_in_turn.append(r.ttft if r.ok else float("nan"))
            if r.ok:
                res.ttft.append(r.ttft)
                res.total.append(r.total)
                res.max_gap.append(r.max_gap)
            else:
                res.errors += 1
                if not res.first_error:
                    res.first_error = f"status {r.status}: {r.error}"
        out.append(res)
    return out
