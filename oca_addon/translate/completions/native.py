"""Models that serve /completions natively: the request (`prepare_native_completions`) and the
assembly of its stream into one `text_completion` (`assemble_completion_stream`).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from oca_addon.core import sse
from oca_addon.core.errors import ApiError, RequestError
from oca_addon.core.modelinfo import fit_effort
from oca_addon.translate.completions.common import (
    completion_usage,
    http_status,
    legacy_finish_reason,
)


def assemble_completion_stream(
    events: list[sse.SSEEvent], *, requested_model: str | None = None
) -> dict[str, Any]:
    """A native `/completions` stream -> one `text_completion`.

    `requested_model` (the client's model name) replaces the upstream's in the answer.

    Raises `ApiError` (502, or the status in the error) if the stream carried an error.
    """
    texts: dict[int, list[str]] = {}
    finish: dict[int, str] = {}
    usage: dict[str, Any] | None = None
    head: dict[str, Any] = {}
    for event in events:
        data = event.data
        if not data or data.strip() == "[DONE]":
            continue
        try:
            obj = json.loads(data)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        if obj.get("error"):
            err = obj["error"]
            message = err.get("message") if isinstance(err, dict) else str(err)
            code = err.get("code") if isinstance(err, dict) else None
            status = http_status(code)
            raise ApiError(status, str(message or "upstream error"))
        for key in ("id", "created", "model", "system_fingerprint"):
            if obj.get(key) is not None and key not in head:
                head[key] = obj[key]
        if isinstance(obj.get("usage"), dict):
            usage = obj["usage"]
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            if not isinstance(index, int) or isinstance(index, bool):
                continue
            parts = texts.setdefault(index, [])
            if isinstance(choice.get("text"), str):
                parts.append(choice["text"])
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                finish[index] = legacy_finish_reason(reason)
    out: dict[str, Any] = {
        "id": head.get("id") or f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": head.get("created") or int(time.time()),
        "model": requested_model or head.get("model") or "",
        "choices": [
            {
                "index": i,
                "text": "".join(texts.get(i, ())),
                "finish_reason": finish.get(i, "stop"),
                "logprobs": None,
            }
            for i in sorted(set(texts) | set(finish) or {0})
        ],
        "usage": completion_usage(usage),
    }
    if head.get("system_fingerprint"):
        out["system_fingerprint"] = head["system_fingerprint"]
    return out


def prepare_native_completions(
    body: dict[str, Any], *, target_model: str, model_info: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The request for a model that serves /completions itself (always streamed, with usage)."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise RequestError("'model' must be a non-empty string", param="model")
    if body.get("prompt") is None:
        raise RequestError("'prompt' is required", param="prompt")
    out = dict(body)
    out["model"] = target_model
    out["stream"] = True
    if "reasoning_effort" in out:
        effort = fit_effort(out.pop("reasoning_effort"), model_info)
        if effort:
            out["reasoning_effort"] = effort
    opts = body.get("stream_options")
    out["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
    return out
