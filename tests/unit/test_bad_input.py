"""Issue 23.6 at the depth of each fix: the adapters' validation, the model check, and the
log, stats and dashboard code that one odd record must not break (the end-to-end cases are
in test_fuzz_proxy.py)."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from mitmproxy.test import tflow

from oca_addon.addons.hardening import SecretFilter
from oca_addon.core import jsonio, security
from oca_addon.core.errors import RequestError
from oca_addon.core.exchange import prepare
from oca_addon.core.routing import Endpoint
from oca_addon.core.settings import Settings
from oca_addon.core.stats import RequestRecord, Stats
from oca_addon.mitm import annotate
from oca_addon.site import dashboard
from oca_addon.translate.upstream import messages, responses

CALLS = [5, -1, True, 1.5, "x", {"id": "c"}]


@pytest.mark.parametrize("adapter", [messages, responses], ids=["messages", "responses"])
@pytest.mark.parametrize("calls", CALLS, ids=repr)
def test_adapters_refuse_tool_calls_that_are_not_an_array(adapter: Any, calls: Any) -> None:
    chat = {
        "model": "oca/x",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "tool_calls": calls},
        ],
    }
    with pytest.raises(RequestError) as e:
        adapter.request(chat)
    assert e.value.status == 400 and e.value.param == "messages[1].tool_calls"
    assert f"not {type(calls).__name__}" in e.value.message


@pytest.mark.parametrize("adapter", [messages, responses], ids=["messages", "responses"])
def test_adapters_still_take_no_tool_calls_or_null(adapter: Any) -> None:
    for calls in (None, []):
        chat = {
            "model": "oca/x",
            "messages": [{"role": "assistant", "content": "a", "tool_calls": calls}],
        }
        adapter.request(chat)


@pytest.mark.parametrize(
    "endpoint", [e for e in Endpoint if e.flavor and e.value not in ("models", "count_tokens")]
)
@pytest.mark.parametrize("model", ["\ud800", "oca/gpt-4.1\udfff", "\udcff"])
def test_a_model_no_text_can_hold_is_a_400(endpoint: Endpoint, model: str) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "x"}], "input": "x"}
    with pytest.raises(RequestError) as e:
        prepare(endpoint, body, Settings(default_model="oca/gpt-4.1"), None)
    assert e.value.status == 400 and e.value.param == "model"
    assert "surrogate" in e.value.message
    e.value.message.encode("utf-8")  # the message itself is text


def test_odd_characters_in_names_still_pass() -> None:
    prepare(
        Endpoint.CHAT,
        {"model": "модель 🚀\n", "messages": [{"role": "user", "content": "x"}]},
        Settings(default_model="oca/gpt-4.1"),
        None,
    )


def test_escapes_make_any_text_utf8() -> None:
    text = "a\ud800b\udcff\n\x1bc é🚀"
    assert security.escape_controls(text) == "a\\ud800b\\udcff\\n\\x1bc é🚀"
    assert security.escape_surrogates(text) == "a\\ud800b\\udcff\n\x1bc é🚀"
    assert security.escape_surrogates("plain") == "plain"


def _record(**kw: Any) -> RequestRecord:
    base: dict[str, Any] = {
        "started": 1.0,
        "api": "chat",
        "path": "/v1/chat/completions",
        "requested_model": "\ud800",
        "target_model": "oca/gpt-4.1",
        "route": "native",
        "stream": False,
        "status": 200,
    }
    return RequestRecord(**{**base, **kw})


def test_dashboard_renders_a_record_no_text_can_hold() -> None:
    """One odd record in the recent requests took the dashboard down until restart."""
    stats = Stats()
    stats.record(_record())
    stats.record(_record(path="/x\udcff", requested_model="ok"))
    state = {"recent": [r.as_dict() for r in stats.recent]}
    page = dashboard.render_page(state, "csrf", "nonce").encode("utf-8")
    inner = page.split(b"id=state nonce='nonce'>", 1)[1].split(b"</script>", 1)[0]
    assert json.loads(inner)["recent"][0]["requested_model"] == "\ud800"


def test_traffic_log_escapes_and_keeps_the_batch(caplog: pytest.LogCaptureFixture) -> None:
    """A line no terminal could print cost its whole batch of log lines."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    strict = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    failing = logging.StreamHandler(strict)
    logger = logging.getLogger("oca_addon.traffic")
    logger.addHandler(handler)
    logger.addHandler(failing)
    logger.setLevel(logging.INFO)
    try:
        tl = annotate.TrafficLog()
        tl.lines = []
        tl.add("first call")
        tl.add("odd \ud800 call\nFORGED")
        tl.add("third call")
        tl.flush()
    finally:
        logger.removeHandler(handler)
        logger.removeHandler(failing)
    text = out.getvalue()
    assert "first call" in text and "third call" in text
    assert "odd \\ud800 call\\nFORGED" in text
    strict.flush()
    assert "third call" in strict.buffer.getvalue().decode()  # type: ignore[attr-defined]


class _Picky(logging.Handler):
    """Fails on a record of several lines, like a terminal that cannot print one of them."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "\n" in text:
            raise UnicodeEncodeError("utf-8", text, 0, 1, "cannot print")
        self.got.append(text)


def test_traffic_log_survives_a_failing_handler() -> None:
    picky = _Picky()
    logger = logging.getLogger("oca_addon.traffic")
    logger.addHandler(picky)
    logger.setLevel(logging.INFO)
    try:
        tl = annotate.TrafficLog()
        for line in ("one", "two", "three"):
            tl.add(line)
        tl.flush()
        tl.add("next batch")
        tl.flush()
    finally:
        logger.removeHandler(picky)
    assert picky.got[0] == "one" and picky.got[-1] == "next batch"
    assert [g.rsplit("] ", 1)[-1] for g in picky.got] == ["one", "two", "three", "next batch"]


def test_comments_of_odd_paths_encode() -> None:
    """Flow comments go into saved flows and mitmweb, both UTF-8."""
    f = tflow.tflow(resp=True)
    f.request.path = "/x\udcff"
    f.response.status_code = 200  # type: ignore[union-attr]
    f.comment = ""
    annotate.local_answer(f)
    f.comment.encode("utf-8")
    f2 = tflow.tflow(resp=True)
    f2.request.path = "/v1/chat/completions?\udcff"
    rec = annotate.refused(f2, 400, "bad \ud800 model")
    f2.comment.encode("utf-8")
    assert rec.status == 400


def test_secret_filter_escapes_surrogates_in_every_record() -> None:
    flt = SecretFilter()
    record = logging.LogRecord(
        "mitmproxy.proxy", logging.INFO, __file__, 1, "GET %s", ("/\udcff",), None
    )
    assert flt.filter(record)
    assert record.getMessage() == "GET /\\udcff"


def test_jsonio_says_not_utf8_rather_than_too_many_digits() -> None:
    with pytest.raises(UnicodeDecodeError):
        jsonio.loads(b'{"a": "\xff"}')
    with pytest.raises(jsonio.BeyondLimits, match="nested"):
        jsonio.loads(b"[" * 5_000 + b"]" * 5_000)
