"""Legacy OpenAI Completions (`/v1/completions`) <-> OCA Chat Completions.

The prompt becomes one user message; the answer's text becomes `text_completion` choices.
`n` is sent upstream and choices are mapped by index. `suffix`, `best_of` and `logprobs`
are not supported by chat models and are ignored. `echo: true` prepends the prompt to
each choice's text.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .. import sse
from ..errors import ApiError, RequestError, openai_error
from ..modelinfo import fit_effort

_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e18:
        return int(value)
    return 0


def _finish(reason: Any) -> str:
    # chat's "tool_calls"/"function_call" have no legacy equivalent: the text simply stopped
    return _FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"


def _status(code: Any) -> int:
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
        return code
    return 502


def _usage(usage: Any) -> dict[str, Any]:
    u = usage if isinstance(usage, dict) else {}
    prompt = _int(u.get("prompt_tokens"))
    completion = _int(u.get("completion_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": _int(u.get("total_tokens")) or prompt + completion,
    }


@dataclass
class CompletionsContext:
    requested_model: str
    prompt: str = ""
    echo: bool = False
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    id: str = field(default_factory=lambda: f"cmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))


def _prompt(body: dict[str, Any]) -> str:
    if "prompt" not in body or body["prompt"] is None:
        raise RequestError("'prompt' is required", param="prompt")
    prompt = body["prompt"]
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        if not prompt:
            raise RequestError("'prompt' must not be an empty array", param="prompt")
        if all(isinstance(p, str) for p in prompt):
            if len(prompt) == 1:
                return str(prompt[0])
            raise RequestError(
                "Only one prompt per request is supported: send one request per prompt.",
                param="prompt",
            )
        raise RequestError(
            "'prompt' must be a string (token arrays are not supported)", param="prompt"
        )
    raise RequestError("'prompt' must be a string or an array of strings", param="prompt")


def completions_to_chat(
    body: dict[str, Any],
    *,
    target_model: str,
    model_info: dict[str, Any] | None = None,
    reasoning_effort: str | None = None,
) -> tuple[dict[str, Any], CompletionsContext]:
    """A legacy completions request -> (OCA /chat/completions request, context)."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    model = body.get("model")
    if model is None:
        raise RequestError("'model' is required", param="model")
    if not isinstance(model, str) or not model.strip():
        raise RequestError("'model' must be a non-empty string", param="model")
    prompt = _prompt(body)

    n = body.get("n", 1)
    if n is None:
        n = 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128:
        raise RequestError("'n' must be an integer between 1 and 128", param="n")
    opts = body.get("stream_options")
    ctx = CompletionsContext(
        requested_model=model,
        prompt=prompt,
        echo=body.get("echo") is True,
        n=n,
        stream=body.get("stream") is True,
        include_usage=isinstance(opts, dict) and opts.get("include_usage") is True,
    )

    info = model_info if isinstance(model_info, dict) else {}
    is_reasoning = info.get("is_reasoning_model") is True
    chat: dict[str, Any] = {
        "model": target_model,
        "messages": [{"role": "user", "content": prompt}],
    }
    if n > 1:
        chat["n"] = n

    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        if not _is_number(max_tokens) or max_tokens < 1:
            raise RequestError("'max_tokens' must be a positive integer", param="max_tokens")
        limit = _int(info.get("max_output_tokens"))
        chat["max_tokens"] = min(int(max_tokens), limit) if limit > 0 else int(max_tokens)

    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            chat["stop"] = stop
        elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
            if stop:
                chat["stop"] = stop
        else:
            raise RequestError("'stop' must be a string or an array of strings", param="stop")

    for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        value = body.get(key)
        if value is None:
            continue
        if not _is_number(value):
            raise RequestError(f"'{key}' must be a number", param=key)
        if not (is_reasoning and key in ("temperature", "top_p")):
            chat[key] = value
    for key in ("seed", "logit_bias", "user"):
        if body.get(key) is not None:
            chat[key] = body[key]

    effort = fit_effort(reasoning_effort, info)  # never a value the model does not list
    if effort:
        chat["reasoning_effort"] = effort

    chat["stream"] = True
    chat["stream_options"] = {"include_usage": True}
    return chat, ctx


def _chunk(ctx: CompletionsContext, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": ctx.id,
        "object": "text_completion",
        "created": ctx.created,
        "model": ctx.requested_model,
        "choices": choices,
    }


class CompletionsStream:
    """Chat chunks -> `text_completion` chunks, then `data: [DONE]`.

    It also keeps every choice's text, so `.completion` (after `finish`) is the whole answer
    as one `text_completion`, with all `n` choices (ChatAssembler keeps only choice 0).
    """

    def __init__(self, ctx: CompletionsContext) -> None:
        self.ctx = ctx
        self.completion: dict[str, Any] | None = None
        self._texts: dict[int, list[str]] = {}
        self._finish: dict[int, str] = {}
        self._usage: dict[str, Any] | None = None
        self._done = False

    def _text_choice(self, index: int, text: str, out: list[bytes]) -> None:
        parts = self._texts.get(index)
        if parts is None:
            parts = self._texts[index] = []
            if self.ctx.echo:
                text = self.ctx.prompt + text
        if not text:
            return
        parts.append(text)
        choice = {"index": index, "text": text, "finish_reason": None, "logprobs": None}
        out.append(sse.encode(_chunk(self.ctx, [choice])))

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if self._done or not isinstance(chunk, dict):
            return b""
        if "error" in chunk and not chunk.get("choices"):
            err = chunk["error"]
            message = err.get("message") if isinstance(err, dict) else err
            return self.fail(502, str(message or "OCA reported an error"))
        out: list[bytes] = []
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict):
                    continue
                index = choice.get("index", 0)
                if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                    continue
                delta = choice.get("delta")
                content = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(content, str) and content:
                    self._text_choice(index, content, out)
                reason = choice.get("finish_reason")
                if isinstance(reason, str) and reason and index not in self._finish:
                    if index not in self._texts:
                        self._text_choice(index, "", out)
                    self._finish[index] = _finish(reason)
                    done = {
                        "index": index,
                        "text": "",
                        "finish_reason": self._finish[index],
                        "logprobs": None,
                    }
                    out.append(sse.encode(_chunk(self.ctx, [done])))
        return b"".join(out)

    def finish(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        out: list[bytes] = []
        for index in range(max(self.ctx.n, max(self._texts, default=-1) + 1)):
            if index not in self._texts:
                self._text_choice(index, "", out)
            if index not in self._finish:
                self._finish[index] = "stop"
                done = {"index": index, "text": "", "finish_reason": "stop", "logprobs": None}
                out.append(sse.encode(_chunk(self.ctx, [done])))
        usage = _usage(self._usage)
        if self.ctx.include_usage:
            out.append(sse.encode({**_chunk(self.ctx, []), "usage": usage}))
        out.append(sse.DONE)
        self.completion = {
            **_chunk(
                self.ctx,
                [
                    {
                        "index": i,
                        "text": "".join(self._texts.get(i, ())),
                        "finish_reason": self._finish.get(i, "stop"),
                        "logprobs": None,
                    }
                    for i in sorted(set(self._texts) | set(self._finish))
                ],
            ),
            "usage": usage,
        }
        return b"".join(out)

    def fail(self, status: int, message: str) -> bytes:
        if self._done:
            return b""
        self._done = True
        body = openai_error(status, message or "OCA request failed")
        return sse.encode(body) + sse.DONE


def chat_to_completion(completion: dict[str, Any], ctx: CompletionsContext) -> dict[str, Any]:
    """An assembled `chat.completion` -> one `text_completion` (all its choices, by index)."""
    choices_in = completion.get("choices") if isinstance(completion, dict) else None
    choices: list[dict[str, Any]] = []
    for n, choice in enumerate(choices_in if isinstance(choices_in, list) else ()):
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = "".join(
                str(p.get("text"))
                for p in content
                if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        text = content if isinstance(content, str) else ""
        index = choice.get("index", n)
        choices.append(
            {
                "index": index if isinstance(index, int) and not isinstance(index, bool) else n,
                "text": (ctx.prompt + text) if ctx.echo else text,
                "finish_reason": _finish(choice.get("finish_reason")),
                "logprobs": None,
            }
        )
    if not choices:
        text = ctx.prompt if ctx.echo else ""
        choices.append({"index": 0, "text": text, "finish_reason": "stop", "logprobs": None})
    choices.sort(key=lambda c: c["index"])
    return {
        **_chunk(ctx, choices),
        "usage": _usage(completion.get("usage") if isinstance(completion, dict) else None),
    }


def chat_stream_to_completion(
    events: list[sse.SSEEvent], ctx: CompletionsContext
) -> dict[str, Any]:
    """A whole upstream chat stream -> one `text_completion` with all `n` choices.

    Raises `ApiError` if the stream carried an error.
    """
    stream = CompletionsStream(ctx)
    for event in events:
        if event.data.strip() == "[DONE]":
            break
        try:
            chunk = json.loads(event.data)
        except ValueError:
            continue
        if not isinstance(chunk, dict):
            continue
        if chunk.get("error") and not chunk.get("choices"):
            err = chunk["error"]
            message = err.get("message") if isinstance(err, dict) else str(err)
            raise ApiError(
                _status(err.get("code") if isinstance(err, dict) else None),
                str(message or "upstream error"),
            )
        stream.feed(chunk)
    stream.finish()
    assert stream.completion is not None
    return stream.completion


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
            status = _status(code)
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
                finish[index] = _finish(reason)
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
        "usage": _usage(usage),
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
