"""What mitmproxy loads with `-s`: the addon chain (the `oca-proxy` command points here;
the repository's top-level `oca_addon.py` re-exports it for `mitmdump -s oca_addon.py`).

mitmproxy calls each hook on each addon in this order, so the list is the pipeline:
  MitmPatches the narrow patches of mitmproxy applied (first: on load, before anything
              else); one warning when the installed mitmproxy is not the one they were
              checked against
  SecretGuard client keys off every flow from its first hook; secrets out of every log line
  HeadLimits  431 for request heads over the limits
  Config      options and settings file -> where OCA is, the token manager
  Guard       who may connect and call: loopback, Host/Origin, proxy key, body limit
  Replays     replays started in mitmproxy (fresh token for OCA's requests); oca.replay,
              oca.repro
  LocalPages  dashboard, login, callback, logout, health (answered here, never by OCA)
  Gateway     API calls: to OCA's request, stream set-up, answers in the client's API
  Traffic     comment, mark, redaction, stats, the per-call log line; the OCA content view
  ViewLimit   mitmweb keeps the newest flows only (oca_view_limit_mb, oca_view_limit_flows)
  Keepalive   login refresh, silent-upstream timeout, idle GC; ends each call
  FrameGuard  frame protection on every answer, once it is final (so: last)
An addon that answers a flow itself (a refusal, a page) sets flow.response; the ones after
it leave such flows alone.
"""

from oca_addon.addons.config import Config
from oca_addon.addons.gateway import Gateway
from oca_addon.addons.guard import Guard
from oca_addon.addons.hardening import FrameGuard, HeadLimits, SecretGuard
from oca_addon.addons.keepalive import Keepalive
from oca_addon.addons.pages import LocalPages
from oca_addon.addons.patches import MitmPatches
from oca_addon.addons.replay import Replays
from oca_addon.addons.traffic import Traffic
from oca_addon.addons.viewlimit import ViewLimit
from oca_addon.mitm.state import ProxyState

state = ProxyState()
addons = [
    MitmPatches(),
    SecretGuard(),
    HeadLimits(),
    Config(state),
    Guard(state),
    Replays(state),
    LocalPages(state),
    Gateway(state),
    Traffic(state),
    ViewLimit(state),
    Keepalive(state),
    FrameGuard(),
]
