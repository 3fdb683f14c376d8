"""The torch modules: the ELBO against an exact marginal likelihood (probabilistic PCA), the nets'
shapes, the config's checks, and that every model of the course learns on real digits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from vaekit.data import load_dataset
from vaekit.errors import ConfigError
from vaekit.estimators import VAE, Autoencoder, ConditionalVAE, ConvVAE, DenoisingAutoencoder, SparseAutoencoder
from vaekit.models import build_model, config_from_dict, config_from_params, corrupt
from vaekit.nets import ConvDecoder, ConvEncoder, MLPDecoder, mlp


@pytest.fixture(scope="module")
def digits():
    """1000 real MNIST digits (and labels) from the sample shipped in the package."""
    d = load_dataset("embedded", "train", limit=600)
    return d.X, d.y


# -- probabilistic PCA: a model whose log p(x) is exact ------------------------------------------

D_X, D_Z, SIGMA = 6, 3, 0.5


def _ppca():
    """W with orthogonal columns (so the true posterior is diagonal), a bias b, and noise sigma."""
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(D_X, D_Z, generator=g, dtype=torch.float64))
    W = Q * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    b = torch.randn(D_X, generator=g, dtype=torch.float64)
    x = torch.randn(8, D_X, generator=g, dtype=torch.float64) * 1.5 + b
    return W, b, x


def _log_marginal(W, b, x):
    # p(x) = N(b, W W^T + sigma^2 I) (Tipping & Bishop 1999)
    cov = W @ W.T + SIGMA**2 * torch.eye(D_X, dtype=torch.float64)
    return torch.distributions.MultivariateNormal(b, cov).log_prob(x)


def _vae_with(W, b, enc_weight, enc_bias) -> nn.Module:
    """A vaekit VAE whose linear decoder is x = W z + b and whose linear encoder gives (mu, log sigma^2)."""
    cfg = config_from_params(input_shape=(D_X,), latent_dim=D_Z, hidden=(), likelihood="gaussian", sigma=SIGMA)
    model = build_model(cfg).double()
    (dec,) = model.decoder.net  # hidden=() means one Linear layer and no activation
    (enc,) = model.encoder.net
    assert isinstance(dec, nn.Linear) and isinstance(enc, nn.Linear)
    with torch.no_grad():
        dec.weight.copy_(W)
        dec.bias.copy_(b)
        enc.weight.copy_(enc_weight)
        enc.bias.copy_(enc_bias)
    return model


def _true_posterior_encoder(W, b):
    M = W.T @ W + SIGMA**2 * torch.eye(D_Z, dtype=torch.float64)
    assert torch.allclose(M, torch.diag(torch.diag(M)))  # orthogonal columns: diagonal posterior
    Minv = torch.linalg.inv(M)
    A = Minv @ W.T  # mu = M^-1 W^T (x - b)
    log_var = torch.log(SIGMA**2 * torch.diag(Minv))
    weight = torch.cat([A, torch.zeros(D_Z, D_X, dtype=torch.float64)])
    bias = torch.cat([-A @ b, log_var])
    return weight, bias


def _analytic_elbo(W, b, x, mu, log_var):
    # E_q[log N(x; Wz + b, s^2 I)] = log N(x; W mu + b, s^2 I) - tr(W S W^T) / (2 s^2), minus KL(q || N(0, I))
    S = torch.diag_embed(log_var.exp())
    normal = torch.distributions.Normal(mu @ W.T + b, SIGMA)
    expected_loglik = normal.log_prob(x).sum(-1) - torch.einsum("ij,bjk,ik->b", W, S, W) / (2 * SIGMA**2)
    kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(-1)
    return expected_loglik - kl


def _model_elbo(model, x, L=4000):
    """The model's own per-example ELBO with L samples each, and its Monte-Carlo standard error."""
    torch.manual_seed(0)
    reps = x.repeat(L, 1)  # L independent one-sample estimates per example, through model.loss
    elbo = model.loss(reps, n_samples=1).terms["elbo"].view(L, len(x))
    return elbo.mean(0), elbo.std(0) / math.sqrt(L)


def test_elbo_equals_log_marginal_at_the_true_posterior():
    W, b, x = _ppca()
    model = _vae_with(W, b, *_true_posterior_encoder(W, b))
    log_px = _log_marginal(W, b, x)
    q = model.inference(x)
    mu, log_var = q.loc, q.log_var
    torch.testing.assert_close(_analytic_elbo(W, b, x, mu, log_var), log_px, rtol=0, atol=1e-9)
    elbo, se = _model_elbo(model, x)
    assert torch.all((elbo - log_px).abs() < 5 * se), (elbo - log_px, se)
    # many samples in one call (n_samples) estimate the same number
    torch.manual_seed(1)
    many = model.loss(x, n_samples=4000).terms["elbo"]
    assert torch.all((many - log_px).abs() < 5 * se)
    assert q.event_shape == (D_Z,)


def test_elbo_is_below_log_marginal_for_other_posteriors():
    W, b, x = _ppca()
    log_px = _log_marginal(W, b, x)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        weight = torch.randn(2 * D_Z, D_X, generator=g, dtype=torch.float64) * 0.3
        bias = torch.randn(2 * D_Z, generator=g, dtype=torch.float64) * 0.5
        model = _vae_with(W, b, weight, bias)
        q = model.inference(x)
        mu, log_var = q.loc, q.log_var
        analytic = _analytic_elbo(W, b, x, mu, log_var)
        assert torch.all(analytic < log_px)
        elbo, se = _model_elbo(model, x, L=2000)
        assert torch.all((elbo - analytic).abs() < 5 * se)  # the model computes that ELBO
        assert torch.all(elbo < log_px + 3 * se)


def test_mlp_without_hidden_layers_is_one_linear_map():
    net = mlp([5, 3], "relu")
    assert len(net) == 1 and isinstance(net[0], nn.Linear)
    assert len(mlp([5, 4, 3], "relu")) == 3  # Linear, act, Linear: nothing after the last layer
    dec = MLPDecoder(2, [], (1, 2, 3))
    assert dec(torch.zeros(4, 2)).shape == (4, 1, 2, 3)


# -- the conv nets ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 12, 16), (1, 28, 28), (2, 8, 4)])
def test_conv_nets_take_any_size_divisible_by_4_and_any_channels(shape):
    cfg = config_from_params(input_shape=shape, latent_dim=5, architecture="conv", likelihood="gaussian")
    model = build_model(cfg)
    x = torch.randn(3, *shape)
    assert model.encode(x).shape == (3, 5)
    assert model.decode(torch.randn(3, 5)).shape == (3, *shape)
    out = model.loss(x)
    assert out.loss.ndim == 0 and out.terms["elbo"].shape == (3,)


@pytest.mark.parametrize("shape", [(1, 28, 30), (1, 30, 28), (784,), (2, 2, 2)])
def test_conv_nets_refuse_other_shapes(shape):
    with pytest.raises(ConfigError, match="convolutional"):
        build_model(config_from_params(input_shape=shape, architecture="conv"))
    with pytest.raises(ConfigError):
        ConvEncoder(shape, 4)
    with pytest.raises(ConfigError):
        ConvDecoder(4, shape)


def test_conv_vae_estimator_refuses_28_by_30_images():
    X = np.random.default_rng(0).random((20, 1, 28, 30), dtype=np.float32)
    with pytest.raises(ConfigError, match="28x30"):
        ConvVAE(latent_dim=4, epochs=1, batch_size=8, device="cpu").fit(X)


# -- the config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"latent_dim": 0}, "latent"),
        ({"hidden": (0,)}, "hidden"),
        ({"kind": "gan"}, "kind"),
        ({"likelihood": "continuous-bernoulli", "kind": "ae"}, "likelihood"),
        ({"posterior": "cauchy"}, "posterior"),
        ({"kind": "ae", "sparsity": "l2"}, "sparsity"),
        ({"kind": "ae", "sparsity": "kl", "sparsity_target": 1.5}, "rho"),
        ({"kind": "ae", "noise": "blur"}, "noise"),
        ({"kind": "ae", "noise": "masking", "noise_level": 2.0}, "probability"),
        ({"architecture": "transformer"}, "architecture"),
        ({"sparsity": "l1"}, "does not apply to a VAE"),
        ({"kind": "ae", "prior": "vamp"}, "does not apply to an autoencoder"),
    ],
)
def test_model_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        config_from_params(**kwargs)


def test_model_config_round_trips_through_a_dict():
    cfg = config_from_params(input_shape=[1, 28, 28], hidden=[64, 32], posterior="laplace", n_classes=10)
    again = config_from_dict(cfg.to_dict())
    assert again == cfg and again.input_shape == (1, 28, 28)
    with pytest.raises(ConfigError, match="unknown fields"):
        config_from_dict({**cfg.to_dict(), "wings": 2})


def test_loss_terms_are_consistent():
    model = build_model(config_from_params(input_shape=(10,), latent_dim=2, hidden=(8,)))
    x = torch.rand(5, 10)
    torch.manual_seed(0)
    out = model.loss(x, beta=0.5, n_samples=3)
    t = out.terms
    assert all(v.shape == (5,) for v in t.values())
    torch.testing.assert_close(t["elbo"], t["log_likelihood"] - t["kl"])
    torch.testing.assert_close(out.loss, -(t["log_likelihood"] - 0.5 * t["kl"]).mean())
    assert torch.all(t["elbo"] <= 0)  # Bernoulli log-likelihood of data in [0, 1] is <= 0
    assert torch.all(t["kl"] >= 0)


def test_conditional_module_needs_labels():
    model = build_model(config_from_params(input_shape=(10,), latent_dim=2, hidden=(8,), n_classes=3))
    x = torch.rand(4, 10)
    with pytest.raises(ConfigError, match="label"):
        model.loss(x)
    c = torch.tensor([0, 1, 2, 1])
    torch.manual_seed(0)
    assert model.loss(x, c, n_samples=2).terms["elbo"].shape == (4,)
    assert model.sample(4, c).shape == (4, 10)


@pytest.mark.parametrize("kind", ["gaussian", "masking", "salt-and-pepper"])
def test_corrupt(kind):
    torch.manual_seed(0)
    x = torch.full((200, 50), 0.5)
    y = corrupt(x, kind, 0.3)
    assert y.shape == x.shape
    changed = (y != x).float().mean().item()
    if kind == "gaussian":
        assert changed == 1.0 and abs((y - x).std().item() - 0.3) < 0.01
    elif kind == "masking":
        assert abs(changed - 0.3) < 0.02 and set(y.unique().tolist()) == {0.0, 0.5}
    else:
        assert abs(changed - 0.3) < 0.02 and set(y.unique().tolist()) == {0.0, 0.5, 1.0}
    with pytest.raises(ConfigError):
        corrupt(x, "blur", 0.3)


# -- every model learns ---------------------------------------------------------------------------

FAST = dict(epochs=3, batch_size=50, lr=3e-3, device="cpu", val_fraction=0.1)
MODELS = {
    "ae": lambda: Autoencoder(latent_dim=16, hidden=(64,), **FAST),
    "sparse-ae-l1": lambda: SparseAutoencoder("l1", latent_dim=16, hidden=(64,), **FAST),
    "sparse-ae-kl": lambda: SparseAutoencoder("kl", sparsity_weight=0.1, latent_dim=16, hidden=(64,), **FAST),
    "denoising-gaussian": lambda: DenoisingAutoencoder("gaussian", latent_dim=16, hidden=(64,), **FAST),
    "denoising-masking": lambda: DenoisingAutoencoder("masking", latent_dim=16, hidden=(64,), **FAST),
    "denoising-salt-and-pepper": lambda: DenoisingAutoencoder("salt-and-pepper", latent_dim=16, hidden=(64,), **FAST),
    "ae-mse": lambda: Autoencoder(latent_dim=16, hidden=(64,), likelihood="gaussian", **FAST),
    "vae-bernoulli": lambda: VAE(latent_dim=8, hidden=(64,), **FAST),
    "vae-continuous-bernoulli": lambda: VAE(latent_dim=8, hidden=(64,), likelihood="continuous-bernoulli", **FAST),
    "vae-gaussian": lambda: VAE(latent_dim=8, hidden=(64,), likelihood="gaussian", sigma=0.2, **FAST),
    "vae-gaussian-learned": lambda: VAE(latent_dim=8, hidden=(64,), likelihood="gaussian", learn_sigma=True, **FAST),
    "vae-laplace": lambda: VAE(latent_dim=8, hidden=(64,), posterior="laplace", **FAST),
    "vae-student-t": lambda: VAE(latent_dim=8, hidden=(64,), posterior="student-t", **FAST),
    "vae-logistic": lambda: VAE(latent_dim=8, hidden=(64,), posterior="logistic", **FAST),
    "conv-vae": lambda: ConvVAE(latent_dim=8, **{**FAST, "epochs": 2}),
    "cvae": lambda: ConditionalVAE(latent_dim=8, hidden=(64,), **FAST),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_learns_on_real_digits(name, digits):
    X, y = digits
    est = MODELS[name]()
    assert est.fit(X, y if name == "cvae" else None) is est
    h = est.history_
    assert len(h) == est.epochs
    first, last = h[0], h[-1]
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in h)
    # The first epoch's mean already includes a lot of learning, so compare held-out losses too:
    # last epoch against the first, by a clear margin relative to the loss's own scale.
    scale = abs(first["train_loss"]) + 1.0
    assert first["train_loss"] - last["train_loss"] > 0.05 * scale, [r["train_loss"] for r in h]
    assert first["val_loss"] - last["val_loss"] > 0.02 * scale, [r["val_loss"] for r in h]
    if "vae" in name:
        assert {"train_elbo", "train_kl", "val_elbo"} <= set(last)
        assert last["train_loss"] == pytest.approx(-last["train_elbo"], rel=1e-4)


@pytest.mark.slow
def test_vae_reaches_a_stated_elbo_on_mnist(shared_data):
    """A 20-d MLP VAE, 3 epochs on 20 000 MNIST digits: the test -ELBO must fall below 140 nats.

    Measured on this code: 127.0 nats (batch 128, lr 1e-3, hidden 400) on the gray-level test
    set; the bound leaves a margin of about 10 %.
    """
    train = load_dataset("mnist", "train", data_dir=shared_data / "mnist", limit=20000)
    test = load_dataset("mnist", "test", data_dir=shared_data / "mnist")
    est = VAE(latent_dim=20, hidden=(400,), epochs=3, batch_size=128, lr=1e-3, device="cpu", val_fraction=0.0).fit(train.X)
    from vaekit.train import evaluate_loss

    torch.manual_seed(0)
    terms = evaluate_loss(est.model_, torch.from_numpy(est.prepare_X(test.X)), None)
    assert terms["loss"] == pytest.approx(-terms["elbo"], rel=1e-6)
    assert terms["loss"] < 140.0, terms
