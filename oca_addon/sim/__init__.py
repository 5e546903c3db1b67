"""OCA simulator: a local stand-in for the Oracle Code Assist API and its IDCS login.

python -m oca_addon.sim --port 9100   (see server.build_parser for the knobs)
"""

from oca_addon.sim.app import make_app
from oca_addon.sim.config import SimConfig
from oca_addon.sim.models import CATALOGUE, MODELS, SimModel
from oca_addon.sim.server import SimServer, main, serve

__all__ = ["CATALOGUE", "MODELS", "SimConfig", "SimModel", "SimServer", "main", "make_app", "serve"]
