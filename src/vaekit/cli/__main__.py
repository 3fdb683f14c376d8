"""`python -m vaekit.cli` runs the command line (as `vaekit` does)."""

import sys

from . import main

if __name__ == "__main__":  # importing it (a docs tool inspecting the package) must not run the CLI
    sys.exit(main())
