"""OCA's model list as real OCA sends it (the published sample is the fixture), and the
rules built on it: ids, display names, routes, efforts, caching, unknown-model answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from oca_addon.core.exchange import explain_upstream_error, prepare
from oca_addon.core.modelinfo import Catalog, anthropic_model_list, fit_effort, openai_model_list
from oca_addon.core.routing import Endpoint, plan_route
from oca_addon.core.settings import Settings
from oca_addon.translate import caching
from oca_addon.translate.anthropic import anthropic_to_chat

SAMPLE = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "oca_model_info_sample.json").read_text()
)


def sample_catalog() -> Catalog:
    return Catalog.from_model_info(SAMPLE)


def test_sample_id_is_litellm_params_model_not_the_display_name() -> None:
    cat = sample_catalog()
    assert cat.names == {"oca/gpt-4.1"}
    entry = cat.entries["oca/gpt-4.1"]
    assert entry.display_name == "OpenAI GPT 4.1"
    # litellm_params.max_tokens equals the context window: the output cap stays 32768
    assert cat.info("oca/gpt-4.1")["max_output_tokens"] == 32768  # type: ignore[index]
    assert entry.apis == {"RESPONSES", "CHAT_COMPLETIONS"}
    assert entry.banner == "<div>...</div>"


def test_bare_array_is_accepted_too() -> None:
    assert Catalog.from_model_info(SAMPLE["data"]).names == {"oca/gpt-4.1"}


def test_entry_without_an_id_falls_back_to_model_name_and_junk_is_skipped() -> None:
    cat = Catalog.from_model_info(
        {"data": [{"model_name": "oca/llama4"}, "junk", {"litellm_params": {}}, None]}
    )
    assert cat.names == {"oca/llama4"}


def test_models_endpoints_list_ids() -> None:
    cat = sample_catalog()
    openai = openai_model_list(cat, ["claude-sonnet-4-6"])
    ids = [m["id"] for m in openai["data"]]
    assert ids == ["oca/gpt-4.1", "claude-sonnet-4-6"]
    assert openai["data"][0]["display_name"] == "OpenAI GPT 4.1"
    anthropic = anthropic_model_list(cat, [])
    assert anthropic["data"] == [
        {
            "type": "model",
            "id": "oca/gpt-4.1",
            "display_name": "OpenAI GPT 4.1",
            "created_at": "2025-01-01T00:00:00Z",
        }
    ]


def test_request_for_the_sample_id_reaches_upstream_with_that_id() -> None:
    ex = prepare(
        Endpoint.CHAT,
        {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "hi"}]},
        Settings(),
        sample_catalog(),
    )
    assert ex.upstream_body["model"] == "oca/gpt-4.1"
    assert ex.route.upstream_path == "/chat/completions"


def test_display_name_resolves_to_its_id() -> None:
    for name in ("OpenAI GPT 4.1", "openai gpt 4.1"):
        ex = prepare(
            Endpoint.CHAT,
            {"model": name, "messages": [{"role": "user", "content": "hi"}]},
            Settings(),
            sample_catalog(),
        )
        assert ex.upstream_body["model"] == "oca/gpt-4.1"
        assert ex.choice.via == "display name"


def test_sample_model_serves_responses_natively() -> None:
    assert plan_route(Endpoint.RESPONSES, "oca/gpt-4.1", sample_catalog()).native


@pytest.mark.parametrize("endpoint", [Endpoint.CHAT, Endpoint.RESPONSES, Endpoint.MESSAGES])
def test_a_model_the_list_lacks_is_forwarded_not_refused(endpoint: Endpoint) -> None:
    body: dict[str, Any] = {"model": "oca/brand-new", "max_tokens": 10}
    if endpoint is Endpoint.RESPONSES:
        body["input"] = "hi"
    else:
        body["messages"] = [{"role": "user", "content": "hi"}]
    ex = prepare(endpoint, body, Settings(), sample_catalog())
    assert ex.upstream_body["model"] == "oca/brand-new"
    assert ex.route.upstream_path == "/chat/completions"  # no list entry: chat


def test_lower_case_api_names_count() -> None:
    cat = Catalog.from_model_info(
        [{"model_name": "x", "litellm_params": {"model": "oca/x"},
          "model_info": {"supported_api_list": ["responses"]}}]
    )  # fmt: skip
    assert plan_route(Endpoint.RESPONSES, "oca/x", cat).native


def test_embeddings_and_completions_always_go_natively() -> None:
    for ep, path in ((Endpoint.EMBEDDINGS, "/embeddings"), (Endpoint.COMPLETIONS, "/completions")):
        route = plan_route(ep, "oca/gpt-4.1", sample_catalog())
        assert route.native and route.upstream_path == path


@pytest.mark.parametrize(
    ("effort", "info", "expected"),
    [
        ("high", None, "high"),  # not in the list: OCA decides
        ("high", {"reasoning_effort_options": []}, None),  # lists none: send none
        ("high", {"reasoning_effort_options": ["low", "medium", "high"]}, "high"),
        ("xhigh", {"reasoning_effort_options": ["low", "medium", "high"]}, "high"),
        ("minimal", {"reasoning_effort_options": ["low", "medium", "high"]}, "low"),
        ("medium", {"reasoning_effort_options": ["low", "high"]}, "high"),
        ("none", {"reasoning_effort_options": ["low", "high"]}, None),
        ("none", {"reasoning_effort_options": ["none", "low"]}, "none"),
        ("HIGH", {"reasoning_effort_options": ["LOW", "HIGH"]}, "high"),
        ("bogus", {"reasoning_effort_options": ["low"]}, None),
        ("high", {"is_reasoning_model": True}, "high"),
        ("minimal", {"is_reasoning_model": True}, "low"),
        ("high", {"is_reasoning_model": False}, None),
        (None, {"reasoning_effort_options": ["low"]}, None),
    ],
)
def test_fit_effort(effort: Any, info: dict[str, Any] | None, expected: str | None) -> None:
    assert fit_effort(effort, info) == expected


GPT5 = {"reasoning_effort_options": ["low", "medium", "high"], "is_reasoning_model": True}


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        (Endpoint.CHAT, {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "minimal"}),
        (Endpoint.RESPONSES, {"input": "x", "reasoning": {"effort": "minimal"}}),
        (Endpoint.COMPLETIONS, {"prompt": "x", "reasoning_effort": "minimal"}),
    ],
)  # fmt: skip
@pytest.mark.parametrize("apis", [["CHAT_COMPLETIONS"], ["RESPONSES"]])
def test_effort_fitted_on_every_path(
    endpoint: Endpoint, body: dict[str, Any], apis: list[str]
) -> None:
    cat = Catalog.from_model_info(
        [{"model_name": "G", "litellm_params": {"model": "oca/g"},
          "model_info": {**GPT5, "supported_api_list": apis}}]
    )  # fmt: skip
    ex = prepare(endpoint, {"model": "oca/g", **body}, Settings(), cat)
    sent = ex.upstream_body.get("reasoning_effort") or ex.upstream_body["reasoning"]["effort"]
    assert sent == "low"


def test_effort_dropped_for_a_model_that_lists_none() -> None:
    ex = prepare(
        Endpoint.CHAT,
        {"model": "oca/gpt-4.1", "messages": [{"role": "user", "content": "x"}],
         "reasoning_effort": "high"},
        Settings(),
        sample_catalog(),
    )  # fmt: skip
    assert "reasoning_effort" not in ex.upstream_body


# -- thinking and prompt caching on the translated Messages path ---------------------------

CLAUDE = {"supports_caching": True, "thinking_config": {"type": "enabled"}, "max_output_tokens": 64000,
          "is_reasoning_model": True, "reasoning_effort_options": ["low", "medium", "high"]}  # fmt: skip


def to_chat(body: dict[str, Any], info: dict[str, Any] | None) -> dict[str, Any]:
    out, _ = anthropic_to_chat(
        {"model": "m", "max_tokens": 20000, **body}, target_model="oca/c", model_info=info
    )
    return out


def test_thinking_budget_goes_on_where_the_model_takes_it() -> None:
    body = {"thinking": {"type": "enabled", "budget_tokens": 8000}, "messages": [{"role": "user", "content": "x"}]}  # fmt: skip
    out = to_chat(body, CLAUDE)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 8000}
    assert "reasoning_effort" not in out
    # a model without thinking_config gets an effort instead
    out = to_chat(body, {k: v for k, v in CLAUDE.items() if k != "thinking_config"})
    assert "thinking" not in out and out["reasoning_effort"] == "medium"


def test_thinking_budget_kept_below_max_tokens() -> None:
    body = {"max_tokens": 4000, "thinking": {"type": "enabled", "budget_tokens": 9000},
            "messages": [{"role": "user", "content": "x"}]}  # fmt: skip
    assert to_chat(body, CLAUDE)["thinking"]["budget_tokens"] == 3999


def cache_marks(out: dict[str, Any]) -> list[tuple[str, str]]:
    marks = []
    for m in out["messages"]:
        content = m.get("content")
        if isinstance(content, list):
            for part in content:
                if "cache_control" in part:
                    marks.append((m["role"], part.get("text", "")))
    return marks


CONVERSATION = [
    {"role": "user", "content": "one"},
    {"role": "assistant", "content": "two"},
    {"role": "user", "content": "three"},
    {"role": "assistant", "content": "four"},
    {"role": "user", "content": "five"},
]


def test_no_breakpoints_given_uses_system_and_last_two_user_messages() -> None:
    out = to_chat({"system": "sys", "messages": CONVERSATION}, CLAUDE)
    assert cache_marks(out) == [("system", "sys"), ("user", "three"), ("user", "five")]


def test_client_breakpoints_are_kept_where_its_turn_ends() -> None:
    msgs = [dict(m) for m in CONVERSATION]
    msgs[0] = {"role": "user", "content": [
        {"type": "text", "text": "one", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}  # fmt: skip
    system = [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}]
    out = to_chat({"system": system, "messages": msgs}, CLAUDE)
    assert cache_marks(out) == [("system", "sys"), ("user", "one")]
    assert out["messages"][1]["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_tool_result_breakpoint_marks_the_tool_message() -> None:
    msgs = [
        {"role": "user", "content": "run it"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok",
                                      "cache_control": {"type": "ephemeral"}}]},
    ]  # fmt: skip
    out = to_chat({"messages": msgs}, CLAUDE)
    tool = out["messages"][-1]
    assert tool["role"] == "tool"
    assert tool["content"] == [
        {"type": "text", "text": "ok", "cache_control": {"type": "ephemeral"}}
    ]


def test_no_cache_control_for_models_that_do_not_cache() -> None:
    system = [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}]
    out = to_chat({"system": system, "messages": CONVERSATION}, {"max_output_tokens": 1000})
    assert cache_marks(out) == []
    assert all(caching.MARK not in m for m in out["messages"])


def test_at_most_four_breakpoints() -> None:
    msgs = [{"role": r, "content": [{"type": "text", "text": str(i), "cache_control": {"type": "ephemeral"}}]}
            for i, r in enumerate(["user", "assistant"] * 4)]  # fmt: skip
    out = to_chat({"system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
                   "messages": msgs}, CLAUDE)  # fmt: skip
    marks = cache_marks(out)
    assert len(marks) == 4 and marks[0] == ("system", "s")


# -- OCA does not know the model ---------------------------------------------------------------


def test_unknown_model_answer_quotes_oca_and_lists_models() -> None:
    ex = prepare(
        Endpoint.CHAT,
        {"model": "oca/nope", "messages": [{"role": "user", "content": "x"}]},
        Settings(),
        sample_catalog(),
    )
    oca_says = (
        "Invalid model name passed in model=oca/nope. Call `/v1/models` to view available models"
    )
    msg = explain_upstream_error(400, oca_says, ex, sample_catalog())
    assert msg.startswith(oca_says)
    assert "oca/gpt-4.1" in msg and "'oca/nope'" in msg
    # other errors pass as they are
    assert (
        explain_upstream_error(400, "max_tokens too large", ex, sample_catalog())
        == "max_tokens too large"
    )
    assert explain_upstream_error(500, oca_says, ex, sample_catalog()) == oca_says
