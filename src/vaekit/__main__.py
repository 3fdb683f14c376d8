"""`python -m vaekit` (and `torchrun -m vaekit train ...`) runs the command line."""

from .cli import run

if __name__ == "__main__":  # importing it (a docs tool inspecting the package) must not run the CLI
    run()
