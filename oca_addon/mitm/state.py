"""What the addons of the chain share: one `ProxyState`, made in `_script.py` and given to
each addon in its constructor (no module globals).

Who writes what: `Config` the settings file, the upstream and the token manager; `Guard`
the listen port cache; `Gateway` the model catalogue and the in-flight table (an entry per
API call, added in its request hook); `Keepalive`, last in the chain, removes the entry in
response/error, so every addon before it still sees the call.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mitmproxy import ctx
from mitmproxy.proxy.mode_specs import ProxyMode

from oca_addon import __version__
from oca_addon.core.modelinfo import Catalog
from oca_addon.core.refusals import LearnedFacts
from oca_addon.core.settings import upstream_notices
from oca_addon.core.stats import RequestRecord, Stats
from oca_addon.translate.memo import ConversationMemo
from oca_addon.translate.responses import ResponseHistory

if TYPE_CHECKING:
    from mitmproxy import http

    from oca_addon.auth.tokens import TokenManager
    from oca_addon.core.settings import Settings, SettingsFile
    from oca_addon.mitm.call import Call

# Known OCA clients name themselves on every request; so does oca-proxy, where the calling
# tool did not name itself.
CLIENT_HEADERS = {"client": "oca-addon", "client-version": __version__}

log = logging.getLogger("oca_addon")

# After a failed read of OCA's model list: each call would otherwise ask again first (a flow,
# and up to the idle timeout's wait each), so the list is asked for again only after this.
CATALOG_RETRY_S = 30


@dataclass
class Upstream:
    """Where OCA is, resolved from options, the reverse-mode target and the settings file."""

    base_url: str
    idcs_url: str
    client_id: str
    mode: str

    @functools.cached_property  # read on every request
    def origin(self) -> tuple[str, str, int]:
        parts = urlsplit(self.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.scheme, parts.hostname or "", port

    @functools.cached_property
    def prefix(self) -> str:
        return urlsplit(self.base_url).path.rstrip("/")

    @functools.cached_property
    def notices(self) -> list[str]:
        """Where the tokens go, when that is not Oracle (said at start, on the dashboard)."""
        return upstream_notices(self.base_url, self.idcs_url)


class ProxyState:
    def __init__(self) -> None:
        self.settings_file: SettingsFile | None = None
        self.tokens: TokenManager | None = None
        self.upstream: Upstream | None = None
        self.stats = Stats()
        self.history = ResponseHistory()
        # The last translated request of a few conversations, for their next turns.
        self.conversations = ConversationMemo()
        self.inflight: dict[str, Call] = {}  # open API calls (mitm/call.py), by flow id
        # Replays of requests already made for OCA (addons/replay.py), until Traffic closes them.
        self.replays: dict[str, RequestRecord] = {}
        # oca-proxy's own calls to OCA (addons/owncalls.py), waiting for Traffic to close them.
        self.own_calls: dict[str, asyncio.Future[http.HTTPFlow]] = {}
        # What OCA's refusals taught about its models (addons/retry.py); Gateway's options
        # say whether to learn and where the facts are kept.
        self.learned = LearnedFacts()
        self.learning = True  # oca_learn_from_refusals (Gateway)
        self.completions_refusal_ttl = 3600  # oca_completions_refusal_ttl (Gateway)
        # What the dashboard says about mitmweb's view being trimmed (addons/viewlimit.py).
        self.view_note: str | None = None
        # Options read on every request, copied here by the owning addon's configure()
        # (ctx.options costs a deep copy per read).
        self.capture_limit = 2 * 1024 * 1024  # oca_capture_limit (Traffic)
        self.models_ttl = 300  # oca_models_ttl (Gateway)
        self._catalog: Catalog | None = None
        self._catalog_task: asyncio.Task[Catalog | None] | None = None
        self._catalog_retry_at = 0.0  # time.monotonic(): a failed read is not repeated before
        self._listen_port: int | None = None  # cached: needed on every request

    def current_settings(self) -> Settings:
        assert self.settings_file is not None
        return self.settings_file.get()

    # -- the port we listen on ------------------------------------------------------------

    def listen_port(self) -> int:
        if self._listen_port is None:  # parsing the modes costs more than a request's checks
            self._listen_port = self._find_listen_port()
        return self._listen_port

    def forget_listen_port(self) -> None:
        self._listen_port = None

    @staticmethod
    def _find_listen_port() -> int:
        for spec in ctx.options.mode:
            try:
                port = ProxyMode.parse(spec).listen_port(ctx.options.listen_port)
            except ValueError:
                continue
            if port:
                return port
        return ctx.options.listen_port or 8669

    # -- OCA's model list -------------------------------------------------------------------

    def forget_catalog(self) -> None:
        self._catalog = None
        self._catalog_retry_at = 0.0  # (where OCA is, or the login, changed: ask at once)

    async def catalog(self, token: str | None = None) -> Catalog | None:
        """OCA's model list, cached; None (so: route everything as chat) if unavailable."""
        ready, cat = self.catalog_now(token)
        if ready or token is None:  # (not ready means a token: for mypy)
            return cat
        if self._catalog_task is None or self._catalog_task.done():
            self._catalog_task = asyncio.get_running_loop().create_task(self._fetch_catalog(token))
        return await asyncio.shield(self._catalog_task)

    def catalog_now(self, token: str | None = None) -> tuple[bool, Catalog | None]:
        """(True, what catalog() answers) when it has nothing to wait for; (False, None)
        when it would ask OCA."""
        cat = self._catalog
        if cat is not None and time.time() - cat.fetched_at < self.models_ttl:
            return True, cat
        if token is None or time.monotonic() < self._catalog_retry_at:
            return True, cat  # (just failed: calls route by what is known, not wait on OCA again)
        return False, None

    @property
    def cached_catalog(self) -> Catalog | None:
        """The model list as last fetched (no fetch): for explaining OCA's answers."""
        return self._catalog

    async def _fetch_catalog(self, token: str) -> Catalog | None:
        """GET /v1/model/info as a flow of its own (addons/owncalls.py); `token` says the
        login is there (the Replays addon puts a fresh one on the wire)."""
        from oca_addon.mitm.owncalls import call_oca

        # A silent OCA costs no more here than oca_upstream_idle_timeout on a request.
        wait = min(15, ctx.options.oca_upstream_idle_timeout or 15)
        flow = await call_oca(self, "/v1/model/info", "OCA's model list", wait)
        resp = flow.response if flow is not None else None
        problem = (
            "no answer"
            if resp is None
            else f"HTTP {resp.status_code}"
            if resp.status_code >= 400
            else None
        )
        if resp is not None and problem is None:
            try:
                self._catalog = Catalog.from_model_info(json.loads(resp.raw_content or b""))
            except ValueError:
                problem = "not JSON"
        if problem is not None:
            self._catalog_retry_at = time.monotonic() + CATALOG_RETRY_S
            log.warning(
                "Could not load OCA's model list (%s); routing by the chat API only, and "
                "asking again in %d s",
                problem,
                CATALOG_RETRY_S,
            )
            return self._catalog
        assert self._catalog is not None
        forgot = self.learned.reconcile(self._catalog.models)
        if forgot:
            log.info(
                "OCA's model list changed for %s: what was learned of them is forgotten",
                ", ".join(forgot),
            )
        return self._catalog
