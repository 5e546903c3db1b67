"""Error envelopes in the shape of the API the client called.

OpenAI:    {"error": {"message", "type", "param", "code"}}
Anthropic: {"type": "error", "error": {"type", "message"}}
"""

from __future__ import annotations

import json
from typing import Any, Literal

ApiFlavor = Literal["openai", "anthropic"]


class ApiError(Exception):
    """A failure to report to the client with an HTTP status, in its API's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}


class RequestError(ApiError):
    """The client sent something we cannot use (always a 4xx)."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400) -> None:
        super().__init__(status, message, param=param, code="invalid_request_error")


_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def openai_error_type(status: int) -> str:
    return _OPENAI_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def anthropic_error_type(status: int) -> str:
    return _ANTHROPIC_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def openai_error(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": openai_error_type(status),
            "param": param,
            "code": code,
        }
    }


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": anthropic_error_type(status), "message": message}}


def error_body(flavor: ApiFlavor, status: int, message: str, **kw: Any) -> dict[str, Any]:
    if flavor == "anthropic":
        return anthropic_error(status, message)
    return openai_error(status, message, **kw)


def error_bytes(flavor: ApiFlavor, status: int, message: str, **kw: Any) -> bytes:
    return json.dumps(error_body(flavor, status, message, **kw)).encode()


def upstream_error_message(body: bytes, status: int) -> str:
    """Pull a human message out of whatever the upstream sent (JSON error, HTML, text)."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("error_description") or err.get("detail")
            if isinstance(msg, str) and msg:
                return msg
            if isinstance(err.get("error"), str):
                return str(err["error"])
        elif isinstance(err, str):
            return err
        if isinstance(data.get("detail"), str):
            return str(data["detail"])
    if text.lower().startswith(("<!doctype", "<html")) or "<html" in text[:200].lower():
        return f"OCA answered {status} with an HTML page instead of JSON"
    if not text:
        return f"OCA answered {status} with an empty body"
    return text[:500]
