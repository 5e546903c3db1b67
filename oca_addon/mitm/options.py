"""Option checks, mitmproxy's way: each addon checks its own options in `configure` and
raises `OptionsError` naming the option. mitmproxy then rolls a change back (mitmweb's
options editor, `set` in the console) or, at start-up, logs the error and exits.

Without them a negative count or size read as "no limit" (max(0, value)), and a mistyped
mode or URL was found out only by the first request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from mitmproxy import ctx, exceptions

DAY = 24 * 3600


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int | None = None
    unit: str = ""
    zero: str = ""  # what 0 means, when it means something of its own

    def problem(self, value: int) -> str | None:
        if self.low <= value and (self.high is None or value <= self.high):
            return None
        if self.high is None:
            allowed = f"{self.low} or more"
        else:
            allowed = f"between {self.low} and {self.high}"
        notes = [n for n in (self.unit, f"0: {self.zero}" if self.zero else "") if n]
        note = f" ({'; '.join(notes)})" if notes else ""
        return f"must be {allowed}{note}, not {value}"


def check_ranges(updated: set[str], ranges: Mapping[str, IntRange]) -> None:
    """Raise OptionsError for the first updated option (in `ranges`' order) outside its
    range."""
    for name, spec in ranges.items():
        if name not in updated:
            continue
        value = getattr(ctx.options, name)
        problem = spec.problem(value)
        if problem:
            raise exceptions.OptionsError(f"{name} {problem}")


def check_choice(updated: Iterable[str], name: str, choices: Iterable[str]) -> None:
    if name not in updated:
        return
    value = getattr(ctx.options, name)
    allowed = list(choices)
    if value not in allowed:
        shown = ", ".join(repr(c) for c in allowed)
        raise exceptions.OptionsError(f"{name} must be one of {shown}, not {value!r}")


def check_url(updated: Iterable[str], name: str) -> None:
    """An http(s) URL with a host, or empty (the default)."""
    if name not in updated:
        return
    value = getattr(ctx.options, name)
    if not value:
        return
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as e:
        raise exceptions.OptionsError(f"{name} is not a URL ({e}): {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise exceptions.OptionsError(
            f"{name} must be an http:// or https:// URL with a host, not {value!r}"
        )
