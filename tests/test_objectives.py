"""The free-bits objective (Kingma et al. 2016), checked in closed form on a tiny model.

KL term = sum_j max(lambda, E_batch[KL_j]): with lambda above every dimension's batch-mean KL it is
D * lambda and the encoder gets no gradient from it; with lambda = 0 it is the ELBO's KL.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaekit.estimators import VAE
from vaekit.models import build_model, config_from_params
from vaekit.train import TrainConfig, objective_options

LATENT = 3


def _model_and_data():
    torch.manual_seed(0)
    model = build_model(config_from_params("vae", input_shape=(6,), latent_dim=LATENT, hidden=(8,))).double()
    x = torch.bernoulli(torch.full((10, 6), 0.4, dtype=torch.float64))
    return model, x


def test_with_lambda_zero_the_kl_term_is_the_elbos():
    model, x = _model_and_data()
    torch.manual_seed(1)
    out = model.loss(x, objective="free-bits", free_bits=0.0)
    torch.manual_seed(1)
    elbo = model.loss(x, objective="elbo")
    torch.testing.assert_close(out.terms["free_bits_kl"], elbo.terms["kl"].mean())
    torch.testing.assert_close(out.loss, elbo.loss)


def test_above_every_dimensions_kl_the_term_is_d_lambda_and_the_encoder_gets_no_gradient_from_it():
    model, x = _model_and_data()
    q = model.inference(x)
    lam = float(model.kl_dims(q, q.rsample((1,))).mean(0).max().detach()) + 1.0
    out = model.loss(x, objective="free-bits", free_bits=lam)
    assert out.terms["free_bits_kl"].item() == pytest.approx(LATENT * lam)
    grads = torch.autograd.grad(out.terms["free_bits_kl"], list(model.encoder.parameters()), allow_unused=True)
    assert all(g is None or bool((g == 0).all()) for g in grads)
    # ... so the loss is the reconstruction term plus a constant.
    torch.testing.assert_close(out.loss, -out.terms["log_likelihood"].mean() + LATENT * lam)


def test_free_bits_is_one_option_from_the_estimator_to_the_loss():
    cfg = TrainConfig(objective="free-bits", free_bits=0.25)
    assert objective_options(cfg, beta=1.0)["free_bits"] == 0.25
    X = np.random.default_rng(0).random((64, 6)).round().astype(np.float32)
    est = VAE(latent_dim=2, hidden=8, epochs=1, batch_size=16, objective="free-bits", free_bits=0.25).fit(X)
    assert np.isfinite(est.score_samples(X)).all()
