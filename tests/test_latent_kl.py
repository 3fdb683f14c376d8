"""KL per latent dimension against the model's own prior, and everything that asks for it.

Issue 23's suspected defects, each confirmed by a test here before its fix:
``VAE.kl_per_dimension`` measured against N(0, I) whatever the prior; ``vaekit train
--top-latent-dim 8 --tensorboard DIR`` raised inside the epoch callback; the detectors took any
likelihood and an autoregressive one failed deep in ``explain``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import vaekit
from vaekit.anomaly import AutoencoderDetector, VAEDetector
from vaekit.cli import main
from vaekit.data import load_dataset
from vaekit.errors import ConfigError

TINY = dict(hidden=(32,), epochs=1, batch_size=50, device="cpu", seed=0)


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("embedded", "test", limit=300)
    return d.X.reshape(len(d.X), -1)


# -- 1. the KL of each dimension is to that dimension's marginal of the model's prior --------------


def test_standard_normal_prior_gives_the_closed_form(digits):
    est = vaekit.VAE(latent_dim=3, **TINY).fit(digits)
    with torch.no_grad():
        q = est.model_.inference(torch.from_numpy(digits))
        loc, log_var = q.loc, q.log_var
    expect = (0.5 * (loc.pow(2) + log_var.exp() - 1 - log_var)).mean(0).numpy()  # Kingma & Welling, app. B
    np.testing.assert_allclose(est.kl_per_dimension(digits), expect, rtol=1e-5, atol=1e-6)


def _vamp_reference(est, X, n: int = 4000, seed: int = 1) -> np.ndarray:
    """E_{q(z_j|x)}[log q(z_j|x) - log (1/K) sum_k q(z_j|u_k)], averaged over x: plain NumPy Monte Carlo."""
    m = est.model_
    with torch.no_grad():
        q = m.inference(torch.from_numpy(X))
        loc, log_var = q.loc.double().numpy(), q.log_var.double().numpy()
        u = torch.nn.functional.hardtanh(m.latent_prior.pseudo_inputs, 0.0, 1.0)
        q_u = m.inference(u)  # the mixture's components, q(z | u_k)
        ploc, plv = q_u.loc.double().numpy(), q_u.log_var.double().numpy()

    def log_normal(z, mu, lv):
        return -0.5 * (math.log(2 * math.pi) + lv + (z - mu) ** 2 / np.exp(lv))

    rng = np.random.default_rng(seed)
    z = loc + np.exp(0.5 * log_var) * rng.standard_normal((n, *loc.shape))  # (n, N, D)
    log_q = log_normal(z, loc, log_var)
    comp = log_normal(z[..., None], ploc.T, plv.T)  # (n, N, D, K): each pseudo-input's marginal
    log_p = np.logaddexp.reduce(comp, axis=-1) - math.log(ploc.shape[0])
    return (log_q - log_p).mean((0, 1))


def test_vamp_prior_kl_is_to_the_mixture_marginal_not_to_a_standard_normal(digits):
    est = vaekit.VAE(latent_dim=3, prior="vamp", n_pseudo_inputs=7, **TINY).fit(digits)
    X = digits[:60]
    got = est.kl_per_dimension(X)
    ref = _vamp_reference(est, X)
    # Monte-Carlo both sides: 64 x 60 draws here, 4000 x 60 in the reference.
    np.testing.assert_allclose(got, ref, rtol=0.05, atol=0.02)
    assert (got > -0.02).all()
    # ...and not the KL to N(0, I) the method used to return (outside the same tolerance here).
    with torch.no_grad():
        q = est.model_.inference(torch.from_numpy(X))
        loc, log_var = q.loc, q.log_var
    to_std = (0.5 * (loc.pow(2) + log_var.exp() - 1 - log_var)).mean(0).numpy()
    assert not np.allclose(to_std, ref, rtol=0.05, atol=0.02)


def test_vamp_prior_kl_is_repeatable(digits):
    est = vaekit.VAE(latent_dim=2, prior="vamp", n_pseudo_inputs=5, **TINY).fit(digits)
    np.testing.assert_array_equal(est.kl_per_dimension(digits[:50]), est.kl_per_dimension(digits[:50]))


def test_two_layer_prior_refuses_with_a_reason(digits):
    est = vaekit.VAE(latent_dim=3, top_latent_dim=2, top_hidden=(8,), **TINY).fit(digits)
    with pytest.raises(ConfigError, match="two stochastic layers"):
        est.kl_per_dimension(digits[:20])


# -- 2. a run with a non-standard prior trains with --tensorboard ---------------------------------


@pytest.mark.parametrize("flags", [["--top-latent-dim", "8"], ["--prior", "vamp", "--pseudo-inputs", "5"]])
def test_tensorboard_run_with_a_learned_or_two_layer_prior_trains(tmp_path, flags):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = tmp_path / "tb"
    args = ["train", "--model", "vae", "--dataset", "embedded", "--limit", "200", "--epochs", "1", "--batch-size", "50",
            "--hidden", "16", "--latent-dim", "3", "--seed", "0", "--device", "cpu", "--quiet", "--no-report",
            "--no-figures", "--out", str(tmp_path / "run"), "--tensorboard", str(tb), *flags]
    assert main(args) == 0
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert "train/loss" in tags
    kl_tags = {t for t in tags if t.startswith("kl_dim/")}
    if "--top-latent-dim" in flags:
        assert not kl_tags  # no per-dimension KL exists for this prior: skipped, not faked
    else:
        assert kl_tags == {"kl_dim/0", "kl_dim/1", "kl_dim/2"}


# -- 3. the detectors name the likelihoods they take --------------------------------------------


@pytest.mark.parametrize("cls, bad", [(VAEDetector, "autoregressive-bernoulli"), (VAEDetector, "poisson"),
                                      (AutoencoderDetector, "continuous-bernoulli")])
def test_detectors_refuse_a_likelihood_they_cannot_score(cls, bad):
    det = cls(likelihood=bad, n_steps=2, hidden=(4,), latent_dim=2)
    with pytest.raises(ConfigError, match=r"likelihood .*choose one of (?=.*gaussian)(?=.*bernoulli)"):
        det.check_params()
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="likelihood"):
        det.fit(rng.random((40, 3)))
