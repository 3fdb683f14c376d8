"""The VQ-VAE's codebook size K: chosen on one dataset, checked on another, for 28 x 28 and 64 x 64 images.

    PYTHONPATH=src python bench/vq_codebook.py --minutes 2.5 --prior-minutes 0.75 --prior-kind transformer --json bench/vq_codebook.json

For each image size, K is chosen on a tuning set and the choice is then scored on a dataset that took
no part in the choice:

- 28 x 28: tuned on Fashion-MNIST, checked on MNIST;
- 64 x 64: tuned on the sprites vaekit draws, checked on MNIST scaled to 64 x 64 (``--image-size 64``).

Each run trains a VQ-VAE for ``--minutes`` and its code prior (vaekit.codeprior) for ``--prior-minutes``
on the training split, then scores 2000 test images: the reconstruction term (nats, Bernoulli decoder),
the codebook's perplexity and usage, the prior's NLL, and their sum, the two-stage bound on -log p(x).
K is chosen by that bound: a larger codebook reconstructs better but leaves the prior more to learn,
and the bound charges both. Runs go two at a time, one thread each.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

from bench_record import write_record

HERE = Path(__file__).resolve()
TUNE = {28: ("fashion-mnist", None), 64: ("sprites", None)}
CHECK = {28: ("mnist", None), 64: ("mnist", 64)}


def run_one(job: dict) -> dict:
    """Train one VQ-VAE and its prior for the job's minutes, score the test split, return the numbers."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    import vaekit
    from vaekit.data import load_dataset

    def load(split: str, n: int | None) -> np.ndarray:
        if job["dataset"] == "sprites":  # a seeded sample that covers every factor (the full grid is 11 GB)
            return load_dataset("sprites", split, limit=n).X
        X = load_dataset(job["dataset"], split, data_dir=job["data_dir"], limit=n).X
        if job["image_size"]:  # MNIST drawn at 64 x 64
            X = torch.nn.functional.interpolate(torch.from_numpy(X), size=job["image_size"], mode="bilinear").clamp(0, 1).numpy()
        return X

    Xtr, Xte = load("train", 60_000), load("test", job["test_examples"])
    t0 = time.perf_counter()
    est = vaekit.VQVAE(codebook_size=job["K"], epochs=100_000, max_minutes=job["minutes"], seed=job["seed"], device="cpu")
    est.fit(Xtr)
    train_s = time.perf_counter() - t0
    est.fit_prior(Xtr, epochs=100_000, kind=job["prior_kind"], max_minutes=job["prior_minutes"], seed=job["seed"])
    rec = float(-est.score_samples(Xte).mean())
    prior = float(est.prior_nll(Xte).mean())
    use = est.codebook_usage(Xte)
    mse = float(np.mean((est.reconstruct(Xte).reshape(len(Xte), -1) - Xte.reshape(len(Xte), -1)) ** 2))
    return {**{k: job[k] for k in ("size", "role", "dataset", "K")}, "epochs": len(est.history_), "train_seconds": round(train_s, 1),
            "reconstruction_nats": rec, "prior_nll": prior, "bound": rec + prior, "perplexity": use["perplexity"],
            "usage": use["usage"], "mse": mse}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(HERE.parents[2] / "shared" / "data"))
    ap.add_argument("--minutes", type=float, default=3.0, help="VQ-VAE training minutes per run")
    ap.add_argument("--prior-minutes", type=float, default=1.0, help="code-prior training minutes per run")
    ap.add_argument("--sizes", default="32,128,512", help="the codebook sizes K tried")
    ap.add_argument("--prior-kind", default="pixelcnn", choices=["pixelcnn", "transformer"], help="the code prior (vaekit.codeprior)")
    ap.add_argument("--test-examples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    Ks = [int(k) for k in args.sizes.split(",")]
    base = {"data_dir": args.data_dir, "minutes": args.minutes, "prior_minutes": args.prior_minutes, "prior_kind": args.prior_kind,
            "test_examples": args.test_examples, "seed": args.seed}
    tune = [dict(base, size=s, role="tune", dataset=TUNE[s][0], image_size=TUNE[s][1], K=k) for s in TUNE for k in Ks]
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(2) as pool:
        rows = pool.map(run_one, tune, chunksize=1)
        chosen = {s: min((r for r in rows if r["size"] == s), key=lambda r: r["bound"])["K"] for s in TUNE}
        check = [dict(base, size=s, role="check", dataset=CHECK[s][0], image_size=CHECK[s][1], K=k) for s in CHECK for k in Ks]
        rows += pool.map(run_one, check, chunksize=1)
    print(f"{'size':>5} {'role':<6} {'dataset':<14} {'K':>4} {'epochs':>6} {'rec nats':>9} {'prior NLL':>10} {'bound':>8} "
          f"{'perplexity':>10} {'usage':>6}")
    for r in rows:
        mark = " <- chosen" if r["K"] == chosen[r["size"]] else ""
        print(f"{r['size']:>5} {r['role']:<6} {r['dataset']:<14} {r['K']:>4} {r['epochs']:>6} {r['reconstruction_nats']:>9.2f} "
              f"{r['prior_nll']:>10.2f} {r['bound']:>8.2f} {r['perplexity']:>10.1f} {r['usage']:>6.0%}{mark}")
    write_record(args.json, t0, rows, prior_kind=args.prior_kind, chosen=chosen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
