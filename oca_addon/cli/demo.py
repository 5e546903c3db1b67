"""`oca-proxy demo`: the OCA simulator and the proxy together, already logged in.

For trying every client without OCA access. Everything (settings, token file) lives in a
temporary folder, so the user's real login and settings are never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from oca_addon.cli import ports
from oca_addon.core.settings import API_PREFIX

DEMO_SETTINGS = {
    "model_mapping": {
        "claude-*haiku*": "oca/llama-4",
        "claude-*": "oca/gpt-4.1",
        "gpt-5*": {"target": "oca/gpt-5", "reasoning_effort": "medium"},
    },
    "default_model": "oca/gpt-4.1",
}


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"oca-proxy demo: {url.split('/')[2]} exited early")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit(f"oca-proxy demo: {url} did not come up")


def _busy(args: argparse.Namespace, extra: list[str]) -> str | None:
    """Why the demo cannot start here: a port it needs is taken (checked before anything
    starts or is printed, and before another demo's simulator could answer for ours)."""
    wanted = [
        (args.port, "the proxy's port", "--port"),
        (args.sim_port, "the simulator's port", "--sim-port"),
    ]
    if args.web:
        wanted.append((ports.web_address(extra)[1], "mitmweb's port", "--set web_port=PORT"))
    for port, what, option in wanted:
        problem = ports.bind_problem(port)
        if problem:
            return (
                f"{what} {port} is {problem if problem == 'in use' else 'unusable: ' + problem}"
                f" (another demo or oca-proxy running?); stop it, or choose another with {option}"
            )
    return None


def main(argv: list[str], run_proxy: Callable[[list[str]], int]) -> int:
    """`run_proxy` is cli.run_proxy, passed in so that this module needs nothing of cli."""
    p = argparse.ArgumentParser(prog="oca-proxy demo")
    p.add_argument("--port", type=int, default=8669, help="proxy port (default 8669)")
    p.add_argument("--sim-port", type=int, default=9100, help="simulator port (default 9100)")
    p.add_argument("--web", action="store_true", help="mitmweb instead of mitmdump")
    args, extra = p.parse_known_args(argv)
    if extra and extra[0] == "--":
        extra = extra[1:]

    busy = _busy(args, extra)
    if busy:
        raise SystemExit(f"oca-proxy demo: {busy}")

    home = Path(tempfile.mkdtemp(prefix="oca-demo-"))
    sim_url = f"http://127.0.0.1:{args.sim_port}"
    sim = subprocess.Popen([sys.executable, "-m", "oca_addon.sim", "--port", str(args.sim_port)])
    try:
        _wait(f"{sim_url}/.well-known/openid-configuration", sim)
        minted = requests.post(f"{sim_url}/__sim/mint", json={}, timeout=10).json()
        token_file = home / ".oca" / "refresh_token.json"
        token_file.parent.mkdir(mode=0o700)
        token_file.write_text(
            json.dumps({"refresh_token": minted["refresh_token"], "created_at": "demo"})
        )
        token_file.chmod(0o600)
        config = home / "oca-proxy.config.json"
        config.write_text(json.dumps(DEMO_SETTINGS, indent=2))
        base = f"http://localhost:{args.port}"
        print(
            f"""
oca-proxy demo: OCA simulator on {sim_url}, proxy on {base} (logged in).
  OpenAI SDK / Codex:  OPENAI_BASE_URL={base}/v1 OPENAI_API_KEY=dummy
  Claude Code:         ANTHROPIC_BASE_URL={base} ANTHROPIC_AUTH_TOKEN=dummy
  Dashboard:           {base}/    Settings: {config}
  Try: curl {base}/v1/chat/completions -H 'content-type: application/json' \\
         -d '{{"model":"oca/gpt-4.1","messages":[{{"role":"user","content":"hi"}}]}}'
""",
            flush=True,
        )
        return run_proxy(
            [
                "--port",
                str(args.port),
                "--base-url",
                sim_url + API_PREFIX,
                "--idcs-url",
                sim_url,
                "--config",
                str(config),
                "--token-file",
                str(token_file),
                "--no-browser",
                *(["--web"] if args.web else []),
                "--",
                *extra,
            ]
        )
    finally:
        sim.terminate()
        sim.wait(10)
        if os.environ.get("OCA_DEMO_KEEP") != "1":
            import shutil

            shutil.rmtree(home, ignore_errors=True)
