"""`python -m vaekit.cli` runs the command line (as `vaekit` does)."""

import sys

from . import main

sys.exit(main())
