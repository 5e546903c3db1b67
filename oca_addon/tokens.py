"""The login that is never lost: the refresh token file and fresh access tokens.

The file keeps the original tool's path and format (`~/.oca/refresh_token.json`,
`{"refresh_token", "created_at"}`, mode 0600). Refresh tokens rotate and the old one may
die at once, so every refresh runs under a file lock, reads the file first (another
process may have rotated it), and saves the new token before anything else happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from .idcs import Idcs, IdcsError, LoginGone, TokenSet

log = logging.getLogger(__name__)


def default_token_path() -> Path:
    return Path.home() / ".oca" / "refresh_token.json"


class TokenFileError(Exception):
    pass


class TokenStore:
    """The refresh token file. Blocking I/O: call from a worker thread on the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = FileLock(str(path) + ".lock", timeout=60)

    def read(self) -> str | None:
        """The saved refresh token, None if there is none; TokenFileError if unreadable."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            raise TokenFileError(f"cannot read {self.path}: {e}") from None
        try:
            data = json.loads(text)
        except ValueError:
            raise TokenFileError(f"{self.path} is not valid JSON (corrupt?)") from None
        token = data.get("refresh_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenFileError(f"{self.path} holds no refresh_token")
        return token

    def write(self, refresh_token: str) -> None:
        """Atomic: temp file in the same folder, fsync, rename; folder 0700, file 0600."""
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o700)
        payload = {"refresh_token": refresh_token, "created_at": datetime.now(UTC).isoformat()}
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".refresh_token.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(payload, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class LoginStatus:
    logged_in: bool
    access_expires_at: float | None
    problem: str | None  # why we are not logged in, for people


class TokenManager:
    """Hands out a valid access token; at most one refresh runs at a time.

    A request only waits when there is no usable token at all. A token close to expiry is
    still handed out while a background refresh replaces it, so nothing pauses for it.
    """

    def __init__(
        self,
        store: TokenStore,
        idcs: Idcs,
        *,
        refresh_margin: float = 300.0,
        on_login_gone: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.idcs = idcs
        self.refresh_margin = refresh_margin
        self.on_login_gone = on_login_gone
        self._token: TokenSet | None = None
        self._refreshing: asyncio.Task[TokenSet | None] | None = None
        self.problem: str | None = None
        self.last_refresh: float | None = None
        self.refresh_count = 0

    # -- state -------------------------------------------------------------------

    @property
    def access_expires_at(self) -> float | None:
        return self._token.expires_at if self._token else None

    async def status(self) -> LoginStatus:
        if self._token and self._token.expires_at > time.time():
            return LoginStatus(True, self._token.expires_at, None)
        try:
            saved = await asyncio.to_thread(self.store.read)
        except TokenFileError as e:
            return LoginStatus(False, None, str(e))
        if saved is None:
            return LoginStatus(False, None, self.problem or "not logged in")
        return LoginStatus(True, self.access_expires_at, None)

    def adopt(self, tokens: TokenSet) -> None:
        """Use tokens obtained by a fresh login (the refresh token is already saved)."""
        self._token = tokens
        self.problem = None

    async def logout(self) -> None:
        self._token = None
        self.problem = "logged out"
        await asyncio.to_thread(self._clear_locked)

    def _clear_locked(self) -> None:
        with self.store.lock:
            self.store.clear()

    def invalidate(self, access_token: str) -> None:
        """OCA refused this token: forget it so the next request refreshes."""
        if self._token and self._token.access_token == access_token:
            self._token = TokenSet(access_token, 0.0, self._token.refresh_token, 0.0)

    # -- getting a token ---------------------------------------------------------

    async def access_token(self) -> str | None:
        """A valid access token, or None when the user must log in (see .problem)."""
        token = self._token
        now = time.time()
        # Short-lived tokens (tests, odd tenants) are renewed at half their life at the latest.
        margin = min(self.refresh_margin, (token.expires_at - token.issued_at) / 2) if token else 0
        if token and token.expires_at - margin > now:
            return token.access_token
        if token and token.expires_at - 2 > now:
            self._start_refresh()  # close to expiry: renew in the background, use this one
            return token.access_token
        result = await self._start_refresh()
        return result.access_token if result else None

    def refresh_now(self) -> asyncio.Task[TokenSet | None]:
        return self._start_refresh()

    def _start_refresh(self) -> asyncio.Task[TokenSet | None]:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())
        return self._refreshing

    async def _refresh(self) -> TokenSet | None:
        try:
            tokens = await asyncio.to_thread(self._refresh_blocking)
        except LoginGone as e:
            self._token = None
            self.problem = f"the OCA login has expired or was revoked ({e}); log in again"
            log.warning("OCA login is gone: %s. Open /login to sign in again.", e)
            if self.on_login_gone:
                self.on_login_gone(self.problem)
            return None
        except TokenFileError as e:
            self._token = None
            self.problem = str(e)
            log.error("Token file problem: %s. Treating as not logged in.", e)
            return None
        except (IdcsError, Timeout) as e:
            self.problem = f"could not refresh the OCA login: {e}"
            log.warning("Token refresh failed: %s", e)
            # A still-valid token keeps working; an expired one is useless.
            if self._token and self._token.expires_at > time.time():
                return self._token
            return None
        except Exception as e:  # never let a refresh bug take the proxy down
            log.exception("Unexpected error while refreshing the OCA login")
            self.problem = f"could not refresh the OCA login: {type(e).__name__}"
            return None
        if tokens is None:
            self._token = None
            self.problem = "not logged in"
            return None
        self._token = tokens
        self.problem = None
        self.last_refresh = time.time()
        self.refresh_count += 1
        log.info(
            "OCA access token refreshed (valid for %d min)", (tokens.expires_at - time.time()) / 60
        )
        return tokens

    def _refresh_blocking(self) -> TokenSet | None:
        with self.store.lock:
            # Another process may have rotated the token since we last looked.
            refresh_token = self.store.read()
            if refresh_token is None:
                return None
            tokens = self.idcs.refresh(refresh_token)
            if tokens.refresh_token and tokens.refresh_token != refresh_token:
                self.store.write(tokens.refresh_token)  # before anything else happens
            return tokens

    def save_login(self, tokens: TokenSet) -> None:
        """Blocking: save the refresh token from a fresh login (under the lock)."""
        if not tokens.refresh_token:
            raise IdcsError("IDCS gave no refresh token (was offline_access granted?)")
        with self.store.lock:
            self.store.write(tokens.refresh_token)
