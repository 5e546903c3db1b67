"""Simulated Oracle IDCS: OpenID discovery, authorize (auto-approved), token endpoint.

OAuth 2.0 authorization code + PKCE (S256) for a public client, with refresh
tokens that rotate (the old one dies at once), like the real service.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import re
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from oca_addon.sim.base import BaseHandler
from oca_addon.sim.config import ALLOWED_REDIRECT_PORTS
from oca_addon.sim.state import CodeGrant

_PKCE_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")

# How a refresh is refused once the login is gone (SimConfig.lost_login): OAuth error, status.
# The 401/403 bodies carry no OAuth error a client would know: only the status tells.
LOST_LOGIN: dict[str, tuple[str, int]] = {
    "invalid_grant": ("invalid_grant", 400),
    "invalid_token": ("invalid_token", 400),
    "unauthorized_client": ("unauthorized_client", 400),
    "401": ("unauthorized", 401),
    "403": ("forbidden", 403),
}


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class IdcsHandler(BaseHandler):
    def base_url(self) -> str:
        return f"http://{self.request.host}"

    def html_page(self, status: int, title: str, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        body = f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
        self.finish(
            f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head><body>{body}</body></html>"
        )


class OpenIdConfigHandler(IdcsHandler):
    def get(self) -> None:
        base = self.base_url()
        self.send_json(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/oauth2/v1/authorize",
                "token_endpoint": f"{base}/oauth2/v1/token",
                "userinfo_endpoint": f"{base}/oauth2/v1/userinfo",
                "end_session_endpoint": f"{base}/oauth2/v1/userlogout",
                "jwks_uri": f"{base}/admin/v1/SigningCert/jwk",
                "scopes_supported": ["openid", "offline_access", "profile", "email"],
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )


class AuthorizeHandler(IdcsHandler):
    def get(self) -> None:
        sim, cfg = self.sim, self.sim.config
        sim.authorize_requests += 1
        q = {k: v[-1].decode() for k, v in self.request.query_arguments.items()}
        self.record(q)
        client_id, redirect_uri, state = (
            q.get("client_id", ""),
            q.get("redirect_uri", ""),
            q.get("state", ""),
        )
        # RFC 6749 4.1.2.1: a bad client or redirect URI is shown, never redirected to.
        if client_id not in cfg.accepted_client_ids():
            return self.html_page(400, "Invalid client", f"Unknown client_id {client_id!r}.")
        if not self._redirect_ok(redirect_uri):
            return self.html_page(
                400, "Invalid redirect URI", f"redirect_uri {redirect_uri!r} is not registered."
            )

        def fail(error: str, description: str) -> None:
            params = {"error": error, "error_description": description}
            if state:
                params["state"] = state
            self.redirect(f"{redirect_uri}?{urlencode(params)}")

        if q.get("response_type") != "code":
            return fail("unsupported_response_type", "response_type must be code")
        if "openid" not in q.get("scope", "").split():
            return fail("invalid_scope", "scope must contain openid")
        for name in ("state", "nonce", "code_challenge"):
            if not q.get(name):
                return fail("invalid_request", f"{name} is required")
        if q.get("code_challenge_method") != "S256":
            return fail("invalid_request", "code_challenge_method must be S256")
        if not re.fullmatch(r"[A-Za-z0-9_-]{43}", q["code_challenge"]):
            return fail("invalid_request", "code_challenge is not a base64url SHA-256 digest")
        if cfg.deny_login:
            sim.logins_denied += 1
            return fail("access_denied", "The user denied the authorization request")

        grant = CodeGrant(
            client_id=client_id,
            redirect_uri=redirect_uri,
            code_challenge=q["code_challenge"],
            scope=q["scope"],
            nonce=q["nonce"],
            created=time.time(),
        )
        code = sim.new_code(grant)
        self.redirect(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}")

    def _redirect_ok(self, uri: str) -> bool:
        try:
            parts = urlsplit(uri)
            port = parts.port
        except ValueError:
            return False
        if parts.scheme != "http" or parts.hostname != "localhost" or parts.path != "/callback":
            return False
        if port is None or parts.query or parts.fragment:
            return False
        return self.sim.config.allow_any_redirect_port or port in ALLOWED_REDIRECT_PORTS


class TokenError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


class TokenHandler(IdcsHandler):
    async def post(self) -> None:
        form = {k: v[-1].decode() for k, v in self.request.body_arguments.items()}
        self.record(form)
        self.set_header("Cache-Control", "no-store")
        grant_type = form.get("grant_type", "")
        try:
            client_id = self._client_id(form)
            if grant_type == "authorization_code":
                answer = self._exchange_code(form, client_id)
            elif grant_type == "refresh_token":
                answer = await self._refresh(form, client_id)
            else:
                raise TokenError("unsupported_grant_type", f"grant_type {grant_type!r}")
        except TokenError as e:
            if grant_type == "refresh_token":
                self.sim.refresh_failures += 1
            return self.send_json({"error": e.error, "error_description": e.description}, e.status)
        self.sim.token_grants[grant_type] += 1
        self.send_json(answer)

    def _client_id(self, form: dict[str, str]) -> str:
        client_id = form.get("client_id", "")
        auth = self.request.headers.get("Authorization", "")
        if not client_id and auth.startswith("Basic "):  # confidential-client style
            try:
                client_id = base64.b64decode(auth[6:]).decode().split(":", 1)[0]
            except ValueError:
                client_id = ""
        if client_id not in self.sim.config.accepted_client_ids():
            raise TokenError("invalid_client", "Client authentication failed", 401)
        return client_id

    def _exchange_code(self, form: dict[str, str], client_id: str) -> dict[str, Any]:
        grant = self.sim.codes.get(form.get("code", ""))
        if grant is None or grant.used:
            raise TokenError("invalid_grant", "authorization code is invalid or already used")
        grant.used = True  # single use, even when the rest of the exchange fails
        if time.time() - grant.created > self.sim.config.code_ttl:
            raise TokenError("invalid_grant", "authorization code has expired")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise TokenError("invalid_grant", "redirect_uri does not match the authorize request")
        if client_id != grant.client_id:
            raise TokenError("invalid_grant", "client_id does not match the authorize request")
        verifier = form.get("code_verifier", "")
        if not _PKCE_RE.match(verifier) or s256(verifier) != grant.code_challenge:
            raise TokenError("invalid_grant", "PKCE verification failed: bad code_verifier")
        return self.sim.issue_tokens(client_id, grant.scope, grant.nonce, self.base_url())

    def lost_login(self, description: str) -> TokenError:
        error, status = LOST_LOGIN[self.sim.config.lost_login]
        return TokenError(error, description, status)

    async def _refresh(self, form: dict[str, str], client_id: str) -> dict[str, Any]:
        cfg = self.sim.config
        if cfg.refresh_delay:
            await asyncio.sleep(cfg.refresh_delay)
        # From here on no await: check-and-rotate is atomic on the event loop.
        token = form.get("refresh_token", "")
        grant = self.sim.refresh_tokens.get(token)
        if cfg.fail_refresh or grant is None:
            raise self.lost_login("refresh token is invalid, expired or already used")
        if grant.client_id != client_id:
            raise self.lost_login("refresh token was issued to another client")
        if cfg.rotate_refresh_tokens:
            del self.sim.refresh_tokens[token]
        self.sim.refreshes += 1
        # Without rotation the answer carries no refresh_token: the old one stays valid.
        return self.sim.issue_tokens(
            client_id, grant.scope, None, self.base_url(), with_refresh=cfg.rotate_refresh_tokens
        )


class UserInfoHandler(IdcsHandler):
    def get(self) -> None:
        auth = self.request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if not self.sim.access_token_valid(token):
            return self.send_json({"error": "invalid_token"}, 401)
        self.send_json(
            {"sub": "sim.user@example.com", "name": "Sim User", "email": "sim.user@example.com"}
        )


class LogoutHandler(IdcsHandler):
    def get(self) -> None:
        target = self.get_query_argument("post_logout_redirect_uri", "")
        if target.startswith(("http://localhost:", "http://127.0.0.1:")):
            return self.redirect(target)
        self.html_page(200, "Signed out", "You have been signed out of the simulated IDCS.")


class JwksHandler(IdcsHandler):
    def get(self) -> None:
        self.send_json({"keys": []})  # id tokens are unsigned in the simulator
