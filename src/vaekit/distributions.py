"""Likelihoods p(x|z), posterior families q(z|x) and the prior p(z), on torch.distributions.

A model never branches on "which likelihood" or "which posterior": it asks one of these objects
for a distribution and calls ``log_prob``, ``rsample`` or ``mean`` on it. All distributions are
built with ``validate_args=False`` because they sit on the training hot path.

Shapes: a likelihood's distribution has batch shape ``(B,)`` and event shape = one example's shape
(``(D,)`` for tables, ``(C, H, W)`` for images), so ``log_prob(x)`` returns one number per example,
in nats. Posteriors and the prior have event shape ``(latent_dim,)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import (
    AffineTransform,
    Bernoulli,
    Categorical,
    ContinuousBernoulli,
    Distribution,
    Independent,
    Laplace,
    MixtureSameFamily,
    Normal,
    SigmoidTransform,
    StudentT,
    TransformedDistribution,
    Uniform,
    kl_divergence,
    register_kl,
)

from .errors import ConfigError
from .registry import LIKELIHOODS as _LIKELIHOODS
from .registry import POSTERIORS as _POSTERIORS

_HALF = (torch.bfloat16, torch.float16)


def full_precision(t: Tensor) -> Tensor:
    """A network's output as a density needs it: float32 where autocast ran the network in half precision.

    ``--precision bf16`` runs the training step under autocast, which computes the matmuls and
    convolutions in bfloat16 and leaves their outputs in it; every later op would follow. bfloat16
    keeps 8 significant bits: a log-likelihood of -500 summed in it is off by up to a nat, and the
    log-weights that IWAE and the beta-TCVAE's minibatch estimator put through a logsumexp are
    rounded to steps of 0.25 to 2. So each network's output is cast back here, where it enters a
    distribution; float32 and float64 pass through untouched (the same tensor, no copy).
    """
    return t.float() if t.dtype in _HALF else t

# --------------------------------------------------------------------------------------------
# Likelihoods p(x | z): the decoder outputs unconstrained numbers, by default one per data
# dimension (``param_shape`` says how many the autoregressive one wants).
# --------------------------------------------------------------------------------------------


class Likelihood(nn.Module):
    """Turns decoder outputs into p(x|z). Each subclass is registered in
    :data:`vaekit.registry.LIKELIHOODS`, which holds its name, options and capability flags
    (``component``); it is built as ``cls(event_shape, **its options)``."""

    component = None  # set by the registration

    @property
    def needs_unit_interval(self) -> bool:
        """Whether data must lie in [0, 1] (a flag of the registered component)."""
        return bool(self.component.needs_unit_interval)

    def forward(self, params: Tensor, event_ndims: int | None = None) -> Distribution:  # pragma: no cover - abstract
        """p(x|z) with event shape = the last ``event_ndims`` dims (default: all but the first)."""
        raise NotImplementedError

    def mean(self, params: Tensor) -> Tensor:
        """E[x | z]: what a reconstruction or a sample from the prior shows."""
        return self(params).mean

    def param_shape(self, event_shape: tuple[int, ...]) -> tuple[int, ...]:
        """What the decoder outputs per example: by default one number per data dimension."""
        return tuple(event_shape)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """log p(x|z) in nats per example, from decoder outputs of shape (..., B, *event).

        ``x`` (B, *event) is broadcast over any leading sample dimensions, so L or k samples per
        example never need a copy of the data.
        """
        return self(params, x.dim() - 1).log_prob(x)


def _independent(base: Distribution, event_ndims: int) -> Distribution:
    return Independent(base, event_ndims, validate_args=False)


SOFTPLUS_GROUP = 16  # logits whose softplus terms share one log under torch.compile; see softplus_sum


def softplus_sum(logits: Tensor) -> Tensor:
    """sum_d softplus(l_d) over the last dimension: the normalizer of a Bernoulli on logits.

    Uncompiled, torch's softplus (an exp and a log1p per value). Under torch.compile (what
    evaluation uses for long passes), softplus(l) = relu(l) + log(1 + e^-|l|), and the logs of
    SOFTPLUS_GROUP neighbouring values are taken as the log of their product: each factor lies in
    (1, 2], so 16 of them stay below 2^16 in float32. One exp per value and one log per 16 values
    make the fused loop 1.8x faster; on 784 logits the sum stays within a few 1e-4 nats of float64,
    as float32's own softplus sum does (3.3e-4 against 2.9e-4, measured). In eager mode the grouped
    form is slower (the product is a separate pass), hence the switch.
    """
    if not torch.compiler.is_compiling():
        return F.softplus(logits).sum(-1)
    d = logits.shape[-1]
    whole = d - d % SOFTPLUS_GROUP
    head = logits[..., :whole]
    factors = (1 + torch.exp(-head.abs())).unflatten(-1, (whole // SOFTPLUS_GROUP, SOFTPLUS_GROUP))
    total = head.relu().sum(-1) + torch.log(factors.prod(-1)).sum(-1)
    return total + F.softplus(logits[..., whole:]).sum(-1) if whole < d else total


@_LIKELIHOODS.implements("bernoulli")
class BernoulliLikelihood(Likelihood):
    """Bernoulli on logits (binary cross-entropy): the density view of binary or [0, 1] data."""

    def __init__(self, event_shape: tuple[int, ...] = ()):
        super().__init__()

    def forward(self, params: Tensor, event_ndims: int | None = None) -> Distribution:
        return _independent(Bernoulli(logits=params, validate_args=False), event_ndims or params.dim() - 1)

    def mean(self, params: Tensor) -> Tensor:
        return torch.sigmoid(params)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        event = x.dim() - 1
        if params.dim() > x.dim() and not torch.is_grad_enabled():
            # Evaluation with S samples per example (importance sampling, k = 5000): log p(x|l) =
            # sum_d x_d l_d - softplus(l_d), the data term as a batched dot product against the one
            # copy of x, leaves a single transcendental pass: 2.4x faster than BCE on S copies of x.
            # (Under autograd the einsum's backward costs more than it saves, hence the condition.)
            logits = params.flatten(-event) if event > 1 else params
            data = x.flatten(1) if event > 1 else x
            dot = torch.einsum("...bd,bd->...b", logits, data.to(logits.dtype))
            return dot - softplus_sum(logits)
        bce = F.binary_cross_entropy_with_logits(params, x.expand_as(params), reduction="none")
        return -bce.flatten(-event).sum(-1)


@_LIKELIHOODS.implements("continuous-bernoulli")
class ContinuousBernoulliLikelihood(Likelihood):
    """Continuous Bernoulli (Loaiza-Ganem & Cunningham 2019): a proper density on [0, 1].

    Plain binary cross-entropy on gray levels omits this distribution's normalizing constant, so
    its "nats" are not a log-likelihood; this one is.
    """

    def __init__(self, event_shape: tuple[int, ...] = ()):
        super().__init__()

    def forward(self, params: Tensor, event_ndims: int | None = None) -> Distribution:
        return _independent(ContinuousBernoulli(logits=params, validate_args=False), event_ndims or params.dim() - 1)


@_LIKELIHOODS.implements("gaussian")
class GaussianLikelihood(Likelihood):
    """Normal with the decoder output as mean and a fixed or learned per-dimension sigma.

    The output layer has no squashing: standardized or real-valued data needs the whole real line.
    """

    def __init__(self, event_shape: tuple[int, ...], sigma: float = 1.0, learn_sigma: bool = False):
        super().__init__()
        if sigma <= 0:
            raise ConfigError(f"sigma must be > 0 (the Gaussian likelihood's standard deviation), got {sigma}")
        log_sigma = torch.full(event_shape, math.log(sigma))
        if learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    def forward(self, params: Tensor, event_ndims: int | None = None) -> Distribution:
        scale = self.log_sigma.exp().expand_as(params)
        return _independent(Normal(params, scale, validate_args=False), event_ndims or params.dim() - 1)

    def mean(self, params: Tensor) -> Tensor:
        return params


class _AutoregressiveBernoulli(Distribution):
    """p(x|z) of :class:`AutoregressiveBernoulliLikelihood` as a torch Distribution (no closed-form mean)."""

    arg_constraints: dict = {}

    def __init__(self, likelihood: AutoregressiveBernoulliLikelihood, params: Tensor, event_ndims: int):
        self.likelihood, self.params = likelihood, params
        shape = likelihood.event_shape_
        super().__init__(params.shape[:-1], torch.Size(shape), validate_args=False)

    def log_prob(self, x: Tensor) -> Tensor:
        return self.likelihood.log_prob(self.params, x)

    @torch.no_grad()
    def sample(self, sample_shape=torch.Size()) -> Tensor:
        params = self.params.expand(*sample_shape, *self.params.shape)
        probs, x = self.likelihood.sample_sequential(params.reshape(-1, params.shape[-1]))
        return x.view(*params.shape[:-1], *self.event_shape)

    @property
    def mean(self) -> Tensor:
        return self.likelihood.mean(self.params)


MEAN_PATH_SEED = 0  # the autoregressive likelihood's displayed "mean" follows one fixed draw; see its mean()


@_LIKELIHOODS.implements("autoregressive-bernoulli")
class AutoregressiveBernoulliLikelihood(Likelihood):
    """p(x|z) = prod_d Bernoulli(x_d | x_<d, z): a MADE (Germain et al. 2015) whose hidden layer sees z.

    Pixels are taken in raster order. The decoder outputs ``hidden + D`` numbers per z: a context
    added to the MADE's hidden pre-activations and a base logit per pixel, so

        logit_d = base_d(z) + sum_k V_dk relu(ctx_k(z) + sum_{j <= m_k} A_kj x_j) + sum_{j < d} W_dj x_j,

    where hidden unit k (degree m_k) feeds only pixels d > m_k. The x-side products ``A x`` and
    ``W x`` depend on x alone, so they are computed once per example and broadcast over the S (or
    k = 5000) samples of z: importance sampling costs about what the plain Bernoulli decoder costs.
    Pixels no longer need to be independent given z, which is worth several nats on binarized
    MNIST (PixelVAE, Gulrajani et al. 2017, makes the same point with convolutions). The price:
    E[x|z] has no closed form, so ``mean`` shows the per-pixel probabilities along one sequential
    draw (D network passes).
    """

    def __init__(self, event_shape: tuple[int, ...], ar_hidden: int = 500, ar_dropout: float = 0.0):
        super().__init__()
        hidden = ar_hidden
        if hidden < 1:
            raise ConfigError(f"the autoregressive likelihood needs at least 1 hidden unit, got {hidden}")
        if not 0 <= ar_dropout < 1:
            raise ConfigError(f"ar_dropout is the share of the MADE's hidden units dropped in training, in [0, 1); got {ar_dropout}")
        self.dropout = float(ar_dropout)
        self.event_shape_ = tuple(event_shape)
        d = math.prod(event_shape)
        self.dim, self.hidden = d, hidden
        # Degrees 1..D-1 spread evenly over the hidden units (Germain et al. use random degrees;
        # evenly spread ones give every pixel the same number of hidden units to draw on).
        degrees = 1 + (torch.arange(hidden) * (d - 1)) // hidden
        pixel = torch.arange(1, d + 1)
        self.register_buffer("mask_in", (pixel[None, :] <= degrees[:, None]).float(), persistent=False)  # (H, D)
        self.register_buffer("mask_out", (pixel[:, None] > degrees[None, :]).float(), persistent=False)  # (D, H)
        self.register_buffer("mask_direct", torch.tril(torch.ones(d, d), diagonal=-1), persistent=False)  # (D, D)
        self.w_in = nn.Parameter(torch.randn(hidden, d) / math.sqrt(d))
        self.w_out = nn.Parameter(torch.zeros(d, hidden))
        self.w_direct = nn.Parameter(torch.zeros(d, d))

    def param_shape(self, event_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.hidden + self.dim,)

    def _x_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.flatten(1).to(self.w_in.dtype)
        return x @ (self.w_in * self.mask_in).t(), x @ (self.w_direct * self.mask_direct).t()

    def _logits(self, params: Tensor, x_hidden: Tensor, x_direct: Tensor) -> Tensor:
        ctx, base = params.split([self.hidden, self.dim], dim=-1)
        # --ar-dropout (training only) regularizes the hidden units that read the pixels, where a decoder
        # overfits a fixed binarization; evaluation and sampling use every unit. On dynamically binarized
        # MNIST (a MADE of 500 units) it cost more than it saved over an hour (docs/results.md), so it defaults to 0.
        h = F.dropout(torch.relu(ctx + x_hidden), self.dropout, self.training)
        return base + h @ (self.w_out * self.mask_out).t() + x_direct

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        x_hidden, x_direct = self._x_terms(x)  # (B, H), (B, D): computed once, broadcast over samples
        flat = x.flatten(1).to(params.dtype)
        if not torch.is_grad_enabled():
            # Importance sampling (k = 5000): build the logits in place with one fused multiply-add
            # and score them as a dot product against the one copy of x, as BernoulliLikelihood does.
            ctx, base = params.split([self.hidden, self.dim], dim=-1)
            if torch.compiler.is_compiling():  # functional: the compiler fuses the adds into its loops
                logits = base + x_direct + torch.relu(ctx + x_hidden) @ (self.w_out * self.mask_out).t()
            else:
                h = torch.add(ctx, x_hidden).relu_()  # one new tensor, not two
                logits = torch.add(base, x_direct)
                logits.view(-1, self.dim).addmm_(h.reshape(-1, self.hidden), (self.w_out * self.mask_out).t())
            dot = torch.einsum("...bd,bd->...b", logits, flat)
            return dot - softplus_sum(logits)
        logits = self._logits(params, x_hidden, x_direct)
        return -F.binary_cross_entropy_with_logits(logits, flat.expand_as(logits), reduction="none").sum(-1)

    @torch.no_grad()
    def sample_sequential(self, params: Tensor, uniforms: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One draw per row of ``params`` (N, hidden + D), pixel by pixel: (probabilities, x), each (N, D).

        ``uniforms``: U(0, 1) numbers, (D,) or (N, D), that decide the pixels (x_d = 1 when u_d < p_d);
        by default fresh Bernoulli draws from torch's global generator."""
        ctx, base = params.split([self.hidden, self.dim], dim=-1)
        w_in, w_out = self.w_in * self.mask_in, self.w_out * self.mask_out
        w_direct = self.w_direct * self.mask_direct
        x = torch.zeros(params.shape[0], self.dim, dtype=params.dtype, device=params.device)
        probs = torch.zeros_like(x)
        pre = ctx.clone()  # hidden pre-activations, updated as each pixel is drawn: O(H + D) per pixel, not a full pass
        for d in range(self.dim):
            logit = base[:, d] + torch.relu(pre) @ w_out[d] + x[:, :d] @ w_direct[d, :d]
            p = torch.sigmoid(logit)
            probs[:, d] = p
            x[:, d] = torch.bernoulli(p) if uniforms is None else (uniforms[..., d] < p).to(x.dtype)
            pre += x[:, d, None] * w_in[:, d]
        return probs, x

    def forward(self, params: Tensor, event_ndims: int | None = None) -> Distribution:
        return _AutoregressiveBernoulli(self, params, event_ndims or len(self.event_shape_))

    def mean(self, params: Tensor) -> Tensor:
        """The pixel probabilities along one pixel-by-pixel draw (the exact mean has no closed form).

        Every row's draw is decided by the same fixed U(0, 1) vector (seeded with MEAN_PATH_SEED), so
        that what is shown for a code (a reconstruction, ``decode(z)``, the explorer's image) is a
        function of that code alone: the same z gives the same picture in any batch, and the global
        random state is left alone. Each row's path is still a draw from p(x|z). ``sample`` draws freely.
        """
        lead = params.shape[:-1]
        fixed = torch.Generator().manual_seed(MEAN_PATH_SEED)
        uniforms = torch.rand(self.dim, generator=fixed, dtype=params.dtype).to(params.device)
        probs, _ = self.sample_sequential(params.reshape(-1, params.shape[-1]), uniforms=uniforms)
        return probs.view(*lead, *self.event_shape_)


LIKELIHOODS = _LIKELIHOODS.names()  # a view of the registry, in its order


def make_likelihood(name: str, event_shape: tuple[int, ...], **options) -> Likelihood:
    """The registered likelihood ``name`` for examples of ``event_shape``; ``options`` it does not
    take (see its registration) are ignored, so one set of estimator options fits every likelihood."""
    component = _LIKELIHOODS[name]
    return component.build(event_shape, **{k: v for k, v in options.items() if k in component.options})


# --------------------------------------------------------------------------------------------
# Posterior families q(z | x): location-scale families, parameterized by (loc, log of scale^2)
# so that the Normal case is exactly "the encoder outputs mu and log sigma^2".
# --------------------------------------------------------------------------------------------


@_POSTERIORS.implements("logistic")
def _logistic(loc: Tensor, scale: Tensor) -> Distribution:
    # Logistic = inverse CDF (logit) of a uniform, then shift and scale: reparameterizable.
    base = Uniform(torch.zeros_like(loc), torch.ones_like(loc), validate_args=False)
    return TransformedDistribution(base, [SigmoidTransform().inv, AffineTransform(loc, scale)], validate_args=False)


@_POSTERIORS.implements("normal")
def _normal(loc: Tensor, scale: Tensor) -> Distribution:
    return Normal(loc, scale, validate_args=False)


@_POSTERIORS.implements("laplace")
def _laplace(loc: Tensor, scale: Tensor) -> Distribution:
    return Laplace(loc, scale, validate_args=False)


@_POSTERIORS.implements("student-t")
def _student_t(loc: Tensor, scale: Tensor, df: float = 5.0) -> Distribution:
    return StudentT(torch.as_tensor(df, dtype=loc.dtype, device=loc.device), loc, scale, validate_args=False)


POSTERIORS = _POSTERIORS.names(location_scale=True)  # the location-scale families built here: a view of the registry


class LocationScale(Independent):
    """q(z|x) of a registered location-scale family over a vector: independent dimensions, each
    ``family(loc, scale)`` with ``scale = exp(log_var / 2)``; batch shape = ``loc``'s leading dims.

    A torch Distribution like any other (``rsample``, ``log_prob``, ``kl_divergence``). It keeps
    the parameters the encoder gave, so that a closed form reads them exactly (the Normal KL to
    N(0, I) takes ``log_var`` itself, not ``log(scale^2)``), and it can turn given standard noise
    into draws (:meth:`reparameterize`), which common random numbers need. Its ``mean`` is the
    location: the mean of every family offered (the logistic's too, which torch does not compute).
    """

    def __init__(self, family: str, loc: Tensor, log_var: Tensor, df: float = 5.0):
        component = _POSTERIORS[family]
        if not component.location_scale:
            raise ConfigError(f"the {family} posterior is not a location-scale family: it has no loc + scale * eps form to build here")
        self.family, self.loc, self.log_var, self.df = family, loc, log_var, df
        self.scale = torch.exp(0.5 * log_var)
        options = {"df": df} if component.options else {}
        super().__init__(component.build(loc, self.scale, **options), 1, validate_args=False)

    @property
    def mean(self) -> Tensor:
        return self.loc

    def reparameterize(self, eps: Tensor) -> Tensor:
        """Draws ``z = loc + scale * eps`` from given draws ``eps`` (K, D) of the family's standard
        form (loc 0, scale 1), the same K for every row: shape (K, *batch, D)."""
        return self.loc + self.scale * eps.view(eps.shape[0], *([1] * len(self.batch_shape)), eps.shape[-1])

    def expand(self, batch_shape, _instance=None) -> LocationScale:
        shape = torch.Size(batch_shape) + self.event_shape
        return LocationScale(self.family, self.loc.expand(shape), self.log_var.expand(shape), self.df)

    def with_log_var_bounds(self, low: float, high: float) -> LocationScale:
        """The same family with ``log_var`` clamped to [low, high] (a scale that stays finite and nonzero)."""
        return LocationScale(self.family, self.loc, self.log_var.clamp(low, high), self.df)

    def transposed(self) -> LocationScale:
        """The family over the transposed parameters: batch (D, K) for K rows of a (K, D) posterior."""
        return LocationScale(self.family, self.loc.t(), self.log_var.t(), self.df)


def posterior(name: str, loc: Tensor, log_var: Tensor, df: float = 5.0) -> LocationScale:
    """q(z|x) of the registered family ``name`` with location ``loc`` and scale ``exp(log_var / 2)``.

    For 'normal' the scale is the standard deviation, so ``log_var`` is log sigma^2. For the other
    families it is their own scale parameter (for Laplace, b; for Student-t, sigma; for logistic, s).
    A family is a function ``(loc, scale, **its options) -> base distribution`` registered in
    :data:`vaekit.registry.POSTERIORS`; it gets the options its registration names (``df``).
    """
    return LocationScale(name, loc, log_var, df)


class StandardNormal(Independent):
    """p(z) = N(0, I) over a vector: its own type, so that KLs against it register (see below)."""


def standard_normal(latent_dim: int, device=None, dtype=None) -> Distribution:
    """The prior p(z) = N(0, I) over ``latent_dim`` dimensions."""
    zeros = torch.zeros(latent_dim, device=device, dtype=dtype)
    return StandardNormal(Normal(zeros, torch.ones_like(zeros), validate_args=False), 1, validate_args=False)


@register_kl(LocationScale, StandardNormal)
def _kl_location_scale_standard_normal(q: LocationScale, p: StandardNormal) -> Tensor:
    # A Normal posterior takes the hot path (fewer kernels than the general Normal-Normal KL, and
    # from log_var itself); other families the closed form torch has, if any (else NotImplementedError).
    if q.family == "normal":
        return gaussian_kl_to_standard_normal(q.loc, q.log_var)
    return kl_divergence(q.base_dist, p.base_dist).sum(-1)


def factors(d: Distribution) -> Distribution:
    """The one-dimensional factors of a distribution over independent dimensions (batch (..., D)):
    what per-dimension KLs and per-feature log-likelihoods are taken of."""
    if isinstance(d, Independent) and d.reinterpreted_batch_ndims == 1:
        return d.base_dist
    raise ConfigError(f"per-dimension terms are not available for {type(d).__name__}: they need a distribution over independent dimensions")


EXP_FLOOR = -60.0  # terms this far below a logsumexp's largest are < 1e-26 of it: float32 cannot see them


def logsumexp_clamped(x: Tensor, dim: int) -> Tensor:
    """torch.logsumexp, with the shifted terms clamped at EXP_FLOOR before the exp.

    exp of an argument below about -87 is a subnormal float, which x86 cores compute on a slow
    path: torch.logsumexp over a trained VampPrior's 500 components (a quarter of them more than 87
    nats below the nearest) ran 6x slower than over the same values squeezed together. Terms below
    the floor are clamped to it (exp(-inf) is as slow): each then adds e^-60 to a sum that holds 1,
    below float32's resolution, so the result is unchanged, and so is the gradient to that precision.
    """
    top = x.detach().amax(dim, keepdim=True)
    peak = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # an infinite peak: shift by 0, as torch does
    total = (x - peak).clamp(min=EXP_FLOOR).exp().sum(dim).log() + peak.squeeze(dim)
    # The clamp would give a row with no mass at all (every term -inf) EXP_FLOOR + log n; it is -inf.
    return torch.where(top.squeeze(dim) == -math.inf, top.squeeze(dim), total)


class UniformGaussianMixture(Distribution):
    """(1/K) sum_k N(z; mu_k, diag sigma_k^2): the VampPrior's form when q(z|x) is Normal.

    ``MixtureSameFamily`` would evaluate log p(z) by broadcasting z against all K components, a
    (samples, batch, K, D) tensor: gigabytes for importance sampling with K = 500. Expanding the
    square instead,

        log N(z; mu_k, sigma_k^2) = sum_d [-z_d^2 / (2 sigma_kd^2) + z_d mu_kd / sigma_kd^2] + c_k,

    makes every component's log density one (N, 2D) x (2D, K) product of [z^2, z] with the
    coefficients, c_k added by the same ``addmm``: memory stays (N, K) and, with 500 components,
    the prior no longer costs elementwise passes over (N, K) beside the decoder's (N, 784) ones.
    The coefficients are computed once per distribution (evaluation builds the prior once and
    scores thousands of chunks of samples against it).
    """

    arg_constraints: dict = {}
    has_rsample = True  # rsample below is reparameterized: gradients reach loc and log_var

    def __init__(self, loc: Tensor, log_var: Tensor):
        self.loc, self.log_var = loc, log_var  # (K, D)
        super().__init__(torch.Size(), torch.Size(loc.shape[-1:]), validate_args=False)
        self._coef: tuple[Tensor, Tensor] | None = None

    def _coefficients(self) -> tuple[Tensor, Tensor]:
        """((K, 2D) weights of [z^2, z], (K,) constants c_k - log K), built on first use."""
        if self._coef is None:
            prec = torch.exp(-self.log_var)  # (K, D)
            weight = torch.cat([-0.5 * prec, self.loc * prec], dim=-1)
            const = -0.5 * ((self.loc.pow(2) * prec).sum(-1) + self.log_var.sum(-1)
                            + self.loc.shape[-1] * math.log(2 * math.pi)) - math.log(self.loc.shape[0])
            self._coef = (weight, const)
        return self._coef

    def log_prob(self, z: Tensor) -> Tensor:
        weight, const = self._coefficients()
        flat = z.reshape(-1, z.shape[-1])
        log_comp = torch.addmm(const, torch.cat([flat.pow(2), flat], dim=-1), weight.t())  # (N, K)
        return logsumexp_clamped(log_comp, -1).view(z.shape[:-1])

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape=torch.Size()) -> Tensor:
        shape = torch.Size(sample_shape)
        k = torch.randint(self.loc.shape[0], shape, device=self.loc.device)
        eps = torch.randn(*shape, self.loc.shape[-1], device=self.loc.device, dtype=self.loc.dtype)
        return self.loc[k] + torch.exp(0.5 * self.log_var[k]) * eps


def mixture_of_posteriors(components: Distribution) -> Distribution:
    """(1/K) sum_k q_k(z) for posteriors q_k with batch shape (K,) (the VampPrior's q(z | u_k),
    Tomczak & Welling 2018): a Normal family's in the memory-light form, others as a torch mixture."""
    if isinstance(components, LocationScale) and components.family == "normal":
        return UniformGaussianMixture(components.loc, components.log_var)
    loc = components.mean
    mix = Categorical(logits=torch.zeros(components.batch_shape[0], device=loc.device, dtype=loc.dtype), validate_args=False)
    return MixtureSameFamily(mix, components, validate_args=False)


class ChainDistribution(Distribution):
    """A joint over z = [a, b] (or [b, a]) as p(a) p(b | a): two stochastic layers as one distribution.

    ``head`` is the distribution of a; ``tail_given(a)`` returns that of b given a sample a of any
    leading shape. Sampling is ancestral and reparameterized end to end; ``log_prob`` adds the two
    conditionals. This is how a two-layer VAE keeps the one-layer contract: q(z|x) and p(z) are each
    one Distribution over the concatenated code, so importance weights, the ELBO and sampling from
    the prior need no special case.
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, head, tail_given, head_dim: int, tail_dim: int, head_first: bool = True):
        self.head, self.tail_given = head, tail_given
        self.dims, self.head_first = (head_dim, tail_dim), head_first
        super().__init__(head.batch_shape, torch.Size([head_dim + tail_dim]), validate_args=False)

    def _split(self, z: Tensor) -> tuple[Tensor, Tensor]:
        if self.head_first:
            return z.split(self.dims, -1)
        tail, head = z.split(self.dims[::-1], -1)
        return head, tail

    def _join(self, head: Tensor, tail: Tensor) -> Tensor:
        return torch.cat([head, tail] if self.head_first else [tail, head], -1)

    def rsample(self, sample_shape=torch.Size()) -> Tensor:
        a = self.head.rsample(sample_shape)
        return self._join(a, self.tail_given(a).rsample())

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, z: Tensor) -> Tensor:
        a, b = self._split(z)
        return self.head.log_prob(a) + self.tail_given(a).log_prob(b)


def gaussian_kl_to_standard_normal(loc: Tensor, log_var: Tensor) -> Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2).

    Kingma & Welling (2014), appendix B. Returns nats, summed over the last dimension. This is the
    hot-path form of ``kl_divergence(q, p)`` for the default model (fewer kernels than the general
    Normal-Normal formula); tests check the two agree.
    """
    return 0.5 * (loc.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1)


def has_analytic_kl(q: Distribution, p: Distribution) -> bool:
    """Whether torch.distributions has a closed-form KL(q || p) registered for these types."""
    try:
        kl_divergence(q, p)
    except NotImplementedError:
        return False
    return True


def kl_term(q: Distribution, p: Distribution, z: Tensor | None = None, analytic: bool = True) -> Tensor:
    """KL(q || p) per example, in nats.

    Closed form where torch.distributions has one (``analytic=True``); otherwise the Monte-Carlo
    estimate ``log q(z) - log p(z)`` averaged over the samples ``z`` (shape ``(L, B, D)`` or
    ``(B, D)``), which is unbiased for the same expectation.
    """
    if analytic:
        return kl_divergence(q, p)
    if z is None:
        raise ValueError("a Monte-Carlo KL needs the posterior samples z")
    est = q.log_prob(z) - p.log_prob(z)
    # The mean over the samples axis taken as a last-axis reduction: each example then sums in the
    # same order wherever it sits in the batch (see objectives.draws_last).
    return est.movedim(0, -1).contiguous().mean(-1) if z.dim() == 3 else est
