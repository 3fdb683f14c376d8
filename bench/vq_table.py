"""The VQ-VAE beside the MLP VAE and the conv VAE at equal training minutes, on MNIST and Fashion-MNIST.

    PYTHONPATH=src python bench/vq_table.py --minutes 5 --json bench/vq_table.json

Each model trains for the same wall-clock minutes on the dataset's 60 000 training images (the VQ-VAE's
minutes include its second stage: ``--prior-share`` of them go to the code prior), two runs at a time,
one thread each, with every other option at vaekit's default. On 2000 test images each row gives the
squared error of the reconstructions (the ``mse`` that `vaekit evaluate` writes), the reconstruction
term in nats, and a bound on -log p(x) in nats: the VAEs' ELBO, the VQ-VAE's reconstruction term plus
its prior's NLL. On MNIST a judge (scripts/digit_judge.py, an MLP fitted on the real training digits)
reads 500 reconstructions and 500 samples: the share of reconstructions judged as their digit, the share
of samples it gives one class with p >= 0.9, and how many classes those are.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

from bench_record import write_record

HERE = Path(__file__).resolve()
MODELS = {"MLP VAE": "VAE", "conv VAE": "ConvVAE", "VQ-VAE + code prior": "VQVAE"}


def run_one(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    import vaekit
    from vaekit.data import load_dataset

    sys.path.insert(0, str(HERE.parents[1] / "scripts"))
    train = load_dataset(job["dataset"], "train", data_dir=job["data_dir"])
    test = load_dataset(job["dataset"], "test", data_dir=job["data_dir"], limit=job["test_examples"])
    vq = job["model"].startswith("VQ")
    minutes = job["minutes"] * (1 - job["prior_share"]) if vq else job["minutes"]
    est = getattr(vaekit, MODELS[job["model"]])(epochs=100_000, max_minutes=minutes, seed=job["seed"], device="cpu")
    t0 = time.perf_counter()
    est.fit(train.X)
    if vq:
        est.fit_prior(train.X, epochs=100_000, max_minutes=job["minutes"] * job["prior_share"], seed=job["seed"])
    seconds = time.perf_counter() - t0
    from vaekit.evaluate import evaluate

    X = test.X
    r = evaluate(est, X, k=100, iw_limit=500)
    row = {k: job[k] for k in ("dataset", "model")}
    row.update(epochs=len(est.history_), train_seconds=round(seconds, 1), mse=r["mse"], binarization=r["binarization"],
               reconstruction_nats=r["reconstruction"] if vq else -r["log_likelihood"])
    if vq:  # the two-stage bound: reconstruction term + the code prior's NLL
        row.update(bound=r["nll_bound"], prior_nll=r["prior_nll"], perplexity=r["perplexity"], usage=r["usage"])
    else:
        row.update(bound=-r["elbo"], iw_nll=r["iw_nll"])
    rec = est.reconstruct(X)
    if job["dataset"] == "mnist":
        from digit_judge import fit_judge

        judge = fit_judge(Path(job["data_dir"]) / "mnist", cache=job["judge_cache"])
        p = judge(est.sample(500, seed=1))
        sure = p.max(1) >= 0.9
        row.update(reconstructions_judged_right=float((judge(rec[:500]).argmax(1) == test.y[:500]).mean()),
                   confident_samples=float(sure.mean()), confident_classes=len(set(p[sure].argmax(1).tolist())))
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(HERE.parents[2] / "shared" / "data"))
    ap.add_argument("--minutes", type=float, default=5.0, help="training minutes per model")
    ap.add_argument("--prior-share", type=float, default=0.2, help="the share of the VQ-VAE's minutes that trains its code prior")
    ap.add_argument("--datasets", default="mnist,fashion-mnist")
    ap.add_argument("--test-examples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    judge_cache = str(Path("runs") / "judge.npz")
    Path("runs").mkdir(exist_ok=True)
    sys.path.insert(0, str(HERE.parents[1] / "scripts"))
    from digit_judge import fit_judge

    fit_judge(Path(args.data_dir) / "mnist", cache=judge_cache)  # fitted once, before the workers read it
    jobs = [{"dataset": d, "model": m, "data_dir": args.data_dir, "minutes": args.minutes, "prior_share": args.prior_share,
             "test_examples": args.test_examples, "seed": args.seed, "judge_cache": judge_cache}
            for d in args.datasets.split(",") for m in MODELS]
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(2) as pool:
        rows = pool.map(run_one, jobs, chunksize=1)
    print(f"{'dataset':<14}{'model':<22}{'epochs':>7}{'MSE':>9}{'rec nats':>10}{'bound':>9}{'judged rec':>11}{'confident':>10}{'classes':>8}")
    for r in rows:
        print(f"{r['dataset']:<14}{r['model']:<22}{r['epochs']:>7}{r['mse']:>9.4f}{r.get('reconstruction_nats', float('nan')):>10.2f}"
              f"{r['bound']:>9.2f}{r.get('reconstructions_judged_right', float('nan')):>11.1%}{r.get('confident_samples', float('nan')):>10.1%}"
              f"{r.get('confident_classes', 0):>8}")
    write_record(args.json, t0, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
