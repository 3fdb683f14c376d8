"""MNIST one-class anomaly detection (the protocol of Ruff et al. 2018, Deep SVDD).

For each digit d: fit a detector on the training images of d only, score the whole test set
(10 000 images), and report the ROC-AUC of "not d" (anomaly) against "d" (normal). Deep SVDD
reports a mean of about 94.8 over the ten digits. The full run (10 digits x many epochs) is heavy on
a small CPU; --digits and --epochs make a reduced run possible. Not a timed test.

    python bench/anomaly_mnist_oneclass.py --data-dir /path/to/data --digits 0 1 2 --epochs 10
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from vaekit.anomaly import AutoencoderDetector, VAEDetector
from vaekit.data import load_dataset

DEEP_SVDD = {0: 98.0, 1: 99.7, 2: 91.7, 3: 91.9, 4: 94.9, 5: 88.5, 6: 98.3, 7: 94.6, 8: 93.9, 9: 96.5}  # One-class Deep SVDD, Table 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None, help="folder holding mnist/ IDX files (else the vaekit cache or a download)")
    ap.add_argument("--digits", type=int, nargs="+", default=list(range(10)), help="normal classes to run")
    ap.add_argument("--epochs", type=int, default=30, help="training epochs per digit")
    ap.add_argument("--methods", nargs="+", default=["vae-elbo", "vae-reconstruction", "ae-reconstruction"],
                    help="model-score pairs: vae-elbo, vae-likelihood, vae-reconstruction, vae-latent, ae-reconstruction, ae-latent")
    ap.add_argument("--latent-dim", type=int, default=16, help="code size")
    ap.add_argument("--hidden", default="512,256", help="hidden sizes")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    ap.add_argument("--json", default="bench/anomaly_mnist_oneclass.json", help="where to write the results")
    args = ap.parse_args()
    train = load_dataset("mnist", "train", data_dir=args.data_dir)
    test = load_dataset("mnist", "test", data_dir=args.data_dir)
    Xtr, Xte = train.X.reshape(len(train.X), -1), test.X.reshape(len(test.X), -1)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    res: dict[str, dict[int, float]] = {}
    for d in args.digits:
        for m in args.methods:
            model, method = m.split("-", 1)
            # Pixels are in [0, 1]: a Bernoulli decoder on raw pixels, no standardization (a border
            # pixel that is always 0 in training would otherwise dominate every score).
            cls = VAEDetector if model == "vae" else AutoencoderDetector
            n = int((train.y == d).sum())
            det = cls(method=method, likelihood="bernoulli", scaling="none", latent_dim=args.latent_dim,
                      hidden=hidden, n_steps=args.epochs * -(-n // 128), batch_size=128, seed=args.seed)
            t = time.time()
            det.fit(Xtr[train.y == d])
            auc = 100 * roc_auc_score(test.y != d, det.decision_function(Xte))
            res.setdefault(m, {})[d] = auc
            print(f"digit {d}  {m:<20} ROC-AUC {auc:6.2f}  (Deep SVDD {DEEP_SVDD[d]:.1f})  {time.time() - t:.0f}s", flush=True)
    print(f"\nROC-AUC (%), normal class = digit, {args.epochs} epochs")
    print(f"{'method':<20}" + "".join(f"{d:>7}" for d in args.digits) + f"{'mean':>8}")
    for m, per in res.items():
        print(f"{m:<20}" + "".join(f"{per[d]:>7.1f}" for d in args.digits) + f"{np.mean(list(per.values())):>8.1f}")
    paper = [DEEP_SVDD[d] for d in args.digits]
    print(f"{'Deep SVDD (paper)':<20}" + "".join(f"{v:>7.1f}" for v in paper) + f"{np.mean(paper):>8.1f}")
    with open(args.json, "w") as f:
        json.dump({"epochs": args.epochs, "digits": args.digits, "results": {m: {str(k): v for k, v in p.items()} for m, p in res.items()},
                   "deep_svdd": {str(d): DEEP_SVDD[d] for d in args.digits}}, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
