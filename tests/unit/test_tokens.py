"""TokenManager and TokenStore with a fake IDCS: rotation, single flight, bad files."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from oca_addon.auth.idcs import IdcsError, LoginGone, TokenSet
from oca_addon.auth.tokens import TokenFileError, TokenManager, TokenStore


class FakeIdcs:
    """Rotating refresh tokens: each use answers a new one and kills the old one at once."""

    def __init__(self, ttl: float = 3600, delay: float = 0.0) -> None:
        self.valid = {"rt-0"}
        self.n = 0
        self.calls = 0
        self.ttl = ttl
        self.delay = delay
        self.lock = threading.Lock()
        self.gone = False

    def refresh(self, refresh_token: str) -> TokenSet:
        time.sleep(self.delay)
        with self.lock:
            self.calls += 1
            if self.gone or refresh_token not in self.valid:
                raise LoginGone("invalid_grant")
            self.valid.discard(refresh_token)
            self.n += 1
            new = f"rt-{self.n}"
            self.valid.add(new)
            now = time.time()
            return TokenSet(f"at-{self.n}", now + self.ttl, new, now)


def make(tmp_path: Path, idcs: FakeIdcs, token: str | None = "rt-0") -> TokenManager:
    store = TokenStore(tmp_path / ".oca" / "refresh_token.json")
    if token:
        store.write(token)
    return TokenManager(store, idcs)  # type: ignore[arg-type]


def test_store_format_and_permissions(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / ".oca" / "refresh_token.json")
    store.write("abc")
    data = json.loads(store.path.read_text())
    assert data["refresh_token"] == "abc" and "created_at" in data
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.path.parent).st_mode) == 0o700
    assert store.read() == "abc"
    assert [p.name for p in store.path.parent.iterdir() if p.suffix == ".tmp"] == []


@pytest.mark.parametrize("content", ["{not json", '{"other": 1}', '["x"]', ""])
def test_corrupt_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    store = TokenStore(tmp_path / "refresh_token.json")
    store.path.write_text(content)
    with pytest.raises(TokenFileError) as e:
        store.read()
    assert str(store.path) in str(e.value)


def test_rotation_saves_the_new_token_before_use(tmp_path: Path) -> None:
    idcs = FakeIdcs()
    tm = make(tmp_path, idcs)

    async def go() -> None:
        assert await tm.access_token() == "at-1"
        assert tm.store.read() == "rt-1"
        tm.invalidate("at-1")
        assert await tm.access_token() == "at-2"
        assert tm.store.read() == "rt-2"

    asyncio.run(go())


def test_one_refresh_for_many_waiters(tmp_path: Path) -> None:
    idcs = FakeIdcs(delay=0.5)
    tm = make(tmp_path, idcs)

    async def go() -> list[str | None]:
        return await asyncio.gather(*(tm.access_token() for _ in range(100)))

    tokens = asyncio.run(go())
    assert tokens == ["at-1"] * 100
    assert idcs.calls == 1


def test_event_loop_not_blocked_by_slow_refresh(tmp_path: Path) -> None:
    idcs = FakeIdcs(delay=1.0)
    tm = make(tmp_path, idcs)

    async def go() -> float:
        task = asyncio.create_task(tm.access_token())
        worst = 0.0
        for _ in range(40):  # the loop keeps ticking every 25 ms during the 1 s refresh
            t = time.perf_counter()
            await asyncio.sleep(0.025)
            worst = max(worst, time.perf_counter() - t)
        assert await task == "at-1"
        return worst

    assert asyncio.run(go()) < 0.2


def test_near_expiry_token_is_used_while_refreshing(tmp_path: Path) -> None:
    idcs = FakeIdcs(ttl=3600, delay=0.5)
    tm = make(tmp_path, idcs)

    async def go() -> None:
        assert await tm.access_token() == "at-1"
        # pretend the token is inside the refresh margin (but still valid)
        tok = tm._token
        assert tok is not None
        tm._token = TokenSet(
            tok.access_token, time.time() + 60, tok.refresh_token, time.time() - 3540
        )
        t = time.perf_counter()
        assert await tm.access_token() == "at-1"  # no waiting
        assert time.perf_counter() - t < 0.05
        await asyncio.sleep(0.7)
        assert await tm.access_token() == "at-2"

    asyncio.run(go())


def test_login_gone_and_missing_file(tmp_path: Path) -> None:
    idcs = FakeIdcs()
    idcs.gone = True
    gone: list[str] = []
    tm = make(tmp_path, idcs)
    tm.on_login_gone = gone.append

    async def go() -> None:
        assert await tm.access_token() is None
        assert "log in again" in (tm.problem or "")
        assert gone
        status = await tm.status()
        # the file still holds the dead token: not logged in, and says why (issue 12, part 3)
        assert status.logged_in is False and "log in again" in (status.problem or "")

    asyncio.run(go())
    tm2 = make(tmp_path / "other", FakeIdcs(), token=None)
    assert asyncio.run(tm2.access_token()) is None
    assert tm2.problem == "not logged in"


def test_corrupt_file_means_not_logged_in(tmp_path: Path) -> None:
    tm = make(tmp_path, FakeIdcs(), token=None)
    tm.store.path.parent.mkdir(parents=True, exist_ok=True)
    tm.store.path.write_text("garbage")
    assert asyncio.run(tm.access_token()) is None
    assert "not valid JSON" in (tm.problem or "")
    status = asyncio.run(tm.status())
    assert not status.logged_in and "not valid JSON" in (status.problem or "")


def test_idcs_outage_keeps_a_valid_token(tmp_path: Path) -> None:
    idcs = FakeIdcs()
    tm = make(tmp_path, idcs)

    async def go() -> None:
        assert await tm.access_token() == "at-1"

        def down(_: str) -> TokenSet:
            raise IdcsError("cannot reach IDCS: ConnectionError")

        idcs.refresh = down  # type: ignore[method-assign]
        assert (await tm.refresh_now()) is not None  # still the old, valid token
        assert "could not refresh" in (tm.problem or "")

    asyncio.run(go())


def test_two_managers_sharing_a_file_never_burn_the_token(tmp_path: Path) -> None:
    """Two proxies on one token file, refreshing over and over from threads at once."""
    idcs = FakeIdcs()
    a, b = make(tmp_path, idcs), make(tmp_path, idcs, token=None)
    errors: list[BaseException] = []

    def hammer(tm: TokenManager) -> None:
        try:
            for _ in range(50):
                tm._refresh_blocking()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=hammer, args=(tm,)) for tm in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert idcs.calls == 200
    assert a.store.read() in idcs.valid


def test_gone_login_is_not_refreshed_again_until_the_file_changes(tmp_path: Path) -> None:
    idcs = FakeIdcs()
    idcs.gone = True
    tm = make(tmp_path, idcs)

    async def go() -> None:
        for _ in range(20):
            assert await tm.access_token() is None
        assert idcs.calls == 1  # IDCS is not asked on every request
        assert "log in again" in (tm.problem or "")
        # another process logs in: the file changes, and the new token is used
        idcs.gone = False
        idcs.valid.add("rt-relogin")
        tm.store.write("rt-relogin")
        assert await tm.access_token() == "at-1"
        assert (await tm.status()).logged_in is True
        idcs.gone = True
        tm.invalidate("at-1")
        assert await tm.access_token() is None
        calls = idcs.calls
        tm.adopt(TokenSet("at-new", time.time() + 3600, "rt-new", time.time()))
        assert await tm.access_token() == "at-new" and idcs.calls == calls

    asyncio.run(go())


class FailingStore(TokenStore):
    """A token file whose writes fail (disk full, read-only home) until `broken` is False."""

    broken = False

    def write(self, refresh_token: str) -> None:
        if self.broken:
            raise OSError(28, "No space left on device")
        super().write(refresh_token)


def test_failed_token_write_keeps_the_new_login_in_memory(tmp_path: Path) -> None:
    idcs = FakeIdcs()
    store = FailingStore(tmp_path / ".oca" / "refresh_token.json")
    store.write("rt-0")
    tm = TokenManager(store, idcs)  # type: ignore[arg-type]
    tm.SAVE_RETRY_S = 0.2
    store.broken = True

    async def go() -> None:
        assert await tm.access_token() == "at-1"
        assert store.read() == "rt-0"  # revoked at IDCS, still on disk
        status = await tm.status()
        assert status.logged_in is True
        assert status.problem == (
            f"login held in memory only: cannot write {store.path}: No space left on device"
        )
        for n in (2, 3):  # every refresh uses the in-memory token, never the dead one
            tm.invalidate(f"at-{n - 1}")
            assert await tm.access_token() == f"at-{n}"
        assert idcs.calls == 3 and store.read() == "rt-0"
        store.broken = False
        await asyncio.sleep(0.5)  # the periodic retry saves it
        assert store.read() == "rt-3" and (await tm.status()).problem is None
        tm.invalidate("at-3")
        assert await tm.access_token() == "at-4" and store.read() == "rt-4"

    asyncio.run(go())


def test_pending_save_yields_to_a_new_token_from_another_process(tmp_path: Path) -> None:
    idcs = FakeIdcs()
    store = FailingStore(tmp_path / ".oca" / "refresh_token.json")
    store.write("rt-0")
    tm = TokenManager(store, idcs)  # type: ignore[arg-type]
    store.broken = True

    async def go() -> None:
        assert await tm.access_token() == "at-1"  # rt-1 only in memory
        store.broken = False
        idcs.valid.add("rt-other")
        TokenStore(store.path).write("rt-other")  # another process logged in
        tm.invalidate("at-1")
        assert await tm.access_token() == "at-2"
        assert "rt-other" not in idcs.valid  # the file's new token was the one used
        assert store.read() == "rt-2"

    asyncio.run(go())


def test_lock_and_folder_are_private_from_the_start(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = TokenStore(tmp_path / ".oca" / "refresh_token.json")
        with store.lock:
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(store.path.parent).st_mode) == 0o700
    lock = Path(str(store.path) + ".lock")
    if lock.exists():  # filelock may remove it on release
        assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600


def test_symlinked_token_file_is_written_through_the_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "token.json"
    target.parent.mkdir()
    link = tmp_path / ".oca" / "refresh_token.json"
    link.parent.mkdir()
    link.symlink_to(target)
    idcs = FakeIdcs()
    TokenStore(link).write("rt-0")
    tm = TokenManager(TokenStore(link), idcs)  # type: ignore[arg-type]
    assert asyncio.run(tm.access_token()) == "at-1"
    assert link.is_symlink() and json.loads(target.read_text())["refresh_token"] == "rt-1"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


class _Answer:
    def __init__(self, status: int, body: object) -> None:
        self.status_code = status
        self._body = body

    def json(self) -> object:
        if isinstance(self._body, str):
            raise ValueError("not JSON")
        return self._body


@pytest.mark.parametrize(
    ("status", "body", "gone"),
    [
        (400, {"error": "invalid_grant", "error_description": "expired"}, True),
        (400, {"error": "invalid_token"}, True),
        (400, {"error": "unauthorized_client"}, True),
        (401, {"error": "invalid_client"}, True),
        (403, "<html>forbidden</html>", True),
        (400, {"error": "invalid_request"}, False),
        (500, "oops", False),
        (503, {"error": "temporarily_unavailable"}, False),
    ],
)
def test_which_refresh_failures_end_the_login(
    monkeypatch: pytest.MonkeyPatch, status: int, body: object, gone: bool
) -> None:
    """Issue 12, part 3: and the request carries exactly what real clients send."""
    from oca_addon.auth import idcs as idcs_module

    sent: list[dict[str, str]] = []

    def post(url: str, data: dict[str, str], **kw: object) -> _Answer:
        sent.append(data)
        return _Answer(status, body)

    monkeypatch.setattr(idcs_module.requests, "post", post)
    client = idcs_module.Idcs("http://127.0.0.1:1", "client-x")
    client._discovery = {"token_endpoint": "http://127.0.0.1:1/token"}
    with pytest.raises(LoginGone if gone else IdcsError):
        client.refresh("rt-9")
    assert sent == [
        {"grant_type": "refresh_token", "refresh_token": "rt-9", "client_id": "client-x"}
    ]


# -- issue 23, item 1: files only this user may change ------------------------------------


def test_settings_and_token_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """Under umask 000 the dashboard's save made ~/.config/oca 0777: another user could swap
    in a settings file pointing idcs_url at their server, and get the refresh token."""
    from oca_addon.core.settings import Settings, save_settings

    home = tmp_path / "home"
    settings = home / ".config" / "oca" / "oca-proxy.config.json"
    token = home / ".oca" / "refresh_token.json"
    old = os.umask(0)
    try:
        save_settings(settings, Settings(default_model="oca/x"))
        TokenStore(token).write("rt")
    finally:
        os.umask(old)
    for folder in (home, home / ".config", settings.parent, token.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for f in (settings, token):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert TokenStore(token).read() == "rt"


@pytest.mark.parametrize("which", ["settings", "token"])
def test_files_other_users_may_change_are_refused(tmp_path: Path, which: str) -> None:
    """As ssh does: a settings or token file that another user owns or may write (or whose
    folder they may write) is refused, saying how to fix it."""
    from oca_addon.core.settings import ConfigError, load_settings

    folder = tmp_path / "private"
    folder.mkdir(mode=0o700)
    path = folder / ("settings.json" if which == "settings" else "refresh_token.json")
    path.write_text(json.dumps({"refresh_token": "rt", "idcs_url": "http://127.0.0.1:1"}))
    path.chmod(0o600)

    def problem() -> str | None:
        try:
            if which == "settings":
                load_settings(path)
            else:
                TokenStore(path).read()
        except (ConfigError, TokenFileError) as e:
            return str(e)
        return None

    assert problem() is None  # ours, 0600: fine (also 0644: others may read, not write)
    path.chmod(0o644)
    assert problem() is None
    path.chmod(0o620)
    assert f"writable by other users (mode 0620); run chmod 600 {path}" in (problem() or "")
    path.chmod(0o606)
    assert f"run chmod 600 {path}" in (problem() or "")
    path.chmod(0o600)
    folder.chmod(0o777)
    assert f"folder {folder} is writable by other users" in (problem() or "")
    assert f"run chmod 700 {folder}" in (problem() or "")
    if which == "settings":  # nor is one saved there (the dashboard says why)
        from oca_addon.core.private import UnsafeFile
        from oca_addon.core.settings import Settings, save_settings

        with pytest.raises(UnsafeFile, match="run chmod 700"):
            save_settings(path, Settings())
    else:  # ~/.oca is the login's own folder: made private again on the next save
        TokenStore(path).write("rt-2")
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        folder.chmod(0o777)
    folder.chmod(0o1777)  # sticky, as /tmp: others cannot swap our file
    assert problem() is None
    folder.chmod(0o700)
    if os.getuid() == 0:  # only root can give a file away
        os.chown(path, 4242, 4242)
        assert "belongs to another user (uid 4242)" in (problem() or "")
        os.chown(path, 0, 0)
        os.chown(folder, 4242, 4242)
        assert f"folder {folder} belongs to another user (uid 4242)" in (problem() or "")


def test_recovered_token_write_does_not_drop_the_login(tmp_path: Path) -> None:
    """Issue 23.4: the refresh whose save finally works uses the token it just saved (it
    was cleared from memory by the save, and the refresh went on with none: one 401)."""
    idcs = FakeIdcs()
    store = FailingStore(tmp_path / ".oca" / "refresh_token.json")
    store.write("rt-0")
    tm = TokenManager(store, idcs)  # type: ignore[arg-type]
    store.broken = True

    async def go() -> None:
        assert await tm.access_token() == "at-1"  # rt-1 only in memory
        store.broken = False  # ~/.oca writable again
        tm.invalidate("at-1")
        assert await tm.access_token() == "at-2"  # rt-1 saved, then used
        assert tm.problem is None and (await tm.status()).logged_in is True
        assert store.read() == "rt-2" and idcs.calls == 2

    asyncio.run(go())


def test_removed_token_file_ends_the_login(tmp_path: Path) -> None:
    """Issue 23.5: `oca-proxy logout` (or rm) ends a running proxy's login: a kept access
    token is no longer handed out once the file is gone (looked at once a second at most)."""
    idcs = FakeIdcs()
    tm = make(tmp_path, idcs)
    tm.PRESENCE_CHECK_S = 0.2

    async def go() -> None:
        assert await tm.access_token() == "at-1"
        tm.store.clear()
        await asyncio.sleep(0.25)
        assert await tm.access_token() is None
        status = await tm.status()
        assert status.logged_in is False
        assert idcs.calls == 1  # nothing refreshed from a login that was removed
        # a new login in the file is used again
        idcs.valid.add("rt-new")
        tm.store.write("rt-new")
        assert await tm.access_token() == "at-2"
        # check_file: at once, without waiting for the next look
        tm.PRESENCE_CHECK_S = 3600
        assert await tm.access_token() == "at-2"
        tm.store.clear()
        assert await tm.access_token() == "at-2"  # not looked at yet (once an hour here)
        assert (await tm.check_file()).logged_in is False
        assert await tm.access_token() is None

    asyncio.run(go())


def test_removed_file_and_logins_held_in_memory(tmp_path: Path) -> None:
    """A fresh login whose file could never be written is not a logged-out one; a rotated
    token held in memory while the file kept the old one ends with the file (and the file is
    not written back when ~/.oca is writable again: the logout stays)."""
    idcs = FakeIdcs()
    store = FailingStore(tmp_path / ".oca" / "refresh_token.json")
    tm = TokenManager(store, idcs)  # type: ignore[arg-type]
    tm.SAVE_RETRY_S = 0.1
    store.broken = True

    async def go() -> None:
        await tm.hold_login(
            TokenSet("at-fresh", time.time() + 3600, "rt-0", time.time()), OSError(30, "RO")
        )
        assert (await tm.check_file()).logged_in is True  # there never was a file
        assert await tm.access_token() == "at-fresh"
        store.broken = False
        await asyncio.sleep(0.3)  # the retry saves it
        assert store.read() == "rt-0"
        store.broken = True
        tm.invalidate("at-fresh")
        assert await tm.access_token() == "at-1"  # rt-1 in memory, rt-0 (dead) on disk
        store.clear()  # oca-proxy logout
        assert (await tm.check_file()).logged_in is False
        assert await tm.access_token() is None
        store.broken = False
        await asyncio.sleep(0.3)
        assert not store.path.exists()  # not written back
        # the same when the token expired before anyone looked at the file
        store.write("rt-1")
        assert await tm.access_token() == "at-2"
        store.broken = True
        tm.invalidate("at-2")
        assert await tm.access_token() == "at-3"  # rt-3 in memory, rt-2 on disk
        tm.invalidate("at-3")
        store.clear()
        tm._presence_due = time.monotonic() + 3600  # not looked at
        assert await tm.access_token() is None
        assert not store.path.exists() and idcs.calls == 3

    asyncio.run(go())
