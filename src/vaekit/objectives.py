"""The training objectives of a VAE: one function each, registered under its name.

Every objective has the same signature, ``objective(model, x, c, options) -> LossOutput``:
``model`` is a VAE (anything with ``inference_parts``, ``log_likelihood``, ``kl`` and
``prior``), ``options`` the training options the objective reads (``beta``, ``n_samples``, and
any of its own, each declared once in ``vaekit.options``). ``VAE.loss`` looks the name up in
:data:`vaekit.registry.OBJECTIVES` and never asks which objective it runs; ``--objective``'s
choices are the registry's names.

The functions use tensor methods only, so this module imports no torch and registers at import
time for the command line. To add an objective: one registered function here, its option (if
any) in ``vaekit.options``, and a test (docs/layout.md, "Adding an objective").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .registry import OBJECTIVES

if TYPE_CHECKING:
    from torch import Tensor


@dataclass
class LossOutput:
    """What every model's ``loss`` returns.

    ``loss`` is the scalar the optimizer minimizes (a mean over the batch). ``terms`` holds named
    per-example tensors of shape ``(B,)`` (or 0-d for a batch-level penalty) whose batch means are
    logged; their units are nats per example unless the name says otherwise.
    """

    loss: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)
    unit: str = "nats/example"  # what the loss and terms are measured in, for logs


def log_importance_weights(model, x: Tensor, c: Tensor | None = None, k: int = 1, *,
                           beta: float = 1.0, q=None, p=None, score=None) -> Tensor:
    """log w_i = log p(x|z_i) + beta * (log p(z_i) - log q(z_i|x)), z_i ~ q(z|x): shape (k, B), nats.

    Needs only a model's ``inference``, ``log_likelihood`` and ``prior``. With beta = 1, logsumexp over
    i minus log k is the importance-weighted bound of Burda et al. (2015); the mean over i is a
    Monte-Carlo ELBO. ``q`` and ``p`` (the prior) may be passed when the caller already has them:
    evaluation draws many chunks of samples from one posterior, and a VampPrior's p(z) costs an
    encoder pass over its pseudo-inputs each time it is built. ``score`` stands in for
    ``model.log_likelihood`` (evaluation passes a compiled one).
    """
    q = model.inference(x, c) if q is None else q
    p = model.prior() if p is None else p
    z = q.rsample((k,))
    return (score or model.log_likelihood)(z, x, c) + beta * (p.log_prob(z) - q.log_prob(z))


def _draw(model, x: Tensor, c: Tensor | None, n_samples: int):
    """q(z|x), n_samples reparameterized draws z (L, B, code_dim), the mean log p(x|z) and the posterior's (loc, log_var)."""
    q, loc, log_var = model.inference_parts(x, c)
    z = q.rsample((n_samples,))  # the reparameterization trick, z = mu + sigma * eps
    return q, z, model.log_likelihood(z, x, c).mean(0), (loc, log_var)


@OBJECTIVES.register("elbo", options={"beta": "beta", "n_samples": "n_samples"},
                     help="the beta-ELBO with L = --mc-samples draws of z (Kingma & Welling 2014, eq. 7)")
def elbo(model, x: Tensor, c: Tensor | None, options: dict) -> LossOutput:
    """-(E_q[log p(x|z)] - beta KL(q(z|x) || p(z))) with L = ``n_samples`` draws; terms ``elbo``
    (<= 0 for discrete data), ``log_likelihood`` = E_q[log p(x|z)] and ``kl`` (closed form where one
    exists), in nats per example."""
    beta = options.get("beta", 1.0)
    q, z, log_lik, (loc, log_var) = _draw(model, x, c, options.get("n_samples", 1))
    kl = model.kl(q, z, loc, log_var)
    loss = -(log_lik - beta * kl).mean()
    return LossOutput(loss, {"elbo": log_lik - kl, "log_likelihood": log_lik, "kl": kl})


@OBJECTIVES.register("iwae", options={"beta": "beta", "n_samples": "n_samples"},
                     help="the importance-weighted bound with k = --mc-samples (Burda et al. 2015)")
def iwae(model, x: Tensor, c: Tensor | None, options: dict) -> LossOutput:
    """The importance-weighted bound with k = ``n_samples`` (Burda et al. 2015, eq. 8), term
    ``iwae_bound``; its gradient flows through the normalized weights (the logsumexp is
    differentiated as a whole; nothing is detached). With k = 1 it is the ELBO."""
    k = options.get("n_samples", 1)
    log_w = log_importance_weights(model, x, c, k, beta=options.get("beta", 1.0))
    bound = log_w.logsumexp(0) - math.log(k)
    return LossOutput(-bound.mean(), {"iwae_bound": bound, "elbo": log_w.mean(0)})


@OBJECTIVES.register("free-bits", options={"beta": "beta", "n_samples": "n_samples", "free_bits": "free_bits"},
                     help="the ELBO with each latent dimension's batch-mean KL counted as at least --free-bits nats "
                          "(Kingma et al. 2016)")
def free_bits(model, x: Tensor, c: Tensor | None, options: dict) -> LossOutput:
    """-(E_q[log p(x|z)] - beta * sum_j max(lambda, E_batch[KL_j])): the free-bits objective of
    Kingma et al. (2016, "Improved variational inference with inverse autoregressive flow",
    eq. 15) with one group per latent dimension. A dimension whose KL, averaged over the batch, is
    below lambda = ``free_bits`` nats costs lambda and gets no gradient from the KL, so the encoder
    can use it without being pulled back to the prior (against posterior collapse). Terms:
    ``free_bits_kl`` (the floored sum, batch-level), and ``elbo``, ``log_likelihood``, ``kl`` as
    the ELBO has them, per example. Needs the prior's per-dimension marginals (``kl_dims``)."""
    beta = options.get("beta", 1.0)
    q, z, log_lik, (loc, log_var) = _draw(model, x, c, options.get("n_samples", 1))
    floored = model.kl_dims(q, z).mean(0).clamp(min=options.get("free_bits", 0.0)).sum()
    kl = model.kl(q, z, loc, log_var)
    loss = -(log_lik.mean() - beta * floored)
    return LossOutput(loss, {"elbo": log_lik - kl, "log_likelihood": log_lik, "kl": kl, "free_bits_kl": floored})
