"""The `oca-proxy` command itself: it starts mitmdump in reverse mode with the addon,
and `oca-proxy demo` brings up simulator and proxy, already logged in."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import openai
import pytest
from conftest import BIN, PREFIX, ROOT, Sim, free_port, wait_for

from oca_addon.core import repro


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


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


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A listener that records what reaches it; answers 307 (to `redirect`) or 200."""

    seen: ClassVar[list[tuple[int, str, dict[str, str]]]] = []
    redirect: ClassVar[str | None] = None

    def _any(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.seen.append((self.server.server_address[1], self.path, dict(self.headers.items())))
        if self.redirect:
            self.send_response(307)
            self.send_header("location", self.redirect)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _any

    def log_message(self, *args: object) -> None:
        pass


def _listen() -> http.server.HTTPServer:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_replay_file_reaches_only_the_proxy_and_bad_files_are_clear_errors(
    tmp_path: Path,
) -> None:
    """Issue 23, item 2: a file's path `@127.0.0.1:PORT/...` sent the proxy key (and an
    Authorization: Basic) to that port, and redirects were followed with the key."""
    proxy, other = _listen(), _listen()
    proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
    other_at = f"127.0.0.1:{other.server_address[1]}"
    env = {**os.environ, "HOME": str(tmp_path), "OCA_PROXY_KEY": "proxy-key-secret"}
    env["HTTP_PROXY"] = env["http_proxy"] = f"http://{other_at}"  # never used
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)

    def replay(doc: object, raw: bytes | None = None) -> subprocess.CompletedProcess[str]:
        f = tmp_path / "repro.json"
        f.write_bytes(raw if raw is not None else json.dumps(doc).encode())
        return subprocess.run(
            [sys.executable, "-m", "oca_addon.cli.main", "replay", str(f), "--proxy", proxy_url],
            capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
        )  # fmt: skip

    def file(**request: object) -> dict[str, object]:
        req = {"method": "POST", "path": "/v1/chat/completions", "headers": [], "body": {}}
        return {"oca_proxy_repro": 1, "request": {**req, **request}}

    try:
        run = replay(file(path=f"@{other_at}/v1/chat/completions"))
        assert run.returncode != 0 and "not a path on the proxy" in run.stderr, run.stderr
        assert "Traceback" not in run.stderr and _Recorder.seen == []

        _Recorder.redirect = f"http://{other_at}/v1/chat/completions"
        run = replay(file())
        assert run.returncode == 1 and "not followed" in run.stdout, run.stdout + run.stderr
        # The proxy (and only the proxy) got the key, directly (no environment proxy).
        assert [(port, path) for port, path, _ in _Recorder.seen] == [
            (proxy.server_address[1], "/v1/chat/completions")
        ]
        assert _Recorder.seen[0][2]["x-api-key"] == "proxy-key-secret"
        assert "authorization" not in {k.lower() for k in _Recorder.seen[0][2]}
        _Recorder.redirect = None

        for doc, raw, message in [
            (file(headers="content-type: application/json"), None, "[name, value] pairs"),
            (file(headers={"content-type": "application/json"}), None, "[name, value] pairs"),
            (file(method="POST\r\nX-Injected: 1"), None, "request.method must be one of"),
            (None, b'{"oca_proxy_repro": 1, "request": {"path": "/\xff"}}', "not UTF-8"),
            (None, b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ]:
            run = replay(doc, raw)
            assert run.returncode != 0 and message in run.stderr, run.stderr
            assert "Traceback" not in run.stderr, run.stderr
        big = tmp_path / "big.json"
        with big.open("wb") as f:  # sparse: refused by its size, never read
            f.truncate(repro.FILE_MAX + 1)
        run = subprocess.run(
            [sys.executable, "-m", "oca_addon.cli.main", "replay", str(big), "--proxy", proxy_url],
            capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
        )  # fmt: skip
        assert run.returncode != 0 and "it is over 67,108,864 bytes" in run.stderr, run.stderr
        assert len(_Recorder.seen) == 1  # nothing else was sent anywhere
    finally:
        proxy.shutdown()
        other.shutdown()


def test_ctrl_c_during_a_stream_prints_no_traceback(proxy_factory) -> None:
    """Issue 23.13: CPython 3.12.1's asyncio logs a CancelledError traceback for each open
    connection at shutdown (gh-113538, fixed in 3.12.2); the proxy silences exactly that."""
    p = proxy_factory()
    body = {
        "model": "oca/gpt-4.1",
        "stream": True,
        "messages": [{"role": "user", "content": "SIM:slow=200 SIM:chunks=100 hi"}],
    }
    got = threading.Event()

    def stream() -> None:
        try:
            with httpx.stream("POST", f"{p.url}/v1/chat/completions", json=body, timeout=30) as r:
                for _ in r.iter_bytes():
                    got.set()
        except httpx.HTTPError:
            pass

    t = threading.Thread(target=stream, daemon=True)
    t.start()
    assert got.wait(20)
    time.sleep(0.3)
    p.proc.send_signal(signal.SIGINT)
    p.proc.wait(20)
    t.join(20)
    log = p.log()
    assert "Traceback" not in log and "CancelledError" not in log, log[-3000:]


@contextlib.contextmanager
def _held(port: int) -> Iterator[None]:
    """Something else listening on 127.0.0.1:port meanwhile."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
        yield


def _run(*args: str, home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home)}
    env.pop("DISPLAY", None)
    env.pop("PORT", None)
    return subprocess.run(
        [str(BIN / "oca-proxy"), *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def _one_clear_line(out: subprocess.CompletedProcess[str], *words: str) -> None:
    assert out.returncode != 0, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip() and "warning: port" not in ln]
    assert len(lines) == 1 and all(w in lines[0] for w in words), out.stderr


@pytest.mark.parametrize("busy", ["proxy", "sim", "web"])
def test_demo_on_a_busy_port_says_so_before_anything(tmp_path: Path, busy: str) -> None:
    """Issue 23.12: no success banner then a traceback, nor another demo's simulator."""
    port, sim_port, web_port = free_port(), free_port(), free_port()
    taken = {"proxy": port, "sim": sim_port, "web": web_port}[busy]
    with _held(taken):
        out = _run(
            "demo", "--port", str(port), "--sim-port", str(sim_port),
            *(["--web", "--set", f"web_port={web_port}"] if busy == "web" else []),
            home=tmp_path,
        )  # fmt: skip
    _one_clear_line(out, f"{taken} is in use", "choose another with")
    assert "OCA simulator on" not in out.stdout  # no banner


def test_busy_ports_are_one_line_not_a_traceback(tmp_path: Path) -> None:
    """Issue 23.13: `oca-proxy sim`, the proxy and mitmweb on a port that is taken."""
    port, web_port = free_port(), free_port()
    with _held(port):
        _one_clear_line(_run("sim", "--port", str(port), home=tmp_path), f":{port}: in use")
        out = _run("--port", str(port), "--no-browser", home=tmp_path)
        _one_clear_line(out, f"127.0.0.1:{port}: in use", "--port")
    with _held(web_port):
        # issue 23.14 too: --set before `--` is taken as mitmproxy's own
        out = _run(
            "--web", "--port", str(port), "--no-browser", "--set", f"web_port={web_port}",
            home=tmp_path,
        )  # fmt: skip
        _one_clear_line(out, f"mitmweb cannot listen on 127.0.0.1:{web_port}", "web_port=PORT")


def test_set_is_mitmproxys_and_other_arguments_say_where_they_go() -> None:
    """Issue 23.14: `oca-proxy --set web_port=8083` was refused as an unknown argument."""
    from oca_addon.cli.main import parse_proxy_args

    args, extra = parse_proxy_args(
        ["--web", "--set", "web_port=8083", "--set", "oca_keepalive=60", "--", "-v"]
    )
    assert args.web and extra == ["--set", "web_port=8083", "--set", "oca_keepalive=60", "-v"]
    out = _run("--ssl-insecure", home=Path("/nonexistent"))
    assert out.returncode == 2 and "after `--`" in out.stderr
    assert "oca-proxy [options] -- --ssl-insecure" in out.stderr


def test_base_url_option_without_the_api_path_serves(proxy_factory, sim: Sim) -> None:
    """The same for the mitmdump form's oca_base_url (and a settings file's base_url)."""
    p = proxy_factory(options={"oca_base_url": sim.url})
    assert p.health()["base_url"] == sim.url + PREFIX
    r = httpx.post(
        f"{p.url}/v1/chat/completions",
        json={"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "x"}]},
        timeout=30,
    )
    assert r.status_code == 200, r.text


def test_dashboard_link_opens_mitmweb(proxy_factory) -> None:
    """Issue 23.14: mitmweb 12 wants its token; the dashboard's link gave a 403."""
    web_port = free_port()
    p = proxy_factory(
        program="mitmweb", options={"web_port": str(web_port), "web_open_browser": "false"}
    )
    link = httpx.get(f"{p.url}/api/state", timeout=10).json()["urls"]["mitmweb"]
    assert link.startswith(f"http://127.0.0.1:{web_port}/?token=")
    assert httpx.get(f"http://127.0.0.1:{web_port}/", timeout=10).status_code == 403
    with httpx.Client(timeout=10) as browser:
        assert browser.get(link).status_code == 200
        assert browser.get(f"http://127.0.0.1:{web_port}/flows").status_code == 200  # cookie
