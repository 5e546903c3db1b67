"""The OCA (LiteLLM) API handlers: model info, chat, responses, messages, completions, embeddings.

Known rules always hold (bearer token, oca/ model ids); every rule no source
confirms is a guess that SimConfig can switch off (see config.GUESSES, README).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from tornado.iostream import StreamClosedError

from oca_addon.sim import cache, llm, refusals, streams, whole
from oca_addon.sim.base import BaseHandler
from oca_addon.sim.models import (
    CHAT_COMPLETIONS,
    COMPLETIONS,
    EMBEDDINGS,
    MESSAGES,
    RESPONSES,
    SimModel,
)
from oca_addon.sim.state import SimState

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
    def __init__(
        self, status: int, message: str, shape: str | None = None, body: Any = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.shape = status, message, shape
        self.body = body  # sent as it is (LiteLLM's own refusals), instead of the usual shape


class ApiBase(BaseHandler):
    def check_token(self) -> None:
        auth = self.request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not self.sim.access_token_valid(token.strip()):
            raise ApiError(401, "Authentication Error: invalid, expired or missing access token")

    def fail(self, e: ApiError) -> None:
        self.sim.api_errors[str(e.status)] += 1
        if e.body is not None:
            return self.send_json(e.body, e.status)
        self.send_error_json(e.status, e.message, e.shape)


class ModelInfoHandler(ApiBase):
    def get(self) -> None:
        self.sim.api_requests[self.request.path] += 1
        self.record(None)
        try:
            self.check_token()
        except ApiError as e:
            return self.fail(e)
        self.send_json(self.sim.model_info())


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
        cfg = self.sim.config
        try:
            if (self.api == EMBEDDINGS and not cfg.serves_embeddings) or (
                self.api == COMPLETIONS and not cfg.serves_completions
            ):
                # Like any path the gateway does not serve (see NotFoundHandler).
                raise ApiError(404, f"Not found: {self.request.path}")
            self.check_token()
            if not isinstance(body, dict):
                raise ApiError(400, "Invalid JSON in request body")
            model = self.check_model(body)
            if self.api == EMBEDDINGS:
                return self.embeddings(model, body)
            if body.get("stream") is not True and cfg.stream_only:
                raise ApiError(400, 'Streaming is required by this gateway: send "stream": true')
            self.check_body(model, body)
            check_tools(body.get("tools"))
        except ApiError as e:
            return self.fail(e)
        await self.answer(model, body)

    # --- validation ----------------------------------------------------------------

    def check_model(self, body: dict[str, Any]) -> SimModel:
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "model is required")
        invalid = (
            f"Invalid model name passed in model={name}. "
            "Call `/v1/models` to view available models for your key."
        )
        if not name.startswith("oca/"):
            raise ApiError(400, invalid)  # known: names without oca/ get a 400
        model = self.sim.models.get(name)
        if model is None:
            if self.sim.config.unknown_model_message:
                raise ApiError(400, invalid)
            raise ApiError(404, f"Model {name} not found")
        # What the model really refuses wins over every guess below (refusals.py).
        spec = self.sim.config.refusals.get(name) if self.api != EMBEDDINGS else None
        refused = refusals.check(self.api, name, body, spec)
        if refused is not None:
            raise ApiError(400, refused, body=refusals.error_body(refused))
        if not self.made_for(model) and self.sim.config.rejects_unlisted_api:
            raise ApiError(
                400,
                f"Model {name} does not support the {API_PATHS[self.api]} API "
                f"(supported_api_list: {_listed(model)})",
            )
        return model

    def made_for(self, model: SimModel) -> bool:
        """Whether the model's list (or its kind) covers this endpoint."""
        if self.api == EMBEDDINGS:
            return model.embedding
        if model.embedding:
            return False
        return self.api == COMPLETIONS or model.supports(self.api)

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
                        detail = isinstance(image, dict) and "detail" in image
                        if detail and self.sim.config.reject_image_detail:
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
        limit, cap = body.get(limit_key), model.output_limit
        if (
            self.sim.config.enforce_max_tokens
            and isinstance(limit, int)
            and cap is not None
            and limit > cap
        ):
            raise ApiError(
                400,
                f"{limit_key} is too large: {limit}. This model supports at most "
                f"{cap} completion tokens",
            )

    def check_image(self, model: SimModel) -> None:
        if not model.supports_vision:
            raise ApiError(400, f"Model {model.name} does not support image inputs")

    def check_effort(self, model: SimModel, effort: Any) -> None:
        if (
            effort is not None
            and self.sim.config.enforce_effort_options
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
        self.send_json({"object": "list", "data": data, "model": model.id, "usage": usage})

    async def answer(self, model: SimModel, body: dict[str, Any]) -> None:
        cfg = self.sim.config
        conv = _EXTRACTORS[self.api](body)
        d = llm.parse_directives(conv.user_text)
        if d.error is not None:
            return self.fail(
                ApiError(d.error, f"Simulated upstream error {d.error}", d.error_shape)
            )
        if d.html:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(streams.HTML_PAGE)
            return

        plan = llm.build_plan(model, conv, d, thinking=_thinking(model, body))
        if model.supports_caching:
            found = cache.prefixes(self.api, body)
            read, created = cache.account(
                self.sim.prompt_cache, model.id, found, plan.prompt_tokens
            )
            plan.cached_tokens, plan.cache_creation_tokens = read, created
        if body.get("stream") is not True:  # only reached with the stream_only guess off
            return self.send_json(self.whole_answer(plan, body))

        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        if d.garbage:
            return await self.stream(list(streams.GARBAGE_FRAMES), llm.Directives())
        if self.api == CHAT_COMPLETIONS:
            frames = streams.chat_frames(plan, body, cfg.reasoning_field)
        elif self.api == RESPONSES:
            frames = streams.responses_frames(plan, body, cfg.empty_final_output)
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

    def whole_answer(self, plan: llm.Plan, body: dict[str, Any]) -> Any:
        cfg = self.sim.config
        if self.api == CHAT_COMPLETIONS:
            return whole.chat_answer(plan, cfg.reasoning_field)
        if self.api == RESPONSES:
            return whole.responses_answer(plan, body, cfg.empty_final_output)
        if self.api == MESSAGES:
            return whole.messages_answer(plan)
        return whole.completion_answer(plan)

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


def _listed(model: SimModel) -> Any:
    return None if model.supported_api_list is None else list(model.supported_api_list)


def _thinking(model: SimModel, body: dict[str, Any]) -> bool:
    """thinking: {type: enabled, budget_tokens} on a model that has a thinking_config."""
    thinking = body.get("thinking")
    return (
        model.thinking_config is not None
        and isinstance(thinking, dict)
        and thinking.get("type") == "enabled"
    )


def _parts(message: Any) -> list[dict[str, Any]]:
    """Content parts/blocks of a message-like item (empty for string content)."""
    content = message.get("content") if isinstance(message, dict) else None
    return [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []


def check_tools(tools: Any) -> None:
    """A gateway answers malformed tools with a 400 (as LiteLLM's validation does), never a 500."""
    if tools is None:
        return
    if not isinstance(tools, list):
        raise ApiError(400, "tools: Input should be a valid list")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise ApiError(400, f"tools[{i}]: Input should be a valid dictionary")
        # The schema of a chat function, a Responses function or a Messages tool.
        fn = tool.get("function")
        where = (
            [(f"tools[{i}].function.parameters", fn.get("parameters"))]
            if isinstance(fn, dict)
            else []
        )
        where += [(f"tools[{i}].{key}", tool.get(key)) for key in ("parameters", "input_schema")]
        for path, schema in where:
            if schema is not None and not isinstance(schema, dict):
                raise ApiError(400, f"{path}: Input should be a valid dictionary")
