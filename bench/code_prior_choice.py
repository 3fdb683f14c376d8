"""Which prior over a VQ-VAE's index grid: a small causal transformer or a gated PixelCNN?

    PYTHONPATH=src python bench/code_prior_choice.py --vq-minutes 3 --prior-minutes 2 --json bench/code_prior_choice.json

For MNIST (7 x 7 cells) and the sprites (16 x 16 cells) one VQ-VAE is trained (vaekit's defaults), its
training images' index grids are taken, and each prior is fitted to the same grids for the same
minutes by the same loop (vaekit.codeprior.fit_grid_prior: Adam 1e-3, batch 64). Reported: the NLL of
2000 test images' grids in nats per image (lower is better; this is the prior's share of the two-stage
bound), the parameter count, and the seconds to draw 64 grids. The two datasets run side by side, one
thread each.

Both are vaekit.codeprior's (``--kind`` of `vaekit train-prior`), at their default sizes: the PixelCNN
32 maps, 6 layers of 3 x 3; the transformer 64 units, 2 layers, 4 heads. This measurement made the
PixelCNN the default.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

import torch
from bench_record import write_record

HERE = Path(__file__).resolve()


def run_one(job: dict) -> list[dict]:
    import numpy as np

    torch.set_num_threads(1)
    import vaekit
    from vaekit.codeprior import build_grid_prior, check_prior_spec, fit_grid_prior, grid_nll
    from vaekit.data import load_dataset

    kw = {"limit": 60_000} if job["dataset"] == "sprites" else {"data_dir": job["data_dir"]}
    Xtr = load_dataset(job["dataset"], "train", **kw).X
    Xte = load_dataset(job["dataset"], "test", **dict(kw, limit=2000)).X
    vq = vaekit.VQVAE(epochs=100_000, max_minutes=job["vq_minutes"], seed=0, device="cpu").fit(Xtr)
    gtr = torch.from_numpy(vq.indices(Xtr).reshape(len(Xtr), -1)).long()
    gte = torch.from_numpy(vq.indices(Xte).reshape(len(Xte), -1)).long()
    K, grid = vq.model_.config.codebook_size, tuple(vq.model_.config.grid)
    rows = []
    for name, kind in (("causal transformer", "transformer"), ("gated PixelCNN", "pixelcnn")):
        torch.manual_seed(0)
        prior = build_grid_prior(check_prior_spec({"kind": kind}), K, grid)  # each kind at vaekit's default sizes
        hist = fit_grid_prior(prior, gtr, epochs=100_000, max_minutes=job["prior_minutes"], seed=0)
        t = time.perf_counter()
        prior.sample(64, generator=torch.Generator().manual_seed(0))
        rows.append({"dataset": job["dataset"], "grid": list(grid), "codebook_size": K, "prior": name,
                     "parameters": sum(p.numel() for p in prior.parameters()), "epochs": len(hist),
                     "test_nll": float(grid_nll(prior, gte).mean()), "train_nll": hist[-1]["prior_train_nll"],
                     "sample_64_seconds": round(time.perf_counter() - t, 2)})
    uniform = float(gtr.shape[1] * np.log(K))
    for r in rows:
        r["uniform_nll"] = uniform
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(HERE.parents[2] / "shared" / "data"))
    ap.add_argument("--vq-minutes", type=float, default=3.0)
    ap.add_argument("--prior-minutes", type=float, default=2.0)
    ap.add_argument("--datasets", default="mnist,sprites")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    jobs = [{"dataset": d, "data_dir": args.data_dir, "vq_minutes": args.vq_minutes, "prior_minutes": args.prior_minutes}
            for d in args.datasets.split(",")]
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(2) as pool:
        rows = [r for rs in pool.map(run_one, jobs, chunksize=1) for r in rs]
    print(f"{'dataset':<10}{'grid':>7}{'prior':<30}{'params':>9}{'epochs':>7}{'test NLL':>10}{'uniform':>9}{'64 draws (s)':>13}")
    for r in rows:
        g = "x".join(map(str, r["grid"]))
        print(f"{r['dataset']:<10}{g:>7} {r['prior']:<29}{r['parameters']:>9}{r['epochs']:>7}{r['test_nll']:>10.2f}{r['uniform_nll']:>9.1f}"
              f"{r['sample_64_seconds']:>13.2f}")
    write_record(args.json, t0, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
