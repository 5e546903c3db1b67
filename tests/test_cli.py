"""The `oca-proxy` command itself: it starts mitmdump in reverse mode with the addon,
and `oca-proxy demo` brings up simulator and proxy, already logged in."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest
from conftest import BIN, PREFIX, Sim, free_port, wait_for

from oca_addon.cli import _parser, build_mitmproxy_args


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_build_args_binds_loopback_and_passes_extra(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PORT", "8668")
    args = _parser().parse_args(["--mode", "external", "--no-browser"])
    program, argv = build_mitmproxy_args(args, ["--set", "x=y"])
    assert program == "mitmdump"
    mode = argv[argv.index("--mode") + 1]
    assert mode == "reverse:https://code.aiservice.us-chicago-1.oci.oraclecloud.com@127.0.0.1:8668"
    assert "oca_open_browser=false" in argv and argv[-2:] == ["--set", "x=y"]
    assert "connection_strategy=lazy" in argv
    program, _ = build_mitmproxy_args(_parser().parse_args(["--web"]), [])
    assert program == "mitmweb"


def test_oca_proxy_command_serves_requests(sim: Sim, tmp_path: Path) -> None:
    port = free_port()
    token_file = tmp_path / "rt.json"
    token_file.write_text(
        json.dumps({"refresh_token": sim.mint()["refresh_token"], "created_at": "x"})
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("DISPLAY", None)
    proc = subprocess.Popen(
        [
            str(BIN / "oca-proxy"),
            "--port",
            str(port),
            "--base-url",
            sim.url + PREFIX,
            "--idcs-url",
            sim.url,
            "--token-file",
            str(token_file),
            "--no-browser",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health", proc=proc)
        c = openai.OpenAI(base_url=f"http://localhost:{port}/v1", api_key="dummy", max_retries=0)
        r = c.chat.completions.create(
            model="oca/gpt-4.1", messages=[{"role": "user", "content": "hey"}]
        )
        assert "You said: hey" in r.choices[0].message.content
        assert httpx.get(f"http://127.0.0.1:{port}/health").json()["port"] == port
    finally:
        _stop(proc)


def test_not_logged_in_start_logs_the_login_url(sim: Sim, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("DISPLAY", None)
    proc = subprocess.Popen(
        [
            str(BIN / "oca-proxy"),
            "--port",
            str(port),
            "--base-url",
            sim.url + PREFIX,
            "--idcs-url",
            sim.url,
            "--no-browser",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health", proc=proc)
        time.sleep(0.5)
        # The simulator is not Oracle's: allowed, but said plainly on the dashboard...
        notices = httpx.get(f"http://127.0.0.1:{port}/api/state").json()["upstream_notices"]
        assert [n.split(" is not Oracle's")[0] + " is not Oracle's" for n in notices] == [
            f"The OCA API URL (base_url) {sim.url + PREFIX} is not Oracle's",
            f"The login URL (idcs_url) {sim.url} is not Oracle's",
        ]
        assert "your refresh token (the OCA login) goes there" in notices[1]
    finally:
        _stop(proc)
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert f"http://localhost:{port}/login" in out
    # ... and at start (issue 23, item 1)
    assert f"The login URL (idcs_url) {sim.url} is not Oracle's (127.0.0.1 is not on" in out


def test_demo_is_logged_in_and_answers(tmp_path: Path) -> None:
    port, sim_port = free_port(), free_port()
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("DISPLAY", None)
    proc = subprocess.Popen(
        [str(BIN / "oca-proxy"), "demo", "--port", str(port), "--sim-port", str(sim_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health", proc=proc)
        assert httpx.get(f"http://127.0.0.1:{port}/health").json()["logged_in"] is True
        c = openai.OpenAI(base_url=f"http://localhost:{port}/v1", api_key="dummy", max_retries=0)
        r = c.chat.completions.create(
            model="claude-sonnet-4-6", messages=[{"role": "user", "content": "demo"}]
        )
        assert "OCA simulator" in r.choices[0].message.content
    finally:
        _stop(proc)


def test_idle_proxy_keeps_login_alive(proxy_factory, sim: Sim) -> None:
    before = sim.state()["counters"]["refreshes"]
    proxy_factory(options={"oca_keepalive": "1"})
    time.sleep(3.5)
    assert sim.state()["counters"]["refreshes"] - before >= 2


def test_cli_refuses_a_settings_file_others_may_write(tmp_path: Path) -> None:
    """Issue 23, item 1: such a file may point idcs_url at another user's server."""
    cfg = tmp_path / "s.json"
    cfg.write_text(json.dumps({"idcs_url": "http://127.0.0.1:1"}))
    cfg.chmod(0o666)
    args = _parser().parse_args(["--config", str(cfg)])
    with pytest.raises(
        SystemExit, match=re.escape(f"writable by other users (mode 0666); run chmod 600 {cfg}")
    ):
        build_mitmproxy_args(args, [])
    cfg.chmod(0o600)
    build_mitmproxy_args(args, [])
