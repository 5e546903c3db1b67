"""What mitmproxy loads with `-s`: the addon instances (the `oca-proxy` command points here;
the repository's top-level `oca_addon.py` re-exports it for `mitmdump -s oca_addon.py`).

mitmproxy calls each hook on these in order: the guards that must see every flow first,
the proxy itself, then FrameGuard, which marks every answer once it is final."""

from oca_addon.addon import OcaAddon
from oca_addon.addons.hardening import FrameGuard, HeadLimits, SecretGuard

addons = [SecretGuard(), HeadLimits(), OcaAddon(), FrameGuard()]
