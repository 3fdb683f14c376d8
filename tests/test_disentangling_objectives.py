"""beta-TCVAE (Chen et al. 2018) and FactorVAE (Kim & Mnih 2018) as training objectives.

beta-TCVAE: the minibatch-weighted-sampling estimates against a brute-force computation written
out here with explicit loops; the three terms add up to the Monte-Carlo KL draw by draw, so with
alpha = beta = gamma = 1 the loss is the ELBO's in expectation. FactorVAE: the discriminator steps
once per training call, its logit is the TC term, and it learns to tell correlated codes from
permuted ones. Nonsense combinations are one-line errors before any data is read.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaekit.checkpoint import Checkpointer, read_checkpoint
from vaekit.cli import main
from vaekit.disentangling import Discriminator, permute_dims, tc_decomposition
from vaekit.distributions import posterior
from vaekit.errors import ConfigError
from vaekit.estimators import VAE
from vaekit.models import build_model, config_from_params

LATENT = 3


def _model(**params):
    torch.manual_seed(0)
    model = build_model(config_from_params("vae", input_shape=(6,), latent_dim=LATENT, hidden=(8,), **params)).double()
    with torch.no_grad():  # away from the initial weights, so that the posteriors differ between examples
        for p in model.parameters():
            p.normal_(0.0, 0.7)
    return model


def _data(n: int) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, 6), 0.4, dtype=torch.float64), generator=torch.Generator().manual_seed(2))


def _log_density(family: str, z: float, loc: float, scale: float) -> float:
    if family == "normal":
        return -0.5 * math.log(2 * math.pi) - math.log(scale) - 0.5 * ((z - loc) / scale) ** 2
    return -math.log(2 * scale) - abs(z - loc) / scale  # laplace


def _brute_force(family: str, loc, scale, z, n_data: int, estimator: str) -> dict[str, list[float]]:
    """Chen et al.'s minibatch-weighted sampling (or the stratified weights), one draw i and one example k at a time."""
    batch, dims = len(loc), len(loc[0])
    out: dict[str, list[float]] = {"mi": [], "tc": [], "dim_kl": []}

    def weight(i: int, k: int) -> float:
        if estimator == "mws":
            return 1 / (n_data * batch)
        return 1 / n_data if i == k else (n_data - 1) / (n_data * (batch - 1))

    for i in range(batch):
        own = sum(_log_density(family, z[i][d], loc[i][d], scale[i][d]) for d in range(dims))
        joint = math.log(sum(weight(i, k) * math.exp(sum(_log_density(family, z[i][d], loc[k][d], scale[k][d]) for d in range(dims)))
                             for k in range(batch)))
        dim_sum = sum(math.log(sum(weight(i, k) * math.exp(_log_density(family, z[i][d], loc[k][d], scale[k][d])) for k in range(batch)))
                      for d in range(dims))
        prior = sum(-0.5 * math.log(2 * math.pi) - 0.5 * z[i][d] ** 2 for d in range(dims))
        out["mi"].append(own - joint)
        out["tc"].append(joint - dim_sum)
        out["dim_kl"].append(dim_sum - prior)
    return out


@pytest.mark.parametrize("estimator", ["mws", "stratified"])
@pytest.mark.parametrize("family", ["normal", "laplace"])
def test_the_estimators_match_a_brute_force_computation(family, estimator):
    gen = torch.Generator().manual_seed(0)
    loc = torch.randn(4, 2, generator=gen, dtype=torch.float64)
    log_var = torch.randn(4, 2, generator=gen, dtype=torch.float64) * 0.5
    q = posterior(family, loc, log_var)
    z = q.sample((1,))
    log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(z)
    got = tc_decomposition(q, z, log_prior, dataset_size=50, estimator=estimator)
    want = _brute_force(family, loc.tolist(), q.scale.tolist(), z[0].tolist(), 50, estimator)
    for name in ("mi", "tc", "dim_kl"):
        np.testing.assert_allclose(got[name][0].numpy(), want[name], rtol=1e-10, atol=1e-10, err_msg=name)


def test_on_a_collapsed_code_stratified_reads_no_mi_or_tc_where_mws_reads_its_bias():
    zeros = torch.zeros(8, 4, dtype=torch.float64)
    q = posterior("normal", zeros, zeros)  # q(z|x) = N(0, I) for every x
    z = q.sample((2,))
    log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(z)
    fair = tc_decomposition(q, z, log_prior, dataset_size=1000, estimator="stratified")
    for name in ("mi", "tc", "dim_kl"):
        torch.testing.assert_close(fair[name], torch.zeros_like(fair[name]))
    mws = tc_decomposition(q, z, log_prior, dataset_size=1000)
    torch.testing.assert_close(mws["tc"], torch.full_like(mws["tc"], 3 * math.log(1000)))  # (D - 1) log N
    torch.testing.assert_close(mws["mi"], torch.full_like(mws["mi"], math.log(1000)))


@pytest.mark.parametrize("estimator", ["mws", "stratified"])
def test_the_three_terms_add_up_to_the_monte_carlo_kl_draw_by_draw(estimator):
    model, x = _model(), _data(7)
    q = model.inference(x)
    z = q.rsample((3,))
    parts = tc_decomposition(q, z, model.prior_marginals().log_prob(z), dataset_size=1000, estimator=estimator)
    torch.testing.assert_close(parts["mi"] + parts["tc"] + parts["dim_kl"], q.log_prob(z) - model.prior().log_prob(z))


def test_with_alpha_beta_gamma_one_the_loss_is_the_elbos_in_expectation():
    model, x = _model(), _data(600)
    ones = {"tc_alpha": 1.0, "tc_beta": 1.0, "tc_gamma": 1.0, "dataset_size": 10_000}
    torch.manual_seed(1)
    out = model.loss(x, objective="beta-tcvae", **ones)
    torch.manual_seed(1)
    elbo = model.loss(x, objective="elbo")  # the same draws of z
    t = out.terms
    mc_kl = t["mi"] + t["tc"] + t["dim_kl"]
    torch.testing.assert_close(out.loss, (mc_kl - t["log_likelihood"]).mean())
    torch.testing.assert_close(t["log_likelihood"], elbo.terms["log_likelihood"])
    gap = mc_kl - elbo.terms["kl"]  # the Monte-Carlo KL against the closed form: mean 0
    assert abs(gap.mean()) < 5 * gap.std() / math.sqrt(len(x))
    assert abs(out.loss - elbo.loss) < 5 * gap.std() / math.sqrt(len(x))


def test_each_weight_scales_its_own_term():
    model, x = _model(), _data(20)
    torch.manual_seed(3)
    base = model.loss(x, objective="beta-tcvae", tc_alpha=1.0, tc_beta=1.0, tc_gamma=1.0, dataset_size=100)
    for name, term in (("tc_alpha", "mi"), ("tc_beta", "tc"), ("tc_gamma", "dim_kl")):
        torch.manual_seed(3)
        weighted = model.loss(x, objective="beta-tcvae", **{"tc_alpha": 1.0, "tc_beta": 1.0, "tc_gamma": 1.0, name: 5.0}, dataset_size=100)
        torch.testing.assert_close(weighted.loss - base.loss, 4.0 * base.terms[term].mean())


def test_permuting_dims_shuffles_each_column_on_its_own():
    z = torch.arange(40.0).view(10, 4)
    p = permute_dims(z)
    for j in range(4):
        assert sorted(p[:, j].tolist()) == z[:, j].tolist()
    assert not all(torch.equal(p[:, 0].argsort(), p[:, j].argsort()) for j in range(1, 4))


def test_factor_vae_steps_its_discriminator_and_reads_its_logit_as_tc():
    model, x = _model(), _data(32)
    with pytest.raises(ConfigError, match="discriminator"):
        model.loss(x, objective="factor-vae")
    torch.manual_seed(0)
    disc = Discriminator(LATENT, (16,), 1e-3)
    disc.net.double()
    before = [p.detach().clone() for p in disc.net.parameters()]
    model.train()
    out = model.loss(x, objective="factor-vae", discriminator=disc, factor_gamma=10.0)
    assert abs(out.terms["d_loss"].item() - math.log(2)) < 0.1  # an untrained discriminator guesses
    assert any(not torch.equal(a, b) for a, b in zip(before, disc.net.parameters()))
    model.eval()
    torch.manual_seed(5)
    with torch.no_grad():
        out = model.loss(x, objective="factor-vae", discriminator=disc, factor_gamma=10.0)
        torch.manual_seed(5)
        z = model.inference(x).rsample((1,))
        torch.testing.assert_close(out.terms["tc"], disc.logit(z).mean(0))
        assert out.terms["d_loss"].item() == 0.0  # no step outside training
        elbo = out.terms["log_likelihood"] - out.terms["kl"]
        torch.testing.assert_close(out.loss, -(elbo - 10.0 * out.terms["tc"]).mean())


def test_the_discriminator_tells_correlated_codes_from_permuted_ones():
    torch.manual_seed(0)
    disc = Discriminator(2, (32, 32), 1e-2)
    for _ in range(200):
        a = torch.randn(128, 1)
        disc.update(torch.cat([a, a + 0.05 * torch.randn(128, 1)], 1))  # TC of two copies: large
    a = torch.randn(512, 1)
    z = torch.cat([a, a + 0.05 * torch.randn(512, 1)], 1)
    assert disc.update(z).item() < 0.5 < math.log(2)
    assert disc.logit(z).mean().item() > 1.0 > disc.logit(permute_dims(z)).mean().item()


@pytest.mark.parametrize("params, message", [
    ({"objective": "beta-tcvae", "prior": "vamp"}, "objective='beta-tcvae' needs a prior that factorizes"),
    ({"objective": "factor-vae", "prior": "vamp"}, "objective='factor-vae' needs a prior that factorizes"),
    ({"objective": "beta-tcvae", "top_latent_dim": 2}, "two stochastic layers"),
    ({"objective": "factor-vae", "top_latent_dim": 2}, "two stochastic layers"),
    ({"objective": "beta-tcvae", "beta": 4.0}, "beta does not apply to objective='beta-tcvae'"),
    ({"objective": "beta-tcvae", "warmup_epochs": 2.0}, "warmup_epochs does not apply"),
    ({"objective": "factor-vae", "discriminator_hidden": "0"}, "discriminator_hidden must be"),
    ({"objective": "beta-tcvae", "tc_estimator": "mss"}, "tc_estimator must be one of mws, stratified"),
])
def test_nonsense_combinations_are_one_line_errors(params, message):
    with pytest.raises(ConfigError, match=message) as err:
        VAE(**params).check_params()
    assert "\n" not in str(err.value)


def test_a_posterior_declared_without_independent_dimensions_is_refused(monkeypatch):
    from vaekit.registry import POSTERIORS

    laplace = POSTERIORS["laplace"]
    monkeypatch.setattr(laplace, "flags", {**laplace.flags, "location_scale": False})  # as a flow declares itself
    with pytest.raises(ConfigError, match="posterior='laplace' is not; use posterior='normal'"):
        VAE(objective="beta-tcvae", posterior="laplace").check_params()
    VAE(objective="beta-tcvae", posterior="student-t").check_params()


def test_the_cli_names_the_flags(capsys):
    assert main(["train", "--objective", "beta-tcvae", "--prior", "vamp", "--out", "/nonexistent/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--objective beta-tcvae needs a prior" in err and "--prior normal" in err and len(err.splitlines()) == 1
    assert main(["train", "--model", "ae", "--objective", "factor-vae", "--out", "/nonexistent/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--objective" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("objective, terms", [("beta-tcvae", ("mi", "tc", "dim_kl")), ("factor-vae", ("tc", "d_loss"))])
def test_both_train_through_the_estimator_and_log_their_terms(objective, terms):
    X = np.random.default_rng(0).random((120, 6)).round().astype(np.float32)
    est = VAE(latent_dim=2, hidden=8, epochs=2, batch_size=20, objective=objective, discriminator_hidden=16).fit(X)
    for row in est.history_:
        for term in ("elbo", "log_likelihood", "kl", *terms):
            assert math.isfinite(row[f"train_{term}"])
    assert np.isfinite(est.score_samples(X)).all()


def test_beta_tcvae_is_given_the_training_sets_size(monkeypatch):
    import vaekit.disentangling as dis

    seen = []
    real = dis.tc_decomposition
    monkeypatch.setattr(dis, "tc_decomposition", lambda q, z, lp, n, est: seen.append(n) or real(q, z, lp, n, est))
    X = np.random.default_rng(0).random((100, 6)).round().astype(np.float32)
    VAE(latent_dim=2, hidden=8, epochs=1, batch_size=30, objective="beta-tcvae", val_fraction=0.2).fit(X)
    assert set(seen) == {80}


def test_factor_vae_refuses_resume_in_one_line(tmp_path):
    X = np.random.default_rng(0).random((60, 6)).round().astype(np.float32)
    est = VAE(latent_dim=2, hidden=8, epochs=1, batch_size=20, objective="factor-vae", discriminator_hidden=8)
    est.fit(X, checkpointer=Checkpointer(tmp_path, every_steps=1))
    with pytest.raises(ConfigError, match="--resume is not available for objective='factor-vae'"):
        est.fit(X, resume=read_checkpoint(tmp_path))
