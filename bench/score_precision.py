"""What float64 scoring costs: a default VAEDetector's combined score, as vaekit computes it (float64
network, fixed-shape chunks, each term rounded to float32), beside the same terms from the float32
network in the same fixed-shape chunks, with the machine's own float32 matmul rate measured around them.

The float32 column is what scoring cost before scores became bit-identical across batches and CPUs;
it is computed here from the same score functions, so the ratio isolates the precision. Not a timed test.

    python bench/score_precision.py --rows 200000 --features 20 --json bench/score_precision.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import matmul_rate  # noqa: E402

from vaekit.anomaly import VAEDetector  # noqa: E402
from vaekit.anomaly import scores as S  # noqa: E402
from vaekit.anomaly.scoring import batch_rows  # noqa: E402


def float32_terms(det, Xs: np.ndarray) -> np.ndarray:
    """The combined score's terms from the float32 network, in the same fixed-shape chunks."""
    model = det.estimator_.model_
    eps = torch.as_tensor(det.eps_)
    codes, rows = torch.as_tensor(det.reference_codes_), torch.as_tensor(det.reference_rows_)
    k = det._n_neighbors
    fns = {"elbo": lambda x: S.negative_elbo(model, x, eps), "likelihood": lambda x: S.iw_nll(model, x, eps),
           "knn": lambda x: S.knn_distance(model, x, codes, k), "knn_input": lambda x: S.input_knn_distance(x, rows, k)}

    def run(xb):
        return torch.stack([fns[t](xb) for t in det.combined_terms_], -1)

    batch = batch_rows(Xs.shape[1] + len(codes) + len(rows), len(eps))
    return det.estimator_.batched(run, Xs, batch_size=batch, fixed_shape=True)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--features", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    det = VAEDetector().fit(rng.normal(size=(20_000, args.features)).astype(np.float32))
    Xs = det._transform(rng.normal(size=(args.rows, args.features)).astype(np.float32))
    det._terms(Xs[:2000])
    float32_terms(det, Xs[:2000])  # warm both paths
    rate_before = matmul_rate()
    f64 = best_of(lambda: det._terms(Xs), args.repeats)
    f32 = best_of(lambda: float32_terms(det, Xs), args.repeats)
    rate = max(rate_before, matmul_rate())
    out = {
        "machine": platform.processor() or platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(), "load_average": os.getloadavg(), "rows": args.rows, "features": args.features,
        "float64_s": round(f64, 3), "float32_s": round(f32, 3), "ratio": round(f64 / f32, 2),
        "float64_rows_per_s": round(args.rows / f64), "matmul_gflops": round(rate / 1e9, 1),
    }
    print(f"{args.rows} rows x {args.features} columns, default VAEDetector, best of {args.repeats}:")
    print(f"  float64 scoring (vaekit)      {f64:7.2f} s  {args.rows / f64:10.0f} rows/s")
    print(f"  float32 network, same chunks  {f32:7.2f} s  {args.rows / f32:10.0f} rows/s")
    print(f"  ratio {f64 / f32:.2f}; float32 matmul {rate / 1e9:.1f} GFLOP/s; load {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
