"""A dead upstream: local pages keep working, API calls get a JSON error, not HTML."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest
from conftest import Sim, free_port, start_proxy


def test_dead_upstream_gives_api_errors(sim: Sim, tmp_path) -> None:
    # A proxy whose OCA base URL points at a closed port (but IDCS is the simulator).
    dead = f"http://127.0.0.1:{free_port()}/20250206/app/litellm"
    p = start_proxy(sim, tmp_path / "h", options={"oca_base_url": dead})
    try:
        assert p.health()["status"] == "ok"
        c = openai.OpenAI(base_url=f"{p.url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as e:
            c.chat.completions.create(
                model="oca/gpt-4.1", messages=[{"role": "user", "content": "x"}]
            )
        assert e.value.status_code == 502
        assert "could not get an answer from OCA" in e.value.message
        a = anthropic.Anthropic(base_url=p.url, api_key="x", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as e2:
            a.messages.create(
                model="claude-sonnet-4-6",
                max_tokens=10,
                messages=[{"role": "user", "content": "x"}],
            )
        assert e2.value.status_code == 502
        r = httpx.get(f"{p.url}/health", timeout=5)
        assert r.status_code == 200
    finally:
        p.stop()
