"""Simulator settings ("knobs"), changeable at start-up (CLI) and at runtime (/__sim/config)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from oca_addon.sim.refusals import validate as validate_refusals

# The two public OCA client ids (internal and external IDCS), see OCA-FACTS.md.
DEFAULT_CLIENT_IDS: tuple[str, ...] = (
    "a8331954c0cf48ba99b5dd223a14c6ea",
    "c1aba3deed5740659981a752714eba33",
)

# The only redirect ports IDCS has whitelisted for the OCA clients.
ALLOWED_REDIRECT_PORTS: tuple[int, ...] = (8669, 8668, 8667)

# Fields that identify the listening socket: fixed once the server runs.
_STARTUP_ONLY = {"host", "port"}

# Behaviours no source confirms for real OCA (see sim/README.md "Guesses"); each can be
# switched off. OCA_SIM_GUESSES = "all" (default) | "none" | "name,name,..." (those on).
GUESSES: tuple[str, ...] = (
    "stream_only",
    "reject_image_detail",
    "serves_embeddings",
    "serves_completions",
    "enforce_effort_options",
    "rejects_unlisted_api",
    "unknown_model_message",
)
GUESSES_ENV = "OCA_SIM_GUESSES"

# Knobs that take one of a few strings.
CHOICES: dict[str, tuple[str, ...]] = {
    "reasoning_field": ("reasoning_content", "thinking"),
    "error_shape": ("litellm", "oci"),
    "lost_login": ("invalid_grant", "invalid_token", "unauthorized_client", "401", "403"),
}


def guesses_on(spec: str | list[str] | None) -> set[str]:
    """The guesses a spec switches on: "all", "none", or a list (comma list) of names."""
    names = spec if isinstance(spec, list) else (spec or "all").split(",")
    names = [n.strip() for n in names if isinstance(n, str) and n.strip()]
    if names == ["all"]:
        return set(GUESSES)
    if names in ([], ["none"]):
        return set()
    unknown = set(names) - set(GUESSES)
    if unknown:
        raise ValueError(f"unknown guesses: {sorted(unknown)} (known: {list(GUESSES)})")
    return set(names)


def _guess_default(name: str) -> Any:
    def default() -> bool:
        return name in guesses_on(os.environ.get(GUESSES_ENV) or "all")

    return field(default_factory=default)


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 9100
    # Extra accepted OAuth client ids (the two real ones are always accepted).
    client_ids: list[str] = field(default_factory=list)
    # Accept http://localhost:<any port>/callback (tests bind free ports).
    allow_any_redirect_port: bool = False
    # Lifetime of issued access tokens, seconds.
    token_ttl: float = 3600.0
    # Sleep before answering a refresh (tests single-flight refresh in the proxy).
    refresh_delay: float = 0.0
    # Every refresh fails as a lost login does (see lost_login).
    fail_refresh: bool = False
    # Each refresh returns a new refresh token and kills the old one at once.
    rotate_refresh_tokens: bool = True
    # The authorize endpoint redirects with error=access_denied.
    deny_login: bool = False
    # Responses API: terminal response.completed carries "output": [] (real OCA does this).
    empty_final_output: bool = False
    # Reject max_tokens above the model's max_output_tokens, as the providers do.
    enforce_max_tokens: bool = True
    # Authorization codes expire after this many seconds.
    code_ttl: float = 600.0
    # How many recent requests /__sim/state (and /__sim/requests) keeps.
    recent_requests: int = 50
    # Chat streams carry reasoning as delta.reasoning_content or delta.thinking (both seen).
    reasoning_field: str = "reasoning_content"
    # API error bodies: LiteLLM's {"error": {...}} or OCI's flat {"code", "message"} (both seen).
    error_shape: str = "litellm"
    # How the token endpoint answers a refresh once the login is gone (all seen).
    lost_login: str = "invalid_grant"
    # Serve this /v1/model/info payload verbatim ({"data": [...]} or a bare array) and
    # accept requests for its ids; None serves the built-in CATALOGUE.
    model_info: Any = None
    # What each model REALLY refuses or takes, whatever its list entry announces (not a
    # guess: LiteLLM's wordings, see refusals.py): {"oca/x": {"params": [...], "efforts":
    # [...], "max_output_tokens": N}}.
    refusals: dict[str, dict[str, Any]] = field(default_factory=dict)

    # --- guesses (see GUESSES) ---
    # Reject requests without "stream": true.
    stream_only: bool = _guess_default("stream_only")
    # Reject chat image parts that carry image_url.detail.
    reject_image_detail: bool = _guess_default("reject_image_detail")
    # Serve /embeddings (off: 404 like any path the gateway does not serve).
    serves_embeddings: bool = _guess_default("serves_embeddings")
    # Serve /completions (off: 404 like any path the gateway does not serve).
    serves_completions: bool = _guess_default("serves_completions")
    # Reject a reasoning effort the model's reasoning_effort_options do not list.
    enforce_effort_options: bool = _guess_default("enforce_effort_options")
    # Refuse /responses, /v1/messages, /chat/completions for a model whose list lacks that API.
    rejects_unlisted_api: bool = _guess_default("rejects_unlisted_api")
    # Unknown oca/ model: LiteLLM's 400 "Invalid model name ..." (off: a plain 404).
    unknown_model_message: bool = _guess_default("unknown_model_message")

    def __post_init__(self) -> None:
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {list(allowed)}")
        self.refusals = validate_refusals(self.refusals)

    def accepted_client_ids(self) -> set[str]:
        return set(DEFAULT_CLIENT_IDS) | set(self.client_ids)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def guesses(self) -> dict[str, bool]:
        return {g: getattr(self, g) for g in GUESSES}

    def set_guesses(self, spec: str | list[str]) -> None:
        """Switch every guess: those the spec names on, the others off."""
        on = guesses_on(spec)
        for g in GUESSES:
            setattr(self, g, g in on)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply runtime changes; raises ValueError on unknown keys or bad types."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in fields or key in _STARTUP_ONLY:
                raise ValueError(f"unknown or read-only knob: {key}")
            current = getattr(self, key)
            setattr(self, key, _coerce(key, current, value))


def _coerce(key: str, current: Any, value: Any) -> Any:
    if key in CHOICES:
        if value not in CHOICES[key]:
            raise ValueError(f"{key} must be one of {list(CHOICES[key])}")
        return value
    if key == "refusals":
        return validate_refusals(value)
    if key == "model_info":
        if value is not None and not isinstance(value, dict | list):
            raise ValueError("model_info must be a JSON object, an array or null")
        return value
    # Booleans first: bool is a subclass of int.
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be a boolean")
        return value
    if isinstance(current, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{key} must be a non-negative number")
        return type(current)(value)
    if isinstance(current, list):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{key} must be a list of strings")
        return list(value)
    raise ValueError(f"{key} cannot be changed")
