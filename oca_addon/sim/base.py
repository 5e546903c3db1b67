"""Shared request-handler plumbing: opc-request-id, OCA error JSON, request recording."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import tornado.web

from oca_addon.sim.state import SimState

log = logging.getLogger("oca_addon.sim")

# OpenAI/LiteLLM error "type" per HTTP status.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_denied_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


# OCI's error codes per HTTP status, for the flat {"code", "message"} shape.
_OCI_CODES = {
    400: "InvalidParameter",
    401: "NotAuthenticated",
    403: "NotAllowed",
    404: "NotAuthorizedOrNotFound",
    409: "Conflict",
    413: "PayloadTooLarge",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "internal_server_error" if status >= 500 else "api_error")


class BaseHandler(tornado.web.RequestHandler):
    sim: SimState
    request_id: str

    def initialize(self, sim: SimState) -> None:
        self.sim = sim

    def prepare(self) -> None:
        # Oracle quotes this id back in errors; echo the client's or make one.
        self.request_id = self.request.headers.get("opc-request-id") or uuid.uuid4().hex.upper()
        self.set_header("opc-request-id", self.request_id)

    def compute_etag(self) -> str | None:
        return None  # no hashing of bodies: the simulator is a benchmark baseline

    def send_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(obj, ensure_ascii=False))

    def oca_error(self, status: int, message: str) -> dict[str, Any]:
        return {
            "message": f"{message} (opc-request-id: {self.request_id})",
            "type": error_type(status),
            "code": str(status),
        }

    def send_error_json(self, status: int, message: str, shape: str | None = None) -> None:
        """An API error, in LiteLLM's shape or OCI's flat one (shape, else the error_shape knob)."""
        if status == 429:
            self.set_header("Retry-After", "2")
        if (shape or self.sim.config.error_shape) == "oci":
            code = _OCI_CODES.get(status, str(status))
            text = f"{message} (opc-request-id: {self.request_id})"
            return self.send_json({"code": code, "message": text}, status)
        self.send_json({"error": self.oca_error(status, message)}, status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Tornado's own errors (405, crashes) in the OCA shape too.
        if not hasattr(self, "request_id"):
            self.request_id = uuid.uuid4().hex.upper()
            self.set_header("opc-request-id", self.request_id)
        message = self._reason if status_code < 500 else "Internal server error"
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": self.oca_error(status_code, message)}))

    def record(self, body: Any) -> None:
        req = self.request
        self.sim.record(req.method or "", req.path, dict(req.headers), body)


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        super().prepare()
        self.send_error_json(404, f"Not found: {self.request.path}")
