"""The disentangling objectives: beta-TCVAE (Chen et al. 2018) and FactorVAE (Kim & Mnih 2018).

Both penalize the total correlation TC = KL(q(z) || prod_j q(z_j)) of the aggregate posterior
q(z) = E_p(x)[q(z|x)], the part of the ELBO's KL that ties the code's dimensions together.
beta-TCVAE estimates it from the minibatch; FactorVAE trains a discriminator to tell codes
z ~ q(z) from codes whose dimensions were shuffled across the batch (draws of prod_j q(z_j)).

Registered like every objective, ``(model, x, c, options) -> LossOutput`` (vaekit.objectives), and
with no torch at import, so that ``--objective``'s choices list them. Capability flags on each
registration say what a model must offer: ``needs_standard_normal_prior`` (the dimension-wise
terms split log p(z) over the dimensions), ``needs_factorized_posterior`` (q(z_j|x) must exist
alone), ``needs_dataset_size`` (the training loop passes N as ``dataset_size``) and
``discriminator`` (the training loop builds one :class:`Discriminator` per run and passes it).
``vaekit.options.check_params`` reads them to refuse a model that cannot be trained so.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .errors import ConfigError
from .objectives import LossOutput, _draw
from .registry import OBJECTIVES

if TYPE_CHECKING:
    from torch import Tensor

_NEEDS = {"needs_standard_normal_prior": True, "needs_factorized_posterior": True}


def _factors(q, objective: str):
    """q(z_j|x) of each dimension (batch (B, D)), or a one-line refusal for a posterior without them."""
    base = getattr(q, "base_dist", None)
    if base is None or getattr(q, "reinterpreted_batch_ndims", None) != 1:
        raise ConfigError(f"the {objective} objective needs a posterior over independent dimensions, not {type(q).__name__}; "
                          "use one stochastic layer (top_latent_dim=0)")
    return base


def _marginals(model, objective: str):
    """p(z_j) of each dimension; the objective is refused where p(z) does not factorize."""
    if not model.config.prior_component.standard_normal:
        raise ConfigError(f"the {objective} objective needs a prior that factorizes over the dimensions; use prior='normal'")
    return model.prior_marginals()


def tc_decomposition(q, z: Tensor, log_prior_dims: Tensor, dataset_size: int, estimator: str = "mws") -> dict[str, Tensor]:
    """The KL's three parts per draw, from the minibatch (Chen et al. 2018, eq. 2):

    ``mi`` = log q(z|x) - log q(z), ``tc`` = log q(z) - sum_j log q(z_j), ``dim_kl`` = sum_j log q(z_j) - log p(z_j),
    each of shape (L, B) in nats. ``q``: a posterior over independent dimensions, batch (B,); ``z``: its
    draws (L, B, D); ``log_prior_dims``: log p(z_j), (L, B, D); N = ``dataset_size``.

    ``estimator="mws"``, minibatch-weighted sampling (Chen et al., sec. 3, as their code has it):
    q(z_i) ~ sum_k q(z_i|x_k) / (N M) over the batch's M examples k, and likewise each q(z_ij). It
    is biased: where the posteriors overlap it reads log q(z) - log N, so TC comes out about
    (D - 1) log N too high and the dimension-wise KL D log N too low (their sum is right).
    ``"stratified"``: the example's own term weighted 1/N and the batch's M - 1 others
    (N - 1) / (N (M - 1)) each, an unbiased estimate of q(z_i) (the idea of Chen et al.'s
    minibatch stratified sampling, app. C.2, with the others weighted alike); a collapsed code gets
    MI = TC = 0. The three add up to log q(z|x) - log p(z) draw by draw with either.
    """
    base = q.base_dist
    batch = z.shape[-2]
    pairs = base.log_prob(z.unsqueeze(-2))  # (L, B, B, D): log q(z_{i,j} | x_k), draw i's dimension j under example k
    if estimator == "mws":
        log_w = pairs.new_full((batch, batch), -math.log(dataset_size * batch))
    elif estimator == "stratified":
        log_w = pairs.new_full((batch, batch), math.log(max(dataset_size - 1, 1e-300) / (dataset_size * max(batch - 1, 1))))
        log_w.fill_diagonal_(-math.log(dataset_size))
    else:
        raise ConfigError(f"unknown total-correlation estimator {estimator!r}; choose mws or stratified")
    log_q_joint = (pairs.sum(-1) + log_w).logsumexp(-1)
    log_q_dims = (pairs + log_w.unsqueeze(-1)).logsumexp(-2).sum(-1)
    log_q_given_x = base.log_prob(z).sum(-1)
    log_p = log_prior_dims.sum(-1)
    return {"mi": log_q_given_x - log_q_joint, "tc": log_q_joint - log_q_dims, "dim_kl": log_q_dims - log_p}


@OBJECTIVES.register("beta-tcvae", options={"n_samples": "n_samples", "tc_alpha": "tc_alpha", "tc_beta": "tc_beta", "tc_gamma": "tc_gamma",
                                            "tc_estimator": "tc_estimator"},
                     help="the ELBO with its KL split into index-code MI, total correlation and dimension-wise KL, weighted "
                          "--tc-alpha, --tc-beta, --tc-gamma (Chen et al. 2018)",
                     flags={**_NEEDS, "needs_dataset_size": True})
def beta_tcvae(model, x: Tensor, c: Tensor | None, options: dict) -> LossOutput:
    """-(E_q[log p(x|z)] - alpha MI - beta TC - gamma dim-KL) with the terms of :func:`tc_decomposition`
    (``tc_estimator``: minibatch-weighted sampling by default, as the paper trains) and N = ``dataset_size`` (the training set's size, which the
    training loop passes; without it the batch stands for the data set). With alpha = beta =
    gamma = 1 the three terms add up to a Monte-Carlo KL and the loss is the ELBO's in expectation.
    Terms per example in nats: ``mi``, ``tc``, ``dim_kl``, and ``elbo``, ``log_likelihood``, ``kl``
    as the ELBO has them (its KL in closed form where one exists)."""
    q, z, log_lik = _draw(model, x, c, options.get("n_samples", 1))
    _factors(q, "beta-tcvae")
    log_prior_dims = _marginals(model, "beta-tcvae").log_prob(z)
    n = options.get("dataset_size") or len(x)
    parts = {k: v.mean(0) for k, v in tc_decomposition(q, z, log_prior_dims, n, options.get("tc_estimator", "mws")).items()}
    penalty = options.get("tc_alpha", 1.0) * parts["mi"] + options.get("tc_beta", 6.0) * parts["tc"] + options.get("tc_gamma", 1.0) * parts["dim_kl"]
    kl = model.kl(q, z)
    return LossOutput(-(log_lik - penalty).mean(), {"elbo": log_lik - kl, "log_likelihood": log_lik, "kl": kl, **parts})


def permute_dims(z: Tensor) -> Tensor:
    """Each column of z (B, D) shuffled across the batch on its own: draws of prod_j q(z_j) (Kim & Mnih 2018, alg. 2)."""
    import torch

    idx = torch.argsort(torch.rand(z.shape, device=z.device), dim=0)
    return z.gather(0, idx)


class Discriminator:
    """FactorVAE's discriminator and its own Adam: an MLP whose logit s(z) says "from q(z)" against
    "from prod_j q(z_j)", so that E_q[s(z)] estimates the total correlation (Kim & Mnih 2018, eq. 3).

    Not an ``nn.Module`` of the model: it trains beside it and is not saved with it. The paper's net
    is 6 layers of 1000 units with leaky ReLUs (slope 0.2), Adam at 1e-4 with betas (0.5, 0.9). The
    default here is 3 layers of 256 (``discriminator_hidden``): 0.14 M weights against 5 M. At one
    thread of a 2-core AMD EPYC (batch 64, 10-dimensional code, after warm-up), one step of it and
    the TC pass take 4 ms; with 5 layers of 1000, 90 ms, most of the convolutional VAE's own step on
    64x64 images (about 110 ms). On sprites, in 10 minutes, the wider one did not score a higher MIG
    over four seeds (0.183, 0.081, 0.027, 0.021; bench/factorvae_discriminator_pilot.json).
    """

    def __init__(self, code_dim: int, hidden: tuple[int, ...], lr: float, device=None):
        import torch
        from torch import nn

        sizes = (code_dim, *hidden)
        layers: list = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], 1)).to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr, betas=(0.5, 0.9))

    def logit(self, z: Tensor) -> Tensor:
        """s(z) = log D(z) / (1 - D(z)) for codes z (..., D): shape (...)."""
        from .distributions import full_precision  # here, not at the top: the CLI's parser imports this module without torch

        return full_precision(self.net(z)).squeeze(-1)

    def update(self, z: Tensor) -> Tensor:
        """One Adam step on the cross-entropy of z (detached, from q(z)) against its permutation; returns that loss, nats."""
        import torch.nn.functional as F

        z = z.detach()
        loss = 0.5 * (F.softplus(-self.logit(z)).mean() + F.softplus(self.logit(permute_dims(z))).mean())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()


@OBJECTIVES.register("factor-vae", options={"beta": "beta", "n_samples": "n_samples", "factor_gamma": "factor_gamma",
                                            "discriminator_hidden": "discriminator_hidden", "discriminator_lr": "discriminator_lr"},
                     help="the ELBO minus --factor-gamma times the total correlation, which a discriminator of permuted codes "
                          "estimates (Kim & Mnih 2018)",
                     flags={**_NEEDS, "discriminator": Discriminator})
def factor_vae(model, x: Tensor, c: Tensor | None, options: dict) -> LossOutput:
    """-(E_q[log p(x|z)] - beta KL - gamma TC), TC ~ the mean discriminator logit s(z) (Kim & Mnih 2018, eq. 3).

    ``options["discriminator"]`` is the run's :class:`Discriminator` (the training loop builds it);
    in training mode with gradients on, each call first takes one step of it on this batch's codes
    (the TC term then reads the updated discriminator, whose parameters the loss does not train).
    Terms: ``tc`` (the discriminator's estimate, nats per example), ``d_loss`` (its cross-entropy,
    batch-level; 0 when it did not step), and ``elbo``, ``log_likelihood``, ``kl``.
    """
    import torch

    disc = options.get("discriminator")
    if disc is None:
        raise ConfigError("the factor-vae objective needs its discriminator (options['discriminator']), which vaekit.train.fit builds; "
                          "train it with fit or --objective factor-vae")
    q, z, log_lik = _draw(model, x, c, options.get("n_samples", 1))
    _factors(q, "factor-vae")
    _marginals(model, "factor-vae")
    d_loss = disc.update(z[0]) if model.training and torch.is_grad_enabled() else z.new_zeros(())
    tc = disc.logit(z).mean(0)
    kl = model.kl(q, z)
    loss = -(log_lik - options.get("beta", 1.0) * kl - options.get("factor_gamma", 35.0) * tc).mean()
    return LossOutput(loss, {"elbo": log_lik - kl, "log_likelihood": log_lik, "kl": kl, "tc": tc, "d_loss": d_loss})
