"""The beta trade-off: train one VAE per beta, evaluate each on the test split, and draw the
rate-distortion plane (Alemi et al. 2018, "Fixing a broken ELBO").

rate = KL(q(z|x) || p(z)) and distortion = -E_q[log p(x|z)], both in nats per test example; their
sum is -ELBO. Each point is labelled with its beta and its active units (Cov_x(E_q[z_j]) > 0.01,
Burda et al. 2015). As beta grows the rate falls, the distortion rises, and latent dimensions
collapse onto the prior.

    python scripts/beta_sweep.py --betas 0.5 1 2 4 --epochs 30 --out-dir runs/beta \
        --figure docs/figures/beta-rate-distortion.png

Every run is an ordinary `vaekit train` / `vaekit evaluate` command (printed as it runs), so any
point can be reproduced on its own. Extra options after `--` go to `vaekit train`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def sweep(betas: list[float], epochs: int, out_dir: Path, train_extra: list[str]) -> list[dict]:
    """Train and evaluate one VAE per beta; returns one dict per beta (nats per test example)."""
    from vaekit.cli import main

    rows = []
    for beta in betas:
        run = out_dir / f"beta-{beta:g}"
        train = ["train", "--beta", f"{beta:g}", "--epochs", str(epochs), "--out", str(run), "--overwrite",
                 "--no-report", "--no-figures", "--quiet", *train_extra]
        metrics = run / "test-metrics.json"
        evaluate = ["evaluate", str(run), "--k", "100", "--iw-limit", "500", "--no-probe", "--json", str(metrics)]
        for argv in (train, evaluate):
            print("vaekit " + " ".join(argv), flush=True)
            if main(argv) != 0:
                raise SystemExit(f"vaekit {argv[0]} failed for beta {beta:g}")
        r = json.loads(metrics.read_text())
        rows.append({"beta": beta, "rate": r["kl"], "distortion": -r["log_likelihood"], "elbo": r["elbo"],
                     "iw_nll": r["iw_nll"], "active_units": r["active_units"], "latent_dim": r["latent_dim"],
                     "kl_per_dim": r["kl_per_dim"]})
    return rows


def figure(rows: list[dict], path: Path) -> None:
    """Distortion against rate, one labelled point per beta, written to ``path`` (PNG)."""
    import matplotlib.pyplot as plt

    from vaekit.plots import save_figure

    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    rate = [r["rate"] for r in rows]
    dist = [r["distortion"] for r in rows]
    ax.plot(rate, dist, "-o", color="#1f77b4")
    for r in rows:
        ax.annotate(f"β={r['beta']:g}\n{r['active_units']}/{r['latent_dim']} active", (r["rate"], r["distortion"]),
                    textcoords="offset points", xytext=(8, 4), fontsize=8)
    ax.set_xlabel("rate  KL(q(z|x) || p(z))  [nats per example]")
    ax.set_ylabel("distortion  −E_q[log p(x|z)]  [nats per example]")
    ax.set_title("β-VAE on the embedded MNIST sample (test split)", fontsize=10)
    ax.margins(x=0.25, y=0.15)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--betas", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out-dir", type=Path, default=Path("runs/beta"))
    ap.add_argument("--figure", type=Path, default=Path("docs/figures/beta-rate-distortion.png"))
    args = ap.parse_args(argv)
    rows = sweep(args.betas, args.epochs, args.out_dir, extra)
    figure(rows, args.figure)
    print("| β | rate KL (nats) | distortion −E log p(x|z) (nats) | −ELBO | IW NLL (k=100) | active units | KL per dimension, min–max (nats) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['beta']:g} | {r['rate']:.2f} | {r['distortion']:.2f} | {-r['elbo']:.2f} | {r['iw_nll']:.2f} | "
              f"{r['active_units']} / {r['latent_dim']} | {min(r['kl_per_dim']):.2f}–{max(r['kl_per_dim']):.2f} |")
    print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
