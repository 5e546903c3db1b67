"""oca_addon/core/refusals.py: OCA's refusals read, fixed, learned.

Every wording below is a real one, quoted from the public thread named in its comment (the
model and numbers as found there)."""

from __future__ import annotations

import copy
import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oca_addon.core.refusals import (
    EFFORT_FIELDS,
    Fact,
    LearnedFacts,
    Refusal,
    apply_fact,
    canonical,
    fix_request,
    parse_refusal,
)

TAIL = "\nReceived Model Group=oca/gpt-5\nAvailable Model Group Fallbacks=None"

# -- the wordings ---------------------------------------------------------------------------

WORDINGS: list[tuple[str, Refusal]] = [
    # LiteLLM's own check, list form (OCA-FACTS; LiteLLM's utils.py message).
    (
        "litellm.UnsupportedParamsError: openai does not support parameters: ['temperature'],"
        " for model=o1-mini. To drop these, set `litellm.drop_params=True` or for proxy:\n\n"
        "`litellm_settings:\n drop_params: true`\n",
        Refusal("param", params=("temperature",)),
    ),
    # Older LiteLLM, dict form: cognee's write-up of a Mistral call (found via code search).
    (
        "litellm.UnsupportedParamsError: mistral does not support parameters: "
        "{'dimensions': 1024}, for model=mistral-embed",
        Refusal("param", params=("dimensions",)),
    ),
    # Several at once, double quotes.
    (
        'litellm.UnsupportedParamsError: openai does not support parameters: ["temperature",'
        ' "top_p"], for model=o1. To drop these, set `litellm.drop_params=True`',
        Refusal("param", params=("temperature", "top_p")),
    ),
    # Newer LiteLLM: BerriAI/litellm#33738 (chat and responses forms).
    (
        '{"error":{"message":"litellm.UnsupportedParamsError: gpt-5-nano doesn\'t support '
        "temperature=0.1 while reasoning is active. Only temperature=1 is supported unless "
        "reasoning_effort resolves to 'none', either set explicitly on the request or declared"
        " as the model's default_reasoning_effort. To drop unsupported params set "
        "`litellm.drop_params = True`. Received Model Group=gpt-5-nano-env\\nAvailable Model "
        'Group Fallbacks=None","type":"invalid_request_error","param":null,"code":"400"}}',
        Refusal("param", params=("temperature",)),
    ),
    # OpenAI via LiteLLM: BerriAI/litellm#10791.
    (
        "litellm.BadRequestError: OpenAIException - Unrecognized request argument supplied:"
        " system_prompt",
        Refusal("param", params=("system_prompt",)),
    ),
    # xAI via LiteLLM, JSON in the message, the proxy's tail: BerriAI/litellm#14056.
    (
        'litellm.BadRequestError: XaiException - {"code":"Client specified an invalid argument",'
        '"error":"Argument not supported on this model: frequencyPenalty"}\nNo fallback model'
        " group found for original model_group=grok-4. Fallbacks=[{'mf-1': ['deepseek-v3']}]."
        " Received Model Group=grok-4\nAvailable Model Group Fallbacks=None",
        Refusal("param", params=("frequencyPenalty",)),
    ),
    # OCA-FACTS ("More public wordings").
    (
        "litellm.BadRequestError: OpenAIException - Unknown parameter: 'reasoningSummary'." + TAIL,
        Refusal("param", params=("reasoningSummary",)),
    ),
    # kd-research/Techies#42.
    (
        "litellm.exceptions.BadRequestError: litellm.BadRequestError: OpenAIException - "
        "Unsupported parameter: 'stop' is not supported with this model.",
        Refusal("param", params=("stop",)),
    ),
    # griptape-ai/ComfyUI-Griptape#312 (OpenAI's body, as the SDK prints it).
    (
        "Error code: 400 - {'error': {'message': \"Unsupported parameter: 'max_tokens' is not "
        "supported with this model. Use 'max_completion_tokens' instead.\", 'type': "
        "'invalid_request_error', 'param': 'max_tokens', 'code': 'unsupported_parameter'}}",
        Refusal("param", params=("max_tokens",), rename_to="max_completion_tokens"),
    ),
    # OCA-FACTS (OpenAI's wording through LiteLLM).
    (
        "litellm.BadRequestError: OpenAIException - Unsupported value: 'reasoning_effort' does"
        " not support 'none' with this model. Supported values are: 'minimal', 'low', 'medium',"
        " and 'high'." + TAIL,
        Refusal(
            "value",
            field="reasoning_effort",
            value="none",
            supported=("minimal", "low", "medium", "high"),
        ),
    ),
    # OCA-FACTS (Azure-hosted model).
    (
        "litellm.BadRequestError: AzureException BadRequestError - Unsupported value: "
        "'reasoning_effort' does not support 'none' with this model. Supported values are: "
        "'low', 'medium', 'high', and 'xhigh'.",
        Refusal(
            "value",
            field="reasoning_effort",
            value="none",
            supported=("low", "medium", "high", "xhigh"),
        ),
    ),
    # The Responses API names the field reasoning.effort (same wording), whole body text.
    (
        json.dumps(
            {
                "error": {
                    "message": "litellm.BadRequestError: OpenAIException - Unsupported value: "
                    "'reasoning.effort' does not support 'minimal' with this model. Supported "
                    "values are: 'low', 'medium', and 'high'." + TAIL,
                    "type": None,
                    "param": None,
                    "code": "400",
                }
            }
        ),
        Refusal(
            "value",
            field="reasoning.effort",
            value="minimal",
            supported=("low", "medium", "high"),
        ),
    ),
    # holoviz/lumen#1087 (OpenAI, temperature): only the default -> drop it.
    (
        "BadRequestError: Error code: 400 - {'error': {'message': \"Unsupported value: "
        "'temperature' does not support 0.2 with this model. Only the default (1) value is "
        "supported.\", 'type': 'invalid_request_error', 'param': 'temperature', 'code': "
        "'unsupported_value'}}",
        Refusal("param", params=("temperature",)),
    ),
    # enoch3712/ExtractThinker#346.
    (
        "litellm.BadRequestError: OpenAIException - max_tokens is too large: 32000. This model"
        " supports at most 16384 completion tokens, whereas you provided 32000.",
        Refusal("max_tokens", maximum=16384),
    ),
    # ChatGPTNextWeb/NextChat#3195 (whole body).
    (
        '{\n  "error": {\n    "message": "max_tokens is too large: 8192. This model supports at'
        ' most 4096 completion tokens, whereas you provided 8192.",\n    "type": '
        '"invalid_request_error",\n    "param": "max_tokens",\n    "code": null\n  }\n}',
        Refusal("max_tokens", maximum=4096),
    ),
    # Anthropic's wording (the brief; Anthropic's API for Claude Opus 4).
    (
        "litellm.BadRequestError: AnthropicException - "
        '{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: 64000 >'
        " 32000, which is the maximum allowed number of output tokens for "
        'claude-opus-4-20250514"}}' + TAIL,
        Refusal("max_tokens", maximum=32000),
    ),
    # OpenAI Responses (the brief).
    (
        "litellm.BadRequestError: OpenAIException - Invalid 'max_output_tokens': integer above"
        " maximum value. Expected a value <= 128000, but got 200000 instead.",
        Refusal("max_tokens", maximum=128000),
    ),
    # Gitlawb/openclaude#331 (Volcengine's wording of the same check).
    (
        'API Error: 400 {"error":{"code":"InvalidParameter","message":"The parameter '
        "`max_completion_tokens` specified in the request are not valid: integer above maximum"
        " value, expected a value <= 12288, but got 32000 instead. Request id: "
        '0217752964393142fa50af54af66c5cfb922304bfd59ea286af93","param":"max_completion_tokens",'
        '"type":"BadRequest"}}',
        Refusal("max_tokens", maximum=12288),
    ),
    # Anthropic through Claude Code: anthropics/claude-code#24451 (as the terminal wrapped it).
    (
        'API Error: 400 {"type":"error","error":{"type":"invalid_request_error","message":'
        '"max_tokens: 128001 > 64000, which is the maximum allowed number of\n    output tokens'
        ' for claude-opus-4-5-20251101"},"request_id":"req_011CXxg3eqF8ZMvqtkKHNjKQ"}',
        Refusal("max_tokens", maximum=64000),
    ),
    # Groq: skapadia3214/groq-moa#8.
    (
        "BadRequestError: Error code: 400 - {'error': {'message': 'max_tokens for "
        "`llama-3.1-8b-instant` must be less than or equal to 8000', 'type': "
        "'invalid_request_error'}}",
        Refusal("max_tokens", maximum=8000),
    ),
    # DeepSeek: nickscamara/open-deep-research#19.
    (
        "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]",
        Refusal("max_tokens", maximum=8192),
    ),
    # Anthropic through LiteLLM and Bedrock: anthropics/claude-code#49548.
    (
        'API Error: 400 {"error":{"message":"{"message":"context_management: Extra inputs are'
        ' not permitted"}. Received Model Group=bedrock-sonnet-4.5\nAvailable Model Group '
        'Fallbacks=None","type":"None","param":"None","code":"400"}}',
        Refusal("param", params=("context_management",)),
    ),
    # Bedrock: anthropics/claude-code-action#1005 (a dotted object path).
    (
        "API Error: 400 output_config.effort: Extra inputs are not permitted",
        Refusal("param", params=("output_config.effort",)),
    ),
    # Vertex (Anthropic) through LiteLLM: BerriAI/litellm#14365.
    (
        '{"error":{"message":"litellm.BadRequestError: VertexAIException BadRequestError - '
        'b\'{\\"type\\":\\"error\\",\\"error\\":{\\"type\\":'
        '\\"invalid_request_error\\",\\"message\\":\\"prompt_cache_key: '
        'Extra inputs are not permitted\\"},\\"request_id\\":\\"req_vrtx_xyz'
        "\\\"}'. Received Model Group=claude-sonnet-4\\nAvailable Model Group "
        'Fallbacks=None","type":null,"param":null,"code":"400"}}',
        Refusal("param", params=("prompt_cache_key",)),
    ),
    # Bedrock through LiteLLM: BerriAI/litellm#13609.
    (
        'litellm.BadRequestError: BedrockException - {\\"message\\":\\"The model returned '
        'the following errors: reasoning: Extra inputs are not permitted\\"}',
        Refusal("param", params=("reasoning",)),
    ),
    # Anthropic through Bedrock and LiteLLM: skydiscover-ai/skydiscover#15.
    (
        "LLM error: Error code: 400 - {'error': {'message': 'litellm.BadRequestError: "
        'BedrockException - {"message":"The model returned the following errors: `temperature`'
        ' and `top_p` cannot both be specified for this model. Please use only one."}',
        Refusal("param", params=("top_p",)),
    ),
    # Anthropic: MartialBE/one-hub#529.
    (
        "Provider API error: `temperature` may only be set to 1 when thinking is enabled. Please"
        " consult our documentation at https://docs.anthropic.com/en/docs/build-with-claude/"
        "extended-thinking#important-considerations-when-using-extended-thinking",
        Refusal("param", params=("temperature",)),
    ),
    # Gemini through LiteLLM: BerriAI/litellm#26108.
    (
        'GeminiException BadRequestError - {"error": {"code": 400, "message": "Penalty is not '
        'enabled for models/gemini-2.5-flash"}}',
        Refusal("param", params=("frequency_penalty", "presence_penalty")),
    ),
    # Gemini's OpenAI endpoint: n4ze3m/page-assist#418.
    (
        '{"error": {"code": 400, "message": "Invalid JSON payload received. Unknown name '
        '\\"frequency_penalty\\": Cannot find field.", "status": "INVALID_ARGUMENT"}}',
        Refusal("param", params=("frequency_penalty",)),
    ),
    # LiteLLM's vertex check, list form with its newer tail: BerriAI/litellm#16031.
    (
        "UnsupportedParamsError: vertex_ai does not support parameters: ['frequency_penalty'],"
        " for model=gemini-2.5-pro. To drop these, set `drop_params=True` or for proxy:\n\n"
        "`litellm_settings:\n drop_params: true`\n. \n If you want to use these params "
        "dynamically send allowed_openai_params=['frequency_penalty'] in your request.",
        Refusal("param", params=("frequency_penalty",)),
    ),
    # SGLang's pydantic check behind an OpenAI-compatible server: router-for-me/CLIProxyAPI#1572.
    (
        '{"object":"error","message":"1 validation error:\\n  {\'type\': \'literal_error\', '
        "'loc': ('body', 'reasoning_effort'), 'msg': \\\"Input should be 'low', 'medium' or "
        "'high'\\\", 'input': 'xhigh', 'ctx': {'expected': \\\"'low', 'medium' or 'high'"
        '\\"}}\\n","type":"Bad Request","param":null,"code":400}',
        Refusal(
            "value", field="reasoning_effort", value="xhigh", supported=("low", "medium", "high")
        ),
    ),
    # OpenAI names the field in "param" only: the message from stanford-crfm/helm#3501, in
    # the body OpenAI sends it in.
    (
        '{"error": {"message": "Invalid value: \'max\'. Supported values are: \'low\', '
        '\'medium\', and \'high\'.", "type": "invalid_request_error", "param": '
        '"reasoning_effort", "code": "invalid_value"}}',
        Refusal(
            "value", field="reasoning_effort", value="max", supported=("low", "medium", "high")
        ),
    ),
    # LiteLLM's GPT-5 check (litellm/llms/openai/chat/gpt_5_transformation.py).
    (
        "litellm.UnsupportedParamsError: reasoning_effort='xhigh' is only supported for "
        "gpt-5.1-codex-max, gpt-5.2, and gpt-5.4+ models." + TAIL,
        Refusal("value", field="reasoning_effort", value="xhigh"),
    ),
    # LiteLLM's Anthropic adapter (its test test_max_effort_rejected_for_opus_45).
    (
        "litellm.BadRequestError: AnthropicException - effort='max' is only supported by "
        "Claude Opus 4.6",
        Refusal("value", field="output_config.effort", value="max"),
    ),
]


@pytest.mark.parametrize(("message", "expected"), WORDINGS)
def test_real_wordings(message: str, expected: Refusal) -> None:
    assert parse_refusal(message) == expected


@pytest.mark.parametrize(
    "message",
    [
        "",
        "litellm.BadRequestError: OpenAIException - something odd happened",
        # ChatGPTNextWeb/NextChat#3195: the context, not the output cap.
        "This model's maximum context length is 8192 tokens. However, you requested 8256 tokens"
        " (64 in the messages, 8192 in the completion). Please reduce the length of the messages"
        " or completion.",
        # OCA-FACTS: a missing token.
        "The required information to complete authentication was not provided or was incorrect.",
        # Inside the conversation: never dropped.
        "Unknown parameter: 'input[0].foo'.",
        "Unknown parameter: 'messages'.",
        "Unrecognized request argument supplied: model",
        "Unsupported value: 'messages[0].role' does not support 'developer' with this model.",
        "litellm.UnsupportedParamsError: openai does not support parameters: ['stream'], for "
        "model=o1",
        # anthropics/claude-code#31033, #4378, sigoden/aichat#543: inside tools or messages.
        "API Error: 400 tools.0.custom.defer_loading: Extra inputs are not permitted",
        "messages.65.content.1.tool_use.text: Extra inputs are not permitted",
        "Malformed input request: #: subject must not be valid against schema "
        '{"required":["messages"]}#: extraneous key [stream] is not permitted, please reformat'
        " your input and try again.",
        # "Invalid value" without the field it is about
        "Invalid value: 'max'. Supported values are: 'low', 'medium', and 'high'.",
        # Gemini's own body, not the one sent
        "Invalid JSON payload received. Unknown name \"thinking_config\" at 'generation_config':"
        " Cannot find field.",
    ],
)
def test_not_recognised(message: str) -> None:
    assert parse_refusal(message) is None


# -- fixing a body --------------------------------------------------------------------------

MESSAGES = [{"role": "user", "content": "hi"}]


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "oca/x", "messages": copy.deepcopy(MESSAGES), "stream": True, **extra}


def responses(**extra: Any) -> dict[str, Any]:
    return {"model": "oca/x", "input": [{"role": "user", "content": "hi"}], "stream": True, **extra}


def messages(**extra: Any) -> dict[str, Any]:
    return {"model": "oca/x", "messages": copy.deepcopy(MESSAGES), "stream": True, **extra}


def completions(**extra: Any) -> dict[str, Any]:
    return {"model": "oca/x", "prompt": "def f(", "stream": True, **extra}


def fixed(body: dict[str, Any], api: Any, refusal: Refusal) -> tuple[dict[str, Any], str, Fact]:
    before = copy.deepcopy(body)
    fix = fix_request(body, api, refusal)
    assert fix is not None
    assert body == before  # the input is not mutated
    assert fix.body is not body
    return fix.body, fix.change, fix.fact


def test_param_dropped_per_api() -> None:
    temp = Refusal("param", params=("temperature",))
    for make, api in ((chat, "chat"), (messages, "messages"), (completions, "completions")):
        body, change, fact = fixed(make(temperature=0.2, top_p=1), api, temp)
        assert "temperature" not in body and body["top_p"] == 1
        assert change == "dropped temperature"
        assert fact == Fact("param", param="temperature")
    body, _, _ = fixed(responses(temperature=0.2), "responses", temp)
    assert "temperature" not in body


def test_param_camel_case_and_dotted() -> None:
    body, change, fact = fixed(
        chat(frequency_penalty=0.5), "chat", Refusal("param", params=("frequencyPenalty",))
    )
    assert "frequency_penalty" not in body and fact.param == "frequency_penalty"
    body, change, fact = fixed(
        responses(reasoning={"effort": "high", "summary": "auto"}),
        "responses",
        Refusal("param", params=("reasoningSummary",)),
    )
    assert body["reasoning"] == {"effort": "high"}
    assert change == "dropped reasoning.summary" and fact.param == "reasoning_summary"
    body, change, _ = fixed(
        responses(reasoning={"effort": "high"}),
        "responses",
        Refusal("param", params=("reasoning.effort",)),
    )
    assert "reasoning" not in body  # emptied: gone too
    # OCA's chat name for the Responses field
    body, _, fact = fixed(
        responses(reasoning={"effort": "high", "summary": "auto"}),
        "responses",
        Refusal("param", params=("reasoning_effort",)),
    )
    assert body["reasoning"] == {"summary": "auto"} and fact.param == "reasoning_effort"


def test_param_max_tokens_named_for_another_field() -> None:
    body, change, _ = fixed(
        responses(max_output_tokens=1000), "responses", Refusal("param", params=("max_tokens",))
    )
    assert "max_output_tokens" not in body and change == "dropped max_output_tokens"


def test_param_rename() -> None:
    refusal = Refusal("param", params=("max_tokens",), rename_to="max_completion_tokens")
    body, change, fact = fixed(chat(max_tokens=500), "chat", refusal)
    assert body["max_completion_tokens"] == 500 and "max_tokens" not in body
    assert change == "renamed max_tokens to max_completion_tokens"
    assert fact == Fact("param", param="max_tokens", rename_to="max_completion_tokens")
    # already sent under the new name: not this body's refusal
    assert fix_request(chat(max_completion_tokens=500), "chat", refusal) is None


def test_param_not_carried() -> None:
    assert fix_request(chat(), "chat", Refusal("param", params=("temperature",))) is None
    assert fix_request(chat(), "chat", Refusal("param", params=("messages",))) is None


def test_several_params() -> None:
    fix = fix_request(
        chat(temperature=0.2, top_p=0.5),
        "chat",
        Refusal("param", params=("temperature", "top_p", "logprobs")),
    )
    assert fix is not None
    assert "temperature" not in fix.body and "top_p" not in fix.body
    assert [f.param for f in fix.facts] == ["temperature", "top_p"]


EFFORTS = ("minimal", "low", "medium", "high")


def test_effort_fitted_chat() -> None:
    refusal = Refusal("value", field="reasoning_effort", value="none", supported=EFFORTS)
    body, change, fact = fixed(chat(reasoning_effort="none"), "chat", refusal)
    assert body["reasoning_effort"] == "minimal"
    assert change == "reasoning_effort none -> minimal"
    assert fact == Fact("efforts", efforts=EFFORTS)


def test_effort_ties_go_up() -> None:
    refusal = Refusal("value", field="reasoning_effort", value="medium", supported=("low", "high"))
    body, change, _ = fixed(completions(reasoning_effort="medium"), "completions", refusal)
    assert body["reasoning_effort"] == "high" and change == "reasoning_effort medium -> high"


def test_effort_fitted_responses() -> None:
    refusal = Refusal("value", field="reasoning.effort", value="xhigh", supported=EFFORTS)
    body, change, _ = fixed(
        responses(reasoning={"effort": "xhigh", "summary": "auto"}), "responses", refusal
    )
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert change == "reasoning.effort xhigh -> high"
    # OCA says reasoning_effort for the Responses field
    refusal = Refusal("value", field="reasoning_effort", value="xhigh", supported=EFFORTS)
    body, _, _ = fixed(responses(reasoning={"effort": "xhigh"}), "responses", refusal)
    assert body["reasoning"] == {"effort": "high"}


def test_effort_above_the_list() -> None:
    refusal = Refusal("value", field="reasoning_effort", value="max", supported=EFFORTS)
    body, change, _ = fixed(chat(reasoning_effort="max"), "chat", refusal)
    assert body["reasoning_effort"] == "high" and change == "reasoning_effort max -> high"


def test_effort_off_the_scale_dropped() -> None:
    refusal = Refusal("value", field="reasoning_effort", value="turbo", supported=EFFORTS)
    body, change, fact = fixed(chat(reasoning_effort="turbo"), "chat", refusal)
    assert change == "dropped reasoning_effort turbo"
    assert "reasoning_effort" not in body and fact.kind == "efforts"
    refusal = Refusal("value", field="reasoning_effort", value="low", supported=("auto",))
    body, _, fact = fixed(chat(reasoning_effort="low"), "chat", refusal)
    assert "reasoning_effort" not in body and fact == Fact("param", param="reasoning_effort")


def test_effort_not_applicable() -> None:
    refusal = Refusal("value", field="reasoning_effort", value="none", supported=EFFORTS)
    assert fix_request(chat(), "chat", refusal) is None
    assert fix_request(chat(reasoning_effort="low"), "chat", refusal) is None  # supported


def test_max_tokens_per_api() -> None:
    cap = Refusal("max_tokens", maximum=16384)
    body, change, fact = fixed(chat(max_tokens=32000), "chat", cap)
    assert body["max_tokens"] == 16384 and change == "max_tokens 32000 -> 16384"
    assert fact == Fact("max_tokens", maximum=16384)
    body, _, _ = fixed(chat(max_completion_tokens=32000, max_tokens=100), "chat", cap)
    assert body["max_completion_tokens"] == 16384 and body["max_tokens"] == 100
    body, _, _ = fixed(responses(max_output_tokens=200000), "responses", cap)
    assert body["max_output_tokens"] == 16384
    body, _, _ = fixed(completions(max_tokens=20000), "completions", cap)
    assert body["max_tokens"] == 16384


def test_max_tokens_lowers_thinking() -> None:
    cap = Refusal("max_tokens", maximum=16384)
    thinking = {"type": "enabled", "budget_tokens": 60000}
    body, change, _ = fixed(messages(max_tokens=64000, thinking=thinking), "messages", cap)
    assert body["max_tokens"] == 16384
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 15360}
    assert change == "max_tokens 64000 -> 16384 (thinking budget 60000 -> 15360)"
    assert thinking["budget_tokens"] == 60000
    # a budget already below the cap stays
    body, _, _ = fixed(
        messages(max_tokens=64000, thinking={"type": "enabled", "budget_tokens": 8000}),
        "messages",
        cap,
    )
    assert body["thinking"]["budget_tokens"] == 8000
    # no room for thinking
    body, change, _ = fixed(
        messages(max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 2048}),
        "messages",
        Refusal("max_tokens", maximum=1024),
    )
    assert "thinking" not in body and change == "max_tokens 4096 -> 1024 (thinking dropped)"


def test_max_tokens_not_applicable() -> None:
    cap = Refusal("max_tokens", maximum=16384)
    assert fix_request(chat(), "chat", cap) is None
    assert fix_request(chat(max_tokens=16384), "chat", cap) is None


def test_messages_never_copied() -> None:
    body = chat(temperature=1)
    fix = fix_request(body, "chat", Refusal("param", params=("temperature",)))
    assert fix is not None and fix.body["messages"] is body["messages"]


# -- LearnedFacts ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


def test_learn_once_and_apply() -> None:
    facts = LearnedFacts()
    temp = Fact("param", param="temperature")
    assert facts.learn("oca/x", temp) is True
    assert facts.learn("oca/x", temp) is False
    body = chat(temperature=0.5)
    out, changes = facts.apply("oca/x", body, "chat")
    assert "temperature" not in out and changes == ["dropped temperature"]
    assert body["temperature"] == 0.5
    # nothing known: the same object
    other = chat(temperature=0.5)
    same, none = facts.apply("oca/y", other, "chat")
    assert same is other and none == []
    # known but nothing to do: the same object
    plain = chat()
    assert facts.apply("oca/x", plain, "chat")[0] is plain


def test_apply_all_kinds() -> None:
    facts = LearnedFacts()
    facts.learn("oca/x", Fact("efforts", efforts=("low", "high")))
    facts.learn("oca/x", Fact("max_tokens", maximum=16384))
    facts.learn("oca/x", Fact("param", param="reasoning_summary"))
    out, changes = facts.apply(
        "oca/x",
        responses(reasoning={"effort": "medium", "summary": "auto"}, max_output_tokens=99999),
        "responses",
    )
    assert out["reasoning"] == {"effort": "high"} and out["max_output_tokens"] == 16384
    assert len(changes) == 3
    assert facts.efforts("oca/x") == ("low", "high") and facts.max_tokens("oca/x") == 16384
    assert facts.efforts("oca/y") is None and facts.max_tokens("oca/y") is None


def test_describe() -> None:
    assert (
        Fact("param", param="temperature").describe("oca/x")
        == "OCA refuses temperature for oca/x: dropped from now on"
    )
    assert (
        Fact("efforts", efforts=("low", "high")).describe("oca/x")
        == "OCA takes only low, high as reasoning effort for oca/x: efforts fitted to those from now on"
    )
    assert (
        Fact("max_tokens", maximum=16384).describe("oca/x")
        == "OCA caps oca/x's output at 16384 tokens: max tokens lowered to that from now on"
    )


def test_persistence_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state" / "learned.json"
    clock = Clock()
    facts = LearnedFacts(path, clock=clock)
    facts.learn("oca/x", Fact("param", param="temperature"), {"max_output_tokens": 1})
    facts.learn("oca/x", Fact("max_tokens", maximum=4096))
    facts.learn("oca/y", Fact("param", param="max_tokens", rename_to="max_completion_tokens"))
    data = json.loads(path.read_text())
    assert data["version"] == 1 and set(data["models"]) == {"oca/x", "oca/y"}
    again = LearnedFacts(path, clock=clock)
    assert again.snapshot() == facts.snapshot()
    out, _ = again.apply("oca/y", chat(max_tokens=10), "chat")
    assert out["max_completion_tokens"] == 10 and "max_tokens" not in out
    row = again.snapshot()[0]
    assert set(row) == {"model", "kind", "detail", "learned_at", "expires_at"}


def test_file_modes_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "new" / "learned.json"
    old = os.umask(0)
    try:
        LearnedFacts(path).learn("oca/x", Fact("param", param="temperature"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["learned.json"]  # no temp file left


@pytest.mark.parametrize(
    "text", ["{not json", '{"version": 2, "models": {}}', "[]", '{"version": 1, "models": 3}']
)
def test_corrupt_file(tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str) -> None:
    path = tmp_path / "learned.json"
    path.write_text(text)
    with caplog.at_level(logging.WARNING, logger="oca_addon.core.refusals"):
        facts = LearnedFacts(path)
    assert facts.snapshot() == []
    assert caplog.records


def test_missing_file(tmp_path: Path) -> None:
    assert LearnedFacts(tmp_path / "none.json").snapshot() == []


def test_expiry(tmp_path: Path) -> None:
    path = tmp_path / "learned.json"
    clock = Clock()
    facts = LearnedFacts(path, ttl=100, clock=clock)
    facts.learn("oca/x", Fact("param", param="temperature"))
    clock.now += 50
    assert facts.apply("oca/x", chat(temperature=1), "chat")[1] == ["dropped temperature"]
    clock.now += 51
    body = chat(temperature=1)
    assert facts.apply("oca/x", body, "chat") == (body, [])
    assert facts.snapshot() == []
    assert LearnedFacts(path, ttl=100, clock=clock).snapshot() == []  # dropped on load
    assert facts.learn("oca/x", Fact("param", param="temperature")) is True  # new again


def test_reconcile() -> None:
    facts = LearnedFacts()
    entry = {"max_output_tokens": 32768, "reasoning_effort_options": ["low", "high"]}
    facts.learn("oca/a", Fact("param", param="temperature"), dict(entry))
    facts.learn("oca/b", Fact("max_tokens", maximum=100), dict(entry))
    facts.learn("oca/c", Fact("max_tokens", maximum=100), None)
    same = dict(reversed(list(entry.items())))  # key order does not matter
    changed = {**entry, "max_output_tokens": 16384}
    assert facts.reconcile({"oca/a": same, "oca/b": changed}) == ["oca/b"]
    assert facts.max_tokens("oca/b") is None and facts.max_tokens("oca/c") == 100
    assert [r["model"] for r in facts.snapshot()] == ["oca/a", "oca/c"]
    assert facts.reconcile({"oca/a": same}) == []
    assert facts.reconcile({}) == ["oca/a"]  # gone from the list


def test_forget(tmp_path: Path) -> None:
    path = tmp_path / "learned.json"
    facts = LearnedFacts(path)
    facts.learn("oca/a", Fact("param", param="temperature"))
    facts.learn("oca/a", Fact("max_tokens", maximum=100))
    facts.learn("oca/b", Fact("max_tokens", maximum=100))
    assert facts.forget("oca/a") == 2
    assert facts.forget("oca/a") == 0
    assert LearnedFacts(path).max_tokens("oca/b") == 100
    assert facts.forget() == 1
    assert LearnedFacts(path).snapshot() == []


def test_refusal_to_fact_to_apply() -> None:
    """The loop the proxy runs: refusal -> fix -> learn -> the next call does not meet it."""
    facts = LearnedFacts()
    for message, body, api in [(m, chat(temperature=0.2), "chat") for m, _ in WORDINGS[:1]]:
        refusal = parse_refusal(message)
        assert refusal is not None
        fix = fix_request(body, api, refusal)  # type: ignore[arg-type]
        assert fix is not None
        for fact in fix.facts:
            assert facts.learn("oca/x", fact)
        out, changes = facts.apply("oca/x", body, api)  # type: ignore[arg-type]
        assert out == fix.body and changes


# -- efforts OCA refuses without a list, and Anthropic's effort field ----------------------


def test_effort_refused_without_a_list() -> None:
    refusal = parse_refusal(
        "litellm.UnsupportedParamsError: reasoning_effort='xhigh' is only supported for "
        "gpt-5.1-codex-max, gpt-5.2, and gpt-5.4+ models."
    )
    assert refusal is not None
    body, change, fact = fixed(chat(reasoning_effort="xhigh"), "chat", refusal)
    assert body["reasoning_effort"] == "high" and change == "reasoning_effort xhigh -> high"
    assert fact == Fact("efforts", refused=("xhigh",))
    assert fact.describe("oca/x") == (
        "OCA refuses xhigh as reasoning effort for oca/x: a lower effort sent from now on"
    )
    assert fix_request(chat(reasoning_effort="high"), "chat", refusal) is None
    # refusals add up
    facts = LearnedFacts()
    assert facts.learn("oca/x", fact)
    assert facts.learn("oca/x", Fact("efforts", refused=("high",)))
    assert facts.learn("oca/x", Fact("efforts", refused=("high",))) is False
    out, _ = facts.apply("oca/x", chat(reasoning_effort="xhigh"), "chat")
    assert out["reasoning_effort"] == "medium"
    # a list OCA named loses what is refused since
    facts.learn("oca/y", Fact("efforts", efforts=("low", "medium", "high")))
    facts.learn("oca/y", Fact("efforts", refused=("high",)))
    assert facts.efforts("oca/y") == ("low", "medium")
    assert facts.facts("oca/y")[0].allowed == ("low", "medium")
    out, _ = facts.apply("oca/y", chat(reasoning_effort="high"), "chat")
    assert out["reasoning_effort"] == "medium"
    # a new list replaces
    facts.learn("oca/y", Fact("efforts", efforts=("low", "high")))
    assert facts.facts("oca/y") == [Fact("efforts", efforts=("low", "high"))]


def test_anthropic_effort() -> None:
    refusal = parse_refusal(
        "AnthropicException - effort='max' is only supported by Claude Opus 4.6"
    )
    assert refusal is not None
    body, change, _ = fixed(
        messages(max_tokens=32000, output_config={"effort": "max"}), "messages", refusal
    )
    assert body["output_config"] == {"effort": "xhigh"}
    assert change == "output_config.effort max -> xhigh"
    refusal = parse_refusal("API Error: 400 output_config.effort: Extra inputs are not permitted")
    assert refusal is not None
    body, change, fact = fixed(
        messages(max_tokens=32000, output_config={"effort": "high"}), "messages", refusal
    )
    assert "output_config" not in body and change == "dropped output_config.effort"
    assert fact == Fact("param", param="reasoning_effort")
    # the same fact drops a chat body's effort, fits nothing else
    facts = LearnedFacts()
    facts.learn("oca/claude", fact)
    out, changes = facts.apply("oca/claude", chat(reasoning_effort="high"), "chat")
    assert "reasoning_effort" not in out and changes == ["dropped reasoning_effort"]


def test_facts_respect_each_api() -> None:
    facts = LearnedFacts()
    facts.learn("oca/x", Fact("param", param="max_tokens", rename_to="max_completion_tokens"))
    body = messages(max_tokens=100)
    assert facts.apply("oca/x", body, "messages") == (body, [])  # a chat field's new name
    facts = LearnedFacts()
    facts.learn("oca/x", Fact("param", param="max_tokens"))
    assert facts.apply("oca/x", body, "messages") == (body, [])  # Anthropic requires it
    out, _ = facts.apply("oca/x", responses(max_output_tokens=100), "responses")
    assert "max_output_tokens" not in out


def test_refused_facts_persist(tmp_path: Path) -> None:
    path = tmp_path / "learned.json"
    facts = LearnedFacts(path)
    facts.learn("oca/x", Fact("efforts", efforts=("low", "high")))
    facts.learn("oca/x", Fact("efforts", refused=("high",)))
    again = LearnedFacts(path)
    assert again.facts("oca/x") == facts.facts("oca/x")
    assert again.snapshot()[0]["detail"] == "reasoning efforts: low"


def test_penalties() -> None:
    refusal = parse_refusal("Penalty is not enabled for models/gemini-2.5-flash")
    assert refusal is not None
    fix = fix_request(chat(presence_penalty=0.5), "chat", refusal)
    assert fix is not None and "presence_penalty" not in fix.body
    assert fix.facts == (Fact("param", param="presence_penalty"),)
    fix = fix_request(chat(presence_penalty=0.5, frequency_penalty=0.1), "chat", refusal)
    assert fix is not None and len(fix.facts) == 2


@pytest.mark.parametrize(("message", "refusal"), WORDINGS)
def test_every_wording_fixes_a_body_that_carries_it(message: str, refusal: Refusal) -> None:
    """Each real wording, against a body carrying what it refuses: fixed once, and the fact
    learned makes the next body the same as the fix."""
    body: dict[str, Any]
    api: Any = "chat"
    if refusal.kind == "max_tokens":
        body = chat(max_tokens=(refusal.maximum or 0) + 1000)
    elif refusal.kind == "value":
        path = refusal.field or ""
        body = chat()
        if "." in path:
            head, tail = path.split(".", 1)
            body[head] = {tail: refusal.value}
            api = "responses" if head == "reasoning" else "messages"
        else:
            body[path] = refusal.value
    else:
        body = chat()
        for p in refusal.params:
            name = canonical(p)  # the body's spelling: frequencyPenalty -> frequency_penalty
            if name == "reasoning_summary":
                name, api = "reasoning.summary", "responses"
            if "." in name:
                head, tail = name.split(".", 1)
                body[head] = {tail: "x"}
            else:
                body[name] = 1
    if refusal.rename_to:
        body = chat(max_tokens=1000)
    fix = fix_request(body, api, refusal)
    assert fix is not None, message
    facts = LearnedFacts()
    for fact in fix.facts:
        facts.learn("oca/x", fact)
    out, _ = facts.apply("oca/x", body, api)
    assert out == fix.body
    assert facts.apply("oca/x", fix.body, api) == (fix.body, [])


# -- properties ------------------------------------------------------------------------------

EFFORT_VALUES = ("none", "minimal", "low", "medium", "high", "xhigh", "max", "auto", "turbo")
NAMES = (
    "temperature",
    "top_p",
    "frequencyPenalty",
    "presence_penalty",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "reasoning_effort",
    "reasoning.effort",
    "reasoningSummary",
    "reasoning",
    "output_config.effort",
    "stop",
    "system_prompt",
    "context_management",
    "thinking",
    "model",
    "messages",
    "input",
    "stream",
    "prompt",
)
KEPT = ("model", "messages", "input", "stream", "prompt")


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "oca/x", "stream": True}
    body["messages" if draw(st.booleans()) else "input"] = [{"role": "user", "content": "hi"}]
    if draw(st.booleans()):
        body["prompt"] = "def f("
    count = st.integers(min_value=1, max_value=300_000)
    optional: dict[str, st.SearchStrategy[Any]] = {
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "frequency_penalty": st.floats(-2, 2),
        "presence_penalty": st.floats(-2, 2),
        "max_tokens": count,
        "max_completion_tokens": count,
        "max_output_tokens": count,
        "reasoning_effort": st.sampled_from(EFFORT_VALUES),
        "reasoning": st.fixed_dictionaries(
            {}, optional={"effort": st.sampled_from(EFFORT_VALUES), "summary": st.just("auto")}
        ),
        "output_config": st.fixed_dictionaries(
            {}, optional={"effort": st.sampled_from(EFFORT_VALUES)}
        ),
        "thinking": st.fixed_dictionaries(
            {"type": st.just("enabled"), "budget_tokens": st.integers(1024, 200_000)}
        ),
        "stop": st.just(["\n"]),
        "system_prompt": st.just("be brief"),
        "context_management": st.just({"edits": []}),
    }
    for key in draw(st.sets(st.sampled_from(sorted(optional)))):
        body[key] = draw(optional[key])
    return body


refusals = st.one_of(
    st.builds(
        Refusal,
        kind=st.just("param"),
        params=st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map(tuple),
    ),
    st.builds(
        Refusal,
        kind=st.just("param"),
        params=st.sampled_from(["max_tokens", "max_completion_tokens"]).map(lambda n: (n,)),
        rename_to=st.sampled_from(["max_completion_tokens", "max_output_tokens"]),
    ),
    st.builds(
        Refusal,
        kind=st.just("value"),
        field=st.sampled_from([*EFFORT_FIELDS, "temperature", "reasoning.summary"]),
        value=st.sampled_from(EFFORT_VALUES),
        supported=st.lists(st.sampled_from(EFFORT_VALUES), max_size=4, unique=True).map(tuple),
    ),
    st.builds(Refusal, kind=st.just("max_tokens"), maximum=st.integers(1, 200_000)),
)
apis = st.sampled_from(["chat", "responses", "messages", "completions"])


def check_fix(body: dict[str, Any], api: Any, refusal: Refusal) -> None:
    before = copy.deepcopy(body)
    fix = fix_request(body, api, refusal)
    assert body == before  # never mutated
    if fix is None:
        return
    assert fix.body != body and fix.change
    for key in KEPT:  # never touched: the very same objects
        assert (key in fix.body) == (key in body)
        if key in body:
            assert fix.body[key] is body[key]
    if refusal.kind == "max_tokens" and refusal.maximum:
        for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
            assert fix.body.get(key, 0) <= refusal.maximum
        thinking = fix.body.get("thinking")
        if thinking is not None and thinking != body.get("thinking"):
            assert 1024 <= thinking["budget_tokens"] < refusal.maximum
    # stable: the same refusal finds nothing more, each fact applied again changes nothing
    assert fix_request(fix.body, api, refusal) is None
    facts = LearnedFacts()
    for fact in fix.facts:
        assert apply_fact(fix.body, fact, api) == (fix.body, [])
        facts.learn("oca/x", fact)
    out, _ = facts.apply("oca/x", body, api)
    assert out == fix.body
    again, changes = facts.apply("oca/x", fix.body, api)
    assert again is fix.body and changes == []


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies(), apis, refusals)
def test_fix_properties(body: dict[str, Any], api: Any, refusal: Refusal) -> None:
    check_fix(body, api, refusal)


TEMPLATES = (
    "litellm.BadRequestError: OpenAIException - Unsupported parameter: '{name}' is not "
    "supported with this model.",
    "litellm.BadRequestError: OpenAIException - Unknown parameter: '{name}'.",
    "litellm.UnsupportedParamsError: openai does not support parameters: ['{name}'], for "
    "model=o1. To drop these, set `litellm.drop_params=True`",
    "litellm.BadRequestError: XaiException - Argument not supported on this model: {name}",
    '{{"type":"error","error":{{"type":"invalid_request_error","message":"{name}: Extra inputs'
    ' are not permitted"}}}}',
    "AzureException BadRequestError - Unsupported value: '{field}' does not support '{value}' "
    "with this model. Supported values are: {supported}.",
    "litellm.UnsupportedParamsError: reasoning_effort='{value}' is only supported for gpt-5.2.",
    "OpenAIException - max_tokens is too large: 999999. This model supports at most {maximum} "
    "completion tokens, whereas you provided 999999.",
)


@settings(max_examples=300, deadline=None)
@given(
    bodies(),
    apis,
    st.sampled_from(TEMPLATES),
    st.sampled_from(NAMES),
    st.sampled_from(EFFORT_FIELDS),
    st.sampled_from(EFFORT_VALUES),
    st.lists(st.sampled_from(EFFORT_VALUES), min_size=1, max_size=4, unique=True),
    st.integers(1, 200_000),
)
def test_parsed_refusals_fix_stably(
    body: dict[str, Any],
    api: Any,
    template: str,
    name: str,
    field: str,
    value: str,
    supported: list[str],
    maximum: int,
) -> None:
    listed = ", ".join(f"'{s}'" for s in supported)
    message = template.format(
        name=name, field=field, value=value, supported=listed, maximum=maximum
    )
    refusal = parse_refusal(message + TAIL)
    if refusal is None:  # only what cannot be removed is not recognised
        assert name in KEPT and "{name}" in template
        return
    assert parse_refusal(json.dumps({"error": {"message": message}})) == refusal
    check_fix(body, api, refusal)


@pytest.mark.parametrize(
    "text",
    [
        "{" * 70000,
        '{"a":' + "[" * 60000,
        '{"a":' * 20000,
        '{"a":"' * 12000,
        '{"a":' + "[" * 900 + '"x"' + "]" * 900 + "}",
        "does not support parameters: [" + "'a', " * 12000,
        "a." * 30000 + "b: Extra inputs are not permitted",
        "Unknown parameter: '" + "a" * 65000,
        '{"message":"x"}' * 5000,
    ],
    ids=lambda text: text[:12],
)
def test_hostile_messages_are_cheap(text: str) -> None:
    started = time.perf_counter()
    assert parse_refusal(text) is None
    assert time.perf_counter() - started < 1.0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.sampled_from([t for t, _ in WORDINGS]))
def test_parse_never_raises(noise: str, wording: str) -> None:
    parse_refusal(noise)
    parse_refusal(noise + wording)
    parse_refusal(wording[: len(noise)] + noise)


def test_apply_is_cheap_for_unknown_models() -> None:
    facts = LearnedFacts()
    facts.learn("oca/known", Fact("param", param="temperature"))
    body = chat(temperature=1)
    started = time.perf_counter()
    for _ in range(100_000):
        assert facts.apply("oca/other", body, "chat")[0] is body
    assert time.perf_counter() - started < 2.0  # about 0.3 us a call here


def test_file_with_some_bad_entries(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "learned.json"
    good = {"kind": "max_tokens", "maximum": 100, "learned_at": 1, "expires_at": 4e9}
    bad = [
        {"kind": "param", "param": "messages", "learned_at": 1, "expires_at": 4e9},
        {"kind": "max_tokens", "maximum": -1, "learned_at": 1, "expires_at": 4e9},
        {"kind": "efforts", "efforts": [], "learned_at": 1, "expires_at": 4e9},
        {"kind": "max_tokens", "maximum": 100, "learned_at": "soon", "expires_at": 4e9},
        {"kind": "wild", "learned_at": 1, "expires_at": 4e9},
        "text",
    ]
    path.write_text(json.dumps({"version": 1, "models": {"oca/x": {"facts": [good, *bad]}}}))
    with caplog.at_level(logging.WARNING, logger="oca_addon.core.refusals"):
        facts = LearnedFacts(path)
    assert facts.facts("oca/x") == [Fact("max_tokens", maximum=100)]
    assert "6 unreadable entries" in caplog.text


def test_learn_refuses_what_cannot_apply() -> None:
    facts = LearnedFacts()
    assert facts.learn("oca/x", Fact("param", param="messages")) is False
    assert facts.learn("oca/x", Fact("max_tokens")) is False
    assert facts.learn("oca/x", Fact("efforts")) is False
    assert facts.snapshot() == []


def test_save_failure_keeps_what_was_learned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o700)
    facts = LearnedFacts(folder / "learned.json")
    folder.chmod(0o500)
    try:
        with caplog.at_level(logging.WARNING, logger="oca_addon.core.refusals"):
            assert facts.learn("oca/x", Fact("max_tokens", maximum=100))
    finally:
        folder.chmod(0o700)
    if os.geteuid() != 0:  # root writes anyway
        assert "cannot save" in caplog.text
    assert facts.max_tokens("oca/x") == 100
