"""What each API call leaves on its flow, for mitmweb, mitmdump and saved flow files (-w).

- `flow.metadata["oca"]` (plain JSON-able values; saved with the flow, read by the `OCA`
  contentview): `client_request` (what the client sent, before any model mapping or
  translation), `oca_response` (OCA's status, headers and body before it was translated
  back), `client_response` (sizes of what the client received) and `summary` (the request
  record and its one-line description). Bodies are bounded by the `oca_capture_limit` option.
- `flow.request` ends as what went to OCA, its bearer token redacted as soon as the request
  has gone (response headers, error, or shutdown); `flow.response` ends as what the client
  received: for streams, the bytes kept while streaming (the stream itself is never held up).
- `flow.comment`: one line such as
  `anthropic → chat · claude-sonnet-4-6 → oca/gpt-4.1 · 1,234 in / 56 out · 2.3 s`;
  `flow.marked` on failures. The same line goes to the log (mitmdump's output).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import weakref
from typing import Any
from urllib.parse import urlsplit

from mitmproxy import ctx, http

from oca_addon.core import apis
from oca_addon.core.security import escape_controls, escape_surrogates
from oca_addon.core.stats import RequestRecord
from oca_addon.core.streams import PassthroughTap, StreamDriver
from oca_addon.mitm import headerfields
from oca_addon.mitm.contentview import META_KEY

log = logging.getLogger("oca_addon.traffic")

REDACTED = "<redacted>"
REDACTED_BEARER = f"Bearer {REDACTED}"
# Header values never kept in metadata (a client's own API keys may be real secrets).
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"}
)
_SECRET_FIELDS = frozenset(h.encode() for h in SECRET_HEADERS)
MARK_FAILED = ":red_circle:"  # OCA or the connection failed (5xx, broken stream)
MARK_REFUSED = ":warning:"  # the request was refused (4xx)
MITMWEB_DEFAULT_COLUMNS = ["tls", "icon", "path", "method", "status", "size", "time"]

# Flows whose request may still carry the bearer token (redacted at the latest on shutdown,
# before mitmproxy's save addon writes flows that are still open).
_unredacted: weakref.WeakSet[http.HTTPFlow] = weakref.WeakSet()


def meta(flow: http.HTTPFlow) -> dict[str, Any]:
    data = flow.metadata.get(META_KEY)
    if not isinstance(data, dict):
        data = flow.metadata[META_KEY] = {}
    return data


def kept(data: bytes, limit: int) -> dict[str, Any]:
    """A body for metadata: text, at most `limit` bytes of it, and whether it was cut."""
    limit = max(0, limit)
    return {
        "body": data[:limit].decode("utf-8", "replace"),
        "size": len(data),
        "kept": min(len(data), limit),
        "truncated": len(data) > limit,
    }


def safe_headers(headers: http.Headers) -> list[list[str]]:
    return headerfields.listed(headers, _SECRET_FIELDS, REDACTED)


# -- request -----------------------------------------------------------------------------


def keep_client_request(flow: http.HTTPFlow, limit: int) -> None:
    """Call before the request is rewritten for OCA: keeps what the client sent."""
    keep_client_body(flow, keep_client_head(flow), limit)


def keep_client_head(flow: http.HTTPFlow) -> bytes:
    """keep_client_request in two steps, for large bodies: the head now (before the request
    is rewritten), the body's text with keep_client_body(flow, <what this returns>, limit)
    once the request has gone (decoding a body of megabytes is not needed before)."""
    req = flow.request
    try:
        # req.content, without its header lookup when nothing is to be decoded
        encoded = headerfields.get(req.headers, b"content-encoding")
        body = (req.content if encoded else req.raw_content) or b""
    except ValueError:  # an encoding we cannot undo: keep it as it came
        body = req.raw_content or b""
    meta(flow)["client_request"] = {
        "method": req.method,
        "path": req.path,
        "http_version": req.http_version,
        "headers": safe_headers(req.headers),
    }
    _unredacted.add(flow)
    return body


def keep_client_body(flow: http.HTTPFlow, body: bytes, limit: int) -> None:
    client = meta(flow).get("client_request")
    if isinstance(client, dict):
        client.update(kept(body, limit))


def redact(flow: http.HTTPFlow) -> None:
    """Replace the bearer token on a request that has already gone to OCA."""
    headers = flow.request.headers
    if headerfields.get(headers, b"authorization", REDACTED_BEARER) != REDACTED_BEARER:
        headers["authorization"] = REDACTED_BEARER
    _unredacted.discard(flow)


def redact_all() -> None:
    for flow in list(_unredacted):
        redact(flow)


# -- response ----------------------------------------------------------------------------


def keep_oca_head(flow: http.HTTPFlow) -> None:
    """Call in responseheaders before the headers are changed for the client. The request
    has gone by now, so its token is redacted here too."""
    resp = flow.response
    if resp is not None:
        meta(flow)["oca_response"] = {
            "status_code": resp.status_code,
            "reason": resp.reason,
            "content_type": headerfields.get(resp.headers, b"content-type", ""),
            "headers": safe_headers(resp.headers),
        }
    redact(flow)


def keep_oca_answer(
    flow: http.HTTPFlow, driver: StreamDriver | PassthroughTap | None, limit: int
) -> None:
    """Call in response/error before OCA's buffered answer is replaced by the client's, or
    after a stream: then the response content becomes what the client received (kept while
    streaming, bounded), and OCA's raw stream goes to metadata."""
    resp = flow.response
    if resp is None:
        return
    data = meta(flow)
    oca = data.setdefault(
        "oca_response",
        {"status_code": resp.status_code, "content_type": resp.headers.get("content-type", "")},
    )
    if resp.stream and isinstance(driver, PassthroughTap):
        resp.raw_content = bytes(driver.captured)
        oca["same_as_client"] = True
        data["client_response"] = {
            "streamed": True,
            "size": driver.seen,
            "kept": len(driver.captured),
            "truncated": driver.truncated,
        }
    elif resp.stream and isinstance(driver, StreamDriver):
        raw_in, raw_out = bytes(driver.raw_in), bytes(driver.raw_out)
        resp.raw_content = raw_out
        oca.update(
            body=raw_in.decode("utf-8", "replace"),
            size=driver.in_size,
            kept=len(raw_in),
            truncated=driver.in_size > len(raw_in),
        )
        data["client_response"] = {
            "streamed": True,
            "size": driver.out_size,
            "kept": len(raw_out),
            "truncated": driver.out_size > len(raw_out),
        }
    elif not resp.stream:
        oca.update(kept(resp.raw_content or b"", limit))


def describe(rec: RequestRecord) -> str:
    """`anthropic → chat · claude-sonnet-4-6 → oca/gpt-4.1 · 1,234 in / 56 out · 2.3 s`"""
    api = apis.label(rec.api)
    if rec.route == "translated":
        parts = [f"{api} → chat"]
    elif rec.route.startswith("via "):  # through chat and the model's own API's adapter
        parts = [
            f"{api} → chat → {rec.route[4:]}" if rec.api != "chat" else f"chat → {rec.route[4:]}"
        ]
    else:
        parts = [api]
    if rec.requested_model == rec.target_model:
        if rec.target_model:  # (oca-proxy's own calls name no model)
            parts.append(rec.target_model)
    else:
        parts.append(f"{rec.requested_model} → {rec.target_model}")
    if rec.input_tokens or rec.output_tokens:
        parts.append(f"{rec.input_tokens:,} in / {rec.output_tokens:,} out")
    timing = duration(rec.latency_ms)
    if rec.stream:
        first = f", first byte {duration(rec.ttfb_ms)}" if rec.ttfb_ms is not None else ""
        timing += f" (streamed{first})"
    parts.append(timing)
    if rec.learned:  # changed as OCA said of this model before
        parts.append(f"adapted: {rec.learned}")
    if rec.retried:  # OCA refused the first try and said why
        parts.append(f"retried: {rec.retried}")
    if failed(rec.status, rec.error):
        # A stream that broke after its 200 headers is a failure too: say what broke.
        status = str(rec.status) if rec.status >= 400 else "failed"
        parts.append(f"✗ {status}: {_short(rec.error or '')}".rstrip(": "))
    return " · ".join(parts)


def duration(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def failed(status: int, error: str | None) -> bool:
    return status >= 400 or bool(error) or status == 0


def _short(text: str, n: int = 140) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def note_retry(flow: http.HTTPFlow, status: int, change: str, refused_flow: str) -> None:
    """The flow is sent again after OCA refused it: say so on it (the refused attempt, a flow
    of its own in mitmweb when there is a view, is `refused_flow`)."""
    data = meta(flow)
    data["retry"] = {"refused_status": status, "change": change, "refused_flow": refused_flow}
    where = f" (flow {refused_flow})" if refused_flow else ""
    flow.comment = f"refused by OCA ({status}){where}; sent again: {change}"


def _mark(flow: http.HTTPFlow, status: int) -> None:
    if not flow.marked:  # never override the user's own mark
        flow.marked = MARK_REFUSED if 400 <= status < 500 else MARK_FAILED


def finish(flow: http.HTTPFlow, rec: RequestRecord) -> None:
    """Call last in response/error: comment, mark, summary, redaction, one log line."""
    comment = describe(rec)
    if rec.route == "replay":  # mitmproxy's replay of a request made for OCA: sent as it was
        comment = f"replay, as sent to OCA · {comment}"
    elif rec.route == "own call":  # oca-proxy's own call to OCA (addons/owncalls.py)
        comment = f"oca-proxy's own call: {flow.metadata.get('oca.own_call')} · {comment}"
    elif rec.replay_of:
        comment = f"replay of {rec.replay_of} · {comment}"
    refused_flow = (meta(flow).get("retry") or {}).get("refused_flow")
    if refused_flow:  # mitmweb shows OCA's refusal of the first try as a flow of its own
        comment += f" (refused try: flow {refused_flow})"
    flow.comment = escape_surrogates(comment)  # saved flows and mitmweb encode it as UTF-8
    if failed(rec.status, rec.error):
        _mark(flow, rec.status)
    data = meta(flow)
    data["summary"] = {**rec.as_dict(), "comment": comment}
    redact(flow)
    path = data.get("client_request", {}).get("path") or rec.path
    # One line per call, whatever the client put in its model name or path.
    line = f"{rec.status or '---'} {flow.request.method} {path} · {comment}"
    traffic_log.add(line)


class TrafficLog:
    """The one line per API call that mitmdump shows, logged in batches.

    mitmproxy hands every log record to the terminal and, as an `add_log` event, to every
    addon: about 0.2 ms of CPU per record on the benchmark machine, a quarter of all the
    addon may add to a streamed call (bench/README.md). So calls that end within FLUSH_S
    of each other share one record: one line each, every line stamped like mitmproxy's own
    (the time it was logged), so the output reads as usual."""

    FLUSH_S = 0.1

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, line: str) -> None:
        # One line per call, whatever the client put in its model name or path: control
        # characters and lone surrogates escaped (a line no terminal can print would cost
        # its whole batch).
        self.lines.append(escape_controls(line))
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (unit tests): at once
                self.flush()
                return
            self._timer = loop.call_later(self.FLUSH_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.lines:
            return
        lines, self.lines = self.lines, []
        if len(lines) > 1:
            now = time.time()  # the record's own time, which mitmproxy puts before line 1
            stamp = (
                f"[{time.strftime('%H:%M:%S', time.localtime(now))}.{int(now * 1000) % 1000:03d}] "
            )
            lines[1:] = [stamp + line for line in lines[1:]]
        try:
            log.info("%s", "\n".join(lines))
        except Exception:  # a log handler that fails must not lose the other calls' lines
            for line in lines:
                with contextlib.suppress(Exception):
                    log.info("%s", line.encode("ascii", "backslashreplace").decode())


traffic_log = TrafficLog()


def local_answer(flow: http.HTTPFlow) -> RequestRecord | None:
    """Flows oca-proxy answered itself (pages, model list, refusals): a comment, a mark
    when an API call was refused before it reached OCA, and the client's keys redacted.

    A refusal (any status >= 400) also leaves its trace like a forwarded call: the log
    line, and the returned record for the dashboard's recent requests."""
    if not flow.live:
        return None  # a saved flow being read (-r): keep it as it was
    for name in SECRET_HEADERS:  # a client's own keys (or the proxy key) stay off the flow
        if name in flow.request.headers:
            flow.request.headers[name] = REDACTED
    resp = flow.response
    if resp is None or flow.comment:
        return None
    path = flow.request.path.split("?", 1)[0]
    api = apis.api_for(path)
    status = resp.status_code
    if status >= 400:
        return refused(flow, status, _error_message(resp))
    if api is None:
        kind = "dashboard" if path.startswith("/api/") else "page"
        flow.comment = escape_surrogates(f"oca-proxy {kind} {path}")
    else:
        flow.comment = f"{api.label} · {api.local_note}"
    return None


_MODEL_FIELD = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.){1,200})"')


def refused(flow: http.HTTPFlow, status: int, message: str) -> RequestRecord:
    """A call oca-proxy refused or failed itself, before it reached OCA: comment, mark,
    one log line, and its record."""
    path = flow.request.path.split("?", 1)[0]
    called = apis.api_for(path)
    api = called.endpoint.value if called else "page"
    # The model, where the body names one (read cheaply: the body may be huge or broken).
    found = _MODEL_FIELD.search((flow.request.raw_content or b"")[:8192])
    model = found.group(1).decode("utf-8", "replace") if found else ""
    rec = RequestRecord(
        started=flow.request.timestamp_start,
        api=api,
        path=path,
        requested_model=model,
        target_model=model,
        route="refused",
        stream=False,
        status=status,
        error=message or f"refused with {status}",
        latency_ms=(time.time() - flow.request.timestamp_start) * 1000,
    )
    label = apis.label(api)
    flow.comment = escape_surrogates(
        f"{label} · ✗ {status}: {_short(message)} (refused by oca-proxy)"
    )
    _mark(flow, status)
    traffic_log.add(f"{status} {flow.request.method} {path[:200]} · {flow.comment}")
    return rec


def _error_message(resp: http.Response) -> str:
    import json

    text = resp.get_text(strict=False) or ""
    try:
        body = json.loads(text)
    except ValueError:
        plain = "text/plain" in resp.headers.get("content-type", "")
        return _short(text, 200) if plain and text.strip() else resp.reason or ""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return err["message"]
    return resp.reason or ""


# -- mitmweb -----------------------------------------------------------------------------


def show_comments_in_mitmweb() -> None:
    """Under mitmweb, add the comment column to the flow list (unless the user chose
    their own columns)."""
    opts = ctx.options
    if "web_columns" in opts and list(opts.web_columns) == MITMWEB_DEFAULT_COLUMNS:
        opts.update(web_columns=[*MITMWEB_DEFAULT_COLUMNS, "comment"])


def mitmweb_url() -> str | None:
    """mitmweb's address when mitmweb is the running tool (its options exist only then),
    with the token mitmweb wants (`?token=`, as in the address it prints at start): without
    it mitmweb 12 answers 403. No token when the user set web_password: mitmweb asks for it."""
    opts = ctx.options
    if "web_port" not in opts:
        return None
    host = opts.web_host or "127.0.0.1"
    if host in ("0.0.0.0", "::", "*"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    auth = ctx.master.addons.get("webauth")
    query = urlsplit(getattr(auth, "web_url", "") or "").query if auth is not None else ""
    return f"http://{host}:{opts.web_port}/" + (f"?{query}" if query else "")
