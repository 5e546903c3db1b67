"""The tornado Application: one port serves the OCA API, the IDCS login and /__sim/ control."""

from __future__ import annotations

import logging
import re
from typing import Any

import tornado.web

from oca_addon.sim import admin, idcs
from oca_addon.sim.api import PREFIX, ApiHandler, ModelInfoHandler
from oca_addon.sim.base import NotFoundHandler
from oca_addon.sim.config import SimConfig
from oca_addon.sim.models import CHAT_COMPLETIONS, COMPLETIONS, EMBEDDINGS, MESSAGES, RESPONSES
from oca_addon.sim.state import SimState

access_log = logging.getLogger("oca_addon.sim.access")


def _log_request(handler: tornado.web.RequestHandler) -> None:
    # Debug level only: the simulator is the baseline of a benchmark.
    if access_log.isEnabledFor(logging.DEBUG):
        req = handler.request
        access_log.debug(
            "%d %s %s %.1fms", handler.get_status(), req.method, req.uri, req.request_time() * 1000
        )


def make_app(config: SimConfig | None = None) -> tornado.web.Application:
    """Build the app; its SimState is app.settings["sim_state"]."""
    sim = SimState(config or SimConfig())
    s: dict[str, Any] = {"sim": sim}
    p = re.escape(PREFIX)

    def api(kind: str) -> dict[str, Any]:
        return {"sim": sim, "api": kind}

    routes: list[Any] = [
        # OCA / LiteLLM API (with LiteLLM's /v1 aliases)
        (rf"{p}/(?:v1/)?model/info", ModelInfoHandler, s),
        (rf"{p}/(?:v1/)?models", ModelInfoHandler, s),
        (rf"{p}/(?:v1/)?chat/completions", ApiHandler, api(CHAT_COMPLETIONS)),
        (rf"{p}/(?:v1/)?responses", ApiHandler, api(RESPONSES)),
        (rf"{p}/v1/messages", ApiHandler, api(MESSAGES)),
        (rf"{p}/(?:v1/)?completions", ApiHandler, api(COMPLETIONS)),
        (rf"{p}/(?:v1/)?embeddings", ApiHandler, api(EMBEDDINGS)),
        # IDCS
        (r"/\.well-known/openid-configuration", idcs.OpenIdConfigHandler, s),
        (r"/oauth2/v1/authorize", idcs.AuthorizeHandler, s),
        (r"/oauth2/v1/token", idcs.TokenHandler, s),
        (r"/oauth2/v1/userinfo", idcs.UserInfoHandler, s),
        (r"/oauth2/v1/userlogout", idcs.LogoutHandler, s),
        (r"/admin/v1/SigningCert/jwk", idcs.JwksHandler, s),
        # test control
        (r"/__sim/state", admin.StateHandler, s),
        (r"/__sim/requests", admin.RequestsHandler, s),
        (r"/__sim/config", admin.ConfigHandler, s),
        (r"/__sim/mint", admin.MintHandler, s),
        (r"/__sim/reset", admin.ResetHandler, s),
    ]
    return tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args=s,
        log_function=_log_request,
        sim_state=sim,
    )
