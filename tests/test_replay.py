"""Trying calls again (issue 15): mitmweb's own replay of a forwarded call (fresh token, no
second translation), `oca.replay` through the whole pipeline, the dashboard's Replay button,
reproduction files without secrets and `oca-proxy replay FILE`; all through real mitmweb /
mitmdump processes in front of the simulator."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import PREFIX, ROOT, Proxy, free_port, no_token_in

SETTINGS = {
    "model_mapping": {"claude-sonnet-4-5": "oca/gpt-4.1"},
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
    from oca_addon import contentview

    assembled = contentview.assemble(sse.encode())
    return assembled.text if assembled is not None else ""


def _mitmweb(proxy_factory: Any, **kw: Any) -> tuple[Proxy, Web]:
    web_port = free_port()
    options = {"web_port": str(web_port), "web_open_browser": "false", "web_password": "pw"}
    options.update(kw.pop("options", {}))
    proxy = proxy_factory(settings=SETTINGS, program="mitmweb", options=options, **kw)
    return proxy, Web(web_port)


def _api_flows(web: Web) -> list[dict[str, Any]]:
    return [f for f in web.flows() if f["request"]["path"].startswith(PREFIX)]


def test_mitmweb_replay_of_a_forwarded_call_gets_a_fresh_token(proxy_factory: Any) -> None:
    proxy, web = _mitmweb(proxy_factory)
    oa = openai.OpenAI(base_url=proxy.url + "/v1", api_key="client-key-123", max_retries=0)
    oa.chat.completions.create(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "first"}])
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
    assert all(
        v == "Bearer <redacted>" for k, v in headers.items() if k.lower() == "authorization"
    )
