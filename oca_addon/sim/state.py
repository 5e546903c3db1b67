"""In-memory state of the simulator: OAuth codes and tokens, counters, recent requests.

All access happens on the server's event loop thread, so no locking is needed;
check-then-rotate sequences contain no await and are therefore atomic.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from oca_addon.sim.config import SimConfig
from oca_addon.sim.models import MODELS, SimModel, model_info_payload, parse_model_info


@dataclass
class CodeGrant:
    client_id: str
    redirect_uri: str
    code_challenge: str
    scope: str
    nonce: str
    created: float
    used: bool = False


@dataclass
class RefreshGrant:
    client_id: str
    scope: str
    created: float


@dataclass
class AccessGrant:
    client_id: str
    scope: str
    expires_at: float


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """JWT-shaped id_token (alg none): clients may decode it, nobody verifies it."""
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64url(json.dumps(claims).encode())}."


class SimState:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.codes: dict[str, CodeGrant] = {}
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        self.access_tokens: dict[str, AccessGrant] = {}
        self._models_from: Any = None
        self._models: dict[str, SimModel] = MODELS
        self.reset()

    # --- catalogue ----------------------------------------------------------------

    @property
    def models(self) -> dict[str, SimModel]:
        """Models requests may name: the built-in catalogue or the served payload's ids."""
        payload = self.config.model_info
        if payload is None:
            return MODELS
        if payload is not self._models_from:
            self._models_from, self._models = payload, parse_model_info(payload)
        return self._models

    def model_info(self) -> Any:
        """The /v1/model/info answer: the configured payload verbatim, else the catalogue."""
        payload = self.config.model_info
        return model_info_payload() if payload is None else payload

    def reset(self) -> None:
        """Clear counters and recorded requests (tokens stay valid)."""
        self.authorize_requests = 0
        self.logins_denied = 0
        self.token_grants: Counter[str] = Counter()
        self.refreshes = 0
        self.refresh_failures = 0
        self.minted = 0
        self.api_requests: Counter[str] = Counter()
        self.api_errors: Counter[str] = Counter()
        self.requests: deque[dict[str, Any]] = deque(maxlen=max(1, self.config.recent_requests))
        # Prompt cache: hash of a prefix up to a cache_control breakpoint -> its tokens.
        self.prompt_cache: dict[str, int] = {}

    def resize_recent(self) -> None:
        self.requests = deque(self.requests, maxlen=max(1, self.config.recent_requests))

    # --- tokens ---------------------------------------------------------------

    def new_code(self, grant: CodeGrant) -> str:
        code = "sim-code-" + secrets.token_urlsafe(24)
        self.codes[code] = grant
        return code

    def issue_tokens(
        self,
        client_id: str,
        scope: str,
        nonce: str | None = None,
        issuer: str = "",
        with_refresh: bool = True,
    ) -> dict[str, Any]:
        """Access token always; refresh token only with the offline_access scope."""
        now = time.time()
        ttl = self.config.token_ttl
        access = "sim-at-" + secrets.token_urlsafe(32)
        self.access_tokens[access] = AccessGrant(client_id, scope, now + ttl)
        claims: dict[str, Any] = {
            "iss": issuer,
            "sub": "sim.user@example.com",
            "aud": client_id,
            "iat": int(now),
            "exp": int(now + ttl),
            "user_displayname": "Sim User",
        }
        if nonce:
            claims["nonce"] = nonce
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(ttl),
            "id_token": unsigned_jwt(claims),
            "scope": scope,
        }
        if with_refresh and "offline_access" in scope.split():
            answer["refresh_token"] = self.new_refresh_token(client_id, scope)
        return answer

    def new_refresh_token(self, client_id: str, scope: str) -> str:
        token = "sim-rt-" + secrets.token_urlsafe(32)
        self.refresh_tokens[token] = RefreshGrant(client_id, scope, time.time())
        return token

    def access_token_valid(self, token: str) -> bool:
        grant = self.access_tokens.get(token)
        if grant is None:
            return False
        if grant.expires_at <= time.time():
            del self.access_tokens[token]
            return False
        return True

    def live_access_tokens(self) -> int:
        now = time.time()
        return sum(1 for g in self.access_tokens.values() if g.expires_at > now)

    # --- observation ------------------------------------------------------------

    def record(self, method: str, path: str, headers: dict[str, str], body: Any) -> None:
        """Keep what a request carried (names lower-cased, credentials redacted)."""
        safe = {k.lower(): v for k, v in headers.items()}
        if "authorization" in safe:
            scheme = safe["authorization"].partition(" ")[0]
            known = scheme if scheme.lower() in ("bearer", "basic") else ""
            safe["authorization"] = f"{known} <redacted>".strip()
        entry = {"time": time.time(), "method": method, "path": path, "headers": safe, "body": body}
        self.requests.append(entry)

    def snapshot(self) -> dict[str, Any]:
        return {
            "counters": {
                "authorize_requests": self.authorize_requests,
                "logins_denied": self.logins_denied,
                "token_grants": dict(self.token_grants),
                "refreshes": self.refreshes,
                "refresh_failures": self.refresh_failures,
                "minted": self.minted,
                "api_requests": dict(self.api_requests),
                "api_errors": dict(self.api_errors),
                "live_access_tokens": self.live_access_tokens(),
                "live_refresh_tokens": len(self.refresh_tokens),
                "prompt_cache_entries": len(self.prompt_cache),
            },
            "config": self.config.to_dict(),
            "requests": list(self.requests),
        }
