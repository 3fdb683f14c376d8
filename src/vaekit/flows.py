"""An inverse autoregressive flow posterior (Kingma et al. 2016): ``--posterior iaf``.

q(z|x) starts from the encoder's diagonal Gaussian, z_0 = mu + sigma * eps with eps ~ N(0, I), and
takes T autoregressive steps, each a MADE (Germain et al. 2015) over z that also sees a context h
the encoder outputs beside (mu, log sigma^2):

    [m_t, s_t] = MADE_t(z_{t-1}, h),   sigma_t = sigmoid(s_t),   z_t = sigma_t * z_{t-1} + (1 - sigma_t) * m_t

(the numerically stable, gated form of their eq. 11-14). Output i of a MADE depends only on the
dimensions before i in that step's order, so dz_t/dz_{t-1} is triangular with diagonal sigma_t and

    log q(z_T|x) = log N(z_0; mu, sigma^2) - sum_t sum_i log sigma_{t,i}

exactly. Steps alternate between the natural and the reversed order, so that every dimension is
transformed given every other one after two steps. The log-density is known at the flow's own
draws (``rsample``); elsewhere it would need the flow's inverse (D sequential MADE passes a step),
which is not provided: the component is declared ``log_prob_anywhere: False`` and a VampPrior, whose
mixture evaluates q(z|u_k) at other posteriors' draws, is refused when the config is built. There is
no closed-form KL: the ELBO's KL is the Monte-Carlo estimate log q(z|x) - log p(z) at the draws.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Normal, constraints
from torch.distributions.utils import _standard_normal

from .distributions import full_precision
from .errors import ConfigError
from .registry import POSTERIORS

# Kingma et al. (2016, sec. 4) start each step near the identity: a positive bias on s makes the gate
# sigma = sigmoid(s) close to 1, so z_t starts close to z_{t-1} (sigmoid(1) = 0.73; they suggest +1 or +2).
GATE_BIAS = 1.0
REMEMBERED_DRAWS = 4  # the latest draws whose log-densities a distribution keeps (see IAFDistribution.log_prob)


class MADE(nn.Module):
    """One flow step's network: ``(z, h) -> (m, s)``, each of z's shape, output i a function of h and of
    the dimensions of z that come before i in ``order`` only (two masked hidden layers of ``hidden`` ELUs).

    A hidden unit of degree k (0 .. D-1) sees the first k dimensions in order, and feeds the outputs at
    positions after k; units of degree 0 see only the context. The context enters every unit of the first
    layer unmasked: it is a function of x, not of z.
    """

    def __init__(self, dim: int, hidden: int, context_dim: int, reverse: bool = False):
        super().__init__()
        order = torch.arange(dim).flip(0) if reverse else torch.arange(dim)
        position = torch.empty(dim, dtype=torch.long)
        position[order] = torch.arange(1, dim + 1)  # 1-based position of each dimension in this step's order
        degree = (torch.arange(hidden) * dim) // hidden  # spread evenly over 0 .. D-1
        self.register_buffer("mask_in", (position[None, :] <= degree[:, None]).float(), persistent=False)  # (H, D)
        self.register_buffer("mask_hidden", (degree[None, :] <= degree[:, None]).float(), persistent=False)  # (H, H)
        self.register_buffer("mask_out", (position[:, None] > degree[None, :]).float().repeat(2, 1), persistent=False)  # (2D, H)
        self.layer_in = nn.Linear(dim, hidden)
        self.layer_context = nn.Linear(context_dim, hidden, bias=False)
        self.layer_hidden = nn.Linear(hidden, hidden)
        self.layer_out = nn.Linear(hidden, 2 * dim)
        with torch.no_grad():
            self.layer_out.bias[dim:] = GATE_BIAS

    def forward(self, z: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """(m, s) for z (..., B, D) and the context (B, C), broadcast over z's leading dimensions."""
        a = F.elu(F.linear(z, self.layer_in.weight * self.mask_in, self.layer_in.bias) + self.layer_context(context))
        a = F.elu(F.linear(a, self.layer_hidden.weight * self.mask_hidden, self.layer_hidden.bias))
        out = F.linear(a, self.layer_out.weight * self.mask_out, self.layer_out.bias)
        return full_precision(out).chunk(2, dim=-1)  # the log-determinant sums s: in float32 under bf16 autocast


@POSTERIORS.implements("iaf")
class IAF(nn.Module):
    """The weights of an IAF posterior: T MADE steps over a ``latent_dim`` code. Built as
    ``IAF(latent_dim, steps=T, made_hidden=H)`` from the posterior's JSON options; the encoder outputs
    ``2 * latent_dim + context_dim`` numbers (mu, log sigma^2 and the context h, of size H; none when
    T = 0), and ``iaf(loc, log_var, context)`` is q(z|x), an :class:`IAFDistribution`."""

    def __init__(self, latent_dim: int, steps: int = 2, made_hidden: int = 256):
        super().__init__()
        hidden = made_hidden
        if int(steps) < 0 or int(hidden) < 1:
            raise ConfigError(f"the iaf posterior needs iaf_steps >= 0 and iaf_hidden >= 1, got {steps} and {hidden}")
        self.context_dim = int(hidden) if int(steps) else 0
        self.steps = nn.ModuleList(MADE(int(latent_dim), int(hidden), self.context_dim, reverse=t % 2 == 1) for t in range(int(steps)))

    def forward(self, loc: Tensor, log_var: Tensor, context: Tensor) -> IAFDistribution:
        return IAFDistribution(self, loc, log_var, context)


def _gated(step: MADE, z: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
    """One step: z_t = sigma * z + (1 - sigma) * m with sigma = sigmoid(s); returns (z_t, s)."""
    m, s = step(z, context)
    gate = torch.sigmoid(s)
    return gate * z + (1 - gate) * m, s


class IAFDistribution(Distribution):
    """q(z|x) of an IAF: batch shape = ``loc``'s leading dims, event (D,). ``rsample`` is reparameterized
    (gradients reach the encoder and the flow); ``log_prob`` is exact at the distribution's own latest
    draws and refuses other points (it would need the flow's inverse). ``log_prob_dims`` splits it by
    dimension: dimension i's share, log N(z_0i; mu_i, sigma_i^2) - sum_t log sigma_{t,i}.

    Its ``mean`` is the flow's image of the base location mu (what ``encode`` gives: a deterministic
    code); E[z|x] itself has no closed form. Not a location-scale family: no draws from given noise,
    no per-dimension factors (a flow's dimensions are dependent).
    """

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, flow: IAF, loc: Tensor, log_var: Tensor, context: Tensor):
        self.flow, self.loc, self.log_var, self.context = flow, loc, log_var, context
        self._draws: list[tuple[Tensor, Tensor]] = []
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    def push(self, eps: Tensor) -> tuple[Tensor, Tensor]:
        """z_T and the per-dimension log q(z_T|x) (both (..., B, D)) from standard normal draws eps (..., B, D)."""
        scale = torch.exp(0.5 * self.log_var)
        z = self.loc + eps * scale  # as torch's Normal.rsample: with T = 0 the very numbers of the normal posterior
        log_q = Normal(self.loc, scale, validate_args=False).log_prob(z)
        for step in self.flow.steps:
            z, s = _gated(step, z, self.context)
            log_q = log_q - F.logsigmoid(s)  # log sigma_t, stable where s is very negative
        return z, log_q

    def rsample(self, sample_shape=torch.Size()) -> Tensor:
        eps = _standard_normal(self._extended_shape(sample_shape), dtype=self.loc.dtype, device=self.loc.device)
        z, log_q = self.push(eps)
        self._draws = [*self._draws[-(REMEMBERED_DRAWS - 1):], (z, log_q)]
        return z

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob_dims(self, z: Tensor) -> Tensor:
        """Each dimension's share of log q(z|x) at the draws z returned by :meth:`rsample`, (..., B, D) nats."""
        for drawn, log_q in reversed(self._draws):
            if drawn is z:
                return log_q
        raise ConfigError("the iaf posterior's log-density is available only at its own draws (q.rsample()); "
                          "elsewhere it needs the flow's inverse, which vaekit does not compute")

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z|x) in nats, (..., B), at draws z returned by :meth:`rsample` (exact; see the module docstring)."""
        return self.log_prob_dims(z).sum(-1)

    @property
    def mean(self) -> Tensor:
        z = self.loc
        for step in self.flow.steps:
            z, _ = _gated(step, z, self.context)
        return z
