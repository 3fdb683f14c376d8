"""The training objectives of a VAE: one function each, registered under its name.

Every objective has the same signature, ``objective(model, x, c, options) -> LossOutput``:
``model`` is a VAE (a ``vaekit.models.DensityModel``: ``inference``, ``log_likelihood``, ``kl``,
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

from .errors import ConfigError
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


@dataclass
class ImportanceWeights:
    """Log importance weights and their two parts, each (k, B), or (B, k) in the draws-last layout.

    ``log_w`` = ``log_likelihood`` + beta * ``log_ratio``: log p(x|z_i) and log p(z_i) - log q(z_i|x)
    in nats, z_i ~ q(z|x).
    """

    log_w: Tensor
    log_likelihood: Tensor
    log_ratio: Tensor
    draws_axis: int = 0

    def bound(self) -> Tensor:
        """log (1/k) sum_i w_i per example, nats: the importance-weighted bound of Burda et al.
        (2015, eq. 8) with beta = 1 (k = 1: a one-sample ELBO)."""
        return self.log_w.logsumexp(self.draws_axis) - math.log(self.log_w.shape[self.draws_axis])


def draws_last(t: Tensor) -> Tensor:
    """``t`` (K draws, B, ...) as (B, ..., K), contiguous: reduce over the draws with ``dim=-1``.

    A reduction over the leading axis is vectorized across the other elements, and an element's
    sum order then depends on where it falls in the flat array (a SIMD lane or the scalar tail):
    a row's score would change in its last bits with its position in the batch. Over the last,
    contiguous axis every row is summed the same way.
    """
    return t.movedim(0, -1).contiguous()


def importance_weights(model, x: Tensor, c: Tensor | None = None, k: int = 1, *, beta: float = 1.0, q=None, p=None,
                       noise: Tensor | None = None, score=None, dtype=None, layout: str = "draws_first") -> ImportanceWeights:
    """log w_i = log p(x|z_i) + beta * (log p(z_i) - log q(z_i|x)), z_i ~ q(z|x), in nats: the one
    importance-weighting routine (training's IWAE objective, evaluation, anomaly scores).

    Needs only a model's ``inference``, ``log_likelihood`` and ``prior`` (the DensityModel contract).
    With beta = 1, :meth:`ImportanceWeights.bound` is the bound of Burda et al. (2015); the mean
    over i is a Monte-Carlo ELBO. ``q`` and ``p`` (the prior) may be passed when the caller already
    has them: evaluation draws many chunks of samples from one posterior, and a VampPrior's p(z)
    costs an encoder pass over its pseudo-inputs each time it is built. ``score`` stands in for
    ``model.log_likelihood`` (evaluation passes a compiled one). ``noise``: given standard draws
    (k, code_dim), the same for every row (common random numbers; k is then their count), instead
    of fresh ``q.rsample``. ``dtype``: the two parts are cast to it before they are added.
    ``layout="draws_last"``: every tensor as (B, k), contiguous (see :func:`draws_last`).
    """
    q = model.inference(x, c) if q is None else q
    p = model.prior() if p is None else p
    z = q.rsample((k,)) if noise is None else _from_noise(q, noise)
    log_lik, log_ratio = (score or model.log_likelihood)(z, x, c), p.log_prob(z) - q.log_prob(z)
    if dtype is not None:
        log_lik, log_ratio = log_lik.to(dtype), log_ratio.to(dtype)
    parts = (log_lik + beta * log_ratio, log_lik, log_ratio)
    if layout == "draws_last":
        return ImportanceWeights(draws_last(parts[0]), draws_last(parts[1]), draws_last(parts[2]), draws_axis=-1)  # spelt out for mypy
    if layout != "draws_first":
        raise ValueError(f"unknown layout {layout!r}; expected 'draws_first' (k, B) or 'draws_last' (B, k)")
    return ImportanceWeights(*parts)


def _from_noise(q, noise: Tensor) -> Tensor:
    """Draws of q from given standard noise: the posterior's own reparameterization of it."""
    if not hasattr(q, "reparameterize"):
        raise ConfigError(f"draws from given standard noise need a location-scale posterior, not {type(q).__name__}")
    return q.reparameterize(noise)


def log_importance_weights(model, x: Tensor, c: Tensor | None = None, k: int = 1, **options) -> Tensor:
    """The log weights of :func:`importance_weights` alone, shape (k, B), nats."""
    return importance_weights(model, x, c, k, **options).log_w


def _draw(model, x: Tensor, c: Tensor | None, n_samples: int):
    """q(z|x), n_samples reparameterized draws z (L, B, code_dim) and the mean log p(x|z)."""
    q = model.inference(x, c)
    z = q.rsample((n_samples,))  # the reparameterization trick, z = mu + sigma * eps
    return q, z, model.log_likelihood(z, x, c).mean(0)


@OBJECTIVES.register("elbo", options={"beta": "beta", "n_samples": "n_samples"},
                     help="the beta-ELBO with L = --mc-samples draws of z (Kingma & Welling 2014, eq. 7)")
def elbo(model, x: Tensor, c: Tensor | None, options: dict) -> LossOutput:
    """-(E_q[log p(x|z)] - beta KL(q(z|x) || p(z))) with L = ``n_samples`` draws; terms ``elbo``
    (<= 0 for discrete data), ``log_likelihood`` = E_q[log p(x|z)] and ``kl`` (closed form where one
    exists), in nats per example."""
    beta = options.get("beta", 1.0)
    q, z, log_lik = _draw(model, x, c, options.get("n_samples", 1))
    kl = model.kl(q, z)
    loss = -(log_lik - beta * kl).mean()
    return LossOutput(loss, {"elbo": log_lik - kl, "log_likelihood": log_lik, "kl": kl})


@OBJECTIVES.register("iwae", options={"beta": "beta", "n_samples": "n_samples"},
                     help="the importance-weighted bound with k = --mc-samples (Burda et al. 2015)")
def iwae(model, x: Tensor, c: Tensor | None, options: dict) -> LossOutput:
    """The importance-weighted bound with k = ``n_samples`` (Burda et al. 2015, eq. 8), term
    ``iwae_bound``; its gradient flows through the normalized weights (the logsumexp is
    differentiated as a whole; nothing is detached). With k = 1 it is the ELBO."""
    k = options.get("n_samples", 1)
    w = importance_weights(model, x, c, k, beta=options.get("beta", 1.0))
    bound = w.bound()
    return LossOutput(-bound.mean(), {"iwae_bound": bound, "elbo": w.log_w.mean(0)})


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
    q, z, log_lik = _draw(model, x, c, options.get("n_samples", 1))
    floored = model.kl_dims(q, z).mean(0).clamp(min=options.get("free_bits", 0.0)).sum()
    kl = model.kl(q, z)
    loss = -(log_lik.mean() - beta * floored)
    return LossOutput(loss, {"elbo": log_lik - kl, "log_likelihood": log_lik, "kl": kl, "free_bits_kl": floored})
