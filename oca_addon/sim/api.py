"""The OCA (LiteLLM) API handlers: model info, chat, responses, messages, completions, embeddings.

Validation is as strict as the real gateway where it matters to the proxy:
bearer token, oca/ model ids, supported_api_list, stream=true, image rules.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from tornado.iostream import StreamClosedError

from . import llm, streams
from .base import BaseHandler
from .models import (
    CHAT_COMPLETIONS,
    COMPLETIONS,
    EMBEDDINGS,
    MESSAGES,
    MODELS,
    RESPONSES,
    SimModel,
    model_info_payload,
)
from .state import SimState

PREFIX = "/20250206/app/litellm"

API_PATHS = {
    CHAT_COMPLETIONS: "/chat/completions",
    RESPONSES: "/responses",
    MESSAGES: "/v1/messages",
    COMPLETIONS: "/completions",
    EMBEDDINGS: "/embeddings",
}

_EXTRACTORS: dict[str, Callable[[dict[str, Any]], llm.Conversation]] = {
    CHAT_COMPLETIONS: llm.from_chat,
    RESPONSES: llm.from_responses,
    MESSAGES: llm.from_messages,
    COMPLETIONS: llm.from_completions,
}

_ERROR_FRAMES: dict[str, Callable[[dict[str, Any], int], bytes]] = {
    CHAT_COMPLETIONS: streams.chat_error_frame,
    RESPONSES: streams.responses_error_frame,
    MESSAGES: streams.messages_error_frame,
    COMPLETIONS: streams.chat_error_frame,
}

_SPLIT_PAUSE = 0.001  # seconds between split writes, so they reach the client apart


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class ApiBase(BaseHandler):
    def check_token(self) -> None:
        auth = self.request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not self.sim.access_token_valid(token.strip()):
            raise ApiError(401, "Authentication Error: invalid, expired or missing access token")

    def fail(self, e: ApiError) -> None:
        self.sim.api_errors[str(e.status)] += 1
        self.send_error_json(e.status, e.message)


class ModelInfoHandler(ApiBase):
    def get(self) -> None:
        self.sim.api_requests[self.request.path] += 1
        self.record(None)
        try:
            self.check_token()
        except ApiError as e:
            return self.fail(e)
        self.send_json(model_info_payload())


class ApiHandler(ApiBase):
    api: str

    def initialize(self, sim: SimState, api: str) -> None:  # type: ignore[override]
        super().initialize(sim)
        self.api = api

    async def post(self) -> None:
        self.sim.api_requests[self.request.path] += 1
        raw = self.request.body.decode("utf-8", "replace")
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        self.record(body if body is not None else raw[:2000])
        try:
            self.check_token()
            if not isinstance(body, dict):
                raise ApiError(400, "Invalid JSON in request body")
            model = self.check_model(body)
            if self.api == EMBEDDINGS:
                return self.embeddings(model, body)
            if body.get("stream") is not True:
                raise ApiError(400, 'Streaming is required by this gateway: send "stream": true')
            self.check_body(model, body)
        except ApiError as e:
            return self.fail(e)
        await self.answer(model, body)

    # --- validation ----------------------------------------------------------------

    def check_model(self, body: dict[str, Any]) -> SimModel:
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "model is required")
        model = MODELS.get(name)
        if model is None or not name.startswith("oca/"):
            raise ApiError(
                400,
                f"Invalid model name passed in model={name}. "
                "Call `/v1/model/info` to view available models",
            )
        if not model.supports(self.api):
            raise ApiError(
                400,
                f"Model {name} does not support the {API_PATHS[self.api]} API "
                f"(supported_api_list: {list(model.supported_api_list)})",
            )
        return model

    def check_body(self, model: SimModel, body: dict[str, Any]) -> None:
        if self.api == CHAT_COMPLETIONS:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise ApiError(400, "messages must be a non-empty list")
            for m in messages:
                for part in _parts(m):
                    if part.get("type") == "image_url":
                        self.check_image(model)
                        image = part.get("image_url")
                        if isinstance(image, dict) and "detail" in image:
                            raise ApiError(
                                400, "Invalid content part: image_url.detail is not supported"
                            )
            limit_key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
            self.check_effort(model, body.get("reasoning_effort"))
        elif self.api == RESPONSES:
            if not isinstance(body.get("input"), str | list):
                raise ApiError(400, "input must be a string or a list of items")
            for item in body["input"] if isinstance(body["input"], list) else []:
                if any(p.get("type") == "input_image" for p in _parts(item)):
                    self.check_image(model)
            reasoning = body.get("reasoning")
            self.check_effort(
                model, reasoning.get("effort") if isinstance(reasoning, dict) else None
            )
            limit_key = "max_output_tokens"
        elif self.api == MESSAGES:
            if not isinstance(body.get("messages"), list) or not body["messages"]:
                raise ApiError(400, "messages: Field required (non-empty list)")
            if not isinstance(body.get("max_tokens"), int):
                raise ApiError(400, "max_tokens: Field required")
            for m in body["messages"]:
                for block in _parts(m):
                    nested = block.get("content") if block.get("type") == "tool_result" else None
                    blocks = [block, *(b for b in nested or [] if isinstance(b, dict))]
                    if any(b.get("type") == "image" for b in blocks):
                        self.check_image(model)
            limit_key = "max_tokens"
        else:  # COMPLETIONS
            if not isinstance(body.get("prompt"), str | list):
                raise ApiError(400, "prompt is required")
            limit_key = "max_tokens"
        limit = body.get(limit_key)
        if (
            self.sim.config.enforce_max_tokens
            and isinstance(limit, int)
            and model.max_output_tokens is not None
            and limit > model.max_output_tokens
        ):
            raise ApiError(
                400,
                f"{limit_key} is too large: {limit}. This model supports at most "
                f"{model.max_output_tokens} completion tokens",
            )

    def check_image(self, model: SimModel) -> None:
        if not model.supports_vision:
            raise ApiError(400, f"Model {model.name} does not support image inputs")

    def check_effort(self, model: SimModel, effort: Any) -> None:
        if (
            effort is not None
            and model.is_reasoning_model
            and effort not in model.reasoning_effort_options
        ):
            raise ApiError(
                400,
                f"Unsupported reasoning effort {effort!r} for {model.name}; "
                f"supported: {list(model.reasoning_effort_options)}",
            )

    # --- answers -------------------------------------------------------------------

    def embeddings(self, model: SimModel, body: dict[str, Any]) -> None:
        raw = body.get("input")
        if isinstance(raw, str):
            inputs = [raw]
        elif isinstance(raw, list) and raw:
            inputs = [x if isinstance(x, str) else json.dumps(x) for x in raw]
        else:
            raise ApiError(400, "input must be a string or a non-empty list")
        data = [
            {"object": "embedding", "index": i, "embedding": streams.embedding_vector(text)}
            for i, text in enumerate(inputs)
        ]
        tokens = max(1, sum(len(t) for t in inputs) // 4)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        self.send_json({"object": "list", "data": data, "model": model.name, "usage": usage})

    async def answer(self, model: SimModel, body: dict[str, Any]) -> None:
        conv = _EXTRACTORS[self.api](body)
        d = llm.parse_directives(conv.user_text)
        if d.error is not None:
            return self.fail(ApiError(d.error, f"Simulated upstream error {d.error}"))
        if d.html:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(streams.HTML_PAGE)
            return
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        if d.garbage:
            return await self.stream(list(streams.GARBAGE_FRAMES), llm.Directives())

        plan = llm.build_plan(model, conv, d)
        if self.api == CHAT_COMPLETIONS:
            frames = streams.chat_frames(plan, body)
        elif self.api == RESPONSES:
            frames = streams.responses_frames(plan, body, self.sim.config.empty_final_output)
        elif self.api == MESSAGES:
            frames = streams.messages_frames(plan, body)
        else:
            frames = streams.completion_frames(plan, body)

        if d.midstream_error or d.cut:  # strike halfway through the answer
            frames = frames[: max(1, len(frames) // 2)]
        if d.midstream_error:
            error = self.oca_error(500, "Simulated mid-stream upstream error")
            frames.append(_ERROR_FRAMES[self.api](error, len(frames)))
        await self.stream(frames, d)

    async def stream(self, frames: list[bytes], d: llm.Directives) -> None:
        """Write and flush frame by frame, honouring ttft/slow/split/cut."""
        pieces = streams.split_bytes(b"".join(frames)) if d.split else frames
        try:
            if d.ttft_ms:
                await asyncio.sleep(d.ttft_ms / 1000)
            for i, piece in enumerate(pieces):
                if i and d.slow_ms:
                    await asyncio.sleep(d.slow_ms / 1000)
                elif i and d.split:
                    await asyncio.sleep(_SPLIT_PAUSE)
                self.write(piece)
                await self.flush()
        except StreamClosedError:
            return  # the client went away
        if d.cut:
            # Drop the TCP connection without the terminating chunk.
            self.detach().close()
            return
        self.finish()


def _parts(message: Any) -> list[dict[str, Any]]:
    """Content parts/blocks of a message-like item (empty for string content)."""
    content = message.get("content") if isinstance(message, dict) else None
    return [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []
