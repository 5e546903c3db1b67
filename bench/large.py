"""Large requests: Claude-Code-shaped turns of hundreds of KB to MB (bench/bigbody.py), in
each client API through the addon, and the same size of chat through bare mitmproxy.

What a user notices with a big conversation is the proxy's work on the request body before
OCA sees it: parsing, translation, estimates, the copy kept for mitmweb, writing the
upstream body. So: the time to the first token and the proxy's CPU time per request.

Each column's requests are one conversation going on, a turn (a tool call, its result and
the user's text) longer each time, as an agent sends them, Anthropic's cache breakpoints
moving along as Claude Code moves them (bench/bigbody.py); the proxy remembers a
conversation's last translated request (translate/memo.py). The "new" columns send the same
size as the first request of a new conversation every time: nothing remembered, all of it
translated. The original TypeScript tool (bench/ts_tool.py), when it is built, passes the
same chat bodies through ("ts"); it keeps nothing from one request to the next, so its one
column stands for a conversation going on and a new one alike.
"""

from __future__ import annotations

import asyncio
import glob
from typing import Any

from . import bigbody
from .client import MODEL, Conn, Result, Target, upstream_target
from .load import median, percentile, turn_orders
from .phases import Setup, addon_target, ts_target
from .procs import Proc, rss_kib

COLUMNS = (
    "sim",
    "bare",
    "ts",
    "chat",
    "anthropic",
    "responses",
    "anthropic_new",
    "responses_new",
)
TRANSLATED = ("anthropic", "responses")
NEW = {"anthropic_new": "anthropic", "responses_new": "responses"}  # column -> client API
IDLE_S = 1.5  # the addon collects (and hands memory back) once idle for 1 s


def cpu_ns(pid: int) -> int:
    """Nanoseconds a process's threads have run (/proc/PID/task/*/schedstat): exact, where
    /proc/PID/stat counts in 10 ms ticks, too coarse for one request."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total


def _targets(setup: Setup) -> list[tuple[Target, Proc | None]]:
    return [
        (upstream_target("sim", setup.sim.port, setup.token), None),
        (upstream_target("bare", setup.bare.port, setup.token), setup.bare),
        *([(ts_target(setup.ts), setup.ts)] if setup.ts else []),
        *((addon_target(k, setup.addon), setup.addon) for k in ("chat", *TRANSLATED)),
        *((addon_target(k, setup.addon, name), setup.addon) for name, k in NEW.items()),
    ]


def _payloads(targets: list[Target], size: int, text: str, turns: int) -> dict[str, list[bytes]]:
    """Per column, the bodies of `turns` turns of its conversation (each one turn longer)."""
    bodies: dict[str, list[bytes]] = {}
    for kind in {t.kind for t in targets}:
        bodies[kind] = [bigbody.make_body(kind, size, text, MODEL, more=j) for j in range(turns)]
    return {t.name: [t.request_bytes(text, b) for b in bodies[t.kind]] for t in targets}


_sessions = iter(range(1, 10**6))  # a new conversation per request of the "new" columns


def _payload(name: str, payloads: dict[str, list[bytes]], turn: int) -> bytes:
    raw = payloads[name][turn]
    return bigbody.new_conversation(raw, next(_sessions)) if name in NEW else raw


async def _one(
    conn: Conn, payload: bytes, proxy: Proc | None, settle: float
) -> tuple[Result, float | None]:
    """One request; the proxy's CPU time for it, read `settle` s after its end (the response
    hook and the flow's record run after the last byte left)."""
    await conn.connect()
    cpu0 = cpu_ns(proxy.pid) if proxy else 0
    r = await conn.request("", timeout=120, payload=payload)
    await asyncio.sleep(settle)
    cpu = (cpu_ns(proxy.pid) - cpu0) / 1e6 if proxy else None
    return r, cpu


async def _round(
    targets: list[tuple[Target, Proc | None]],
    payloads: dict[str, list[bytes]],
    requests: int,
    settle: float,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """One client per column, taking turns request by request (in an order shuffled turn by
    turn: load.turn_orders)."""
    conns = [Conn(t) for t, _ in targets]
    orders = turn_orders(len(targets), requests, seed=20261207 + seed)
    ttft: dict[str, list[float]] = {t.name: [] for t, _ in targets}
    cpu: dict[str, list[float]] = {t.name: [] for t, _ in targets}
    errors: dict[str, list[str]] = {t.name: [] for t, _ in targets}
    try:
        for i in range(requests):
            for j in orders[i]:
                target, proxy = targets[j]
                payload = _payload(target.name, payloads, i)
                r, ms = await _one(conns[j], payload, proxy, settle)
                ttft[target.name].append(r.ttft if r.ok else float("nan"))
                if ms is not None:
                    cpu[target.name].append(ms)
                if not r.ok:
                    errors[target.name].append(f"status {r.status}: {r.error}")
    finally:
        for c in conns:
            c.close()
    out: dict[str, dict[str, Any]] = {}
    for target, _ in targets:
        name = target.name
        times = [t for t in ttft[name] if t == t]
        row: dict[str, Any] = {
            "requests": requests,
            "errors": len(errors[name]),
            "first_error": errors[name][0] if errors[name] else "",
            "body_bytes": len(payloads[name][0]),
            "ttft_p50_ms": percentile(times, 50) * 1000,
            "ttft_p99_ms": percentile(times, 99) * 1000,
            "proxy_cpu_ms_per_request": median(cpu[name]) if cpu[name] else None,
            "proxy_cpu_ms_mean": sum(cpu[name]) / len(cpu[name]) if cpu[name] else None,
        }
        # Paired: each request against the same turn's bare mitmproxy, addon chat and the
        # TS tool's chat.
        for base in ("bare", "chat", "ts"):
            if name not in ("sim", base) and base in ttft:
                row[f"ttft_over_{base}_paired_ms"] = 1000 * median(
                    [a - b for a, b in zip(ttft[name], ttft[base], strict=True)]
                )
        out[name] = row
    return out


async def large_requests(
    setup: Setup,
    *,
    sizes: list[int],
    rounds: int,
    requests: int,
    text: str,
    settle: float = 0.003,
    warm: int = 3,
) -> dict[str, Any]:
    """For each size: `rounds` interleaved rounds of `requests` requests per column."""
    targets = _targets(setup)
    proxies = [p for p in (setup.bare, setup.ts, setup.addon) if p is not None]
    rss_start = {p.name: rss_kib(p.pid) for p in proxies}
    result: dict[str, Any] = {"sizes": sizes, "rounds": rounds, "requests": requests}
    by_size: dict[str, Any] = {}
    for size in sizes:
        payloads = _payloads([t for t, _ in targets], size, text, requests)
        for target, _ in targets:  # code paths and connections warm with this size
            conn = Conn(target)
            for w in range(warm):
                payload = _payload(target.name, payloads, w % requests)
                r = await conn.request("", timeout=120, payload=payload)
                if not r.ok:
                    raise RuntimeError(f"large request to {target.name} failed: {r}")
            conn.close()
        per_round = []
        rss: list[int] = []  # the addon's, after each round (once it has collected)
        for rnd in range(rounds):
            per_round.append(await _round(targets, payloads, requests, settle, seed=rnd))
            await asyncio.sleep(IDLE_S)
            rss.append(rss_kib(setup.addon.pid))
        medians: dict[str, dict[str, Any]] = {}
        for name in per_round[0]:
            rows = [r[name] for r in per_round]
            med: dict[str, Any] = {}
            for key in rows[0]:
                vals = [row[key] for row in rows]
                if all(isinstance(v, int | float) for v in vals):
                    med[key] = median([float(v) for v in vals])
                elif key == "first_error":
                    med[key] = next((v for v in vals if v), "")
            medians[name] = med
        addon_requests = requests * sum(p is setup.addon for _, p in targets) * (rounds - 1)
        by_size[str(size)] = {
            "median": medians,
            "per_round": per_round,
            "addon_rss_kib_per_round": rss,
            # What stays from the first round to the last, per request through the addon (a
            # body kept per request would be its size).
            "addon_rss_growth_kib_per_request": (rss[-1] - rss[0]) / addon_requests
            if addon_requests
            else float("nan"),
        }
    result["by_size"] = by_size
    result["rss_kib"] = {
        p.name: {"start": rss_start[p.name], "end": rss_kib(p.pid)} for p in proxies
    }
    return result
