"""Narrow patches of mitmproxy internals, one per module, so upstream failures reach clients
in their API's shape, and secrets stay off flows.

  errorpage    mitmproxy's own error answers as JSON in the called API's shape
  cutstream    a stream cut midway ends with the client API's terminal error event
  wiretoken    the OCA token in the request head on the wire only (REQUIRED)
  cutupstream  a flow's upstream closed from outside a hook (the silent-upstream timeout)
  closeconn    a client connection mitmproxy closes is closed for real (after a 413)
  headlimits   431 for request heads over the limits, whatever the line ending
  http2        HTTP/2's preface refused (GOAWAY, HTTP_1_1_REQUIRED)
  chunked      chunked request bodies: trailers dropped, lines capped (400)
  sendagain    a flow's request sent again from the `response` hook (`resend`)
  earlysend    a request the addons made final written upstream before the `request`
               hooks run (`request_early`, `sent_early`)

The client side only touches HTTP/1 (what local API clients speak: HTTP/2 is refused, see
README "HTTP/1.1 only"). Each module holds its patch, its state, `CHECKED` (what it
replaces or reads of mitmproxy: qualified name under `mitmproxy.` -> the first 16 hex
digits of the sha256 of its source, and its parameter names), `BEHAVIOUR`, `REQUIRED` and
`apply()`; each module's docstring says why no public hook does its job. This package
re-exports the names the rest of oca-proxy uses (`from oca_addon.mitm import patches as
mitm_patches`).

All were checked against mitmproxy CHECKED_AGAINST (pyproject.toml requires that minor
release). tests/unit/test_mitm_patches.py fails when any checked code changes; at run time the
first addon of the chain (addons/patches.py) calls `check()` and `apply(skip=...)`: on
another mitmproxy version, or checked code that changed, it logs one warning, and a patch
whose checked code changed is NOT applied (mitmproxy's own behaviour stays there: an
unpatched mitmproxy is known; a patch running on code it was not written for is not).
Except a REQUIRED one (wiretoken), applied anyway: without it no call reaches OCA with its
token. Patches that others call into degrade to mitmproxy's behaviour when not applied:
`close_upstream` cuts nothing, `resend_available()` is False (RefusalRetry passes the
refusal on). On a mismatch: re-read mitmproxy's new code against the patch, adjust, then
record the new values (the test prints them).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Collection
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from mitmproxy import version

from oca_addon.mitm.patches import (
    chunked,
    closeconn,
    cutstream,
    cutupstream,
    earlysend,
    errorpage,
    headlimits,
    http2,
    sendagain,
    wiretoken,
)
from oca_addon.mitm.patches.cutupstream import close_upstream, forget_client, upstream_last_activity
from oca_addon.mitm.patches.earlysend import options_changed, sent_early
from oca_addon.mitm.patches.errorpage import client_path, error_response_bytes, remember_client_path
from oca_addon.mitm.patches.headlimits import (
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    head_problem,
    set_head_limits,
)
from oca_addon.mitm.patches.sendagain import available as resend_available
from oca_addon.mitm.patches.sendagain import resend, resend_pending
from oca_addon.mitm.patches.wiretoken import REDACTED, clear_wire_headers, set_wire_headers

__all__ = [
    "CHECKED",
    "CHECKED_AGAINST",
    "MAX_HEADERS",
    "MAX_HEAD_BYTES",
    "ORIGINALS",
    "PATCHES",
    "REDACTED",
    "Check",
    "apply",
    "changed",
    "check",
    "clear_wire_headers",
    "client_path",
    "close_upstream",
    "error_response_bytes",
    "fingerprint",
    "forget_client",
    "head_problem",
    "options_changed",
    "remember_client_path",
    "resend",
    "resend_available",
    "resend_pending",
    "sent_early",
    "set_head_limits",
    "set_wire_headers",
    "upstream_last_activity",
]

CHECKED_AGAINST = "12.3.1"
# Applied in this order: http2 wraps read_headers as headlimits left it.
PATCHES: tuple[ModuleType, ...] = (
    errorpage,
    cutstream,
    wiretoken,
    cutupstream,
    closeconn,
    headlimits,
    http2,
    chunked,
    sendagain,
    earlysend,
)
CHECKED: dict[str, tuple[str, tuple[str, ...]]] = {
    name: entry for patch in PATCHES for name, entry in patch.CHECKED.items()
}


def name_of(patch: ModuleType) -> str:
    """`errorpage` for oca_addon.mitm.patches.errorpage."""
    return patch.__name__.rpartition(".")[2]


def _resolve(name: str) -> Any:
    """`proxy.server.ConnectionIO` -> the object, from the longest importable module path
    (None: mitmproxy has no such name any more)."""
    parts = f"mitmproxy.{name}".split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
        return obj
    return None


# mitmproxy's own objects, taken before apply() replaces any of them.
ORIGINALS: dict[str, Any] = {name: _resolve(name) for name in CHECKED}


def fingerprint(obj: Any) -> tuple[str, tuple[str, ...]]:
    """What CHECKED records of `obj`: the first 16 hex digits of the sha256 of its source,
    and its parameter names (none for a class). No source to read (or no object): "?"."""
    try:
        source = inspect.getsource(obj)
        params = () if isinstance(obj, type) else tuple(inspect.signature(obj).parameters)
    except (OSError, TypeError, ValueError):
        return "?", ()
    return hashlib.sha256(source.encode()).hexdigest()[:16], params


def changed() -> list[str]:
    """The checked names whose code is not what the patches were checked against."""
    return sorted(name for name, entry in CHECKED.items() if fingerprint(ORIGINALS[name]) != entry)


@dataclass(frozen=True)
class Check:
    """The installed mitmproxy against the one the patches were checked against."""

    installed: str
    changed: tuple[str, ...]  # qualified names under `mitmproxy.`
    skipped: tuple[str, ...]  # patches not to apply (their checked code changed)
    forced: tuple[str, ...]  # REQUIRED patches whose checked code changed: applied anyway

    def warning(self) -> str | None:
        """One line for the log, or None when all is as checked."""
        if self.installed == CHECKED_AGAINST and not self.changed:
            return None
        head = (
            f"oca-proxy's patches were checked against mitmproxy {CHECKED_AGAINST}; "
            f"this is {self.installed}"
        )
        if not self.changed:
            what = "the code they patch is the same, so all are applied"
            behaviours = [p.BEHAVIOUR for p in PATCHES]
        else:
            names = ", ".join(f"mitmproxy.{n}" for n in self.changed)
            what = f"{names} changed"
            if self.skipped:
                what += f", so these patches are not applied: {', '.join(self.skipped)}"
            if self.forced:
                what += f"; applied anyway (nothing works without): {', '.join(self.forced)}"
            behaviours = [p.BEHAVIOUR for p in PATCHES if name_of(p) in self.skipped + self.forced]
        return (
            f"{head}: {what}. These may not behave as documented: {'; '.join(behaviours)}. "
            f"Install mitmproxy=={CHECKED_AGAINST} (uv sync) or report it."
        )


def check() -> Check:
    """The installed mitmproxy's version and checked code, and what that means for apply()."""
    found = set(changed())
    touched = [p for p in PATCHES if found & p.CHECKED.keys()]
    return Check(
        installed=version.VERSION,
        changed=tuple(sorted(found)),
        skipped=tuple(name_of(p) for p in touched if not p.REQUIRED),
        forced=tuple(name_of(p) for p in touched if p.REQUIRED),
    )


def apply(skip: Collection[str] = ()) -> None:
    """Apply each patch (in PATCHES' order) but those named in `skip`; each only once."""
    for patch in PATCHES:
        if name_of(patch) not in skip:
            patch.apply()
