"""What every ``vaekit`` command shares: the help formatter, argument types, data options, errors
and output helpers. Heavy modules (numpy, torch, matplotlib) are imported inside the functions that
need them, so that ``vaekit --help`` answers at once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import VaekitError

# Where a help text lists the datasets. The list is the registry of named datasets
# (vaekit.data.datasets.NAMED_SOURCES), which imports numpy and pandas: the Formatter fills it in
# only when help is shown, so that building the parser stays fast.
DATASETS = "\x00datasets\x00"


def dataset_list() -> str:
    """The data ``--dataset`` takes, in words: the named datasets, then the user's own files and folders."""
    from ..data.datasets import NAMED_SOURCES, USER_SUFFIXES

    return (f"{', '.join(NAMED_SOURCES)}, a {'/'.join(USER_SUFFIXES)} file, "
            "or a folder of images (one subfolder per class gives labels)")


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    def _get_help_string(self, action):
        text = self._help_with_default(action)
        return text.replace(DATASETS, dataset_list()) if DATASETS in text else text

    def _help_with_default(self, action):
        # Options whose help already states their default (or whose default is "unset") do not
        # get argparse's "(default: None)" appended.
        text = action.help or ""
        # `is`, not `in`: 0 == False, and a default of 0 (--seed) is worth showing.
        if "(default" in text or action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return text
        if isinstance(action.default, (tuple, list)):  # as the user would type it: 0,1, not (0, 1)
            return f"{text} (default: {','.join(map(str, action.default))})"
        return super()._get_help_string(action)


def sizes(text: str) -> list[int]:
    """argparse type: layer sizes like ``400`` or ``512,256``."""
    try:
        out = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 400 or 512,256, got {text!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive integers, got {text!r}")
    return out


def _int_at_least(low: int):
    """An argparse type: an integer of at least ``low``."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"expected an integer of at least {low}, got {v}")
        return v

    return parse


positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)


def positive_float(text: str) -> float:
    """An argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def add_data_options(p: argparse.ArgumentParser, default: str | None, split: str) -> None:
    """--dataset, --data-dir, --split, --label-column, --limit (``default``: the --dataset default)."""
    p.add_argument("--dataset", default=default, metavar="NAME|PATH",
                   help=f"data to use: {DATASETS}" + ("" if default else " (default: the dataset the model was trained on)"))
    p.add_argument("--data-dir", default=None, metavar="DIR", help="folder holding the dataset's original files (else the cache, else a download)")
    p.add_argument("--split", default=split, choices=["train", "test", "valid", "all"], help="which split to use")
    p.add_argument("--label-column", default=None, metavar="COL", help="CSV/Parquet column holding class labels")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="use only the first N examples")
    p.add_argument("--image-size", type=positive_int, default=None, metavar="N",
                   help="image folders: resize the shorter side to N pixels and crop the centre N x N "
                        "(default: the images' own size, when they all agree)")
    p.add_argument("--channels", type=int, choices=[1, 3], default=None,
                   help="image folders: 1 (grey) or 3 (RGB) (default: 1 when every file is grey, else 3)")
    p.add_argument("--strict", action="store_true", help="image folders: stop at an unreadable file instead of skipping it with a warning")
    p.add_argument("--stream", action="store_true",
                   help="image folders: decode the images from disk as training needs them, in worker processes, instead of "
                        "loading them all first (default: only when the folder would not fit in memory)")
    add_threads_option(p)


def add_threads_option(p: argparse.ArgumentParser) -> None:
    """--threads: torch's CPU threads for this command."""
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="CPU threads for torch (default: torch's, usually the number of cores; on a machine shared "
                        "with other jobs fewer threads than cores is often faster)")


def printable(text: str) -> str:
    """``text`` with control characters escaped, for one line on a terminal.

    File names, class names and messages quoting them are the user's (or an attacker's) bytes: an
    escape code in a folder name must show as ``\\x1b``, not recolour or rewrite the terminal, and a
    newline must not split the one-line error in two.
    """
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in str(text))


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[ch]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


_SPACE = "free some space or write somewhere else, then run the command again"
_ACCESS = "check the permissions or choose another path"
# OSError numbers that are the machine's state, not a bug in vaekit: each becomes one line.
_OS_ERRORS = {"ENOSPC": ("the disk is full", _SPACE), "EDQUOT": ("the disk quota is exceeded", _SPACE),
              "EFBIG": ("the file is too large for the file system", _SPACE),
              "EACCES": ("permission denied", _ACCESS), "EPERM": ("operation not permitted", _ACCESS),
              "EROFS": ("the file system is read-only", _ACCESS),
              "ENAMETOOLONG": ("the file name is too long", "choose a shorter path"),
              "EMFILE": ("too many open files", "raise the limit (ulimit -n) or run fewer jobs at once")}


def os_error_message(e: OSError) -> str | None:
    """One line for an OSError that the machine's state explains (disk full, no permission), else None."""
    import errno

    name = errno.errorcode.get(e.errno if isinstance(e.errno, int) else -1)
    if name not in _OS_ERRORS:
        return None
    what, advice = _OS_ERRORS[name]
    where = f" at {e.filename}" if e.filename else ""
    return f"{what}{where}; {advice}"


def error_line(e: BaseException) -> str | None:
    """The one line ``vaekit: error: ...`` a failure is shown as, or None when it is a bug (keep the traceback)."""
    if isinstance(e, VaekitError):
        text = str(e)
    elif isinstance(e, OSError):
        text = os_error_message(e)
    elif isinstance(e, MemoryError):
        text = "out of memory; use less data (--limit), a smaller model (--hidden, --latent-dim) or a machine with more memory"
    else:
        text = None
    return None if text is None else f"vaekit: error: {printable(text)}"


def error(msg: str) -> VaekitError:
    """The error a command raises for a bad input: main prints it as one line and exits with 2."""
    return VaekitError(msg)


def say(args, msg: str) -> None:
    """Print ``msg`` unless the command was given --quiet."""
    if not getattr(args, "quiet", False):
        print("\n".join(printable(line) for line in str(msg).split("\n")), flush=True)  # paths may hold escape codes


PROGRESS_EVERY = 5.0  # seconds between the plain progress lines written where stderr is not a terminal


class ProgressLines:
    """A plain progress line on stderr every few seconds, for where a bar cannot redraw (logs, CI,
    notebooks): ``evaluating: 2500/10000 examples, 12 s``. Called as ``report(done, total)``; also
    writes the last line when the work ends, if it wrote any before."""

    def __init__(self, what: str, unit: str = "examples", every: float | None = None, stream=None, clock=None):
        import sys
        import time

        self.what, self.unit, self.every = what, unit, PROGRESS_EVERY if every is None else every
        self.stream, self.clock = stream or sys.stderr, clock or time.monotonic
        self.t0 = self.last = self.clock()
        self.written = False

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if now - self.last >= self.every or (done >= total and self.written):
            print(f"{self.what}: {done}/{total} {self.unit}, {now - self.t0:.0f} s", file=self.stream, flush=True)
            self.last, self.written = now, True


def run_config(run: Path) -> dict:
    """The checked config.json of a run folder."""
    from ..modelfile import read_config

    return read_config(run)


def load_data(args, run_cfg: dict | None = None):
    """The dataset an option set asks for, defaulting to the one the run was trained on."""
    from ..data import load_dataset, load_run_dataset

    image = {"image_size": getattr(args, "image_size", None), "channels": getattr(args, "channels", None),
             "strict": getattr(args, "strict", False), "stream": True if getattr(args, "stream", False) else None}
    if run_cfg is None:
        return load_dataset(args.dataset, args.split, data_dir=args.data_dir, label_column=args.label_column, limit=args.limit, **image)
    return load_run_dataset(run_cfg.get("run", {}), args.split, source=args.dataset, data_dir=args.data_dir,
                            label_column=args.label_column, limit=args.limit, **image)


def write_array(path: Path, arr, header: str | None = None) -> None:
    """Write an array as .npy or .csv (one row per example), atomically."""
    import numpy as np

    from ..atomicfiles import atomic_path

    suffix = path.suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise error(f"cannot write {path}: use a .npy or .csv file name")
    with atomic_path(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, arr)
        else:
            np.savetxt(tmp, arr.reshape(len(arr), -1), delimiter=",", fmt="%.6g", header=header or "", comments="")


def images_or_array(path: Path, images, ncol: int, title: str, image_shape, row_labels=None) -> None:
    """A .png grid of images, or (any other suffix) the array itself."""
    from ..plots import is_image_shape, save_image_grid

    if path.suffix.lower() not in (".png", ".npy", ".csv"):
        raise error(f"cannot write {path}: use a .png (image grid), .npy or .csv file name")
    if path.suffix.lower() == ".png":
        if not is_image_shape(image_shape):
            raise error(f"this model's data (shape {tuple(image_shape)}) are not images; write a .npy or .csv instead of {path.name}")
        save_image_grid(path, images, ncol, title=title, row_labels=row_labels)
    else:
        write_array(path, images)


def add_raw_csv_option(p, what: str) -> None:
    """``--raw-csv``, one declaration for every command that writes text cells into a CSV (see vaekit.csvcells)."""
    p.add_argument("--raw-csv", action="store_true",
                   help=f"write {what} exactly as read; by default a text cell starting with = + - @, a tab or a "
                        "carriage return gets a leading ' so that spreadsheets do not run it as a formula")
