"""Write small model, run, checkpoint and detector folders with vaekit 0.1.0 (model format 1).

tests/test_format_v1.py loads them with the current vaekit and checks every number it recorded here.
Run it against a checkout of the 0.1.0 code (commit e2e598c), not against the current tree:

    git worktree add --detach /tmp/vaekit-v010 e2e598c
    PYTHONPATH=/tmp/vaekit-v010/src OMP_NUM_THREADS=1 .venv/bin/python scripts/make_v1_fixtures.py tests/fixtures/v1

Models are tiny (a few thousand weights) so that the folders stay small in git.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

import vaekit
from vaekit.checkpoint import Checkpointer
from vaekit.cli import main
from vaekit.data import load_dataset
from vaekit.evaluate import iw_log_likelihood

# Each: folder name -> `vaekit train` options (after the shared ones below).
RUNS = {
    "vae": [],
    "vae-laplace-gaussian": ["--posterior", "laplace", "--likelihood", "gaussian", "--learn-sigma"],
    "vae-vamp": ["--prior", "vamp", "--pseudo-inputs", "3"],
    "vae-two-layer": ["--top-latent-dim", "2", "--top-hidden", "4"],
    # A MADE over 784 pixels holds two 784 x 784 masks: on 16 features (a 4 x 4 crop) it stays small.
    "vae-autoregressive": ["--likelihood", "autoregressive-bernoulli", "--ar-hidden", "8", "--dataset", "{root}/crop16.npy"],
    "conv-vae": ["--model", "conv-vae"],
    "cvae": ["--model", "cvae"],
    "sparse-ae": ["--model", "sparse-ae", "--sparsity", "kl"],
    "denoising-ae": ["--model", "denoising-ae"],
}
SHARED = ["--dataset", "embedded", "--limit", "200", "--hidden", "6", "--latent-dim", "3", "--epochs", "1",
          "--batch-size", "50", "--no-figures", "--no-report", "--quiet", "--seed", "1"]


def _sums(a: np.ndarray) -> list[float]:
    return a.reshape(len(a), -1).sum(1).tolist()


def expected_numbers(est, X: np.ndarray, y: np.ndarray) -> dict:
    """What each fixture must still give when loaded by a later vaekit."""
    labels = y if getattr(est, "conditional", False) else None
    torch.manual_seed(5)  # an autoregressive decoder's mean image draws pixels one after another
    out = {"encode": est.encode(X, labels).tolist(), "reconstruct": _sums(est.reconstruct(X, labels))}
    if hasattr(est.model_, "prior"):
        xt = torch.from_numpy(X)
        yt = None if labels is None else torch.from_numpy(labels)
        out["iw_log_likelihood"] = iw_log_likelihood(est.model_, xt, yt, k=7, seed=3).tolist()
        if labels is None:
            out["sample"] = _sums(est.sample(2, seed=4))
    return out


def main_(root: Path) -> None:
    torch.set_num_threads(1)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    data = load_dataset("embedded", "test", limit=4)
    X, y = data.X, data.y
    expected = {}
    crop = load_dataset("embedded", "train", limit=200).X[:, 0, 12:16, 12:16].reshape(200, 16)
    np.save(root / "crop16.npy", crop)
    for name, opts in RUNS.items():
        opts = [o.format(root=root) for o in opts]
        assert main(["train", "--out", str(root / name), *SHARED, *opts]) == 0
        (root / name / "train.log").unlink()  # holds timestamps and absolute paths, nothing to test
        inputs = (crop[:4], y) if "--dataset" in opts else (X, y)
        expected[name] = expected_numbers(vaekit.load(root / name), *inputs)

    # A checkpoint of an unfinished run, written mid-epoch as `vaekit train --checkpoint-every` does:
    # the run is stopped at the end of its first epoch, before that epoch's checkpoint replaces it.
    train = load_dataset("embedded", "train", limit=200)
    ckpt_opts = [*SHARED, "--val-fraction", "0", "--epochs", "2", "--checkpoint-every", "2"]
    params = dict(latent_dim=3, hidden=(6,), epochs=2, batch_size=50, seed=1, val_fraction=0.0)
    part = root / ".checkpointed.partial"
    part.mkdir()

    class Stop(Exception):
        pass

    def stop(row):
        raise Stop

    try:
        vaekit.VAE(**params).fit(train.X, on_epoch=stop,
                                 checkpointer=Checkpointer(part, every_steps=2, extra={"argv": ["train", "--out", "checkpointed", *ckpt_opts]}))
    except Stop:
        pass
    expected["checkpointed"] = expected_numbers(vaekit.VAE(**params).fit(train.X), X, y)

    # A detector folder (table data, a categorical column, impute, the ELBO score).
    import pandas as pd

    from vaekit.anomaly import VAEDetector

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60), "colour": rng.choice(["red", "blue"], 60)})
    table.loc[3, "a"] = np.nan
    det = VAEDetector(latent_dim=2, hidden=(5,), epochs=1, batch_size=20, n_score_samples=4, impute=True,
                      likelihood="gaussian", standardize=True, categorical=["colour"], seed=2)
    det.fit(table)
    det.save(root / "detector")
    table.head(6).to_csv(root / "detector-rows.csv", index=False)
    expected["detector"] = {"decision_function": det.decision_function(table.head(6)).tolist()}

    (root / "expected.json").write_text(json.dumps(
        {"vaekit_version": vaekit.__version__, "inputs": "embedded test split, first 4 examples", "numbers": expected},
        indent=1) + "\n")


if __name__ == "__main__":
    main_(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/v1"))
