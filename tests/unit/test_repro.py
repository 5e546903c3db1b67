"""repro.py on its own: overrides where each API keeps them, headers without secrets, the
curl line, reading files back."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from oca_addon.core import repro


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


def test_documents_keep_only_safe_headers_and_redact_credentials_in_the_query() -> None:
    """Issue 23, item 3: a fixed list of names was removed, so x-goog-api-key & co stayed."""
    secrets = {
        "x-goog-api-key": "goog-secret",
        "openai-api-key": "openai-secret",
        "anthropic-api-key": "anthropic-secret",
        "x-auth-token": "auth-secret",
        "X-Custom-Whatever": "unknown-secret",
        "x-stainless-api-key": "stainless-secret",
    }
    kept = {
        "method": "POST",
        "path": "/v1/chat/completions?api_key=query-secret&beta=true&access_token=q2-secret",
        "headers": [
            *([k, v] for k, v in secrets.items()),
            ["content-type", "application/json"],
            ["User-Agent", "OpenAI/Python 1.0"],
            ["x-stainless-lang", "python"],
            ["anthropic-beta", "tools-2024"],
        ],
        "body": '{"model": "m", "messages": []}',
    }
    doc = repro.repro_document(
        flow_id="f",
        comment="c",
        client_request=kept,
        oca_response={
            "status_code": 200,
            "headers": [["opc-request-id", "r1"], ["x-token-echo", "resp-secret"]],
            "body": "ok",
        },
        proxy="http://127.0.0.1:8669",
    )
    text = json.dumps(doc)
    for leaked in [*secrets.values(), "query-secret", "q2-secret", "resp-secret"]:
        assert leaked not in text, leaked
    assert [k for k, _ in doc["request"]["headers"]] == [
        "content-type",
        "User-Agent",
        "x-stainless-lang",
        "anthropic-beta",
    ]
    assert doc["request"]["path"] == (
        "/v1/chat/completions?api_key=REDACTED&beta=true&access_token=REDACTED"
    )
    assert doc["response"]["headers"] == [["opc-request-id", "r1"]]
    assert "api_key=REDACTED&beta=true" in doc["curl"]
    assert repro.redact_query("/v1/x?sig=1&Key=2&model=m&x-api-key") == (
        "/v1/x?sig=REDACTED&Key=REDACTED&model=m&x-api-key"
    )


def _file(request: object) -> str:
    return json.dumps({"oca_proxy_repro": 1, "request": request})


GOOD = {"method": "POST", "path": "/v1/chat/completions", "headers": [], "body": {}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_file({**GOOD, "path": "@127.0.0.1:9399/v1/chat/completions"}), "not a path on the proxy"),
        (_file({**GOOD, "path": "//evil.example/v1/chat/completions"}), "not a path on the proxy"),
        (_file({**GOOD, "path": "http://evil.example/v1"}), "not a path on the proxy"),
        (_file({**GOOD, "path": "/v1/chat\r\nHost: x"}), "not a path on the proxy"),
        (_file({**GOOD, "path": "/v1\\@evil/x"}), "not a path on the proxy"),
        (_file({**GOOD, "method": "POST\r\nX: y"}), "request.method must be one of"),
        (_file({**GOOD, "method": 7}), "request.method must be one of"),
        (_file({**GOOD, "headers": "content-type: x"}), "list of [name, value] pairs"),
        (_file({**GOOD, "headers": {"content-type": "x"}}), "list of [name, value] pairs"),
        (_file({**GOOD, "headers": [["a", "b", "c"]]}), "list of [name, value] pairs"),
        (_file({**GOOD, "headers": [["content-type", "a\r\nb"]]}), "malformed name or value"),
        (_file({**GOOD, "headers": [["bad name", "v"]]}), "malformed name or value"),
        (b'{"oca_proxy_repro": 1, "request": {"path": "/\xff"}}', "not UTF-8"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"oca_proxy_repro": 1, "request": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested"),
    ],
)
def test_files_that_could_leave_the_proxy_or_break_the_reader_are_refused(
    data: str | bytes, message: str
) -> None:
    """Issue 23, item 2: a path `@host:port/...` sent the proxy key to another port; bad
    fields were tracebacks. Each is a ReplayError saying what is wrong."""
    with pytest.raises(repro.ReplayError, match=re.escape(message)):
        repro.read_repro(data)


def test_read_repro_gives_checked_requests_and_urls_on_the_proxy_only() -> None:
    req = repro.read_repro(
        _file(
            {
                **GOOD,
                "path": "/v1/messages?beta=true",
                "headers": [["content-type", " application/json"], ["x-api-key", "k"]],
            }
        )
    )
    assert req["headers"] == [["content-type", "application/json"]]  # and no key
    assert repro.file_body(req, model="m") == b'{"model": "m"}'
    lone = {"path": "/v1/chat/completions", "body": {"a": "\ud800"}}  # JSON may hold one
    assert repro.file_body(lone) == b'{"a": "\\ud800"}'
    with pytest.raises(repro.ReplayError, match="not valid Unicode"):
        repro.file_body({**lone, "body": "\ud800"})
    url = repro.target_url("http://127.0.0.1:8669/", req["path"])
    assert url == "http://127.0.0.1:8669/v1/messages?beta=true"
    with pytest.raises(repro.ReplayError, match="would not reach the proxy"):
        repro.target_url("http://127.0.0.1:8669", "@127.0.0.1:9399/v1/chat/completions")
    with pytest.raises(repro.ReplayError, match="http://HOST:PORT"):
        repro.target_url("file:///etc", "/v1/x")
