"""The smaller defects found in the design review of issue 11, each pinned by a test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vaekit
from vaekit import distributions as D
from vaekit.checkpoint import Checkpointer, read_checkpoint
from vaekit.estimators import VAE, ConditionalVAE
from vaekit.evaluate import kl_per_dimension
from vaekit.models import build_model, config_from_params
from vaekit.train import EarlyStopping, TrainConfig, fit

RNG = np.random.default_rng(0)
X = RNG.random((60, 6)).astype(np.float32)


def test_conditional_fit_transform_encodes_with_the_labels():
    y = np.arange(60) % 3
    est = ConditionalVAE(epochs=1, hidden=4, latent_dim=2, batch_size=20, seed=1)
    Z = est.fit_transform(X, y)
    np.testing.assert_allclose(Z, est.encode(X, y), rtol=1e-6)
    assert Z.shape == (60, 2)


def test_kl_per_dimension_leaves_the_mode_it_found():
    model = build_model(config_from_params(input_shape=(6,), latent_dim=2, hidden=(4,), posterior="laplace"))
    model.train()
    kl = kl_per_dimension(model, torch.from_numpy(X))
    assert model.training and kl.shape == (2,) and (kl >= 0).all()
    model.eval()
    kl_per_dimension(model, torch.from_numpy(X))
    assert not model.training


def test_uniform_gaussian_mixture_declares_its_reparameterized_sample():
    loc = torch.zeros(3, 2, requires_grad=True)
    mix = D.UniformGaussianMixture(loc, torch.zeros(3, 2))
    assert mix.has_rsample
    mix.rsample((4,)).sum().backward()
    assert loc.grad is not None and loc.grad.abs().sum() > 0


def test_encoder_of_a_two_layer_model_reports_the_code_length(tmp_path):
    est = VAE(top_latent_dim=2, top_hidden=4, latent_dim=3, hidden=8, epochs=1, batch_size=20, val_fraction=0).fit(X)
    est.save(tmp_path / "enc", part="encoder")
    enc = vaekit.load_encoder(tmp_path / "enc")
    assert enc.latent_dim == 5 == enc.encode(X[:4]).shape[1]
    # The top layer's weights travel with the encoder half: its codes are the model's.
    np.testing.assert_allclose(enc.encode(X[:4]), est.encode(X[:4]), rtol=1e-6)
    assert vaekit.load_decoder(_saved(est, tmp_path / "dec", "decoder")).latent_dim == 5


def _saved(est, path, part):
    est.save(path, part=part)
    return path


def test_early_stopping_state_goes_into_the_checkpoint(tmp_path):
    model = build_model(config_from_params(input_shape=(6,), latent_dim=2, hidden=(4,)))
    stopper = EarlyStopping(patience=3)
    assert not stopper.update(5.0, model) and not stopper.update(6.0, model)
    opt = torch.optim.Adam(model.parameters())
    # Epoch 3 about to start: the two finished epochs' rows (a checkpoint is checked for them).
    history = [{"epoch": e, "train_loss": loss, "seconds": 0.1} for e, loss in ((1, 5.0), (2, 6.0))]
    Checkpointer(tmp_path).save(model, opt, epoch=3, step=0, history=history, sums={}, early_stopping=stopper)
    back = EarlyStopping(patience=3)
    back.load_state(*read_checkpoint(tmp_path)["early_stopping"])
    assert (back.best_loss, back.bad_epochs) == (5.0, 1)
    assert all(torch.equal(back.best_state[k], v) for k, v in stopper.best_state.items())
    # The count continues: two more epochs without improvement reach the patience of 3.
    assert not back.update(7.0, model) and back.update(7.0, model)


def test_a_resumed_run_with_early_stopping_ends_where_the_uninterrupted_one_does(tmp_path):
    cfg = TrainConfig(epochs=12, batch_size=20, early_stopping=2, lr=0.05, val_fraction=0.25, seed=3, device="cpu")
    torch.manual_seed(0)
    whole = build_model(config_from_params(input_shape=(6,), latent_dim=2, hidden=(4,)))
    init = {k: v.clone() for k, v in whole.state_dict().items()}
    full = fit(whole, torch.from_numpy(X), cfg=cfg, quiet=True)

    class Stop(Exception):
        pass

    def stop_after_2(row):
        if row["epoch"] == 2:
            raise Stop

    part = build_model(config_from_params(input_shape=(6,), latent_dim=2, hidden=(4,)))
    part.load_state_dict(init)
    ck = Checkpointer(tmp_path, every_steps=10_000)
    with pytest.raises(Stop):
        fit(part, torch.from_numpy(X), cfg=cfg, quiet=True, checkpointer=ck, on_epoch=stop_after_2)
    # The checkpoint of epoch 1 (the one of epoch 2 was not written): resume from it.
    resumed = build_model(config_from_params(input_shape=(6,), latent_dim=2, hidden=(4,)))
    rest = fit(resumed, torch.from_numpy(X), cfg=cfg, quiet=True, resume=read_checkpoint(tmp_path))
    assert len(rest) == len(full)
    for k, v in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v)


def test_resume_restores_cuda_random_states_when_saved(monkeypatch):
    from vaekit import train

    seen = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: seen.setdefault("states", states))
    model = build_model(config_from_params(input_shape=(6,), latent_dim=2, hidden=(4,)))
    opt = torch.optim.Adam(model.parameters())
    states = [torch.tensor([1], dtype=torch.uint8), torch.tensor([2], dtype=torch.uint8)]
    resume = {"model": model.state_dict(), "optimizer": opt.state_dict(), "sums": {}, "epoch": 2, "step": 0, "history": [],
              "rng": {"cpu": torch.get_rng_state(), "cuda0": states[0], "cuda1": states[1]}}
    train.restore(resume, model, opt, None, torch.device("cpu"))
    assert [int(s) for s in seen["states"]] == [1, 2]
