"""The doctor's plan: which calls it makes to OCA, each with its fixed body (pure).

Every call carries a fixed short prompt and asks for a tiny output, except the one that
asks for the model's listed output maximum (with the same prompt: the answer stays short,
and a refusal names the real maximum). The calls are ranked: what matters most comes
first, so a cap (`--max-calls`) leaves out the least telling calls of every model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from oca_addon.core.modelinfo import CHAT, MESSAGES, RESPONSES, Catalog, ModelEntry

COMPLETIONS = "COMPLETIONS"
EMBEDDINGS = "EMBEDDINGS"
MODEL_LIST = "MODEL_LIST"
API_NAMES = {
    CHAT: "chat",
    RESPONSES: "responses",
    MESSAGES: "messages",
    COMPLETIONS: "completions",
    EMBEDDINGS: "embeddings",
    MODEL_LIST: "model list",
}
PATHS = {
    CHAT: "/chat/completions",
    RESPONSES: "/responses",
    MESSAGES: "/v1/messages",
    COMPLETIONS: "/completions",
    EMBEDDINGS: "/embeddings",
    MODEL_LIST: "/v1/model/info",
}
MODEL_APIS = (CHAT, RESPONSES, MESSAGES)

PROMPT = "Reply with the word OK."
TOOL_PROMPT = "Use the ping tool."
TINY = 16  # output tokens: also the Responses API's floor
UNKNOWN_MODEL = "oca/oca-proxy-doctor-no-such-model"
TEMPERATURE = 0
# Tried on reasoning models, the first their list lacks: does OCA refuse unlisted efforts?
EFFORTS = ("minimal", "low", "medium", "high")
# A 1x1 PNG: does OCA take chat's image_url.detail?
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
    "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PROMPTS = (PROMPT, TOOL_PROMPT)
DEFAULT_MAX_CALLS = 60

# What each kind of call measures, for the plan and the table.
KINDS = {
    "unknown_model": "the error for an unknown model",
    "api": "an answer on this API (streamed)",
    "non_streamed": "a non-streamed answer",
    "effort": "a reasoning effort",
    "output_max": "the listed output maximum",
    "temperature": f"temperature={TEMPERATURE}",
    "tools": "a tool (ping)",
    "image_detail": "an image with image_url.detail",
    "completions": "the legacy /completions API",
    "embeddings": "the /embeddings API",
}


@dataclass(frozen=True)
class Probe:
    kind: str  # a KINDS key
    api: str  # CHAT, RESPONSES, MESSAGES, COMPLETIONS, EMBEDDINGS
    model: str
    body: dict[str, Any]
    tier: int = 1  # 0 first; the cap leaves out the highest tiers first
    listed: bool = True  # api: does the model list name this API for the model?
    effort: str | None = None
    limit: int | None = None  # output_max: the maximum asked for

    @property
    def method(self) -> str:
        return "POST"

    @property
    def path(self) -> str:
        return PATHS[self.api]

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    def label(self) -> str:
        api = API_NAMES[self.api]
        if self.kind == "api":
            return f"{api}" + ("" if self.listed else " (not listed)")
        if self.kind == "effort":
            return f"{api} effort={self.effort}" + ("" if self.listed else " (not listed)")
        if self.kind == "output_max":
            return f"{api} output max {self.limit}"
        if self.kind == "non_streamed":
            return f"{api} not streamed"
        if self.kind == "temperature":
            return f"{api} temperature={TEMPERATURE}"
        if self.kind == "tools":
            return f"{api} tool"
        if self.kind == "image_detail":
            return f"{api} image detail"
        if self.kind == "unknown_model":
            return f"{api} unknown model"
        return api


@dataclass
class Plan:
    probes: list[Probe]
    left_out: list[Probe] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # the models probed, in list order
    max_calls: int = DEFAULT_MAX_CALLS


def is_embedding(model: str) -> bool:
    return "embed" in model.lower()


def listed_apis(entry: ModelEntry | None) -> list[str]:
    """The APIs the list names for a model (none, or no entry: chat only)."""
    apis = entry.apis if entry else frozenset()
    named = [a for a in MODEL_APIS if a in apis]
    return named or [CHAT]


def primary_api(entry: ModelEntry | None) -> str:
    return listed_apis(entry)[0]


def listed_max(entry: ModelEntry | None) -> int | None:
    """The output maximum the list announces (max_output_tokens, else litellm's max_tokens
    when it is not the context window: modelinfo fills that in)."""
    value = entry.info.get("max_output_tokens") if entry else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def listed_efforts(entry: ModelEntry | None) -> list[str]:
    raw = entry.info.get("reasoning_effort_options") if entry else None
    return [e for e in raw if isinstance(e, str)] if isinstance(raw, list) else []


def is_reasoning(entry: ModelEntry | None) -> bool:
    return bool(entry and (entry.info.get("is_reasoning_model") or listed_efforts(entry)))


# --- bodies -----------------------------------------------------------------------------


def body(
    api: str, model: str, *, stream: bool = True, limit: int = TINY, prompt: str = PROMPT
) -> dict[str, Any]:
    """The smallest request of an API: the fixed prompt, a tiny output."""
    out: dict[str, Any] = {"model": model}
    if api == RESPONSES:
        out |= {"input": prompt, "max_output_tokens": limit}
    elif api == COMPLETIONS:
        out |= {"prompt": prompt, "max_tokens": limit}
    elif api == EMBEDDINGS:
        return {"model": model, "input": prompt}
    else:
        out |= {"messages": [{"role": "user", "content": prompt}], "max_tokens": limit}
    out["stream"] = stream
    if stream and api in (CHAT, COMPLETIONS):
        out["stream_options"] = {"include_usage": True}
    return out


def with_effort(api: str, out: dict[str, Any], effort: str) -> dict[str, Any]:
    if api == RESPONSES:
        return {**out, "reasoning": {"effort": effort}}
    return {**out, "reasoning_effort": effort}


def with_tool(api: str, out: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": {}}
    about = "Answers pong."
    if api == RESPONSES:
        tool: dict[str, Any] = {
            "type": "function",
            "name": "ping",
            "description": about,
            "parameters": schema,
        }
    elif api == MESSAGES:
        tool = {"name": "ping", "description": about, "input_schema": schema}
    else:
        tool = {
            "type": "function",
            "function": {"name": "ping", "description": about, "parameters": schema},
        }
    return {**out, "tools": [tool]}


def limit_key(api: str) -> str:
    return "max_output_tokens" if api == RESPONSES else "max_tokens"


# --- the plan ---------------------------------------------------------------------------


def model_probes(model: str, entry: ModelEntry | None) -> list[Probe]:
    """What is measured of one chat-kind model (tiers: 1 the basics, 2 the list's claims,
    3 what the list does not say)."""
    apis = listed_apis(entry)
    main = apis[0]
    probes = [Probe("api", main, model, body(main, model), tier=1)]
    cap = listed_max(entry)
    if cap is not None:
        asked = body(main, model, limit=cap)
        probes.append(Probe("output_max", main, model, asked, tier=1, limit=cap))
    probes += [Probe("api", api, model, body(api, model), tier=2) for api in apis[1:]]
    if is_reasoning(entry):
        efforts = listed_efforts(entry)
        for effort in efforts:
            probes.append(
                Probe(
                    "effort",
                    main,
                    model,
                    with_effort(main, body(main, model), effort),
                    tier=2,
                    effort=effort,
                )
            )
        unlisted = next((e for e in EFFORTS if e not in efforts), None)
        if unlisted is not None:
            asked = with_effort(main, body(main, model), unlisted)
            probes.append(
                Probe("effort", main, model, asked, tier=3, listed=False, effort=unlisted)
            )
    probes += [
        Probe("api", api, model, body(api, model), tier=3, listed=False)
        for api in MODEL_APIS
        if api not in apis
    ]
    probes += [
        Probe("non_streamed", main, model, body(main, model, stream=False), tier=3),
        Probe(
            "temperature", main, model, {**body(main, model), "temperature": TEMPERATURE}, tier=3
        ),
        Probe("tools", main, model, with_tool(main, body(main, model, prompt=TOOL_PROMPT)), tier=3),
    ]
    return probes


def build_plan(
    catalog: Catalog, models: list[str] | None = None, max_calls: int = DEFAULT_MAX_CALLS
) -> Plan:
    """Every call, ranked, then cut at max_calls. `models` narrows it to those ids (one the
    list lacks is probed as a chat model: does OCA serve it anyway?)."""
    names = list(models) if models else list(catalog.entries)
    chat_models = [m for m in names if not is_embedding(m)]
    probes: list[Probe] = []
    if chat_models or not models:
        probes.append(
            Probe("unknown_model", CHAT, UNKNOWN_MODEL, body(CHAT, UNKNOWN_MODEL), tier=0)
        )
    for model in chat_models:
        probes += model_probes(model, catalog.entries.get(model))
    if chat_models:
        first = next((m for m in chat_models if CHAT in listed_apis(catalog.entries.get(m))), None)
        target = first or chat_models[0]
        probes.append(Probe("completions", COMPLETIONS, target, body(COMPLETIONS, target), tier=2))
        vision = next(
            (
                m
                for m in chat_models
                if (e := catalog.entries.get(m))
                and e.info.get("supports_vision")
                and CHAT in listed_apis(e)
            ),
            None,
        )
        if vision is not None:
            image = body(CHAT, vision)
            image["messages"] = [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": PROMPT},
                        {"type": "image_url", "image_url": {"url": PIXEL, "detail": "low"}},
                    ],
                }
            ]
            probes.append(Probe("image_detail", CHAT, vision, image, tier=3))
    embedders = [m for m in names if is_embedding(m)] or chat_models[:1]
    probes += [Probe("embeddings", EMBEDDINGS, m, body(EMBEDDINGS, m), tier=2) for m in embedders]
    order = {id(p): i for i, p in enumerate(probes)}
    ranked = sorted(probes, key=lambda p: (p.tier, order[id(p)]))
    kept = set(map(id, ranked[: max(0, max_calls)]))
    return Plan(
        probes=[p for p in probes if id(p) in kept],
        left_out=[p for p in probes if id(p) not in kept],
        models=names,
        max_calls=max_calls,
    )


def plan_text(plan: Plan, base_url: str) -> str:
    """What the doctor is about to send, for the user to confirm."""
    lines = [
        f"oca-proxy doctor will send {len(plan.probes)} calls to {base_url}:",
        f'  every call: the prompt "{PROMPT}" (tool calls: "{TOOL_PROMPT}"), at most '
        f"{TINY} output tokens,",
        "  except the output-maximum calls, which ask for the listed maximum (same prompt).",
    ]
    by_model: dict[str, list[Probe]] = {}
    for p in plan.probes:
        by_model.setdefault(p.model, []).append(p)
    width = max((len(m) for m in by_model), default=0)
    for model, probes in by_model.items():
        labels = ", ".join(p.label() for p in probes)
        lines.append(f"  {model:<{width}}  {len(probes):>2}: {labels}")
    if plan.left_out:
        lines.append(
            f"  left out by --max-calls {plan.max_calls}: {len(plan.left_out)} calls ("
            + ", ".join(f"{p.model} {p.label()}" for p in plan.left_out[:6])
            + (", ..." if len(plan.left_out) > 6 else "")
            + ")"
        )
    return "\n".join(lines)
