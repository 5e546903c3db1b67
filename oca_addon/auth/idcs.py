"""Oracle IDCS, the OAuth server behind OCA: discovery, code exchange, refresh.

Blocking (requests-oauthlib), so the addon always calls these from a worker thread.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from oauthlib.oauth2 import OAuth2Error
from requests_oauthlib import OAuth2Session

# requests-oauthlib logs whole token responses at DEBUG: keep tokens out of every log.
for _name in ("requests_oauthlib", "oauthlib"):
    logging.getLogger(_name).setLevel(logging.WARNING)
# IDCS may answer with a narrower scope than asked (no offline_access): not an error.
os.environ.setdefault("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")

SCOPE = ["openid", "offline_access"]
TIMEOUT = 30


class LoginGone(Exception):
    """The refresh token is no longer accepted (invalid_grant): the user must log in again."""


# OAuth errors (RFC 6749, 6750) that no retry will cure: this login is over.
LOGIN_GONE_ERRORS = frozenset({"invalid_grant", "invalid_token", "unauthorized_client"})


def refresh_failure(status: int, error: str | None) -> str | None:
    """Why a token endpoint answer means the login is gone (None: it may work later)."""
    if error in LOGIN_GONE_ERRORS:
        return error
    if status in (401, 403):
        return error or f"IDCS answered {status}"
    return None


class IdcsError(Exception):
    """IDCS could not be reached or gave an answer we cannot use (try again later)."""


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    expires_at: float
    refresh_token: str | None
    issued_at: float = 0.0

    @classmethod
    def from_response(cls, token: dict[str, Any]) -> TokenSet:
        access = token.get("access_token")
        if not isinstance(access, str) or not access:
            raise IdcsError("IDCS answered without an access token")
        expires_in = token.get("expires_in")
        try:
            lifetime = float(expires_in) if expires_in is not None else 3600.0
        except (TypeError, ValueError):
            lifetime = 3600.0
        refresh = token.get("refresh_token")
        now = time.time()
        return cls(access, now + lifetime, refresh if isinstance(refresh, str) else None, now)


class Idcs:
    """One IDCS tenant and client id; discovery is fetched once and cached."""

    def __init__(self, idcs_url: str, client_id: str) -> None:
        self.idcs_url = idcs_url.rstrip("/")
        self.client_id = client_id
        if urlsplit(self.idcs_url).hostname in ("127.0.0.1", "localhost", "::1"):
            # The simulator speaks plain HTTP on loopback; oauthlib insists on HTTPS otherwise.
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        self._discovery: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def discovery(self) -> dict[str, Any]:
        with self._lock:
            if self._discovery is None:
                url = f"{self.idcs_url}/.well-known/openid-configuration"
                try:
                    resp = requests.get(url, timeout=TIMEOUT)
                    resp.raise_for_status()
                    data = resp.json()
                except (requests.RequestException, ValueError):
                    # Known layout of IDCS; discovery is tried again next time.
                    return {
                        "authorization_endpoint": f"{self.idcs_url}/oauth2/v1/authorize",
                        "token_endpoint": f"{self.idcs_url}/oauth2/v1/token",
                    }
                self._discovery = data
            return self._discovery

    @property
    def token_endpoint(self) -> str:
        return str(self.discovery()["token_endpoint"])

    @property
    def authorization_endpoint(self) -> str:
        return str(self.discovery()["authorization_endpoint"])

    def refresh(self, refresh_token: str) -> TokenSet:
        """Exactly what real clients send (no scope: requests-oauthlib's refresh_token()
        would add one). LoginGone when IDCS will never take this refresh token again."""
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self.client_id,
        }
        try:
            resp = requests.post(
                self.token_endpoint,
                data=form,
                headers={"accept": "application/json"},
                timeout=TIMEOUT,
            )
        except requests.RequestException as e:
            raise IdcsError(f"cannot reach IDCS: {type(e).__name__}") from None
        try:
            token = resp.json()
        except ValueError:
            token = None
        if not isinstance(token, dict):
            token = {}
        error = token.get("error")
        gone = refresh_failure(resp.status_code, error if isinstance(error, str) else None)
        if gone is not None:
            desc = token.get("error_description")
            raise LoginGone(desc if isinstance(desc, str) and desc else gone)
        if resp.status_code >= 400 or error:
            raise IdcsError(f"IDCS refused the refresh: {error or resp.status_code}")
        result = TokenSet.from_response(token)
        # Without rotation IDCS sends no new refresh token: the old one stays valid.
        if result.refresh_token is None:
            result = TokenSet(
                result.access_token, result.expires_at, refresh_token, result.issued_at
            )
        return result

    # -- the authorization code flow with PKCE --------------------------------

    def start_login(self, redirect_uri: str) -> LoginRequest:
        verifier = secrets.token_urlsafe(64)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        session = OAuth2Session(self.client_id, scope=SCOPE, redirect_uri=redirect_uri)
        nonce = secrets.token_urlsafe(16)
        url, state = session.authorization_url(
            self.authorization_endpoint,
            nonce=nonce,
            code_challenge=challenge,
            code_challenge_method="S256",
        )
        return LoginRequest(url, state, verifier, nonce, redirect_uri, time.time())

    def exchange_code(self, code: str, login: LoginRequest) -> TokenSet:
        session = OAuth2Session(self.client_id, scope=SCOPE, redirect_uri=login.redirect_uri)
        try:
            token = session.fetch_token(
                self.token_endpoint,
                code=code,
                code_verifier=login.verifier,
                include_client_id=True,
                timeout=TIMEOUT,
            )
        except OAuth2Error as e:
            raise IdcsError(
                f"IDCS refused the login code: {e.error}"
                + (f" ({e.description})" if e.description else "")
            ) from None
        except (requests.RequestException, ValueError) as e:
            raise IdcsError(f"cannot reach IDCS: {type(e).__name__}") from None
        return TokenSet.from_response(dict(token))


@dataclass(frozen=True)
class LoginRequest:
    url: str
    state: str
    verifier: str
    nonce: str
    redirect_uri: str
    created_at: float
