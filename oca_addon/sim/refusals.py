"""What a model REALLY refuses, whatever its model-list entry announces (the `refusals` knob).

OCA is a LiteLLM proxy: the model list is a hint, not a contract (OCA-FACTS.md, "When OCA
refuses"). A model may refuse a parameter nothing announces, take other reasoning efforts
than `reasoning_effort_options` lists, and fewer output tokens than `max_output_tokens`
says. The knob, per model id:

    {"oca/x": {"params": ["temperature", "reasoning.effort"],   # refused when carried
               "efforts": ["low", "high"],                       # the only efforts taken
               "max_output_tokens": 1000}}                       # the real output maximum

Each key is optional. A refusal is answered as LiteLLM does: HTTP 400,
`{"error": {"message", "type": null, "param": null, "code": "400"}}`, with LiteLLM's and the
providers' own wordings (sourced in OCA-FACTS.md). Pure: no tornado, no state.
"""

from __future__ import annotations

from typing import Any

from oca_addon.sim.models import CHAT_COMPLETIONS, COMPLETIONS, MESSAGES, RESPONSES

KEYS = ("params", "efforts", "max_output_tokens")

# Where each API carries the requested output maximum (first present wins).
_LIMIT_KEYS: dict[str, tuple[str, ...]] = {
    CHAT_COMPLETIONS: ("max_completion_tokens", "max_tokens"),
    COMPLETIONS: ("max_tokens",),
    RESPONSES: ("max_output_tokens",),
    MESSAGES: ("max_tokens",),
}

_BAD_REQUEST = "litellm.BadRequestError: OpenAIException - "
_ANTHROPIC = "litellm.BadRequestError: AnthropicException - "


def validate(value: Any) -> dict[str, dict[str, Any]]:
    """The knob's value, checked and normalised; ValueError says what is wrong."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("refusals must be a JSON object: {model id: {params, efforts, ...}}")
    out: dict[str, dict[str, Any]] = {}
    for model, spec in value.items():
        if not isinstance(model, str) or not isinstance(spec, dict):
            raise ValueError(f"refusals[{model!r}] must be an object")
        unknown = set(spec) - set(KEYS)
        if unknown:
            raise ValueError(f"refusals[{model!r}]: unknown keys {sorted(unknown)} (known: {KEYS})")
        entry: dict[str, Any] = {}
        for key in ("params", "efforts"):
            if key in spec:
                names = spec[key]
                if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                    raise ValueError(f"refusals[{model!r}].{key} must be a list of strings")
                entry[key] = list(names)
        if "max_output_tokens" in spec:
            cap = spec["max_output_tokens"]
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
                raise ValueError(
                    f"refusals[{model!r}].max_output_tokens must be a positive integer"
                )
            entry["max_output_tokens"] = cap
        out[model] = entry
    return out


def error_body(message: str) -> dict[str, Any]:
    """LiteLLM's 400 body: the reason is only in the message."""
    return {"error": {"message": message, "type": None, "param": None, "code": "400"}}


def check(api: str, model: str, body: dict[str, Any], spec: dict[str, Any] | None) -> str | None:
    """The refusal message for this request to `model` on `api`, None if it is taken."""
    if spec is None:
        return None
    refused = [p for p in spec.get("params", ()) if carried(body, p)]
    if refused:
        return unsupported_params(refused, model)
    effort_key, effort = _effort(api, body)
    efforts = spec.get("efforts")
    if effort is not None and efforts is not None and effort not in efforts:
        if not efforts:  # the model takes no effort at all
            return unsupported_params([effort_key], model)
        return (
            f"{_BAD_REQUEST}Unsupported value: '{effort_key}' does not support {effort!r} with "
            f"this model. Supported values are: {quoted_list(efforts)}."
        )
    return _check_limit(api, model, body, spec.get("max_output_tokens"))


def _check_limit(api: str, model: str, body: dict[str, Any], cap: int | None) -> str | None:
    key = next((k for k in _LIMIT_KEYS.get(api, ()) if _int(body.get(k)) is not None), None)
    asked = _int(body.get(key)) if key else None
    if cap is not None and asked is not None and asked > cap:
        if api == RESPONSES:
            return (
                f"{_BAD_REQUEST}Invalid 'max_output_tokens': integer above maximum value. "
                f"Expected a value <= {cap}, but got {asked} instead."
            )
        if api == MESSAGES:
            return (
                f"{_ANTHROPIC}max_tokens: {asked} > {cap}, which is the maximum allowed number "
                f"of output tokens for {model}"
            )
        return (
            f"{_BAD_REQUEST}{key} is too large: {asked}. This model supports at most {cap} "
            f"completion tokens, whereas you provided {asked}."
        )
    thinking = body.get("thinking")
    budget = _int(thinking.get("budget_tokens")) if isinstance(thinking, dict) else None
    over = budget is not None and asked is not None and budget >= asked
    if api in (MESSAGES, CHAT_COMPLETIONS) and over:  # Anthropic's own rule, via LiteLLM
        return (
            f"{_ANTHROPIC}`max_tokens` must be greater than `thinking.budget_tokens`. "
            "Please consult our documentation at https://docs.claude.com/en/docs/"
            "build-with-claude/extended-thinking#max-tokens-and-context-window-size"
        )
    return None


def unsupported_params(names: list[str], model: str) -> str:
    return (
        f"litellm.UnsupportedParamsError: openai does not support parameters: {names!r}, "
        f"for model={model}. To drop these, set litellm.drop_params=True or for proxy:\n\n"
        f"`litellm_settings:\n drop_params: true`\n\n"
        f"Received Model Group={model}\nAvailable Model Group Fallbacks=None"
    )


def quoted_list(values: list[str]) -> str:
    """'a'; 'a' and 'b'; 'a', 'b', and 'c' (OpenAI's wording)."""
    quoted = [f"'{v}'" for v in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def carried(body: dict[str, Any], name: str) -> bool:
    """The request carries `name` (dotted: a nested field, e.g. reasoning.effort), not null."""
    value: Any = body
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return value is not None


def _effort(api: str, body: dict[str, Any]) -> tuple[str, Any]:
    if api == RESPONSES:
        reasoning = body.get("reasoning")
        return "reasoning.effort", reasoning.get("effort") if isinstance(reasoning, dict) else None
    return "reasoning_effort", body.get("reasoning_effort")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
