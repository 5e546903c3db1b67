"""The benchmark's measurements, one function per section of the report.

Every function takes already started processes (see procs.py) and returns plain
JSON-able dicts; run.py starts the processes, calls these and writes the report.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import micro
from .client import Conn, Result, Target, upstream_target
from .load import cpu_seconds, median, percentile, run_interleaved, run_load
from .procs import Proc, Sim, http_json, rss_kib

perf = time.perf_counter


# -- targets -------------------------------------------------------------------------

TARGET_NAMES = ("sim", "bare", "floor", "ts", "chat", "anthropic", "responses")
ADDON_KINDS = ("chat", "anthropic", "responses")
ADDON_PATHS = {
    "chat": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "responses": "/v1/responses",
}


def addon_target(kind: str, proxy: Proc, name: str | None = None) -> Target:
    return Target(name or kind, proxy.port, ADDON_PATHS[kind], kind)


def ts_target(proxy: Proc) -> Target:
    """The TypeScript tool's chat pass-through (bench/ts_tool.py): OCA's chat body as is."""
    return Target("ts", proxy.port, ADDON_PATHS["chat"], "chat")


@dataclass
class Setup:
    """The columns: simulator direct, bare mitmproxy, the least addon of this design
    (latency only), the original TypeScript tool's chat pass-through (when it is built) and
    the addon's three APIs."""

    sim: Sim
    bare: Proc
    addon: Proc
    token: str
    floor: Proc | None = None
    ts: Proc | None = None

    def targets(
        self, with_floor: bool = False, with_ts: bool = False
    ) -> list[tuple[Target, Proc | None]]:
        """(target, proxy process whose CPU it costs) for every column."""
        floor = (
            [(addon_target("chat", self.floor, "floor"), self.floor)]
            if with_floor and self.floor
            else []
        )
        ts = [(ts_target(self.ts), self.ts)] if with_ts and self.ts else []
        return [
            (upstream_target("sim", self.sim.port, self.token), None),
            (upstream_target("bare", self.bare.port, self.token), self.bare),
            *floor,
            *ts,
            *((addon_target(k, self.addon), self.addon) for k in ADDON_KINDS),
        ]


async def warm_up(setup: Setup, text: str, n: int = 20) -> None:
    """Token refresh, model catalogue, code paths and connections warmed on every column."""
    for target, _ in setup.targets(with_floor=True, with_ts=True):
        conn = Conn(target)
        try:
            for _ in range(n):
                r = await conn.request(text, timeout=60)
                if not r.ok:
                    raise RuntimeError(f"warm-up request to {target.name} failed: {r}")
        finally:
            conn.close()


def _rotated(items: Sequence[Any], k: int) -> list[Any]:
    k %= max(1, len(items))
    return [*items[k:], *items[:k]]


# -- time to first token, total time, requests per second -----------------------------


async def latency(
    setup: Setup,
    *,
    rounds: int,
    text: str,
    levels: dict[int, int],
) -> dict[str, Any]:
    """Interleaved rounds: in each round every column runs at each concurrency level
    (`levels`: concurrency -> requests). At 1 client the columns take turns request by
    request; at more, each column runs its block of requests, the order of the blocks
    rotating from round to round. The TS tool (when it runs) at 1 client only."""
    per_round: list[dict[str, dict[str, Any]]] = []
    for rnd in range(rounds):
        this: dict[str, dict[str, Any]] = {}
        for conc, n in levels.items():
            if conc == 1:
                # One client: the columns take turns request by request.
                targets = [t for t, _ in setup.targets(with_floor=True, with_ts=True)]
                results = {
                    r.target: r for r in await run_interleaved(targets, text, requests=n, seed=rnd)
                }
                for name, res in results.items():
                    this[f"{name}@1"] = res.summary()
                    # Paired: each request against bare mitmproxy's (and the least addon's,
                    # and the TS tool's) of the same turn.
                    for base in ("bare", "floor", "ts"):
                        if name not in ("bare", base) and base in results:
                            this[f"{name}@1"][f"ttft_over_{base}_paired_ms"] = 1000 * median(
                                [
                                    a - b
                                    for a, b in zip(
                                        res.ttft_in_turn, results[base].ttft_in_turn, strict=True
                                    )
                                ]
                            )
                continue
            for target, proxy in _rotated(setup.targets(with_floor=True), rnd):
                res = await run_load(
                    target,
                    text,
                    concurrency=conc,
                    requests=n,
                    proxy_pid=proxy.pid if proxy else None,
                )
                this[f"{target.name}@{conc}"] = res.summary()
        per_round.append(this)
    # Medians over rounds of each per-round statistic.
    keys = per_round[0].keys()
    medians: dict[str, dict[str, Any]] = {}
    for key in keys:
        stats = [r[key] for r in per_round]
        out: dict[str, Any] = {}
        for field in stats[0]:
            vals = [s[field] for s in stats]
            if all(isinstance(v, int | float) for v in vals):
                out[field] = median([float(v) for v in vals])
            elif field == "first_error":
                out[field] = next((v for v in vals if v), "")
        medians[key] = out
    # The comparisons the targets are about, per round, then the median.
    comparisons: dict[str, Any] = {}
    c_low, c_high = min(levels), max(levels)
    for kind in [*ADDON_KINDS, *(["floor"] if setup.floor else [])]:
        # The median of paired differences (request by request, turn by turn): the most
        # robust to what else the machine does; the difference of the p50s alongside.
        added = [r[f"{kind}@1"]["ttft_over_bare_paired_ms"] for r in per_round]
        added_p50 = [r[f"{kind}@1"]["ttft_p50_ms"] - r["bare@1"]["ttft_p50_ms"] for r in per_round]
        ratio = [
            r[f"{kind}@{c_high}"]["rps"] / r[f"bare@{c_high}"]["rps"]
            if r[f"bare@{c_high}"]["rps"]
            else float("nan")
            for r in per_round
        ]
        comparisons[kind] = {
            f"ttft_p50_over_bare_ms@{c_low}": median(added),
            f"ttft_p50_over_bare_ms@{c_low}_per_round": added,
            "ttft_p50_difference_ms@1": median(added_p50),
            f"rps_ratio_to_bare@{c_high}": median(ratio),
            f"rps_ratio_to_bare@{c_high}_per_round": ratio,
        }
        if setup.floor and kind != "floor":
            # What oca-addon's own code adds, over the least addon of this design.
            over_floor = [r[f"{kind}@1"]["ttft_over_floor_paired_ms"] for r in per_round]
            floor_ratio = [
                r[f"{kind}@{c_high}"]["rps"] / r[f"floor@{c_high}"]["rps"]
                if r[f"floor@{c_high}"]["rps"]
                else float("nan")
                for r in per_round
            ]
            comparisons[kind][f"ttft_p50_over_floor_ms@{c_low}"] = median(over_floor)
            comparisons[kind][f"rps_ratio_to_floor@{c_high}"] = median(floor_ratio)
        if setup.ts and c_low == 1:
            # Over the TypeScript tool's chat pass-through, paired (information).
            over_ts = [r[f"{kind}@1"]["ttft_over_ts_paired_ms"] for r in per_round]
            comparisons[kind]["ttft_p50_over_ts_ms@1"] = median(over_ts)
    if setup.ts and c_low == 1:
        over_bare = [r["ts@1"]["ttft_over_bare_paired_ms"] for r in per_round]
        comparisons["ts"] = {
            "ttft_p50_over_bare_ms@1": median(over_bare),
            "ttft_p50_over_bare_ms@1_per_round": over_bare,
        }
    bare_added = [
        r[f"bare@{c_low}"]["ttft_p50_ms"] - r[f"sim@{c_low}"]["ttft_p50_ms"] for r in per_round
    ]
    comparisons["bare"] = {f"ttft_p50_over_sim_ms@{c_low}": median(bare_added)}
    return {
        "text": text,
        "rounds": rounds,
        "levels": {str(c): n for c, n in levels.items()},
        "median": medians,
        "comparisons": comparisons,
        "per_round": per_round,
    }


# -- cost per streamed chunk ------------------------------------------------------------


async def long_stream(setup: Setup, *, rounds: int, chunks: int) -> dict[str, Any]:
    """One answer of `chunks` deltas per column per round: total time and the proxy's CPU
    time, per chunk; the translated columns over the pass-through one."""
    text = f"Benchmark long stream SIM:chunks={chunks}"
    totals: dict[str, list[float]] = {name: [] for name in TARGET_NAMES}
    cpus: dict[str, list[float]] = {name: [] for name in TARGET_NAMES}
    for rnd in range(rounds):
        for target, proxy in _rotated(setup.targets(), rnd):
            conn = Conn(target)
            try:
                await conn.connect()
                cpu0 = cpu_seconds(proxy.pid) if proxy else 0.0
                r = await conn.request(text, timeout=300)
                cpu1 = cpu_seconds(proxy.pid) if proxy else 0.0
            finally:
                conn.close()
            if not r.ok:
                raise RuntimeError(f"long stream to {target.name} failed: {r}")
            totals[target.name].append(r.total)
            cpus[target.name].append(cpu1 - cpu0)
    n = chunks + 3  # deltas + finish + usage + [DONE]
    us = 1e6 / n
    total_ms = {k: median(v) * 1000 for k, v in totals.items()}
    per_chunk_wall = {k: median(v) * us for k, v in totals.items()}
    per_chunk_cpu = {k: median(v) * us for k, v in cpus.items() if k != "sim"}
    over = {
        kind: {
            "wall_us": median(
                [(t - p) * us for t, p in zip(totals[kind], totals["chat"], strict=True)]
            ),
            "proxy_cpu_us": median(
                [(t - p) * us for t, p in zip(cpus[kind], cpus["chat"], strict=True)]
            ),
        }
        for kind in ("anthropic", "responses")
    }
    return {
        "chunks": chunks,
        "rounds": rounds,
        "total_ms": total_ms,
        "wall_us_per_chunk": per_chunk_wall,
        "proxy_cpu_us_per_chunk": per_chunk_cpu,
        "translation_over_passthrough_us_per_chunk": over,
    }


def translation_micro(chunks: int, repeats: int) -> dict[str, Any]:
    return micro.run(chunks=chunks, repeats=repeats)


# -- memory -------------------------------------------------------------------------------


async def _wave(
    targets: list[Target], text: str, n: int, pid: int, sample_every: float = 0.1
) -> dict[str, Any]:
    """n concurrent streams (round-robin over targets), RSS sampled while they run."""
    conns = [Conn(targets[i % len(targets)]) for i in range(n)]
    for c in conns:
        await c.connect()
    peak = rss_kib(pid)
    done = False

    async def sampler() -> None:
        nonlocal peak
        while not done:
            peak = max(peak, rss_kib(pid))
            await asyncio.sleep(sample_every)

    sampling = asyncio.ensure_future(sampler())
    t0 = perf()
    try:
        results: list[Result] = await asyncio.gather(*(c.request(text, timeout=600) for c in conns))
    finally:
        done = True
        await sampling
        for c in conns:
            c.close()
    wall = perf() - t0
    peak = max(peak, rss_kib(pid))
    errors = [r for r in results if not r.ok]
    return {
        "streams": n,
        "errors": len(errors),
        "first_error": f"{errors[0].status}: {errors[0].error}" if errors else "",
        "wall_s": wall,
        "peak_kib": peak,
    }


async def _settle(pid: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return rss_kib(pid)


async def memory(
    proxies: list[tuple[str, Proc, list[Target]]],
    *,
    streams: int,
    text: str,
    waves: int,
    settle: float,
    warm_text: str,
) -> dict[str, Any]:
    """RSS of each proxy: at rest after warm-up, at the peak of `streams` concurrent long
    streams, and `settle` seconds after they ended; `waves` times (growth per request is
    what stays from one wave to the next)."""
    out: dict[str, Any] = {"streams": streams, "text": text, "waves": waves, "settle_s": settle}
    for name, proc, targets in proxies:
        for t in targets:  # warm every code path once more (this proxy may be fresh)
            conn = Conn(t)
            for _ in range(5):
                await conn.request(warm_text, timeout=60)
            conn.close()
        start = await _settle(proc.pid, settle)
        rows = []
        for _ in range(waves):
            w = await _wave(targets, text, streams, proc.pid)
            w["after_kib"] = await _settle(proc.pid, settle)
            rows.append(w)
        last, first = rows[-1]["after_kib"], rows[0]["after_kib"]
        out[name] = {
            "start_kib": start,
            "waves": rows,
            "peak_over_start_kib": max(r["peak_kib"] for r in rows) - start,
            "after_over_start_kib": last - start,
            "growth_per_request_kib": (last - first) / (streams * max(1, waves - 1))
            if waves > 1
            else float("nan"),
        }
    return out


# -- stalls while the token is refreshed ---------------------------------------------------


def _gaps(times: list[float], nominal: float) -> list[tuple[float, float, float]]:
    """(start, end, excess over the nominal interval) of each silence between reads."""
    return [(a, b, max(0.0, (b - a) - nominal)) for a, b in itertools.pairwise(times)]


def _stalls(
    reads: list[list[float]],
    window: tuple[float, float],
    nominal: float,
    control: list[list[float]] | None = None,
) -> dict[str, Any]:
    """Longest silence of each stream beyond the nominal chunk interval, in the refresh
    window and outside it. With `control` streams (straight to the simulator, same pacing)
    also the part of each silence the controls did not share: what the proxy added."""
    lo, hi = window
    # Silences under a millisecond over nominal are scheduling noise, not stalls.
    control_gaps = [g for times in control or [] for g in _gaps(times, nominal) if g[2] > 0.001]
    during: list[float] = []
    outside: list[float] = []
    own: list[float] = []
    worst: list[tuple[float, float]] = []
    for times in reads:
        d = o = p = 0.0
        for a, b, excess in _gaps(times, nominal):
            worst.append((excess, a - lo))
            if b >= lo and a <= hi:
                d = max(d, excess)
                if control is not None and excess > 0.001:
                    shared = max(
                        (e for ca, cb, e in control_gaps if ca < b and cb > a), default=0.0
                    )
                    p = max(p, excess - shared)
            else:
                o = max(o, excess)
        during.append(d)
        outside.append(o)
        own.append(p)
    worst.sort(reverse=True)
    ms = 1000.0
    out: dict[str, Any] = {
        "max_stall_during_refresh_ms": max(during, default=float("nan")) * ms,
        "p50_stall_during_refresh_ms": median(during) * ms,
        "max_stall_outside_refresh_ms": max(outside, default=float("nan")) * ms,
        "p50_stall_outside_refresh_ms": median(outside) * ms,
        "streams_overlapping_refresh": sum(1 for t in reads if t and t[0] <= hi and t[-1] >= lo),
        "worst_gaps_ms_at_s": [[round(e * ms, 1), round(t, 3)] for e, t in worst[:5]],
    }
    if control is not None:
        out["max_stall_beyond_control_during_refresh_ms"] = max(own, default=float("nan")) * ms
    return out


async def _sim_refreshes(sim: Sim) -> int:
    state = await asyncio.to_thread(http_json, f"{sim.url}/__sim/state")
    return int(state["counters"]["refreshes"])


async def _wait_refresh(sim: Sim, before: int, timeout: float) -> float:
    """perf() time at which the simulator counted one more refresh (polled)."""
    deadline = perf() + timeout
    while perf() < deadline:
        if await _sim_refreshes(sim) > before:
            return perf()
        await asyncio.sleep(0.05)
    raise TimeoutError("the proxy did not refresh its token")


async def _streams_during(
    targets: list[Target],
    n: int,
    text: str,
    trigger: Any,
    trigger_after: float,
    controls: list[Target],
) -> tuple[list[list[float]], list[list[float]], list[Result], Any]:
    """Start n streams through the proxy (round-robin over `targets`) and the `controls`
    (straight to the simulator: what the machine itself adds); `trigger_after` seconds
    later await trigger(). Returns the read times of the streams and of the controls, the
    streams' results and what trigger returned."""
    all_targets = [targets[i % len(targets)] for i in range(n)] + controls
    conns = [Conn(t) for t in all_targets]
    for c in conns:
        await c.connect()
    reads: list[list[float]] = [[] for _ in conns]
    tasks = [
        asyncio.ensure_future(c.request(text, timeout=120, reads=reads[i]))
        for i, c in enumerate(conns)
    ]
    await asyncio.sleep(trigger_after)
    triggered = await trigger()
    results = list(await asyncio.gather(*tasks))
    for c in conns:
        c.close()
    return reads[:n], reads[n:], results, triggered


async def refresh_stall(
    sim: Sim,
    proxy: Proc,
    *,
    streams: int,
    slow_ms: int,
    refresh_delay: float,
    window_wait: float,
) -> dict[str, Any]:
    """Streams answer a chunk every `slow_ms`; meanwhile the proxy refreshes its token and
    the identity server takes `refresh_delay` seconds to answer. Two ways a refresh starts:
    - revoked: OCA refuses the token (401); the proxy refreshes, new requests wait for it;
    - proactive: the token is close to expiry (the proxy runs with
      oca_refresh_margin=window_wait, and the token lives 2 x window_wait: it enters the
      margin after window_wait s); the next request starts a background refresh and goes
      on with the still-valid token.
    Running streams must not notice either."""
    targets = [addon_target(k, proxy) for k in ADDON_KINDS]
    nominal = slow_ms / 1000
    # Long enough to run 1 s before, through and 1 s after the refresh.
    chunks = int((refresh_delay + 2.5) / nominal)
    text = f"Benchmark refresh SIM:chunks={chunks} SIM:slow={slow_ms}"
    chat = addon_target("chat", proxy)
    # Streams straight to the simulator alongside: stalls the machine causes by itself.
    n_controls = max(1, streams // 4)

    async def controls() -> list[Target]:
        token = (await asyncio.to_thread(sim.mint))["access_token"]
        return [upstream_target("sim", sim.port, token)] * n_controls

    out: dict[str, Any] = {
        "streams": streams,
        "chunk_interval_ms": slow_ms,
        "chunks": chunks,
        "refresh_delay_s": refresh_delay,
    }

    # 1. revoked
    conn = Conn(chat)
    await conn.request("warm")
    before = await _sim_refreshes(sim)

    async def revoke_and_trigger() -> dict[str, Any]:
        # The next token will expire soon enough for the proactive case below.
        await asyncio.to_thread(
            sim.config,
            refresh_delay=refresh_delay,
            token_ttl=2 * window_wait,
            revoke_access_tokens=True,
        )
        t0 = perf()
        refused = await conn.request("trigger: OCA refuses the token")
        other = Conn(chat)
        waiting = asyncio.ensure_future(other.request("a new request during the refresh"))
        t_done = await _wait_refresh(sim, before, refresh_delay + 30)
        new = await waiting
        other.close()
        return {"t0": t0, "t1": t_done, "refused_status": refused.status, "new": new}

    reads, control, results, info = await _streams_during(
        targets, streams, text, revoke_and_trigger, 1.0, await controls()
    )
    token_b = info["t1"]  # the new token's lifetime counts from here
    window = (info["t0"], info["t1"])
    out["revoked"] = {
        "refresh_s": info["t1"] - info["t0"],
        "trigger_status": info["refused_status"],
        "new_request_waited_s": info["new"].ttft,
        "errors": sum(1 for r in results if not r.ok),
        **_stalls(reads, window, nominal, control),
        "control": _stalls(control, window, nominal),
    }

    # 2. proactive: the token from the refresh above enters the margin window_wait s later.
    await asyncio.sleep(max(0.0, token_b + window_wait - perf() - 1.0))
    before = await _sim_refreshes(sim)

    async def trigger_in_margin() -> dict[str, Any]:
        await asyncio.sleep(max(0.0, token_b + window_wait + 0.3 - perf()))
        t0 = perf()
        r = await conn.request("trigger: the token is close to expiry")
        t_done = await _wait_refresh(sim, before, refresh_delay + 30)
        return {"t0": t0, "t1": t_done, "trigger": r}

    reads, control, results, info = await _streams_during(
        targets, streams, text, trigger_in_margin, 1.0, await controls()
    )
    conn.close()
    # A stream request may have started the refresh a little before the trigger did.
    window = (min(info["t0"], token_b + window_wait), info["t1"])
    out["proactive"] = {
        "refresh_s": info["t1"] - info["t0"],
        "trigger_status": info["trigger"].status,
        "trigger_ttft_ms": info["trigger"].ttft * 1000,
        "errors": sum(1 for r in results if not r.ok),
        **_stalls(reads, window, nominal, control),
        "control": _stalls(control, window, nominal),
    }
    worst = max(
        out["revoked"]["max_stall_during_refresh_ms"],
        out["proactive"]["max_stall_during_refresh_ms"],
    )
    out["max_stall_during_refresh_ms"] = worst
    out["max_stall_beyond_control_during_refresh_ms"] = max(
        out["revoked"]["max_stall_beyond_control_during_refresh_ms"],
        out["proactive"]["max_stall_beyond_control_during_refresh_ms"],
    )
    out["control_max_stall_during_refresh_ms"] = max(
        out["revoked"]["control"]["max_stall_during_refresh_ms"],
        out["proactive"]["control"]["max_stall_during_refresh_ms"],
    )
    out["max_stall_outside_refresh_ms"] = max(
        out["revoked"]["max_stall_outside_refresh_ms"],
        out["proactive"]["max_stall_outside_refresh_ms"],
    )
    return out


def finite(x: float) -> bool:
    return isinstance(x, int | float) and not math.isnan(x) and not math.isinf(x)


__all__ = [
    "ADDON_KINDS",
    "TARGET_NAMES",
    "Setup",
    "addon_target",
    "finite",
    "latency",
    "long_stream",
    "memory",
    "percentile",
    "refresh_stall",
    "translation_micro",
    "ts_target",
    "warm_up",
]
