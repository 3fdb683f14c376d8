"""The ``vaekit`` command: a thin layer that parses options, calls the library and prints.

One module per group of commands (``train``; ``use``: sample, reconstruct, encode; ``report``:
evaluate, plot, report; ``detect``), helpers they share in ``common``. Heavy modules (torch,
numpy, matplotlib) are imported inside the command functions so that ``vaekit --help`` answers at
once. A :class:`vaekit.errors.VaekitError` becomes one line on stderr and exit code 2; argparse's
own usage errors also exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from .. import __version__
from ..errors import VaekitError
from ..options import to_flags
from . import config, detect, explore, prior, report, train, use
from .common import Formatter, error_line, printable
from .parser import OneLineParser
from .train import MODELS, expand_preset, make_estimator, presets

__all__ = ["MODELS", "build_parser", "expand_preset", "main", "make_estimator", "presets", "run"]


def build_parser() -> argparse.ArgumentParser:
    """The whole ``vaekit`` parser, every command registered by its module."""
    parser = OneLineParser(
        prog="vaekit",
        description="Train, evaluate and use autoencoders and variational autoencoders.",
        epilog="Run `vaekit COMMAND --help` for each command's options.\nExample: vaekit train --out runs/first",
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action="version", version=f"vaekit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    train.add_parser(sub)
    use.add_parsers(sub)
    prior.add_parser(sub)
    report.add_parsers(sub)
    detect.add_parser(sub)
    config.add_parser(sub)
    explore.add_parser(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    # The library warns through `warnings` (e.g. an unreadable image skipped); at the command line a
    # warning is one line like an error, without the file and source line of the call.
    kind = "" if category is UserWarning else f"{category.__name__}: "
    return f"vaekit: warning: {kind}{printable(str(message))}\n"


def main(argv: list[str] | None = None) -> int:
    """Run one ``vaekit`` command; returns the exit status (2 for a bad input)."""
    import warnings

    warnings.formatwarning = _one_line_warning
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        argv = expand_preset(argv)
    except VaekitError as e:
        print(error_line(e), file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    args.argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    threads = None
    try:
        if hasattr(args, "threads"):  # (train --resume may take the count its checkpoint recorded)
            import torch

            threads = torch.get_num_threads()
            if args.threads:
                torch.set_num_threads(args.threads)
        from ..atomicfiles import cleanup_on_signals

        with cleanup_on_signals():  # SIGTERM/SIGHUP remove temporary files and keep resumable state
            return args.func(args)
    except KeyboardInterrupt:
        print("vaekit: interrupted", file=sys.stderr)
        return 130
    except VaekitError as e:
        # Library errors name Python parameters; `vaekit train` writes them as the flags a user typed.
        print(error_line(VaekitError(to_flags(str(e))) if args.command == "train" else e), file=sys.stderr)
        return 2
    except (OSError, MemoryError) as e:  # disk full, no permission, out of memory: one line, not a traceback
        line = error_line(e)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2
    finally:
        if threads is not None:  # main() called from Python (tests, notebooks) leaves the caller's count as it was
            import torch

            torch.set_num_threads(threads)


def run() -> NoReturn:
    """The ``vaekit`` program (its console script and ``python -m vaekit``): :func:`main`, then exit.

    A process that torchrun started (``WORLD_SIZE`` > 1) ends with ``os._exit`` once its streams are
    flushed, as multiprocessing's child processes do, instead of finalizing the interpreter. torch keeps
    the gloo process group that DistributedDataParallel used alive after ``destroy_process_group``, its
    threads included, and a gloo thread that releases a Python object while the interpreter finalizes
    aborts the process ("terminate called without an active exception") after a run that succeeded,
    which torchrun reports as a failed job. Every file is written and closed before main() returns.
    """
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more can reach it anyway
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
