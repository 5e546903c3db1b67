"""Claude Code itself (`claude -p`) against mitmdump + the simulator, inside a network
namespace where only loopback exists (tests/e2e/isolated.py).

Claude Code is set up the way the README says: `examples/claude-code-settings.json` as its
settings.json (its URL pointed at the relay below), Claude model names mapped by pattern in the proxy's
settings. Between Claude Code and the proxy sits a small recording relay (this file, run
as a script), so the test sees every request Claude Code made and the status it got.

The prompt scripts the simulator: the model calls Bash with `echo cc-sim-ok-7`, Claude Code
runs it and sends the result back, the model answers `Tool result received: cc-sim-ok-7`.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from isolated import run_isolated, tool

from oca_addon.translate import anthropic
from oca_addon.translate.anthropic import anthropic_to_chat

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SETTINGS = ROOT / "examples" / "claude-code-settings.json"
CLAUDE = tool("claude")

# No spaces inside SIM:args (a directive ends at whitespace): \u0020 is one, once JSON-decoded.
BASH_PROMPT = (
    "Run this: SIM:tool=Bash "
    'SIM:args={"command":"echo\\u0020cc-sim-ok-7","description":"Print\\u0020a\\u0020marker"}'
)
AGENT_PROMPT = (
    "Delegate: SIM:tool=Agent "
    'SIM:args={"description":"greet","prompt":"say\\u0020hello","subagent_type":"general-purpose","model":"haiku"}'
)
NO_NETWORK = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
}

pytestmark = pytest.mark.skipif(
    CLAUDE is None, reason="Claude Code is not installed (run scripts/install-test-tools)"
)


@dataclass
class Run:
    returncode: int
    output: dict[str, Any]  # claude's --output-format json result
    stdout: str
    stderr: str
    exchanges: list[dict[str, Any]]  # what Claude Code sent and the status it got
    upstream: list[dict[str, Any]]  # model calls the simulator received
    proxy_log: str

    def explain(self) -> str:
        lines = [f"exit {self.returncode}", self.stdout[-2000:], self.stderr[-2000:]]
        lines += [f"{e['method']} {e['path']} -> {e['status']}" for e in self.exchanges]
        lines.append(self.proxy_log[-3000:])
        return "\n".join(lines)

    def model_calls(self) -> list[dict[str, Any]]:
        return [e for e in self.exchanges if e["path"].split("?")[0] == "/v1/messages"]


def run_claude(
    tmp_path: Path,
    prompt: str,
    mapping: dict[str, Any],
    *args: str,
    timeout: float = 110,
    sim_config: dict[str, Any] | None = None,
) -> Run:
    home = tmp_path / "home"
    config = home / ".claude"
    config.mkdir(parents=True)
    # The example settings, pointed at the relay (which forwards to the proxy).
    settings = EXAMPLE_SETTINGS.read_text().replace("http://localhost:8669", "{RELAY}")
    (config / "settings.json").write_text(settings)
    record = tmp_path / "exchanges.json"
    env = {
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(config),
        "ANTHROPIC_BASE_URL": "{RELAY}",
        "ANTHROPIC_API_KEY": "dummy",
        **NO_NETWORK,
    }
    client = [
        sys.executable,
        __file__,
        "--relay",
        "{PROXY}",
        str(record),
        str(config / "settings.json"),
        "--",
        str(CLAUDE),
        "-p",
        prompt,
        "--output-format",
        "json",
        *args,
    ]
    result = run_isolated(
        client,
        settings={"model_mapping": mapping, "default_model": "oca/gpt-4.1"},
        env=env,
        timeout=timeout,
        sim_config=sim_config,
    )
    stdout = result.get("stdout") or ""
    try:
        output = json.loads(stdout)
    except ValueError:
        output = {}
    upstream = [
        r
        for r in result["sim"]["requests"]
        if r["method"] == "POST"
        and r["path"].endswith(("/chat/completions", "/v1/messages", "/responses"))
    ]
    return Run(
        returncode=result["returncode"],
        output=output if isinstance(output, dict) else {},
        stdout=stdout,
        stderr=result.get("stderr") or "",
        exchanges=json.loads(record.read_text()) if record.exists() else [],
        upstream=upstream,
        proxy_log=result["proxy_log"],
    )


def check_everything_succeeded(run: Run) -> None:
    assert run.returncode == 0, run.explain()
    assert run.output.get("is_error") is False, run.explain()
    assert run.output.get("subtype") == "success", run.explain()
    # Every request Claude Code made (model calls and the rest) succeeded.
    failed = [e for e in run.exchanges if e["status"] >= 400]
    assert not failed, run.explain()
    for bad in ("Traceback", "Unexpected error", "Refused", "failed"):
        assert bad not in run.proxy_log, run.explain()
    assert not re.search(r"\] [45]\d\d [A-Z]+ /", run.proxy_log), run.explain()
    calls = run.model_calls()
    assert calls, run.explain()
    # Streamed, and never retried without streaming (Claude Code's fallback when a stream
    # breaks): one upstream call per model call.
    assert all(c["request"].get("stream") is True for c in calls), run.explain()
    assert len(run.upstream) == len(calls), run.explain()
    # Streams ended properly, never with an error event.
    for e in run.model_calls():
        if e["response_type"].startswith("text/event-stream"):
            assert "event: message_stop" in e["response_body"], run.explain()
            assert "event: error" not in e["response_body"], run.explain()


def tool_names(call: dict[str, Any]) -> list[str]:
    body = call["body"]
    return [t.get("name") or t["function"]["name"] for t in body.get("tools") or []]


def test_translated_model_runs_a_tool(tmp_path: Path) -> None:
    """Every Claude name -> oca/gpt-4.1 (no MESSAGES): Messages translated to chat and back."""
    run = run_claude(
        tmp_path,
        BASH_PROMPT,
        {"claude-*": "oca/gpt-4.1"},
        "--model",
        "sonnet",
        "--allowedTools",
        "Bash",
    )
    check_everything_succeeded(run)
    assert "Tool result received:" in run.output["result"], run.explain()
    assert "cc-sim-ok-7" in run.output["result"], run.explain()
    assert run.output["num_turns"] == 2

    calls = run.model_calls()
    assert len(calls) >= 2
    assert all(c["request"]["model"].startswith("claude-sonnet") for c in calls)
    assert all("?beta=true" in c["path"] for c in calls)
    # OCA saw chat requests, Claude Code's tools offered as functions.
    assert len(run.upstream) == len(calls)
    first, last = run.upstream[0], run.upstream[-1]
    assert all(u["path"].endswith("/chat/completions") for u in run.upstream)
    assert all(u["body"]["model"] == "oca/gpt-4.1" for u in run.upstream)
    assert {"Bash", "Read", "Edit", "Write"} <= set(tool_names(first))
    assert "x-anthropic-billing-header" not in json.dumps(first["body"])
    assert first["body"]["max_tokens"] <= 32768  # clamped to the model's output limit
    # The follow-up carries the call and its result as a chat tool message.
    messages = last["body"]["messages"]
    call = messages[-2]["tool_calls"][0]
    assert call["function"]["name"] == "Bash"
    assert json.loads(call["function"]["arguments"])["command"] == "echo cc-sim-ok-7"
    assert messages[-1]["role"] == "tool" and messages[-1]["tool_call_id"] == call["id"]
    assert "cc-sim-ok-7" in messages[-1]["content"]
    # Claude Code's own requests, as it wrote them, are read the quick way (nothing in them
    # is left to the full translation: translate/anthropic/quick.py) and give what the full
    # translation gives.
    for c in calls:
        raw = c["request_raw"].encode("utf-8", "surrogateescape")
        rest, blocks = anthropic.quick.decode(raw)
        quick, _ = anthropic_to_chat(rest, target_model="oca/gpt-4.1", quick_messages=blocks)
        full, _ = anthropic_to_chat(json.loads(raw), target_model="oca/gpt-4.1")
        assert orjson.loads(orjson.dumps(quick)) == orjson.loads(orjson.dumps(full))


def test_native_messages_model_runs_a_tool(tmp_path: Path) -> None:
    """Every Claude name -> oca/claude-sonnet-4 (lists MESSAGES): passed through natively."""
    run = run_claude(
        tmp_path,
        BASH_PROMPT,
        {"claude-*": "oca/claude-sonnet-4"},
        "--model",
        "opus",
        "--allowedTools",
        "Bash",
    )
    check_everything_succeeded(run)
    assert "Tool result received:" in run.output["result"], run.explain()
    assert "cc-sim-ok-7" in run.output["result"], run.explain()

    calls = run.model_calls()
    assert all(c["request"]["model"].startswith("claude-opus") for c in calls)
    # The client sees its own model name, not OCA's.
    for c in calls:
        assert '"model":"oca/' not in c["response_body"], run.explain()
    assert len(run.upstream) == len(calls) >= 2
    first, last = run.upstream[0], run.upstream[-1]
    assert all(u["path"].endswith("/v1/messages") for u in run.upstream)
    assert all(u["body"]["model"] == "oca/claude-sonnet-4" for u in run.upstream)
    assert {"Bash", "Read", "Edit", "Write"} <= set(tool_names(first))
    assert "x-anthropic-billing-header" not in json.dumps(first["body"])
    headers = {k.lower(): v for k, v in first["headers"].items()}
    assert "claude-code-20250219" in headers.get("anthropic-beta", "")
    # Claude Code's own fields go through untouched.
    assert first["body"]["metadata"] == calls[0]["request"]["metadata"]
    # The follow-up: the model's thinking (with its signature) and tool_use, then the result.
    messages = last["body"]["messages"]
    assistant = next(m for m in reversed(messages) if m["role"] == "assistant")
    kinds = [b["type"] for b in assistant["content"]]
    assert "tool_use" in kinds and "thinking" in kinds
    assert all(b["signature"] for b in assistant["content"] if b["type"] == "thinking")
    use = next(b for b in assistant["content"] if b["type"] == "tool_use")
    assert use["name"] == "Bash" and use["input"]["command"] == "echo cc-sim-ok-7"
    result = messages[-1]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == use["id"]
    # Its own tools' output as a string (the bench's Claude Code turns are written so:
    # bench/bigbody.py).
    assert isinstance(result["content"], str) and "cc-sim-ok-7" in result["content"]
    assert list(result)[:3] == ["tool_use_id", "type", "content"]


def test_responses_only_model_runs_a_tool(tmp_path: Path) -> None:
    """`--model oca/gpt-5-codex` (lists RESPONSES only): Messages -> chat -> the Responses
    adapter -> OCA's /responses, and the answer back the same way."""
    run = run_claude(
        tmp_path,
        BASH_PROMPT,
        {"claude-*": "oca/gpt-5-codex"},
        "--model",
        "oca/gpt-5-codex",
        "--allowedTools",
        "Bash",
    )
    check_everything_succeeded(run)
    assert "Tool result received:" in run.output["result"], run.explain()
    assert "cc-sim-ok-7" in run.output["result"], run.explain()

    calls = run.model_calls()
    assert all(c["request"]["model"] == "oca/gpt-5-codex" for c in calls)
    assert len(run.upstream) == len(calls) >= 2
    first, last = run.upstream[0], run.upstream[-1]
    assert all(u["path"].endswith("/responses") for u in run.upstream), run.explain()
    assert all(u["body"]["model"] == "oca/gpt-5-codex" for u in run.upstream)
    assert {"Bash", "Read", "Edit", "Write"} <= set(tool_names(first))
    # The model's reasoning summary reached Claude Code as a thinking block.
    assert "thinking_delta" in calls[0]["response_body"], run.explain()
    # The follow-up carries the call and its output as Responses items.
    items = last["body"]["input"]
    call = next(i for i in items if i.get("type") == "function_call")
    assert call["name"] == "Bash"
    assert json.loads(call["arguments"])["command"] == "echo cc-sim-ok-7"
    output = next(i for i in items if i.get("type") == "function_call_output")
    assert output["call_id"] == call["call_id"] and "cc-sim-ok-7" in json.dumps(output["output"])


def test_messages_only_model_runs_a_tool(tmp_path: Path) -> None:
    """`--model oca/claude-opus-4` (lists MESSAGES only): passed through natively."""
    run = run_claude(
        tmp_path,
        BASH_PROMPT,
        {"claude-*": "oca/claude-opus-4"},
        "--model",
        "oca/claude-opus-4",
        "--allowedTools",
        "Bash",
    )
    check_everything_succeeded(run)
    assert "Tool result received:" in run.output["result"], run.explain()
    assert "cc-sim-ok-7" in run.output["result"], run.explain()

    calls = run.model_calls()
    assert all(c["request"]["model"] == "oca/claude-opus-4" for c in calls)
    assert len(run.upstream) == len(calls) >= 2
    assert all(u["path"].endswith("/v1/messages") for u in run.upstream), run.explain()
    assert all(u["body"]["model"] == "oca/claude-opus-4" for u in run.upstream)
    messages = run.upstream[-1]["body"]["messages"]
    assistant = next(m for m in reversed(messages) if m["role"] == "assistant")
    use = next(b for b in assistant["content"] if b["type"] == "tool_use")
    assert use["name"] == "Bash" and use["input"]["command"] == "echo cc-sim-ok-7"
    result = messages[-1]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == use["id"]


def test_haiku_subagent_maps_by_family(tmp_path: Path) -> None:
    """A haiku-class background model (here: a subagent) goes where its pattern says."""
    run = run_claude(
        tmp_path,
        AGENT_PROMPT,
        {"claude-*haiku*": "oca/llama-4", "claude-*": "oca/gpt-4.1"},
        "--allowedTools",
        "Agent",
    )
    check_everything_succeeded(run)
    assert "Tool result received:" in run.output["result"], run.explain()
    assert "Hello from the OCA simulator (oca/llama-4)" in run.output["result"], run.explain()
    requested = [c["request"]["model"] for c in run.model_calls()]
    assert any("haiku" in m for m in requested), requested
    targets = [u["body"]["model"] for u in run.upstream]
    assert "oca/llama-4" in targets and "oca/gpt-4.1" in targets
    small = next(u for u in run.upstream if u["body"]["model"] == "oca/llama-4")
    assert small["body"]["max_tokens"] <= 4096


# -- the recording relay (runs inside the namespace, between Claude Code and the proxy) --


def _relay_main(argv: list[str]) -> int:
    """relay PROXY_URL RECORD_FILE SETTINGS_FILE -- client args: serve a relay, put its URL
    for {RELAY} in the settings file and the client's environment, run the client, write
    what went through to RECORD_FILE."""
    proxy_url, record_path, settings_path = argv[:3]
    client = argv[4:] if argv[3:4] == ["--"] else argv[3:]
    target = urlsplit(proxy_url)
    exchanges: list[dict[str, Any]] = []
    lock = threading.Lock()

    class Relay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def relay(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=100)
            # Host names the proxy (its DNS-rebinding check), as if Claude Code called it.
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("connection", "host")
            }
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            resp = upstream.getresponse()
            self.send_response_only(resp.status, resp.reason)
            hop = {"connection", "keep-alive", "transfer-encoding"}
            for k, v in resp.getheaders():
                if k.lower() not in hop:
                    self.send_header(k, v)
            chunked = resp.getheader("content-length") is None and self.command != "HEAD"
            if chunked:
                self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            seen = bytearray()
            while self.command != "HEAD":
                chunk = resp.read1(65536)
                if not chunk:
                    break
                seen += chunk
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                self.wfile.flush()
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            upstream.close()
            try:
                request = json.loads(body) if body else None
            except ValueError:
                request = None
            with lock:
                exchanges.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "status": resp.status,
                        "request": request,
                        "request_raw": body.decode("utf-8", "surrogateescape"),
                        "response_type": resp.getheader("content-type") or "",
                        "response_body": seen.decode("utf-8", "replace")[:200_000],
                    }
                )

        do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = relay

    server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    settings = Path(settings_path)
    settings.write_text(settings.read_text().replace("{RELAY}", url))
    env = {k: v.replace("{RELAY}", url) for k, v in os.environ.items()}
    done = subprocess.run(
        [a.replace("{RELAY}", url) for a in client],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    server.shutdown()
    with lock:
        Path(record_path).write_text(json.dumps(exchanges))
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__" and sys.argv[1:2] == ["--relay"]:
    sys.exit(_relay_main(sys.argv[2:]))


def test_a_model_that_takes_fewer_output_tokens_than_listed(tmp_path: Path) -> None:
    """OCA's list says 64000 output tokens for oca/claude-sonnet-4; the model really takes
    2000 and refuses Claude Code's max_tokens with LiteLLM's words. The first call is sent
    again with 2000 (one extra upstream call), every later call is sent with 2000 at once,
    and Claude Code never sees a refusal."""
    run = run_claude(
        tmp_path,
        BASH_PROMPT,
        {"claude-*": "oca/claude-sonnet-4"},
        "--model",
        "opus",
        "--allowedTools",
        "Bash",
        sim_config={"refusals": {"oca/claude-sonnet-4": {"max_output_tokens": 2000}}},
    )
    assert run.returncode == 0, run.explain()
    assert run.output.get("is_error") is False, run.explain()
    assert "cc-sim-ok-7" in run.output["result"], run.explain()
    calls = run.model_calls()
    assert calls and all(c["status"] == 200 for c in calls), run.explain()
    assert all(c["request"]["max_tokens"] > 2000 for c in calls), run.explain()
    # One refused upstream call in all: the first, with Claude Code's own max_tokens.
    refused = [u for u in run.upstream if u["body"]["max_tokens"] > 2000]
    assert len(refused) == 1 and run.upstream[0] is refused[0], run.explain()
    assert len(run.upstream) == len(calls) + 1, run.explain()
    assert all(u["body"]["max_tokens"] == 2000 for u in run.upstream[1:]), run.explain()
    assert "OCA caps" in run.proxy_log or "2000" in run.proxy_log, run.explain()
    assert "Traceback" not in run.proxy_log, run.explain()
