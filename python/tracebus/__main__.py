"""``python -m tracebus``: the command line (see ``tracebus.cli``)."""

import sys

from .cli import main

sys.exit(main())
