"""What mitmproxy loads with `-s`: the addon instances (the `oca-proxy` command points here;
the repository's top-level `oca_addon.py` re-exports it for `mitmdump -s oca_addon.py`)."""

from oca_addon.addon import OcaAddon

addons = [OcaAddon()]
