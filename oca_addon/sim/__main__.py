import sys

from oca_addon.sim.server import main

sys.exit(main())
