"""The evaluation layer: importance-weighted log-likelihood against a closed form, the ELBO bound,
reconstruction error, active units, KL per dimension, probes."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from vaekit import evaluate as E
from vaekit.data import load_dataset
from vaekit.errors import ConfigError
from vaekit.estimators import VAE, Autoencoder, DenoisingAutoencoder
from vaekit.registry import FAMILIES


class LinearGaussian(nn.Module):
    """Probabilistic PCA: z ~ N(0, I), x|z ~ N(Wz + b, sigma^2 I), so p(x) = N(b, WW^T + sigma^2 I).

    Its q(z|x) is the diagonal of the exact (full-covariance) posterior, widened by ``inflate``:
    a deliberately imperfect proposal, so the importance weights are not all equal.
    """

    family = FAMILIES["vae"]  # a model with a density: evaluation asks its family, never its class

    def __init__(self, D: int = 6, d: int = 2, sigma: float = 0.5, inflate: float = 1.5, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(torch.randn(D, d, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(D, generator=g, dtype=torch.float64))
        self.sigma, self.inflate, self.d = sigma, inflate, d

    def exact_log_px(self, x):
        cov = self.W @ self.W.T + self.sigma**2 * torch.eye(len(self.b), dtype=torch.float64)
        return MultivariateNormal(self.b, cov).log_prob(x)

    def inference(self, x, c=None):
        M = self.W.T @ self.W + self.sigma**2 * torch.eye(self.d, dtype=torch.float64)
        Minv = torch.linalg.inv(M)
        loc = (x - self.b) @ self.W @ Minv.T
        var = self.sigma**2 * torch.diagonal(Minv) * self.inflate
        return Independent(Normal(loc, var.sqrt().expand_as(loc)), 1)

    def generative(self, z, c=None):
        return Independent(Normal(z @ self.W.T + self.b, torch.full_like(self.b, self.sigma)), 1)

    def log_likelihood(self, z, x, c=None):
        return self.generative(z, c).log_prob(x)

    def prior(self):
        zeros = torch.zeros(self.d, dtype=torch.float64)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)


@pytest.fixture(scope="module")
def ppca():
    torch.manual_seed(1)
    model = LinearGaussian()
    with torch.no_grad():
        z = torch.randn(40, model.d, dtype=torch.float64)
        x = model.generative(z).sample()
    return model, x


def test_iw_matches_exact_linear_gaussian_log_likelihood(ppca):
    model, x = ppca
    exact = model.exact_log_px(x).detach()
    iw = E.iw_log_likelihood(model, x, k=5000, batch_size=8, chunk_size=700)  # chunks do not divide k
    # Stated tolerance: with k=5000 and this proposal the estimate's standard error is ~1e-3 nats,
    # so every example must lie within 0.02 nats and the mean within 0.005 nats of the exact value.
    assert torch.max((iw - exact).abs()) < 0.02
    assert abs(float((iw - exact).mean())) < 0.005
    # A k=1 estimate is a one-sample ELBO: clearly below log p(x) for this imperfect q.
    one = E.iw_log_likelihood(model, x, k=1, seed=3)
    assert float(exact.mean() - one.mean()) > 0.05


def test_iw_increases_with_k_on_average_and_bounds_the_elbo(ppca):
    model, x = ppca
    model = LinearGaussian(inflate=6.0)  # a poor proposal, so the bound tightens slowly with k
    exact = float(model.exact_log_px(x).detach().mean())
    ks = (1, 4, 16, 64)
    by_k = [np.mean([float(E.iw_log_likelihood(model, x, k=k, seed=s).mean()) for s in range(4)]) for k in ks]
    assert all(a < b for a, b in zip(by_k, by_k[1:])), dict(zip(ks, by_k))
    assert by_k[-1] <= exact + 0.005  # a lower bound in expectation


def test_iw_is_chunk_size_invariant_given_the_same_samples():
    # With k samples drawn in one chunk or many, logsumexp across chunks is exact: same seed and
    # one-at-a-time draws give the same numbers as one big draw of the same samples.
    model = LinearGaussian(seed=3)
    x = torch.randn(5, 6, dtype=torch.float64)
    a = E.iw_log_likelihood(model, x, k=64, batch_size=5, chunk_size=64, seed=7)
    b = E.iw_log_likelihood(model, x, k=64, batch_size=5, chunk_size=64, seed=7)
    c = E.iw_log_likelihood(model, x, k=64, batch_size=5, chunk_size=3, seed=7)
    assert torch.equal(a, b)
    assert torch.allclose(a, c, atol=0.2)  # different draws, same estimate up to Monte-Carlo noise


@pytest.fixture(scope="module")
def small_vae():
    ds = load_dataset("embedded", "train", limit=600)
    test = load_dataset("embedded", "test", limit=200)
    est = VAE(latent_dim=4, hidden=(64,), epochs=3, batch_size=64, seed=0, device="cpu").fit(ds.X)
    return est, ds, test


def test_evaluate_vae_numbers_are_consistent(small_vae):
    est, ds, test = small_vae
    r = E.evaluate(est, test.X, test.y, X_train=ds.X, y_train=ds.y, k=50, iw_limit=100)
    assert r["iw_k"] == 50 and r["iw_n"] == 100
    assert r["iw_log_likelihood"] >= r["elbo"] - 1.0  # IW >= ELBO (up to the ELBO's own MC noise)
    assert math.isclose(r["elbo"], r["log_likelihood"] - r["kl"], rel_tol=1e-6)
    # KL per dimension sums to the ELBO's analytic KL term (both closed forms for a Normal q).
    assert math.isclose(sum(r["kl_per_dim"]), r["kl"], rel_tol=1e-4)
    assert 0 <= r["active_units"] <= 4 and len(r["latent_variance"]) == 4
    assert 0.1 < r["probe_logreg_accuracy"] <= 1 and 0.1 < r["probe_knn_accuracy"] <= 1
    assert r["binarization"].startswith("none")
    lines = "\n".join(E.format_results(r))
    assert "nats/example" in lines and "k=50" in lines and "active units" in lines


def test_iw_mean_above_elbo_on_a_trained_vae(small_vae):
    est, _, test = small_vae
    X = torch.from_numpy(test.X[:100])
    elbos = [E.elbo(est.model_, X, seed=s)["elbo"] for s in range(3)]
    iw = E.iw_log_likelihood(est.model_, X, k=200).mean()
    assert float(iw) > max(elbos)


def test_reconstruction_error_equals_reconstruct(small_vae):
    est, _, test = small_vae
    r = E.evaluate(est, test.X, k=2, iw_limit=5)
    recon = est.reconstruct(test.X)
    X = test.X.reshape(len(test.X), -1).astype(np.float64)
    R = recon.reshape(len(recon), -1).astype(np.float64)
    assert math.isclose(r["mse"], float(((X - R) ** 2).mean()), rel_tol=1e-9)
    assert math.isclose(r["sse"], float(((X - R) ** 2).sum(1).mean()), rel_tol=1e-9)
    assert "bce" not in r  # gray-level MNIST is not binary
    # Deterministic: through the posterior mean, so a second call gives the same number.
    assert E.evaluate(est, test.X, k=2, iw_limit=5)["mse"] == r["mse"]


def test_bce_matches_torch_on_binary_data():
    rng = np.random.default_rng(0)
    X = (rng.random((7, 10)) < 0.5).astype(np.float32)
    P = rng.random((7, 10)).astype(np.float32)
    P[0, 0] = float(X[0, 0])  # an exact hit
    P[1, 1] = 1.0 - float(X[1, 1])  # a saturated miss: clamped at 100 nats as torch does
    r = E.reconstruction_error(X, P)
    ref = torch.nn.functional.binary_cross_entropy(torch.from_numpy(P).double(), torch.from_numpy(X).double(), reduction="none").sum(1).mean()
    assert math.isclose(r["bce"], float(ref), rel_tol=1e-9)


def test_binarized_model_is_scored_on_a_static_binarization(small_vae):
    est, _, test = small_vae
    est2 = VAE(latent_dim=2, hidden=(32,), epochs=1, batch_size=64, binarize="dynamic", device="cpu").fit(test.X[:200])
    Xb, how = E.binarize_for_eval(est2, test.X[:50])
    assert set(np.unique(Xb)) <= {0.0, 1.0} and "static" in how and "seed 0" in how
    assert np.array_equal(Xb, E.binarize_for_eval(est2, test.X[:50])[0])  # fixed seed
    r = E.evaluate(est2, test.X[:50], k=2)
    assert "static" in r["binarization"] and "bce" in r


def test_active_units_on_a_model_where_the_answer_is_known():
    est = VAE(latent_dim=4, hidden=(16,), epochs=1, batch_size=32, device="cpu").fit(np.random.default_rng(0).random((64, 9)).astype(np.float32))
    last = est.model_.encoder.net[-1] if hasattr(est.model_.encoder,
                                  "net") else [m for m in est.model_.encoder.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        # Output rows 0..3 are the posterior means: dims 2, 3 ignore x (constant mean) -> inactive;
        # dims 0, 1 get large weights -> their means vary across examples -> active.
        last.weight[2:4].zero_()
        last.bias[2:4] = 0.7
        last.weight[0:2] *= 50.0
    X = np.random.default_rng(1).random((500, 9)).astype(np.float32)
    codes = est.encode(X)
    assert E.active_units(codes).tolist() == [True, True, False, False]
    r = E.evaluate(est, X, k=2, iw_limit=5)
    assert r["active_units"] == 2


def test_active_units_threshold():
    codes = np.stack([np.linspace(-1, 1, 100), np.full(100, 3.0), 0.05 * np.linspace(-1, 1, 100)], 1)
    # variances: ~0.34, 0, ~0.00085 -> only the first exceeds 0.01
    assert E.active_units(codes).tolist() == [True, False, False]


@pytest.mark.parametrize("posterior", ["normal", "laplace", "logistic"])
def test_kl_per_dimension_matches_the_elbo_kl(posterior):
    est = VAE(latent_dim=3, hidden=(16,), epochs=1, batch_size=32, posterior=posterior, device="cpu").fit(
        np.random.default_rng(0).random((64, 9)).astype(np.float32))
    X = torch.from_numpy(np.random.default_rng(2).random((50, 9)).astype(np.float32))
    per_dim = E.kl_per_dimension(est.model_, X, n_samples=4000)
    q = est.model_.inference(X)
    if posterior == "normal":
        ref = kl_divergence(q, est.model_.prior()).mean()
        assert np.isclose(per_dim.sum(), float(ref.detach()), rtol=1e-5)
    else:  # Monte-Carlo in both: compare with a large-sample estimate of the full KL
        torch.manual_seed(5)
        z = q.sample((4000,))
        ref = (q.log_prob(z) - est.model_.prior().log_prob(z)).mean().detach()
        assert np.isclose(per_dim.sum(), float(ref), atol=0.05 + 0.02 * abs(float(ref)))
    assert (per_dim >= -1e-3).all()


def test_autoencoder_gets_reconstruction_and_probes_only():
    ds = load_dataset("embedded", "train", limit=300)
    test = load_dataset("embedded", "test", limit=100)
    est = DenoisingAutoencoder(latent_dim=8, hidden=(32,), epochs=1, batch_size=64, device="cpu").fit(ds.X)
    r = E.evaluate(est, test.X, test.y, X_train=ds.X, y_train=ds.y)
    assert "elbo" not in r and "iw_nll" not in r and "active_units" not in r
    assert {"mse", "probe_logreg_accuracy", "probe_knn_accuracy"} <= set(r)
    with pytest.raises(ConfigError, match="needs a VAE"):
        E.iw_log_likelihood(est.model_, torch.from_numpy(test.X[:2]))
    assert isinstance(est, Autoencoder)


def test_bad_k_is_a_clear_error(ppca):
    model, x = ppca
    with pytest.raises(ConfigError, match="at least 1"):
        E.iw_log_likelihood(model, x, k=0)


# -- compiled evaluation (torch.compile of the decoder's pass) ------------------------------------

def _binary_models():
    """A factorized and an autoregressive Bernoulli VAE, untrained, on 8x8 binary images."""
    from vaekit.models import build_model, config_from_params

    torch.manual_seed(0)
    plain = build_model(config_from_params(input_shape=(1, 8, 8), latent_dim=3, hidden=(16,)))
    made = build_model(config_from_params(input_shape=(1, 8, 8), latent_dim=3, hidden=(16,),
                                          likelihood="autoregressive-bernoulli", ar_hidden=12, prior="vamp", n_pseudo_inputs=4))
    x = torch.bernoulli(torch.full((6, 1, 8, 8), 0.3), generator=torch.Generator().manual_seed(1))
    return (plain, made), x


needs_cxx = pytest.mark.skipif(not any(map(shutil.which, ("g++", "c++", "clang++"))),
                               reason="torch.compile's CPU backend needs a C++ compiler (apt-get install g++)")


@needs_cxx
@pytest.mark.slow  # two compilations, ~5-30 s each on two cores
def test_compiled_evaluation_matches_the_uncompiled_one():
    import warnings

    models, x = _binary_models()
    for model in models:
        eager = E.iw_log_likelihood(model, x, k=40, batch_size=4, chunk_size=15, seed=2, compile=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fused = E.iw_log_likelihood(model, x, k=40, batch_size=4, chunk_size=15, seed=2, compile=True)
        assert not [w for w in caught if "torch.compile failed" in str(w.message)], "compilation fell back"
        # The same draws (same seed): only the order of float32 sums differs.
        assert torch.allclose(eager, fused, atol=1e-3), (eager - fused).abs().max()
        assert not torch.equal(eager, E.iw_log_likelihood(model, x, k=40, batch_size=4, chunk_size=15, seed=3, compile=False))


def test_a_failed_compilation_falls_back_to_the_same_numbers_with_one_warning(monkeypatch):
    models, x = _binary_models()

    def broken(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler found\nlong traceback")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    eager = E.iw_log_likelihood(models[1], x, k=30, batch_size=4, chunk_size=7, seed=5, compile=False)
    with pytest.warns(RuntimeWarning, match=r"torch.compile failed \(RuntimeError: no C\+\+ compiler found\)") as caught:
        fallback = E.iw_log_likelihood(models[1], x, k=30, batch_size=4, chunk_size=7, seed=5, compile=True)
    assert len([w for w in caught if "torch.compile failed" in str(w.message)]) == 1  # once, not per chunk
    assert torch.equal(eager, fallback)


def test_evaluation_compiles_only_when_the_pass_is_long(monkeypatch):
    from vaekit import metrics

    models, x = _binary_models()
    calls = []

    def spy(fn, **kwargs):
        calls.append(kwargs)
        return fn  # the uncompiled method: this test is about when, not how

    monkeypatch.setattr(torch, "compile", spy)
    monkeypatch.setattr(metrics, "COMPILE_SAMPLES", 6 * 50)
    E.iw_log_likelihood(models[0], x, k=49)  # 294 samples: below the threshold
    assert calls == []
    E.iw_log_likelihood(models[0], x, k=50)  # 300: a long pass, compiled
    assert calls == [{"dynamic": False}]
    E.iw_log_likelihood(models[0], x, k=50, compile=False)  # asked not to
    assert len(calls) == 1


@needs_cxx
@pytest.mark.slow  # one compilation
def test_grouped_softplus_sum_under_compile_matches_torch_softplus():
    from vaekit.distributions import softplus_sum

    # 37 logits: two groups of 16 and a remainder of 5; values from -60 to 60, where exp(-|l|)
    # underflows or 1 + e^-|l| rounds to 1, and around 0, where the factors are near 2.
    logits = torch.cat([torch.linspace(-60, 60, 37)[None], torch.randn(7, 37) * 3, torch.zeros(1, 37)])
    exact = torch.nn.functional.softplus(logits.double()).sum(-1)
    fused = torch.compile(softplus_sum, dynamic=False)(logits)
    assert torch.allclose(fused.double(), exact, atol=1e-4, rtol=0), (fused.double() - exact).abs().max()
    assert torch.equal(softplus_sum(logits), torch.nn.functional.softplus(logits).sum(-1))  # eager: torch's own
