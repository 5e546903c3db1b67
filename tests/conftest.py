"""Fixtures that run the real thing: the OCA simulator and mitmdump with the addon,
as separate processes on free loopback ports, with HOME in a temp folder so the
settings and token files are the test's own.

The tests come in tiers: tests/unit (pure code, in process), tests/addons (each addon
under mitmproxy's taddons/tflow) and tests/e2e (real mitmdump/mitmweb, SDKs, agents,
Chromium). Everything under tests/e2e is marked `slow` here, as is any other test that
starts a process of its own (marked where it is written): `pytest -m "not slow"`
(`./scripts/test --fast`) is the quick loop."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
E2E = Path(__file__).resolve().parent / "e2e"
SCRIPT = ROOT / "oca_addon.py"
PREFIX = "/20250206/app/litellm"
BIN = Path(sys.executable).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every end-to-end test is slow, whatever its file says."""
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """`async def` tests run in an event loop of their own, as mitmproxy's addon tests do
    (there with pytest-asyncio): taddons.context() then runs on that loop."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{n: pyfuncitem.funcargs[n] for n in names}))
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@dataclass
class Sim:
    url: str
    proc: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return self.url + PREFIX

    def config(self, **knobs: Any) -> dict[str, Any]:
        return httpx.post(f"{self.url}/__sim/config", json=knobs, timeout=10).json()

    def state(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/__sim/state", timeout=10).json()

    def mint(self) -> dict[str, Any]:
        return httpx.post(f"{self.url}/__sim/mint", json={}, timeout=10).json()

    def reset(self) -> None:
        httpx.post(f"{self.url}/__sim/reset", timeout=10)


def start_sim(*extra: str) -> Sim:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "oca_addon.sim",
            "--port",
            str(port),
            "--allow-any-redirect-port",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/.well-known/openid-configuration", proc=proc)
    return Sim(url, proc)


@pytest.fixture(scope="session")
def sim() -> Iterator[Sim]:
    s = start_sim()
    yield s
    s.proc.terminate()
    s.proc.wait(10)


@dataclass
class Proxy:
    url: str
    port: int
    home: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    sim: Sim
    extra: list[str] = field(default_factory=list)

    @property
    def token_file(self) -> Path:
        return self.home / ".oca" / "refresh_token.json"

    @property
    def settings_file(self) -> Path:
        return self.home / ".config" / "oca" / "oca-proxy.config.json"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def health(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/health", timeout=10).json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_proxy(
    sim: Sim,
    home: Path,
    *,
    logged_in: bool = True,
    settings: dict[str, Any] | None = None,
    options: dict[str, str] | None = None,
    mitm_args: list[str] | None = None,
    program: str = "mitmdump",
) -> Proxy:
    home.mkdir(parents=True, exist_ok=True)
    if logged_in:
        token_file = home / ".oca" / "refresh_token.json"
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(
            json.dumps(
                {"refresh_token": sim.mint()["refresh_token"], "created_at": "2026-01-01T00:00:00Z"}
            )
        )
        token_file.chmod(0o600)
    if settings is not None:
        cfg = home / ".config" / "oca" / "oca-proxy.config.json"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(json.dumps(settings))
    port = free_port()
    sim_port = sim.url.rsplit(":", 1)[1]
    opts = {
        "oca_idcs_url": sim.url,
        "oca_open_browser": "false",
        # Tests switch the simulator's /completions on and off at run time: ask it every time.
        "oca_completions_refusal_ttl": "0",
        **(options or {}),
    }
    args = [
        str(BIN / program),
        "-s",
        str(SCRIPT),
        "--mode",
        f"reverse:http://127.0.0.1:{sim_port}@127.0.0.1:{port}",
    ]
    if program == "mitmdump":
        args += ["--flow-detail", "0"]  # mitmweb has no such option
    for k, v in opts.items():
        args += ["--set", f"{k}={v}"]
    args += mitm_args or []
    log_path = home / "proxy.log"
    env = {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("DISPLAY", None)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", proc=proc)
    except Exception:
        proc.kill()
        raise RuntimeError(
            "proxy did not start:\n" + log_path.read_text(errors="replace")
        ) from None
    return Proxy(url, port, home, proc, log_path, sim)


@pytest.fixture
def proxy_factory(sim: Sim, tmp_path: Path) -> Iterator[Any]:
    started: list[Proxy] = []

    def factory(name: str = "home", **kw: Any) -> Proxy:
        p = start_proxy(kw.pop("sim", sim), tmp_path / name, **kw)
        started.append(p)
        return p

    yield factory
    for p in started:
        p.stop()


@pytest.fixture(scope="module")
def proxy(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """One logged-in proxy shared by a module's tests (with a mapping for Claude names)."""
    settings = {
        "model_mapping": {
            "claude-sonnet-4-6": "oca/gpt-4.1",
            "claude-*haiku*": "oca/llama-4",
            "native-claude": "oca/claude-sonnet-4",
            "gpt-5-mapped": {"target": "oca/gpt-5", "reasoning_effort": "high"},
        },
        "default_model": "oca/gpt-4.1",
    }
    p = start_proxy(sim, tmp_path_factory.mktemp("proxy"), settings=settings)
    yield p
    p.stop()


def no_token_in(text: str, *tokens: str) -> bool:
    return not any(t and t in text for t in tokens)


def sse_events(body: str) -> list[tuple[str | None, str]]:
    out = []
    for frame in re.split(r"\n\n", body):
        event, data = None, []
        for line in frame.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            out.append((event, "\n".join(data)))
    return out


@contextlib.contextmanager
def timer() -> Iterator[list[float]]:
    t = [time.perf_counter()]
    yield t
    t.append(time.perf_counter())
