"""The processes a benchmark run needs: the OCA simulator, bare mitmdump, mitmdump with
the addon, and the original TypeScript tool (bench/ts_tool.py) when it is built. All listen
on free 127.0.0.1 ports; HOME of each logged-in proxy is a temp folder with a refresh token
minted from the simulator (as in tests/conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "oca_addon.py"
PREFIX = "/20250206/app/litellm"
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"

# The same mitmdump flags for bare mitmproxy and the addon: the comparison is the addon.
COMMON_MITM_ARGS = ["--flow-detail", "0", "--set", "connection_strategy=lazy"]
# Bare mitmproxy buffers whole bodies unless told to stream; the addon streams by itself.
BARE_ONLY_ARGS = ["--set", "stream_large_bodies=1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def http_json(url: str, payload: dict[str, Any] | None = None, timeout: float = 10) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def rss_kib(pid: int) -> int:
    """Resident set size of a process, KiB (from /proc, no psutil)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class Proc:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    home: Path | None = None
    log_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        return rss_kib(self.proc.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.home is not None and self.extra.get("cleanup", True):
            shutil.rmtree(self.home, ignore_errors=True)


class Sim(Proc):
    def config(self, **knobs: Any) -> dict[str, Any]:
        result: dict[str, Any] = http_json(f"{self.url}/__sim/config", knobs)
        return result

    def mint(self) -> dict[str, Any]:
        result: dict[str, Any] = http_json(f"{self.url}/__sim/mint", {})
        return result


def start_sim(*, token_ttl: float = 86400.0) -> Sim:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "oca_addon.sim",
            "--port",
            str(port),
            "--allow-any-redirect-port",
            "--token-ttl",
            str(token_ttl),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    sim = Sim("sim", port, proc)
    try:
        wait_for(f"{sim.url}/.well-known/openid-configuration", proc)
    except Exception:
        sim.stop()
        raise
    return sim


def _start_mitmdump(
    name: str,
    sim: Sim,
    args: list[str],
    *,
    ready_path: str = "/__bench_ping",
    env: dict[str, str] | None = None,
    home: Path | None = None,
) -> Proc:
    """mitmdump in reverse mode in front of the simulator on a free port, HOME in a temp
    folder, output in HOME/proxy.log; returns once `ready_path` answers."""
    port = free_port()
    home = home or Path(tempfile.mkdtemp(prefix=f"oca-bench-{name}-"))
    argv = [
        str(BIN / "mitmdump"),
        *args,
        "--mode",
        f"reverse:http://{HOST}:{sim.port}@{HOST}:{port}",
        *COMMON_MITM_ARGS,
    ]
    full_env = {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("DISPLAY", None)  # never a browser
    full_env.pop("WAYLAND_DISPLAY", None)
    log_path = home / "proxy.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT)
    p = Proc(name, port, proc, home, log_path)
    try:
        # Any answer will do (through a proxy without pages: the simulator's 404).
        wait_for(f"{p.url}{ready_path}", proc)
    except Exception:
        msg = p.log()
        p.stop()
        raise RuntimeError(f"mitmdump ({name}) did not start:\n" + msg) from None
    return p


def start_bare(sim: Sim) -> Proc:
    """mitmdump in reverse mode in front of the simulator, no script: the floor."""
    return _start_mitmdump("bare", sim, BARE_ONLY_ARGS)


def start_floor(sim: Sim, token: str) -> Proc:
    """mitmdump with bench/floor_addon.py: the least an addon in this design does."""
    script = Path(__file__).resolve().parent / "floor_addon.py"
    return _start_mitmdump("floor", sim, ["-s", str(script)], env={"BENCH_TOKEN": token})


def _logged_in_home(sim: Sim, name: str) -> Path:
    """A temp HOME holding ~/.oca/refresh_token.json, a refresh token minted from the
    simulator (the file both the addon and the TS tool read)."""
    home = Path(tempfile.mkdtemp(prefix=f"oca-bench-{name}-"))
    token_file = home / ".oca" / "refresh_token.json"
    token_file.parent.mkdir(parents=True)
    token_file.write_text(
        json.dumps(
            {"refresh_token": sim.mint()["refresh_token"], "created_at": "2026-01-01T00:00:00Z"}
        )
    )
    token_file.chmod(0o600)
    return home


def start_addon(sim: Sim, options: dict[str, str] | None = None) -> Proc:
    """mitmdump with the addon, logged in to the simulator (HOME in a temp folder)."""
    home = _logged_in_home(sim, "addon")
    opts = {"oca_idcs_url": sim.url, "oca_open_browser": "false", **(options or {})}
    args = ["-s", str(SCRIPT)]
    for k, v in opts.items():
        args += ["--set", f"{k}={v}"]
    return _start_mitmdump("addon", sim, args, ready_path="/health", home=home)


def start_ts_tool(sim: Sim, entry: Path) -> Proc:
    """The original TypeScript tool (bench/ts_tool.py: `entry` its built bin/oca-proxy.js)
    on a free 127.0.0.1 port, logged in to the simulator: HOME in a temp folder with its
    config file (OCA's base URL and the identity server: the simulator) and a refresh token,
    which it refreshes at the simulator's token endpoint on its first call."""
    home = _logged_in_home(sim, "ts")
    port = free_port()
    config = home / ".config" / "oca" / "oca-proxy.config.json"
    config.parent.mkdir(parents=True)
    config.write_text(
        json.dumps({"base_url": sim.url + PREFIX, "idcs_url": sim.url, "port": port}, indent=2)
    )
    env = {**os.environ, "HOME": str(home), "PORT": str(port), "BROWSER": "true"}
    env.pop("DISPLAY", None)  # never a browser (it opens one when it has no token)
    env.pop("WAYLAND_DISPLAY", None)
    log_path = home / "proxy.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["node", str(entry)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home
        )
    p = Proc("ts", port, proc, home, log_path)
    try:
        wait_for(f"{p.url}/health", proc)
        health = http_json(f"{p.url}/health")
        # Its banner names where it sends requests: the simulator, never its defaults.
        banner = p.log()
        if (
            not health.get("authenticated")
            or f"{HOST}:{sim.port}" not in banner
            or "oraclecloud" in banner
        ):
            raise RuntimeError(f"not set up as asked: {health}")
    except Exception as e:
        msg = p.log()
        p.stop()
        raise RuntimeError(f"did not start ({e}):\n" + msg[-2000:]) from None
    return p
