"""The importance-weighted objective: k = 1 is the ELBO, the bound grows with k, and its gradient
is the derivative of the bound itself (nothing detached), checked by finite differences."""

from __future__ import annotations

import math

import pytest
import torch

from vaekit.anomaly import scores
from vaekit.models import VAE, DensityModel, config_from_params
from vaekit.objectives import importance_weights, log_importance_weights


def _model(likelihood: str = "bernoulli", seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(config_from_params(kind="vae", input_shape=(12,), latent_dim=3, hidden=(16,), likelihood=likelihood)).double()


def _data(n: int = 8) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, 12), 0.3, dtype=torch.float64), generator=torch.Generator().manual_seed(1))


def test_k1_bound_has_the_elbo_as_its_expectation():
    model, x = _model(), _data(4)
    analytic = model.loss(x, n_samples=4000).terms["elbo"]  # analytic KL, many samples for E[log p(x|z)]
    torch.manual_seed(0)
    # 4000 independent k=1 bounds per example, drawn in one batch of repeated rows.
    bounds = model.loss(x.repeat(4000, 1), n_samples=1, objective="iwae").terms["iwae_bound"].view(4000, -1)
    se = bounds.std(0) / math.sqrt(len(bounds))
    assert torch.all((bounds.mean(0) - analytic).abs() < 4 * se + 0.05)


def test_bound_increases_with_k_on_average():
    model, x = _model(), _data(16)
    torch.manual_seed(0)
    means = []
    for k in (1, 5, 50, 500):
        means.append(model.loss(x.repeat(20, 1), n_samples=k, objective="iwae").terms["iwae_bound"].mean().item())
    assert means == sorted(means), means
    assert means[-1] - means[0] > 0.02  # a real gap even on an untrained model, not float noise


@pytest.mark.parametrize("which", ["encoder", "decoder"])
def test_gradient_equals_finite_difference_of_the_bound(which):
    # With the noise epsilon fixed (same seed), the bound is a deterministic function of the
    # parameters; autograd must give its exact derivative. A detach in the wrong place (on z, or
    # on the weights' log q term) changes the encoder gradient and fails this test.
    model, x = _model(), _data(6)
    param = next(getattr(model, which).parameters())

    def bound() -> torch.Tensor:
        torch.manual_seed(123)
        return -model.loss(x, n_samples=7, objective="iwae").loss

    value = bound()
    (grad,) = torch.autograd.grad(value, param)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    h = 1e-6
    for idx in [(0, 0), (1, 2), (2, 1)]:
        with torch.no_grad():
            param[idx] += h
        up = bound().item()
        with torch.no_grad():
            param[idx] -= 2 * h
        down = bound().item()
        with torch.no_grad():
            param[idx] += h
        fd = (up - down) / (2 * h)
        assert abs(fd - grad[idx].item()) < 1e-5 * max(1.0, abs(fd)), (idx, fd, grad[idx].item())


def test_iwae_training_from_the_estimator_improves_the_bound():
    import numpy as np

    from vaekit import VAE as Est
    from vaekit.data import load_dataset

    X = load_dataset("embedded", "train", limit=1000).X
    est = Est(objective="iwae", n_samples=5, epochs=3, hidden=(64,), latent_dim=8, seed=0).fit(X)
    bounds = [row["train_iwae_bound"] for row in est.history_]
    assert bounds[-1] > bounds[0] + 20, bounds
    assert np.isfinite(bounds).all()


# -- the one importance-weighting routine (objectives.importance_weights) ----------------------------


def test_given_noise_and_the_draws_last_layout_are_the_same_weights():
    """Anomaly scoring's common random numbers (given standard noise) and its (B, k) layout are the
    routine's own options, not a second formula: the same weights as z = loc + scale * eps by hand."""
    model, x = _model(), _data(5)
    eps = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    first = importance_weights(model, x, noise=eps)
    last = importance_weights(model, x, noise=eps, layout="draws_last")
    assert first.log_w.shape == (7, 5) and last.log_w.shape == (5, 7) and last.log_w.is_contiguous()
    torch.testing.assert_close(last.log_w, first.log_w.t(), rtol=0, atol=0)
    torch.testing.assert_close(last.bound(), first.bound(), rtol=0, atol=1e-12)
    q, p = model.inference(x), model.prior()
    z = q.loc + q.scale * eps[:, None, :]
    by_hand = model.log_likelihood(z, x) + p.log_prob(z) - q.log_prob(z)
    torch.testing.assert_close(first.log_w, by_hand)
    torch.testing.assert_close(first.log_w, first.log_likelihood + first.log_ratio, rtol=0, atol=0)


def test_the_iwae_objective_evaluation_and_anomaly_scores_share_the_routine():
    model, x = _model(), _data(6)
    torch.manual_seed(3)
    w = importance_weights(model, x, k=5, beta=0.5, dtype=torch.float64)
    torch.manual_seed(3)
    out = model.loss(x, n_samples=5, beta=0.5, objective="iwae")
    torch.testing.assert_close(out.terms["iwae_bound"], w.bound(), rtol=0, atol=1e-12)
    torch.manual_seed(3)
    torch.testing.assert_close(log_importance_weights(model, x, k=5, beta=0.5), w.log_w)
    # the anomaly score is minus the bound with the detector's fixed noise
    eps = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(scores.iw_nll(model, x, eps), -importance_weights(model, x, noise=eps).bound())


class _ContractOnly:
    """A VAE seen only through models.DensityModel: no decoder, prior module or encoder head to reach."""

    def __init__(self, model):
        self._m = model
        for name in ("encode", "decode", "loss", "inference", "prior", "generative", "log_likelihood", "kl", "kl_dims"):
            setattr(self, name, getattr(model, name))


def test_anomaly_scores_need_only_the_density_contract():
    model, x = _model(likelihood="gaussian"), _data(6)
    eps = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    only = _ContractOnly(model)
    assert isinstance(only, DensityModel)
    with torch.no_grad():
        for fn in (scores.iw_nll, scores.negative_elbo, scores.kl_divergence, scores.per_feature_nll):
            assert torch.equal(fn(only, x, eps), fn(model, x, eps)), fn.__name__
        assert torch.equal(scores.per_feature_nll(only, x), scores.per_feature_nll(model, x))
