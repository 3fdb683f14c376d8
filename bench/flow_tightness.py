"""The tightness a flow posterior buys, at equal training minutes on MNIST.

Two VAEs that differ only in q(z|x): the diagonal Gaussian (``--posterior normal``) and the inverse
autoregressive flow (``--posterior iaf``, its default steps and widths). Both train side by side
for ``--minutes`` each, one thread each, on dynamically binarized MNIST (784-400-20 MLP, Bernoulli
decoder). Then, on the test set binarized once (seed 0): the ELBO and its KL over all 10 000
images; on the first ``--iw-limit`` images, the importance-weighted bound L_k for k = 1, 2, 4, ..
``--k`` from one set of draws (a figure), the test NLL -L_k at the largest k, and the gap L_k - L_1
between the ELBO and that estimate of log p(x) on the same images: what q's misfit costs.

    PYTHONPATH=src python bench/flow_tightness.py --data-dir ../shared/data --minutes 10 \\
        --json bench/flow_tightness.json --figure docs/figures/flow-tightness.png

Training is timed by ``--max-minutes``, so what each posterior gets is the same wall-clock budget,
not the same number of steps (the flow's steps cost more).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

POSTERIORS = ("normal", "iaf")


def train(args, out: Path) -> dict[str, Path]:
    runs, procs = {}, []
    for post in POSTERIORS:
        run = out / f"mnist-{post}"
        runs[post] = run
        cmd = [sys.executable, "-m", "vaekit", "train", "--dataset", "mnist", "--data-dir", str(args.data_dir), "--latent-dim", "20",
               "--hidden", "400", "--binarize", "dynamic", "--posterior", post, "--epochs", "10000", "--max-minutes", str(args.minutes),
               "--threads", "1", "--seed", str(args.seed), "--no-report", "--quiet", "--out", str(run), "--overwrite"]
        procs.append(subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}))
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"training failed: {' '.join(p.args)}")
    return runs


def measure(args, run: Path) -> dict:
    import vaekit
    from vaekit.data import load_dataset
    from vaekit.evaluate import binarize_for_eval, bound_against_k, evaluate

    est = vaekit.load(run)
    test = load_dataset("mnist", "test", data_dir=args.data_dir)
    X = test.X
    t = time.perf_counter()
    r = evaluate(est, X, k=1, iw_limit=1, seed=0)  # the ELBO and KL over the whole test set
    Xb, _ = binarize_for_eval(est, X[: args.iw_limit])
    curve = bound_against_k(est.model_, torch.from_numpy(est.prepare_X(Xb)), k_max=args.k, seed=0)
    epochs = len((run / "metrics.csv").read_text().strip().splitlines()) - 1
    return {"elbo": r["elbo"], "log_likelihood": r["log_likelihood"], "kl": r["kl"], "kl_estimate": r.get("kl_estimate"),
            "iw_nll": -curve["bound"][-1], "gap": curve["bound"][-1] - curve["bound"][0], "curve": curve, "epochs": epochs,
            "eval_seconds": time.perf_counter() - t}


def figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for post, r in results.items():
        c = r["curve"]
        ax.plot(c["k"], c["bound"], marker="o", label=f"q(z|x) = {post}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k, importance samples")
    ax.set_ylabel("L_k, nats per image (higher = tighter)")
    n = next(iter(results.values()))["curve"]["n"]
    ax.set_title(f"Importance-weighted bound L_k against k (first {n} MNIST test images)", fontsize=9)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True, help="folder holding mnist/")
    ap.add_argument("--minutes", type=float, default=10.0, help="training minutes per posterior (side by side)")
    ap.add_argument("--k", type=int, default=1024, help="importance samples of the test NLL (a power of two: the curve's last k)")
    ap.add_argument("--iw-limit", type=int, default=1000, help="test images the NLL and the curve are estimated on")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/flow-tightness"), help="where the two runs go")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--figure", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    t = time.perf_counter()
    runs = train(args, args.out)
    results = {post: measure(args, run) for post, run in runs.items()}
    print(f"\nMNIST, {args.minutes:g} training minutes each (side by side, one thread each); test set binarized once (seed 0); "
          f"{time.perf_counter() - t:.0f} s in all; load {os.getloadavg()[0]:.1f}")
    print(f"{'posterior':10s}{'epochs':>8s}{'test ELBO':>11s}{'KL':>8s}{'IW NLL':>9s}{'gap':>7s}   (nats per image; ELBO and KL on "
          f"all test images, IW NLL = -L_k with k = {args.k} and gap = L_k - L_1 on the first {args.iw_limit})")
    for post, r in results.items():
        print(f"{post:10s}{r['epochs']:8d}{r['elbo']:11.2f}{r['kl']:8.2f}{r['iw_nll']:9.2f}{r['gap']:7.2f}")
    print(f"\nbound L_k on the first {args.iw_limit} test images:")
    print("k         " + "".join(f"{k:>8d}" for k in results["normal"]["curve"]["k"]))
    for post, r in results.items():
        print(f"{post:10s}" + "".join(f"{b:8.2f}" for b in r["curve"]["bound"]))
    if args.figure:
        figure(results, args.figure)
    if args.json:
        args.json.write_text(json.dumps({"minutes": args.minutes, "results": results}, indent=1, default=float))


if __name__ == "__main__":
    main()
