"""Issue 7, "nobody else gets in": loopback only, proxy key, DNS rebinding, cross-site
requests, and no token anywhere it could be read (log, errors, pages, mitmweb, saved flows).

Through real mitmdump and mitmweb processes (the pure checks, oca_addon/core/security.py,
are in tests/unit/test_security_checks.py). Tests that need a peer on another address run
in a private network namespace (`unshare -n`) where only the loopback device exists, with a
second address on it.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from conftest import ROOT, Proxy, Sim, free_port, start_proxy
from isolated import can_isolate

CHAT = {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hi"}],
}

# -- through a running proxy -------------------------------------------------------------


def _openai_error(r: httpx.Response, status: int, type_: str) -> str:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["type"] == type_, err
    return str(err["message"])


def _anthropic_error(r: httpx.Response, status: int, type_: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == type_, body
    return str(body["error"]["message"])


def test_dns_rebinding_host_is_refused(proxy: Proxy) -> None:
    evil = {"host": f"evil.example:{proxy.port}"}
    r = httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT, headers=evil, timeout=10)
    assert "DNS-rebinding" in _openai_error(r, 403, "permission_error")
    r = httpx.post(f"{proxy.url}/v1/messages", json=MESSAGES, headers=evil, timeout=10)
    assert "DNS-rebinding" in _anthropic_error(r, 403, "permission_error")
    for path in ("/health", "/", "/login", "/logout"):
        r = httpx.get(f"{proxy.url}{path}", headers=evil, timeout=10)
        assert r.status_code == 403 and r.headers["content-type"].startswith("text/plain")
        assert "sim-" not in r.text
    # another port on localhost is another origin too
    r = httpx.get(f"{proxy.url}/health", headers={"host": "localhost:1"}, timeout=10)
    assert r.status_code == 403
    for host in (f"localhost:{proxy.port}", f"127.0.0.1:{proxy.port}", f"[::1]:{proxy.port}"):
        r = httpx.get(f"{proxy.url}/health", headers={"host": host}, timeout=10)
        assert r.status_code == 200, host
    assert proxy.sim.state()["requests"] == [] or all(
        "evil" not in json.dumps(x["headers"]) for x in proxy.sim.state()["requests"]
    )


def test_cross_site_requests_are_refused(proxy: Proxy) -> None:
    before = proxy.sim.state()["counters"]["api_requests"]
    for origin in ("https://evil.example", "null", f"http://localhost:{proxy.port + 1}"):
        hdr = {"origin": origin}
        r = httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT, headers=hdr, timeout=10)
        assert "cross-site" in _openai_error(r, 403, "permission_error")
        r = httpx.post(f"{proxy.url}/v1/messages", json=MESSAGES, headers=hdr, timeout=10)
        _anthropic_error(r, 403, "permission_error")
        r = httpx.get(f"{proxy.url}/v1/models", headers=hdr, timeout=10)
        _openai_error(r, 403, "permission_error")
        # a simple (no-preflight) form post from another site cannot log the user out
        r = httpx.post(
            f"{proxy.url}/logout",
            data={"csrf": "guess"},
            headers={**hdr, "content-type": "application/x-www-form-urlencoded"},
            timeout=10,
        )
        assert r.status_code == 403
        r = httpx.options(f"{proxy.url}/v1/chat/completions", headers=hdr, timeout=10)
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    # a no-cors GET carries no Origin, but Sec-Fetch-Site
    r = httpx.get(f"{proxy.url}/v1/models", headers={"sec-fetch-site": "cross-site"}, timeout=10)
    _openai_error(r, 403, "permission_error")
    # nothing reached OCA, the login is intact
    assert proxy.sim.state()["counters"]["api_requests"] == before
    assert proxy.health()["logged_in"] is True
    # the proxy's own pages, SDKs (no Origin) and plain navigations still work
    own = {"origin": f"http://localhost:{proxy.port}"}
    r = httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT, headers=own, timeout=30)
    assert r.status_code == 200
    r = httpx.get(f"{proxy.url}/", headers={"origin": "https://evil.example"}, timeout=10)
    assert r.status_code == 200
    r = httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT, timeout=30)
    assert r.status_code == 200


def test_proxy_key_from_settings(sim: Sim, proxy_factory: Any) -> None:
    p = proxy_factory("keyed", settings={"proxy_api_key": "s3cret-key"})
    r = httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=30)
    assert "proxy key" in _openai_error(r, 401, "authentication_error")
    r = httpx.post(f"{p.url}/v1/messages", json=MESSAGES, timeout=30)
    _anthropic_error(r, 401, "authentication_error")
    r = httpx.post(
        f"{p.url}/v1/chat/completions", json=CHAT, headers={"x-api-key": "wrong"}, timeout=30
    )
    assert "does not match" in _openai_error(r, 401, "authentication_error")
    r = httpx.get(f"{p.url}/v1/models", headers={"authorization": "Bearer nope"}, timeout=30)
    _openai_error(r, 401, "authentication_error")
    # the real SDKs with the key as their API key
    o = openai.OpenAI(base_url=f"{p.url}/v1", api_key="s3cret-key", max_retries=0)
    assert o.chat.completions.create(**CHAT).choices[0].message.content  # type: ignore[call-overload]
    a = anthropic.Anthropic(base_url=p.url, api_key="s3cret-key", max_retries=0)
    assert a.messages.create(**MESSAGES).content  # type: ignore[call-overload]
    a2 = anthropic.Anthropic(base_url=p.url, auth_token="s3cret-key", max_retries=0)
    assert a2.messages.create(**MESSAGES).content  # type: ignore[call-overload]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{p.url}/v1", api_key="dummy", max_retries=0).models.list()
    # local pages stay usable from this machine's browser (it cannot send a key)
    assert httpx.get(f"{p.url}/health", timeout=10).status_code == 200
    assert "s3cret-key" not in p.log()
    # the key never goes to OCA
    for req in p.sim.state()["requests"]:
        assert "s3cret-key" not in json.dumps(req)


def test_proxy_key_option(sim: Sim, proxy_factory: Any) -> None:
    p = proxy_factory("keyopt", options={"oca_proxy_api_key": "opt-key"})
    r = httpx.post(f"{p.url}/v1/chat/completions", json=CHAT, timeout=30)
    assert r.status_code == 401
    r = httpx.post(
        f"{p.url}/v1/chat/completions",
        json=CHAT,
        headers={"authorization": "Bearer opt-key"},
        timeout=30,
    )
    assert r.status_code == 200


def _sim_tokens_in(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return [t for t in ("sim-at-", "sim-rt-") if t in text]


def test_no_token_in_log_pages_errors_or_saved_flows(sim: Sim, tmp_path: Path) -> None:
    flows = tmp_path / "flows.mitm"
    dead = f"http://127.0.0.1:{free_port()}/20250206/app/litellm"
    p = start_proxy(
        sim,
        tmp_path / "home",
        mitm_args=["-w", str(flows), "--flow-detail", "4"],
    )
    q = start_proxy(sim, tmp_path / "dead", options={"oca_base_url": dead})
    seen: list[str] = []
    try:
        for path, body in (
            ("/v1/chat/completions", {**CHAT, "stream": True}),
            ("/v1/chat/completions", CHAT),
            ("/v1/messages", MESSAGES),
            (
                "/v1/chat/completions",
                {**CHAT, "messages": [{"role": "user", "content": "SIM:error=401"}]},
            ),
            (
                "/v1/chat/completions",
                {**CHAT, "messages": [{"role": "user", "content": "SIM:cut"}], "stream": True},
            ),
            ("/v1/chat/completions", {"model": 3}),
        ):
            r = httpx.post(f"{p.url}{path}", json=body, timeout=30)
            seen.append(r.text + json.dumps(dict(r.headers)))
        r = httpx.post(f"{q.url}/v1/chat/completions", json=CHAT, timeout=30)
        assert r.status_code == 502
        seen.append(r.text)
        for path in ("/", "/health", "/logout", "/v1/models"):
            seen.append(httpx.get(f"{p.url}{path}", timeout=30).text)
        # the refresh token file: 0600 in a 0700 folder, also after a rotation
        assert stat.S_IMODE(p.token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(p.token_file.parent.stat().st_mode) == 0o700
    finally:
        p.stop()
        q.stop()
    for text in seen:
        assert not _sim_tokens_in(text), text
    assert not _sim_tokens_in(p.log()), p.log()[-3000:]
    assert "Bearer <redacted>" in p.log()  # flow-detail 4 shows the OCA request head
    assert not _sim_tokens_in(q.log())
    assert flows.stat().st_size > 0
    assert not _sim_tokens_in(flows.read_bytes())
    # and what really went to OCA was authenticated (the token went on the wire only)
    assert sim.state()["counters"]["api_requests"]


def start_mitmweb(sim: Sim, home: Path, web_port: int) -> Proxy:
    """A logged-in proxy under mitmweb, returned once its web UI answers too."""
    opts = {"web_port": str(web_port), "web_open_browser": "false", "web_password": "test-web-pw"}
    p = start_proxy(sim, home, options=opts, program="mitmweb")
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{web_port}/flows?token=test-web-pw", timeout=1)
            return p
        except httpx.HTTPError:
            time.sleep(0.2)
    p.stop()
    raise RuntimeError("mitmweb's UI did not start:\n" + p.log())


def test_no_token_in_mitmweb_even_while_the_request_is_open(sim: Sim, tmp_path: Path) -> None:
    web_port = free_port()
    p = start_mitmweb(sim, tmp_path / "web", web_port)
    web = f"http://127.0.0.1:{web_port}"
    try:
        slow = {**CHAT, "messages": [{"role": "user", "content": "SIM:ttft=2500"}]}
        result: dict[str, Any] = {}
        t = threading.Thread(
            target=lambda: result.update(
                r=httpx.post(f"{p.url}/v1/chat/completions", json=slow, timeout=30)
            )
        )
        t.start()
        time.sleep(1.2)  # OCA has the request and has not answered yet
        during = httpx.get(f"{web}/flows?token=test-web-pw", timeout=10)
        dump_during = httpx.get(f"{web}/flows/dump?token=test-web-pw", timeout=10)
        t.join(30)
        assert result["r"].status_code == 200
        httpx.post(f"{p.url}/v1/messages", json=MESSAGES, timeout=30)
        after = httpx.get(f"{web}/flows?token=test-web-pw", timeout=10)
        dump_after = httpx.get(f"{web}/flows/dump?token=test-web-pw", timeout=10)
    finally:
        p.stop()
    assert during.status_code == 200 and "/chat/completions" in during.text
    for resp in (during, dump_during, after, dump_after):
        assert not _sim_tokens_in(resp.content)
    assert "<redacted>" in during.text
    assert not _sim_tokens_in(p.log())


# -- other machines ----------------------------------------------------------------------
# Run inside `unshare -n`: the namespace has only its own loopback device, to which a
# second (non-loopback) address is added, so "another machine" never leaves this host.

OTHER = "198.51.100.7"

NETNS_SCRIPT = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    from pathlib import Path
    import httpx
    sys.path.insert(0, sys.argv[1])
    out, homes = Path(sys.argv[2]), Path(sys.argv[3])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", "OTHER/32", "dev", "lo"], check=True)
    from conftest import BIN, SCRIPT, free_port, start_sim
    sim = start_sim()
    sim_port = sim.url.rsplit(":", 1)[1]
    res = {}
    chat = {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}

    def launch(name, listen, *sets, wait=True):
        home = homes / name
        token = home / ".oca" / "refresh_token.json"
        token.parent.mkdir(parents=True)
        token.write_text(json.dumps({"refresh_token": sim.mint()["refresh_token"]}))
        port = free_port()
        args = [str(BIN / "mitmdump"), "-s", str(SCRIPT), "--mode",
                f"reverse:http://127.0.0.1:{sim_port}@{listen}{port}",
                "--set", f"oca_idcs_url={sim.url}", "--set", "oca_open_browser=false"]
        for s in sets:
            args += ["--set", s]
        env = {**os.environ, "HOME": str(home)}
        if not wait:
            done = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
            return done.returncode, done.stdout + done.stderr
        proc = subprocess.Popen(args, stdout=open(home / "log", "wb"), stderr=subprocess.STDOUT,
                                env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        return proc, port

    def listening(port):
        text = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        return sorted({l.split()[3] for l in text.splitlines() if l.split()[3].endswith(f":{port}")})

    def via_other(url, **kw):
        tr = httpx.HTTPTransport(local_address="OTHER")
        try:
            with httpx.Client(transport=tr, timeout=10) as c:
                r = c.request(kw.pop("method", "GET"), url, **kw)
                return [r.status_code, r.text[:300]]
        except httpx.HTTPError as e:
            return ["error", type(e).__name__]

    try:
        # 1. every interface without a key: refuses to start
        res["nokey"] = launch("nokey", "0.0.0.0:", wait=False)
        res["nokey_listen_host"] = launch("nokey2", "", "listen_host=0.0.0.0", wait=False)
        # 2. no address given: mitmproxy would take every interface, oca-proxy takes loopback
        proc, port = launch("default", "")
        res["default_listen"] = listening(port)
        res["default_other_peer"] = via_other(f"http://127.0.0.1:{port}/health")
        res["default_local"] = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code
        proc.terminate()
        proc.wait(10)
        # 3. every interface with a key: other machines get in with the key only
        proc, port = launch("keyed", "0.0.0.0:", "oca_proxy_api_key=netkey")
        base = f"http://OTHER:{port}"
        res["open_listen"] = listening(port)
        res["open_nokey"] = via_other(f"{base}/v1/chat/completions", method="POST", json=chat)
        res["open_badkey"] = via_other(f"{base}/v1/chat/completions", method="POST", json=chat,
                                       headers={"x-api-key": "nope"})
        res["open_key"] = via_other(f"{base}/v1/chat/completions", method="POST", json=chat,
                                    headers={"x-api-key": "netkey"})
        res["open_health_nokey"] = via_other(f"{base}/health")
        res["open_health_key"] = via_other(f"{base}/health",
                                           headers={"authorization": "Bearer netkey"})
        local = f"http://127.0.0.1:{port}"
        res["open_local_health"] = httpx.get(f"{local}/health", timeout=10).status_code
        res["open_local_api_nokey"] = httpx.post(f"{local}/v1/chat/completions", json=chat,
                                                 timeout=10).status_code
        res["open_local_rebind"] = httpx.get(f"{local}/health", timeout=10,
                                             headers={"host": f"evil.example:{port}"}).status_code
        proc.terminate()
        proc.wait(10)
    finally:
        sim.proc.terminate()
        out.write_text(json.dumps(res))
    """
).replace("OTHER", OTHER)


@pytest.mark.skipif(not can_isolate(), reason="needs unshare -n (network namespaces)")
def test_other_machines(tmp_path: Path) -> None:
    script = tmp_path / "netns.py"
    script.write_text(NETNS_SCRIPT)
    out = tmp_path / "out.json"
    home = tmp_path / "homes"
    home.mkdir()
    done = subprocess.run(
        ["unshare", "-n", sys.executable, str(script), str(ROOT / "tests"), str(out), str(home)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert out.exists(), done.stdout + done.stderr
    res = json.loads(out.read_text())
    for key in ("nokey", "nokey_listen_host"):
        code, text = res[key]
        assert code != 0 and "refuses to listen on 0.0.0.0" in text, text
    assert res["default_listen"] and all(a.startswith("127.0.0.1:") for a in res["default_listen"])
    assert res["default_other_peer"][0] in ("error", 403), res
    assert res["default_local"] == 200
    assert res["open_listen"] and not any(a.startswith("127.0.0.1:") for a in res["open_listen"])
    assert res["open_nokey"][0] == 401 and "proxy key" in res["open_nokey"][1]
    assert res["open_badkey"][0] == 401
    assert res["open_key"][0] == 200, res["open_key"]
    assert res["open_health_nokey"][0] == 401
    assert res["open_health_key"][0] == 200
    assert res["open_local_health"] == 200
    assert res["open_local_api_nokey"] == 401
    assert res["open_local_rebind"] == 403
