"""Run a real client (Claude Code, Codex) against simulator + mitmdump, all inside a
private network namespace where only loopback exists, so the client cannot reach
anything else even if it tries.

    unshare -n python tests/e2e/isolated.py --out result.json [--settings JSON]
        [--template FILE ...] [--env K=V ...] [--timeout S] -- client args...

`{PROXY}` (proxy URL) and `{PORT}` in the client's arguments, in `--env` values and in
each `--template` file are replaced once the proxy is up. The result file holds the
client's exit code and output, the simulator's recorded requests and the proxy's log.
Use `run_isolated()` from tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent  # where conftest.py is
TOOLS = TESTS.parent / ".tools" / "node_modules" / ".bin"


def tool(name: str) -> str | None:
    """Path of an npm-installed client (scripts/install-test-tools), or None."""
    path = TOOLS / name
    return str(path) if path.exists() else shutil.which(name)


def can_isolate() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return probe.returncode == 0


def run_isolated(
    client: list[str],
    *,
    settings: dict[str, Any] | None = None,
    templates: list[Path] = (),  # type: ignore[assignment]
    env: dict[str, str] | None = None,
    timeout: float = 240,
    sim_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the client in the namespace (or plainly, if namespaces are unavailable)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__)), "--out", str(out), "--timeout", str(timeout)]
        if settings is not None:
            cmd += ["--settings", json.dumps(settings)]
        if sim_config is not None:
            cmd += ["--sim-config", json.dumps(sim_config)]
        for t in templates:
            cmd += ["--template", str(t)]
        for k, v in (env or {}).items():
            cmd += ["--env", f"{k}={v}"]
        cmd += ["--", *client]
        if can_isolate():
            cmd = ["unshare", "-n", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 120)
        if not out.exists():
            raise RuntimeError(f"isolated run failed:\n{proc.stdout}\n{proc.stderr}")
        result: dict[str, Any] = json.loads(out.read_text())
        result["isolated"] = cmd[0] == "unshare"
        return result


def _main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--settings")
    p.add_argument("--sim-config")  # knobs for the simulator (/__sim/config)
    p.add_argument("--template", action="append", default=[])
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--timeout", type=float, default=240)
    p.add_argument("client", nargs=argparse.REMAINDER)
    args = p.parse_args()
    client = args.client[1:] if args.client[:1] == ["--"] else args.client

    if os.geteuid() == 0 and shutil.which("ip"):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
    sys.path.insert(0, str(TESTS))
    from conftest import start_proxy, start_sim

    sim = start_sim()
    if args.sim_config:
        sim.config(**json.loads(args.sim_config))
    home = Path(tempfile.mkdtemp(prefix="oca-isolated-"))
    settings = json.loads(args.settings) if args.settings else None
    proxy = start_proxy(sim, home, settings=settings)
    result: dict[str, Any] = {}
    try:

        def fill(text: str) -> str:
            return text.replace("{PROXY}", proxy.url).replace("{PORT}", str(proxy.port))

        for t in args.template:
            path = Path(t)
            path.write_text(fill(path.read_text()))
        env = {**os.environ}
        for kv in args.env:
            k, _, v = kv.partition("=")
            env[k] = fill(v)
        try:
            done = subprocess.run(
                [fill(a) for a in client],
                capture_output=True,
                text=True,
                env=env,
                timeout=args.timeout,
                stdin=subprocess.DEVNULL,
            )
            result.update(returncode=done.returncode, stdout=done.stdout, stderr=done.stderr)
        except subprocess.TimeoutExpired as e:
            result.update(returncode=-1, stdout=str(e.stdout or ""), stderr=f"timeout: {e}")
        result["sim"] = sim.state()
        result["proxy_log"] = proxy.log()
    finally:
        proxy.stop()
        sim.proc.terminate()
        Path(args.out).write_text(json.dumps(result))
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
