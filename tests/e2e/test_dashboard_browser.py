"""The dashboard in a real browser: headless Chromium (Debian's `chromium` package) driven
from Python over the DevTools protocol.

The driver is the few lines below: Chromium's `--remote-debugging-pipe` speaks the DevTools
protocol as NUL-separated JSON on file descriptors 3 and 4, so no chromedriver, selenium or
websocket library is needed and there is no driver/browser version to keep in step.
Clicks and typing go through `Input.dispatchMouseEvent` / `Input.insertText`, as a person's.

Set OCA_DASHBOARD_SCREENSHOT=1 to also write docs/dashboard.png (the README's picture).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT, Proxy, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
]
MAPPING = {
    "claude-sonnet-4-6": "oca/gpt-4.1",
    "claude-*haiku*": "oca/llama-4",
    "gpt-5*": {"target": "oca/gpt-5", "reasoning_effort": "medium"},
}


class CdpError(RuntimeError):
    pass


class Chromium:
    """Just enough of the DevTools protocol: one page, evaluate, click, type, screenshot."""

    def __init__(self, profile: Path, width: int = 1440, height: int = 1000) -> None:
        assert CHROMIUM
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        args = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        self.log_path = profile.parent / "chromium.log"
        with self.log_path.open("wb") as log:
            # fd 3: commands to Chromium, fd 4: its answers and events (bash, not sh: dash
            # cannot redirect from descriptors above 9).
            self.proc = subprocess.Popen(
                [
                    shutil.which("bash") or "/bin/bash",
                    "-c",
                    f'exec "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}',
                    "chromium",
                    *args,
                ],
                pass_fds=(to_chrome_r, from_chrome_w),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.errors: list[str] = []  # uncaught page exceptions
        self.console: list[str] = []
        self._next = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session: str | None = None
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, False
        )
        self.session = attached["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._r, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._answers[-1] = {"error": {"message": "Chromium went away"}}
                    self._cond.notify_all()
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._answers[msg["id"]] = msg
                        self._cond.notify_all()
                elif msg.get("method") == "Runtime.exceptionThrown":
                    details = msg["params"]["exceptionDetails"]
                    self.errors.append(
                        str(details.get("exception", {}).get("description") or details)
                    )
                elif msg.get("method") == "Runtime.consoleAPICalled":
                    args = msg["params"].get("args") or []
                    self.console.append(
                        " ".join(str(a.get("value", a.get("description"))) for a in args)
                    )

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: bool = True
    ) -> dict[str, Any]:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + 30
        with self._cond:
            while self._next not in self._answers and -1 not in self._answers:
                left = deadline - time.time()
                if left <= 0:
                    raise CdpError(f"{method}: no answer from Chromium")
                self._cond.wait(left)
            answer = self._answers.pop(self._next, None) or self._answers[-1]
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    def eval(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20) -> Any:
        deadline = time.time() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.time() > deadline:
                raise AssertionError(
                    f"timed out waiting for {expression}; page errors: {self.errors}, "
                    f"console: {self.console[-5:]}, url: {self.eval('location.href')}"
                )
            time.sleep(0.1)

    def goto(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete' && document.body.dataset.ready === '1'")

    def click(self, selector: str) -> None:
        box = self.wait_for(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " if (!el) return null; el.scrollIntoView({block: 'center'});"
            " const r = el.getBoundingClientRect(); return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()"
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
            )

    def type(self, selector: str, text: str) -> None:
        """Click into a field, select what is there, type over it."""
        self.click(selector)
        self.eval(f"document.querySelector({json.dumps(selector)}).select()")
        self.send("Input.insertText", {"text": text})

    def choose(self, selector: str, value: str) -> None:
        """Pick an option of a <select> (native option popups do not exist headless)."""
        self.eval(
            f"(() => {{ const s = document.querySelector({json.dumps(selector)});"
            f" s.focus(); s.value = {json.dumps(value)};"
            " s.dispatchEvent(new Event('change', {bubbles: true})); })()"
        )

    def text(self, selector: str) -> str:
        return str(self.eval(f"document.querySelector({json.dumps(selector)})?.innerText ?? ''"))

    def screenshot(self, path: Path) -> Path:
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = self.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": size["width"],
                    "height": size["height"],
                    "scale": 1,
                },
            },
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        with contextlib.suppress(CdpError):
            self.send("Browser.close", session=False)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self._w)
        os.close(self._r)


@pytest.fixture
def browser(tmp_path: Path) -> Any:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (scripts/install-test-tools installs it)")
    b = Chromium(tmp_path / "chromium-profile")
    yield b
    b.close()


def chat(proxy: Proxy, model: str, text: str = "hello", **extra: Any) -> httpx.Response:
    r = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": text}], **extra},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r


def test_dashboard_in_chromium(proxy_factory: Any, browser: Chromium, tmp_path: Path) -> None:
    web_port = free_port()
    proxy: Proxy = proxy_factory(
        settings={"model_mapping": MAPPING, "default_model": "oca/gpt-4.1"},
        program="mitmweb",
        options={"web_port": str(web_port), "web_open_browser": "false", "web_password": "pw"},
    )
    # Some traffic first, so there is something to show.
    chat(proxy, "claude-sonnet-4-6", "hi there")
    chat(proxy, "gpt-5-codex", "think SIM:reasoning", stream=True)
    httpx.post(
        f"{proxy.url}/v1/messages",
        json={
            "model": "claude-haiku-4-5",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "yo"}],
        },
        headers={"anthropic-version": "2023-06-01"},
        timeout=30,
    )

    browser.goto(proxy.url + "/")
    assert "Logged in" in browser.text("#login-state")
    models = browser.text("#models")
    for name in ("oca/gpt-4.1", "oca/gpt-5", "oca/llama-4"):
        assert name in models
    assert "1M" in models  # gpt-4.1's context window, compact
    assert "responses" in models and "chat" in models
    assert browser.eval("document.querySelectorAll('#recent tbody tr').length") >= 3
    assert "claude-haiku-4-5" in browser.text("#recent")
    assert "anthropic → chat" in browser.text("#recent")
    assert browser.eval("document.querySelector('#mitmweb-link').href") == (
        f"http://127.0.0.1:{web_port}/"
    )
    assert f"localhost:{proxy.port}" in browser.text("#setup")
    browser.click("[data-tab=codex]")
    assert f'base_url = "http://localhost:{proxy.port}/v1"' in browser.text("#setup")
    browser.click("[data-tab=curl]")
    assert f"http://localhost:{proxy.port}/v1/chat/completions" in browser.text("#setup")
    assert "Tokens per model" in browser.text("#totals-card")

    # Edit the mapping like a person: retarget one name, add a new one with an effort.
    browser.type("#mapping-table tr[data-row='0'] .map-target", "oca/llama-4")
    browser.click("#add-mapping")
    browser.type("#mapping-table tr[data-row='3'] .map-name", "team-model")
    browser.type("#mapping-table tr[data-row='3'] .map-target", "oca/gpt-5")
    browser.choose("#mapping-table tr[data-row='3'] select", "high")
    browser.type("#try-name", "team-model")
    assert "oca/gpt-5" in browser.text("#try-result") and "high" in browser.text("#try-result")
    assert "Unsaved" in browser.text("#mapping-status")
    browser.click("#save-mapping")
    browser.wait_for("document.querySelector('#mapping-status').innerText.includes('Saved')")

    saved = json.loads(proxy.settings_file.read_text())
    assert saved["model_mapping"]["claude-sonnet-4-6"] == "oca/llama-4"
    assert saved["model_mapping"]["team-model"] == {
        "target": "oca/gpt-5",
        "reasoning_effort": "high",
    }
    assert saved["model_mapping"]["gpt-5*"] == {"target": "oca/gpt-5", "reasoning_effort": "medium"}
    assert list(saved["model_mapping"]) == [*MAPPING, "team-model"]  # order kept
    assert saved["default_model"] == "oca/gpt-4.1"

    # The very next request uses the new mapping.
    chat(proxy, "team-model", "after the edit")
    sent = proxy.sim.state()["requests"][-1]["body"]
    assert sent["model"] == "oca/gpt-5" and sent["reasoning_effort"] == "high"
    chat(proxy, "claude-sonnet-4-6")
    assert proxy.sim.state()["requests"][-1]["body"]["model"] == "oca/llama-4"

    # The open page picks the new calls up by itself (long poll), newest first.
    browser.wait_for(
        "(document.querySelector('#recent tbody tr:nth-child(2)')?.innerText || '').includes('team-model')"
    )
    assert "oca/llama-4" in browser.text("#recent tbody tr:first-child")
    # Replay the newest call from its row: a new call, linked to it, shows up on top.
    rows = browser.eval("document.querySelectorAll('#recent tbody tr').length")

    def llama_calls() -> list[Any]:
        requests = proxy.sim.state()["requests"]
        return [r for r in requests if (r["body"] or {}).get("model") == "oca/llama-4"]

    before = len(llama_calls())
    browser.click("#recent tbody tr:first-child button.replay")
    browser.wait_for(
        "(document.querySelector('#replay-status')?.innerText || '').includes('Replaying')"
    )
    browser.wait_for(f"document.querySelectorAll('#recent tbody tr').length > {rows}")
    assert "oca/llama-4" in browser.text("#recent tbody tr:first-child")
    assert len(llama_calls()) == before + 1
    browser.click("[data-tab=claude]")
    assert f"ANTHROPIC_BASE_URL=http://localhost:{proxy.port}" in browser.text("#setup")
    browser.eval("window.scrollTo(0, 0)")
    shot = browser.screenshot(tmp_path / "dashboard.png")
    print(f"\ndashboard screenshot: {shot}")
    assert shot.stat().st_size > 20_000
    if os.environ.get("OCA_DASHBOARD_SCREENSHOT"):
        shutil.copy(shot, ROOT / "docs" / "dashboard.png")


def test_dashboard_logged_out_offers_login(proxy_factory: Any, browser: Chromium) -> None:
    proxy: Proxy = proxy_factory(logged_in=False)
    browser.goto(proxy.url + "/")
    assert "Not logged in" in browser.text("#login-state")
    assert browser.eval("!!document.querySelector('.banner a[href=\"/login\"]')")
    # The simulator is not on Oracle's domains: said plainly (issue 23, item 1).
    notices = browser.eval(
        "[...document.querySelectorAll('.upstream-notice')].map(e => e.innerText)"
    )
    assert len(notices) == 2 and all("not Oracle's" in n for n in notices), notices
    assert "your refresh token (the OCA login) goes there" in notices[1]
    assert "Log in to see OCA's models" in browser.text("#models-card")
    assert browser.eval("document.querySelector('#mitmweb-link')") is None  # mitmdump: no link


# -- the JSON API behind the page (no browser needed) -------------------------------------


def test_settings_writes_need_the_csrf_token_and_our_origin(proxy_factory: Any) -> None:
    proxy: Proxy = proxy_factory(settings={"model_mapping": MAPPING})
    before = proxy.settings_file.read_text()
    page = httpx.get(proxy.url + "/", timeout=10)
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    csrf = page.text.split("name=csrf-token content='", 1)[1].split("'", 1)[0]
    body = {"default_model": "oca/gpt-5", "model_mapping": [{"name": "x", "target": "oca/gpt-5"}]}
    url = proxy.url + "/api/settings"

    r = httpx.post(url, json=body, timeout=10)  # no token
    assert r.status_code == 403 and "CSRF" in r.json()["error"]
    r = httpx.post(url, json=body, headers={"x-csrf-token": "guess"}, timeout=10)
    assert r.status_code == 403
    r = httpx.post(
        url, json=body, headers={"x-csrf-token": csrf, "origin": "https://evil.example"}, timeout=10
    )
    assert r.status_code == 403
    r = httpx.post(  # a form post cannot send JSON
        url,
        content=json.dumps(body),
        headers={"x-csrf-token": csrf, "content-type": "text/plain"},
        timeout=10,
    )
    assert r.status_code == 403
    assert proxy.settings_file.read_text() == before

    r = httpx.post(
        url,
        json={**body, "model_mapping": [{"name": "", "target": "oca/gpt-5"}]},
        headers={"x-csrf-token": csrf},
        timeout=10,
    )
    assert r.status_code == 400 and "which client model name" in r.json()["error"]
    r = httpx.post(
        url,
        json={
            **body,
            "model_mapping": [{"name": "x", "target": "oca/gpt-5", "reasoning_effort": "max"}],
        },
        headers={"x-csrf-token": csrf},
        timeout=10,
    )
    assert r.status_code == 400 and "reasoning effort" in r.json()["error"]
    assert proxy.settings_file.read_text() == before

    r = httpx.post(
        url,
        json=body,
        headers={"x-csrf-token": csrf, "origin": f"http://127.0.0.1:{proxy.port}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True
    saved = json.loads(proxy.settings_file.read_text())
    assert saved == {"model_mapping": {"x": "oca/gpt-5"}, "default_model": "oca/gpt-5"}
    assert httpx.get(url, timeout=10).json()["model_mapping"][0]["name"] == "x"


def test_state_api_long_polls_and_never_holds_a_token(proxy_factory: Any) -> None:
    proxy: Proxy = proxy_factory()
    state = httpx.get(proxy.url + "/api/state", timeout=10).json()
    assert state["login"]["logged_in"] is True
    assert any(m["name"] == "oca/gpt-4.1" for m in state["models"])
    started = time.time()
    waiter: dict[str, Any] = {}

    def wait() -> None:
        r = httpx.get(proxy.url + f"/api/state?after={state['seq']}", timeout=40)
        waiter["state"] = r.json()
        waiter["after"] = time.time() - started

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(1.0)
    assert t.is_alive()  # nothing happened yet: the poll waits
    chat(proxy, "oca/gpt-4.1")
    t.join(30)
    # The call's token refresh is a change too; follow the long-poll until the call is listed.
    for _ in range(5):
        if waiter["state"]["recent"]:
            break
        seq = waiter["state"]["seq"]
        waiter["state"] = httpx.get(proxy.url + f"/api/state?after={seq}", timeout=40).json()
    assert waiter["state"]["recent"][0]["target_model"] == "oca/gpt-4.1"
    assert waiter["after"] < 15
    rt = json.loads(proxy.token_file.read_text())["refresh_token"]
    assert rt not in json.dumps(waiter["state"])
    assert "Bearer" not in json.dumps(waiter["state"])


def test_learned_from_oca_and_forget(proxy_factory: Any, browser: Chromium) -> None:
    """A refusal OCA explained shows under "Learned from OCA"; its Forget button (the page's
    CSRF token) forgets it, and the call's row says it was retried."""
    from conftest import start_sim

    sim = start_sim()
    try:
        sim.config(refusals={"oca/gpt-4.1": {"params": ["temperature"]}})
        proxy: Proxy = proxy_factory(
            sim=sim, settings={"model_mapping": MAPPING, "default_model": "oca/gpt-4.1"}
        )
        chat(proxy, "oca/gpt-4.1", "hi", temperature=0.3)
        browser.goto(proxy.url + "/")
        learned = browser.text("#learned-card")
        assert "oca/gpt-4.1" in learned and "temperature" in learned, learned
        assert "retried" in browser.text("#recent")
        browser.click("#learned-card button.forget")
        browser.wait_for("document.querySelector('#learned-empty') !== null")
        assert "Forgotten (1)" in browser.text("#learned-status")
        assert httpx.get(f"{proxy.url}/health", timeout=10).json()["learned"] == []
        assert not browser.errors, browser.errors
    finally:
        sim.proc.terminate()
        sim.proc.wait(10)
