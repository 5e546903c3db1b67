"""repro.py on its own: overrides where each API keeps them, headers without secrets, the
curl line, reading files back."""

from __future__ import annotations

import json
import shlex

import pytest

from oca_addon import repro


def test_model_and_effort_go_where_each_api_keeps_them() -> None:
    def over(path: str, body: dict[str, object], **kw: str) -> dict[str, object]:
        return json.loads(repro.with_overrides(path, json.dumps(body), **kw))

    assert over("/v1/chat/completions", {"model": "a"}, model="b", effort="low") == {
        "model": "b",
        "reasoning_effort": "low",
    }
    assert over("/v1/responses", {"reasoning": {"summary": "auto"}}, effort="high")[
        "reasoning"
    ] == {"summary": "auto", "effort": "high"}
    assert over("/v1/messages?beta=true", {"model": "x"}, effort="medium")["output_config"] == {
        "effort": "medium"
    }
    # Nothing asked: the body is sent back byte for byte.
    assert repro.with_overrides("/v1/chat/completions", '{"a" :1}') == b'{"a" :1}'
    with pytest.raises(repro.ReplayError, match="one of"):
        repro.with_overrides("/v1/chat/completions", "{}", effort="extreme")
    with pytest.raises(repro.ReplayError, match="reasoning effort"):
        repro.with_overrides("/v1/embeddings", "{}", effort="low")
    with pytest.raises(repro.ReplayError, match="not JSON"):
        repro.with_overrides("/v1/chat/completions", "nope", model="m")


def test_documents_hold_no_secrets_and_a_working_curl_line() -> None:
    kept = {
        "method": "POST",
        "path": "/v1/messages",
        "headers": [
            ["Authorization", "Bearer real"],
            ["x-api-key", "real-key"],
            ["Cookie", "c=1"],
            ["content-type", "application/json"],
            ["anthropic-version", "2023-06-01"],
            ["content-length", "10"],
            ["user-agent", "claude-cli"],
        ],
        "body": '{"model":"m","messages":[{"role":"user","content":"it\'s"}]}',
        "truncated": False,
    }
    doc = repro.repro_document(
        flow_id="f1",
        comment="c",
        client_request=kept,
        oca_response={"status_code": 200, "headers": [["set-cookie", "s"]], "body": "ok"},
        proxy="http://127.0.0.1:8669",
    )
    text = json.dumps(doc)
    assert "real" not in text and "c=1" not in text and '"s"' not in text
    assert [k for k, _ in doc["request"]["headers"]] == [
        "content-type",
        "anthropic-version",
        "user-agent",
    ]
    argv = shlex.split(doc["curl"])
    assert argv[:6] == ["curl", "-sS", "-N", "-X", "POST", "http://127.0.0.1:8669/v1/messages"]
    assert json.loads(argv[argv.index("--data-binary") + 1]) == json.loads(kept["body"])
    assert "user-agent" not in doc["curl"]
    assert repro.read_repro(text)["path"] == "/v1/messages"

    big = {**kept, "body": json.dumps({"x": "y" * (repro.INLINE_BODY_MAX + 1)})}
    doc = repro.repro_document(
        flow_id="f",
        comment="",
        client_request=big,
        oca_response=None,
        proxy="http://h",
        file="/t/a b.json",
    )
    assert doc["curl"].startswith("jq -c .request.body '/t/a b.json' | curl ")
    assert "response" not in doc
    with pytest.raises(repro.ReplayError, match="oca_capture_limit"):
        repro.client_request_of({"client_request": {**kept, "truncated": True}})
    with pytest.raises(repro.ReplayError, match="reproduction file"):
        repro.read_repro('{"x": 1}')
