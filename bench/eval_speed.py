"""Speed of the importance-weighted NLL (k samples per image) against its own matmul floor.

    python bench/eval_speed.py [--k 5000] [--examples 200] [--threads 2] [--repeats 3] [--data-dir ../shared/data/mnist]
                               [--run RUN_DIR ...] [--only-runs]

Three models, each scored three ways in the same run, side by side:
  - the classic MLP VAE 784-400-20-400-784 with a factorized Bernoulli decoder;
  - the autoregressive model: 784-400-32 encoder, decoder 32-400-(500+784) feeding a MADE with 500
    hidden units (its x-side products are made once per image), prior N(0, I);
  - the same with a VampPrior of 500 pseudo-inputs: the mnist-best preset's model.
"before" chunks the samples as vaekit 0.2 did (50 000 decoder rows per chunk, uncompiled, and the
VampPrior's logsumexp over its components is torch's, not ``logsumexp_clamped``); "rows"
uses today's chunks (``vaekit.metrics.EVAL_ROWS``) uncompiled; "now" adds ``compile=True``, what a
full evaluation (``len(X) * k >= COMPILE_SAMPLES``) does by default. Its one-off compilation is
timed separately (a warm-up over one batch of the same shapes) and left out of the timings.
These three are untrained (an untrained MADE's output and direct weights are zero, so its logits
are small, and far VampPrior components are rare); ``--run`` adds saved MLP models with their
trained weights, which is what `vaekit evaluate` meets: docs/benchmarks.md has both. The floor is the FLOPs of the matrix
products (per image: the encoder and the MADE's x-side products; per sample: the decoder and a
VampPrior's mixture) divided by the float32 rate of a large torch.mm, measured in each row's own
process just before and just after its timings (the faster of the two; the "floor" line uses the
rate measured at the start): this VM's speed drifts by 10-25% over minutes, and a rate measured
once at the start made later rows look better or worse than they were. Each row is the fastest of
``--repeats`` timings. The NLL column shows that the versions estimate
the same number (chunkings differ only by which random draws land in which chunk; compiled sums
differ in their last bits), and the peak memory must not grow with k.
"""

from __future__ import annotations

import argparse
import json
import math
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


MODELS = ("vae", "made", "made+vamp")
VERSIONS = {"before": (OLD_ROWS, False), "rows": (None, False), "now": (None, True)}  # (rows, compile)


def flops_per(cfg) -> tuple[int, int]:
    """(FLOPs per image, FLOPs per importance sample) of the matrix products of an MLP model's config."""
    if cfg.architecture != "mlp":
        raise SystemExit(f"bench/eval_speed.py counts the FLOPs of MLP models only, not {cfg.architecture!r}")
    d, lat, hidden = math.prod(cfg.input_shape), cfg.latent_dim, tuple(cfg.hidden)
    ar = cfg.likelihood.get("ar_hidden") if cfg.likelihood.get("name") == "autoregressive-bernoulli" else None
    chain = lambda sizes: 2 * sum(a * b for a, b in zip(sizes, sizes[1:]))  # noqa: E731
    # Encoder d-hidden-(2 x latent) once per image; decoder latent-hidden-out per sample.
    per_image = chain((d, *hidden, 2 * lat))
    per_sample = chain((lat, *hidden[::-1], d + (ar or 0)))
    if ar:  # the MADE: its x-side products A x (ar x d) and W x (d x d) once per image, V h (d x ar) per sample
        per_image += 2 * (ar * d + d * d)
        per_sample += 2 * d * ar
    if cfg.prior.get("kind") == "vamp":  # log p(z): [z^2, z] (2 x latent) against the components, per sample
        per_sample += 2 * 2 * lat * cfg.prior.get("n_pseudo_inputs", 500)
    return per_image, per_sample


def build(model: str):
    """The model to time: an untrained one of the three named above, or ``run:DIR``, a saved (trained) model."""
    from vaekit.models import VAEConfig, build_model

    if model.startswith("run:"):
        from vaekit.runfolder import load

        return load(model[4:]).model_.eval()
    torch.manual_seed(0)
    if model == "vae":
        return build_model(VAEConfig(input_shape=(1, 28, 28), hidden=(400,), latent_dim=20)).eval()
    lik = {"name": "autoregressive-bernoulli", "ar_hidden": 500}
    prior = {"name": "vamp"} if model == "made+vamp" else {"name": "normal"}
    return build_model(VAEConfig(input_shape=(1, 28, 28), hidden=(400,), latent_dim=32, likelihood=lik, prior=prior)).eval()


def one(args) -> None:
    """Child process: time one (model, version) so that each row's peak memory is its own."""
    torch.set_num_threads(args.threads)
    from vaekit.data import load_dataset
    from vaekit.metrics import EVAL_ROWS, iw_log_likelihood

    X = torch.from_numpy(load_dataset("mnist", "test", data_dir=args.data_dir).X[: args.examples])
    X = torch.bernoulli(X, generator=torch.Generator().manual_seed(0))
    model = build(args.model)
    rows, compiled = VERSIONS[args.version]
    if args.version == "before":  # the mixture's logsumexp as it was: torch's, with exp's slow subnormal path
        import vaekit.distributions as D

        D.logsumexp_clamped = torch.logsumexp
    rows = rows or EVAL_ROWS
    chunk = max(1, min(args.k, rows // 100))
    t = time.perf_counter()  # warm-up over one batch with the timed run's shapes: compiles them
    iw_log_likelihood(model, X[:100], k=chunk, max_rows=rows, compile=compiled)
    warm = time.perf_counter() - t
    rate = matmul_rate()  # this row's own floor: the VM's speed drifts by 10-25% over minutes
    secs = float("inf")
    for _ in range(args.repeats):  # the fastest of a few: a neighbour's burst slows one, not all
        t = time.perf_counter()
        nll = -iw_log_likelihood(model, X, k=args.k, max_rows=rows, compile=compiled).mean().item()
        secs = min(secs, time.perf_counter() - t)
    rate = max(rate, matmul_rate())  # the faster of before and after: a floor on the short side, a ratio on the high side
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rate": rate, "seconds": secs, "nll": nll, "rss": rss, "rows": rows, "compiled": compiled, "warm_up": warm}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="time each row this many times and keep the fastest")
    ap.add_argument("--json", default=None)
    ap.add_argument("--run", action="append", default=[], metavar="DIR",
                    help="also time this saved MLP model (a `vaekit train` run folder: trained weights); repeatable")
    ap.add_argument("--only-runs", action="store_true", help="time the --run models only, not the three untrained ones")
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--version", choices=tuple(VERSIONS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.model:
        return one(args)
    for d in args.run:  # before any timing: a typo should not surface ten minutes in, as a traceback
        if not (Path(d) / "config.json").is_file():
            ap.error(f"--run {d}: not a saved model folder (no config.json); give a `vaekit train --out` folder")
    if args.only_runs and not args.run:
        ap.error("--only-runs needs at least one --run DIR")

    torch.set_num_threads(args.threads)
    rate = matmul_rate()
    n, k = args.examples, args.k
    print(f"float32 matmul rate {rate / 1e9:.1f} GFLOP/s ({args.threads} threads); {n} images, k={k}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'model':<11}{'version':<26}{'seconds':>9}{'x floor':>9}{'GFLOP/s':>9}{'samples/s':>11}{'peak RSS MiB':>14}{'NLL':>10}{'warm-up s':>11}")
    results = []
    models = [*([] if args.only_runs else MODELS), *(f"run:{d}" for d in args.run)]
    for model in models:
        per_image, per_sample = flops_per(build(model).config)
        floor = (n * per_image + n * k * per_sample) / rate
        name = Path(model[4:]).name[:10] if model.startswith("run:") else model
        print(f"{name:<11}{'floor':<26}{floor:>9.1f}{1.0:>9.2f}{rate / 1e9:>9.1f}{n * k / floor:>11.0f}{'-':>14}{'-':>10}{'-':>11}")
        for version in VERSIONS:
            cmd = [sys.executable, __file__, "--model", model, "--version", version, "--k", str(k),
                   "--examples", str(n), "--threads", str(args.threads), "--repeats", str(args.repeats), "--data-dir", args.data_dir]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            label = f"{version} ({r['rows']} rows{', compiled' if r['compiled'] else ''})"
            own_floor = (n * per_image + n * k * per_sample) / r["rate"]
            print(f"{name:<11}{label:<26}{r['seconds']:>9.1f}{r['seconds'] / own_floor:>9.2f}{r['rate'] / 1e9:>9.1f}{n * k / r['seconds']:>11.0f}"
                  f"{r['rss']:>14.0f}{r['nll']:>10.3f}{r['warm_up']:>11.1f}")
            results.append({"model": name, "path": model[4:] if model.startswith("run:") else None, "version": version, "floor": own_floor, **r})
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"k": k, "n": n, "threads": args.threads, "rate": rate, "rows": results}, indent=1))


if __name__ == "__main__":
    main()
