"""`uv run python -m bench`: start the simulator, bare mitmproxy and mitmproxy with the
addon on 127.0.0.1, measure, print a table and write bench/results/latest.json.

    uv run python -m bench             # the full run (about 5 minutes on 2 cores)
    uv run python -m bench --quick     # a small run (about 50 seconds)
    uv run python -m bench --only latency,micro --rounds 3 --out /tmp/b.json
    uv run python -m bench --ts-tool none   # without the original TypeScript tool

The TypeScript tool's column needs it built first (bench/ts_tool.py):
    uv run python -m bench.ts_tool build --source /path/to/oca-proxy
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import large, phases, report, ts_tool
from .client import upstream_target
from .procs import (
    ROOT,
    Proc,
    Sim,
    start_addon,
    start_bare,
    start_floor,
    start_sim,
    start_ts_tool,
)

SECTIONS = ("micro", "latency", "large", "long_stream", "memory", "refresh_stall")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"


@dataclass
class Config:
    rounds: int = 5
    answer_chunks: int = 50
    requests_1: int = 80  # per round and column at 1 client
    clients: int = 32
    requests_n: int = 256  # per round and column at `clients` clients
    large_sizes: list[int] = field(default_factory=lambda: [500_000, 2_000_000])
    large_rounds: int = 5
    large_requests: int = 20  # per round, column and size
    long_rounds: int = 3
    long_chunks: int = 5000
    micro_chunks: int = 20000
    micro_repeats: int = 5
    mem_streams: int = 200
    mem_chunks: int = 160
    mem_slow_ms: int = 25
    mem_waves: int = 3
    mem_settle_s: float = 3.0
    stall_streams: int = 12
    stall_slow_ms: int = 10
    refresh_delay_s: float = 2.0
    margin_wait_s: int = 6  # proxy's oca_refresh_margin; tokens then live twice that
    # The built TypeScript tool (bench/ts_tool.py); None: OCA_BENCH_TS_TOOL or the default
    # .tools/ts-oca-proxy; "none": leave it out.
    ts_tool: str | None = None
    only: list[str] = field(default_factory=lambda: list(SECTIONS))


QUICK: dict[str, Any] = {
    "rounds": 1,
    "requests_1": 10,
    "requests_n": 32,
    "large_rounds": 2,
    "large_requests": 2,
    "long_rounds": 1,
    "long_chunks": 300,
    "micro_chunks": 1000,
    "micro_repeats": 2,
    "mem_streams": 16,
    "mem_chunks": 30,
    "mem_slow_ms": 10,
    "mem_waves": 2,
    "mem_settle_s": 1.5,
    "stall_streams": 6,
    "refresh_delay_s": 0.5,
    "margin_wait_s": 3,
}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_start": list(os.getloadavg()),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["mem_total_kib"] = int(line.split()[1])
                break
    except OSError:
        pass
    try:
        from mitmproxy.version import VERSION

        info["mitmproxy"] = VERSION
    except ImportError:
        pass
    from oca_addon import __version__

    info["oca_addon"] = __version__
    try:
        git = ["git", "-C", str(ROOT)]
        info["git_commit"] = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        info["git_dirty"] = bool(dirty)
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def _main_phases(cfg: Config, started: list[Proc]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    answer = f"Benchmark SIM:chunks={cfg.answer_chunks}"
    only = set(cfg.only)

    if "micro" in only:
        _log(f"translation in process: {cfg.micro_chunks} chunks x {cfg.micro_repeats}")
        results["micro"] = await asyncio.to_thread(
            phases.translation_micro, cfg.micro_chunks, cfg.micro_repeats
        )
    if not only - {"micro"}:
        return results

    sim = start_sim(token_ttl=86400)
    started.append(sim)
    if {"latency", "large", "long_stream", "memory"} & only:
        token = sim.mint()["access_token"]
        bare = start_bare(sim)
        started.append(bare)
        addon = start_addon(sim)
        started.append(addon)
        setup = phases.Setup(sim, bare, addon, token)
        if "latency" in only:
            setup.floor = start_floor(sim, token)
            started.append(setup.floor)
        if {"latency", "large"} & only:
            setup.ts, results["ts_tool"] = _start_ts_tool(cfg, sim)
            if setup.ts:
                started.append(setup.ts)
        _log("warm-up")
        await phases.warm_up(setup, answer)
        if "latency" in only:
            _log(
                f"latency: {cfg.rounds} rounds, {cfg.requests_1} requests at 1 client and "
                f"{cfg.requests_n} at {cfg.clients} clients per column"
            )
            results["latency"] = await phases.latency(
                setup,
                rounds=cfg.rounds,
                text=answer,
                levels={1: cfg.requests_1, cfg.clients: cfg.requests_n},
            )
        if "memory" in only:
            # The same (warm) proxies: their level after the small requests above is the
            # start (before the large ones, whose conversations the addon remembers).
            _log(f"memory: {cfg.mem_waves} waves of {cfg.mem_streams} streams")
            text = f"Benchmark memory SIM:chunks={cfg.mem_chunks} SIM:slow={cfg.mem_slow_ms}"
            results["memory"] = await phases.memory(
                [
                    ("bare", bare, [upstream_target("bare", bare.port, token)]),
                    ("addon", addon, [phases.addon_target(k, addon) for k in phases.ADDON_KINDS]),
                ],
                streams=cfg.mem_streams,
                text=text,
                waves=cfg.mem_waves,
                settle=cfg.mem_settle_s,
                warm_text=answer,
            )
        if "large" in only:
            _log(
                f"large requests: {cfg.large_sizes} bytes, {cfg.large_rounds} rounds of "
                f"{cfg.large_requests} requests per column"
            )
            results["large"] = await large.large_requests(
                setup,
                sizes=cfg.large_sizes,
                rounds=cfg.large_rounds,
                requests=cfg.large_requests,
                text=answer,
            )
        if "long_stream" in only:
            _log(f"long streams: {cfg.long_chunks} chunks, {cfg.long_rounds} rounds")
            results["long_stream"] = await phases.long_stream(
                setup, rounds=cfg.long_rounds, chunks=cfg.long_chunks
            )
        for p in (addon, bare, setup.floor, setup.ts):
            if p is not None:
                p.stop()
                started.remove(p)

    if "refresh_stall" in only:
        # A simulator of its own: this revokes its access tokens and shortens their life, and
        # the other sections' simulator holds the last 50 requests it got, 2 MB bodies among
        # them, whose garbage collection stalls it for hundreds of ms at a time.
        sim.stop()
        started.remove(sim)
        sim = start_sim(token_ttl=86400)
        started.append(sim)
        _log(f"refresh stall: {cfg.stall_streams} streams, refresh takes {cfg.refresh_delay_s} s")
        addon = start_addon(sim, {"oca_refresh_margin": str(cfg.margin_wait_s)})
        started.append(addon)
        results["refresh_stall"] = await phases.refresh_stall(
            sim,
            addon,
            streams=cfg.stall_streams,
            slow_ms=cfg.stall_slow_ms,
            refresh_delay=cfg.refresh_delay_s,
            window_wait=cfg.margin_wait_s,
        )
    return results


def _start_ts_tool(cfg: Config, sim: Sim) -> tuple[Proc | None, dict[str, Any]]:
    """The original TypeScript tool, if it is built and starts; else one line saying why."""
    if cfg.ts_tool == "none":
        _log("TS tool: left out (--ts-tool none)")
        return None, {"ran": False, "why": "--ts-tool none"}
    directory = Path(cfg.ts_tool) if cfg.ts_tool else None
    entry, why = ts_tool.find(directory)
    info: dict[str, Any] = {"dir": str(directory or ts_tool.default_dir())}
    proc = None
    if entry is not None:
        info.update(ts_tool.describe(directory))
        try:
            proc = start_ts_tool(sim, entry)
        except (OSError, RuntimeError) as e:
            why = str(e).splitlines()[0].rstrip(":")
    if proc is None:
        _log(f"TS tool: {why}; its columns are left out")
        return None, {**info, "ran": False, "why": why}
    _log(f"TS tool: {info.get('version', entry)} on port {proc.port}")
    return proc, {**info, "ran": True}


def run(cfg: Config, quick: bool = False) -> dict[str, Any]:
    info = machine()
    started: list[Proc] = []
    t0 = time.perf_counter()
    try:
        results = asyncio.run(_main_phases(cfg, started))
    finally:
        for p in reversed(started):
            p.stop()
    info["load_average_end"] = list(os.getloadavg())
    info["duration_s"] = time.perf_counter() - t0
    data: dict[str, Any] = {
        "machine": info,
        "quick": quick,
        "config": dataclasses.asdict(cfg),
        **results,
    }
    data["targets"] = report.targets(data)
    return _clean(data)


def _clean(x: Any) -> Any:
    """NaN and infinity are not JSON: None instead."""
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def parse_args(argv: list[str] | None) -> tuple[Config, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a small run (smoke test, ~40 s)")
    p.add_argument("--out", type=Path, default=None, help=f"JSON file (default {DEFAULT_OUT})")
    p.add_argument("--no-write", action="store_true", help="print only, write no JSON")
    p.add_argument("--readme", action="store_true", help="put the table into bench/README.md")
    p.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)}")
    p.add_argument("--rounds", type=int)
    p.add_argument("--requests-1", type=int, dest="requests_1")
    p.add_argument("--requests-n", type=int, dest="requests_n")
    p.add_argument("--clients", type=int)
    p.add_argument("--long-chunks", type=int, dest="long_chunks")
    p.add_argument("--large-rounds", type=int, dest="large_rounds")
    p.add_argument("--large-requests", type=int, dest="large_requests")
    p.add_argument(
        "--large-sizes",
        dest="large_sizes",
        type=lambda v: [int(float(x)) for x in v.split(",")],
        help="request body sizes in bytes, comma-separated (default 500000,2000000)",
    )
    p.add_argument("--mem-streams", type=int, dest="mem_streams")
    p.add_argument("--micro-chunks", type=int, dest="micro_chunks")
    p.add_argument(
        "--ts-tool",
        dest="ts_tool",
        metavar="DIR",
        help="the built TypeScript tool (bench/ts_tool.py; default $OCA_BENCH_TS_TOOL or "
        ".tools/ts-oca-proxy); 'none' leaves it out",
    )
    args = p.parse_args(argv)
    cfg = Config(**(QUICK if args.quick else {}))
    for name in (
        "rounds",
        "requests_1",
        "requests_n",
        "clients",
        "long_chunks",
        "large_rounds",
        "large_requests",
        "large_sizes",
        "mem_streams",
        "micro_chunks",
        "ts_tool",
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    if args.only:
        wanted = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = set(wanted) - set(SECTIONS)
        if unknown:
            p.error(f"unknown section(s): {', '.join(sorted(unknown))}")
        cfg.only = wanted
    return cfg, args


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse_args(argv)
    data = run(cfg, quick=args.quick)
    text = report.table(data)
    print(text)
    if not args.no_write:
        out: Path = args.out or DEFAULT_OUT
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
        _log(f"wrote {out}")
    if args.readme:
        report.update_readme(ROOT / "bench" / "README.md", text)
        _log("updated the table in bench/README.md")
    return 0
