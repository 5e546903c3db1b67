"""Config: the settings file, where OCA is, and the login (token manager), from the options.

First in the chain: every other addon reads what it puts in the state. At start it says
whether we are logged in, and opens the login page when not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import webbrowser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mitmproxy import ctx
from mitmproxy.proxy.mode_specs import ProxyMode, ReverseMode

from oca_addon import __version__
from oca_addon.auth.idcs import Idcs
from oca_addon.auth.tokens import TokenManager, TokenStore, default_token_path
from oca_addon.core.settings import (
    API_PREFIX,
    DEPLOYMENTS,
    SettingsFile,
    api_base,
    find_config_file,
)
from oca_addon.mitm import options
from oca_addon.mitm.state import ProxyState, Upstream

log = logging.getLogger("oca_addon")

# Options that change where OCA is or who we are logged in as: a new token manager.
_UPSTREAM_KEYS = frozenset(
    {
        "oca_mode",
        "oca_base_url",
        "oca_idcs_url",
        "oca_client_id",
        "oca_token_file",
        "oca_refresh_margin",
        "mode",
    }
)

_TERMLOG_LEVELS = {
    "error": "error",
    "fatal": "error",
    "critical": "error",
    "warn": "warn",
    "warning": "warn",
    "info": "info",
    "debug": "debug",
    "trace": "debug",
}


# mitmproxy options the addon sets (back) itself.
_FORCED = frozenset({"connection_strategy", "http2", "oca_mode"})
OPTION_RANGES = {
    "oca_refresh_margin": options.IntRange(0, options.DAY, "seconds"),
}


class Config:
    def __init__(self, state: ProxyState) -> None:
        self.state = state

    def load(self, loader: Any) -> None:
        add = loader.add_option
        add(
            "oca_mode",
            str,
            "",
            "OCA deployment: internal or external (default: settings file, else internal).",
        )
        add(
            "oca_base_url",
            str,
            "",
            "OCA API base URL (default: the reverse-mode target, the settings file, or the mode's).",
        )
        add("oca_idcs_url", str, "", "IDCS (login) URL (default: settings file, else the mode's).")
        add("oca_client_id", str, "", "OAuth client id (default: settings file, else the mode's).")
        add(
            "oca_config",
            str,
            "",
            "Settings file (default: ~/.config/oca/oca-proxy.config.json or .yaml, or ~/.oca/oca-proxy-config.json).",
        )
        add("oca_token_file", str, "", "Refresh token file (default: ~/.oca/refresh_token.json).")
        add(
            "oca_open_browser",
            bool,
            True,
            "Open the login page in a browser at start when not logged in.",
        )
        add(
            "oca_refresh_margin",
            int,
            300,
            "Refresh the access token this many seconds before it expires.",
        )

    def configure(self, updated: set[str]) -> None:
        options.check_choice(updated, "oca_mode", ["", *DEPLOYMENTS])
        options.check_url(updated, "oca_base_url")
        options.check_url(updated, "oca_idcs_url")
        options.check_ranges(updated, OPTION_RANGES)
        state, opts = self.state, ctx.options
        if updated & _FORCED or not state.upstream:
            # Lazy: an unreachable OCA must not take the local pages down with it.
            if opts.connection_strategy != "lazy":
                opts.update(connection_strategy="lazy")
            # HTTP/1.1 only (README, "HTTP/1.1 only"): TLS clients are not offered h2, and neither
            # is OCA; a cleartext HTTP/2 preface is refused (mitm_patches).
            if opts.http2:
                opts.update(http2=False)
            # We check and rewrite Host ourselves; keep the client's for the DNS-rebinding check.
            if not opts.keep_host_header:
                opts.update(keep_host_header=True)
        if state.settings_file is None or "oca_config" in updated:
            state.settings_file = SettingsFile(find_config_file(opts.oca_config or None))
            level = _TERMLOG_LEVELS.get((state.settings_file.get().log_level or "").lower())
            if level and "termlog_verbosity" in opts and opts.termlog_verbosity != level:
                opts.update(termlog_verbosity=level)  # the original tool's log_level setting
        if state.tokens is None or updated & _UPSTREAM_KEYS:
            state.upstream = self._resolve_upstream()
            token_path = (
                Path(opts.oca_token_file).expanduser()
                if opts.oca_token_file
                else default_token_path()
            )
            state.tokens = TokenManager(
                TokenStore(token_path),
                Idcs(state.upstream.idcs_url, state.upstream.client_id),
                refresh_margin=float(opts.oca_refresh_margin),
            )
            state.forget_catalog()

    def _resolve_upstream(self) -> Upstream:
        opts = ctx.options
        s = self.state.current_settings()
        mode = opts.oca_mode or s.mode or "internal"
        if mode not in DEPLOYMENTS:
            log.error("Unknown OCA mode %r: use internal or external. Using internal.", mode)
            mode = "internal"
        dep = DEPLOYMENTS[mode]
        base = opts.oca_base_url or _reverse_target(s.base_url) or s.base_url or dep.base_url
        return Upstream(
            base_url=api_base(base),
            idcs_url=opts.oca_idcs_url or s.idcs_url or dep.idcs_url,
            client_id=opts.oca_client_id or s.client_id or dep.client_id,
            mode=mode,
        )

    async def running(self) -> None:
        state = self.state
        assert state.tokens and state.upstream
        login_url = f"http://localhost:{state.listen_port()}/login"
        log.info(
            "oca-proxy %s: OCA %s (%s mode), login via %s",
            __version__,
            state.upstream.base_url,
            state.upstream.mode,
            state.upstream.idcs_url,
        )
        for notice in state.upstream.notices:
            log.warning("%s", notice)
        path = urlsplit(state.upstream.base_url).path.rstrip("/")
        if path != API_PREFIX:
            log.warning(
                "The OCA base URL's path is %s, not OCA's API path %s: if OCA answers 404 "
                "(Not found) to every call, fix the base URL",
                path,
                API_PREFIX,
            )
        status = await state.tokens.status()
        if status.logged_in:
            log.info("Logged in (token file %s)", state.tokens.store.path)
        else:
            log.warning("Not logged in (%s). Log in at %s", status.problem, login_url)
            if ctx.options.oca_open_browser and _has_display():
                await asyncio.to_thread(webbrowser.open, login_url)


def _reverse_target(settings_base: str | None) -> str | None:
    """The reverse-mode target plus OCA's API path (the mode spec carries no path)."""
    for spec in ctx.options.mode:
        try:
            mode = ProxyMode.parse(spec)
        except ValueError:
            continue
        if isinstance(mode, ReverseMode):
            host, port = mode.address
            scheme = "https" if mode.scheme == "https" else "http"
            default = 443 if scheme == "https" else 80
            origin = f"{scheme}://{host}" + ("" if port == default else f":{port}")
            if settings_base and settings_base.startswith(origin):
                return settings_base
            return origin + API_PREFIX
    return None


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return (
        bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
        and shutil.which("xdg-open") is not None
    )
