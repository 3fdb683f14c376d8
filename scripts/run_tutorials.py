"""Run every walkthrough in docs/tutorials/ as a reader would, regenerating its figures.

Each ```bash and ```python block of a tutorial runs in order from the repository root; ```text
blocks are output shown to the reader and are not run. A Python block runs in a fresh interpreter,
so each one must stand on its own, as it does when pasted. The first failing block stops the run
with exit status 1 and its tutorial, line and output.

    python scripts/run_tutorials.py                 # all five
    python scripts/run_tutorials.py 02 04           # the tutorials whose names start with 02 or 04
    python scripts/run_tutorials.py --list          # show the blocks without running them

Blocks see ``DATA`` (default: ../shared/data beside the checkout, the real MNIST and Frey Face
files) and a PATH on which `vaekit` is this interpreter's.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "docs" / "tutorials"
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


def run_block(b: Block, env: dict[str, str]) -> subprocess.CompletedProcess:
    if b.lang == "bash":
        cmd = ["bash", "-euo", "pipefail", "-c", b.code]
    else:
        cmd = [sys.executable, "-c", b.code]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("only", nargs="*", help="run only the tutorials whose file names start with these")
    ap.add_argument("--list", action="store_true", help="print the blocks that would run, and stop")
    args = ap.parse_args(argv)
    files = sorted(p for p in TUTORIALS.glob("[0-9][0-9]-*.md") if not args.only or p.name.startswith(tuple(args.only)))
    if not files:
        raise SystemExit(f"no tutorials found in {TUTORIALS}" + (f" starting with {args.only}" if args.only else ""))
    env = dict(os.environ)
    env.setdefault("DATA", str(ROOT.parent / "shared" / "data"))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("MPLBACKEND", "Agg")
    todo = [(f, b) for f in files for b in blocks(f)]
    if args.list:
        for f, b in todo:
            print(f"--- {f.name}:{b.line} ({b.lang})\n{b.code}")
        return 0
    t_all = time.perf_counter()
    for f, b in todo:
        t0 = time.perf_counter()
        first = b.code.strip().splitlines()[0] if b.code.strip() else ""
        print(f"{f.name}:{b.line} {b.lang}: {first[:80]}", flush=True)
        res = run_block(b, env)
        if res.returncode != 0:
            print(res.stdout[-4000:], res.stderr[-4000:], sep="\n", file=sys.stderr)
            print(f"FAILED: {f.name}, the {b.lang} block at line {b.line} exited with {res.returncode}", file=sys.stderr)
            return 1
        for line in res.stdout.rstrip().splitlines():  # the numbers the tutorial's text quotes
            print(f"    {line}")
        print(f"    ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"all {len(todo)} blocks of {len(files)} tutorials ran in {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
