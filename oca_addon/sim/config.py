"""Simulator settings ("knobs"), changeable at start-up (CLI) and at runtime (/__sim/config)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# The two public OCA client ids (internal and external IDCS), see OCA-FACTS.md.
DEFAULT_CLIENT_IDS: tuple[str, ...] = (
    "a8331954c0cf48ba99b5dd223a14c6ea",
    "c1aba3deed5740659981a752714eba33",
)

# The only redirect ports IDCS has whitelisted for the OCA clients.
ALLOWED_REDIRECT_PORTS: tuple[int, ...] = (8669, 8668, 8667)

# Fields that identify the listening socket: fixed once the server runs.
_STARTUP_ONLY = {"host", "port"}


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
    # Every refresh answers 400 invalid_grant (login is gone).
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
    # How many recent requests /__sim/state keeps.
    recent_requests: int = 50

    def accepted_client_ids(self) -> set[str]:
        return set(DEFAULT_CLIENT_IDS) | set(self.client_ids)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply runtime changes; raises ValueError on unknown keys or bad types."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in fields or key in _STARTUP_ONLY:
                raise ValueError(f"unknown or read-only knob: {key}")
            current = getattr(self, key)
            setattr(self, key, _coerce(key, current, value))


def _coerce(key: str, current: Any, value: Any) -> Any:
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
