"""Hardening addons (issue 14): secrets off flows and logs, limits on request heads,
frame protection on every answer.

- `SecretGuard` (first in the chain): the keys a client sends (`Authorization`,
  `x-api-key`, the proxy key) leave the flow at its first hook, `requestheaders`, so
  mitmweb's live updates, `-w` files and `--flow-detail` never show them, also for flows
  that fail before the request hook (413, an aborted body). The proxy-key check reads the
  real values through `client_headers()`. A logging filter on every handler redacts bearer
  tokens, keys and the proxy key in every record (mitmproxy's `proxy_debug` lines print
  raw request heads), escapes control characters in what oca-proxy logs, and lone
  surrogates in every record (no terminal prints them).
- `HeadLimits`: a 431 for a request head over `oca_max_header_size` bytes or with more
  than `oca_max_headers` fields (mitmproxy has no limit; see mitm_patches).
- `FrameGuard` (last in the chain, after every answer is final): `X-Frame-Options: DENY`
  and a CSP with `frame-ancestors 'none'` on everything the proxy answers.
- `quiet_cancelled_callbacks()` (from `SecretGuard.load`): on CPython before 3.12.2, stopping
  the proxy (Ctrl-C) while a call streams printed a CancelledError traceback per open
  connection, from asyncio itself (gh-113538); exactly those records are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from mitmproxy import ctx, http

from oca_addon.core import security
from oca_addon.mitm import options
from oca_addon.mitm import patches as mitm_patches

CLIENT_KEY_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key"})
_HELD_ATTR = "_oca_client_keys"  # a private attribute: flow copies and saved flows lack it
# Loggers whose records are not escaped: the traffic log escapes each of its lines itself
# (one record holds several).
_MULTILINE_LOGGERS = frozenset({"oca_addon.traffic"})


def _placeholder(value: str) -> str:
    scheme, sep, _ = value.strip().partition(" ")
    if sep and scheme.lower() in ("bearer", "basic"):
        return f"{scheme} {security.REDACTED_TEXT}"
    return security.REDACTED_TEXT


def hold_client_keys(request: http.Request) -> None:
    """Take the client's keys off the request, keeping them beside it for the key check."""
    headers = request.headers
    held = [(k, v) for k, v in headers.items(multi=True) if k.lower() in CLIENT_KEY_HEADERS]
    if not held:
        return
    for name in {k.lower() for k, _ in held}:
        headers.set_all(name, [_placeholder(v) for v in headers.get_all(name)])
    setattr(request, _HELD_ATTR, held)


def client_headers(request: http.Request) -> http.Headers:
    """The request's headers with the client's real keys (for the proxy-key check)."""
    held: list[tuple[str, str]] | None = getattr(request, _HELD_ATTR, None)
    if not held:
        return request.headers
    headers = request.headers.copy()
    for name in {k.lower() for k, _ in held}:
        headers.set_all(name, [v for k, v in held if k.lower() == name])
    return headers


class SecretFilter(logging.Filter):
    """Redacts secrets in every record; escapes control characters in oca-proxy's own."""

    def __init__(self) -> None:
        super().__init__("oca_addon.secrets")
        self.literals: frozenset[str] = frozenset()

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name.startswith("oca_addon") and record.name not in _MULTILINE_LOGGERS
        try:
            text = record.getMessage()
        except Exception:  # a broken format string: let logging report it as usual
            return True
        clean = security.redact_secrets(text, self.literals)
        # Everyone's lone surrogates (a path that is not UTF-8): the terminal cannot print them.
        escape = security.escape_controls if own else security.escape_surrogates
        clean = escape(clean)
        if clean != text:
            record.msg, record.args = clean, None
        return True


class CancelledCallbackNoise(logging.Filter):
    """Drops the traceback CPython < 3.12.2 logs when a connection's task is cancelled at
    shutdown: StreamReaderProtocol's done callback calls task.exception() on a cancelled
    task, which raises CancelledError inside the callback (gh-113538, fixed in 3.12.2).
    Only a CancelledError raised in that callback is dropped; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, asyncio.CancelledError):
            return True
        tb = exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if code.co_name == "callback" and code.co_filename.endswith(
                ("asyncio/streams.py", "asyncio\\streams.py")
            ):
                return False
            tb = tb.tb_next
        return True


# asyncio's default handler logs it (after mitmproxy's own handler is gone), mitmproxy's
# handler while the proxy still runs.
_NOISY_LOGGERS = ("asyncio", "mitmproxy.master")


def quiet_cancelled_callbacks(version: tuple[int, ...] = sys.version_info[:3]) -> bool:
    """On the Pythons with the bug, put the filter on the loggers that report it (once)."""
    if version >= (3, 12, 2):
        return False
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, CancelledCallbackNoise) for f in logger.filters):
            logger.addFilter(CancelledCallbackNoise())
    return True


class SecretGuard:
    def __init__(self) -> None:
        self.filter = SecretFilter()

    def load(self, loader: Any) -> None:
        quiet_cancelled_callbacks()
        self._install()

    def configure(self, updated: set[str]) -> None:
        key = ctx.options.oca_proxy_api_key if "oca_proxy_api_key" in ctx.options else ""
        self.filter.literals = frozenset({key} if len(key) >= 4 else ())
        self._install()  # handlers added since (mitmweb's event log) get it too

    def running(self) -> None:
        self._install()

    def done(self) -> None:
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self.filter)

    def _install(self) -> None:
        for handler in logging.getLogger().handlers:
            if self.filter not in handler.filters:
                handler.addFilter(self.filter)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.live:  # a saved flow being read (-r) stays as it was
            hold_client_keys(flow.request)


HEAD_LIMIT_RANGES = {
    # A request line and a Host header fit in far less; a head of 0 bytes fits nothing.
    "oca_max_header_size": options.IntRange(1024, None, "bytes"),
    "oca_max_headers": options.IntRange(0, None, "fields", "no limit on the count"),
}


class HeadLimits:
    def load(self, loader: Any) -> None:
        loader.add_option(
            "oca_max_header_size",
            int,
            mitm_patches.MAX_HEAD_BYTES,
            "Largest request head (request line and headers) accepted, bytes; larger: 431.",
        )
        loader.add_option(
            "oca_max_headers",
            int,
            mitm_patches.MAX_HEADERS,
            "Most header fields a request may have; more: 431 (0: no limit on the count).",
        )

    def configure(self, updated: set[str]) -> None:
        options.check_ranges(updated, HEAD_LIMIT_RANGES)
        if "oca_max_header_size" in updated or "oca_max_headers" in updated:
            mitm_patches.set_head_limits(
                ctx.options.oca_max_header_size, ctx.options.oca_max_headers
            )


class FrameGuard:
    def response(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        if resp is None or resp.stream or not flow.live or mitm_patches.resend_pending(flow):
            return  # a stream's head has gone already (and an event stream is no page)
        resp.headers["x-frame-options"] = security.FRAME_OPTIONS
        resp.headers["content-security-policy"] = security.with_frame_ancestors(
            resp.headers.get("content-security-policy")
        )
