"""Write a small run folder, checkpoint and detector folder in today's model format.

tests/fixtures/vN pins what format N reads back: tests/test_format_v2.py (format 2, written before
format 3's one discriminator key) and tests/test_format_v3.py load each folder and compare with
expected.json, the numbers computed here right after writing. Run from the repository root:
``python scripts/make_format_fixtures.py [tests/fixtures/vN]`` (default: today's format's folder);
an older format's folder is never rewritten, since today's code writes today's format.
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
from vaekit.modelfile import FORMAT_VERSION

SHARED = ["--dataset", "embedded", "--limit", "200", "--hidden", "6", "--latent-dim", "3", "--epochs", "1",
          "--batch-size", "50", "--no-figures", "--no-report", "--quiet", "--seed", "1"]
# A checkpoint of an unfinished run, as `vaekit train --checkpoint-every 2` leaves it.
CKPT_OPTS = [*SHARED, "--val-fraction", "0", "--epochs", "2", "--checkpoint-every", "2"]
CKPT_PARAMS = dict(latent_dim=3, hidden=(6,), epochs=2, batch_size=50, seed=1, val_fraction=0.0)


def _sums(a: np.ndarray) -> list[float]:
    return a.reshape(len(a), -1).sum(1).tolist()


def expected_numbers(est, X: np.ndarray) -> dict:
    """What a VAE folder must still give when loaded by a later vaekit."""
    xt = torch.from_numpy(X)
    return {"encode": est.encode(X).tolist(), "reconstruct": _sums(est.reconstruct(X)),
            "iw_log_likelihood": iw_log_likelihood(est.model_, xt, None, k=7, seed=3).tolist(),
            "sample": _sums(est.sample(2, seed=4))}


def write_checkpoint(part: Path) -> None:
    """Stop a fit at the end of its first epoch, before that epoch's checkpoint replaces the mid-epoch one."""
    class Stop(Exception):
        pass

    def stop(row):
        raise Stop

    train = load_dataset("embedded", "train", limit=200)
    part.mkdir()
    try:
        vaekit.VAE(**CKPT_PARAMS).fit(train.X, on_epoch=stop, checkpointer=Checkpointer(
            part, every_steps=2, extra={"argv": ["train", "--out", "checkpointed", *CKPT_OPTS]}))
    except Stop:
        pass


def main_(root: Path) -> None:
    torch.set_num_threads(1)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    X = load_dataset("embedded", "test", limit=4).X
    expected = {}
    assert main(["train", "--out", str(root / "vae"), *SHARED, "--prior", "vamp", "--pseudo-inputs", "3"]) == 0
    (root / "vae" / "train.log").unlink()  # holds timestamps and absolute paths, nothing to test
    expected["vae"] = expected_numbers(vaekit.load(root / "vae"), X)

    write_checkpoint(root / ".checkpointed.partial")
    train = load_dataset("embedded", "train", limit=200)
    expected["checkpointed"] = expected_numbers(vaekit.VAE(**CKPT_PARAMS).fit(train.X), X)

    import pandas as pd

    from vaekit.anomaly import VAEDetector

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60), "colour": rng.choice(["red", "blue"], 60)})
    table.loc[3, "a"] = np.nan
    det = VAEDetector(latent_dim=2, hidden=(5,), n_steps=3, batch_size=20, n_score_samples=4, impute=True,
                      likelihood="gaussian", categorical=["colour"], seed=2)
    det.fit(table)
    det.save(root / "detector")
    table.head(6).to_csv(root / "detector-rows.csv", index=False)
    expected["detector"] = {"decision_function": det.decision_function(table.head(6)).tolist()}

    (root / "expected.json").write_text(json.dumps(
        {"vaekit_version": vaekit.__version__, "format_version": FORMAT_VERSION, "inputs": "embedded test split, first 4 examples",
         "numbers": expected}, indent=1) + "\n")


if __name__ == "__main__":
    main_(Path(sys.argv[1] if len(sys.argv) > 1 else f"tests/fixtures/v{FORMAT_VERSION}"))
