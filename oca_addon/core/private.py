"""Files that hold the login or say where it goes: only this user may change them.

The settings file (its `base_url` and `idcs_url` say where the tokens are sent) and the
refresh token file are written atomically, 0600, in folders made 0700, whatever the umask.
As ssh does with its own files, one that another user owns or may write, or whose folder
another user may write, is refused, with a message that says how to fix it.

Plain Python (no mitmproxy import).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
import tempfile
from pathlib import Path

READ_LIMIT = 1 << 20  # a settings or token file is a few kB


class FileRefused(OSError):
    """A file not read or written; `problem` says why and what to do."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.strerror = problem  # what "cannot write PATH: {e.strerror}" handlers show
        self.path = str(path)
        self.problem = problem


class UnsafeFile(FileRefused):
    """The file, or its folder, belongs to another user or is writable by other users."""


def _me() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None  # no owners to check on Windows


def _folders(path: Path) -> list[Path]:
    """The folder the path names, and the folder of the file it leads to (a symlink's)."""
    given = Path(os.path.abspath(path)).parent
    real = Path(os.path.realpath(path)).parent
    return [given] if real == given else [given, real]


def _check_folder(path: Path, folder: Path, me: int) -> None:
    st = os.stat(folder)
    if st.st_uid not in (me, 0):
        raise UnsafeFile(
            path,
            f"its folder {folder} belongs to another user (uid {st.st_uid}), who could "
            "swap the file; keep it in a folder of your own",
        )
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise UnsafeFile(
            path,
            f"its folder {folder} is writable by other users, who could swap the file; "
            f"run chmod 700 {shlex.quote(str(folder))}",
        )


def check_file(path: Path, st: os.stat_result) -> None:
    """Raise UnsafeFile if the file (`st`: its stat) or its folder may be changed by
    another user, FileRefused if it is not a regular file."""
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused(path, "it is not a regular file")
    me = _me()
    if me is None:
        return
    if st.st_uid not in (me, 0):
        raise UnsafeFile(
            path,
            f"it belongs to another user (uid {st.st_uid}), who may have put anything in it; "
            "check it, then replace it with a file of your own",
        )
    if st.st_mode & 0o022:
        raise UnsafeFile(
            path,
            f"it is writable by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run chmod 600 {shlex.quote(str(path))}",
        )
    for folder in _folders(path):
        _check_folder(path, folder, me)


def read_bounded(path: Path, limit: int) -> tuple[bytes, os.stat_result]:
    """A regular file's bytes, refused (FileRefused) before it is read whole when it is
    over `limit` bytes; and its stat, taken on the open file. OSError as open() raises."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)  # O_NONBLOCK: a FIFO cannot hang us here
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(path, "it is not a regular file")
        if st.st_size > limit:
            raise FileRefused(path, f"it is over {limit:,} bytes ({st.st_size:,})")
        data = f.read(limit + 1)
    if len(data) > limit:  # grew while we read it
        raise FileRefused(path, f"it is over {limit:,} bytes")
    return data, st


def read_private(path: Path, limit: int = READ_LIMIT) -> bytes:
    """The file's bytes if only this user may change it (else UnsafeFile).
    FileNotFoundError when there is none."""
    data, st = read_bounded(path, limit)
    check_file(path, st)  # the file that was read, not one swapped in since
    return data


def make_folder(folder: Path, *, tighten: bool = False) -> None:
    """Create the folder and its missing parents, each 0700 whatever the umask (never a
    moment with a wider mode). tighten: an existing folder of ours open to the group or
    others is made 0700 too."""
    missing: list[Path] = []
    p = Path(os.path.abspath(folder))
    while not os.path.isdir(p) and p != p.parent:
        missing.append(p)
        p = p.parent
    for p in reversed(missing):
        try:
            os.mkdir(p, 0o700)  # the umask only takes bits away
        except FileExistsError:
            continue  # made by someone else meanwhile: checked like any existing folder
        os.chmod(p, 0o700)  # and a umask of 0o7xx took too many
    if tighten:
        with contextlib.suppress(OSError):  # not ours: check_file will say so
            if os.stat(folder).st_mode & 0o077:
                os.chmod(folder, 0o700)


def write_private(
    path: Path, data: bytes, *, tighten_folder: bool = False, check_folder: bool = True
) -> None:
    """Atomically (temp file in the same folder, fsync, rename) write `data` as a 0600 file
    whatever the umask, in a folder made 0700 if missing. A symlink is written through (its
    target replaced), not over. check_folder: refuse (UnsafeFile) a folder that another
    user owns or may write, where the file could be swapped after we wrote it."""
    make_folder(Path(os.path.abspath(path)).parent, tighten=tighten_folder)
    target = Path(os.path.realpath(path))
    me = _me()
    if check_folder and me is not None:
        for folder in _folders(path):
            _check_folder(path, folder, me)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        else:  # pragma: no cover (Windows)
            os.chmod(tmp, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
