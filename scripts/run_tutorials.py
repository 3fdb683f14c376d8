"""Run every walkthrough in docs/tutorials/ as a reader would, and draw its figures.

Each ```bash and ```python block of a tutorial runs in order from the repository root; ```text
blocks are output shown to the reader and are not run. A Python block runs in a fresh interpreter,
so each one must stand on its own, as it does when pasted. The first failing block stops the run
with exit status 1 and its tutorial, line and output.

    python scripts/run_tutorials.py                 # all of them
    python scripts/run_tutorials.py 02 04           # the tutorials whose names start with 02 or 04
    python scripts/run_tutorials.py --list          # show the blocks without running them
    python scripts/run_tutorials.py --write-figures # redraw the committed figures in docs/tutorials/figures

Figures go to runs/tutorials/figures (or --figures-dir) unless --write-figures is given: the blocks'
paths under docs/tutorials/figures/ are rewritten to that folder, so a run leaves the committed
figures alone. Run with any Python: when this one has no vaekit, the script runs itself again with
the checkout's .venv (made by `make demo`). Blocks see ``DATA`` (default: ../shared/data beside the
checkout, the real MNIST and Frey Face files) and a PATH on which `vaekit` and `python` are that
interpreter's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "docs" / "tutorials"
FIGURES = "docs/tutorials/figures/"  # where the blocks write their figures, relative to the repository root
RUNNABLE = ("bash", "python")
_FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Block:
    tutorial: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file that are to be run, in order."""
    out, lang, start, lines = [], None, 0, []
    for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = _FENCE.match(text)
        if m and lang is None:
            lang, start, lines = m.group(1), i, []
        elif text.startswith("```") and lang is not None:
            if lang in RUNNABLE:
                out.append(Block(path.name, start, lang, "\n".join(lines) + "\n"))
            lang = None
        elif lang is not None:
            lines.append(text)
    if lang is not None:
        raise SystemExit(f"{path.name}: the code block opened at line {start} is never closed")
    return out


def with_figures_in(code: str, figures: str | None) -> str:
    """The block's code with its figure paths moved to the folder ``figures`` (None: left as written)."""
    return code if figures is None else code.replace(FIGURES, figures.rstrip("/") + "/")


def run_block(b: Block, env: dict[str, str], figures: str | None = None) -> subprocess.CompletedProcess:
    code = with_figures_in(b.code, figures)
    if b.lang == "bash":
        cmd = ["bash", "-euo", "pipefail", "-c", code]
    else:
        cmd = [sys.executable, "-c", code]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def ensure_vaekit(argv: list[str]) -> None:
    """Run this script again with the checkout's .venv when this interpreter cannot import vaekit."""
    if importlib.util.find_spec("vaekit") is not None:
        return
    venv = ROOT / ".venv" / "bin" / "python"
    if venv.exists() and not os.environ.get("VAEKIT_TUTORIALS_REEXEC"):
        os.environ["VAEKIT_TUTORIALS_REEXEC"] = "1"
        os.execv(str(venv), [str(venv), str(Path(__file__).resolve()), *argv])
    raise SystemExit(f"vaekit is not installed for {sys.executable} and {ROOT / '.venv'} has none either: run `make demo` "
                     "first (it creates .venv), or run this script with a Python that has vaekit")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("only", nargs="*", help="run only the tutorials whose file names start with these")
    ap.add_argument("--list", action="store_true", help="print the blocks that would run, and stop")
    ap.add_argument("--write-figures", action="store_true", help=f"write the figures into {FIGURES} (the committed ones)")
    ap.add_argument("--figures-dir", default="runs/tutorials/figures", metavar="DIR",
                    help="where the figures go without --write-figures (default: runs/tutorials/figures)")
    ap.add_argument("--tutorials-dir", type=Path, default=TUTORIALS, metavar="DIR", help="where the walkthroughs are (default: docs/tutorials)")
    args = ap.parse_args(argv)
    files = sorted(p for p in args.tutorials_dir.glob("[0-9][0-9]-*.md") if not args.only or p.name.startswith(tuple(args.only)))
    if not files:
        raise SystemExit(f"no tutorials found in {args.tutorials_dir}" + (f" starting with {args.only}" if args.only else ""))
    figures = None if args.write_figures else args.figures_dir
    if figures is not None:
        (ROOT / figures).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("DATA", str(ROOT.parent / "shared" / "data"))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("MPLBACKEND", "Agg")
    todo = [(f, b) for f in files for b in blocks(f)]
    if args.list:
        for f, b in todo:
            print(f"--- {f.name}:{b.line} ({b.lang})\n{with_figures_in(b.code, figures)}")
        return 0
    t_all = time.perf_counter()
    for f, b in todo:
        t0 = time.perf_counter()
        first = b.code.strip().splitlines()[0] if b.code.strip() else ""
        print(f"{f.name}:{b.line} {b.lang}: {first[:80]}", flush=True)
        res = run_block(b, env, figures)
        if res.returncode != 0:
            print(res.stdout[-4000:], res.stderr[-4000:], sep="\n", file=sys.stderr)
            print(f"FAILED: {f.name}, the {b.lang} block at line {b.line} exited with {res.returncode}", file=sys.stderr)
            return 1
        for line in res.stdout.rstrip().splitlines():  # the numbers the tutorial's text quotes
            print(f"    {line}")
        print(f"    ({time.perf_counter() - t0:.0f} s)", flush=True)
    where = FIGURES if figures is None else figures
    print(f"all {len(todo)} blocks of {len(files)} tutorials ran in {time.perf_counter() - t_all:.0f} s; figures in {where}")
    return 0


if __name__ == "__main__":
    ensure_vaekit(sys.argv[1:])
    sys.exit(main())
