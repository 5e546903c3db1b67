"""Flow annotations: the one-line comment, marks, what is kept in metadata, redaction."""

from __future__ import annotations

import io
import json
from typing import Any

from mitmproxy import http
from mitmproxy import io as mitm_io
from mitmproxy.test import taddons, tflow
from mitmproxy.tools.web import webaddons

from oca_addon.core.stats import RequestRecord
from oca_addon.core.streams import PassthroughTap, StreamDriver
from oca_addon.mitm import annotate

TOKEN = "at-secret-0123456789"


def record(**kw: Any) -> RequestRecord:
    base: dict[str, Any] = {
        "started": 0.0,
        "api": "messages",
        "path": "/v1/messages",
        "requested_model": "claude-sonnet-4-6",
        "target_model": "oca/gpt-4.1",
        "route": "translated",
        "stream": False,
        "status": 200,
        "input_tokens": 1234,
        "output_tokens": 56,
        "latency_ms": 2345.0,
    }
    return RequestRecord(**{**base, **kw})


def api_flow(body: dict[str, Any] | None = None, **headers: str) -> http.HTTPFlow:
    f = tflow.tflow()
    f.request = http.Request.make(
        "POST",
        "http://127.0.0.1:8669/v1/messages?beta=true",
        json.dumps(body or {"model": "claude-sonnet-4-6", "messages": []}),
        {"content-type": "application/json", **headers},
    )
    return f


def to_oca(f: http.HTTPFlow) -> None:
    """What the addon's request hook does after keep_client_request."""
    f.request.path = "/20250206/app/litellm/chat/completions"
    f.request.headers.clear()
    f.request.headers["authorization"] = f"Bearer {TOKEN}"
    f.request.content = json.dumps({"model": "oca/gpt-4.1", "stream": True}).encode()


def saved_bytes(f: http.HTTPFlow) -> bytes:
    out = io.BytesIO()
    mitm_io.FlowWriter(out).add(f)
    return out.getvalue()


def test_describe() -> None:
    assert (
        annotate.describe(record())
        == "anthropic → chat · claude-sonnet-4-6 → oca/gpt-4.1 · 1,234 in / 56 out · 2.3 s"
    )
    native = record(
        api="chat", route="native", requested_model="oca/gpt-4.1", stream=True, ttfb_ms=412.0
    )
    assert annotate.describe(native) == (
        "chat · oca/gpt-4.1 · 1,234 in / 56 out · 2.3 s (streamed, first byte 412 ms)"
    )
    failed = record(
        status=429,
        input_tokens=0,
        output_tokens=0,
        latency_ms=80,
        error="OCA answered 429: slow down",
    )
    assert annotate.describe(failed) == (
        "anthropic → chat · claude-sonnet-4-6 → oca/gpt-4.1 · 80 ms · ✗ 429: OCA answered 429: slow down"
    )
    broken = record(api="responses", route="native", stream=True, error="peer closed connection")
    assert annotate.describe(broken).endswith("· ✗ failed: peer closed connection")
    long = record(status=500, error="x" * 500)
    assert len(annotate.describe(long)) < 250


def test_client_request_is_kept_bounded_and_without_keys() -> None:
    f = api_flow(
        {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "y" * 100}]},
        **{
            "x-api-key": "sk-client",
            "authorization": "Bearer sk-other",
            "anthropic-version": "2023-06-01",
        },
    )
    annotate.keep_client_request(f, limit=1 << 20)
    kept = f.metadata["oca"]["client_request"]
    assert kept["method"] == "POST" and kept["path"] == "/v1/messages?beta=true"
    assert json.loads(kept["body"])["model"] == "claude-sonnet-4-6"
    assert kept["truncated"] is False and kept["size"] == kept["kept"]
    headers = dict(kept["headers"])
    assert headers["x-api-key"] == headers["authorization"] == "<redacted>"
    assert headers["anthropic-version"] == "2023-06-01"

    small = api_flow({"model": "m", "messages": [{"role": "user", "content": "z" * 1000}]})
    annotate.keep_client_request(small, limit=100)
    kept = small.metadata["oca"]["client_request"]
    assert len(kept["body"]) == 100 and kept["truncated"] and kept["size"] > 1000


def test_token_is_redacted_once_the_request_has_gone() -> None:
    f = api_flow()
    annotate.keep_client_request(f, 1000)
    to_oca(f)
    f.response = http.Response.make(
        200, b"", {"content-type": "text/event-stream", "opc-request-id": "r1"}
    )
    annotate.keep_oca_head(f)  # responseheaders: the request is on the wire
    assert f.request.headers["authorization"] == "Bearer <redacted>"
    oca = f.metadata["oca"]["oca_response"]
    assert oca["status_code"] == 200 and oca["content_type"] == "text/event-stream"
    assert ["opc-request-id", "r1"] in oca["headers"]

    # Flows still open when mitmproxy stops are redacted before they are saved.
    g = api_flow()
    annotate.keep_client_request(g, 1000)
    to_oca(g)
    annotate.redact_all()
    assert g.request.headers["authorization"] == "Bearer <redacted>"
    assert TOKEN.encode() not in saved_bytes(g)


def test_translated_stream_keeps_both_sides() -> None:
    class Echo:
        def feed(self, chunk: dict[str, Any]) -> bytes:
            return f"event: out\ndata: {json.dumps(chunk)}\n\n".encode()

        def finish(self) -> bytes:
            return b"event: end\ndata: {}\n\n"

        def fail(self, status: int, message: str) -> bytes:
            return b"event: error\ndata: {}\n\n"

    driver = StreamDriver(Echo(), capture_limit=1 << 20)
    upstream = b'data: {"n": 1}\n\ndata: {"n": 2}\n\ndata: [DONE]\n\n'
    sent = b"".join(b"".join(driver(upstream[i : i + 7])) for i in range(0, len(upstream), 7))
    sent += b"".join(driver(b""))
    assert bytes(driver.raw_in) == upstream and bytes(driver.raw_out) == sent
    assert driver.in_size == len(upstream) and driver.out_size == len(sent)

    f = api_flow()
    annotate.keep_client_request(f, 1000)
    to_oca(f)
    f.response = http.Response.make(200, b"", {"content-type": "text/event-stream"})
    annotate.keep_oca_head(f)
    f.response.stream = driver
    annotate.keep_oca_answer(f, driver, 1 << 20)
    assert f.response.content == sent  # what the client received
    meta = f.metadata["oca"]
    assert meta["oca_response"]["body"] == upstream.decode()  # what OCA answered
    assert meta["client_response"] == {
        "streamed": True,
        "size": len(sent),
        "kept": len(sent),
        "truncated": False,
    }


def test_capture_is_bounded_and_never_changes_the_stream() -> None:
    class Upper:
        def feed(self, chunk: dict[str, Any]) -> bytes:
            return json.dumps(chunk).upper().encode() + b"\n"

        def finish(self) -> bytes:
            return b"END\n"

        def fail(self, status: int, message: str) -> bytes:
            return b"FAIL\n"

    limited, unlimited = StreamDriver(Upper(), capture_limit=50), StreamDriver(Upper())
    data = b"".join(b'data: {"i": %d}\n\n' % i for i in range(100))
    a = b"".join(b"".join(limited(data[i : i + 13])) for i in range(0, len(data), 13))
    b = b"".join(b"".join(unlimited(data[i : i + 13])) for i in range(0, len(data), 13))
    assert a == b
    assert len(limited.raw_in) == 50 and len(limited.raw_out) == 50 and limited.in_size == len(data)
    assert not unlimited.raw_in and not unlimited.raw_out  # no limit given: nothing kept
    tail = limited.abort("broken")
    assert tail == b"FAIL\n" and limited.out_size == len(a) + len(tail)

    tap = PassthroughTap(10)
    line = b'data: {"n": 12345}\n\n'
    assert b"".join(tap(line)) == line
    assert bytes(tap.captured) == line[:10] and tap.truncated and tap.seen == len(line)
    f = api_flow()
    f.response = http.Response.make(200, b"", {"content-type": "text/event-stream"})
    f.response.stream = tap
    annotate.keep_oca_answer(f, tap, 10)
    assert f.response.content == line[:10]
    assert f.metadata["oca"]["oca_response"]["same_as_client"] is True
    assert f.metadata["oca"]["client_response"]["truncated"] is True


def test_buffered_answer_keeps_oca_body_before_it_is_replaced() -> None:
    f = api_flow()
    f.response = http.Response.make(
        429, b'{"error": {"message": "slow down"}}', {"content-type": "application/json"}
    )
    annotate.keep_oca_answer(f, None, 1000)
    oca = f.metadata["oca"]["oca_response"]
    assert oca["status_code"] == 429 and "slow down" in oca["body"] and not oca["truncated"]


def test_finish_comments_marks_and_saves_cleanly() -> None:
    with taddons.context():
        ok = api_flow()
        annotate.keep_client_request(ok, 1000)
        to_oca(ok)
        ok.response = http.Response.make(200, b"{}")
        annotate.finish(ok, record())
        assert ok.comment.startswith("anthropic → chat · claude-sonnet-4-6 → oca/gpt-4.1")
        assert ok.marked == ""
        assert ok.metadata["oca"]["summary"]["comment"] == ok.comment
        raw = saved_bytes(ok)
        assert TOKEN.encode() not in raw
        back = next(iter(mitm_io.FlowReader(io.BytesIO(raw)).stream()))
        assert back.comment == ok.comment and back.metadata["oca"] == ok.metadata["oca"]

        refused = api_flow()
        annotate.finish(refused, record(status=404, error="no such model"))
        assert refused.marked == annotate.MARK_REFUSED
        failed = api_flow()
        annotate.finish(failed, record(status=502, error="OCA unreachable"))
        assert failed.marked == annotate.MARK_FAILED
        mine = api_flow()
        mine.marked = ":star:"
        annotate.finish(mine, record(status=500, error="x"))
        assert mine.marked == ":star:"  # the user's own mark stays


def test_local_answers() -> None:
    f = api_flow(**{"authorization": "Bearer sk-own", "x-api-key": "sk-own2"})
    f.response = http.Response.make(
        400,
        json.dumps(
            {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "'messages' is required"},
            }
        ),
    )
    annotate.local_answer(f)
    assert f.comment == "anthropic · ✗ 400: 'messages' is required (refused by oca-proxy)"
    assert f.marked == annotate.MARK_REFUSED
    assert f.request.headers["authorization"] == f.request.headers["x-api-key"] == "<redacted>"

    page = tflow.tflow(resp=True)
    page.request.path = "/api/state?after=1.0"
    annotate.local_answer(page)
    assert page.comment == "oca-proxy dashboard /api/state" and not page.marked
    models = tflow.tflow(resp=True)
    models.request.path = "/v1/models"
    annotate.local_answer(models)
    assert models.comment.startswith("models · answered by oca-proxy")


def test_mitmweb_helpers() -> None:
    with taddons.context() as tctx:
        assert annotate.mitmweb_url() is None  # mitmdump: no web options
        annotate.show_comments_in_mitmweb()  # and nothing to change
    with taddons.context(webaddons.WebAddon()) as tctx:
        tctx.options.update(web_port=8099, web_host="127.0.0.1")
        assert annotate.mitmweb_url() == "http://127.0.0.1:8099/"
        annotate.show_comments_in_mitmweb()
        assert list(tctx.options.web_columns)[-1] == "comment"
        tctx.options.update(web_columns=["path", "status"], web_host="::1")
        annotate.show_comments_in_mitmweb()
        assert list(tctx.options.web_columns) == ["path", "status"]  # the user's choice stays
        assert annotate.mitmweb_url() == "http://[::1]:8099/"
    import argon2

    auth = webaddons.WebAuth()
    with taddons.context(webaddons.WebAddon(), auth) as tctx:  # issue 23.14: mitmweb's token
        tctx.options.update(web_port=8099)
        url = annotate.mitmweb_url()
        assert url == f"http://127.0.0.1:8099/?token={auth._password}"
        hashed = argon2.PasswordHasher().hash("pw")  # (a plain one logs a warning)
        tctx.options.update(web_password=hashed)  # the user's password: mitmweb asks for it
        assert annotate.mitmweb_url() == "http://127.0.0.1:8099/"
