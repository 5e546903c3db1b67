"""OCA simulator: a local stand-in for the Oracle Code Assist API and its IDCS login.

python -m oca_addon.sim --port 9100   (see server.build_parser for the knobs)
"""

from .app import make_app
from .config import SimConfig
from .models import CATALOGUE, MODELS, SimModel
from .server import SimServer, main, serve

__all__ = ["CATALOGUE", "MODELS", "SimConfig", "SimModel", "SimServer", "main", "make_app", "serve"]
