"""Trying a call again: the client's request as kept on its flow (annotate.keep_client_request),
with another model or reasoning effort, and reproduction files that hold no secrets.

Plain Python over dicts (no mitmproxy import): the Replays addon (addons/replay.py), the
dashboard and `oca-proxy replay` (cli.py) use it.

A reproduction file (`oca.repro`) is JSON:
  {"oca_proxy_repro": 1, "flow": <id>, "comment": <the flow's one-line summary>,
   "request": {"method", "path", "headers": [[k, v], ...], "body": <JSON or text>},
   "response": {"status_code", "headers", "body"}   (OCA's answer, optional),
   "curl": <a command line that sends the request to the proxy>}
Headers that may carry a secret are left out entirely, not just masked.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from .routing import Endpoint, classify

FORMAT = 1
# Never written to a file and never sent again: credentials, and what the proxy or the
# HTTP library sets by itself.
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "cookie",
        "set-cookie",
        "openai-organization",
        "openai-project",
    }
)
TRANSPORT_HEADERS = frozenset(
    {"host", "content-length", "connection", "transfer-encoding", "accept-encoding", "te"}
)
# What the curl line carries: what makes the call what it is, not the client's identity.
CURL_HEADERS = frozenset({"content-type", "anthropic-version", "anthropic-beta", "accept"})
INLINE_BODY_MAX = 100_000  # one shell argument is limited to 128 kB on Linux
EFFORTS = ("minimal", "low", "medium", "high")


class ReplayError(ValueError):
    """The call cannot be replayed or written out; the message says why."""


def clean_headers(headers: list[list[str]] | list[tuple[str, str]]) -> list[list[str]]:
    """The headers worth sending again: no secrets, nothing the transport sets."""
    out: list[list[str]] = []
    for k, v in headers:
        name = k.lower()
        if name in SECRET_HEADERS or name in TRANSPORT_HEADERS or name.startswith(":"):
            continue
        out.append([k, v])
    return out


def client_request_of(meta: dict[str, Any]) -> dict[str, Any]:
    """The client's request kept in `flow.metadata["oca"]`, checked for a replay."""
    kept = meta.get("client_request")
    if not isinstance(kept, dict) or not isinstance(kept.get("body"), str):
        raise ReplayError(
            "this flow holds no client request kept by oca-proxy (only API calls it "
            "forwarded to OCA have one)"
        )
    if kept.get("truncated"):
        raise ReplayError(
            f"only the first {kept.get('kept')} of {kept.get('size')} bytes of the client's "
            "request were kept: raise the oca_capture_limit option to replay calls this large"
        )
    return kept


def with_overrides(
    path: str, body_text: str, model: str | None = None, effort: str | None = None
) -> bytes:
    """The body again, with another model and/or reasoning effort, each where the called
    API keeps it."""
    if not model and not effort:
        return body_text.encode()
    try:
        body = json.loads(body_text)
    except ValueError:
        raise ReplayError("the kept request body is not JSON: cannot change its model") from None
    if not isinstance(body, dict):
        raise ReplayError("the kept request body is not a JSON object")
    if model:
        body["model"] = model
    if effort:
        if effort not in EFFORTS:
            raise ReplayError(f"reasoning effort must be one of {', '.join(EFFORTS)}")
        endpoint = classify(path)
        if endpoint is Endpoint.RESPONSES:
            reasoning = body.get("reasoning")
            body["reasoning"] = {
                **(reasoning if isinstance(reasoning, dict) else {}),
                "effort": effort,
            }
        elif endpoint is Endpoint.MESSAGES:
            config = body.get("output_config")
            body["output_config"] = {
                **(config if isinstance(config, dict) else {}),
                "effort": effort,
            }
        elif endpoint is Endpoint.CHAT:
            body["reasoning_effort"] = effort
        else:
            raise ReplayError("only chat, Responses and Messages calls take a reasoning effort")
    return json.dumps(body, ensure_ascii=False).encode()


def _body_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def body_bytes(value: Any) -> bytes:
    """A repro file's body (JSON, or text when it was not JSON) as bytes to send."""
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, ensure_ascii=False).encode()


def curl_line(
    proxy: str,
    method: str,
    path: str,
    headers: list[list[str]],
    body: bytes,
    file: str | None = None,
) -> str:
    """A command that sends the request to the proxy (the body inline, or from the repro
    file through jq when it is too long for one shell argument)."""
    parts = ["curl", "-sS", "-N", "-X", method, shlex.quote(proxy.rstrip("/") + path)]
    for k, v in headers:
        if k.lower() in CURL_HEADERS:
            parts += ["-H", shlex.quote(f"{k}: {v}")]
    if body and len(body) <= INLINE_BODY_MAX:
        parts += ["--data-binary", shlex.quote(body.decode("utf-8", "replace"))]
        return " ".join(parts)
    if body:
        source = shlex.quote(file) if file else "REPRO.json"
        return f"jq -c .request.body {source} | " + " ".join([*parts, "--data-binary", "@-"])
    return " ".join(parts)


def repro_document(
    *,
    flow_id: str,
    comment: str,
    client_request: dict[str, Any],
    oca_response: dict[str, Any] | None,
    proxy: str,
    file: str | None = None,
) -> dict[str, Any]:
    """One call as a reproduction file (see the module docstring): no credentials."""
    req = client_request_of({"client_request": client_request})
    headers = clean_headers(req.get("headers") or [])
    method, path = str(req.get("method", "POST")), str(req.get("path", "/"))
    body = req["body"]
    doc: dict[str, Any] = {
        "oca_proxy_repro": FORMAT,
        "flow": flow_id,
        "comment": comment,
        "request": {
            "method": method,
            "path": path,
            "headers": headers,
            "body": _body_value(body),
        },
    }
    if oca_response is not None:
        doc["response"] = {
            "status_code": oca_response.get("status_code"),
            "headers": clean_headers(oca_response.get("headers") or []),
            "body": oca_response.get("body"),
            "truncated": bool(oca_response.get("truncated")),
        }
    doc["curl"] = curl_line(proxy, method, path, headers, body.encode(), file)
    return doc


def read_repro(text: str) -> dict[str, Any]:
    """A reproduction file's request: {"method", "path", "headers", "body"}."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ReplayError(f"not a JSON file: {e}") from None
    if not isinstance(doc, dict) or doc.get("oca_proxy_repro") != FORMAT:
        raise ReplayError("not an oca-proxy reproduction file (written by `oca.repro`)")
    req = doc.get("request")
    if not isinstance(req, dict) or not isinstance(req.get("path"), str):
        raise ReplayError("the file holds no request")
    return req
