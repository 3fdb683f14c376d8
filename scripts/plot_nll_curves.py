"""Validation NLL against training minutes, one line per run: the curves of docs/results.md.

    PYTHONPATH=src python scripts/plot_nll_curves.py OUT.png LABEL=RUN_DIR [LABEL=RUN_DIR ...] [--title T]

Each RUN_DIR holds the metrics.csv that `vaekit train` writes; its ``val_iw_nll`` column (logged
every ``--val-nll-every`` epochs) is drawn against the cumulative ``seconds`` of the epochs, in
minutes. A dashed line marks a target when ``--target NATS`` is given.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def curve(run: Path) -> tuple[list[float], list[float]]:
    """(training minutes, validation NLL) at the epochs where the NLL was logged."""
    minutes, nll, total = [], [], 0.0
    with open(run / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            total += float(row["seconds"])
            if row.get("val_iw_nll"):
                minutes.append(total / 60)
                nll.append(float(row["val_iw_nll"]))
    return minutes, nll


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    ap.add_argument("--title", default="Validation NLL (k = 200) against training minutes")
    ap.add_argument("--target", type=float, action="append", default=[], metavar="NATS")
    ap.add_argument("--ymax", type=float, default=None)
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    for spec in args.runs:
        label, _, run = spec.partition("=")
        x, y = curve(Path(run))
        ax.plot(x, y, marker="o", markersize=3, label=f"{label} (last {y[-1]:.2f})" if y else label)
    for t in args.target:
        ax.axhline(t, color="grey", linestyle="--", linewidth=1)
        ax.annotate(f"target {t:g}", (0, t), textcoords="offset points", xytext=(4, 3), color="grey", fontsize=8)
    if args.ymax:
        ax.set_ylim(top=args.ymax)
    ax.set_xlabel("training minutes (2-core CPU)")
    ax.set_ylabel("validation NLL, nats (lower is better)")
    ax.set_title(args.title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
