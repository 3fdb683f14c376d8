"""One suite over everything registered (issue 23), as torch's test_distributions runs the same
property tests on every distribution it lists.

Every valid likelihood x posterior x prior combination of ``vaekit.registry`` is built as a tiny
VAE over 4-pixel images and checked for: the shapes of its loss terms (under every registered
objective), importance sampling with k = 1 equal to the ELBO in expectation, normalization where
the space is small enough to sum (a likelihood flagged ``discrete``: sum over all 16 binary images
of p(x) = 1), ``kl_per_dimension`` against the prior's own density or refused with a ConfigError,
and a save / load round trip with identical numbers. A newly registered component is picked up
without editing this file; a combination whose config refuses to build is not valid and is skipped.
Option values come from the declarations in ``vaekit.options``; ``TINY`` shrinks the ones whose
defaults make a large model, by option name.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.distributions import Distribution

from vaekit.errors import ConfigError
from vaekit.estimators import VAE as VAEEstimator
from vaekit.metrics import iw_log_likelihood, kl_per_dimension
from vaekit.models import DensityModel, VAEConfig, build_model, component_options
from vaekit.objectives import log_importance_weights
from vaekit.registry import LIKELIHOODS, OBJECTIVES, POSTERIORS, PRIORS
from vaekit.runfolder import load

PIXELS, LATENT = 4, 2
TINY = {"ar_hidden": 6, "n_pseudo_inputs": 3, "top_latent_dim": 1, "top_hidden": (4,)}
ALL_IMAGES = torch.tensor(list(itertools.product([0.0, 1.0], repeat=PIXELS)), dtype=torch.float64)  # all 16


def _config(lik, post, prior) -> VAEConfig:
    return VAEConfig(input_shape=(PIXELS,), latent_dim=LATENT, hidden=(8,),
                     likelihood={"name": lik.name, **component_options(lik, TINY)},
                     posterior={"name": post.name, **component_options(post, TINY)},
                     prior={"name": prior.name, **component_options(prior, TINY)})


def _combinations() -> list:
    out = []
    for lik, post, prior in itertools.product(LIKELIHOODS, POSTERIORS, PRIORS):
        if "vae" not in lik.families:
            continue
        try:
            _config(lik, post, prior)
        except ConfigError:
            continue  # the config refuses it: not a valid combination
        out.append(pytest.param(lik, post, prior, id=f"{lik.name}|{post.name}|{prior.name}"))
    return out


COMBINATIONS = _combinations()


def _model(lik, post, prior, dtype=torch.float64, spread: float | None = 0.5):
    """A tiny VAE, its weights drawn from N(0, spread^2) well away from their initial values (a
    fresh model's symmetric start, e.g. VampPrior pseudo-inputs all near one image, hides defects);
    ``spread=None`` keeps the initial weights."""
    torch.manual_seed(0)
    model = build_model(_config(lik, post, prior)).to(dtype)
    with torch.no_grad():
        for p in model.parameters() if spread else ():
            p.normal_(0.0, spread)
    return model.eval()


def test_every_declared_component_is_implemented():
    for registry in (LIKELIHOODS, POSTERIORS, PRIORS, OBJECTIVES):
        for component in registry:
            assert component.impl is not None, f"{component.kind} {component.name} is declared but not implemented"
    assert len(COMBINATIONS) >= len(LIKELIHOODS.names("vae")) * len(POSTERIORS.names())


@pytest.mark.parametrize("lik, post, prior", COMBINATIONS)
def test_loss_terms_have_per_example_shapes(lik, post, prior):
    model = _model(lik, post, prior).train()
    x = ALL_IMAGES[:5]
    for objective in OBJECTIVES:
        try:
            out = model.loss(x, objective=objective.name, n_samples=2)
        except ConfigError as refused:  # an objective may refuse a component (said in words)
            assert str(refused)
            continue
        assert out.loss.shape == () and torch.isfinite(out.loss), objective.name
        for name, term in out.terms.items():
            assert term.shape in ((5,), ()), f"{objective.name}: term {name} has shape {tuple(term.shape)}"
        out.loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        model.zero_grad()


@pytest.mark.parametrize("lik, post, prior", COMBINATIONS)
def test_importance_sampling_with_one_sample_is_the_elbo_in_expectation(lik, post, prior):
    model = _model(lik, post, prior)
    x = ALL_IMAGES.repeat(150, 1)  # 2400 draws
    torch.manual_seed(1)
    with torch.no_grad():
        iw = log_importance_weights(model, x, k=1)[0]
        elbo = model.loss(x, objective="elbo").terms["elbo"]
    se = (iw.var() / len(x) + elbo.var() / len(x)).sqrt()
    assert abs(iw.mean() - elbo.mean()) < 5 * se + 1e-9


@pytest.mark.parametrize("lik, post, prior", [c for c in COMBINATIONS if c.values[0].discrete])
def test_a_discrete_likelihood_sums_to_one_over_all_images(lik, post, prior):
    # Initial weights: a posterior far from the true one makes IW's bias at moderate k larger than
    # the tolerance (the sum is a lower bound in expectation that reaches 1 as k grows).
    model = _model(lik, post, prior, spread=None)
    log_p = iw_log_likelihood(model, ALL_IMAGES, k=1000, seed=0, compile=False)
    assert float(log_p.exp().sum()) == pytest.approx(1.0, abs=0.03)


def _kl_per_dimension_by_quadrature(model, x: torch.Tensor, draws: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """E_x E_q[log q(z_j|x) - log p(z_j)], p(z_j) integrated from the prior's joint density
    ``prior().log_prob`` over the other dimension on a grid: a reference that knows nothing of
    ``Prior.marginals`` (two latent dimensions, so the integral is one-dimensional). Returns the
    estimates and their Monte-Carlo standard errors."""
    torch.manual_seed(2)
    grid = torch.linspace(-12.0, 12.0, 1201, dtype=torch.float64)
    out, se = [], []
    with torch.no_grad():
        prior, q = model.prior(), model.inference(x).base_dist
        z = q.sample((draws,))  # (S, B, 2)
        log_q = q.log_prob(z)
        assert z.shape[-1] == 2, "the reference integrates over one other dimension"
        for j in range(2):
            t = z[..., j].reshape(-1)
            log_p = []
            for part in t.split(256):
                pts = torch.empty(len(part), len(grid), 2, dtype=torch.float64)
                pts[..., j], pts[..., 1 - j] = part[:, None], grid[None, :]
                log_p.append(prior.log_prob(pts).logsumexp(-1) + (grid[1] - grid[0]).log())
            terms = (log_q[..., j] - torch.cat(log_p).view(log_q.shape[:2])).mean(1)  # (S,): one draw per x each
            out.append(float(terms.mean()))
            se.append(float(terms.std() / len(terms) ** 0.5))
    return np.array(out), np.array(se)


# The likelihood does not enter KL(q(z_j|x) || p(z_j)): one per posterior x prior pair.
@pytest.mark.parametrize("lik, post, prior", list({(c.values[1].name, c.values[2].name): c for c in COMBINATIONS}.values()))
def test_kl_per_dimension_is_against_the_models_prior_or_refused(lik, post, prior):
    model = _model(lik, post, prior, spread=0.4)
    try:
        kl = kl_per_dimension(model, ALL_IMAGES, n_samples=1024).numpy()
    except ConfigError as refused:
        assert "not available" in str(refused)
        return
    reference, se = _kl_per_dimension_by_quadrature(model, ALL_IMAGES)
    assert (abs(kl - reference) < 0.02 + 4 * se).all(), f"kl_per_dimension {kl} against the prior's own marginals {reference} (se {se})"


@pytest.mark.parametrize("lik, post, prior", COMBINATIONS)
def test_save_and_load_give_identical_numbers(lik, post, prior, tmp_path):
    model = _model(lik, post, prior, dtype=torch.float32)
    est = VAEEstimator()
    est.model_, est.input_shape_, est.n_features_in_ = model, (PIXELS,), PIXELS
    est.save(tmp_path / "run")
    loaded = load(tmp_path / "run").model_
    assert loaded.config == model.config
    x = ALL_IMAGES.float()
    with torch.no_grad():
        torch.manual_seed(3)
        before = log_importance_weights(model, x, k=8)
        torch.manual_seed(3)
        after = log_importance_weights(loaded, x, k=8)
    assert torch.equal(before, after)


@pytest.mark.parametrize("lik, post, prior", [c for c in COMBINATIONS if c.values[2].standard_normal])
def test_per_dimension_kls_add_up_to_the_kl_under_a_standard_normal_prior(lik, post, prior):
    model = _model(lik, post, prior)
    q = model.inference(ALL_IMAGES)
    z = q.rsample((8,))
    torch.testing.assert_close(model.kl_dims(q, z).sum(-1), model.kl(q, z))


@pytest.mark.parametrize("lik, post, prior", COMBINATIONS)
def test_the_density_contract_speaks_in_distributions(lik, post, prior):
    """models.DensityModel: q(z|x), p(z) and p(x|z) are torch Distributions of the declared shapes, the
    KLs take (q, z) and nothing else, and encode is the posterior's code."""
    model = _model(lik, post, prior)
    assert isinstance(model, DensityModel)
    x, dim = ALL_IMAGES[:5], model.config.code_dim
    q, p = model.inference(x), model.prior()
    assert isinstance(q, Distribution) and isinstance(p, Distribution)
    assert q.batch_shape == (5,) and q.event_shape == (dim,) and p.event_shape == (dim,)
    z = q.rsample((3,))
    assert z.shape == (3, 5, dim) and p.log_prob(z).shape == (3, 5)
    assert model.generative(z).batch_shape == (3, 5) and model.generative(z[0]).event_shape == (PIXELS,)
    torch.testing.assert_close(model.generative(z).log_prob(x), model.log_likelihood(z, x))
    assert model.kl(q, z).shape == (5,) and model.encode(x).shape == (5, dim)


@pytest.mark.parametrize("lik, post, prior", COMBINATIONS)
def test_under_bf16_autocast_the_networks_run_in_bf16_but_every_density_in_float32(lik, post, prior):
    """``--precision bf16`` wraps the training step in autocast. bfloat16 keeps 8 significant bits, so
    a log-density of -500 computed in it is off by up to 1 nat and an IW log-weight is rounded to
    steps of 0.5: densities, KLs and logsumexps must see float32 whatever the networks ran in. Each
    objective's loss and terms are float32 and agree with a float32 step at the same draws to within
    the networks' bf16 rounding."""
    model = _model(lik, post, prior, dtype=torch.float32, spread=0.3).train()
    x = ALL_IMAGES[:5].float()
    for objective in OBJECTIVES:
        outs = []
        for bf16 in (False, True):
            torch.manual_seed(1)
            try:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    outs.append(model.loss(x, objective=objective.name, n_samples=2))
            except ConfigError:
                break  # refused, as the shapes test checks
        if not outs:
            continue
        full, half = outs
        assert half.loss.dtype == torch.float32, f"{objective.name}: the loss is {half.loss.dtype}"
        for name, term in half.terms.items():
            assert term.dtype == torch.float32, f"{objective.name}: term {name} is {term.dtype}"
            torch.testing.assert_close(term, full.terms[name], rtol=0.05, atol=0.05, msg=f"{objective.name}: {name}")
