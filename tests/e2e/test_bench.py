"""The benchmark (`python -m bench`, issue 8) in its quick mode: it runs end to end against
the simulator, bare mitmproxy and the addon, and its JSON has every section with numbers
that make sense. (Whether the targets hold is for the full run on a quiet machine.)"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ("sim", "bare", "chat", "anthropic", "responses")


def positive(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def test_quick_benchmark_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Targets" in run.stdout and "TTFT p50 @1 client" in run.stdout
    data = json.loads(out.read_text())

    m = data["machine"]
    assert m["cpus"] >= 1 and m["python"] and m["date"] and m["mitmproxy"]
    assert data["quick"] is True

    lat = data["latency"]["median"]
    for col in (*COLUMNS, "floor"):  # floor: bench/floor_addon.py, in the latency table only
        for c in (1, 32):
            row = lat[f"{col}@{c}"]
            assert row["errors"] == 0, (col, c, row)
            assert positive(row["rps"]), (col, c, row)
            assert 0 < row["ttft_p50_ms"] <= row["total_p50_ms"] < 60_000, (col, c, row)
            assert row["ttft_p50_ms"] <= row["ttft_p99_ms"], (col, c, row)
            assert row["total_p50_ms"] <= row["total_p99_ms"], (col, c, row)
        if col != "sim":
            assert positive(lat[f"{col}@32"]["proxy_cpu_ms_per_request"]), col
    comps = data["latency"]["comparisons"]
    for kind in ("chat", "anthropic", "responses"):
        assert math.isfinite(comps[kind]["ttft_p50_over_bare_ms@1"])
        assert positive(comps[kind]["rps_ratio_to_bare@32"])
        assert math.isfinite(comps[kind]["ttft_p50_over_floor_ms@1"])
        assert positive(comps[kind]["rps_ratio_to_floor@32"])
    assert "min. addon" in run.stdout

    large = data["large"]
    assert [int(k) for k in large["by_size"]] == [500_000, 2_000_000]
    for size, block in large["by_size"].items():
        med = block["median"]
        for col in (*COLUMNS, "anthropic_new", "responses_new"):
            row = med[col]
            assert row["errors"] == 0, (size, col, row)
            # the same size of body in every API (within one turn of history)
            assert abs(row["body_bytes"] - int(size)) < 0.05 * int(size), (size, col, row)
            assert 0 < row["ttft_p50_ms"] <= row["ttft_p99_ms"] < 60_000, (size, col, row)
            if col != "sim":
                assert positive(row["proxy_cpu_ms_per_request"]), (size, col, row)
        for kind in ("anthropic", "responses", "anthropic_new", "responses_new"):
            assert math.isfinite(med[kind]["ttft_over_chat_paired_ms"]), (size, kind)
            assert math.isfinite(med[kind]["ttft_over_bare_paired_ms"]), (size, kind)
        assert math.isfinite(block["addon_rss_growth_kib_per_request"])
    assert "Large requests" in run.stdout and "anthr. new" in run.stdout

    # The original TypeScript tool (bench/ts_tool.py): its columns when it is built, else
    # one line saying why not.
    ts = data["ts_tool"]
    if ts["ran"]:
        assert "TS tool: the original TypeScript" in run.stdout
        row = lat["ts@1"]
        assert row["errors"] == 0 and 0 < row["ttft_p50_ms"] <= row["total_p50_ms"], row
        assert math.isfinite(comps["ts"]["ttft_p50_over_bare_ms@1"])
        for kind in ("chat", "anthropic", "responses"):
            assert math.isfinite(comps[kind]["ttft_p50_over_ts_ms@1"]), kind
        for size, block in large["by_size"].items():
            med = block["median"]
            assert med["ts"]["errors"] == 0, (size, med["ts"])
            # the chat body (what differs: the request heads, bare's has a token)
            assert abs(med["ts"]["body_bytes"] - med["chat"]["body_bytes"]) < 100, size
            assert positive(med["ts"]["proxy_cpu_ms_per_request"]), (size, med["ts"])
            for kind in ("anthropic", "responses", "anthropic_new", "responses_new"):
                assert math.isfinite(med[kind]["ttft_over_ts_paired_ms"]), (size, kind)
        assert sum("TS tool's chat pass-through" in t["target"] for t in data["targets"]) == 8
    else:
        assert f"TS tool: left out, {ts['why']}" in run.stdout
        assert all("ts" not in block["median"] for block in large["by_size"].values())

    long = data["long_stream"]
    assert all(positive(long["total_ms"][c]) for c in COLUMNS)
    assert all(positive(long["proxy_cpu_us_per_chunk"][c]) for c in COLUMNS if c != "sim")

    micro = data["micro"]
    assert micro["chunks"] > 1000
    for name in ("passthrough", "driver_parse_only", "anthropic", "responses"):
        assert 0 < micro["per_chunk_us"][name] < 10_000, name
    assert micro["out_bytes"]["anthropic"] > 0 and micro["out_bytes"]["responses"] > 0

    mem = data["memory"]
    for name in ("bare", "addon"):
        r = mem[name]
        assert r["start_kib"] > 10_000, r  # a Python process: tens of MiB
        assert len(r["waves"]) == 2 and all(w["errors"] == 0 for w in r["waves"]), r
        assert all(w["peak_kib"] >= r["start_kib"] * 0.9 for w in r["waves"]), r
        assert math.isfinite(r["growth_per_request_kib"])

    st = data["refresh_stall"]
    for case in ("revoked", "proactive"):
        r = st[case]
        assert r["errors"] == 0, r
        assert r["streams_overlapping_refresh"] >= st["streams"] // 2, r
        # the identity server took refresh_delay_s: the refresh really happened meanwhile
        assert r["refresh_s"] >= st["refresh_delay_s"] * 0.8, r
        assert math.isfinite(r["max_stall_during_refresh_ms"]), r
    assert st["revoked"]["trigger_status"] == 401
    assert st["revoked"]["new_request_waited_s"] >= st["refresh_delay_s"] * 0.8
    assert st["proactive"]["trigger_status"] == 200
    # near expiry the refresh runs in the background: the request that started it is not held
    assert st["proactive"]["trigger_ttft_ms"] < st["refresh_delay_s"] * 1000 * 0.8

    names = {t["target"] for t in data["targets"]}
    assert len(names) == len(data["targets"]) >= 11
    assert all(t["ok"] in (True, False) for t in data["targets"])


def test_floors_tells_where_the_first_token_time_goes() -> None:
    """bench/floors.py: bare mitmproxy, mitmproxy buffering, the minimal addon read whole and
    streamed, and the
    addon, a few requests each (the numbers themselves are for a real run, not a test)."""
    run = subprocess.run(
        [sys.executable, "-m", "bench.floors", "--requests", "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    labels = ("bare mitmproxy", "reading the request whole", "min. addon (reads", "streamed on")
    for label in (*labels, "oca-addon"):
        line = next(ln for ln in run.stdout.splitlines() if label in ln)
        p50, over = (float(x) for x in line.split()[-2:])
        assert p50 > 0 and math.isfinite(over), line
