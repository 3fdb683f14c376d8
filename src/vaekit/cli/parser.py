"""argparse with one-line errors.

argparse's own error prints the whole usage block (40 lines for `train`) before the message, and an
unknown option under a subcommand is reported by the top-level parser with the top-level usage. Here
every argument error is one line, names the command it belongs to, suggests the nearest option or
choice, and exits 2; usage is printed only for --help.
"""

from __future__ import annotations

import argparse
import difflib
import re
from typing import NoReturn

__all__ = ["OneLineParser"]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``vaekit train: error: ...; did you mean --epochs?``."""

    def error(self, message: str) -> NoReturn:
        from .common import printable  # a typed argument may hold escape codes: never echo them raw

        self.exit(2, f"{self.prog}: error: {printable(self._explain(message))}\n")

    def parse_known_args(self, args=None, namespace=None):
        parsed, extras = super().parse_known_args(args, namespace)
        # A subcommand's parser sees its unknown options first: report them here, under its own
        # name, rather than letting the top-level parser print its usage.
        if extras and getattr(self, "_is_subcommand", False):
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def _explain(self, message: str) -> str:
        m = re.match(r"unrecognized arguments: (.*)", message)
        if m:
            unknown = [a for a in m.group(1).split() if a.startswith("-")]
            if unknown:
                opt = unknown[0].split("=", 1)[0]
                near = difflib.get_close_matches(opt, self._option_names(), n=1, cutoff=0.6)
                hint = f"; did you mean {near[0]}?" if near else f"; see {self.prog} --help"
                return f"unknown option {opt}{hint}"
            return f"unexpected argument {m.group(1).split()[0]!r}; see {self.prog} --help"
        m = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = [c.strip().strip("'") for c in m.group(3).split(",")]
            near = difflib.get_close_matches(m.group(2), choices, n=1, cutoff=0.5)
            hint = f"; did you mean {near[0]}?" if near else ""
            return f"{m.group(1)}: {m.group(2)!r} is not one of {', '.join(choices)}{hint}"
        return " ".join(message.split())  # argparse messages can wrap; keep them on one line

    def _option_names(self) -> list[str]:
        return [s for a in self._actions for s in a.option_strings if s.startswith("--")]

    def add_subparsers(self, **kwargs):
        kwargs.setdefault("parser_class", SubcommandParser)
        return super().add_subparsers(**kwargs)


class SubcommandParser(OneLineParser):
    _is_subcommand = True
