"""Does bfloat16 autocast change what the model learns? Same seeds, float32 against bf16.

    python bench/bf16_elbo.py [--epochs 10] [--seeds 0,1] [--data-dir ../shared/data/mnist]

Trains the classic MNIST VAE (784-400-20-400-784, Bernoulli, batch 128) once per seed and precision,
then prints the test ELBO (float32 evaluation, seeded, 10 000 images, gray levels) and the median
seconds per epoch. The difference between precisions is set beside the spread between seeds.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", default="0,1")
    args = ap.parse_args()

    import vaekit
    from vaekit.data import load_dataset
    from vaekit.evaluate import elbo

    train = load_dataset("mnist", "train", data_dir=args.data_dir).X.reshape(-1, 784)
    test = torch.from_numpy(load_dataset("mnist", "test", data_dir=args.data_dir).X.reshape(-1, 784))
    print(f"{'precision':<10}{'seed':>5}{'test ELBO':>11}{'s/epoch':>9}")
    results: dict[str, list[float]] = {}
    for precision in ("float32", "bf16"):
        for seed in (int(s) for s in args.seeds.split(",")):
            m = vaekit.VAE(hidden=400, latent_dim=20, epochs=args.epochs, val_fraction=0.0, precision=precision,
                           seed=seed, device="cpu").fit(train, progress=False)
            value = elbo(m.model_, test)["elbo"]
            secs = statistics.median(r["seconds"] for r in m.history_[1:])
            results.setdefault(precision, []).append(value)
            print(f"{precision:<10}{seed:>5}{value:>11.2f}{secs:>9.2f}", flush=True)
    f32, b16 = results["float32"], results["bf16"]
    spread = max(f32) - min(f32)
    print(f"\nmean test ELBO: float32 {statistics.mean(f32):.2f}, bf16 {statistics.mean(b16):.2f} "
          f"(difference {statistics.mean(b16) - statistics.mean(f32):+.2f} nats; spread between float32 seeds {spread:.2f})")


if __name__ == "__main__":
    main()
