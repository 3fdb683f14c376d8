"""What each ingredient of the mnist-best preset contributes, at one equal wall-clock budget.

    python bench/mnist_nll_ingredients.py --minutes 5 [--data-dir ../shared/data] [--only NAME,...]

Runs bench/mnist_nll.py once per configuration below (one after another, so they do not compete
for the cores), each for the same number of training minutes, and prints the validation NLL
(k = 200 on the same 1000 held-out, once-binarized training images) that each reached, next to
its epoch count. A short budget ranks what pays early; it does not say where a long run ends.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

COMMON = ["--hidden", "400", "--latent-dim", "32", "--warmup-epochs", "10", "--test-k", "0"]
CONFIGS = {
    "vae": [],
    "+ autoregressive decoder": ["--likelihood", "autoregressive-bernoulli"],
    "+ cosine lr schedule (mnist-best)": ["--likelihood", "autoregressive-bernoulli", "--lr-schedule", "cosine"],
    "+ iwae k=4": ["--likelihood", "autoregressive-bernoulli", "--lr-schedule", "cosine", "--objective", "iwae", "--mc-samples", "4"],
    "+ vampprior (K=500)": ["--likelihood", "autoregressive-bernoulli", "--lr-schedule", "cosine", "--prior", "vamp"],
    "+ second stochastic layer (z2: 16)": ["--likelihood", "autoregressive-bernoulli", "--lr-schedule", "cosine", "--top-latent-dim", "16"],
    "vae + cosine lr schedule": ["--lr-schedule", "cosine"],
    # The VampPrior moves to the upper layer (p(z2) a mixture over pseudo-inputs, p(z1|z2) a network).
    "+ vampprior over a second stochastic layer (z2: 16)": ["--likelihood", "autoregressive-bernoulli", "--lr-schedule", "cosine",
                                                            "--prior", "vamp", "--top-latent-dim", "16"],
    # The VampPrior needs log q(z|u_k) at other posteriors' draws, which a flow gives only through its inverse: the flow
    # replaces it here rather than joining it.
    "+ iaf posterior (2 steps) instead of the vampprior": ["--likelihood", "autoregressive-bernoulli", "--lr-schedule", "cosine",
                                                           "--posterior", "iaf"],
    # Throughput: bfloat16 autocast (densities stay float32) and a larger batch, which halves the
    # VampPrior's per-example cost (the encoder runs over the 500 pseudo-inputs once per step).
    "+ vampprior, bf16": ["--likelihood", "autoregressive-bernoulli", "--lr-schedule", "cosine", "--prior", "vamp",
                          "--precision", "bf16"],
    "+ vampprior, bf16, batch 256": ["--likelihood", "autoregressive-bernoulli", "--lr-schedule", "cosine", "--prior", "vamp",
                                     "--precision", "bf16", "--batch-size", "256"],
    # Regularization for hour-long runs, where the train and validation -ELBO drift apart: dropout on the
    # MADE's hidden units. Four minutes shows what it costs early, not what it saves late (over the hour
    # it cost 0.6 nats of validation NLL: docs/results.md).
    "+ vampprior, bf16, batch 256, MADE dropout 0.1": ["--likelihood", "autoregressive-bernoulli", "--lr-schedule", "cosine",
                                                       "--prior", "vamp", "--precision", "bf16", "--batch-size", "256",
                                                       "--ar-dropout", "0.1"],
    "+ vampprior, bf16, batch 256, MADE dropout 0.2": ["--likelihood", "autoregressive-bernoulli", "--lr-schedule", "cosine",
                                                       "--prior", "vamp", "--precision", "bf16", "--batch-size", "256",
                                                       "--ar-dropout", "0.2"],
    # Capacity where the time goes: a second hidden layer of 400 on both sides of z (the encoder and the
    # decoder's path from z into the MADE), or a MADE twice as wide.
    "+ vampprior, bf16, batch 256, hidden 400-400": ["--likelihood", "autoregressive-bernoulli", "--lr-schedule", "cosine",
                                                     "--prior", "vamp", "--precision", "bf16", "--batch-size", "256",
                                                     "--hidden", "400,400"],
    "+ vampprior, bf16, batch 256, MADE 1000": ["--likelihood", "autoregressive-bernoulli", "--lr-schedule", "cosine",
                                                "--prior", "vamp", "--precision", "bf16", "--batch-size", "256",
                                                "--ar-hidden", "1000"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = Path(__file__).resolve()
    ap.add_argument("--data-dir", default=str(here.parents[2] / "shared" / "data"))
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--only", default=None, help="comma-separated indices (0-based) of the configurations to run")
    args = ap.parse_args()
    names = list(CONFIGS)
    chosen = [names[int(i)] for i in args.only.split(",")] if args.only else names
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(chosen):
            out = Path(tmp) / f"{i}.json"
            cmd = [sys.executable, str(here.parent / "mnist_nll.py"), "--minutes", str(args.minutes), "--data-dir", args.data_dir,
                   "--eval-every", "1000000", "--json", str(out), *COMMON, *CONFIGS[name]]
            print(f"[{name}] {' '.join(cmd[1:])}", flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            r = json.loads(out.read_text())
            rows.append((name, r["epochs"], r["train_minutes"], r["curve"][-1]["val_nll"]))
            print(f"  -> {r['epochs']} epochs, validation NLL {r['curve'][-1]['val_nll']:.2f}", flush=True)
    print(f"\n{'configuration':<40}{'epochs':>8}{'minutes':>9}{'val NLL (k=200)':>17}")
    for name, epochs, minutes, nll in rows:
        print(f"{name:<40}{epochs:>8}{minutes:>9.1f}{nll:>17.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
