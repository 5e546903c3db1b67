"""The original TypeScript tool (npm package oca-proxy 1.0.12, github.com/banzalik/oca-proxy)
as a column of the benchmark: its chat pass-through, on the same bodies.

Built from its source, outside the repository's tracked files (`.tools/` is git-ignored):

    uv run python -m bench.ts_tool build --source /path/to/oca-proxy   # ~10 s with npm's cache

copies the source to `.tools/ts-oca-proxy`, installs its locked dependencies (`npm ci`) and
runs its esbuild build (`node scripts/build.js` -> `bin/oca-proxy.js`). What differs from its
own `npm ci && npm run build`:

- `--engine-strict=false`: its `.npmrc` sets engine-strict and package.json asks Node 24; the
  bundle runs on the Node 20 here unchanged (it uses nothing newer);
- `--replace-registry-host=always`: its package-lock.json resolves to registry.npmmirror.com,
  fetched from the configured registry instead (same tarballs, same integrity hashes);
- `--ignore-scripts`: its `prepare` script installs git hooks (husky);
- one line of its source patched: `app.listen(PROXY_PORT, ...)` listens on every interface;
  here on 127.0.0.1 only, as every other process of the benchmark.

`python -m bench` finds the built tool with `--ts-tool DIR` or OCA_BENCH_TS_TOOL (default
`.tools/ts-oca-proxy`); when it is not there, or node is missing, it says so in one line and
leaves the TS tool's columns out. bench/procs.py `start_ts_tool` starts it: HOME in a temp
folder holding its config (`~/.config/oca/oca-proxy.config.json`: base_url and idcs_url the
simulator's) and a refresh token minted from the simulator (`~/.oca/refresh_token.json`), which
it refreshes at the simulator's IDCS token endpoint as it would at Oracle's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / ".tools" / "ts-oca-proxy"
ENV_DIR = "OCA_BENCH_TS_TOOL"
ENV_SOURCE = "OCA_BENCH_TS_SOURCE"
ENTRY = Path("bin") / "oca-proxy.js"
# The files of the source a build needs.
SOURCE_FILES = ("src", "scripts", "package.json", "package-lock.json", "tsconfig.json", ".npmrc")
LISTEN = "app.listen(PROXY_PORT, async"
LISTEN_LOOPBACK = 'app.listen(PROXY_PORT, "127.0.0.1", async'
NPM_CI = [
    "npm",
    "ci",
    "--engine-strict=false",
    "--replace-registry-host=always",
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
]


def default_dir() -> Path:
    return Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


def find(directory: Path | None = None) -> tuple[Path | None, str]:
    """(the built tool's entry script, "") or (None, why it cannot run)."""
    d = directory or default_dir()
    entry = d / ENTRY
    if shutil.which("node") is None:
        return None, "node is not installed"
    if not entry.is_file():
        hint = f"uv run python -m bench.ts_tool build --source SRC --dest {d}"
        return None, f"not built ({entry} missing; build it with: {hint})"
    return entry, ""


def describe(directory: Path | None = None) -> dict[str, object]:
    """What was built (BUILD.json, written by build())."""
    d = directory or default_dir()
    try:
        info: dict[str, object] = json.loads((d / "BUILD.json").read_text())
        return info
    except (OSError, ValueError):
        return {"dir": str(d)}


def _git_commit(source: Path) -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def build(source: Path, dest: Path) -> Path:
    """Copy `source` to `dest`, install its dependencies, patch where it listens and build it;
    the path of the built entry script."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    missing = [f for f in SOURCE_FILES if not (source / f).exists()]
    if missing:
        raise SystemExit(f"{source} is not the oca-proxy source ({', '.join(missing)} missing)")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in SOURCE_FILES:
        src = source / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        else:
            shutil.copy2(src, dest / name)
    index = dest / "src" / "index.ts"
    code = index.read_text()
    if code.count(LISTEN) != 1:
        raise SystemExit(f"{index}: no single '{LISTEN}' to make it listen on 127.0.0.1")
    index.write_text(code.replace(LISTEN, LISTEN_LOOPBACK))
    subprocess.run(NPM_CI, cwd=dest, check=True)
    subprocess.run(["node", "scripts/build.js"], cwd=dest, check=True)
    entry = dest / ENTRY
    version = subprocess.run(
        ["node", str(entry), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    info = {
        "version": version,
        "source": str(source),
        "source_commit": _git_commit(source),
        "node": node,
        "npm": " ".join(NPM_CI),
        "patched": f"src/index.ts: {LISTEN} -> {LISTEN_LOOPBACK}",
    }
    (dest / "BUILD.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"built {version} in {dest} (node {node})")
    return entry


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ts_tool", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the TS tool from its source")
    b.add_argument(
        "--source",
        type=Path,
        default=os.environ.get(ENV_SOURCE),
        help=f"a checkout of github.com/banzalik/oca-proxy (or {ENV_SOURCE})",
    )
    b.add_argument("--dest", type=Path, default=default_dir(), help="default: %(default)s")
    sub.add_parser("check", help="say whether the benchmark will find the built tool")
    args = p.parse_args(argv)
    if args.cmd == "build":
        if args.source is None:
            p.error(f"--source (or {ENV_SOURCE}) is needed")
        build(args.source.resolve(), args.dest.resolve())
        return 0
    entry, why = find()
    print(f"TS tool: {entry} {describe()}" if entry else f"TS tool: {why}")
    return 0 if entry else 1


if __name__ == "__main__":
    sys.exit(main())
