"""The script mitmproxy loads: `mitmdump -s oca_addon.py --mode reverse:<OCA URL>@127.0.0.1:8669`.

All the logic lives in the installed `oca_addon` package; this only hands mitmproxy its addons.
"""

from oca_addon._script import addons

__all__ = ["addons"]
