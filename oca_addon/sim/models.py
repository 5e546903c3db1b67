"""The simulated OCA model catalogue, as served by GET /v1/model/info.

Shape as OCA-FACTS.md documents it: `model_name` is a display name, the id that
requests carry is `litellm_params.model`. One data structure (CATALOGUE) so the
proxy's tests can import it and stay in sync with what the simulator advertises.
A served payload can also be given verbatim (SimConfig.model_info): parse_model_info
turns it into SimModels so the simulator accepts requests for its ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Values of model_info.supported_api_list: the only ones any source shows.
CHAT_COMPLETIONS = "CHAT_COMPLETIONS"
RESPONSES = "RESPONSES"
MESSAGES = "MESSAGES"
# Endpoint kinds of the simulator, never values of supported_api_list.
COMPLETIONS = "COMPLETIONS"
EMBEDDINGS = "EMBEDDINGS"


@dataclass(frozen=True)
class SimModel:
    id: str  # litellm_params.model: what requests carry ("oca/gpt-4.1")
    display_name: str  # model_name: for people ("OpenAI GPT 4.1")
    context_window: int
    max_output_tokens: int | None
    supports_vision: bool = False
    is_reasoning_model: bool = False
    reasoning_effort_options: tuple[str, ...] = ()
    # As served (case included); None: the field is absent (means chat only).
    supported_api_list: tuple[str, ...] | None = (CHAT_COMPLETIONS,)
    description: str | None = None
    litellm_max_tokens: int | None = None  # litellm_params.max_tokens
    supports_caching: bool | None = None  # None: the field is absent
    thinking_config: dict[str, Any] | None = None
    banner: str | None = None
    survey_id: str | None = None
    survey_content: str | None = None
    version: str | None = None
    labels: list[str] | None = None
    embedding: bool = False  # simulator-internal: an embedding model (not served)

    @property
    def name(self) -> str:
        return self.id

    @property
    def output_limit(self) -> int | None:
        """The output cap: max_output_tokens, else litellm_params.max_tokens."""
        if self.max_output_tokens is not None:
            return self.max_output_tokens
        return self.litellm_max_tokens

    def supports(self, api: str) -> bool:
        """Listed in supported_api_list, compared without regard to case."""
        if self.supported_api_list is None:
            return api == CHAT_COMPLETIONS
        return api.upper() in {a.upper() for a in self.supported_api_list}

    def info(self) -> dict[str, Any]:
        """One entry of the /v1/model/info "data" list, in the shape real OCA sends."""
        model_info: dict[str, Any] = {
            "context_window": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            "description": self.description,
            "version": self.version,
            "labels": self.labels,
            "supports_vision": self.supports_vision,
            "is_reasoning_model": self.is_reasoning_model,
            "reasoning_effort_options": list(self.reasoning_effort_options),
        }
        if self.supported_api_list is not None:
            model_info["supported_api_list"] = list(self.supported_api_list)
        model_info |= {
            "survey_id": self.survey_id,
            "survey_content": self.survey_content,
            "banner": self.banner,
        }
        if self.supports_caching is not None:
            model_info["supports_caching"] = self.supports_caching
        if self.thinking_config is not None:
            model_info["thinking_config"] = dict(self.thinking_config)
        return {
            "model_name": self.display_name,
            "litellm_params": {"model": self.id, "max_tokens": self.litellm_max_tokens},
            "model_info": model_info,
        }


_EFFORTS = ("low", "medium", "high")

CATALOGUE: tuple[SimModel, ...] = (
    # Exactly the entry OCA-FACTS.md quotes from the real service.
    SimModel(
        id="oca/gpt-4.1",
        display_name="OpenAI GPT 4.1",
        context_window=1047576,
        max_output_tokens=32768,
        litellm_max_tokens=1047576,
        supports_vision=True,
        supported_api_list=(RESPONSES, CHAT_COMPLETIONS),
        survey_id="survey_3.01",
        survey_content="<html>...</html>",
        banner="<div>...</div>",
    ),
    SimModel(
        id="oca/gpt-5",
        display_name="OpenAI GPT 5",
        context_window=400000,
        max_output_tokens=128000,
        litellm_max_tokens=128000,
        supports_vision=True,
        is_reasoning_model=True,
        reasoning_effort_options=_EFFORTS,
        # Lower case on purpose: a public client's tests show "responses" (compare without case).
        supported_api_list=("responses", CHAT_COMPLETIONS),
        description="GPT-5 reasoning model.",
    ),
    SimModel(
        id="oca/gpt-5-codex",
        display_name="OpenAI GPT 5 Codex",
        context_window=400000,
        max_output_tokens=128000,
        litellm_max_tokens=128000,
        supports_vision=True,
        is_reasoning_model=True,
        reasoning_effort_options=_EFFORTS,
        supported_api_list=(RESPONSES,),
        description="GPT-5 Codex: agentic coding, Responses API only.",
    ),
    SimModel(
        id="oca/claude-sonnet-4",
        display_name="Claude Sonnet 4",
        context_window=200000,
        max_output_tokens=64000,
        litellm_max_tokens=64000,
        supports_vision=True,
        is_reasoning_model=True,
        reasoning_effort_options=_EFFORTS,
        supported_api_list=(MESSAGES, CHAT_COMPLETIONS),
        supports_caching=True,
        thinking_config={"max_budget": 32000},
        description="Claude Sonnet 4 (Anthropic Messages and Chat Completions).",
    ),
    # Messages only: served natively at /v1/messages, nowhere else (the matrix's third kind).
    SimModel(
        id="oca/claude-opus-4",
        display_name="Claude Opus 4",
        context_window=200000,
        max_output_tokens=32000,
        litellm_max_tokens=32000,
        supports_vision=True,
        is_reasoning_model=True,
        reasoning_effort_options=_EFFORTS,
        supported_api_list=(MESSAGES,),
        supports_caching=True,
        thinking_config={"max_budget": 32000},
        description="Claude Opus 4 (Anthropic Messages API only).",
    ),
    SimModel(
        id="oca/llama-4",
        display_name="Llama 4 Maverick",
        context_window=131072,
        max_output_tokens=4096,
        litellm_max_tokens=4096,
        supported_api_list=(CHAT_COMPLETIONS,),
        description="Llama 4: text only, small output limit.",
    ),
    # As in public clients' fixtures.
    SimModel(
        id="oca/grok3",
        display_name="Grok 3",
        context_window=131072,
        max_output_tokens=16000,
        litellm_max_tokens=16000,
        supported_api_list=(CHAT_COMPLETIONS,),
    ),
    # No supported_api_list at all (means chat only); the output cap only in litellm_params.
    SimModel(
        id="oca/mistral-large",
        display_name="Mistral Large",
        context_window=131072,
        max_output_tokens=None,
        litellm_max_tokens=8192,
        supported_api_list=None,
    ),
    SimModel(
        id="oca/text-embedding-3-small",
        display_name="OpenAI Text Embedding 3 Small",
        context_window=8191,
        max_output_tokens=None,
        supported_api_list=None,
        description="Text embeddings (the simulator returns 8 dimensions).",
        embedding=True,
    ),
)

MODELS: dict[str, SimModel] = {m.id: m for m in CATALOGUE}


def model_info_payload() -> dict[str, Any]:
    return {"data": [m.info() for m in CATALOGUE]}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def model_from_entry(entry: Any) -> SimModel | None:
    """A SimModel from one served entry (id from litellm_params.model); None if it has no id."""
    if not isinstance(entry, dict):
        return None
    raw_params, raw_info = entry.get("litellm_params"), entry.get("model_info")
    params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
    info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    model_id = params.get("model")
    if not isinstance(model_id, str) or not model_id:
        return None
    apis = info.get("supported_api_list")
    efforts = info.get("reasoning_effort_options")
    thinking = info.get("thinking_config")
    caching = info.get("supports_caching")
    return SimModel(
        id=model_id,
        display_name=str(entry.get("model_name") or model_id),
        context_window=_int(info.get("context_window")) or 0,
        max_output_tokens=_int(info.get("max_output_tokens")),
        litellm_max_tokens=_int(params.get("max_tokens")),
        supports_vision=bool(info.get("supports_vision")),
        is_reasoning_model=bool(info.get("is_reasoning_model")),
        reasoning_effort_options=tuple(e for e in efforts or () if isinstance(e, str)),
        supported_api_list=(
            tuple(a for a in apis if isinstance(a, str)) if isinstance(apis, list) else None
        ),
        description=info.get("description"),
        supports_caching=caching if isinstance(caching, bool) else None,
        thinking_config=thinking if isinstance(thinking, dict) else None,
        banner=info.get("banner"),
        survey_id=info.get("survey_id"),
        survey_content=info.get("survey_content"),
        embedding="embedding" in model_id,
    )


def parse_model_info(payload: Any) -> dict[str, SimModel]:
    """Models of a served payload, `{"data": [...]}` or a bare array, keyed by id."""
    entries = payload.get("data") if isinstance(payload, dict) else payload
    models = [model_from_entry(e) for e in entries] if isinstance(entries, list) else []
    return {m.id: m for m in models if m is not None}
