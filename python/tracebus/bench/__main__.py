"""``python -m tracebus.bench``: the same as ``tracebus bench``."""

import sys

from .main import run

raise SystemExit(run(sys.argv[1:]))
