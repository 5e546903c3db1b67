"""`uv run python -m bench.floors`: where the time to first token over bare mitmproxy comes
from, at 1 client with small requests, in one interleaved run:

- bare mitmproxy (`stream_large_bodies`: the request goes on while it arrives);
- mitmproxy reading the request whole before sending it, with no addon code on the way
  (bench/floor_addon.py, BENCH_FLOOR_MODE=buffer): what waiting for the body costs itself;
- the minimal addon (bench/floor_addon.py: reads the whole request, points it at OCA, then
  sends it);
- the minimal addon deciding at `requestheaders` and streaming the request on
  (BENCH_FLOOR_MODE=stream), which a proxy that routes by the body cannot do;
- oca-addon passing chat through.

    uv run python -m bench.floors [--requests 600]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from pathlib import Path

from .client import Conn, Target, upstream_target
from .phases import addon_target
from .procs import Proc, _start_mitmdump, start_addon, start_bare, start_floor, start_sim

FLOOR = Path(__file__).resolve().parent / "floor_addon.py"
LABELS = {
    "bare": "bare mitmproxy",
    "buffered": "mitmproxy reading the request whole",
    "floor": "min. addon (reads the request whole)",
    "streamed": "min. addon, request streamed on",
    "chat": "oca-addon, chat pass-through",
}


async def _measure(targets: list[Target], requests: int, warm: int) -> dict[str, list[float]]:
    conns = [Conn(t) for t in targets]
    ttft: dict[str, list[float]] = {t.name: [] for t in targets}
    try:
        for i in range(warm + requests):
            k = i % len(targets)
            for j in [*range(k, len(targets)), *range(k)]:  # who goes first rotating
                r = await conns[j].request("Say hi SIM:chunks=5", timeout=30)
                if not r.ok:
                    raise RuntimeError(f"{targets[j].name}: status {r.status}: {r.error}")
                if i >= warm:
                    ttft[targets[j].name].append(r.ttft * 1000)
    finally:
        for c in conns:
            c.close()
    return ttft


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--requests", type=int, default=600)
    args = p.parse_args(argv)
    sim = start_sim()
    procs: list[Proc] = [sim]
    try:
        token = sim.mint()["access_token"]
        bare = start_bare(sim)
        buffered = _start_mitmdump(
            "buffered", sim, ["-s", str(FLOOR)], env={"BENCH_FLOOR_MODE": "buffer"}
        )
        floor = start_floor(sim, token)
        streamed = _start_mitmdump(
            "streamed",
            sim,
            ["-s", str(FLOOR)],
            env={"BENCH_TOKEN": token, "BENCH_FLOOR_MODE": "stream"},
        )
        addon = start_addon(sim)
        procs += [bare, buffered, floor, streamed, addon]
        targets = [
            upstream_target("bare", bare.port, token),
            upstream_target("buffered", buffered.port, token),
            upstream_target("floor", floor.port, token),
            upstream_target("streamed", streamed.port, token),
            addon_target("chat", addon),
        ]
        ttft = asyncio.run(_measure(targets, args.requests, warm=min(50, args.requests)))
    finally:
        for proc in reversed(procs):
            proc.stop()
    out: dict[str, dict[str, float]] = {}
    print(f"TTFT at 1 client, {args.requests} requests per column, interleaved (ms)")
    print(f"{'':40}{'p50':>8}{'over bare':>12}")
    for name, times in ttft.items():
        over = statistics.median(a - b for a, b in zip(times, ttft["bare"], strict=True))
        out[name] = {"ttft_p50_ms": statistics.median(times), "over_bare_paired_ms": over}
        print(f"{LABELS[name]:40}{statistics.median(times):8.2f}{over:12.2f}")
    print("over bare: median of each request's TTFT minus bare mitmproxy's in the same turn")
    return out


if __name__ == "__main__":
    main()
