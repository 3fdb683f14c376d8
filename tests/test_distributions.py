"""Likelihoods, posterior families and KL terms, checked against closed forms written here,
against torch.distributions' own registry, and against SciPy densities / numerical quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch.distributions import Bernoulli, Independent, Laplace, Normal, kl_divergence

from vaekit import distributions as D
from vaekit.errors import ConfigError
from vaekit.models import bernoulli_kl, build_model, config_from_params


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- KL of the Gaussian posterior ------------------------------------------------------------------


def test_gaussian_kl_matches_closed_form_written_here():
    g = _gen(1)
    mu = torch.randn(7, 5, generator=g, dtype=torch.float64) * 2
    log_var = torch.randn(7, 5, generator=g, dtype=torch.float64)
    sigma2 = log_var.exp()
    # 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2), Kingma & Welling (2014) appendix B
    expected = np.array([
        0.5 * sum(m * m + s - 1 - math.log(s) for m, s in zip(mu_row.tolist(), s_row.tolist()))
        for mu_row, s_row in zip(mu, sigma2)
    ])
    got = D.gaussian_kl_to_standard_normal(mu, log_var)
    assert got.shape == (7,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_gaussian_kl_matches_torch_registry_and_is_zero_at_the_prior():
    g = _gen(2)
    mu, log_var = torch.randn(11, 4, generator=g), torch.randn(11, 4, generator=g)
    q = D.posterior("normal", mu, log_var)
    p = D.standard_normal(4)
    # torch's own Normal-Normal KL, on plain Independent distributions (not vaekit's registration)
    plain = kl_divergence(Independent(Normal(mu, torch.exp(0.5 * log_var)), 1), Independent(Normal(torch.zeros(4), torch.ones(4)), 1))
    torch.testing.assert_close(D.gaussian_kl_to_standard_normal(mu, log_var), plain, rtol=1e-5, atol=1e-5)
    # the registered KL of a Normal posterior is the hot-path form, from q's own log_var, bit for bit
    assert torch.equal(kl_divergence(q, p), D.gaussian_kl_to_standard_normal(mu, log_var))
    torch.testing.assert_close(D.kl_term(q, p), kl_divergence(q, p))
    zero = D.gaussian_kl_to_standard_normal(torch.zeros(3, 4), torch.zeros(3, 4))
    assert torch.all(zero == 0)


def test_monte_carlo_kl_path_agrees_with_analytic_on_a_normal():
    g = _gen(3)
    mu, log_var = torch.randn(6, 3, generator=g, dtype=torch.float64), 0.5 * torch.randn(6, 3, generator=g, dtype=torch.float64)
    q, p = D.posterior("normal", mu, log_var), D.standard_normal(3, dtype=torch.float64)
    torch.manual_seed(0)
    L = 20000
    z = q.rsample((L,))
    mc = D.kl_term(q, p, z, analytic=False)
    exact = D.kl_term(q, p, analytic=True)
    per_sample = q.log_prob(z) - p.log_prob(z)  # (L, B): the estimator's spread sets the tolerance
    se = per_sample.std(0) / math.sqrt(L)
    assert mc.shape == exact.shape == (6,)
    assert torch.all((mc - exact).abs() < 5 * se + 1e-9), (mc, exact, se)
    # a 2-D z is one sample per example, returned as is
    one = D.kl_term(q, p, z[0], analytic=False)
    torch.testing.assert_close(one, per_sample[0])
    with pytest.raises(ValueError):
        D.kl_term(q, p, None, analytic=False)


def _kl_by_quadrature(logq, loc: float, scale: float) -> float:
    """KL(q || N(0,1)) for a 1-D density by numerical integration."""
    f = lambda z: math.exp(logq(z)) * (logq(z) - stats.norm.logpdf(z))  # noqa: E731
    val, _ = integrate.quad(f, loc - 60 * scale, loc + 60 * scale, limit=400, points=[loc])
    return val


@pytest.mark.parametrize("family", ["student-t", "logistic"])
def test_monte_carlo_kl_of_families_without_closed_form_matches_quadrature(family):
    loc = torch.tensor([[0.7, -1.2]], dtype=torch.float64)
    log_var = torch.tensor([[math.log(0.3**2), math.log(1.4**2)]], dtype=torch.float64)
    q, p = D.posterior(family, loc, log_var, df=5.0), D.standard_normal(2, dtype=torch.float64)
    assert not D.has_analytic_kl(q, p)
    scales = (0.3, 1.4)
    if family == "student-t":
        dens = [lambda z, m=m, s=s: stats.t.logpdf(z, 5.0, m, s) for m, s in zip(loc[0].tolist(), scales)]
    else:
        dens = [lambda z, m=m, s=s: stats.logistic.logpdf(z, m, s) for m, s in zip(loc[0].tolist(), scales)]
    exact = sum(_kl_by_quadrature(f, m, s) for f, m, s in zip(dens, loc[0].tolist(), scales))
    torch.manual_seed(0)
    L = 40000
    z = q.rsample((L,))
    mc = D.kl_term(q, p, z, analytic=False)
    se = (q.log_prob(z) - p.log_prob(z)).std(0) / math.sqrt(L)
    assert abs(mc.item() - exact) < 5 * se.item(), (mc.item(), exact, se.item())


@pytest.mark.parametrize("family", D.POSTERIORS)
def test_posterior_log_prob_matches_scipy(family):
    loc = torch.tensor([[0.3, -2.0, 1.0]], dtype=torch.float64)
    scale = torch.tensor([[0.5, 1.0, 2.0]], dtype=torch.float64)
    q = D.posterior(family, loc, 2 * scale.log(), df=4.0)
    z = torch.tensor([[0.1, -1.0, 3.0]], dtype=torch.float64)
    ref = {
        "normal": lambda x, m, s: stats.norm.logpdf(x, m, s),
        "laplace": lambda x, m, s: stats.laplace.logpdf(x, m, s),
        "student-t": lambda x, m, s: stats.t.logpdf(x, 4.0, m, s),
        "logistic": lambda x, m, s: stats.logistic.logpdf(x, m, s),
    }[family]
    expected = sum(ref(x, m, s) for x, m, s in zip(z[0].tolist(), loc[0].tolist(), scale[0].tolist()))
    assert q.event_shape == (3,) and q.batch_shape == (1,)
    assert q.log_prob(z).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("family", D.POSTERIORS)
def test_samples_are_centred_on_loc(family):
    # encode() returns the location as "the posterior mean": true for every family offered.
    loc = torch.tensor([[1.5, -0.5]])
    q = D.posterior(family, loc, torch.zeros(1, 2), df=5.0)
    torch.manual_seed(0)
    z = q.sample((20000,))
    assert torch.allclose(z.mean(0), loc, atol=0.06)


def test_unknown_posterior_is_a_config_error():
    with pytest.raises(ConfigError, match="posterior"):
        D.posterior("cauchy", torch.zeros(1, 2), torch.zeros(1, 2))


# -- gradients through the reparameterized sample --------------------------------------------------


@pytest.mark.parametrize("family", D.POSTERIORS)
def test_gradients_flow_through_rsample_to_loc_and_scale(family):
    loc = torch.randn(4, 3, generator=_gen(4)).requires_grad_()
    log_var = (0.3 * torch.randn(4, 3, generator=_gen(5))).requires_grad_()
    q = D.posterior(family, loc, log_var)
    torch.manual_seed(0)
    z = q.rsample((8,))
    assert z.shape == (8, 4, 3)
    (z.pow(2).sum() + q.log_prob(z).sum()).backward()
    for leaf in (loc, log_var):
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all()
        assert (leaf.grad.abs() > 0).all()


@pytest.mark.parametrize("family", D.POSTERIORS)
def test_gradients_reach_every_encoder_and_decoder_parameter(family):
    model = build_model(config_from_params(input_shape=(12,), latent_dim=3, hidden=(8,), posterior=family))
    x = torch.rand(16, 12, generator=_gen(6))
    torch.manual_seed(0)
    model.loss(x, n_samples=2).loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


# -- the sparse autoencoder's KL penalty ------------------------------------------------------------


def test_bernoulli_kl_matches_its_formula_and_torch():
    rho = 0.05
    rho_hat = torch.tensor([0.01, 0.05, 0.2, 0.5, 0.93], dtype=torch.float64)
    expected = [rho * math.log(rho / r) + (1 - rho) * math.log((1 - rho) / (1 - r)) for r in rho_hat.tolist()]
    got = bernoulli_kl(rho, rho_hat)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(got, kl_divergence(Bernoulli(probs=torch.full_like(rho_hat, rho)), Bernoulli(probs=rho_hat)))
    assert abs(got[1]) < 1e-12  # KL(rho || rho) = 0
    # activations of exactly 0 or 1 (a saturated sigmoid) stay finite thanks to the clamp
    assert torch.isfinite(bernoulli_kl(rho, torch.tensor([0.0, 1.0]))).all()


# -- likelihoods ------------------------------------------------------------------------------------


def test_bernoulli_likelihood_is_binary_cross_entropy_per_example():
    logits = torch.randn(5, 1, 4, 4, generator=_gen(7))
    x = torch.rand(5, 1, 4, 4, generator=_gen(8))
    lik = D.BernoulliLikelihood()
    px = lik(logits)
    assert px.batch_shape == (5,) and px.event_shape == (1, 4, 4)
    p = torch.sigmoid(logits)
    expected = (x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(-1)
    torch.testing.assert_close(px.log_prob(x), expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(lik.mean(logits), p)


def test_gaussian_likelihood_log_prob_and_learned_sigma():
    mean = torch.randn(3, 6, generator=_gen(9), dtype=torch.float64)
    x = torch.randn(3, 6, generator=_gen(10), dtype=torch.float64)
    lik = D.GaussianLikelihood((6,), sigma=0.7).double()
    expected = (-0.5 * ((x - mean) / 0.7) ** 2 - math.log(0.7) - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(lik(mean).log_prob(x), expected)
    assert not any(True for _ in lik.parameters())  # fixed sigma is a buffer, not trained
    learned = D.GaussianLikelihood((6,), sigma=0.7, learn_sigma=True)
    assert [n for n, _ in learned.named_parameters()] == ["log_sigma"]
    with pytest.raises(ConfigError, match="sigma"):
        D.GaussianLikelihood((6,), sigma=0.0)


def test_continuous_bernoulli_is_a_normalized_density():
    lik = D.ContinuousBernoulliLikelihood()
    for logit in (-3.0, -0.2, 0.0, 1.5):
        px = lik(torch.tensor([[logit]], dtype=torch.float64))
        total, _ = integrate.quad(lambda v, px=px: math.exp(px.log_prob(torch.tensor([[v]], dtype=torch.float64)).item()), 0, 1)
        assert total == pytest.approx(1.0, abs=1e-6)


def test_make_likelihood_rejects_unknown_names():
    with pytest.raises(ConfigError, match="likelihood"):
        D.make_likelihood("poisson", (4,))
    assert isinstance(D.make_likelihood("gaussian", (4,)), D.GaussianLikelihood)


def test_standard_normal_prior():
    p = D.standard_normal(3)
    assert p.event_shape == (3,)
    z = torch.tensor([0.5, -1.0, 2.0])
    assert p.log_prob(z).item() == pytest.approx(Independent(Normal(torch.zeros(3), torch.ones(3)), 1).log_prob(z).item())


@pytest.mark.parametrize("event", [(7,), (1, 4, 6)])
@pytest.mark.parametrize("name", ["bernoulli", "continuous-bernoulli", "gaussian"])
def test_likelihood_log_prob_broadcasts_samples_without_copying_x(name, event):
    # The fast path (a batched dot product for Bernoulli) must equal torch.distributions on an
    # explicit copy of x per sample, for tables and images alike.
    from vaekit.distributions import make_likelihood

    torch.manual_seed(0)
    lik = make_likelihood(name, event, sigma=0.7)
    S, B = 5, 3
    params = 3 * torch.randn(S, B, *event, dtype=torch.float64)
    x = torch.rand(B, *event, dtype=torch.float64)
    if name == "bernoulli":
        x = torch.bernoulli(x)
    got = lik.log_prob(params, x)
    expected = torch.stack([lik(params[s]).log_prob(x) for s in range(S)])
    assert got.shape == (S, B)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-8)


def test_a_posterior_is_a_distribution_that_keeps_the_encoders_parameters():
    g = _gen(9)
    loc, log_var = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    lap = D.posterior("laplace", loc, log_var)
    assert isinstance(lap, Independent) and lap.batch_shape == (4,) and lap.event_shape == (3,)
    assert lap.loc is loc and lap.log_var is log_var and torch.equal(lap.mean, loc)
    # a family without vaekit's hot path gets torch's closed form, summed over dimensions
    plain = kl_divergence(Laplace(loc, torch.exp(0.5 * log_var)), Normal(torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)))
    torch.testing.assert_close(kl_divergence(lap, D.standard_normal(3, dtype=torch.float64)), plain.sum(-1))
    eps = torch.randn(5, 3, generator=g, dtype=torch.float64)
    assert torch.equal(lap.reparameterize(eps), loc + torch.exp(0.5 * log_var) * eps[:, None, :])
    bounded = lap.with_log_var_bounds(-0.5, 0.5)
    assert torch.equal(bounded.log_var, log_var.clamp(-0.5, 0.5)) and bounded.family == "laplace"
    assert torch.equal(D.factors(lap.transposed()).loc, loc.t())
    wide = lap.expand((2, 4))  # a Distribution like torch's own: it expands
    assert wide.batch_shape == (2, 4) and wide.log_prob(torch.zeros(3, dtype=torch.float64)).shape == (2, 4)
    with pytest.raises(ConfigError, match="independent dimensions"):
        D.factors(D.mixture_of_posteriors(lap))
