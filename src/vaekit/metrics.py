"""Tensor-level measurements that training and evaluation share.

Functions of a torch module and tensors only (no estimators, no NumPy, no files): the mean loss
and its terms over a whole split, the running sums the training loop keeps, the
importance-weighted log-likelihood and the KL per latent dimension. ``train`` logs them every
epoch; ``evaluate`` reports them.
Every log-likelihood-like number is in nats per example.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, MixtureSameFamily, kl_divergence

from . import distributions as D
from .errors import ConfigError
from .objectives import importance_weights

DEFAULT_K = 5000  # importance samples of the test log-likelihood (Burda et al. 2015 report k = 5000)


@torch.no_grad()
def evaluate_loss(model: nn.Module, X: Tensor, y: Tensor | None, *, beta: float = 1.0, batch_size: int = 1024) -> dict[str, float]:
    """Mean loss and terms over all of X (not one batch), per example, in eval mode."""
    was_training = model.training
    model.eval()
    sums: dict[str, Tensor] = {}
    for i in range(0, len(X), batch_size):
        xb = X[i : i + batch_size]
        out = model.loss(xb, None if y is None else y[i : i + batch_size], beta=beta)
        accumulate_terms(sums, out, len(xb))
    model.train(was_training)
    return {k: v.item() / len(X) for k, v in sums.items()}


def accumulate_terms(sums: dict[str, Tensor], out, batch: int) -> None:
    """Add a batch's loss and terms (a LossOutput of ``batch`` examples) to running sums, in place.

    Per-example terms add their sum; a 0-d (batch-level) term adds itself times ``batch``, so that
    dividing by the number of examples gives means in both cases. Stays on the device (no sync).
    """
    sums["loss"] = sums.get("loss", 0) + out.loss.detach() * batch
    for name, t in out.terms.items():
        t = t.detach()
        total = t.sum() if t.dim() else t * batch
        sums[name] = sums.get(name, 0) + total


def format_terms(terms: dict[str, float]) -> str:
    """``"elbo -90.123, kl 20.456"``: the terms of a metrics dict (all but ``loss``), for log lines."""
    return ", ".join(f"{k} {v:.3f}" for k, v in terms.items() if k != "loss")


EVAL_ROWS = 2500  # decoder rows per chunk of importance samples; see iw_log_likelihood
# Importance samples (examples x k) from which a CPU evaluation compiles the decoder's pass: a
# compilation costs 5-25 s once, small beside a pass that takes minutes from here on.
COMPILE_SAMPLES = 20_000_000


@torch.no_grad()
def iw_log_likelihood(model: nn.Module, X: Tensor, y: Tensor | None = None, *, k: int = DEFAULT_K,
                      batch_size: int = 100, chunk_size: int | None = None, max_rows: int = EVAL_ROWS,
                      seed: int = 0, progress=False, compile: bool | None = None) -> Tensor:
    """Importance-weighted estimate of log p(x) for each example (Burda et al. 2015, eq. 8), in nats.

    log p(x) ~= log (1/k) sum_i p(x, z_i) / q(z_i|x),  z_i ~ q(z|x).

    Examples go through in batches of ``batch_size`` and the k samples in chunks of ``chunk_size``
    (default: as many as keep ``batch_size * chunk_size <= max_rows`` decoder rows); chunks are
    combined with a running logsumexp, so memory is bounded whatever k is. The default of 2500 rows
    keeps a chunk's logits (2500 x 784 floats, 8 MB) near the CPU's caches, so the elementwise
    passes after the decoder's product (softplus, the dot with x, the sum) run from cache rather
    than memory, and keeps its tensors small enough for the allocator to reuse instead of mapping
    fresh pages for every chunk: about 1.5x faster than 50 000 rows (bench/eval_speed.py). The estimate is a lower
    bound in expectation that rises towards log p(x) as k grows; k=1 is a one-sample ELBO.
    Returns a float64 tensor of shape (N,) on the CPU. ``progress``: True for a tqdm bar over the
    examples (k = 5000 on 10 000 images takes minutes), or a function called as ``progress(done, total)``
    after each batch of examples (the CLI's plain lines where stderr is not a terminal).

    ``compile``: score the samples with ``torch.compile(model.log_likelihood)``, which fuses the
    passes after each matrix product (bias, ReLU, softplus, the dot with x and the sums) into a few
    loops: 1.05x to 1.26x faster on a 2-core CPU, 1.2x on the trained mnist-best model and the
    trained plain VAE (bench/eval_speed.py, docs/benchmarks.md); estimates agree with the
    uncompiled ones to about 1e-4 nats. The default (None) compiles on the CPU when
    ``len(X) * k >= COMPILE_SAMPLES``, where the 5-25 s the compilation takes is small beside the
    pass. Where compiling fails (no C++ compiler, say), one warning, and the uncompiled pass is used.
    """
    if not model.family.has_density:
        raise ConfigError("the importance-weighted log-likelihood needs a VAE; an autoencoder has no posterior or prior")
    if k < 1:
        raise ConfigError(f"the number of importance samples k must be at least 1, got {k}")
    chunk = chunk_size or max(1, min(k, max_rows // max(1, batch_size)))
    was_training = model.training
    model.eval()
    out = []
    bar = None
    report = progress if callable(progress) else None
    if progress and report is None:
        from tqdm.auto import tqdm

        # Counted in importance samples, so the rate (samples/s) and the time left are exact even
        # when a batch is split into chunks; the postfix counts examples done.
        bar = tqdm(total=len(X) * k, desc=f"IW log p(x), k={k}", unit="sample", unit_scale=True, leave=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        prior = model.prior()  # built once: it does not depend on x (a VampPrior's is an encoder pass)
        if compile is None:
            compile = X.device.type == "cpu" and len(X) * k >= COMPILE_SAMPLES
        score = _CompiledScore(model) if compile else None
        for i in range(0, len(X), batch_size):
            xb = X[i : i + batch_size]
            cb = None if y is None else y[i : i + batch_size]
            q = model.inference(xb, cb)
            acc = torch.full((len(xb),), -math.inf, dtype=torch.float64, device=xb.device)
            done = 0
            while done < k:
                s = min(chunk, k - done)
                log_w = importance_weights(model, xb, cb, s, q=q, p=prior, score=score).log_w.double()  # (s, B): log p(x, z_i) - log q(z_i|x)
                acc = torch.logaddexp(acc, torch.logsumexp(log_w, 0))
                done += s
            out.append((acc - math.log(k)).cpu())
            if bar is not None:
                bar.set_postfix_str(f"{i + len(xb)}/{len(X)} examples", refresh=False)
                bar.update(len(xb) * k)
            if report is not None:
                report(i + len(xb), len(X))
    if bar is not None:
        bar.close()
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)


class _CompiledScore:
    """``model.log_likelihood`` under torch.compile; the uncompiled method if compiling fails.

    Compilation happens at the first call of each shape (at most four: the full and the last batch,
    the full and the last chunk), so that is where a missing C++ compiler or an unsupported
    operation shows. The uncompiled pass computes the same number, so evaluation goes on with it.
    """

    def __init__(self, model: nn.Module):
        self.eager = model.log_likelihood
        self.fn = torch.compile(self.eager, dynamic=False)

    def __call__(self, z: Tensor, x: Tensor, c: Tensor | None) -> Tensor:
        if self.fn is not self.eager:
            try:
                return self.fn(z, x, c)
            except Exception as err:  # any failure of the compiler stack: fall back, once
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                warnings.warn(f"torch.compile failed ({type(err).__name__}: {first}); evaluating without it "
                              "(slower, same result); pass compile=False to skip the attempt", RuntimeWarning, stacklevel=2)
                self.fn = self.eager
        return self.eager(z, x, c)


@torch.no_grad()
def kl_per_dimension(model: nn.Module, X: Tensor, y: Tensor | None = None, *, batch_size: int = 1024,
                     n_samples: int = 64, seed: int = 0) -> Tensor:
    """Mean KL(q(z_j|x) || p(z_j)) over the examples, for each latent dimension j, in nats.

    p(z_j) is the j-th marginal of the model's own prior (``Prior.marginals``): N(0, 1) for the
    standard normal prior, the one-dimensional mixture (1/K) sum_k q(z_j|u_k) for the VampPrior.
    Closed form where torch.distributions has one (a Normal posterior against N(0, 1)); otherwise
    the Monte-Carlo estimate E_q[log q(z_j|x) - log p(z_j)] with ``n_samples`` seeded draws per
    example. Against N(0, I) the dimensions' KLs add up to the KL term of the ELBO; against the
    VampPrior, which does not factorize, they need not. A prior without known marginals (two
    stochastic layers) refuses with a ConfigError before any work. Returns a float64 tensor of
    shape (latent_dim,) on the CPU. Training logs it on the validation split every epoch (one
    encoder pass) under the standard normal prior, so the report can show which units switch on.
    """
    if not model.family.has_density:
        raise ConfigError("KL per dimension needs a VAE; an autoencoder has no posterior or prior")
    was_training = model.training
    model.eval()
    total = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        p = model.prior_marginals()  # batch (D,); refuses where unknown
        for i in range(0, len(X), batch_size):
            q = model.inference(X[i : i + batch_size], None if y is None else y[i : i + batch_size])
            base = D.factors(q)  # the per-dimension distributions: batch (B, D)
            try:
                kl = kl_divergence(base, p.expand(base.batch_shape))
            except NotImplementedError:
                kl = _monte_carlo_kl(base, p, n_samples)
            s = kl.sum(0).double().cpu()
            total = s if total is None else total + s
    model.train(was_training)
    return total / len(X)


MC_KL_ELEMENTS = 1 << 22  # log-density entries one Monte-Carlo chunk may hold: (samples, B, D, components)


def _monte_carlo_kl(q: Distribution, p: Distribution, n_samples: int) -> Tensor:
    """E_q[log q(z) - log p(z)] elementwise over q's batch (B, D), from ``n_samples`` draws.

    Draws go in chunks so that a mixture's (samples, B, D, K) component densities stay bounded.
    """
    k = p.mixture_distribution.logits.shape[-1] if isinstance(p, MixtureSameFamily) else 1
    chunk = max(1, MC_KL_ELEMENTS // max(1, q.batch_shape.numel() * k))
    acc, done = 0, 0
    while done < n_samples:
        s = min(chunk, n_samples - done)
        z = q.sample((s,))
        acc = acc + (q.log_prob(z) - p.log_prob(z)).double().sum(0)
        done += s
    return acc / n_samples
