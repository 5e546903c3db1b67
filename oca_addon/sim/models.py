"""The simulated OCA model catalogue, as served by GET /v1/model/info.

One data structure (CATALOGUE) so the proxy's tests can import it and stay in
sync with what the simulator advertises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Values of model_info.supported_api_list, named as OCA names them.
CHAT_COMPLETIONS = "CHAT_COMPLETIONS"
RESPONSES = "RESPONSES"
MESSAGES = "MESSAGES"
COMPLETIONS = "COMPLETIONS"
EMBEDDINGS = "EMBEDDINGS"


@dataclass(frozen=True)
class SimModel:
    name: str
    upstream: str  # litellm_params.model: the provider model behind the alias
    context_window: int
    max_output_tokens: int | None
    supports_vision: bool
    is_reasoning_model: bool
    reasoning_effort_options: tuple[str, ...]
    supported_api_list: tuple[str, ...]
    description: str

    def supports(self, api: str) -> bool:
        return api in self.supported_api_list

    def info(self) -> dict[str, Any]:
        """One entry of the /v1/model/info "data" list."""
        mode = "embedding" if self.supports(EMBEDDINGS) else "chat"
        return {
            "model_name": self.name,
            "litellm_params": {"model": self.upstream, "max_tokens": self.max_output_tokens},
            "model_info": {
                "id": self.name.removeprefix("oca/"),
                "mode": mode,
                "context_window": self.context_window,
                "max_input_tokens": self.context_window,
                "max_output_tokens": self.max_output_tokens,
                "supports_vision": self.supports_vision,
                "supports_function_calling": mode == "chat",
                "supports_prompt_caching": mode == "chat",
                "is_reasoning_model": self.is_reasoning_model,
                "reasoning_effort_options": list(self.reasoning_effort_options),
                "supported_api_list": list(self.supported_api_list),
                "description": self.description,
            },
        }


_EFFORTS = ("low", "medium", "high")

CATALOGUE: tuple[SimModel, ...] = (
    SimModel(
        name="oca/gpt-4.1",
        upstream="openai/gpt-4.1",
        context_window=1047576,
        max_output_tokens=32768,
        supports_vision=True,
        is_reasoning_model=False,
        reasoning_effort_options=(),
        supported_api_list=(CHAT_COMPLETIONS,),
        description="GPT-4.1: long context, chat completions only.",
    ),
    SimModel(
        name="oca/gpt-5",
        upstream="openai/gpt-5",
        context_window=400000,
        max_output_tokens=128000,
        supports_vision=True,
        is_reasoning_model=True,
        reasoning_effort_options=_EFFORTS,
        supported_api_list=(RESPONSES, CHAT_COMPLETIONS),
        description="GPT-5 reasoning model (Responses and Chat Completions).",
    ),
    SimModel(
        name="oca/gpt-5-codex",
        upstream="openai/gpt-5-codex",
        context_window=400000,
        max_output_tokens=128000,
        supports_vision=True,
        is_reasoning_model=True,
        reasoning_effort_options=_EFFORTS,
        supported_api_list=(RESPONSES,),
        description="GPT-5 Codex: agentic coding, Responses API only.",
    ),
    SimModel(
        name="oca/claude-sonnet-4",
        upstream="anthropic/claude-sonnet-4",
        context_window=200000,
        max_output_tokens=64000,
        supports_vision=True,
        is_reasoning_model=True,
        reasoning_effort_options=_EFFORTS,
        supported_api_list=(MESSAGES, CHAT_COMPLETIONS),
        description="Claude Sonnet 4 (Anthropic Messages and Chat Completions).",
    ),
    SimModel(
        name="oca/llama-4",
        upstream="meta/llama-4-maverick",
        context_window=131072,
        max_output_tokens=4096,
        supports_vision=False,
        is_reasoning_model=False,
        reasoning_effort_options=(),
        supported_api_list=(CHAT_COMPLETIONS, COMPLETIONS),
        description="Llama 4: text only, small output limit.",
    ),
    SimModel(
        name="oca/text-embedding-3-small",
        upstream="openai/text-embedding-3-small",
        context_window=8191,
        max_output_tokens=None,
        supports_vision=False,
        is_reasoning_model=False,
        reasoning_effort_options=(),
        supported_api_list=(EMBEDDINGS,),
        description="Text embeddings (the simulator returns 8 dimensions).",
    ),
)

MODELS: dict[str, SimModel] = {m.name: m for m in CATALOGUE}


def model_info_payload() -> dict[str, Any]:
    return {"data": [m.info() for m in CATALOGUE]}
