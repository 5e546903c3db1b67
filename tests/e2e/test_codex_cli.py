"""The Codex CLI itself, through mitmdump and the simulator, inside a private network
namespace (tests/e2e/isolated.py): one `codex exec` turn in which the model calls Codex's shell
tool, Codex runs the command and sends its output back, for a model that serves /responses
natively (oca/gpt-5-codex) and for a chat-only one the proxy translates (oca/grok3).

What Codex 0.171 sends (seen in the simulator's recorded requests): `POST /v1/responses`,
streamed, `store: false`, the whole history each turn, its shell tool as a function named
`exec_command` with a `cmd` string, `include: ["reasoning.encrypted_content"]`, and the
command's result as a `function_call_output`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from isolated import run_isolated, tool

from oca_addon.translate import responses
from oca_addon.translate.responses import responses_to_chat

CODEX = tool("codex")
pytestmark = pytest.mark.skipif(
    CODEX is None, reason="the Codex CLI is not installed (run scripts/install-test-tools)"
)

SHELL_TOOL = "exec_command"
MARKER = "codex-sim-ok-42"
# The simulator takes SIM:args up to the next whitespace: \u0020 is the space, in JSON.
PROMPT = (
    f'Run the command: echo {MARKER} SIM:tool={SHELL_TOOL} SIM:args={{"cmd":"echo\\u0020{MARKER}"}}'
)

# Everything that could reach out of the machine is off (the namespace has no network
# anyway); --strict-config makes Codex refuse any key this version does not know.
CONFIG = """\
model = "@MODEL@"
model_provider = "oca"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false
web_search = "disabled"

[model_providers.oca]
name = "OCA via oca-proxy"
base_url = "{PROXY}/v1"
wire_api = "responses"
env_key = "OCA_PROXY_API_KEY"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[feedback]
enabled = false

[otel]
exporter = "none"
trace_exporter = "none"
metrics_exporter = "none"

[features]
plugins = false
remote_plugin = false
apps = false
"""


def run_codex(
    tmp_path: Path, config_text: str, prompt: str = PROMPT
) -> tuple[dict[str, Any], str, float]:
    """(isolated run result, Codex's last message, seconds)."""
    home = tmp_path / "codex-home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    config = home / "config.toml"
    config.write_text(config_text)
    last = tmp_path / "last-message.txt"
    assert CODEX is not None
    started = time.monotonic()
    result = run_isolated(
        [
            CODEX,
            "exec",
            "--strict-config",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
            "--ephemeral",
            "--color",
            "never",
            "-C",
            str(work),
            "-o",
            str(last),
            prompt,
        ],
        templates=[config],
        env={"CODEX_HOME": str(home), "HOME": str(home), "OCA_PROXY_API_KEY": "dummy"},
        timeout=100,
    )
    elapsed = time.monotonic() - started
    message = last.read_text() if last.exists() else ""
    return result, message, elapsed


def api_requests(result: dict[str, Any], path: str) -> list[dict[str, Any]]:
    return [
        r for r in result["sim"]["requests"] if r["method"] == "POST" and r["path"].endswith(path)
    ]


def explain(result: dict[str, Any]) -> str:
    return (
        f"exit {result.get('returncode')}\n--- stdout\n{result.get('stdout', '')[-3000:]}"
        f"\n--- stderr\n{result.get('stderr', '')[-3000:]}"
        f"\n--- proxy log\n{result.get('proxy_log', '')[-3000:]}"
    )


def check_run(result: dict[str, Any], message: str, elapsed: float) -> None:
    assert result["returncode"] == 0, explain(result)
    # The command ran and its output went back to the model, which echoed it.
    assert "Tool result received:" in message and MARKER in message, explain(result)
    assert MARKER in result["stdout"]
    assert elapsed < 120, f"the Codex run took {elapsed:.0f}s"


def test_codex_exec_native_model(tmp_path: Path) -> None:
    result, message, elapsed = run_codex(tmp_path, CONFIG.replace("@MODEL@", "oca/gpt-5-codex"))
    check_run(result, message, elapsed)
    calls = api_requests(result, "/responses")
    assert len(calls) == 2, explain(result)
    first, second = (c["body"] for c in calls)
    offered = [t.get("name") for t in first["tools"]]
    assert SHELL_TOOL in offered, f"Codex's tools changed: {offered}"
    assert first["model"] == "oca/gpt-5-codex" and first["stream"] is True

    items = second["input"]
    call = next(i for i in items if i.get("type") == "function_call")
    assert call["name"] == SHELL_TOOL
    assert json.loads(call["arguments"]) == {"cmd": f"echo {MARKER}"}
    output = next(i for i in items if i.get("type") == "function_call_output")
    assert output["call_id"] == call["call_id"]
    assert MARKER in json.dumps(output["output"])
    # Nothing went the translated way.
    assert not api_requests(result, "/chat/completions")
    # Codex's requests (as OCA got them natively: Codex's items, written again) are of the
    # shapes the quick way reads (translate/responses/quick.py), and give what the full
    # translation gives.
    for c in calls:
        raw = json.dumps(c["body"], separators=(",", ":")).encode()
        rest, items = responses.quick.decode(raw)
        quick, _ = responses_to_chat(rest, target_model="oca/grok3", quick_items=items)
        full, _ = responses_to_chat(json.loads(raw), target_model="oca/grok3")
        assert orjson.loads(orjson.dumps(quick)) == orjson.loads(orjson.dumps(full))


def test_codex_exec_translated_model(tmp_path: Path) -> None:
    result, message, elapsed = run_codex(tmp_path, CONFIG.replace("@MODEL@", "oca/grok3"))
    check_run(result, message, elapsed)
    calls = api_requests(result, "/chat/completions")
    assert len(calls) == 2, explain(result)
    first, second = (c["body"] for c in calls)
    offered = [t["function"]["name"] for t in first["tools"]]
    assert SHELL_TOOL in offered, f"Codex's tools changed: {offered}"
    assert first["model"] == "oca/grok3" and first["stream"] is True
    assert first["messages"][0]["role"] == "system"  # Codex's instructions

    messages = second["messages"]
    assistant, tool_msg = messages[-2], messages[-1]
    call = assistant["tool_calls"][0]
    assert call["function"]["name"] == SHELL_TOOL
    assert json.loads(call["function"]["arguments"]) == {"cmd": f"echo {MARKER}"}
    assert tool_msg["role"] == "tool" and tool_msg["tool_call_id"] == call["id"]
    assert MARKER in tool_msg["content"]
    assert not api_requests(result, "/responses")


def test_codex_exec_messages_only_model(tmp_path: Path) -> None:
    """oca/claude-opus-4 lists MESSAGES only: Responses -> chat -> the Messages adapter."""
    result, message, elapsed = run_codex(tmp_path, CONFIG.replace("@MODEL@", "oca/claude-opus-4"))
    check_run(result, message, elapsed)
    calls = api_requests(result, "/v1/messages")
    assert len(calls) == 2, explain(result)
    first, second = (c["body"] for c in calls)
    offered = [t["name"] for t in first["tools"]]
    assert SHELL_TOOL in offered, f"Codex's tools changed: {offered}"
    assert first["model"] == "oca/claude-opus-4" and first["stream"] is True
    assert first["system"]  # Codex's instructions
    headers = {k.lower(): v for k, v in calls[0]["headers"].items()}
    assert headers.get("anthropic-version") == "2023-06-01"

    assistant, user = second["messages"][-2:]
    use = next(b for b in assistant["content"] if b["type"] == "tool_use")
    assert use["name"] == SHELL_TOOL and use["input"] == {"cmd": f"echo {MARKER}"}
    result_block = next(b for b in user["content"] if b["type"] == "tool_result")
    assert result_block["tool_use_id"] == use["id"]
    assert MARKER in json.dumps(result_block["content"])
    assert not api_requests(result, "/chat/completions") and not api_requests(result, "/responses")


def test_example_config(tmp_path: Path) -> None:
    """examples/codex-config.toml as a user would run it (only the proxy's port differs)."""
    example = (Path(__file__).parents[2] / "examples" / "codex-config.toml").read_text()
    assert "http://localhost:8669/v1" in example
    config = example.replace("localhost:8669", "localhost:{PORT}")
    result, message, _ = run_codex(tmp_path, config, prompt="Say hello")
    assert result["returncode"] == 0, explain(result)
    assert "Hello from the OCA simulator (oca/gpt-5-codex). You said: Say hello" in message
    body = api_requests(result, "/responses")[0]["body"]
    assert body["reasoning"]["effort"] == "medium"
