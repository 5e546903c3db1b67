"""Every Python example in the README and the client guides (docs/clients/) runs against
`oca-proxy demo` (issue 15): the demo is the no-OCA way to try each client, so what the
documents show must work there, the Responses tool loop included. The real `oca-proxy demo`
command is started (simulator + proxy)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, free_port, wait_for

# The documents whose examples are for running: the README and every user guide under docs/
# (docs/ARCHITECTURE.md holds contracts, not examples).
GUIDES = sorted(p for p in (ROOT / "docs").rglob("*.md") if p.name != "ARCHITECTURE.md")
DOCS = [ROOT / "README.md", *GUIDES]
TEXTS = {p.relative_to(ROOT).as_posix(): p.read_text() for p in DOCS}
README = TEXTS["README.md"]
MODELS_AND_APIS = TEXTS["docs/models-and-apis.md"]
SNIPPETS = [
    pytest.param(code, id=f"{name}-{i}")
    for name, text in TEXTS.items()
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", text, re.S))
]
CURLS = [
    pytest.param(curl, id=name)
    for name, text in TEXTS.items()
    for curl in re.findall(
        r"```bash\n(curl http://localhost:8669/v1/chat/completions.*?)```", text, re.S
    )
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("demo")
    port, sim_port = free_port(), free_port()
    log = home / "demo.log"
    env = {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "oca_addon.cli.main", "demo", "--port", str(port),
             "--sim-port", str(sim_port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/health", proc=proc)
        yield f"http://localhost:{port}", log
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _run(code: str, base: str) -> subprocess.CompletedProcess[str]:
    code = code.replace("http://localhost:8669", base)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_the_documents_have_the_examples() -> None:
    joined = "\n".join(p.values[0] for p in SNIPPETS)
    assert len(SNIPPETS) >= 3 and CURLS
    assert "chat.completions.create" in joined and "messages.stream" in joined
    assert "function_call_output" in joined  # the Responses tool loop
    # the README itself shows a first call, in Python and with curl
    assert "```python\nfrom openai import OpenAI" in README
    assert "```bash\ncurl http://localhost:8669/v1/chat/completions" in README


def test_the_docs_say_what_is_lost_in_translation() -> None:
    """The fields about the call that cannot survive a translation are listed (issue 22):
    the Responses client's echoed-only fields, what the Responses adapter drops of chat's
    metadata, what the Messages adapter has no field for."""
    section = MODELS_AND_APIS.split("What is lost in translation", 1)[1].split("\n## ", 1)[0]
    bullets = {b.split("**")[1]: b for b in section.split("\n- ")[1:]}
    through_chat = bullets["Responses client via chat"]
    for field in ("include", "service_tier", "store", "truncation", "background",
                  "prompt_cache_retention"):  # fmt: skip
        assert f"`{field}`" in through_chat
    assert "`metadata`" in bullets["Responses adapter"] and "16th" in bullets["Responses adapter"]
    messages = bullets["Messages adapter"]
    assert "`prompt_cache_key`" in messages and "`metadata`" in messages
    assert "`user` when `safety_identifier`" in messages
    # and what does survive, said before the list
    before = MODELS_AND_APIS.split("What is lost in translation", 1)[0][-1500:]
    for field in ("prompt_cache_key", "safety_identifier", "metadata", "metadata.user_id"):
        assert f"`{field}`" in before


@pytest.mark.parametrize("code", SNIPPETS)
def test_python_example_runs_against_the_demo(demo: tuple[str, Path], code: str) -> None:
    base, _ = demo
    run = _run(code, base)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Hello from the OCA simulator" in run.stdout or "Tool result received" in run.stdout
    if "function_call_output" in code:
        assert "Tool result received: sunny, 21C" in run.stdout


@pytest.mark.parametrize("curl", CURLS)
def test_curl_example_and_the_demo_banner(demo: tuple[str, Path], curl: str) -> None:
    base, log = demo
    cmd = curl.replace("http://localhost:8669", base).replace("\\\n", " ")
    out = subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "chat.completion.chunk" in out.stdout
    banner = log.read_text()
    assert "ANTHROPIC_AUTH_TOKEN=dummy" in banner and "ANTHROPIC_API_KEY" not in banner
