"""--max-steps and --max-minutes stop inside an epoch; --log-every writes rows of the terms every N steps.

With the flags off a run is the run it was: the epoch rows with --log-every or with an unreached
--max-steps are bitwise those without. A partial epoch's row is the mean over the steps it took,
and a run stopped inside an epoch resumes from there to the numbers of a run never stopped.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from vaekit.checkpoint import Checkpointer, read_checkpoint
from vaekit.cli import main
from vaekit.models import build_model, config_from_params
from vaekit.train import TrainConfig, fit

N, BATCH = 100, 10  # 10 steps an epoch


def _fit(log=None, resume=None, checkpointer=None, **options):
    torch.manual_seed(0)
    model = build_model(config_from_params("vae", input_shape=(6,), latent_dim=2, hidden=(8,)))
    X = torch.from_numpy(np.random.default_rng(0).random((N, 6)).round().astype(np.float32))
    cfg = TrainConfig(**{"epochs": 3, "batch_size": BATCH, "val_fraction": 0.0, "device": "cpu", **options})
    rows: list[dict] = []
    history = fit(model, X, cfg=cfg, on_epoch=rows.append, log=log, checkpointer=checkpointer, resume=resume, quiet=True)
    return history, rows, model


def _same(a: list[dict], b: list[dict]) -> None:
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in a]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in b]


def test_max_steps_stops_inside_an_epoch_and_its_row_is_the_mean_of_the_steps_taken():
    said: list[str] = []
    history, rows, _ = _fit(log=said.append, max_steps=15, log_every=1)
    assert [r["epoch"] for r in history] == [1, 2]
    steps = [r for r in rows if "step" in r]
    assert [r["step"] for r in steps] == list(range(1, 16))
    assert steps[-1]["epoch"] == pytest.approx(1.5)
    partial = [r["train_loss"] for r in steps[10:]]  # equal batches: the epoch's mean is the steps' mean
    assert history[-1]["train_loss"] == pytest.approx(sum(partial) / len(partial), rel=1e-6)
    assert any("stopping at step 5 of 10 in epoch 2: --max-steps 15 reached" in s for s in said)


def test_max_steps_on_an_epoch_boundary_ends_after_that_epoch():
    said: list[str] = []
    history, _, _ = _fit(log=said.append, max_steps=20)
    assert len(history) == 2 and any("stopping after epoch 2: --max-steps 20 reached" in s for s in said)


def test_max_minutes_is_honoured_inside_an_epoch():
    history, rows, _ = _fit(max_minutes=1e-9, log_every=1)
    assert len(history) == 1 and [r["step"] for r in rows if "step" in r] == [1]


def test_off_or_unreached_the_flags_leave_the_epoch_rows_bitwise_as_they_were():
    plain, _, model = _fit()
    for options in ({"log_every": 3}, {"max_steps": 1000}, {"max_minutes": 1000.0}):
        history, rows, other = _fit(**options)
        _same(history, plain)
        _same([r for r in rows if "step" not in r], plain)
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


def test_log_every_rows_are_window_means_with_a_step_column():
    _, rows, _ = _fit(log_every=4)
    steps = [r for r in rows if "step" in r]
    assert [r["step"] for r in steps] == [4, 8, 12, 16, 20, 24, 28]
    assert [r["epoch"] for r in steps][:3] == [pytest.approx(0.4), pytest.approx(0.8), pytest.approx(1.2)]
    assert {"lr", "train_loss", "train_elbo", "train_kl"} <= set(steps[0]) and "seconds" not in steps[0]


def test_a_run_stopped_by_max_steps_resumes_inside_the_epoch_to_the_same_numbers(tmp_path):
    whole, _, ref = _fit(max_steps=25)
    _fit(max_steps=15, checkpointer=Checkpointer(tmp_path))
    ckpt = read_checkpoint(tmp_path)
    assert (ckpt["epoch"], ckpt["step"], len(ckpt["history"])) == (2, 5, 1)
    resumed, _, model = _fit(max_steps=25, resume=ckpt)
    _same(resumed, whole)
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), model.state_dict().values()))


def test_the_cli_writes_step_rows_beside_the_epoch_rows(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--limit", "300", "--epochs", "2", "--batch-size", "50", "--quiet", "--no-figures", "--no-report",
            "--threads", "1", "--out", str(out)]
    assert main([*args, "--log-every", "2", "--max-steps", "7"]) == 0
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [r for r in rows if r["step"]]
    assert [int(r["step"]) for r in steps] == [2, 4, 6]
    assert [r["epoch"] for r in rows if not r["step"]] == ["1", "2"]
    assert all(r["train_loss"] for r in rows)


def test_log_every_rows_reach_tensorboard_against_the_step(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = tmp_path / "tb"
    args = ["train", "--objective", "beta-tcvae", "--limit", "300", "--epochs", "1", "--batch-size", "50", "--hidden", "16",
            "--latent-dim", "3", "--quiet", "--no-figures", "--no-report", "--threads", "1", "--log-every", "2",
            "--tensorboard", str(tb), "--tensorboard-images", "1", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("step/tc")] == [2, 4, 6]
    assert {"step/loss", "step/mi", "step/dim_kl", "train/tc"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Images("samples")] == [1]  # images per epoch, not per step row


def test_cosine_anneals_over_max_steps():
    from vaekit.train import scheduled_lr

    cfg = TrainConfig(lr=1e-3, epochs=1000, lr_schedule="cosine", lr_final=0.01, max_steps=200)
    assert scheduled_lr(cfg, 0.5, 0, steps=100) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))  # half the steps taken
    assert scheduled_lr(cfg, 0.5, 0, steps=200) == pytest.approx(1e-5)
    _, rows, _ = _fit(max_steps=20, epochs=100, lr_schedule="cosine", log_every=1, lr=1e-2)
    seen = [r["lr"] for r in rows if "step" in r]
    assert seen[0] == pytest.approx(1e-2) and seen[-1] == pytest.approx(scheduled_lr(TrainConfig(
        lr=1e-2, epochs=100, lr_schedule="cosine", max_steps=20), 1.9, 0, steps=19))
    assert seen[-1] < 2e-4
