"""Run every bad-input case of tests/test_bad_inputs.py through the CLI and print the markdown
table of docs/bad-inputs.md (what the user sees), so the doc is produced by the code it describes.

    PYTHONPATH=src python scripts/bad_input_table.py > docs/bad-inputs.md
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_bad_inputs import CASES  # noqa: E402

from vaekit.cli import main  # noqa: E402
from vaekit.cli.common import printable  # noqa: E402


def run(case) -> tuple[int, str, str]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        args = case.make(tmp)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = main(args)
            except SystemExit as e:  # argparse's own checks exit through it
                rc = e.code
        shown = printable(" ".join(a if not a.startswith(d) else "…" + a[len(d):] for a in args))  # no raw escape codes in the doc
        return rc, shown, err.getvalue().strip().replace(d, "…")


print("# Bad input: what the user sees\n")
print("Each row was produced by `PYTHONPATH=src python scripts/bad_input_table.py` from the cases in")
print("`tests/test_bad_inputs.py`, which also checks that each exits with code 2, prints one line and")
print("leaves no file behind. `…` stands for the temporary folder of the case.\n")
print("| bad input | command | exit | message |")
print("|---|---|---|---|")
for case in CASES:
    try:
        rc, shown, err = run(case)
    except BaseException as e:  # a skipped case (e.g. a GPU is present)
        print(f"| {case.name} | | | (not run here: {type(e).__name__}) |")
        continue
    msg = err.replace("|", "\\|")
    print(f"| {case.name} | `vaekit {shown}` | {rc} | {msg} |")
