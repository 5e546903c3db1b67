"""The login end to end: a real mitmdump with the addon, the simulator's IDCS checking
PKCE, and an HTTP client following redirects in place of the browser."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from conftest import BIN, Proxy, Sim, free_port, start_proxy, start_sim

CHAT = {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}


def browser() -> httpx.Client:
    return httpx.Client(follow_redirects=True, timeout=30)


def log_in(proxy: Proxy) -> httpx.Response:
    with browser() as b:
        return b.get(f"{proxy.url}/login")


@pytest.fixture
def fresh_sim() -> Sim:
    s = start_sim()
    yield s
    s.proc.terminate()
    s.proc.wait(10)


def test_browser_login_flow(proxy_factory) -> None:
    p = proxy_factory(logged_in=False)
    assert p.health()["logged_in"] is False
    r = httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=10)
    assert r.status_code == 401
    assert f"http://localhost:{p.port}/login" in r.json()["error"]["message"]

    with browser() as b:
        start = b.get(f"{p.url}/login", follow_redirects=False)
        assert start.status_code == 302
        location = start.headers["location"]
        assert "code_challenge_method=S256" in location and "nonce=" in location
        assert f"redirect_uri=http%3A%2F%2Flocalhost%3A{p.port}%2Fcallback" in location
        assert "offline_access" in location
        done = b.get(f"{p.url}/login")
    assert done.status_code == 200 and "logged in" in done.text.lower()
    assert str(done.url).startswith(f"http://localhost:{p.port}/callback")

    saved = json.loads(p.token_file.read_text())
    assert saved["refresh_token"] and saved["created_at"]
    assert saved["refresh_token"] not in done.text
    assert stat.S_IMODE(os.stat(p.token_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(p.token_file.parent).st_mode) == 0o700
    assert p.health()["logged_in"] is True
    r = httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=30)
    assert r.status_code == 200, r.text
    assert p.sim.state()["counters"]["token_grants"].get("authorization_code", 0) >= 1


def test_callback_failures_say_what_happened(proxy_factory, sim: Sim) -> None:
    p = proxy_factory(logged_in=False)
    with browser() as b:
        start = b.get(f"{p.url}/login", follow_redirects=False)
        at_idcs = b.get(start.headers["location"], follow_redirects=False)
        callback = at_idcs.headers["location"]
        ok = b.get(callback)
        assert ok.status_code == 200
        again = b.get(callback)  # the state is single-use
        assert again.status_code == 400 and "already used" in again.text
        assert "/login" in again.text  # offers to try again
        no_state = b.get(f"{p.url}/callback?code=abc")
        assert no_state.status_code == 400 and "missing its state" in no_state.text
        # a code that IDCS refuses (valid state, forged code)
        start = b.get(f"{p.url}/login", follow_redirects=False)
        state = re.search(r"state=([^&]+)", start.headers["location"]).group(1)
        forged = b.get(f"{p.url}/callback?code=forged&state={state}")
        assert forged.status_code == 400 and "could not be completed" in forged.text
        # IDCS itself says no
        sim.config(deny_login=True)
        try:
            denied = b.get(f"{p.url}/login")
        finally:
            sim.config(deny_login=False)
        assert denied.status_code == 400 and "access_denied" in denied.text
    assert "refresh_token" not in denied.text


def test_logout_needs_our_own_page(proxy_factory) -> None:
    p = proxy_factory()
    with browser() as b:
        page = b.get(f"{p.url}/logout")
        assert page.status_code == 200 and p.token_file.exists()  # GET changes nothing
        forged = b.post(f"{p.url}/logout", data={"csrf": "guess"})
        assert forged.status_code == 403 and p.token_file.exists()
        odd = b.post(f"{p.url}/logout", data={"csrf": "gu\u00e9ss\u2603"})  # issue 14.5
        assert odd.status_code == 400 and "Malformed" in odd.text and p.token_file.exists()
        odd = b.post(f"{p.url}/logout", headers={"x-csrf-token": "\u00e9".encode()})
        assert odd.status_code == 400 and p.token_file.exists()
        csrf = re.search(r'name=csrf value="([^"]+)"', page.text).group(1)
        out = b.post(f"{p.url}/logout", data={"csrf": csrf})
    assert out.status_code == 200 and "Logged out" in out.text
    assert not p.token_file.exists()
    assert p.health()["logged_in"] is False
    r = httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=10)
    assert r.status_code == 401 and "/login" in r.json()["error"]["message"]
    a = anthropic.Anthropic(base_url=p.url, api_key="x", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        a.messages.create(
            model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.body["error"]["type"] == "authentication_error"


def test_short_tokens_refresh_and_rotate(proxy_factory, fresh_sim: Sim) -> None:
    fresh_sim.config(token_ttl=4)
    p = proxy_factory(sim=fresh_sim, options={"oca_refresh_margin": "1"})
    first_rt = json.loads(p.token_file.read_text())["refresh_token"]
    c = openai.OpenAI(base_url=f"{p.url}/v1", api_key="x", max_retries=0)
    for _ in range(4):
        r = c.chat.completions.create(
            model="oca/gpt-4.1", messages=[{"role": "user", "content": "x"}]
        )
        assert r.choices[0].message.content
        time.sleep(2.2)
    refreshes = fresh_sim.state()["counters"]["refreshes"]
    assert refreshes >= 2
    assert json.loads(p.token_file.read_text())["refresh_token"] != first_rt


def test_concurrent_requests_share_one_slow_refresh(proxy_factory, fresh_sim: Sim) -> None:
    p = proxy_factory(sim=fresh_sim)
    fresh_sim.config(refresh_delay=2)
    before = fresh_sim.state()["counters"]["refreshes"]

    async def go() -> tuple[list[int], float]:
        async with httpx.AsyncClient(timeout=60) as c:
            # a stream that starts before the refresh keeps flowing during it
            stream_req = c.post(
                f"{p.url}/v1/chat/completions",
                json={
                    **CHAT,
                    "stream": True,
                    "messages": [{"role": "user", "content": "SIM:chunks=30 SIM:slow=100"}],
                },
            )
            calls = [c.post(f"{p.url}/v1/chat/completions", json=CHAT) for _ in range(20)]
            t = time.perf_counter()
            health = await c.get(f"{p.url}/health")
            health_time = time.perf_counter() - t
            assert health.status_code == 200
            results = await asyncio.gather(stream_req, *calls)
            return [r.status_code for r in results], health_time

    statuses, health_time = asyncio.run(go())
    assert statuses == [200] * 21
    assert fresh_sim.state()["counters"]["refreshes"] - before == 1
    assert health_time < 1.0  # the pages answer while the refresh is slow


def test_stream_not_paused_by_refresh(proxy_factory, fresh_sim: Sim) -> None:
    p = proxy_factory(sim=fresh_sim, options={"oca_refresh_margin": "1"})
    c = httpx.Client(timeout=60)
    c.post(f"{p.url}/v1/chat/completions", json=CHAT)  # logged in, token cached
    fresh_sim.config(refresh_delay=2)
    gaps: list[float] = []

    async def stream_and_refresh() -> None:
        async with httpx.AsyncClient(timeout=60) as ac:

            async def streamer() -> None:
                async with ac.stream(
                    "POST",
                    f"{p.url}/v1/chat/completions",
                    json={
                        **CHAT,
                        "stream": True,
                        "messages": [{"role": "user", "content": "SIM:chunks=40 SIM:slow=75"}],
                    },
                ) as r:
                    last = time.perf_counter()
                    async for _ in r.aiter_raw():
                        now = time.perf_counter()
                        gaps.append(now - last)
                        last = now

            task = asyncio.create_task(streamer())
            await asyncio.sleep(0.5)
            fresh_sim.config(revoke_access_tokens=True)
            await ac.post(f"{p.url}/v1/chat/completions", json=CHAT)  # triggers the slow refresh
            await task

    # the stream was authorised before the revocation, so it must flow on untouched
    asyncio.run(stream_and_refresh())
    assert len(gaps) > 20
    assert max(gaps[1:]) < 0.075 + 0.2, max(gaps)


def test_upstream_401_refreshes_and_sdk_retries(proxy_factory, fresh_sim: Sim) -> None:
    p = proxy_factory(sim=fresh_sim)
    c = openai.OpenAI(base_url=f"{p.url}/v1", api_key="x", max_retries=0)
    c.chat.completions.create(model="oca/gpt-4.1", messages=[{"role": "user", "content": "x"}])
    fresh_sim.config(revoke_access_tokens=True)
    with pytest.raises(openai.AuthenticationError) as e:
        c.chat.completions.create(model="oca/gpt-4.1", messages=[{"role": "user", "content": "x"}])
    assert e.value.response.headers.get("x-should-retry") == "true"
    fresh_sim.config(revoke_access_tokens=True)
    retrying = openai.OpenAI(base_url=f"{p.url}/v1", api_key="x", max_retries=2)
    r = retrying.chat.completions.create(
        model="oca/gpt-4.1", messages=[{"role": "user", "content": "x"}]
    )
    assert r.choices[0].message.content  # transparent for the user


def test_expired_login_tells_clients_to_log_in(proxy_factory, fresh_sim: Sim) -> None:
    p = proxy_factory(sim=fresh_sim)
    fresh_sim.config(fail_refresh=True)
    r = httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=10)
    assert r.status_code == 401
    msg = r.json()["error"]["message"]
    assert "expired or was revoked" in msg and f"localhost:{p.port}/login" in msg
    r = httpx.post(
        f"{p.url}/v1/messages",
        json={"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        timeout=10,
    )
    assert r.status_code == 401 and r.json()["type"] == "error"
    assert "OCA login is gone" in p.log()
    assert p.health()["status"] == "ok"


def test_corrupt_token_file(proxy_factory, tmp_path: Path, sim: Sim) -> None:
    home = tmp_path / "corrupt"
    (home / ".oca").mkdir(parents=True)
    (home / ".oca" / "refresh_token.json").write_text("{this is not json")
    p = start_proxy(sim, home, logged_in=False)
    try:
        h = p.health()
        assert h["logged_in"] is False and "not valid JSON" in h["login_problem"]
        r = httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=10)
        assert r.status_code == 401 and "not valid JSON" in r.json()["error"]["message"]
        assert log_in(p).status_code == 200  # and a new login repairs it
        assert p.health()["logged_in"] is True
    finally:
        p.stop()


def test_two_proxies_share_one_token_file(fresh_sim: Sim, tmp_path: Path) -> None:
    """Two processes refreshing the same rotating token many times: zero logouts."""
    fresh_sim.config(token_ttl=3)
    home = tmp_path / "shared"
    a = start_proxy(fresh_sim, home, options={"oca_refresh_margin": "1"})
    b = start_proxy(fresh_sim, home, logged_in=False, options={"oca_refresh_margin": "1"})
    try:

        async def hammer(url: str) -> list[int]:
            statuses = []
            async with httpx.AsyncClient(timeout=30) as c:
                end = time.time() + 12
                while time.time() < end:
                    r = await c.post(f"{url}/v1/chat/completions", json=CHAT)
                    statuses.append(r.status_code)
                    await asyncio.sleep(0.05)
            return statuses

        async def both() -> list[list[int]]:
            return await asyncio.gather(hammer(a.url), hammer(b.url))

        results = asyncio.run(both())
        flat = [s for r in results for s in r]
        assert flat and all(s == 200 for s in flat), {s: flat.count(s) for s in set(flat)}
        assert fresh_sim.state()["counters"]["refreshes"] >= 6
        assert "OCA login is gone" not in a.log() + b.log()
    finally:
        a.stop()
        b.stop()


def test_cli_login_no_browser_status_logout(sim: Sim, tmp_path: Path) -> None:
    token_file = tmp_path / "t" / "refresh_token.json"
    env = {**os.environ, "HOME": str(tmp_path)}
    # a free port: no proxy answers there (status asks a running proxy first)
    common = ["--idcs-url", sim.url, "--token-file", str(token_file), "--port", str(free_port())]
    cli = [str(BIN / "oca-proxy")]
    proc = subprocess.Popen(
        [*cli, "login", "--no-browser", *common],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdin is not None
    url = ""
    while not url:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        if "/oauth2/v1/authorize" in line:
            url = line.strip()
    # "the browser" signs in and ends on the callback address, which the user pastes back
    landed = httpx.get(url, follow_redirects=False).headers["location"]
    out, err = proc.communicate(landed + "\n", timeout=60)
    assert proc.returncode == 0, out + err
    assert "Logged in" in out and token_file.exists()
    assert json.loads(token_file.read_text())["refresh_token"] not in out

    status = subprocess.run(
        [*cli, "status", "--check", *common], capture_output=True, text=True, env=env
    )
    assert status.returncode == 0 and "IDCS accepted the login" in status.stdout
    out = subprocess.run([*cli, "logout", *common], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and not token_file.exists()
    status = subprocess.run([*cli, "status", *common], capture_output=True, text=True, env=env)
    assert status.returncode == 1 and "not logged in" in status.stdout


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home)}
    env.pop("PORT", None)
    return subprocess.run(
        [str(BIN / "oca-proxy"), *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_cli_logout_ends_a_running_proxys_login(proxy_factory, tmp_path: Path) -> None:
    """Issue 23.5: the file goes and the running proxy stops using the login at once."""
    p = proxy_factory()
    assert httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=30).status_code == 200
    out = _cli("logout", "--port", str(p.port), home=p.home)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not p.token_file.exists()
    assert f"The proxy on port {p.port} no longer uses the login" in out.stdout
    assert p.health()["logged_in"] is False  # at once, not after the next look
    r = httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=10)
    assert r.status_code == 401 and "/login" in r.json()["error"]["message"]
    assert "was removed: no longer logged in" in p.log()
    # the proxy's answer to that call changes nothing else, and it needs JSON
    form = httpx.post(f"{p.url}/logout", data={"check_token_file": "true"}, timeout=10)
    assert form.status_code == 403  # a form without the page's token, as before
    plain = httpx.post(
        f"{p.url}/logout",
        content=b'{"check_token_file": true}',
        headers={"content-type": "text/plain; x=json"},  # what a page may send unasked
        timeout=10,
    )
    assert plain.status_code == 403


def test_removed_token_file_ends_the_login_within_a_second(proxy_factory) -> None:
    """Removed by hand (or by another tool): the proxy notices by itself."""
    p = proxy_factory()
    assert httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=30).status_code == 200
    p.token_file.unlink()
    time.sleep(1.2)
    r = httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=10)
    assert r.status_code == 401
    assert p.health()["logged_in"] is False


def test_cli_status_asks_the_running_proxy(proxy_factory, tmp_path: Path) -> None:
    """Issue 23.5: during `oca-proxy demo` (a login in another file) status said
    "not logged in": a running proxy is asked first."""
    p = proxy_factory()
    other_home = tmp_path / "nobody"  # no token file of its own
    other_home.mkdir()
    out = _cli("status", "--port", str(p.port), home=other_home)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Proxy: running on port {p.port}" in out.stdout
    assert "Login: logged in" in out.stdout and str(p.token_file) in out.stdout
    out = _cli("status", "--check", "--port", str(p.port), home=other_home)
    assert out.returncode == 0 and "IDCS accepted the login" in out.stdout, out.stdout
    assert httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=30).status_code == 200
    _cli("logout", "--port", str(p.port), "--token-file", str(p.token_file), home=other_home)
    out = _cli("status", "--port", str(p.port), home=other_home)
    assert out.returncode == 1 and "Login: not logged in" in out.stdout, out.stdout


def _login_prompt(sim: Sim, tmp_path: Path) -> subprocess.Popen[str]:
    """`oca-proxy login --no-browser`, waiting at its paste prompt."""
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [str(BIN / "oca-proxy"), "login", "--no-browser", "--idcs-url", sim.url,
         "--port", str(free_port())],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    while "/oauth2/v1/authorize" not in (line := proc.stdout.readline()):
        assert line, proc.communicate(timeout=10)
    return proc


@pytest.mark.parametrize("how", ["eof", "ctrl-c"])
def test_cli_login_prompt_cancelled_without_a_traceback(sim: Sim, tmp_path: Path, how: str) -> None:
    """Issue 23.13: EOF or Ctrl-C at the paste prompt printed a traceback."""
    proc = _login_prompt(sim, tmp_path)
    if how == "eof":
        out, err = proc.communicate("", timeout=30)
        assert proc.returncode == 1 and "nothing was pasted" in err, err
    else:
        time.sleep(1.0)  # at input() by now
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130 and "cancelled" in err, err
    assert "Traceback" not in out + err, err
    assert not (tmp_path / ".oca" / "refresh_token.json").exists()


def test_cli_version_and_help() -> None:
    out = subprocess.run([str(BIN / "oca-proxy"), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "oca-proxy" in out.stdout
    out = subprocess.run([str(BIN / "oca-proxy"), "--help"], capture_output=True, text=True)
    assert "--no-browser" in out.stdout and "--web" in out.stdout


def test_token_never_in_proxy_log(proxy_factory) -> None:
    p = proxy_factory(logged_in=False)
    log_in(p)
    httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=30)
    rt = json.loads(p.token_file.read_text())["refresh_token"]
    assert rt not in p.log() and "Bearer " not in p.log()


def _refresh_forms(sim: Sim) -> list[dict[str, str]]:
    return [
        r["body"]
        for r in sim.state()["requests"]
        if r["path"].endswith("/oauth2/v1/token")
        and isinstance(r["body"], dict)
        and r["body"].get("grant_type") == "refresh_token"
    ]


def test_lost_login_is_recognised_and_idcs_left_alone(proxy_factory, fresh_sim: Sim) -> None:
    """Issue 12, part 3: a refused refresh token ends the login until a new one appears."""
    p = proxy_factory(sim=fresh_sim)
    fresh_sim.config(fail_refresh=True)
    for _ in range(5):
        r = httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=10)
        assert r.status_code == 401
        assert f"open http://localhost:{p.port}/login" in r.json()["error"]["message"].lower()
    r = httpx.post(
        f"{p.url}/v1/messages",
        json={"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        timeout=10,
    )
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert f"http://localhost:{p.port}/login" in r.json()["error"]["message"]
    assert fresh_sim.state()["counters"]["refresh_failures"] == 1  # IDCS asked once
    health = p.health()
    assert health["logged_in"] is False and "expired or was revoked" in health["login_problem"]
    state = httpx.get(f"{p.url}/api/state", timeout=10).json()
    assert state["login"]["logged_in"] is False and "revoked" in state["login"]["problem"]
    # what real clients send: no scope
    forms = _refresh_forms(fresh_sim)
    assert forms and all(set(f) == {"grant_type", "refresh_token", "client_id"} for f in forms), (
        forms
    )
    # another process logs in (the token file changes): used at once
    fresh_sim.config(fail_refresh=False)
    p.token_file.write_text(json.dumps({"refresh_token": fresh_sim.mint()["refresh_token"]}))
    r = httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=30)
    assert r.status_code == 200, r.text
    assert p.health()["logged_in"] is True


def _chattr(flag: str, path: Path) -> bool:
    try:
        return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0
    except OSError:
        return False


def test_failed_token_write_keeps_serving(proxy_factory, fresh_sim: Sim) -> None:
    """Issue 14.1: IDCS rotated the token but the file cannot be written."""
    p = proxy_factory(sim=fresh_sim)
    c = openai.OpenAI(base_url=f"{p.url}/v1", api_key="x", max_retries=2)
    ask = {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "x"}]}
    c.chat.completions.create(**ask)  # the lock file exists from now on
    dead = json.loads(p.token_file.read_text())["refresh_token"]
    folder = p.token_file.parent
    if not _chattr("+i", folder):
        pytest.skip("needs chattr +i (an unwritable folder even for root)")
    try:
        for _ in range(3):  # each: OCA refuses the access token, the proxy refreshes
            fresh_sim.config(revoke_access_tokens=True)
            assert c.chat.completions.create(**ask).choices[0].message.content
        health = p.health()
        assert health["logged_in"] is True
        assert health["login_problem"].startswith(
            f"login held in memory only: cannot write {p.token_file}: "
        )
        assert "login held in memory only" in p.log()
        state = httpx.get(f"{p.url}/api/state", timeout=10).json()
        assert "held in memory only" in state["login"]["problem"]
        assert json.loads(p.token_file.read_text())["refresh_token"] == dead
    finally:
        _chattr("-i", folder)
    fresh_sim.config(revoke_access_tokens=True)  # the next refresh saves it
    assert c.chat.completions.create(**ask).choices[0].message.content
    assert json.loads(p.token_file.read_text())["refresh_token"] != dead
    assert p.health()["login_problem"] is None
    assert fresh_sim.state()["counters"]["refresh_failures"] == 0  # never the revoked one


def test_login_that_cannot_be_saved_is_held_in_memory(proxy_factory, fresh_sim: Sim) -> None:
    """A fresh login into an unwritable ~/.oca (full disk, read-only home) is not lost."""
    p = proxy_factory(sim=fresh_sim, logged_in=False)
    folder = p.token_file.parent
    folder.mkdir(mode=0o700, exist_ok=True)
    (folder / "refresh_token.json.lock").touch(mode=0o600)
    if not _chattr("+i", folder):
        pytest.skip("needs chattr +i (an unwritable folder even for root)")
    try:
        with browser() as b:
            done = b.get(f"{p.url}/login")
        assert done.status_code == 200 and "logged in" in done.text.lower()
        assert "held in memory only" in done.text
        assert not p.token_file.exists()
        health = p.health()
        assert health["logged_in"] is True
        assert health["login_problem"].startswith("login held in memory only: cannot write")
        r = httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=30)
        assert r.status_code == 200, r.text
    finally:
        _chattr("-i", folder)
    fresh_sim.config(revoke_access_tokens=True)  # the next refresh saves the login
    r = httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=30)
    assert r.status_code in (200, 401)  # 401 asks the SDK to retry after the refresh
    deadline = time.time() + 10
    while not p.token_file.exists() and time.time() < deadline:
        httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=30)
        time.sleep(0.2)
    assert json.loads(p.token_file.read_text())["refresh_token"]
    assert p.health()["login_problem"] is None
