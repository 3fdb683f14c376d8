"""Speed of the importance-weighted NLL (k samples per image) against its own matmul floor.

    python bench/eval_speed.py [--k 5000] [--examples 500] [--threads 2] [--repeats 3] [--data-dir ../shared/data/mnist]

Two models, each scored twice in the same run, side by side:
  - the classic MLP VAE 784-400-20-400-784 with a factorized Bernoulli decoder;
  - the mnist-best model: 784-400-32 encoder, decoder 32-400-(500+784) feeding a MADE with 500
    hidden units (autoregressive Bernoulli likelihood; its x-side products are made once per image).
"before" chunks the samples as vaekit 0.2 did (50 000 decoder rows per chunk); "now" uses the
current default (``vaekit.metrics.EVAL_ROWS``). Weights are untrained: the cost does not depend on
them. The floor is the FLOPs of the matrix products (per image: the encoder and the MADE's x-side
products; per sample: the decoder) divided by the float32 rate of a large torch.mm measured in the
same run; each row is the fastest of ``--repeats`` timings. The NLL column shows that both chunkings estimate the same number (they differ only by
which random draws land in which chunk), and the peak memory must not grow with k.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import matmul_rate  # noqa: E402

OLD_ROWS = 50_000  # vaekit 0.2's chunk size


def flops_per(model: str) -> tuple[int, int]:
    """(FLOPs per image, FLOPs per importance sample) of the matrix products."""
    if model == "vae":
        return 2 * (784 * 400 + 400 * 40), 2 * (20 * 400 + 400 * 784)
    # Encoder 784-400-(2x32); MADE x-side A x (500x784) and W x (784x784) once per image; per sample
    # the decoder 32-400-(500+784) and the MADE's output layer V h (784x500).
    return 2 * (784 * 400 + 400 * 64 + 500 * 784 + 784 * 784), 2 * (32 * 400 + 400 * 1284 + 784 * 500)


def build(model: str):
    from vaekit.models import VAEConfig, build_model

    torch.manual_seed(0)
    if model == "vae":
        return build_model(VAEConfig(input_shape=(1, 28, 28), hidden=(400,), latent_dim=20)).eval()
    lik = {"name": "autoregressive-bernoulli", "ar_hidden": 500}
    return build_model(VAEConfig(input_shape=(1, 28, 28), hidden=(400,), latent_dim=32, likelihood=lik)).eval()


def one(args) -> None:
    """Child process: time one (model, chunking) so that each row's peak memory is its own."""
    torch.set_num_threads(args.threads)
    from vaekit.data import load_dataset
    from vaekit.metrics import EVAL_ROWS, iw_log_likelihood

    X = torch.from_numpy(load_dataset("mnist", "test", data_dir=args.data_dir).X[: args.examples])
    X = torch.bernoulli(X, generator=torch.Generator().manual_seed(0))
    model = build(args.model)
    rows = OLD_ROWS if args.version == "before" else EVAL_ROWS
    iw_log_likelihood(model, X[:2], k=min(args.k, 200), max_rows=rows)  # warm-up
    secs = float("inf")
    for _ in range(args.repeats):  # the fastest of a few: a neighbour's burst slows one, not all
        t = time.perf_counter()
        nll = -iw_log_likelihood(model, X, k=args.k, max_rows=rows).mean().item()
        secs = min(secs, time.perf_counter() - t)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": secs, "nll": nll, "rss": rss, "rows": rows}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--examples", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="time each row this many times and keep the fastest")
    ap.add_argument("--json", default=None)
    ap.add_argument("--model", choices=("vae", "made"), help=argparse.SUPPRESS)
    ap.add_argument("--version", choices=("before", "now"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.model:
        return one(args)

    torch.set_num_threads(args.threads)
    rate = matmul_rate()
    n, k = args.examples, args.k
    print(f"float32 matmul rate {rate / 1e9:.1f} GFLOP/s ({args.threads} threads); {n} images, k={k}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'model':<8}{'version':<22}{'seconds':>9}{'x floor':>9}{'samples/s':>11}{'peak RSS MiB':>14}{'NLL':>10}")
    results = []
    for model in ("vae", "made"):
        per_image, per_sample = flops_per(model)
        floor = (n * per_image + n * k * per_sample) / rate
        print(f"{model:<8}{'floor':<22}{floor:>9.1f}{1.0:>9.2f}{n * k / floor:>11.0f}{'-':>14}{'-':>10}")
        for version in ("before", "now"):
            cmd = [sys.executable, __file__, "--model", model, "--version", version, "--k", str(k),
                   "--examples", str(n), "--threads", str(args.threads), "--repeats", str(args.repeats), "--data-dir", args.data_dir]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            label = f"{version} ({r['rows']} rows)"
            print(f"{model:<8}{label:<22}{r['seconds']:>9.1f}{r['seconds'] / floor:>9.2f}{n * k / r['seconds']:>11.0f}"
                  f"{r['rss']:>14.0f}{r['nll']:>10.3f}")
            results.append({"model": model, "version": version, "floor": floor, **r})
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"k": k, "n": n, "threads": args.threads, "rate": rate, "rows": results}, indent=1))


if __name__ == "__main__":
    main()
