"""Answers the addons give themselves, in the called API's error shape."""

from __future__ import annotations

from mitmproxy import http

from oca_addon.core.errors import ApiError, ApiFlavor, error_bytes
from oca_addon.core.stats import RequestRecord

JSON = {"content-type": "application/json"}


def reply_error(
    flow: http.HTTPFlow,
    flavor: ApiFlavor,
    err: ApiError,
    record: RequestRecord | None = None,
) -> None:
    kw = {} if flavor == "anthropic" else {"param": err.param, "code": err.code}
    headers = {**JSON, **err.headers}
    if record is not None:
        headers["opc-request-id"] = record.request_id
        record.status = err.status
        record.error = record.error or err.message
    flow.response = http.Response.make(
        err.status, error_bytes(flavor, err.status, err.message, **kw), headers
    )
