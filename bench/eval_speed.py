"""Speed of the importance-weighted NLL (k samples per image) against its own matmul floor.

    python bench/eval_speed.py [--k 5000] [--examples 10000] [--data-dir ../shared/data/mnist]

The model is the classic MLP VAE 784-400-20-400-784 (untrained weights: the cost does not depend on
them). The floor is the FLOPs of the matrix products (the encoder once per image, the decoder once
per sample) divided by the float32 rate of a large torch.mm measured in the same run. Also prints
the peak memory, which must not grow with k (samples are processed in chunks).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import matmul_rate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--examples", type=int, default=10000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from vaekit.data import load_dataset
    from vaekit.evaluate import iw_log_likelihood
    from vaekit.models import ModelConfig, build_model

    X = torch.from_numpy(load_dataset("mnist", "test", data_dir=args.data_dir).X[: args.examples])
    X = torch.bernoulli(X, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = build_model(ModelConfig(input_shape=(1, 28, 28), hidden=(400,), latent_dim=20)).eval()
    rate = matmul_rate()
    n = len(X)
    flops = n * 2 * (784 * 400 + 400 * 40) + n * args.k * 2 * (20 * 400 + 400 * 784)
    floor = flops / rate
    t = time.perf_counter()
    nll = -iw_log_likelihood(model, X, k=args.k).mean().item()
    secs = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"float32 matmul rate {rate / 1e9:.1f} GFLOP/s; {n} images, k={args.k}")
    print(f"{'row':<10}{'seconds':>10}{'x floor':>9}{'samples/s':>12}{'peak RSS MiB':>14}")
    print(f"{'floor':<10}{floor:>10.1f}{1.0:>9.2f}{n * args.k / floor:>12.0f}{'-':>14}")
    print(f"{'vaekit':<10}{secs:>10.1f}{secs / floor:>9.2f}{n * args.k / secs:>12.0f}{rss:>14.0f}")
    print(f"(NLL of the untrained model: {nll:.1f} nats; only the timing matters here)")
    if args.json:
        Path(args.json).write_text(json.dumps({"k": args.k, "n": n, "floor": floor, "seconds": secs, "peak_rss_mib": rss}))


if __name__ == "__main__":
    main()
