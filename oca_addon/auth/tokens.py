"""The login that is never lost: the refresh token file and fresh access tokens.

The file keeps the original tool's path and format (`~/.oca/refresh_token.json`,
`{"refresh_token", "created_at"}`, mode 0600). Refresh tokens rotate and the old one may
die at once, so every refresh runs under a file lock, reads the file first (another
process may have rotated it), and saves the new token before anything else happens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from oca_addon.auth.idcs import Idcs, IdcsError, LoginGone, TokenSet
from oca_addon.core import private

log = logging.getLogger(__name__)


def default_token_path() -> Path:
    return Path.home() / ".oca" / "refresh_token.json"


class TokenFileError(Exception):
    pass


class TokenStore:
    """The refresh token file. Blocking I/O: call from a worker thread on the event loop.

    A token file that is a symbolic link is written through the link: the link's target
    is replaced atomically (another tool may keep the login where the link points)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = FileLock(str(path) + ".lock", timeout=60, mode=0o600)

    @property
    def lock(self) -> FileLock:
        """The file lock; its folder is made private (0700) before the lock file (0600)
        appears in it, even when nobody has logged in yet."""
        private.make_folder(self.path.parent, tighten=True)
        return self._lock

    def signature(self) -> tuple[int, int, int] | None:
        """What tells a changed file apart (inode, size, mtime); None if there is none."""
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def read(self) -> str | None:
        """The saved refresh token, None if there is none; TokenFileError if unreadable,
        or if another user owns it or may write it (private.py)."""
        try:
            text = private.read_private(self.path).decode("utf-8")
        except FileNotFoundError:
            return None
        except private.FileRefused as e:
            raise TokenFileError(str(e)) from None
        except (OSError, UnicodeDecodeError) as e:
            raise TokenFileError(f"cannot read {self.path}: {e}") from None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise TokenFileError(f"{self.path} is not valid JSON (corrupt?)") from None
        token = data.get("refresh_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenFileError(f"{self.path} holds no refresh_token")
        return token

    def write(self, refresh_token: str) -> None:
        """Atomic: temp file in the same folder, fsync, rename; folder 0700, file 0600."""
        payload = {"refresh_token": refresh_token, "created_at": datetime.now(UTC).isoformat()}
        data = json.dumps(payload, indent=2).encode("utf-8")
        private.write_private(self.path, data, tighten_folder=True)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class LoginStatus:
    logged_in: bool
    access_expires_at: float | None
    problem: str | None  # why we are not logged in (or what is wrong with the login), for people


@dataclass(frozen=True)
class _Gone:
    """A login IDCS refused for good: the dead refresh token and the file as it was then."""

    refresh_token: str | None
    signature: tuple[int, int, int] | None
    reason: str

    @property
    def problem(self) -> str:
        return f"the OCA login has expired or was revoked ({self.reason}); log in again"


class TokenManager:
    """Hands out a valid access token; at most one refresh runs at a time.

    A request only waits when there is no usable token at all. A token close to expiry is
    still handed out while a background refresh replaces it, so nothing pauses for it.

    A login IDCS refused for good is remembered: IDCS is not asked again until a new login
    is adopted or the token file changes (another process may have logged in). A rotated
    refresh token that cannot be saved is kept in memory (and used, never the revoked one
    on disk), and saved on each refresh and every SAVE_RETRY_S until that works.

    A login whose token file is removed (`oca-proxy logout`, or by hand) ends at once: before
    a kept access token is handed out, the file's presence is looked at (one stat, at most
    every PRESENCE_CHECK_S). That includes a login held in memory while the file still holds
    the token it replaced (never written back then), but not a fresh login whose file could
    never be written (its absence says nothing).
    """

    SAVE_RETRY_S = 60.0
    PRESENCE_CHECK_S = 1.0

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
        self._gone: _Gone | None = None
        # A rotated refresh token not yet on disk, and the (revoked) one the file still holds.
        self._unsaved: str | None = None
        self._stale: str | None = None
        self.save_problem: str | None = None
        self._save_retry: asyncio.Task[None] | None = None
        self._presence_due = 0.0  # time.monotonic() of the next look at the token file

    # -- state -------------------------------------------------------------------

    @property
    def access_expires_at(self) -> float | None:
        return self._token.expires_at if self._token else None

    async def status(self) -> LoginStatus:
        self._file_removed()
        if self._token and self._token.expires_at > time.time():
            return LoginStatus(True, self._token.expires_at, self.save_problem)
        if self._unsaved:
            return LoginStatus(True, self.access_expires_at, self.save_problem)
        try:
            saved = await asyncio.to_thread(self.store.read)
        except TokenFileError as e:
            return LoginStatus(False, None, str(e))
        if saved is None:
            return LoginStatus(False, None, self.problem or "not logged in")
        if self._gone and saved == self._gone.refresh_token:
            return LoginStatus(False, None, self._gone.problem)
        return LoginStatus(True, self.access_expires_at, None)

    def adopt(self, tokens: TokenSet) -> None:
        """Use tokens obtained by a fresh login (the refresh token is already saved)."""
        self._token = tokens
        self.problem = None
        self._gone = None
        self._unsaved = self._stale = self.save_problem = None

    async def logout(self) -> None:
        self._token = None
        self.problem = "logged out"
        self._unsaved = self._stale = self.save_problem = None
        await asyncio.to_thread(self._clear_locked)

    def _clear_locked(self) -> None:
        with self.store.lock:
            self.store.clear()

    def _file_removed(self, *, now: bool = False) -> bool:
        """Whether the login just ended because its token file is gone (logged out
        elsewhere). One stat, at most every PRESENCE_CHECK_S unless `now`."""
        if self._token is None and self._unsaved is None:
            return False
        if self._unsaved is not None and self._stale is None:
            return False  # a login that never had a file: its absence says nothing
        t = time.monotonic()
        if t < self._presence_due and not now:
            return False
        self._presence_due = t + self.PRESENCE_CHECK_S
        if self.store.path.exists():
            return False
        self._token = None
        self._unsaved = self._stale = self.save_problem = None
        self.problem = f"logged out ({self.store.path} was removed)"
        log.info("The token file %s was removed: no longer logged in to OCA", self.store.path)
        return True

    async def check_file(self) -> LoginStatus:
        """Look at the token file now (`oca-proxy logout` asks a running proxy to): a
        removed file ends the login at once. Only ever ends a login, never starts one."""
        self._file_removed(now=True)
        return await self.status()

    def invalidate(self, access_token: str) -> None:
        """OCA refused this token: forget it so the next request refreshes."""
        if self._token and self._token.access_token == access_token:
            self._token = TokenSet(access_token, 0.0, self._token.refresh_token, 0.0)

    # -- getting a token ---------------------------------------------------------

    def access_token_now(self) -> str | None:
        """access_token() when it has nothing to wait for: the token while it is well within
        its life, else None (then access_token() renews it, or says why there is none)."""
        token = self._token
        if token is None or (time.monotonic() >= self._presence_due and self._file_removed()):
            return None
        # Short-lived tokens (tests, odd tenants) are renewed at half their life at the latest.
        margin = min(self.refresh_margin, (token.expires_at - token.issued_at) / 2)
        return token.access_token if token.expires_at - margin > time.time() else None

    async def access_token(self) -> str | None:
        """A valid access token, or None when the user must log in (see .problem)."""
        ready = self.access_token_now()
        if ready is not None:
            return ready
        token = self._token
        now = time.time()
        if token and token.expires_at - 2 > now:
            self._start_refresh()  # close to expiry: renew in the background, use this one
            return token.access_token
        gone = self._gone
        if gone is not None and await asyncio.to_thread(self.store.signature) == gone.signature:
            self.problem = gone.problem  # the same dead login: IDCS is not asked again
            return None
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
            self.problem = _Gone(None, None, str(e)).problem
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
        finally:
            self._watch_unsaved()
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
            try:
                on_disk = self.store.read()
            except TokenFileError:
                if not self._unsaved:
                    raise
                on_disk = self._stale  # unreadable: our unsaved token is still the live one
            refresh_token = self._current_refresh_token(on_disk)
            if refresh_token is None:
                return None
            gone = self._gone
            if gone is not None and refresh_token == gone.refresh_token:
                raise LoginGone(gone.reason)  # the same dead token: IDCS is not asked again
            try:
                tokens = self.idcs.refresh(refresh_token)
            except LoginGone as e:
                self._unsaved = self._stale = self.save_problem = None
                self._gone = _Gone(refresh_token, self.store.signature(), str(e))
                raise
            self._gone = None
            if tokens.refresh_token and tokens.refresh_token != refresh_token:
                self._unsaved, self._stale = tokens.refresh_token, on_disk
                self._save_unsaved()  # before anything else happens
            return tokens

    def _current_refresh_token(self, on_disk: str | None) -> str | None:
        """The refresh token to use: ours if the file still holds the one it replaced (the
        save failed), else the file's (a new one, from another process or a new login)."""
        ours = self._unsaved
        if ours is None:
            return on_disk
        if on_disk is None and self._stale is not None:
            # The file that held the token ours replaced was removed: logged out elsewhere.
            log.info(
                "The token file %s was removed: the login held in memory ends", self.store.path
            )
            self._unsaved = self._stale = self.save_problem = None
            return None
        if on_disk is None or on_disk == self._stale or on_disk == ours:
            self._save_unsaved()  # clears _unsaved once it is on disk: ours is still the one
            return ours
        log.info("The token file holds a new login (from another process): using it")
        self._unsaved = self._stale = self.save_problem = None
        return on_disk

    def _save_unsaved(self) -> None:
        """Blocking, under the lock: try to put the in-memory refresh token on disk."""
        token = self._unsaved
        if token is None:
            return
        try:
            self.store.write(token)
        except OSError as e:
            problem = (
                f"login held in memory only: cannot write {self.store.path}: "
                f"{e.strerror or type(e).__name__}"
            )
            if problem != self.save_problem:
                log.error("%s (retrying every %d s)", problem, self.SAVE_RETRY_S)
            self.save_problem = problem
            return
        if self.save_problem:
            log.info("The OCA login is saved to %s again", self.store.path)
        self._unsaved = self._stale = self.save_problem = None

    def _save_locked(self) -> None:
        with self.store.lock:
            try:
                on_disk = self.store.read()
            except TokenFileError:
                on_disk = self._stale
            self._current_refresh_token(on_disk)  # saves ours, or adopts a newer file's

    def _watch_unsaved(self) -> None:
        """While a refresh token is held in memory only, try to save it every minute."""
        if self._unsaved and (self._save_retry is None or self._save_retry.done()):
            self._save_retry = asyncio.get_running_loop().create_task(self._retry_saves())

    async def _retry_saves(self) -> None:
        while self._unsaved:
            await asyncio.sleep(self.SAVE_RETRY_S)
            try:
                await asyncio.to_thread(self._save_locked)
            except Exception:  # the lock timed out, or worse: try again next time
                log.exception("Could not save the OCA login")

    async def hold_login(self, tokens: TokenSet, error: OSError) -> None:
        """A fresh login whose refresh token could not be written: serve from memory, say
        so, and keep trying to save it (as after a rotation that could not be saved)."""
        try:
            on_disk = await asyncio.to_thread(self.store.read)
        except TokenFileError:
            on_disk = None
        self.adopt(tokens)
        self._unsaved, self._stale = tokens.refresh_token, on_disk
        self.save_problem = (
            f"login held in memory only: cannot write {self.store.path}: "
            f"{error.strerror or type(error).__name__}"
        )
        log.error("%s (retrying every %d s)", self.save_problem, self.SAVE_RETRY_S)
        self._watch_unsaved()

    def save_login(self, tokens: TokenSet) -> None:
        """Blocking: save the refresh token from a fresh login (under the lock)."""
        if not tokens.refresh_token:
            raise IdcsError("IDCS gave no refresh token (was offline_access granted?)")
        with self.store.lock:
            self.store.write(tokens.refresh_token)
