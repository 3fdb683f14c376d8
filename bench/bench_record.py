"""The record a bench writes with ``--json``: the command that ran, the machine, the seconds it took and its rows."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path


def write_record(path: str | Path | None, t0: float, rows: list, **extra) -> None:
    """Write ``rows`` (and ``extra`` fields) to ``path`` as JSON, with the command line, the machine and the
    seconds since ``t0`` (``time.perf_counter()``); nothing when ``path`` is None."""
    if not path:
        return
    out = {"command": " ".join(sys.argv), "machine": platform.processor() or platform.machine(), **extra,
           "seconds": round(time.perf_counter() - t0), "rows": rows}
    Path(path).write_text(json.dumps(out, indent=1) + "\n")
