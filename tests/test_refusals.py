"""oca_addon/refusals.py: OCA's refusals read, fixed, learned.

Every wording below is a real one, quoted from the public thread named in its comment (the
model and numbers as found there)."""

from __future__ import annotations

import copy
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from oca_addon.refusals import Fact, LearnedFacts, Refusal, fix_request, parse_refusal

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


def test_effort_off_the_scale_dropped() -> None:
    refusal = Refusal("value", field="reasoning_effort", value="max", supported=EFFORTS)
    body, change, fact = fixed(chat(reasoning_effort="max"), "chat", refusal)
    assert change == "dropped reasoning_effort max"
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
    with caplog.at_level(logging.WARNING, logger="oca_addon.refusals"):
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
