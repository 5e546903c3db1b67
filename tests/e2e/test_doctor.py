"""`oca-proxy doctor` against the real simulator, its switches in different positions: the
doctor reports each position, its report holds no secret and no prompt, and a simulator
started from a report (`oca-proxy sim --from-report`) measures the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import BIN, PREFIX, ROOT, Sim, free_port, start_sim, wait_for

from oca_addon.cli.doctor import plan as plans
from oca_addon.cli.doctor.report import GUESS_CLAIMS, sim_settings
from oca_addon.core.modelinfo import Catalog
from oca_addon.core.refusals import LearnedFacts, learned_facts_path
from oca_addon.mitm.patches import REDACTED
from oca_addon.sim.config import GUESSES
from oca_addon.sim.models import model_info_payload

DEFAULTS: dict[str, Any] = {
    "refusals": {},
    "guesses": "all",
    "model_info": None,
    "reasoning_field": "reasoning_content",
    "error_shape": "litellm",
    "token_ttl": 3600,
    "rotate_refresh_tokens": True,
    "fail_refresh": False,
}
SECRET_MARKS = ("sim-at-", "sim-rt-")


@pytest.fixture(scope="module")
def dsim() -> Iterator[Sim]:
    """The doctor's own simulator (its knobs change per test)."""
    s = start_sim("--guesses", "all")
    yield s
    s.proc.terminate()
    s.proc.wait(10)


@pytest.fixture(autouse=True)
def knobs(dsim: Sim) -> Iterator[None]:
    dsim.config(**DEFAULTS)
    yield
    dsim.config(**DEFAULTS)


def login(sim: Sim, home: Path) -> Path:
    token_file = home / ".oca" / "refresh_token.json"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(json.dumps({"refresh_token": sim.mint()["refresh_token"]}))
    return token_file


def doctor(
    sim: Sim,
    home: Path,
    *args: str,
    answer: str | None = None,
    logged_in: bool = True,
    base_url: str | None = None,
    idcs_url: str | None = None,
) -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True, exist_ok=True)
    token_file = login(sim, home) if logged_in else home / ".oca" / "refresh_token.json"
    argv = [
        str(BIN / "oca-proxy"),
        "doctor",
        "--base-url",
        base_url or sim.base_url,
        "--idcs-url",
        idcs_url or sim.url,
        "--token-file",
        str(token_file),
        *([] if answer is not None else ["--yes"]),
        *args,
    ]
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(
        argv, input=answer or "", capture_output=True, text=True, env=env, timeout=120, cwd=ROOT
    )


def report_of(
    sim: Sim, home: Path, *args: str
) -> tuple[dict[str, Any], str, subprocess.CompletedProcess[str]]:
    path = home / "report.json"
    run = doctor(sim, home, "--report", str(path), *args)
    assert run.returncode == 0, run.stdout + run.stderr
    text = path.read_text()
    return json.loads(text), text, run


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {name: g["oca"] for name, g in report["measured"]["guesses"].items()}


# --- pure parts ---------------------------------------------------------------------------


def test_plan_bodies_tiny_and_capped() -> None:
    catalog = Catalog.from_model_info(model_info_payload())
    plan = plans.build_plan(catalog, max_calls=1000)
    assert not plan.left_out
    for p in plan.probes:
        text = json.dumps(p.body)
        assert plans.PROMPT in text or plans.TOOL_PROMPT in text
        if p.kind == "output_max":
            assert p.limit == plans.listed_max(catalog.entries[p.model])
        elif p.api != plans.EMBEDDINGS:
            assert p.body.get("max_tokens", p.body.get("max_output_tokens")) == plans.TINY
    capped = plans.build_plan(catalog, max_calls=10)
    assert len(capped.probes) == 10 and len(capped.left_out) == len(plan.probes) - 10
    # The cap leaves out the least telling calls first: every model keeps its basic call.
    assert {p.tier for p in capped.probes} <= {0, 1}
    text = plans.plan_text(capped, "https://oca.example")
    assert "will send 10 calls" in text and "left out by --max-calls 10" in text


def test_pure_modules_import_no_mitmproxy() -> None:
    code = (
        "import sys, oca_addon.cli.doctor.plan, oca_addon.cli.doctor.read, oca_addon.cli.doctor.report, "
        "oca_addon.cli.doctor.learn; "
        "print([m for m in sys.modules if m.split('.')[0] == 'mitmproxy'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr


def test_report_names_every_guess_of_the_simulator() -> None:
    assert set(GUESS_CLAIMS) == set(GUESSES)


# --- against the simulator ----------------------------------------------------------------


def test_guesses_on_all_agree(dsim: Sim, tmp_path: Path) -> None:
    report, text, run = report_of(dsim, tmp_path, "--models", "oca/gpt-5")
    assert set(verdicts(report).values()) == {"agrees"}
    m = report["measured"]
    gpt5 = m["models"]["oca/gpt-5"]
    assert gpt5["apis"]["chat"]["served"] and gpt5["apis"]["responses"]["served"]
    assert not gpt5["apis"]["messages"]["served"] and not gpt5["apis"]["messages"]["listed"]
    assert gpt5["apis"]["chat"]["reasoning"] == ["delta.reasoning_content"]
    assert "prompt_tokens_details.cached_tokens" in gpt5["apis"]["chat"]["usage_fields"]
    assert [e for e, r in gpt5["efforts"].items() if r["taken"]] == ["low", "medium", "high"]
    assert gpt5["output_max"] == {"listed": 128000, "taken": True, "status": 200, "real": 128000}
    assert gpt5["temperature"]["taken"] and gpt5["tools"] == {
        "taken": True,
        "status": 200,
        "called": True,
    }
    assert gpt5["real_efforts"] is None and gpt5["refused_params"] == []
    assert m["model_list"]["shape"] == "data" and m["model_list"]["models"] == 9
    assert m["login"] == {"refresh_rotates": True, "access_token_lifetime_s": 3600}
    assert m["unknown_model"]["error"]["shape"] == "litellm"
    # The table on the terminal; the report holds no secret and no prompt.
    assert "oca/gpt-5" in run.stdout and "unknown_model_message    agrees" in run.stdout
    assert not any(mark in text for mark in SECRET_MARKS)
    assert plans.PROMPT not in text and plans.TOOL_PROMPT not in text
    assert "ping tool" not in text and "You said" not in text
    assert all(c["opc_request_id"] for c in report["calls"]["each"])


def test_guesses_off_all_disagree(dsim: Sim, tmp_path: Path) -> None:
    dsim.config(guesses="none")
    report, _, _ = report_of(dsim, tmp_path, "--models", "oca/gpt-5")
    assert set(verdicts(report).values()) == {"disagrees"}
    m = report["measured"]
    assert m["unknown_model"]["status"] == 404
    assert m["models"]["oca/gpt-5"]["non_streamed"]["served"]
    assert m["models"]["oca/gpt-5"]["apis"]["messages"]["served"]
    assert m["embeddings"]["status"] == 404 and m["completions"]["status"] == 404


def test_refusals_and_other_switches_are_reported_and_learned(dsim: Sim, tmp_path: Path) -> None:
    dsim.config(
        refusals={
            "oca/gpt-5": {"params": ["temperature"], "efforts": ["low", "high"]},
            "oca/llama-4": {"max_output_tokens": 1000},
        },
        reasoning_field="thinking",
        error_shape="oci",
        token_ttl=600,
        rotate_refresh_tokens=False,
    )
    report, _, run = report_of(dsim, tmp_path, "--models", "oca/gpt-5,oca/llama-4")
    m = report["measured"]
    gpt5, llama = m["models"]["oca/gpt-5"], m["models"]["oca/llama-4"]
    assert gpt5["refused_params"] == ["temperature"] and not gpt5["temperature"]["taken"]
    assert "UnsupportedParamsError" in gpt5["temperature"]["error"]
    assert {e: r["taken"] for e, r in gpt5["efforts"].items() if r["listed"]} == {
        "low": True,
        "medium": False,
        "high": True,
    }
    assert gpt5["real_efforts"] == ["low", "high"]
    assert gpt5["apis"]["chat"]["reasoning"] == ["delta.thinking"]
    assert llama["output_max"]["listed"] == 4096 and not llama["output_max"]["taken"]
    assert llama["output_max"]["real"] == 1000
    assert m["unknown_model"]["error"]["shape"] == "oci"
    assert m["login"] == {"refresh_rotates": False, "access_token_lifetime_s": 600}
    assert "4096→1000" in run.stdout
    # What it found, in the learned facts the proxy reads (beside the settings file).
    path = learned_facts_path(tmp_path / ".config" / "oca" / "oca-proxy.config.json")
    assert path.exists() and str(path) in run.stdout
    learned = LearnedFacts(path)
    assert learned.efforts("oca/gpt-5") == ("low", "high")
    assert learned.max_tokens("oca/llama-4") == 1000
    assert any(f.kind == "param" and f.param == "temperature" for f in learned.facts("oca/gpt-5"))


def test_round_trip_through_a_report(dsim: Sim, tmp_path: Path) -> None:
    """Report from sim A; sim B from that report; the doctor measures B as it measured A."""
    payload = model_info_payload()
    for entry in payload["data"]:
        if entry["litellm_params"]["model"] == "oca/gpt-5":  # announces none of what follows
            entry["model_info"]["reasoning_effort_options"] = ["minimal", "low", "medium", "high"]
    dsim.config(
        model_info=payload,
        guesses=["serves_completions", "rejects_unlisted_api"],
        refusals={
            "oca/gpt-5": {"params": ["top_p", "temperature"], "efforts": ["low", "medium"]},
            "oca/claude-opus-4": {"max_output_tokens": 8000},
        },
        token_ttl=900,
    )
    models = "oca/gpt-5,oca/claude-opus-4,oca/llama-4,oca/text-embedding-3-small"
    a, _, _ = report_of(dsim, tmp_path / "a", "--models", models)
    settings = sim_settings(a)
    assert settings["refusals"] == {
        "oca/gpt-5": {"params": ["temperature"], "efforts": ["low", "medium"]},
        "oca/claude-opus-4": {"max_output_tokens": 8000},
    }
    (tmp_path / "a.json").write_text(json.dumps(a))
    port = free_port()
    proc = subprocess.Popen(
        [
            str(BIN / "oca-proxy"),
            "sim",
            "--port",
            str(port),
            "--allow-any-redirect-port",
            "--from-report",
            str(tmp_path / "a.json"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        sim_b = Sim(f"http://127.0.0.1:{port}", proc)
        wait_for(f"{sim_b.url}/.well-known/openid-configuration", proc=proc)
        assert httpx.get(f"{sim_b.url}/__sim/config").json()["refusals"] == settings["refusals"]
        b, _, _ = report_of(sim_b, tmp_path / "b", "--models", models)
    finally:
        proc.terminate()
        proc.wait(10)
    assert b["measured"] == a["measured"]
    assert b["model_list"] == payload


def test_no_at_the_prompt_sends_nothing(dsim: Sim, tmp_path: Path) -> None:
    before = dsim.state()["counters"]["api_requests"]
    run = doctor(dsim, tmp_path, "--models", "oca/llama-4", answer="n\n")
    assert run.returncode == 1
    assert "will send" in run.stdout and "Send them? [y/N]" in run.stdout
    assert "Nothing was sent" in run.stdout
    after = dsim.state()["counters"]["api_requests"]
    sent = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    assert sent == {PREFIX + "/v1/model/info": 1}  # the list, read to make the plan
    run = doctor(dsim, tmp_path, "--models", "oca/llama-4", answer="y\n")
    assert run.returncode == 0 and "The simulator's guesses" in run.stdout


def test_exit_codes_when_it_cannot_run(dsim: Sim, tmp_path: Path) -> None:
    run = doctor(dsim, tmp_path / "none", logged_in=False)
    assert run.returncode == 1 and "not logged in" in run.stderr
    dead = f"http://127.0.0.1:{free_port()}"
    run = doctor(dsim, tmp_path / "net", base_url=dead + PREFIX)
    assert run.returncode == 1 and "could not read OCA's model list" in run.stderr
    run = doctor(dsim, tmp_path / "idcs", idcs_url=dead)
    assert run.returncode == 1 and "could not refresh the OCA login" in run.stderr
    run = doctor(dsim, tmp_path / "opt", "--", "--set", "no_such_option=1")
    assert run.returncode == 1 and "mitmproxy option problem" in run.stderr
    run = doctor(dsim, tmp_path / "arg", "--", "--mode", "regular")
    assert run.returncode == 1 and "only `--set name=value`" in run.stderr
    dsim.config(fail_refresh=True)
    run = doctor(dsim, tmp_path / "gone")
    assert run.returncode == 1 and "log in again" in run.stderr


def test_models_max_calls_and_saved_flows(dsim: Sim, tmp_path: Path) -> None:
    from mitmproxy import io

    flows_file = tmp_path / "doctor.flows"
    args = ("--models", "oca/llama-4", "--max-calls", "3", "--save-flows", str(flows_file))
    args += ("--", "--set", "ssl_insecure=true")  # mitmproxy options pass through
    report, _, run = report_of(dsim, tmp_path, *args)
    assert "will send 3 calls" in run.stdout and "left out by --max-calls 3" in run.stdout
    assert report["calls"]["sent"] == 3 and report["calls"]["left_out"]
    assert list(report["measured"]["models"]) == ["oca/llama-4"]
    assert {c["model"] for c in report["calls"]["each"]} <= {"oca/llama-4", plans.UNKNOWN_MODEL}
    # Every call is a mitmproxy flow: the file opens in mitmweb, the token is not in it.
    with flows_file.open("rb") as f:
        flows = list(io.FlowReader(f).stream())
    assert len(flows) == 1 + 3  # the model list, then each call
    for flow in flows:
        assert flow.request.headers["authorization"] == REDACTED
        assert flow.request.headers["opc-request-id"] and flow.request.headers["client"]
    assert not any(mark.encode() in flows_file.read_bytes() for mark in SECRET_MARKS)


def test_runs_beside_a_running_proxy(dsim: Sim, proxy_factory: Any, tmp_path: Path) -> None:
    """Same token file: the doctor's refresh rotates it under the lock, the proxy follows."""
    proxy = proxy_factory(sim=dsim)
    env = {**os.environ, "HOME": str(proxy.home)}
    run = subprocess.run(
        [
            str(BIN / "oca-proxy"),
            "doctor",
            "--base-url",
            dsim.base_url,
            "--idcs-url",
            dsim.url,
            "--yes",
            "--models",
            "oca/llama-4",
            "--max-calls",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    dsim.config(revoke_access_tokens=True)  # the proxy must refresh, from the rotated file
    body = {"model": "oca/llama-4", "messages": [{"role": "user", "content": "hi"}]}
    resp = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
