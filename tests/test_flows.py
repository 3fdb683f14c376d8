"""The inverse autoregressive flow posterior (vaekit.flows, ``posterior="iaf"``): its log-density is exact,
its MADE is autoregressive, T = 0 is the diagonal Gaussian, it trains and round-trips through the
estimator, and what it cannot do (draws from given noise, a density away from its own draws) is refused
in one line by a flag. The conformance suite (tests/test_conformance.py) runs the shared property tests on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd.functional import jacobian

from vaekit import distributions as D
from vaekit.anomaly import VAEDetector
from vaekit.anomaly.scores import standard_draws
from vaekit.errors import ConfigError
from vaekit.estimators import VAE
from vaekit.evaluate import evaluate, format_results
from vaekit.explore.capabilities import capabilities_of
from vaekit.flows import IAF, MADE
from vaekit.metrics import kl_per_dimension
from vaekit.models import VAEConfig, build_model
from vaekit.objectives import log_importance_weights
from vaekit.report import metrics_rows
from vaekit.runfolder import load, load_encoder

DIM = 4


def _flow(steps: int, hidden: int = 12, seed: int = 0) -> IAF:
    torch.manual_seed(seed)
    flow = IAF(DIM, steps=steps, made_hidden=hidden).double()
    with torch.no_grad():
        for p in flow.parameters():  # away from the near-identity start, so every term matters
            p.normal_(0.0, 0.5)
    return flow


def _params(batch: int, context_dim: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, DIM, generator=g, dtype=torch.float64), 0.5 * torch.randn(batch, DIM, generator=g, dtype=torch.float64),
            torch.randn(batch, context_dim, generator=g, dtype=torch.float64))


def _binary(n: int = 240, d: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    proto = rng.random((3, d)) < 0.5
    flips = rng.random((n, d)) < 0.1
    return (proto[rng.integers(0, 3, n)] ^ flips).astype(np.float32)


def test_log_density_is_exact_against_a_numeric_jacobian():
    flow = _flow(steps=3)
    loc, log_var, h = _params(1, flow.context_dim)
    q = flow(loc, log_var, h)
    eps = torch.randn(DIM, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    z, log_q = q.push(eps[None])
    jac = jacobian(lambda e: q.push(e[None])[0][0], eps)  # dz/d eps, (D, D)
    sign, log_det = torch.linalg.slogdet(jac)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(eps).sum() - log_det
    assert sign != 0
    torch.testing.assert_close(log_q.sum(-1)[0], expected, rtol=1e-10, atol=1e-10)
    # rsample draws the same map from fresh noise, and log_prob reads the exact value at those draws
    torch.manual_seed(5)
    drawn = q.rsample((3,))
    torch.manual_seed(5)
    again, log_again = q.push(torch.randn(3, 1, DIM, dtype=torch.float64))
    assert torch.equal(drawn, again) and torch.equal(q.log_prob(drawn), log_again.sum(-1))


@pytest.mark.parametrize("reverse", [False, True])
def test_the_made_is_autoregressive_in_its_order(reverse):
    torch.manual_seed(0)
    made = MADE(DIM, 10, 3, reverse=reverse).double()
    with torch.no_grad():
        for p in made.parameters():
            p.normal_(0.0, 0.5)
    z, h = torch.randn(DIM, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    for out in range(2):  # m and s
        jac = jacobian(lambda v, out=out: made(v, h)[out], z)  # d out_i / d z_j
        allowed = torch.tril(torch.ones(DIM, DIM), diagonal=-1).bool()  # j strictly before i
        if reverse:
            allowed = allowed.t()
        assert (jac[~allowed] == 0).all()
        assert (jac[allowed] != 0).all()  # and it uses every earlier dimension


def test_each_step_has_a_triangular_jacobian_with_the_gates_on_its_diagonal():
    flow = _flow(steps=1)
    loc, log_var, h = _params(1, flow.context_dim)
    step = flow.steps[0]

    def one_step(v):
        m, s = step(v, h[0])
        return torch.sigmoid(s) * v + (1 - torch.sigmoid(s)) * m

    z = torch.randn(DIM, dtype=torch.float64)
    jac = jacobian(one_step, z)
    assert (torch.triu(jac, diagonal=1) == 0).all()
    torch.testing.assert_close(torch.diagonal(jac), torch.sigmoid(step(z, h[0])[1]))


def test_zero_steps_is_the_diagonal_gaussian_posterior_exactly():
    flow = _flow(steps=0)
    loc, log_var, h = _params(5, flow.context_dim)
    assert h.shape == (5, 0)
    iaf, normal = flow(loc, log_var, h), D.posterior("normal", loc, log_var)
    torch.manual_seed(3)
    z = iaf.rsample((7,))
    torch.manual_seed(3)
    z_normal = normal.rsample((7,))
    assert torch.equal(z, z_normal) and torch.equal(iaf.log_prob(z), normal.log_prob(z_normal))
    assert torch.equal(iaf.mean, normal.mean)


def test_a_vae_with_zero_steps_gives_the_normal_posteriors_importance_weights():
    base = dict(input_shape=(8,), latent_dim=DIM, hidden=(16,))
    normal = build_model(VAEConfig(**base)).double()
    iaf = build_model(VAEConfig(**base, posterior={"name": "iaf", "steps": 0, "made_hidden": 16})).double()
    iaf.load_state_dict(normal.state_dict())
    x = torch.from_numpy(_binary(20)).double()
    with torch.no_grad():
        torch.manual_seed(4)
        a = log_importance_weights(normal, x, k=6)
        torch.manual_seed(4)
        b = log_importance_weights(iaf, x, k=6)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_the_density_away_from_its_own_draws_is_refused_in_one_line():
    flow = _flow(steps=2)
    q = flow(*_params(2, flow.context_dim))
    z = q.rsample()
    with pytest.raises(ConfigError) as refused:
        q.log_prob(z.clone())
    assert "only at its own draws" in str(refused.value) and "\n" not in str(refused.value)


def test_the_encoder_outputs_the_context_and_the_kl_is_monte_carlo():
    cfg = VAEConfig(input_shape=(8,), latent_dim=DIM, hidden=(16,), posterior={"name": "iaf", "steps": 2, "made_hidden": 12})
    model = build_model(cfg)
    assert model.encoder(torch.zeros(3, 8)).shape == (3, 2 * DIM + 12)
    assert model.latent_prior.analytic is False
    q = model.inference(torch.zeros(3, 8))
    z = q.rsample((4,))
    kl = model.kl(q, z)
    torch.testing.assert_close(kl, (q.log_prob(z) - model.prior().log_prob(z)).mean(0))
    torch.testing.assert_close(model.kl_dims(q, z).sum(-1), kl)  # each dimension's share, as free bits floors it
    with pytest.raises(ConfigError, match="not available"):
        kl_per_dimension(model, torch.zeros(3, 8))


def test_training_through_the_estimator_lowers_the_loss_and_round_trips(tmp_path):
    X = _binary()
    est = VAE(posterior="iaf", iaf_steps=2, iaf_hidden=16, latent_dim=2, hidden=(32,), epochs=8, batch_size=32, lr=3e-3,
              val_fraction=0.0, seed=0).fit(X)
    losses = [row["train_loss"] for row in est.history_]
    assert losses[-1] < losses[0] - 0.5, losses
    before = {"elbo": est.score_samples(X[:40]), "iw": est.score_samples(X[:40], k=16), "code": est.encode(X[:40])}
    est.save(tmp_path / "run")
    loaded = load(tmp_path / "run")
    assert loaded.model_.config.posterior == {"name": "iaf", "steps": 2, "made_hidden": 16}
    assert np.array_equal(loaded.score_samples(X[:40]), before["elbo"])
    assert np.array_equal(loaded.score_samples(X[:40], k=16), before["iw"])
    assert np.array_equal(loaded.encode(X[:40]), before["code"])
    est.save(tmp_path / "enc", part="encoder")  # the flow's weights go with the encoder: the code needs them
    assert np.array_equal(load_encoder(tmp_path / "enc").encode(X[:40]), before["code"])
    # evaluate and the explorer take it, without the per-dimension KLs a flow does not have
    results = evaluate(est, X[:40], k=8)
    assert np.isfinite(results["iw_nll"]) and "kl_per_dim" not in results
    assert results["kl_estimate"] == "monte-carlo"  # and `vaekit evaluate` says so beside the KL
    assert "(Monte-Carlo: log q(z|x) - log p(z) at the draws)" in "\n".join(format_results(results))
    assert any(name.startswith("KL") and "Monte-Carlo" in how for name, _, how in metrics_rows(results))  # and the report
    caps = capabilities_of(est)
    assert caps.density and not caps.kl_per_dimension


def test_the_vampprior_and_two_layers_refuse_it_in_one_line():
    for prior in ({"name": "vamp", "n_pseudo_inputs": 3}, {"name": "two-layer"}):
        with pytest.raises(ConfigError) as refused:
            VAEConfig(input_shape=(8,), latent_dim=2, posterior={"name": "iaf", "steps": 1, "made_hidden": 4}, prior=prior)
        assert "not available with the iaf posterior" in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(ConfigError, match="VampPrior is not available with the iaf posterior"):
        VAE(posterior="iaf", prior="vamp", epochs=1).fit(_binary(40))


def test_the_detectors_refuse_it_in_one_line(monkeypatch):
    with pytest.raises(ConfigError) as refused:
        standard_draws("iaf", 5.0, 4, 2, seed=0)
    assert "iaf posterior does not offer" in str(refused.value) and "\n" not in str(refused.value)
    made = VAEDetector._estimator

    def with_flow(self, n_rows, n_cols):  # a detector whose network has the flow posterior
        return made(self, n_rows, n_cols).set_params(posterior="iaf", iaf_steps=1, iaf_hidden=8)

    monkeypatch.setattr(VAEDetector, "_estimator", with_flow)
    rows = np.random.default_rng(0).normal(size=(64, 4))
    with pytest.raises(ConfigError, match="iaf posterior does not offer"):
        VAEDetector(n_steps=4).fit(rows)


def test_an_iaf_model_trains_with_a_validation_split_and_logs_no_per_dimension_kl():
    """Training logs KL per dimension on the validation split only for a posterior with independent
    dimensions; a flow's are dependent, so its epochs log the whole KL and train."""
    import vaekit

    X = np.random.default_rng(0).random((80, 12)).astype(np.float32)
    est = vaekit.VAE(posterior="iaf", iaf_steps=1, iaf_hidden=8, latent_dim=2, hidden=(8,), epochs=2, batch_size=20,
                     val_fraction=0.25, device="cpu").fit(X)
    row = est.history_[-1]
    assert np.isfinite(row["val_loss"]) and "val_kl" in row and not any(k.startswith("val_kl_dim_") for k in row)


def test_the_normal_posteriors_kl_is_reported_as_closed_form():
    est = VAE(latent_dim=2, hidden=(16,), epochs=1, batch_size=40, val_fraction=0.0, seed=0).fit(_binary(80))
    results = evaluate(est, _binary(40, seed=1), k=4)
    assert results["kl_estimate"] == "closed form" and "Monte-Carlo" not in "\n".join(format_results(results))


def test_vaekit_train_says_the_kl_column_is_monte_carlo(tmp_path, capsys):
    from vaekit.cli import main

    assert main(["train", "--posterior", "iaf", "--iaf-steps", "1", "--iaf-hidden", "8", "--latent-dim", "2", "--hidden", "16",
                 "--epochs", "1", "--limit", "200", "--no-report", "--out", str(tmp_path / "run")]) == 0
    note = "note: with --posterior iaf the kl column is a Monte-Carlo estimate log q(z|x) − log p(z) at the draws"
    said = capsys.readouterr()
    assert note in said.out + said.err
    assert note in (tmp_path / "run" / "train.log").read_text()
