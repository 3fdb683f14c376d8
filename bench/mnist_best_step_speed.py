"""Training-step speed of the mnist-best model by batch size and precision, side by side in one run.

    python bench/mnist_best_step_speed.py [--steps 40] [--rounds 5] [--json bench/mnist_best_step_speed.json]

The model of ``--preset mnist-best`` (encoder 784-400-32, MADE decoder with 500 hidden units,
VampPrior with 500 pseudo-inputs), trained as `vaekit train` trains it (fused Adam, one ELBO sample,
bfloat16 autocast where asked), on synthetic 28 x 28 images dynamically binarized. The four rows
take turns for ``--rounds`` rounds of ``--steps`` optimizer steps each (after 10 of warm-up); each
row gives its median milliseconds per step, seconds per epoch of 58 998 images (the preset's
training split) and epochs per minute against float32 at batch 128. The machine's float32 and
bfloat16 rates for a 2048 x 2048 product (median over the rounds) are printed beside the table so
that runs on different CPUs can be compared.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch
from train_speed import matmul_rate  # bench/ is the script's folder, first on sys.path

ROWS = [(128, "float32"), (128, "bf16"), (256, "float32"), (256, "bf16")]
N_TRAIN = 58_998


def make_step(batch: int, precision: str):
    """One optimizer step of a fresh mnist-best model at this batch size and precision, as a closure."""
    import vaekit
    from vaekit.models import build_model

    torch.manual_seed(0)
    est = vaekit.VAE(hidden=[400], latent_dim=32, likelihood="autoregressive-bernoulli", ar_hidden=500, prior="vamp",
                     n_pseudo_inputs=500, batch_size=batch, device="cpu", seed=0)
    model = build_model(est._model_config((1, 28, 28), 0))
    opt = torch.optim.Adam(model.parameters(), 1e-3, fused=True)  # as vaekit.train.make_optimizer
    X = torch.rand(4096, 1, 28, 28)

    def step(i: int) -> None:
        start = (i * batch) % (len(X) - batch)
        xb = torch.bernoulli(X[start : start + batch])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(xb, None, objective="elbo", beta=1.0, n_samples=1)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    for i in range(10):  # warm-up
        step(i)
    return step


def seconds_per_step(step, steps: int) -> float:
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    return (time.perf_counter() - t) / steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40, help="timed steps per row and round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    steps = [make_step(batch, precision) for batch, precision in ROWS]
    # The rows take turns, round after round, and each keeps its median: a shared VM's speed drifts
    # by a quarter within minutes, which one pass per row would book to whichever row ran then.
    times: list[list[float]] = [[] for _ in ROWS]
    rates: dict[str, list[float]] = {"float32": [], "bf16": []}
    for _ in range(args.rounds):
        rates["float32"].append(matmul_rate() / 1e9)
        rates["bf16"].append(matmul_rate(dtype=torch.bfloat16) / 1e9)
        for i, step in enumerate(steps):
            times[i].append(seconds_per_step(step, args.steps))
    rates = {k: statistics.median(v) for k, v in rates.items()}
    rows = []
    for (batch, precision), ts in zip(ROWS, times):
        s = statistics.median(ts)
        rows.append({"batch": batch, "precision": precision, "ms_per_step": 1000 * s, "s_per_epoch": s / batch * N_TRAIN,
                     "ms_per_step_rounds": [round(1000 * t, 2) for t in ts]})
    base = rows[0]["s_per_epoch"]
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"2048x2048 matmul: float32 {rates['float32']:.0f} GFLOP/s, bf16 {rates['bf16']:.0f} GFLOP/s")
    print(f"{'batch':>6} {'precision':>10} {'ms/step':>9} {'s/epoch':>9} {'epochs vs f32/128':>18}")
    for r in rows:
        r["epochs_vs_float32_128"] = base / r["s_per_epoch"]
        print(f"{r['batch']:>6} {r['precision']:>10} {r['ms_per_step']:>9.1f} {r['s_per_epoch']:>9.1f} {r['epochs_vs_float32_128']:>17.2f}x")
    if args.json:
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "unknown")
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
                       "matmul_gflops": rates, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
