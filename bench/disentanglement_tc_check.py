"""How much total correlation is left in a trained model's code? A discriminator trained afresh on the final codes.

    PYTHONPATH=src python bench/disentanglement_tc_check.py runs/disentanglement-bf16/{vae,beta-tcvae,factor-vae}-seed{0,1,2} \\
        --json bench/disentanglement_tc_check.json

For each run: codes z ~ q(z|x) of 20 000 seeded test sprites; vaekit's FactorVAE discriminator (3 x 256,
Adam 1e-3) trained for ``--steps`` steps (batch 256) on 16 000 of them against their per-dimension
permutations, then scored on the other 4 000: its mean logit on held-out codes estimates the total
correlation KL(q(z) || prod_j q(z_j)) in nats (Kim & Mnih 2018, eq. 3), and its held-out accuracy
says whether any dependence between the dimensions is visible at all (0.5: none). Set beside the
run's MIG, it separates "the code is not factorial" from "the code is factorial but its axes are not
the factors'" (a rotation of independent Gaussians is still independent).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vaekit.data import load_dataset
from vaekit.disentangling import Discriminator, permute_dims
from vaekit.runfolder import load


def check(run: Path, X: torch.Tensor, steps: int) -> dict:
    model = load(run).model_.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        z = torch.cat([model.inference(X[i : i + 1000]).sample() for i in range(0, len(X), 1000)])
    train, test = z[:16000], z[16000:]
    disc = Discriminator(z.shape[1], (256, 256, 256), 1e-3)
    for _ in range(steps):
        disc.update(train[torch.randint(0, len(train), (256,))])
    with torch.no_grad():
        joint, product = disc.logit(test), disc.logit(permute_dims(test))
        accuracy = 0.5 * ((joint > 0).float().mean() + (product < 0).float().mean())
        cross_entropy = 0.5 * (F.softplus(-joint).mean() + F.softplus(product).mean())
    scores = json.loads((run / "bench-disentanglement.json").read_text()) if (run / "bench-disentanglement.json").exists() else {}
    mig = scores.get("mig")
    return {"run": str(run), "tc_nats": float(joint.mean()), "held_out_accuracy": float(accuracy),
            "cross_entropy": float(cross_entropy), "mig": mig["mean"] if isinstance(mig, dict) else mig}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("sprites", "test")
    idx = np.sort(np.random.default_rng(0).choice(len(data.X), 20000, replace=False))
    X = torch.as_tensor(data.X[idx])
    print(f"load {os.getloadavg()[0]:.1f}; {args.steps} discriminator steps per run, 16 000 codes to train on, 4 000 held out")
    print(f"{'run':45s} {'TC (nats)':>10s} {'accuracy':>9s} {'MIG':>6s}")
    rows = []
    for run in args.runs:
        row = check(run, X, args.steps)
        rows.append(row)
        mig = "" if row["mig"] is None else f"{row['mig']:.3f}"
        print(f"{str(run):45s} {row['tc_nats']:10.3f} {row['held_out_accuracy']:9.3f} {mig:>6s}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
