"""Every `vaekit train` option reaches the model or the trainer: each case trains briefly from the
CLI and checks what the option should change in the saved run."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from safetensors.torch import load_file

from vaekit.cli import main

BASE = ["train", "--limit", "400", "--epochs", "2", "--batch-size", "50", "--quiet", "--no-figures", "--no-report"]


def _train(tmp_path, *args):
    out = tmp_path / "run"
    assert main([*BASE, *args, "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    return out, cfg, rows


@pytest.mark.parametrize("args, check", [
    (["--activation", "tanh"], lambda c, w, r: c["model"]["activation"] == "tanh"),
    (["--likelihood", "gaussian", "--sigma", "0.5"], lambda c, w, r: np.allclose(w["likelihood.log_sigma"].exp().numpy(), 0.5)),
    (["--likelihood", "gaussian", "--learn-sigma"], lambda c, w, r: not np.allclose(w["likelihood.log_sigma"].numpy(), 0.0)),
    (["--posterior", "student-t", "--student-df", "3"], lambda c, w, r: c["model"]["posterior"] == {"name": "student-t", "df": 3}),
    (["--warmup-epochs", "2"], lambda c, w, r: c["params"]["warmup_epochs"] == 2),
    (["--objective", "iwae", "--mc-samples", "3"], lambda c, w, r: "train_iwae_bound" in r[0]),
    (["--model", "sparse-ae", "--sparsity", "kl", "--sparsity-weight", "0.1", "--sparsity-target", "0.1"],
     lambda c, w, r: c["model"]["sparsity"] == {"name": "kl", "weight": 0.1, "target": 0.1} and "train_sparsity" in r[0]),
    (["--model", "denoising-ae", "--noise", "gaussian", "--noise-level", "0.2"],
     lambda c, w, r: c["model"]["noise"] == {"name": "gaussian", "level": 0.2}),
    (["--optimizer", "sgd", "--momentum", "0.5", "--lr", "0.01"], lambda c, w, r: c["params"]["momentum"] == 0.5),
    (["--weight-decay", "0.001", "--clip-grad", "1.0"], lambda c, w, r: c["params"]["weight_decay"] == 0.001 and c["params"]["clip_grad"] == 1.0),
    (["--early-stopping", "1", "--epochs", "6"], lambda c, w, r: c["params"]["early_stopping"] == 1 and 1 <= len(r) <= 6),
    (["--max-minutes", "1e-6", "--epochs", "5"], lambda c, w, r: len(r) == 1),
    (["--precision", "bf16"], lambda c, w, r: c["params"]["precision"] == "bf16" and float(r[-1]["train_loss"]) < float(r[0]["train_loss"]) + 1e-9),
    (["--checkpoint-minutes", "0.0001"], lambda c, w, r: len(r) == 2),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_option_reaches_the_run(tmp_path, args, check):
    out, cfg, rows = _train(tmp_path, *args)
    weights = load_file(str(out / "model.safetensors"))
    assert check(cfg, weights, rows)
    assert not (out / "checkpoint.safetensors").exists()  # a finished run keeps no checkpoint


def test_standardize_stores_the_scaler(tmp_path):
    X = np.random.default_rng(0).normal(5.0, 3.0, size=(300, 4)).astype(np.float32)
    np.save(tmp_path / "t.npy", X)
    out, cfg, rows = _train(tmp_path, "--dataset", str(tmp_path / "t.npy"), "--likelihood", "gaussian", "--standardize")
    w = load_file(str(out / "model.safetensors"))
    assert np.allclose(w["scaler.mean"].numpy(), X[:270].mean(0), atol=0.6)  # the 90% training split
    assert np.all(w["scaler.scale"].numpy() > 1.5)


def test_early_stopping_keeps_the_best_weights():
    import torch

    from vaekit import Autoencoder
    from vaekit.train import evaluate_loss

    rng = np.random.default_rng(0)
    X, X_val = rng.random((200, 8)).astype(np.float32), rng.random((100, 8)).astype(np.float32)
    # A deterministic model and a learning rate high enough that the validation loss does not
    # improve every epoch: the weights kept must be those of the best epoch, not the last.
    est = Autoencoder(hidden=(16,), latent_dim=2, likelihood="gaussian", lr=0.05, epochs=40, batch_size=20,
                      early_stopping=2, seed=0).fit(X, X_val=X_val)
    val = [row["val_loss"] for row in est.history_]
    assert len(val) < 40, "the run never stopped early; make the case noisier"
    final = evaluate_loss(est.model_, torch.from_numpy(X_val), None)["loss"]
    assert final == pytest.approx(min(val), rel=1e-6)
    assert min(val) < val[-1]


@pytest.mark.parametrize("args, unit", [
    (["--model", "ae", "--likelihood", "gaussian"], "[squared error/example]"),
    (["--model", "ae"], "[nats/example]"),
    ([], "[nats/example]"),
])
def test_epoch_lines_state_the_unit_of_the_loss(tmp_path, args, unit):
    out, _, _ = _train(tmp_path, *args)
    epoch_lines = [line for line in (out / "train.log").read_text().splitlines() if "epoch 2/2" in line]
    assert epoch_lines and unit in epoch_lines[0]


@pytest.mark.parametrize("native, rank", [(False, 0), (True, 0), (False, 1)])
def test_bf16_on_a_cpu_without_native_bfloat16_warns_that_float32_is_faster(monkeypatch, native, rank):
    import warnings

    import torch

    from vaekit import VAE, train

    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda native=native: native)
    # Under torchrun only rank 0 warns (here a one-process "world" that calls itself rank 1).
    monkeypatch.setattr(train, "_distributed", lambda: (rank, 1))
    X = np.random.default_rng(0).random((32, 12)).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        VAE(latent_dim=2, hidden=[8], epochs=1, batch_size=16, precision="bf16", device="cpu", seed=0).fit(X, progress=False)
    slow = [w for w in caught if "no native bfloat16" in str(w.message)]
    assert len(slow) == (0 if native or rank else 1)
    if slow:
        assert "--precision float32" in str(slow[0].message)
