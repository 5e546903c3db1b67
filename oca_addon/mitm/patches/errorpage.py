"""mitmproxy's own error answers (upstream unreachable, a bad request head, a body over the
limit) as JSON in the called API's shape.

mitmproxy answers a failed upstream connection with a hard-coded HTML page, which API
clients can do nothing with, so the error page becomes a JSON error in the called API's
shape (413 for a body over the limit, 504 when oca-proxy cut a silent upstream, 502 when
OCA cannot be reached). Not a public hook: mitmproxy sends its error page after the
`error` hook whatever the hook sets (flow.response is ignored there).

The errors are shaped by the path the client called (`remember_client_path`, from the
Gateway before it rewrites the request for OCA). The other patches that answer a client
themselves (cutstream, headlimits, chunked) use `error_response_bytes` too.

Patch (checked against mitmproxy 12.3.1): `_http1.make_error_response`, the module-level
error page of HTTP/1, replaced by `error_response_bytes`.
"""

from __future__ import annotations

import json
from typing import Any

from mitmproxy import http, version
from mitmproxy.net.http import http1
from mitmproxy.proxy.layers.http import _http1

from oca_addon.core.errors import anthropic_error_type, openai_error_type

BEHAVIOUR = "mitmproxy's own errors answered in the API's shape (JSON, not HTML)"
REQUIRED = False
# qualified name (under `mitmproxy.`) -> (source hash, parameter names): see patches/__init__
CHECKED: dict[str, tuple[str, tuple[str, ...]]] = {
    # replaced by error_response_bytes
    "proxy.layers.http._http1.make_error_response": (
        "03ce75ab62e8e78b",
        ("status_code", "message"),
    ),
}
_applied = False


def error_response_bytes(status_code: int, message: str = "", path: str | None = None) -> bytes:
    """mitmproxy's own error answers (upstream unreachable, bad request head, body too big)
    as JSON: in the called API's shape when the path is known, else a shape both SDKs read."""
    reason = message.strip() or "the upstream request failed"
    if status_code == 413:
        text = f"the request body is larger than oca-proxy accepts ({_body_limit_text()})"
    elif status_code == 431:
        text = (
            f"the request head is larger than oca-proxy accepts ({reason}); "
            "raise it with --set oca_max_header_size=BYTES or --set oca_max_headers=N"
        )
    elif status_code < 500:
        text = f"oca-proxy could not read the request: {reason}"
    elif status_code == 504:
        text = reason
    else:
        text = f"oca-proxy could not get an answer from OCA: {reason}"
    flavor = _flavor(path)
    code = "upstream_unreachable" if status_code == 502 else openai_error_type(status_code)
    if flavor == "anthropic":
        body: dict[str, Any] = {
            "type": "error",
            "error": {"type": anthropic_error_type(status_code), "message": text},
        }
    elif flavor == "openai":
        err = {"message": text, "type": openai_error_type(status_code), "param": None}
        body = {"error": {**err, "code": code}}
    else:
        body = {
            # Anthropic's envelope, with OpenAI's fields inside: both SDKs read error.message.
            "type": "error",
            "error": {"type": anthropic_error_type(status_code), "message": text, "code": code},
        }
    resp = http.Response.make(
        status_code,
        json.dumps(body).encode(),
        {
            "Server": version.MITMPROXY,
            "Connection": "close",
            "Content-Type": "application/json",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "frame-ancestors 'none'",
        },
    )
    return http1.assemble_response(resp)


def _flavor(path: str | None) -> str | None:
    if not path:
        return None
    from oca_addon.core.routing import classify, is_api_path

    endpoint = classify(path)
    if endpoint is not None:
        return endpoint.flavor
    return "openai" if is_api_path(path) else None


def _body_limit_text() -> str:
    try:
        from mitmproxy import ctx
        from mitmproxy.utils import human

        limit = human.parse_size(ctx.options.body_size_limit)
    except Exception:  # no master (unit tests) or an odd option value
        limit = None
    if limit is None:
        return "see the oca_max_body option"
    return f"at most {limit} bytes; raise it with --set oca_max_body=BYTES"


CLIENT_PATH_ATTR = "_oca_client_path"


def remember_client_path(request: http.Request) -> None:
    """Call before the request is rewritten for OCA: errors are shaped by the client's path."""
    setattr(request, CLIENT_PATH_ATTR, request.path)


def client_path(request: http.Request | None) -> str | None:
    if request is None:
        return None
    path = getattr(request, CLIENT_PATH_ATTR, None)
    return path if isinstance(path, str) else request.path


def apply() -> None:
    global _applied
    if not _applied:
        _http1.make_error_response = error_response_bytes
        _applied = True
