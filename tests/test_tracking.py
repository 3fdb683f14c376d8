"""TensorBoard tracking: the event files hold what the fit measured, read back with tensorboard's reader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

import vaekit
from vaekit.data import load_dataset

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from vaekit.tracking import TensorBoardTracker  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("embedded", "test")
    return ds.X[:400], ds.y[:400]


def _read(log_dir) -> EventAccumulator:
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_event_files_hold_every_epoch_term_and_kl_per_dimension(tmp_path, digits) -> None:
    X, y = digits
    est = vaekit.VAE(latent_dim=4, hidden=(64,), epochs=3, batch_size=100, seed=0)
    tracker = TensorBoardTracker(tmp_path / "tb", est, X[:200], image_every=2, epochs=3)
    rows: list[dict] = []
    est.fit(X, on_epoch=lambda r: (rows.append(r), tracker(r)))
    tracker.close()
    acc = _read(tmp_path / "tb")
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/elbo", "train/kl", "val/loss", "val/log_likelihood", "lr"} <= tags
    assert [e.value for e in acc.Scalars("lr")] == pytest.approx([1e-3] * 3)
    for name, key in [("train/loss", "train_loss"), ("val/kl", "val_kl")]:
        logged = [(e.step, e.value) for e in acc.Scalars(name)]
        assert logged == [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in rows]
    # KL per dimension: what training logged on its validation split, summing to the KL term there.
    kl_dims = np.array([acc.Scalars(f"kl_dim/{j}")[-1].value for j in range(4)])
    np.testing.assert_allclose(kl_dims, [rows[-1][f"val_kl_dim_{j}"] for j in range(4)], rtol=1e-6)
    assert kl_dims.sum() == pytest.approx(rows[-1]["val_kl"], rel=1e-4)
    images = set(acc.Tags()["images"])
    assert images == {"samples", "reconstructions"}
    assert [e.step for e in acc.Images("samples")] == [1, 2, 3]  # first, every 2nd, last


def test_without_a_validation_split_kl_per_dimension_is_measured_on_the_given_examples(tmp_path, digits) -> None:
    X, _ = digits
    est = vaekit.VAE(latent_dim=3, hidden=(32,), epochs=1, batch_size=100, val_fraction=0.0)
    tracker = TensorBoardTracker(tmp_path / "tb", est, X[:200], image_every=0, epochs=1)
    est.fit(X, on_epoch=tracker)
    tracker.close()
    acc = _read(tmp_path / "tb")
    kl_dims = np.array([acc.Scalars(f"kl_dim/{j}")[-1].value for j in range(3)])
    # Their sum is the analytic KL(q(z|x) || N(0, I)) of those examples, recomputed here.
    with torch.no_grad():
        q = est.model_.inference(torch.from_numpy(X[:200]))
        expect = kl_divergence(q.base_dist, Normal(0.0, 1.0)).sum(-1).mean().item()
    assert kl_dims.sum() == pytest.approx(expect, rel=1e-4)
    assert acc.Tags()["images"] == []


def test_conditional_model_gets_a_row_per_class(tmp_path, digits) -> None:
    X, y = digits
    est = vaekit.ConditionalVAE(latent_dim=2, hidden=(32,), epochs=1, batch_size=100)
    tracker = TensorBoardTracker(tmp_path / "tb", est, X[:100], y[:100], image_every=1, n_images=20, epochs=1)
    est.fit(X, y, on_epoch=tracker)
    tracker.close()
    img = _read(tmp_path / "tb").Images("samples")[0]
    # 10 classes x 2 per class, 28-pixel images with 1-pixel padding: 10 rows of 29 + 1 pixels.
    assert img.height == 10 * 29 + 1 and img.width == 2 * 29 + 1


def test_bad_image_every_is_refused(tmp_path) -> None:
    with pytest.raises(vaekit.errors.ConfigError, match="image_every"):
        TensorBoardTracker(tmp_path, vaekit.VAE(), image_every=-1)


def test_missing_tensorboard_is_a_one_line_error(monkeypatch, tmp_path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # what an absent package looks like
    with pytest.raises(vaekit.errors.ConfigError, match=r"pip install 'vaekit\[tensorboard\]'"):
        TensorBoardTracker(tmp_path, vaekit.VAE())


def test_flat_square_examples_get_image_grids(tmp_path, digits) -> None:
    # A flat 784-vector is a 28 x 28 image by the rule the figures use (vaekit.plots.is_image_shape).
    X, _ = digits
    flat = X.reshape(len(X), -1)
    est = vaekit.VAE(latent_dim=2, hidden=(32,), epochs=1, batch_size=100)
    tracker = TensorBoardTracker(tmp_path / "tb", est, flat[:50], image_every=1, n_images=9, epochs=1)
    est.fit(flat, on_epoch=tracker)
    tracker.close()
    acc = _read(tmp_path / "tb")
    assert set(acc.Tags()["images"]) == {"samples", "reconstructions"}
    img = acc.Images("samples")[0]
    assert img.height == 3 * 29 + 1 and img.width == 3 * 29 + 1
