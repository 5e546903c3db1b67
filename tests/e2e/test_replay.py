"""Trying calls again (issue 15): mitmweb's own replay of a forwarded call (fresh token, no
second translation), `oca.replay` through the whole pipeline, the dashboard's Replay button,
reproduction files without secrets and `oca-proxy replay FILE`; all through real mitmweb /
mitmdump processes in front of the simulator."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
from conftest import PREFIX, ROOT, Proxy, free_port, no_token_in

SETTINGS = {
    "model_mapping": {"claude-sonnet-4-6": "oca/gpt-4.1"},
    "default_model": "oca/gpt-4.1",
}


class Web:
    """mitmweb's REST API, as its own page uses it (auth token, then the XSRF cookie)."""

    def __init__(self, port: int) -> None:
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        self.client.get("/", params={"token": "pw"})
        # Tornado compares the XSRF header with the cookie (mitmweb's page sets both).
        self.xsrf = "oca-test-xsrf"
        self.client.cookies.set("_mitmproxy_xsrf", self.xsrf)

    def flows(self) -> list[dict[str, Any]]:
        return self.client.get("/flows").json()

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return self.client.post(path, json=body, headers={"X-XSRFToken": self.xsrf})

    def put(self, path: str, body: Any) -> httpx.Response:
        return self.client.put(path, json=body, headers={"X-XSRFToken": self.xsrf})

    def command(self, name: str, *args: str) -> Any:
        r = self.post(f"/commands/{name}", {"arguments": list(args)})
        r.raise_for_status()
        return r.json()

    def body(self, fid: str, part: str = "response") -> str:
        return self.client.get(f"/flows/{fid}/{part}/content.data").text

    def wait(self, pred: Any, timeout: float = 20) -> dict[str, Any]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for f in self.flows():
                if pred(f):
                    return f
            time.sleep(0.2)
        raise AssertionError("no such flow in mitmweb")


def chat_text(sse: str) -> str:
    """The text of a chat completion stream."""
    from oca_addon.mitm import contentview

    assembled = contentview.assemble(sse.encode())
    return assembled.text if assembled is not None else ""


def _mitmweb(proxy_factory: Any, **kw: Any) -> tuple[Proxy, Web]:
    web_port = free_port()
    options = {"web_port": str(web_port), "web_open_browser": "false", "web_password": "pw"}
    options.update(kw.pop("options", {}))
    proxy = proxy_factory(settings=SETTINGS, program="mitmweb", options=options, **kw)
    return proxy, Web(web_port)


def _api_flows(web: Web) -> list[dict[str, Any]]:
    """The API calls forwarded to OCA (not oca-proxy's own read of the model list)."""
    return [
        f
        for f in web.flows()
        if f["request"]["path"].startswith(PREFIX)
        and not f["request"]["path"].endswith("/v1/model/info")
    ]


def test_mitmweb_replay_of_a_forwarded_call_gets_a_fresh_token(proxy_factory: Any) -> None:
    proxy, web = _mitmweb(proxy_factory)
    oa = openai.OpenAI(base_url=proxy.url + "/v1", api_key="client-key-123", max_retries=0)
    oa.chat.completions.create(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "first"}]
    )
    (orig,) = _api_flows(web)
    fid = orig["id"]
    before = proxy.sim.state()

    assert web.post(f"/flows/{fid}/replay").status_code == 200
    done = web.wait(lambda f: f["id"] == fid and f["comment"].startswith("replay, as sent"))
    assert done["response"]["status_code"] == 200, done
    # OCA's own answer (chat chunks), not translated again; the Guard let it through.
    answer = web.body(fid)
    assert "chat.completion.chunk" in answer and "You said: first" in chat_text(answer)
    assert "forbidden_host" not in proxy.log()
    view = web.client.get(f"/flows/{fid}/response/content/auto.json").json()["text"]
    assert "what OCA answered the replay: 200" in view and "You said: first" in view
    after = proxy.sim.state()
    assert after != before  # the simulator saw the call

    # Edited, then replayed: the edit goes to OCA as it is.
    oca_body = json.loads(web.body(fid, "request"))
    oca_body["messages"][-1]["content"] = "edited in mitmweb"
    r = web.put(f"/flows/{fid}", {"request": {"content": json.dumps(oca_body)}})
    assert r.status_code == 200, r.text
    assert web.post(f"/flows/{fid}/replay").status_code == 200
    deadline = time.time() + 15
    while "edited in mitmweb" not in chat_text(web.body(fid)) and time.time() < deadline:
        time.sleep(0.2)
    assert "You said: edited in mitmweb" in chat_text(web.body(fid))

    everything = json.dumps(web.flows()) + proxy.log()
    headers = dict(web.flows()[0]["request"]["headers"]) if web.flows() else {}
    assert no_token_in(everything, "sim-at-", "client-key-123"), "a token reached mitmweb"
    assert all(v == "Bearer <redacted>" for k, v in headers.items() if k.lower() == "authorization")


def test_oca_replay_command_runs_the_whole_pipeline_with_another_model(
    proxy_factory: Any,
) -> None:
    import anthropic

    proxy, web = _mitmweb(proxy_factory)
    an = anthropic.Anthropic(base_url=proxy.url, api_key="client-key-456", max_retries=0)
    with an.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=[{"role": "user", "content": "again please"}],
    ) as s:
        s.get_final_message()
    (orig,) = _api_flows(web)
    out = web.command("oca.replay", f"@{orig['id']}", "oca/gpt-5", "high")
    assert "error" not in out, out
    (new_id,) = out["value"]
    done = web.wait(lambda f: f["id"] == new_id and " · " in f["comment"])
    # A new flow, linked to the one it replays, through mapping + translation + streaming.
    assert done["comment"].startswith(f"replay of {orig['id']} · anthropic → chat · oca/gpt-5")
    assert done["response"]["status_code"] == 200
    text = web.client.get(f"/flows/{new_id}/response/content/auto.json").json()["text"]
    assert "Anthropic Messages stream" in text and "You said: again please" in text
    req_text = web.client.get(f"/flows/{new_id}/request/content/auto.json").json()["text"]
    assert '"reasoning_effort": "high"' in req_text and '"model": "oca/gpt-5"' in req_text
    assert len(_api_flows(web)) == 2  # the original is untouched
    assert no_token_in(json.dumps(web.flows()) + proxy.log(), "sim-at-", "client-key-456")

    # Not an API call: a clear error, no new flow.
    health = next(f for f in web.flows() if f["request"]["path"] == "/health")
    assert "not an API call" in web.command("oca.replay", f"@{health['id']}")["error"]


def _dashboard_csrf(proxy: Proxy) -> str:
    import re

    page = httpx.get(proxy.url + "/", timeout=10).text
    found = re.search(r"name=csrf-token content='([^']+)'", page)
    assert found
    return found.group(1)


def test_dashboard_replay_button_under_mitmdump(proxy_factory: Any) -> None:
    proxy = proxy_factory(settings=SETTINGS)
    oa = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
    oa.chat.completions.create(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "dash"}]
    )
    state = httpx.get(proxy.url + "/api/state", timeout=10).json()
    (row,) = state["recent"]
    assert row["flow_id"]
    url = proxy.url + "/api/replay"
    # The protections every dashboard write has: our CSRF token, our Origin, JSON.
    assert httpx.post(url, json={"flow": row["flow_id"]}, timeout=10).status_code == 403
    csrf = _dashboard_csrf(proxy)
    evil = httpx.post(
        url,
        json={"flow": row["flow_id"]},
        headers={"x-csrf-token": csrf, "origin": "http://evil.example"},
        timeout=10,
    )
    assert evil.status_code == 403

    def calls() -> list[dict[str, Any]]:
        recent = httpx.get(proxy.url + "/api/state", timeout=10).json()["recent"]
        return [r for r in recent if r["path"].startswith("/v1/")]

    assert len(calls()) == 1  # the refused writes replayed nothing
    ok = httpx.post(
        url,
        json={"flow": row["flow_id"], "model": "oca/llama-4"},
        headers={"x-csrf-token": csrf, "origin": proxy.url},
        timeout=10,
    )
    assert ok.status_code == 200 and ok.json()["ok"], ok.text
    deadline = time.time() + 15
    while time.time() < deadline:
        recent = calls()
        if len(recent) == 2:
            break
        time.sleep(0.2)
    newest = recent[0]
    assert newest["replay_of"] == row["flow_id"] and newest["flow_id"] == ok.json()["flow"]
    assert newest["target_model"] == "oca/llama-4" and newest["status"] == 200
    deadline = time.time() + 5
    while "replay of " + row["flow_id"] not in proxy.log() and time.time() < deadline:
        time.sleep(0.1)  # the per-call line is logged in batches
    assert "replay of " + row["flow_id"] in proxy.log()
    unknown = httpx.post(url, json={"flow": "nope"}, headers={"x-csrf-token": csrf}, timeout=10)
    assert unknown.status_code == 400 and "no longer kept" in unknown.json()["error"]


def test_repro_file_has_no_secrets_and_replays(proxy_factory: Any, tmp_path: Path) -> None:
    key = "proxy-key-secret-789"
    proxy, web = _mitmweb(proxy_factory, options={"oca_proxy_api_key": key})
    oa = openai.OpenAI(
        base_url=proxy.url + "/v1",
        api_key=key,
        max_retries=0,
        default_headers={
            "cookie": "session=cookie-secret",
            "x-api-key": key,
            # Issue 23, item 3: credentials under names no fixed list knew
            "x-goog-api-key": "goog-secret",
            "openai-api-key": "openai-secret",
            "anthropic-api-key": "anthropic-secret",
            "x-auth-token": "auth-token-secret",
        },
        default_query={"api_key": "query-secret"},
    )
    oa.chat.completions.create(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "repro me"}]
    )
    (orig,) = _api_flows(web)
    path = tmp_path / "call.json"
    assert "error" not in web.command("oca.repro", f"@{orig['id']}", str(path))
    text = path.read_text()
    others = ("goog-secret", "openai-secret", "anthropic-secret", "auth-token-secret")
    assert no_token_in(text, key, "cookie-secret", "sim-at-", "sim-rt-", *others), text
    assert no_token_in(text, "query-secret") and "api_key=REDACTED" in text, text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # whatever the umask
    doc = json.loads(text)
    assert doc["request"]["path"] == "/v1/chat/completions?api_key=REDACTED"
    assert doc["request"]["body"]["messages"][0]["content"] == "repro me"
    assert doc["response"]["status_code"] == 200 and "repro me" in chat_text(
        doc["response"]["body"]
    )
    assert doc["curl"].startswith(
        f"curl -sS -N -X POST '{proxy.url}/v1/chat/completions?api_key=REDACTED'"
    )
    headers = {k.lower() for k, _ in doc["request"]["headers"]}
    assert not headers & {"authorization", "x-api-key", "cookie"}

    # The curl line works against the proxy (with the key it needs added).
    curl = subprocess.run(
        doc["curl"] + f" -H 'x-api-key: {key}'",
        shell=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert '"You said: repro me"' in curl.stdout or "You said: repro me" in curl.stdout

    # oca-proxy replay FILE: sends it again, with another model, and prints the answer.
    run = subprocess.run(
        [sys.executable, "-m", "oca_addon.cli.main", "replay", str(path), "--model", "oca/llama-4",
         "--proxy", proxy.url, "--key", key],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "200" in run.stdout and "You said: repro me" in run.stdout
    assert "oca/llama-4" in run.stdout


def test_replay_edited_to_another_host_gets_no_token_and_clients_still_meet_the_guard(
    proxy_factory: Any,
) -> None:
    import http.server
    import threading

    seen: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append(dict(self.headers.items()))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        proxy, web = _mitmweb(proxy_factory)
        oa = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
        oa.chat.completions.create(model="oca/gpt-4.1", messages=[{"role": "user", "content": "x"}])
        (orig,) = _api_flows(web)
        fid = orig["id"]
        r = web.put(f"/flows/{fid}", {"request": {"port": other.server_address[1]}})
        assert r.status_code == 200, r.text
        assert web.post(f"/flows/{fid}/replay").status_code == 200
        deadline = time.time() + 15
        while not seen and time.time() < deadline:
            time.sleep(0.1)
        assert seen, "the replay never arrived"
        auth = {k.lower(): v for k, v in seen[0].items()}.get("authorization", "")
        assert "sim-at-" not in auth and auth in ("", "Bearer <redacted>"), auth
    finally:
        other.shutdown()

    # A network client naming OCA's host (what a replay carries) is still refused.
    sim_host = proxy.sim.url.split("//", 1)[1]
    refused = httpx.post(
        proxy.url + "/v1/chat/completions",
        headers={"host": sim_host},
        json={"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "x"}]},
        timeout=10,
    )
    assert refused.status_code == 403 and "forbidden_host" in refused.text


def test_mitmdump_client_replay_of_saved_flows(proxy_factory: Any, tmp_path: Path) -> None:
    """`mitmdump -C flows.mitm`: saved calls (their token redacted) go to OCA again."""
    from test_e2e_traffic import read_flows

    saved, out = tmp_path / "saved.mitm", tmp_path / "replayed.mitm"
    first = proxy_factory("first", settings=SETTINGS, mitm_args=["-w", str(saved)])
    oa = openai.OpenAI(base_url=first.url + "/v1", api_key="k", max_retries=0)
    oa.chat.completions.create(
        model="claude-sonnet-4-6", stream=True, messages=[{"role": "user", "content": "saved"}]
    ).close()
    first.stop()
    (flow,) = [f for f in read_flows(saved) if f.request.path == PREFIX + "/chat/completions"]
    assert flow.request.headers["authorization"] == "Bearer <redacted>"

    second = proxy_factory(
        "second",
        settings=SETTINGS,
        mitm_args=["-C", str(saved), "--set", "keepserving=true", "-w", str(out)],
    )
    deadline = time.time() + 20
    while "replay, as sent to OCA" not in second.log() and time.time() < deadline:
        time.sleep(0.2)
    second.stop()
    (again,) = [f for f in read_flows(out) if f.request.path == PREFIX + "/chat/completions"]
    assert again.is_replay == "request" and again.response is not None
    assert again.response.status_code == 200, again.response.text
    assert "You said: saved" in chat_text(again.response.text or "")
    assert again.comment.startswith("replay, as sent to OCA · chat · oca/gpt-4.1")
    assert no_token_in(out.read_bytes().decode("latin-1") + second.log(), "sim-at-")
