"""MitmPatches, first in the chain: the narrow patches of mitmproxy (oca_addon/mitm/patches/)
applied on `load`, before any other addon loads, after a look at the installed mitmproxy.

The patches were checked against one mitmproxy release (`CHECKED_AGAINST`; pyproject.toml
requires that minor release, but a `pip install` may bring another). When the installed
version is another one, or any code a patch replaces or reads is not what was checked
(its source hash or parameters differ), one warning says so, naming both versions and the
changed functions; a patch whose checked code changed is then not applied (mitmproxy's own
behaviour stays there), except a REQUIRED one (the token on the wire): see
oca_addon/mitm/patches/__init__.py.
"""

from __future__ import annotations

import logging
from typing import Any

from oca_addon.mitm import patches as mitm_patches

log = logging.getLogger("oca_addon")


class MitmPatches:
    def __init__(self) -> None:
        self.found: mitm_patches.Check | None = None  # what load found

    def load(self, loader: Any) -> None:
        self.found = found = mitm_patches.check()
        warning = found.warning()
        if warning:
            log.warning("%s", warning)
        mitm_patches.apply(skip=found.skipped)

    def configure(self, updated: set[str]) -> None:
        # The built-ins' request hooks are looked at again before the next early send.
        mitm_patches.options_changed()
