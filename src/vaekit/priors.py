"""The latent side of a VAE: the prior p(z) as a module that owns its parameters and its KL.

A VAE holds one :class:`Prior` and never asks which one: it calls ``prior(encoder)`` for p(z)
as a torch Distribution, ``prior.kl(q, z, encoder)`` for the KL term of the ELBO, and lets the
prior extend the posterior and the code when it adds a layer. The set is closed and described by
JSON (``{"name": "vamp", "n_pseudo_inputs": 500}``): :data:`PRIORS` maps each kind to its class,
and each class lists the options it takes, so an option that does not apply cannot be written down.

Every posterior is a torch Distribution; a closed form reads what it needs from it (see
``distributions.LocationScale``). ``encoder`` is the VAE's ``x, c -> q(z1|x, c)`` (an
:data:`Encoder`); the VampPrior needs it (its components are q(z|u_k)), the others ignore it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, MixtureSameFamily, Normal, kl_divergence

from . import distributions as D
from .errors import ConfigError
from .nets import mlp
from .registry import POSTERIORS, PRIORS

Encoder = Callable[..., Distribution]  # (x, c) -> q(z1|x, c), the encoder's posterior over the bottom layer


class Prior(nn.Module):
    """p(z) over a VAE's code. Subclasses say what p(z) is; the default KL is Monte-Carlo.

    ``latent_dim`` is the size of z1, the layer the decoder reads; ``code_dim`` the size of the
    whole code (larger when the prior adds a layer above z1).
    """

    component = None  # the registration (vaekit.registry.PRIORS): name, options, flags

    @property
    def kind(self) -> str:
        return self.component.name

    @property
    def standard_normal(self) -> bool:
        """Whether p(z) is N(0, I), as quantile grids assume (and per-dimension KLs summing to the ELBO's)."""
        return bool(self.component.standard_normal)

    @classmethod
    def build(cls, options: dict, *, latent_dim: int, posterior: dict, input_shape: tuple[int, ...], activation: str) -> Prior:
        """The prior from its JSON options and the model's shapes (what :func:`build_prior` calls)."""
        return cls(latent_dim, posterior, **options)

    def __init__(self, latent_dim: int, posterior: dict):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.family, self.df = posterior["name"], float(posterior.get("df", 5.0))
        # Tracks the model's device and dtype for priors without parameters (not saved).
        self.register_buffer("anchor", torch.zeros(()), persistent=False)

    @property
    def code_dim(self) -> int:
        return self.latent_dim

    def forward(self, encoder: Encoder) -> Distribution:  # pragma: no cover - abstract
        """p(z) with event shape (code_dim,)."""
        raise NotImplementedError

    def kl(self, q: Distribution, z: Tensor, encoder: Encoder) -> Tensor:
        """KL(q(z|x) || p(z)) per example, in nats: here the Monte-Carlo estimate over the samples z."""
        return D.kl_term(q, self(encoder), z, analytic=False)

    def marginals(self, encoder: Encoder) -> Distribution:
        """p(z_j) for each dimension j of the code: batch shape (code_dim,), event shape ().

        What ``metrics.kl_per_dimension`` measures each dimension's posterior against. A prior whose
        one-dimensional marginals are not available refuses with a ConfigError saying why.
        """
        raise ConfigError(f"KL per dimension is not available for the {self.kind} prior: its one-dimensional marginals are unknown")

    def kl_dims(self, q: Distribution, z: Tensor, encoder: Encoder) -> Tensor:
        """KL(q(z_j|x) || p(z_j)) per example and dimension, shape (B, code_dim), in nats, against
        :meth:`marginals`: closed form where torch.distributions has one, else Monte-Carlo over the
        draws ``z`` (L, B, code_dim). Differentiable, for objectives that weigh dimensions (free
        bits); refuses where the marginals are unknown. Against N(0, I) the row sums are the KL."""
        p = self.marginals(encoder)
        if not POSTERIORS[self.family].location_scale:
            # A flow's dimensions are dependent, so its marginals are unknown: each dimension's share of
            # log q(z|x) - log p(z) at the draws instead, which add up to the Monte-Carlo KL under a
            # factorized p(z) (the split Kingma et al. 2016 floor with free bits).
            return (q.log_prob_dims(z) - p.log_prob(z)).mean(0)
        base = D.factors(q)
        try:
            return kl_divergence(base, p.expand(base.batch_shape))
        except NotImplementedError:
            return (base.log_prob(z) - p.log_prob(z)).mean(0)

    def posterior(self, q1: Distribution) -> Distribution:
        """q(z|x) over the whole code, given q(z1|x) from the encoder (one layer: q1 itself)."""
        return q1

    def code(self, q: Distribution) -> Tensor:
        """The code of an example from its posterior q(z|x) (one layer: its mean, the location)."""
        return q.mean

    def bottom(self, z: Tensor) -> Tensor:
        """z1, the part of the code that p(x|.) conditions on."""
        return z

    def spec(self) -> dict:
        """This prior as JSON: its kind and options."""
        return {"name": self.kind}


@PRIORS.implements("normal")
class StandardNormalPrior(Prior):
    """p(z) = N(0, I). The KL is in closed form where one exists (Kingma & Welling 2014, app. B)."""

    def __init__(self, latent_dim: int, posterior: dict):
        super().__init__(latent_dim, posterior)
        self.analytic = False  # a flow's KL is Monte-Carlo
        if POSTERIORS[self.family].location_scale:
            q = D.posterior(self.family, torch.zeros(1, latent_dim), torch.zeros(1, latent_dim), self.df)
            self.analytic = D.has_analytic_kl(q, D.standard_normal(latent_dim))

    def forward(self, encoder: Encoder | None = None) -> Distribution:
        return D.standard_normal(self.latent_dim, device=self.anchor.device, dtype=self.anchor.dtype)

    def marginals(self, encoder: Encoder | None = None) -> Distribution:
        zeros = torch.zeros(self.latent_dim, device=self.anchor.device, dtype=self.anchor.dtype)
        return Normal(zeros, torch.ones_like(zeros), validate_args=False)

    def kl(self, q: Distribution, z: Tensor, encoder: Encoder | None = None) -> Tensor:
        # Closed form where torch.distributions has one registered (a Normal posterior's reads its
        # log_var: distributions._kl_location_scale_standard_normal), else Monte-Carlo over z.
        return D.kl_term(q, self(), z, analytic=self.analytic)


def pseudo_inputs(n: int, input_shape: tuple[int, ...]) -> nn.Parameter:
    """A VampPrior's K learned pseudo-inputs, starting as faint near-blank images, N(0.05, 0.01) as
    Tomczak & Welling (2018) do."""
    if int(n) < 1:
        raise ConfigError(f"the VampPrior needs at least 1 pseudo-input, got n_pseudo_inputs={n}")
    return nn.Parameter(0.05 + 0.01 * torch.randn(int(n), *input_shape))


@PRIORS.implements("vamp")
class VampPrior(Prior):
    """p(z) = (1/K) sum_k q(z | u_k) over K learned pseudo-inputs u_k (Tomczak & Welling 2018)."""

    @classmethod
    def build(cls, options, *, latent_dim, posterior, input_shape, activation) -> Prior:
        return cls(latent_dim, posterior, input_shape=input_shape, **options)

    def __init__(self, latent_dim: int, posterior: dict, *, input_shape: tuple[int, ...], n_pseudo_inputs: int = 500):
        super().__init__(latent_dim, posterior)
        self.pseudo_inputs = pseudo_inputs(n_pseudo_inputs, input_shape)

    def components(self, encoder: Encoder) -> Distribution:
        """q(z | u_k) for the K pseudo-inputs: the encoder's posterior, batch (K,)."""
        # hardtanh keeps the pseudo-inputs in [0, 1], where the encoder has seen data.
        return encoder(F.hardtanh(self.pseudo_inputs, 0.0, 1.0), None)

    def forward(self, encoder: Encoder) -> Distribution:
        return D.mixture_of_posteriors(self.components(encoder))

    def marginals(self, encoder: Encoder) -> Distribution:
        """p(z_j) = (1/K) sum_k q(z_j | u_k): the mixture's components factorize, so each marginal is
        the one-dimensional mixture of the components' j-th marginals (batch (D,), K components each)."""
        q = self.components(encoder)  # batch (K,), event (D,)
        if not isinstance(q, D.LocationScale):
            raise ConfigError(f"KL per dimension against the VampPrior needs a location-scale posterior, not {type(q).__name__}")
        comps = D.factors(q.transposed())  # batch (D, K)
        loc = q.loc.t()
        mix = Categorical(logits=torch.zeros(loc.shape, device=loc.device, dtype=loc.dtype), validate_args=False)
        return MixtureSameFamily(mix, comps, validate_args=False)

    def spec(self) -> dict:
        return {"name": self.kind, "n_pseudo_inputs": int(self.pseudo_inputs.shape[0])}


@PRIORS.implements("two-layer")
class TwoLayerPrior(Prior):
    """Two stochastic layers (Burda et al. 2015, section 5): p(z2) p(z1|z2), posterior q(z1|x) q(z2|z1).

    The code is z = [z1, z2]. This prior owns both MLPs between the layers: z1 -> q(z2|z1) (in the
    posterior's family) and z2 -> p(z1|z2) (Normal); p(z2) = N(0, I).
    """

    @classmethod
    def build(cls, options, *, latent_dim, posterior, input_shape, activation) -> Prior:
        return cls(latent_dim, posterior, activation=activation, top_latent_dim=options.get("latent_dim", 2),
                   hidden=tuple(options.get("hidden", (100, 100))))

    def __init__(self, latent_dim: int, posterior: dict, *, activation: str = "relu", top_latent_dim: int = 2,
                 hidden: tuple[int, ...] = (100, 100)):
        super().__init__(latent_dim, posterior)
        self.top_latent_dim, self.hidden = int(top_latent_dim), tuple(int(h) for h in hidden)
        if self.top_latent_dim < 1 or any(h < 1 for h in self.hidden):
            raise ConfigError("the second stochastic layer needs top_latent_dim >= 1 and positive top_hidden sizes, "
                              f"got {top_latent_dim} and {list(hidden)}")
        d1, d2 = self.latent_dim, self.top_latent_dim
        self.encoder_top = mlp([d1, *self.hidden, 2 * d2], activation)  # z1 -> q(z2 | z1)
        self.decoder_top = mlp([d2, *reversed(self.hidden), 2 * d1], activation)  # z2 -> p(z1 | z2)

    @property
    def code_dim(self) -> int:
        return self.latent_dim + self.top_latent_dim

    def q_top(self, z1: Tensor) -> Distribution:
        loc, log_var = D.full_precision(self.encoder_top(z1)).chunk(2, dim=-1)
        return D.posterior(self.family, loc, log_var, self.df)

    def p_bottom(self, z2: Tensor) -> Distribution:
        loc, log_var = D.full_precision(self.decoder_top(z2)).chunk(2, dim=-1)
        return D.posterior("normal", loc, log_var)

    def top(self, encoder: Encoder | None = None) -> Distribution:
        """p(z2), here N(0, I)."""
        return D.standard_normal(self.top_latent_dim, device=self.anchor.device, dtype=self.anchor.dtype)

    def forward(self, encoder: Encoder | None = None) -> Distribution:
        return D.ChainDistribution(self.top(encoder), self.p_bottom, self.top_latent_dim, self.latent_dim, head_first=False)

    def posterior(self, q1: Distribution) -> Distribution:
        return D.ChainDistribution(q1, self.q_top, self.latent_dim, self.top_latent_dim)

    def marginals(self, encoder: Encoder | None = None) -> Distribution:
        raise ConfigError("KL per dimension is not available with two stochastic layers: p(z1_j) is an integral over z2 "
                          "and q(z2_j|x) one over z1, neither in closed form, and the dimensions are not independent; "
                          "look at the variance of the codes (active units) instead")

    def code(self, q: Distribution) -> Tensor:
        # [mu1, mu2(mu1)]: the top layer's location at the bottom one's (q is the chain q(z1|x) q(z2|z1)).
        loc = q.head.mean
        return torch.cat([loc, self.q_top(loc).mean], -1)

    def bottom(self, z: Tensor) -> Tensor:
        return z[..., : self.latent_dim]

    def spec(self) -> dict:
        return {"name": self.kind, "latent_dim": self.top_latent_dim, "hidden": list(self.hidden)}


@PRIORS.implements("two-layer-vamp")
class TwoLayerVampPrior(TwoLayerPrior):
    """Two stochastic layers with a VampPrior on the upper one: p(z2) = (1/K) sum_k q(z2 | mu1(u_k)), p(z1|z2).

    Tomczak & Welling (2018, sec. 3.2) put the VampPrior on the top layer of a hierarchical VAE whose
    q(z2|x) reads x directly. Here the posterior is the bottom-up chain q(z1|x) q(z2|z1), where
    q(z2|u) = E_{q(z1|u)}[q(z2|z1)] has no closed form, so each component is the upper layer's
    posterior at the pseudo-input's bottom-layer mean mu1(u_k) = E[z1|u_k]: still a mixture of K
    Gaussians whose log-density is exact, so the ELBO and the importance-weighted bound stay bounds.
    """

    @classmethod
    def build(cls, options, *, latent_dim, posterior, input_shape, activation) -> Prior:
        return cls(latent_dim, posterior, activation=activation, input_shape=input_shape, top_latent_dim=options.get("latent_dim", 2),
                   hidden=tuple(options.get("hidden", (100, 100))), n_pseudo_inputs=options.get("n_pseudo_inputs", 500))

    def __init__(self, latent_dim: int, posterior: dict, *, input_shape: tuple[int, ...], activation: str = "relu",
                 top_latent_dim: int = 2, hidden: tuple[int, ...] = (100, 100), n_pseudo_inputs: int = 500):
        super().__init__(latent_dim, posterior, activation=activation, top_latent_dim=top_latent_dim, hidden=hidden)
        self.pseudo_inputs = pseudo_inputs(n_pseudo_inputs, input_shape)

    def top(self, encoder: Encoder | None = None) -> Distribution:
        if encoder is None:
            raise ConfigError("the VampPrior over two stochastic layers runs the encoder on its pseudo-inputs; pass the encoder")
        q1 = encoder(F.hardtanh(self.pseudo_inputs, 0.0, 1.0), None)  # batch (K,): q(z1 | u_k)
        return D.mixture_of_posteriors(self.q_top(q1.mean))

    def spec(self) -> dict:
        return {**super().spec(), "n_pseudo_inputs": int(self.pseudo_inputs.shape[0])}


def check_prior_spec(spec: dict, *, conditional: bool = False) -> dict:
    """``spec`` checked against the registered priors: a known kind with only its own options."""
    if not isinstance(spec, dict) or spec.get("name") not in PRIORS:
        kind = spec.get("name") if isinstance(spec, dict) else spec
        raise ConfigError(f"unknown prior {kind!r}; choose one of {', '.join(PRIORS.names())}")
    component = PRIORS[spec["name"]]
    extra = sorted(set(spec) - {"name"} - set(component.options))
    if extra:
        raise ConfigError(f"the {spec['name']} prior takes no option {', '.join(extra)}; it takes {', '.join(component.options) or 'none'}")
    if conditional and not component.conditional:
        raise ConfigError(f"{component.title or 'the ' + component.name + ' prior'} is not available for a conditional model; "
                          "use prior='normal' or conditional=False")
    return spec


def build_prior(spec: dict, *, latent_dim: int, posterior: dict, input_shape: tuple[int, ...], activation: str) -> Prior:
    """The Prior module a JSON spec describes: the registered class's ``build``."""
    opts = {k: v for k, v in spec.items() if k != "name"}
    return PRIORS[spec["name"]].impl.build(opts, latent_dim=latent_dim, posterior=posterior, input_shape=input_shape,
                                          activation=activation)
