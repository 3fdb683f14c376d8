"""The models behind the binarized-MNIST NLL (issue 6): the autoregressive Bernoulli likelihood,
the VampPrior and the cosine learning-rate schedule."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from vaekit import distributions as D
from vaekit.errors import ConfigError
from vaekit.models import build_model, config_from_params, log_importance_weights
from vaekit.train import TrainConfig, scheduled_lr


def _ar(event=(2, 2), hidden=6, seed=0, dropout=0.0):
    torch.manual_seed(seed)
    lik = D.AutoregressiveBernoulliLikelihood(event, hidden, ar_dropout=dropout).double()
    with torch.no_grad():  # the output weights start at zero; give every path a non-zero weight
        for p in lik.parameters():
            p.normal_()
    return lik


def test_autoregressive_likelihood_is_normalized_over_all_binary_images():
    # sum_x p(x|z) = 1 over all 2^D images, for several contexts at once: the masks make the
    # logits a proper chain rule, whatever the weights.
    lik = _ar()
    d = 4
    xs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)), dtype=torch.float64).view(-1, 2, 2)
    params = 2 * torch.randn(3, 1, lik.hidden + d, dtype=torch.float64).expand(3, len(xs), -1)
    total = lik.log_prob(params, xs).exp().sum(-1)
    torch.testing.assert_close(total, torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-12)


def test_autoregressive_logit_of_a_pixel_ignores_that_pixel_and_later_ones():
    lik = _ar(event=(5,), hidden=8)
    params = torch.randn(1, lik.hidden + 5, dtype=torch.float64)
    x = torch.bernoulli(torch.full((1, 5), 0.5, dtype=torch.float64))
    base = lik._logits(params, *lik._x_terms(x))
    for j in range(5):
        flipped = x.clone()
        flipped[0, j] = 1 - flipped[0, j]
        logits = lik._logits(params, *lik._x_terms(flipped))
        torch.testing.assert_close(logits[0, : j + 1], base[0, : j + 1])  # pixels <= j never see x_j
        if j < 4:
            assert not torch.allclose(logits[0, j + 1 :], base[0, j + 1 :])  # later ones do


def test_autoregressive_sequential_draws_match_the_exact_distribution():
    # Sampling pixel by pixel must draw each of the 16 images with the probability log_prob gives.
    lik = _ar()
    params = torch.randn(1, lik.hidden + 4, dtype=torch.float64)
    torch.manual_seed(1)
    n = 20000
    _, draws = lik.sample_sequential(params.expand(n, -1))
    codes = (draws * torch.tensor([8.0, 4.0, 2.0, 1.0], dtype=torch.float64)).sum(-1).long()
    freq = torch.bincount(codes, minlength=16).double() / n
    xs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)), dtype=torch.float64).view(-1, 2, 2)
    exact = lik.log_prob(params.expand(16, -1), xs).exp()
    assert (freq - exact).abs().max() < 4 * math.sqrt(0.25 / n)


def test_autoregressive_mean_is_a_function_of_the_code_and_leaves_the_global_rng_alone():
    # What a reconstruction or decode(z) shows must not change from call to call, nor with the
    # other rows of the batch; it used to follow a draw from the global generator.
    lik = _ar(event=(1, 3, 3), hidden=7)
    params = torch.randn(5, lik.hidden + 9, dtype=torch.float64)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    first = lik.mean(params)
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(lik.mean(params), first, rtol=0, atol=0)
    torch.testing.assert_close(lik.mean(params[[3, 0]]), first[[3, 0]], rtol=0, atol=0)
    assert first.shape == (5, 1, 3, 3) and ((first > 0) & (first < 1)).all()
    # Deciding pixels by uniforms (x_d = 1 when u_d < p_d) is still an exact draw from p(x|z).
    small = _ar()
    p2 = torch.randn(1, small.hidden + 4, dtype=torch.float64)
    n = 20000
    _, draws = small.sample_sequential(p2.expand(n, -1), uniforms=torch.rand(n, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))
    codes = (draws * torch.tensor([8.0, 4.0, 2.0, 1.0], dtype=torch.float64)).sum(-1).long()
    freq = torch.bincount(codes, minlength=16).double() / n
    xs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)), dtype=torch.float64).view(-1, 2, 2)
    assert (freq - small.log_prob(p2.expand(16, -1), xs).exp()).abs().max() < 4 * math.sqrt(0.25 / n)


def test_autoregressive_x_terms_are_shared_across_samples():
    # log p(x|z) for (S, B) samples equals S separate evaluations: the x-side products broadcast.
    lik = _ar(event=(1, 3, 3), hidden=7)
    params = torch.randn(4, 2, lik.hidden + 9, dtype=torch.float64)
    x = torch.bernoulli(torch.full((2, 1, 3, 3), 0.4, dtype=torch.float64))
    got = lik.log_prob(params, x)
    expected = torch.stack([lik(params[s]).log_prob(x) for s in range(4)])
    assert got.shape == (4, 2)
    torch.testing.assert_close(got, expected)
    with torch.no_grad():  # the evaluation path (in-place logits, dot product) gives the same numbers
        torch.testing.assert_close(lik.log_prob(params, x), expected)


def test_autoregressive_dropout_acts_in_training_only_and_keeps_the_logits_mean():
    lik = _ar(event=(1, 3, 3), hidden=40, dropout=0.3)
    plain = _ar(event=(1, 3, 3), hidden=40)
    plain.load_state_dict(lik.state_dict())
    params = torch.randn(2, lik.hidden + 9, dtype=torch.float64)
    x = torch.bernoulli(torch.full((2, 1, 3, 3), 0.5, dtype=torch.float64))
    terms = lik._x_terms(x)
    exact = plain._logits(params, *terms)
    lik.eval()  # evaluation and sampling use every hidden unit: the likelihood without dropout
    torch.testing.assert_close(lik.log_prob(params, x), plain.log_prob(params, x), rtol=0, atol=0)
    torch.testing.assert_close(lik._logits(params, *terms), exact, rtol=0, atol=0)
    lik.train()
    torch.manual_seed(0)
    with torch.no_grad():
        draws = torch.stack([lik._logits(params, *terms) for _ in range(4000)])
    assert not torch.allclose(draws[0], draws[1])  # a fresh mask each pass
    # The logits are linear in the hidden units and inverted dropout keeps each unit's mean, so the
    # logits average to the undropped ones, within five standard errors.
    spread = draws.std(0)
    assert ((draws.mean(0) - exact).abs() <= 5 * spread / math.sqrt(len(draws)) + 1e-12).all()
    assert (spread[:, 1:] > 0).all()  # every pixel after the first reads some hidden unit
    with pytest.raises(ConfigError, match="ar_dropout"):
        D.AutoregressiveBernoulliLikelihood((4,), 6, ar_dropout=1.0)


def test_autoregressive_vae_trains_samples_and_rejects_the_conv_decoder():
    from vaekit import VAE

    rng = np.random.default_rng(0)
    X = (rng.random((256, 1, 6, 6)) < 0.3).astype(np.float32)
    X[:128, :, :3] = 1.0  # two kinds of image: a latent code and pixel dependencies both pay
    m = VAE(likelihood="autoregressive-bernoulli", ar_hidden=32, hidden=32, latent_dim=2, epochs=15, batch_size=32,
            val_fraction=0, device="cpu")
    m.fit(X)
    hist = m.history_
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] - 2
    s = m.sample(3)
    assert s.shape == (3, 1, 6, 6) and ((s >= 0) & (s <= 1)).all()
    with pytest.raises(ConfigError, match="MLP decoder"):
        config_from_params(input_shape=(1, 8, 8), architecture="conv", likelihood="autoregressive-bernoulli")


def test_vamp_prior_log_prob_matches_torch_mixture_and_samples_its_components():
    torch.manual_seed(0)
    k, d = 7, 3
    loc, log_var = torch.randn(k, d, dtype=torch.float64), torch.randn(k, d, dtype=torch.float64)
    ours = D.mixture_of_posteriors(D.posterior("normal", loc, log_var))
    ref = MixtureSameFamily(Categorical(logits=torch.zeros(k, dtype=torch.float64)),
                            Independent(Normal(loc, torch.exp(0.5 * log_var)), 1))
    z = torch.randn(5, 4, d, dtype=torch.float64)
    torch.testing.assert_close(ours.log_prob(z), ref.log_prob(z))
    draws = ours.sample((40000,))
    torch.testing.assert_close(draws.mean(0), ref.mean, atol=0.05, rtol=0)
    # Families without the matmul form go through torch's own mixture.
    lap = D.mixture_of_posteriors(D.posterior("laplace", loc, log_var))
    assert lap.log_prob(z).shape == (5, 4)


def test_clamped_logsumexp_equals_torchs_including_far_terms_infinities_and_gradients():
    # The clamp only skips exp's slow subnormal path: terms hundreds of nats below the largest (as a
    # trained VampPrior's far components are) must change neither the value nor the gradient.
    torch.manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        x = (torch.randn(6, 500, dtype=dtype) * 300).requires_grad_()
        ours, ref = D.logsumexp_clamped(x, -1), torch.logsumexp(x, -1)
        torch.testing.assert_close(ours, ref)
        torch.testing.assert_close(torch.autograd.grad(ours.sum(), x)[0], torch.autograd.grad(ref.sum(), x)[0])
    inf = math.inf
    edge = torch.tensor([[-inf, -inf, -inf], [0.0, -1000.0, 1.0], [inf, 0.0, 1.0], [-inf, 2.0, -inf], [3.0, 3.0, -70.0]])
    torch.testing.assert_close(D.logsumexp_clamped(edge, -1), torch.logsumexp(edge, -1))
    torch.testing.assert_close(D.logsumexp_clamped(edge.t(), 0), torch.logsumexp(edge.t(), 0))
    # Through the mixture prior with components far apart: the same as torch's own mixture.
    loc = torch.linspace(-40, 40, 9, dtype=torch.float64)[:, None].repeat(1, 2)
    log_var = torch.full((9, 2), -2.0, dtype=torch.float64)
    ref = MixtureSameFamily(Categorical(logits=torch.zeros(9, dtype=torch.float64)), Independent(Normal(loc, torch.exp(0.5 * log_var)), 1))
    z = torch.randn(50, 2, dtype=torch.float64) * 30
    torch.testing.assert_close(D.UniformGaussianMixture(loc, log_var).log_prob(z), ref.log_prob(z))


def test_vamp_prior_is_the_mixture_of_posteriors_at_the_pseudo_inputs():
    torch.manual_seed(0)
    model = build_model(config_from_params(input_shape=(6,), latent_dim=2, hidden=(8,), prior="vamp", n_pseudo_inputs=5)).double()
    u = torch.nn.functional.hardtanh(model.latent_prior.pseudo_inputs, 0, 1)
    comps = model.inference(u)  # q(z | u_k), k = 1..5
    z = torch.randn(10, 2, dtype=torch.float64)
    expected = torch.logsumexp(comps.log_prob(z[:, None, :]), -1) - math.log(5)
    torch.testing.assert_close(model.prior().log_prob(z), expected)
    # The importance weights and the ELBO use it (a Monte-Carlo KL), and the pseudo-inputs learn.
    x = torch.bernoulli(torch.full((3, 6), 0.5, dtype=torch.float64))
    assert log_importance_weights(model, x, k=4).shape == (4, 3)
    out = model.loss(x)
    out.loss.backward()
    assert model.latent_prior.pseudo_inputs.grad is not None and model.latent_prior.pseudo_inputs.grad.abs().sum() > 0


def test_vamp_prior_over_two_layers_is_the_mixture_of_the_upper_posteriors_at_the_pseudo_inputs():
    torch.manual_seed(0)
    model = build_model(config_from_params(input_shape=(6,), latent_dim=3, hidden=(8,), prior="vamp", n_pseudo_inputs=5,
                                           top_latent_dim=2, top_hidden=(7,))).double()
    assert model.config.prior == {"name": "two-layer-vamp", "latent_dim": 2, "hidden": [7], "n_pseudo_inputs": 5}
    assert model.config.code_dim == 5
    with torch.no_grad():  # away from the symmetric start, where all K components coincide
        for p in model.parameters():
            p.normal_(0.0, 0.7)
    prior = model.latent_prior
    u = torch.nn.functional.hardtanh(prior.pseudo_inputs, 0, 1)
    upper = prior.q_top(model.q_bottom(u).mean)  # q(z2 | mu1(u_k)), k = 1..5
    assert upper.mean.std(0).min() > 0.1  # distinct components: a single one would fail what follows
    z = torch.randn(10, 5, dtype=torch.float64)
    z1, z2 = z[:, :3], z[:, 3:]
    log_p_z2 = torch.logsumexp(upper.log_prob(z2[:, None, :]), -1) - math.log(5)
    torch.testing.assert_close(model.prior().log_prob(z), log_p_z2 + prior.p_bottom(z2).log_prob(z1))
    # Ancestral draws: z2 from the mixture (its mean and variance are the mixture's), z1 from p(z1|z2).
    draws = model.prior().sample((40_000,))[:, 3:]
    mix_mean = upper.mean.mean(0)
    mix_var = (upper.variance + upper.mean**2).mean(0) - mix_mean**2
    torch.testing.assert_close(draws.mean(0), mix_mean, atol=4 * (mix_var / 40_000).sqrt().max().item(), rtol=0)
    torch.testing.assert_close(draws.var(0), mix_var, rtol=0.05, atol=0)
    # Bounds and gradients run through it; the pseudo-inputs learn.
    x = torch.bernoulli(torch.full((3, 6), 0.5, dtype=torch.float64))
    assert log_importance_weights(model, x, k=4).shape == (4, 3)
    model.loss(x).loss.backward()
    assert prior.pseudo_inputs.grad is not None and prior.pseudo_inputs.grad.abs().sum() > 0


def test_vamp_prior_over_two_layers_refuses_what_the_vamp_prior_refuses():
    with pytest.raises(ConfigError, match="conditional"):
        config_from_params(input_shape=(6,), prior="vamp", top_latent_dim=2, n_classes=3)
    with pytest.raises(ConfigError, match="pseudo-input"):
        config_from_params(input_shape=(6,), prior="vamp", top_latent_dim=2, n_pseudo_inputs=0)
    with pytest.raises(ConfigError, match="not available with the iaf posterior"):
        config_from_params(input_shape=(6,), prior="vamp", top_latent_dim=2, posterior="iaf")


def test_vamp_prior_refuses_a_conditional_model_and_bad_sizes():
    with pytest.raises(ConfigError, match="conditional"):
        build_model(config_from_params(input_shape=(6,), prior="vamp", n_classes=3))
    with pytest.raises(ConfigError, match="pseudo-input"):
        config_from_params(input_shape=(6,), prior="vamp", n_pseudo_inputs=0)
    with pytest.raises(ConfigError, match="unknown prior"):
        config_from_params(input_shape=(6,), prior="flow")


def test_vamp_estimator_samples_from_its_learned_prior_reproducibly():
    from vaekit import VAE

    X = (np.random.default_rng(0).random((64, 6)) < 0.5).astype(np.float32)
    m = VAE(prior="vamp", n_pseudo_inputs=4, hidden=8, latent_dim=2, epochs=1, batch_size=16, val_fraction=0, device="cpu").fit(X)
    a, b = m.sample(5, seed=3), m.sample(5, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, m.sample(5, seed=4))


def test_cosine_schedule_anneals_over_epochs_or_the_time_budget():
    cfg = TrainConfig(lr=1e-3, epochs=10, lr_schedule="cosine")
    assert scheduled_lr(cfg, 0, 0) == pytest.approx(1e-3)
    assert scheduled_lr(cfg, 5, 0) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))
    assert scheduled_lr(cfg, 10, 0) == pytest.approx(1e-5)
    budget = TrainConfig(lr=1e-3, epochs=100_000, max_minutes=2, lr_schedule="cosine")
    assert scheduled_lr(budget, 3, 60) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))  # half the minutes spent
    assert scheduled_lr(budget, 3, 600) == pytest.approx(1e-5)  # past the budget: the floor
    assert scheduled_lr(TrainConfig(lr=0.1), 5, 5) == 0.1
    assert scheduled_lr(TrainConfig(lr=1e-3, epochs=10, lr_schedule="cosine", lr_final=0.5), 10, 0) == pytest.approx(5e-4)
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(lr_schedule="step").validate()


def test_cosine_schedule_reaches_the_optimizer():
    from vaekit.train import fit

    model = build_model(config_from_params(input_shape=(4,), latent_dim=2, hidden=(4,)))
    X = torch.bernoulli(torch.full((40, 4), 0.5))
    seen = []
    orig = torch.optim.Adam.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    torch.optim.Adam.step = spy
    try:
        fit(model, X, cfg=TrainConfig(epochs=4, batch_size=10, lr=1e-2, lr_schedule="cosine", val_fraction=0, device="cpu"), quiet=True)
    finally:
        torch.optim.Adam.step = orig
    assert seen[0] == pytest.approx(1e-2) and all(a > b for a, b in zip(seen, seen[1:]))
    assert seen[-1] == pytest.approx(scheduled_lr(TrainConfig(epochs=4, lr=1e-2, lr_schedule="cosine"), 3.75, 0))


# -- two stochastic layers -------------------------------------------------------------------


def _two_layer(**kw):
    cfg = dict(input_shape=(3,), latent_dim=2, top_latent_dim=2, hidden=(), top_hidden=(), likelihood="gaussian", sigma=0.5)
    cfg.update(kw)
    torch.manual_seed(0)
    return build_model(config_from_params(**cfg)).double()


def test_two_layer_importance_sampling_matches_the_exact_linear_gaussian_likelihood():
    # With linear maps and constant variances, p(z2) p(z1|z2) p(x|z1) is linear-Gaussian, so log p(x)
    # has a closed form; the IW estimate with large k must reach it from below, and the ELBO stay under.
    from vaekit.evaluate import iw_log_likelihood

    model = _two_layer()
    d1 = 2
    with torch.no_grad():
        top = model.latent_prior.decoder_top[0]  # z2 -> (loc, log_var) of z1
        top.weight[d1:] = 0.0  # log-variance independent of z2
        top.bias[d1:] = torch.tensor([-0.5, 0.3], dtype=torch.float64)
    A, a = top.weight[:d1].detach(), top.bias[:d1].detach()
    S1 = torch.diag(top.bias[d1:].detach().exp())
    dec = model.decoder.net[0]
    W, b = dec.weight.detach(), dec.bias.detach()
    cov_z1 = A @ A.T + S1
    cov_x = W @ cov_z1 @ W.T + 0.25 * torch.eye(3, dtype=torch.float64)
    mean_x = W @ a + b
    # A good proposal keeps the estimate's variance small: q's means are the exact posterior means
    # (both are linear here: in x for z1, in z1 for z2), its variances twice the exact marginal ones.
    with torch.no_grad():
        prec1 = torch.linalg.inv(cov_z1) + W.T @ W / 0.25
        post1 = torch.linalg.inv(prec1)
        enc = model.encoder.net[0]
        enc.weight[:d1] = post1 @ W.T / 0.25
        enc.bias[:d1] = post1 @ (torch.linalg.solve(cov_z1, a) - W.T @ b / 0.25)
        enc.weight[d1:] = 0.0
        enc.bias[d1:] = torch.log(2 * torch.diag(post1))
        s1_inv = torch.linalg.inv(S1)
        post2 = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + A.T @ s1_inv @ A)
        up = model.latent_prior.encoder_top[0]
        up.weight[:2] = post2 @ A.T @ s1_inv
        up.bias[:2] = -post2 @ A.T @ s1_inv @ a
        up.weight[2:] = 0.0
        up.bias[2:] = torch.log(2 * torch.diag(post2))
    x = torch.randn(6, 3, dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(mean_x, cov_x).log_prob(x)
    torch.manual_seed(2)
    iw = iw_log_likelihood(model, x, k=20000)
    torch.testing.assert_close(iw, exact, atol=0.02, rtol=0)
    elbo = log_importance_weights(model, x, k=5000).mean(0).detach()
    assert (elbo < exact).all() and (elbo > exact - 3).all()


def test_two_layer_chain_log_prob_adds_the_conditionals_and_samples_are_ancestral():
    model = _two_layer(likelihood="bernoulli", hidden=(5,), top_hidden=(4,))
    x = torch.bernoulli(torch.full((4, 3), 0.5, dtype=torch.float64))
    q = model.inference(x)
    z = q.rsample((3,))
    assert z.shape == (3, 4, 4)
    z1, z2 = z[..., :2], z[..., 2:]
    expected = model.inference(x).head.log_prob(z1) + model.latent_prior.q_top(z1).log_prob(z2)
    torch.testing.assert_close(q.log_prob(z), expected)
    p = model.prior()
    expected_p = D.standard_normal(2, dtype=torch.float64).log_prob(z2) + model.latent_prior.p_bottom(z2).log_prob(z1)
    torch.testing.assert_close(p.log_prob(z), expected_p)
    # The top layer of a prior draw is N(0, I); the bottom one follows p(z1|z2).
    torch.manual_seed(1)
    draws = p.sample((20000,))
    torch.testing.assert_close(draws[:, 2:].mean(0), torch.zeros(2, dtype=torch.float64), atol=0.03, rtol=0)
    torch.testing.assert_close(draws[:, 2:].var(0), torch.ones(2, dtype=torch.float64), atol=0.05, rtol=0)


def test_two_layer_elbo_and_iwae_train_and_the_estimator_round_trips(tmp_path):
    from vaekit import VAE, load

    rng = np.random.default_rng(0)
    X = (rng.random((200, 12)) < np.where(np.arange(12) < 6, 0.8, 0.2)).astype(np.float32)
    for objective in ("elbo", "iwae"):
        m = VAE(top_latent_dim=2, top_hidden=8, latent_dim=3, hidden=16, objective=objective, n_samples=3, epochs=12,
                batch_size=20, val_fraction=0, device="cpu", lr=3e-3).fit(X)
        assert m.history_[-1]["train_loss"] < m.history_[0]["train_loss"] - 1
    assert m.encode(X[:5]).shape == (5, 5) and m.sample(4).shape == (4, 12)
    m.save(tmp_path / "two")
    back = load(tmp_path / "two")
    np.testing.assert_allclose(back.encode(X[:5]), m.encode(X[:5]))


# -- the validation-NLL curve and the best preset from the command line -----------------------


def test_train_logs_the_validation_nll_every_few_epochs_and_plots_it(tmp_path):
    import csv

    from vaekit.cli import main
    from vaekit.plots import curves_figure, read_metrics

    run = tmp_path / "ar"
    argv = ["train", "--dataset", "embedded", "--limit", "300", "--epochs", "4", "--batch-size", "50", "--device", "cpu",
            "--quiet", "--no-report", "--no-figures", "--hidden", "16", "--latent-dim", "3", "--binarize", "dynamic",
            "--likelihood", "autoregressive-bernoulli", "--ar-hidden", "16", "--val-nll-every", "2", "--val-nll-k", "20",
            "--lr-schedule", "cosine", "--out", str(run)]
    assert main(argv) == 0
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [bool(r["val_iw_nll"]) for r in rows] == [False, True, False, True]
    for r in rows[1::2]:
        # An importance-weighted NLL sits below the -ELBO of the same (binarized) validation split.
        assert 0 < float(r["val_iw_nll"]) <= float(r["val_loss"]) + 1.0
    fig = curves_figure(read_metrics(run / "metrics.csv"))
    assert "iw nll" in [ax.get_title() for ax in fig.axes]


def test_dynamic_binarization_scores_validation_on_one_fixed_binary_draw():
    from vaekit.train import evaluate_loss, fit

    torch.manual_seed(0)
    model = build_model(config_from_params(kind="ae", input_shape=(6,), latent_dim=2, hidden=(4,)))
    X, X_val = torch.rand(40, 6), torch.rand(10, 6)
    hist = fit(model, X, cfg=TrainConfig(epochs=1, batch_size=10, binarize="dynamic", device="cpu", seed=3), X_val=X_val, quiet=True)
    fixed = torch.bernoulli(X_val, generator=torch.Generator().manual_seed(3 + 2))
    assert hist[0]["val_loss"] == pytest.approx(evaluate_loss(model, fixed, None)["loss"])
    assert hist[0]["val_loss"] != pytest.approx(evaluate_loss(model, X_val, None)["loss"])


def test_best_preset_builds_the_autoregressive_model_with_a_vampprior_and_a_cosine_schedule():
    from vaekit.cli import build_parser, expand_preset, make_estimator

    args = build_parser().parse_args(expand_preset(["train", "--preset", "mnist-best", "--out", "r"]))
    est = make_estimator(args)
    cfg = est._model_config((1, 28, 28), 0)
    assert cfg.likelihood == {"name": "autoregressive-bernoulli", "ar_hidden": 1000, "ar_dropout": 0.0}
    assert cfg.prior == {"name": "vamp", "n_pseudo_inputs": 500}
    tcfg = est._train_config()
    tcfg.validate()
    assert (tcfg.lr_schedule, tcfg.binarize, tcfg.max_minutes, tcfg.val_nll_every) == ("cosine", "dynamic", 55, 40)
    assert (tcfg.batch_size, tcfg.precision) == (256, "bf16")


def test_figures_name_what_a_learned_prior_or_autoregressive_decoder_shows():
    from vaekit import VAE
    from vaekit.plots import manifold_figure, sample_caption

    X = (np.random.default_rng(0).random((64, 1, 4, 4)) < 0.5).astype(np.float32)
    vamp = VAE(prior="vamp", n_pseudo_inputs=4, hidden=8, latent_dim=2, epochs=1, batch_size=16, val_fraction=0, device="cpu").fit(X)
    with pytest.raises(ConfigError, match="quantiles of an N\\(0, I\\) prior"):
        manifold_figure(vamp)
    assert sample_caption(vamp) == "E[x|z], z ~ p(z)"
    ar = VAE(likelihood="autoregressive-bernoulli", ar_hidden=4, hidden=8, latent_dim=2, epochs=1, batch_size=16,
             val_fraction=0, device="cpu").fit(X)
    assert sample_caption(ar).startswith("P(x_d = 1 | x_<d, z)") and "N(0, I)" in sample_caption(ar)


@pytest.mark.parametrize("flags, expected", [
    (["--prior", "vamp", "--pseudo-inputs", "3"], {"prior": {"name": "vamp", "n_pseudo_inputs": 3}}),
    (["--top-latent-dim", "2", "--top-hidden", "4"], {"prior": {"name": "two-layer", "latent_dim": 2, "hidden": [4]}}),
    (["--prior", "vamp", "--pseudo-inputs", "3", "--top-latent-dim", "2", "--top-hidden", "4"],
     {"prior": {"name": "two-layer-vamp", "latent_dim": 2, "hidden": [4], "n_pseudo_inputs": 3}}),
    (["--likelihood", "autoregressive-bernoulli", "--ar-hidden", "6", "--ar-dropout", "0.2"],
     {"likelihood": {"name": "autoregressive-bernoulli", "ar_hidden": 6, "ar_dropout": 0.2}}),
])
def test_model_flags_reach_the_saved_config_and_the_run_samples(tmp_path, flags, expected):
    import json

    from vaekit.cli import main

    run = tmp_path / "r"
    assert main(["train", "--dataset", "embedded", "--limit", "200", "--epochs", "1", "--batch-size", "50", "--device", "cpu",
                 "--quiet", "--no-report", "--hidden", "16", "--latent-dim", "3", *flags, "--out", str(run)]) == 0
    model_cfg = json.loads((run / "config.json").read_text())["model"]
    assert {k: model_cfg[k] for k in expected} == expected
    assert (run / "samples.png").exists()
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (4, 1, 28, 28)
