"""Legacy completions request -> OCA /chat/completions request (`completions_to_chat`).

The prompt becomes one user message. `n` is sent upstream and choices are mapped by index.
`suffix`, `best_of` and `logprobs` are not supported by chat models and are ignored.
"""

from __future__ import annotations

from typing import Any

from oca_addon.core.errors import RequestError
from oca_addon.core.modelinfo import fit_effort
from oca_addon.translate.completions.common import CompletionsContext, as_int, is_number
from oca_addon.translate.shapes import ChatRequest


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
) -> tuple[ChatRequest, CompletionsContext]:
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
    chat: ChatRequest = {
        "model": target_model,
        "messages": [{"role": "user", "content": prompt}],
    }
    if n > 1:
        chat["n"] = n

    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        if not is_number(max_tokens) or max_tokens < 1:
            raise RequestError("'max_tokens' must be a positive integer", param="max_tokens")
        limit = as_int(info.get("max_output_tokens"))
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
        if not is_number(value):
            raise RequestError(f"'{key}' must be a number", param=key)
        if not (is_reasoning and key in ("temperature", "top_p")):
            chat[key] = value
    for name in ("seed", "logit_bias", "user"):
        if body.get(name) is not None:
            chat[name] = body[name]

    effort = fit_effort(reasoning_effort, info)  # never a value the model does not list
    if effort:
        chat["reasoning_effort"] = effort

    chat["stream"] = True
    chat["stream_options"] = {"include_usage": True}
    return chat, ctx
