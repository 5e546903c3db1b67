"""The shapes the translator contract passes around (docs/ARCHITECTURE.md): the chat request
OCA gets (`ChatRequest`), the `chat.completion.chunk` objects of its stream (`ChatChunk`),
the `chat.completion` assembled from them (`ChatCompletion`), and their `Usage`.

TypedDicts: plain dicts at run time (no cost on the hot paths, nothing converted), checked
by mypy where code builds them. What comes from OCA is parsed JSON taken as it is, so its
values may be of any type: code that reads a chunk still checks each value it uses.

Fields are optional (total=False) wherever the wire may leave them out. Lists of request
messages and tools stay plain dicts: their builders (anthropic/blocks.py,
responses/items.py, caching.py, memo.py) work on dicts; `ChatMessage` names their shape.
"""

from __future__ import annotations

from typing import Any, Required, TypedDict, TypeGuard

# -- the request ------------------------------------------------------------------------


class StreamOptions(TypedDict, total=False):
    include_usage: bool


class FunctionCall(TypedDict, total=False):
    name: str
    arguments: str  # JSON text


class ToolCall(TypedDict, total=False):
    """A whole tool call, in an assistant message."""

    id: str
    type: str  # "function"
    function: FunctionCall


class ChatMessage(TypedDict, total=False):
    """One message of a chat request, or the message of an assembled answer."""

    role: Required[str]  # system, developer, user, assistant, tool
    content: str | list[dict[str, Any]] | None  # text, or parts (text, image_url, file)
    name: str
    tool_calls: list[ToolCall]  # assistant
    tool_call_id: str  # tool
    reasoning_content: str  # assistant: the model's reasoning (LiteLLM's field)


class ChatRequest(TypedDict, total=False):
    """An OCA `/chat/completions` body, as every client translator makes it (and as an
    upstream adapter's `request` reads it). A translator's own always has "stream": true
    and stream_options.include_usage true."""

    model: Required[str]
    messages: Required[list[dict[str, Any]]]  # each a ChatMessage
    stream: bool
    stream_options: StreamOptions
    tools: list[dict[str, Any]]  # {"type": "function", "function": {name, description, ...}}
    tool_choice: str | dict[str, Any]  # auto, none, required, or {"type": "function", ...}
    parallel_tool_calls: bool
    max_tokens: int
    max_completion_tokens: int
    temperature: float
    top_p: float
    stop: str | list[str]
    n: int
    presence_penalty: float
    frequency_penalty: float
    seed: int
    logit_bias: dict[str, Any]
    reasoning_effort: str
    thinking: dict[str, Any]  # {"type": "enabled", "budget_tokens": n}: models that take it
    response_format: dict[str, Any]
    user: str
    safety_identifier: str
    prompt_cache_key: str
    metadata: dict[str, Any]


# -- the answer -------------------------------------------------------------------------


class PromptTokensDetails(TypedDict, total=False):
    cached_tokens: int


class CompletionTokensDetails(TypedDict, total=False):
    reasoning_tokens: int


class Usage(TypedDict, total=False):
    """Chat's usage; `prompt_tokens` counts cached tokens too. The cache_* fields are
    LiteLLM's (Anthropic's reads and writes)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails
    cache_read_input_tokens: int
    cache_creation_input_tokens: int


class FunctionDelta(TypedDict, total=False):
    name: str
    arguments: str  # a fragment of the JSON text


class ToolCallDelta(TypedDict, total=False):
    """A fragment of a tool call: fragments with the same `index` make one call; the first
    carries its id and name."""

    index: int
    id: str
    type: str  # "function"
    function: FunctionDelta


class ChatDelta(TypedDict, total=False):
    role: str
    content: str | None
    reasoning_content: str
    reasoning: str  # other gateways' names for reasoning_content, read the same
    thinking: str
    refusal: str
    tool_calls: list[ToolCallDelta]


class ChunkChoice(TypedDict, total=False):
    index: int
    delta: ChatDelta
    finish_reason: str | None  # stop, length, tool_calls, content_filter
    logprobs: Any


class ChunkError(TypedDict, total=False):
    message: str
    type: str
    code: int | str | None  # the HTTP status (LiteLLM sends it as a number or a string)
    param: str | None


class ChatChunk(TypedDict, total=False):
    """One `chat.completion.chunk` of a chat stream; or, holding only `error`, the failure
    that ends it (LiteLLM's shape, which the upstream adapters send too)."""

    id: str
    object: str  # "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str
    choices: list[ChunkChoice]  # empty in the usage chunk
    usage: Usage | None
    error: ChunkError


class CompletionChoice(TypedDict, total=False):
    index: int
    message: ChatMessage
    finish_reason: str | None
    logprobs: Any


class ChatCompletion(TypedDict, total=False):
    """A `chat.completion`: a streamed answer assembled (`chat.ChatAssembler`)."""

    id: str
    object: str  # "chat.completion"
    created: int
    model: str
    system_fingerprint: str
    choices: list[CompletionChoice]
    usage: Usage


def is_chunk(data: Any) -> TypeGuard[ChatChunk]:
    """Whether parsed JSON is an object, which a reader of chunks takes as a `ChatChunk`
    (checking each value it uses)."""
    return isinstance(data, dict)
