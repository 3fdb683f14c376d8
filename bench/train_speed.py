"""Training speed of the classic MNIST VAE, side by side in one run, against the machine's floor.

    python bench/train_speed.py --data-dir ../shared/data/mnist [--epochs 4] [--json out.json]

Model: MLP VAE 784-400-20-400-784, ReLU, Bernoulli decoder, batch 128, Adam lr 1e-3, float32.
Rows (seconds per steady-state epoch: median over epochs after the first):
  floor         FLOPs of one epoch's forward + backward matrix products / the float32 rate of a
                large torch.mm measured in this run: what an epoch would take doing nothing else
  vaekit        the public API (vaekit.VAE(...).fit), float32
  vaekit bf16   the same with precision='bf16' (bfloat16 autocast)
  examples      a loop in the style of pytorch/examples' VAE (DataLoader over a TensorDataset,
                default Adam, .item() every step)
  pythae        pythae's TrainingPipeline with the same architecture (skipped if not installed)
Ratios: row / floor and row / vaekit. Peak memory is the process's max RSS after each row.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn


def arch(hidden: int = 400, latent: int = 20, d: int = 784) -> list[tuple[int, int]]:
    """The MLP VAE's matrix products: encoder (mu and log sigma^2 as one layer), then decoder."""
    return [(d, hidden), (hidden, 2 * latent), (latent, hidden), (hidden, d)]


def epoch_flops(n: int, hidden: int = 400) -> float:
    """Matrix-product FLOPs of one epoch: forward 2*in*out per example and layer; backward the
    weight gradient (2*in*out) plus the input gradient (2*in*out) except for the first layer,
    whose input (the data) needs none."""
    layers = arch(hidden)
    fwd = sum(2 * i * o for i, o in layers)
    bwd = sum(2 * i * o for i, o in layers) + sum(2 * i * o for i, o in layers[1:])
    return float(n) * (fwd + bwd)


def matmul_rate(size: int = 2048, repeats: int = 10, dtype: torch.dtype = torch.float32) -> float:
    """Best observed FLOP/s of a size x size matrix product (float32 unless ``dtype`` says otherwise)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - t))
    return best


def load_mnist(data_dir: str | None) -> np.ndarray:
    from vaekit.data import load_dataset

    return load_dataset("mnist", "train", data_dir=data_dir).X.reshape(-1, 784)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_vaekit(X: np.ndarray, epochs: int, precision: str = "float32", hidden: int = 400) -> list[float]:
    import vaekit

    model = vaekit.VAE(latent_dim=20, hidden=hidden, batch_size=128, lr=1e-3, epochs=epochs, val_fraction=0.0,
                       precision=precision, device="cpu", seed=0)
    model.fit(X, progress=False)
    return [row["seconds"] for row in model.history_]


class ExamplesVAE(nn.Module):
    """The model of pytorch/examples/vae/main.py."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h = torch.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(torch.relu(self.fc3(z)))), mu, logvar


def bench_examples(X: np.ndarray, epochs: int) -> list[float]:
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = ExamplesVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(torch.from_numpy(X)), batch_size=128, shuffle=True)
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        total = 0.0
        for (x,) in loader:
            opt.zero_grad()
            recon, mu, logvar = model(x)
            bce = nn.functional.binary_cross_entropy(recon, x, reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = bce + kld
            loss.backward()
            total += loss.item()
            opt.step()
        times.append(time.perf_counter() - t)
    return times


def bench_pythae(X: np.ndarray, epochs: int) -> list[float] | None:
    try:
        from pythae.models import VAE, VAEConfig
        from pythae.models.base.base_utils import ModelOutput
        from pythae.models.nn import BaseDecoder, BaseEncoder
        from pythae.pipelines import TrainingPipeline
        from pythae.trainers import BaseTrainerConfig
        from pythae.trainers.training_callbacks import TrainingCallback
    except ImportError:
        return None

    class Enc(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.h, self.mu, self.lv = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)

        def forward(self, x):
            h = torch.relu(self.h(x.reshape(-1, 784)))
            return ModelOutput(embedding=self.mu(h), log_covariance=self.lv(h))

    class Dec(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(20, 400), nn.ReLU(), nn.Linear(400, 784), nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z).reshape(-1, 1, 28, 28))

    class Timer(TrainingCallback):
        def __init__(self):
            self.times, self.t = [], None

        def on_epoch_begin(self, training_config, **kw):
            self.t = time.perf_counter()

        def on_epoch_end(self, training_config, **kw):
            self.times.append(time.perf_counter() - self.t)

    import tempfile

    torch.manual_seed(0)
    cfg = VAEConfig(input_dim=(1, 28, 28), latent_dim=20, reconstruction_loss="bce")
    model = VAE(cfg, encoder=Enc(), decoder=Dec())
    with tempfile.TemporaryDirectory() as out:
        tcfg = BaseTrainerConfig(output_dir=out, num_epochs=epochs, per_device_train_batch_size=128, learning_rate=1e-3,
                                 optimizer_cls="Adam", no_cuda=True, steps_saving=None, steps_predict=None)
        timer = Timer()
        TrainingPipeline(model=model, training_config=tcfg)(train_data=X.reshape(-1, 1, 28, 28), callbacks=[timer])
    return timer.times


def steady(times: list[float]) -> float:
    return statistics.median(times[1:] if len(times) > 1 else times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))
    ap.add_argument("--epochs", type=int, default=4, help="epochs per row; the first is a warm-up")
    ap.add_argument("--rows", type=int, default=None, help="use only this many training images")
    ap.add_argument("--skip", default="", help="comma-separated rows to skip: examples,pythae,bf16")
    ap.add_argument("--scale", action="store_true",
                    help="instead: vaekit against the floor for 10k/60k/600k synthetic rows and hidden 400/1000/2000")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if args.scale:
        return scale(args)

    X = load_mnist(args.data_dir)
    if args.rows:
        X = X[: args.rows]
    n = len(X)
    rate = matmul_rate()
    floor = epoch_flops(n) / rate
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {n} images; "
          f"float32 matmul rate {rate / 1e9:.1f} GFLOP/s; epoch FLOPs {epoch_flops(n) / 1e9:.1f} G", flush=True)
    results = {"floor": {"seconds": floor}}
    runs = [("vaekit", lambda: bench_vaekit(X, args.epochs))]
    if "bf16" not in skip:
        runs.append(("vaekit bf16", lambda: bench_vaekit(X, args.epochs, "bf16")))
    if "examples" not in skip:
        runs.append(("examples", lambda: bench_examples(X, args.epochs)))
    if "pythae" not in skip:
        runs.append(("pythae", lambda: bench_pythae(X, args.epochs)))
    for name, fn in runs:
        times = fn()
        if times is None:
            print(f"{name}: not installed, skipped (pip install pythae)", flush=True)
            continue
        results[name] = {"seconds": steady(times), "epochs": times, "peak_rss_mib": rss_mib()}
        print(f"{name}: {', '.join(f'{t:.2f}' for t in times)} s/epoch", flush=True)

    base = results["vaekit"]["seconds"]
    print()
    print(f"{'row':<14}{'s/epoch':>9}{'examples/s':>12}{'x floor':>9}{'x vaekit':>10}{'peak RSS MiB':>14}")
    for name, r in results.items():
        s = r["seconds"]
        rss = f"{r['peak_rss_mib']:.0f}" if "peak_rss_mib" in r else "-"
        print(f"{name:<14}{s:>9.3f}{n / s:>12.0f}{s / floor:>9.2f}{s / base:>10.2f}{rss:>14}")
    print("(peak RSS is cumulative over the rows above it: one process runs them all)")
    if args.json:
        Path(args.json).write_text(json.dumps({"n": n, "matmul_gflops": rate / 1e9, "results": results}, indent=2))


def scale(args) -> None:
    """How the epoch time grows with the data and the width: the ratio to the floor should stay flat."""
    rng = np.random.default_rng(0)
    rate = matmul_rate()
    print(f"float32 matmul rate {rate / 1e9:.1f} GFLOP/s; synthetic binary rows of 784; {args.epochs} epochs each, median after the first")
    print(f"{'rows':>8}{'hidden':>8}{'floor s':>9}{'vaekit s':>10}{'x floor':>9}")
    out = []
    cases = [(10_000, 400), (60_000, 400), (600_000, 400), (60_000, 1000), (60_000, 2000)]
    for rows, hidden in cases:
        X = (rng.random((rows, 784), dtype=np.float32) < 0.13).astype(np.float32)
        floor = epoch_flops(rows, hidden) / rate
        s = steady(bench_vaekit(X, args.epochs, hidden=hidden))
        out.append({"rows": rows, "hidden": hidden, "floor": floor, "vaekit": s})
        print(f"{rows:>8}{hidden:>8}{floor:>9.2f}{s:>10.2f}{s / floor:>9.2f}", flush=True)
        del X
    if args.json:
        Path(args.json).write_text(json.dumps({"matmul_gflops": rate / 1e9, "scale": out}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
