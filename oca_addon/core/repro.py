"""Trying a call again: the client's request as kept on its flow (annotate.keep_client_request),
with another model or reasoning effort, and reproduction files that hold no secrets.

Plain Python over dicts (no mitmproxy import): the Replays addon (addons/replay.py), the
dashboard and `oca-proxy replay` (cli.py) use it.

A reproduction file (`oca.repro`) is JSON:
  {"oca_proxy_repro": 1, "flow": <id>, "comment": <the flow's one-line summary>,
   "request": {"method", "path", "headers": [[k, v], ...], "body": <JSON or text>},
   "response": {"status_code", "headers", "body"}   (OCA's answer, optional),
   "curl": <a command line that sends the request to the proxy>}
Only headers known to be safe are kept (any other is left out entirely, not just masked),
the values of query parameters with credential-like names (`?api_key=`) become REDACTED,
and the file is 0600. `read_repro` checks every field of a file read back: its request can
only reach the proxy it is sent to, and anything malformed is a ReplayError.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from oca_addon.core import apis
from oca_addon.core.errors import RequestError

FORMAT = 1
# The only request headers written to a file or sent again: what makes the call what it is
# and what names the client, never a credential. Anything else (Authorization, x-api-key,
# x-goog-api-key, cookies, headers no one has listed yet) is left out entirely.
SAFE_HEADERS = frozenset(
    {
        "content-type",
        "accept",
        "accept-language",
        "user-agent",
        "anthropic-version",
        "anthropic-beta",
        "anthropic-dangerous-direct-browser-access",
        "openai-beta",
        "x-app",
        "originator",
        "client",
        "client-version",
        "client-ide",
        "client-ide-version",
    }
)
SAFE_HEADER_PREFIXES = ("x-stainless-",)  # the SDKs' own (language, version, retry count)
# OCA's answer: its content type, request id and rate-limit hints.
SAFE_RESPONSE_HEADERS = frozenset(
    {"content-type", "date", "opc-request-id", "x-request-id", "request-id", "retry-after"}
)
SAFE_RESPONSE_PREFIXES = ("x-ratelimit-", "x-litellm-")
# A header or query parameter whose name holds one of these may carry a credential.
_CREDENTIAL = re.compile(
    r"key|token|secret|passw|pwd|auth|session|cookie|signature|credential|bearer|jwt",
    re.IGNORECASE,
)
_CREDENTIAL_NAMES = frozenset({"sig", "code", "pass", "pw"})
REDACTED = "REDACTED"
# What the curl line carries: what makes the call what it is, not the client's identity.
CURL_HEADERS = frozenset({"content-type", "anthropic-version", "anthropic-beta", "accept"})
INLINE_BODY_MAX = 100_000  # one shell argument is limited to 128 kB on Linux
EFFORTS = ("minimal", "low", "medium", "high")
FILE_MAX = 64 * 1024 * 1024  # a reproduction file larger than this is refused unread
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A path as a request line carries it: printable ASCII, no fragment, no backslash.
_PATH = re.compile(r"/(?!/)[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]{0,8192}")  # what HTTP/1.1 can carry


class ReplayError(ValueError):
    """The call cannot be replayed or written out; the message says why."""


def credential_like(name: str) -> bool:
    """A header or query parameter name that may hold a credential (api_key, X-Auth-Token,
    access_token, sig, ...)."""
    lowered = name.lower()
    return bool(_CREDENTIAL.search(lowered)) or lowered.strip("-_ ") in _CREDENTIAL_NAMES


def _safe(name: str, names: frozenset[str], prefixes: tuple[str, ...]) -> bool:
    name = name.lower()
    return name in names or (name.startswith(prefixes) and not credential_like(name))


def clean_headers(headers: list[list[str]] | list[tuple[str, str]]) -> list[list[str]]:
    """The request headers worth sending again: only those known to be safe."""
    return [[k, v] for k, v in headers if _safe(k, SAFE_HEADERS, SAFE_HEADER_PREFIXES)]


def clean_response_headers(headers: list[list[str]] | list[tuple[str, str]]) -> list[list[str]]:
    """OCA's answer headers worth keeping in a file: only those known to be safe."""
    return [[k, v] for k, v in headers if _safe(k, SAFE_RESPONSE_HEADERS, SAFE_RESPONSE_PREFIXES)]


def redact_query(path: str) -> str:
    """The path with the value of every query parameter whose name looks like a credential
    (`?api_key=...`, `&access_token=...`) replaced by REDACTED."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    fragment = ""
    if "#" in query:
        query, fragment = query.split("#", 1)
        fragment = "#" + fragment
    parts = []
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        if credential_like(unquote_plus(name)):
            part = f"{name}={REDACTED}" if eq else name
        parts.append(part)
    return base + "?" + "&".join(parts) + fragment


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
    except (ValueError, RecursionError):
        raise ReplayError("the kept request body is not JSON: cannot change its model") from None
    if not isinstance(body, dict):
        raise ReplayError("the kept request body is not a JSON object")
    if model:
        body["model"] = model
    if effort:
        if effort not in EFFORTS:
            raise ReplayError(f"reasoning effort must be one of {', '.join(EFFORTS)}")
        api = apis.api_for(path)
        try:
            if api is None:
                raise RequestError("only API calls take a reasoning effort")
            api.with_effort(body, effort)
        except RequestError as e:
            raise ReplayError(e.message) from None
    return json.dumps(body, ensure_ascii=False).encode()


def _body_value(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def file_body(req: dict[str, Any], model: str | None = None, effort: str | None = None) -> bytes:
    """A checked file request's body (JSON, or text when it was not JSON) as bytes to send,
    optionally with another model and/or reasoning effort. ReplayError if it cannot be."""
    value = req.get("body")
    try:
        text = value if isinstance(value, str) else json.dumps(value)
        return with_overrides(req["path"], text, model, effort)
    except RecursionError:
        raise ReplayError("the request body is nested too deeply") from None
    except UnicodeEncodeError:
        raise ReplayError("the request body holds text that is not valid Unicode") from None


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
    method = str(req.get("method", "POST"))
    path = redact_query(str(req.get("path", "/")))
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
            "headers": clean_response_headers(oca_response.get("headers") or []),
            "body": oca_response.get("body"),
            "truncated": bool(oca_response.get("truncated")),
        }
    doc["curl"] = curl_line(proxy, method, path, headers, body.encode(), file)
    return doc


def read_repro(data: bytes | str) -> dict[str, Any]:
    """A reproduction file's request, checked: {"method", "path", "headers", "body"}, with
    only safe headers. Anything malformed is a ReplayError saying what, never another
    exception: a file may come from anyone."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ReplayError(f"not UTF-8 text (byte {e.start})") from None
    try:
        doc = json.loads(data)
    except RecursionError:
        raise ReplayError("not a reproduction file: its JSON is nested too deeply") from None
    except ValueError as e:
        raise ReplayError(f"not a JSON file: {e}") from None
    if not isinstance(doc, dict) or doc.get("oca_proxy_repro") != FORMAT:
        raise ReplayError("not an oca-proxy reproduction file (written by `oca.repro`)")
    req = doc.get("request")
    if not isinstance(req, dict) or not isinstance(req.get("path"), str):
        raise ReplayError("the file holds no request")
    method = req.get("method", "POST")
    if not isinstance(method, str) or method not in METHODS:
        raise ReplayError(
            f"request.method must be one of {', '.join(sorted(METHODS))}, not {method!r:.60}"
        )
    path = req["path"]
    if not _PATH.fullmatch(path):
        raise ReplayError(
            f"request.path {path!r:.100} is not a path on the proxy: it must start with a "
            "single / and hold printable ASCII only (a file may only reach the proxy)"
        )
    headers = req.get("headers")
    if headers is None:
        headers = []
    if not isinstance(headers, list) or not all(
        isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in headers
    ):
        raise ReplayError("request.headers must be a list of [name, value] pairs of strings")
    checked = []
    for name, value in headers:
        value = value.strip(" \t")
        if not _HEADER_NAME.fullmatch(name) or not _HEADER_VALUE.fullmatch(value):
            raise ReplayError(f"request header {name!r:.60} has a malformed name or value")
        checked.append([name, value])
    return {
        "method": method,
        "path": path,
        "headers": clean_headers(checked),
        "body": req.get("body"),
    }


def target_url(proxy: str, path: str) -> str:
    """Where a file's request goes: the proxy's address and the (checked) path, on the
    proxy's own scheme, host and port; ReplayError for anything else."""
    try:
        base = urlsplit(proxy)
        url = proxy.rstrip("/") + path
        parts = urlsplit(url)
        same = (parts.scheme, parts.hostname, parts.port) == (base.scheme, base.hostname, base.port)
    except ValueError:
        raise ReplayError(f"the proxy address {proxy!r} is not a URL") from None
    if base.scheme not in ("http", "https") or not base.hostname:
        raise ReplayError(f"the proxy address must be http://HOST:PORT, not {proxy!r}")
    if not same or parts.username is not None or parts.password is not None:
        raise ReplayError(f"{path!r:.100} would not reach the proxy at {proxy}")
    return url
