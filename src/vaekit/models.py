"""The two model families as torch modules: a deterministic autoencoder and a VAE.

Every model answers the same questions, so the trainer, evaluators, plots and CLI never ask which
model they hold:

- ``encode(x, c)``: the code of x (for a VAE, the posterior mean), shape ``(B, latent_dim)``;
- ``decode(z, c)``: the mean reconstruction E[x|z], shaped like the data;
- ``loss(x, c, beta=..., n_samples=...)``: a :class:`LossOutput` with the scalar to minimize and
  named per-example terms in nats (or squared error for an MSE autoencoder).

A VAE additionally exposes ``inference(x, c) -> q(z|x)``, ``generative(z, c) -> p(x|z)`` and
``prior() -> p(z)``, its three distributions, and ``log_likelihood(z, x, c)``: log p(x|z) for
(S, B) samples at once, which importance sampling needs without copying x S times.
Labels ``c`` are class indices; models that are not conditional ignore them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import distributions as D
from .errors import ConfigError
from .nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder

NOISES = ("gaussian", "masking", "salt-and-pepper")
SPARSITIES = ("l1", "kl")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model's modules; saved as JSON beside the weights."""

    kind: str = "vae"  # "vae" or "ae"
    input_shape: tuple[int, ...] = (784,)
    latent_dim: int = 20
    hidden: tuple[int, ...] = (400,)
    activation: str = "relu"
    architecture: str = "mlp"  # "mlp" or "conv"
    likelihood: str = "bernoulli"  # vae: bernoulli | continuous-bernoulli | gaussian; ae: bernoulli | gaussian (MSE)
    sigma: float = 1.0  # Gaussian likelihood: the fixed sigma, or the initial value when learned
    learn_sigma: bool = False
    posterior: str = "normal"  # normal | laplace | student-t | logistic
    student_df: float = 5.0
    n_classes: int = 0  # > 0: a conditional model, fed a one-hot label in encoder and decoder
    sparsity: str | None = None  # autoencoder only: None | "l1" | "kl"
    sparsity_weight: float = 1e-3
    sparsity_target: float = 0.05
    noise: str | None = None  # denoising autoencoder only: None | gaussian | masking | salt-and-pepper
    noise_level: float = 0.3

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)
        self.hidden = tuple(int(h) for h in self.hidden)
        self.validate()

    def validate(self) -> None:
        if self.kind not in ("vae", "ae"):
            raise ConfigError(f"unknown model kind {self.kind!r}; expected 'vae' or 'ae'")
        if int(self.latent_dim) < 1:
            raise ConfigError(f"latent dimension must be at least 1, got {self.latent_dim}; pass --latent-dim 2 or more")
        if any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden layer sizes must be positive, got {list(self.hidden)}")
        if self.architecture not in ("mlp", "conv"):
            raise ConfigError(f"unknown architecture {self.architecture!r}; expected 'mlp' or 'conv'")
        allowed = ("bernoulli", "gaussian") if self.kind == "ae" else ("bernoulli", "continuous-bernoulli", "gaussian")
        if self.likelihood not in allowed:
            raise ConfigError(f"likelihood {self.likelihood!r} is not available for this model; choose one of {', '.join(allowed)}")
        if self.posterior not in D.POSTERIORS:
            raise ConfigError(f"unknown posterior {self.posterior!r}; choose one of {', '.join(D.POSTERIORS)}")
        if self.sparsity not in (None, *SPARSITIES):
            raise ConfigError(f"unknown sparsity penalty {self.sparsity!r}; choose l1 or kl")
        if self.sparsity == "kl" and not 0 < self.sparsity_target < 1:
            raise ConfigError(f"sparsity target rho must lie in (0, 1), got {self.sparsity_target}")
        if self.noise not in (None, *NOISES):
            raise ConfigError(f"unknown noise {self.noise!r}; choose one of {', '.join(NOISES)}")
        if self.noise in ("masking", "salt-and-pepper") and not 0 <= self.noise_level <= 1:
            raise ConfigError(f"{self.noise} noise level is a probability; got {self.noise_level}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"model config has unknown fields {sorted(unknown)}; was it written by a newer vaekit?")
        return cls(**d)


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


def _one_hot(c: Tensor | None, n_classes: int) -> Tensor | None:
    if not n_classes:
        return None
    if c is None:
        raise ConfigError("this model is conditional: it needs a label for each example (pass y / --label)")
    return F.one_hot(c.long(), n_classes).float()


def _make_encoder(cfg: ModelConfig, out_dim: int) -> nn.Module:
    if cfg.architecture == "conv":
        return ConvEncoder(cfg.input_shape, out_dim, cfg.activation, cfg.n_classes)
    return MLPEncoder(cfg.input_shape, list(cfg.hidden), out_dim, cfg.activation, cfg.n_classes)


def _make_decoder(cfg: ModelConfig) -> nn.Module:
    if cfg.architecture == "conv":
        return ConvDecoder(cfg.latent_dim, cfg.input_shape, cfg.activation, cfg.n_classes)
    return MLPDecoder(cfg.latent_dim, list(reversed(cfg.hidden)), cfg.input_shape, cfg.activation, cfg.n_classes)


def log_importance_weights(model: nn.Module, x: Tensor, c: Tensor | None = None, k: int = 1, *,
                           beta: float = 1.0, q=None) -> Tensor:
    """log w_i = log p(x|z_i) + beta * (log p(z_i) - log q(z_i|x)), z_i ~ q(z|x): shape (k, B), nats.

    Needs only a model's ``inference``, ``log_likelihood`` and ``prior``. With beta = 1, logsumexp over
    i minus log k is the importance-weighted bound of Burda et al. (2015); the mean over i is a
    Monte-Carlo ELBO. ``q`` may be passed when the caller already has q(z|x) (evaluation draws many
    chunks of samples from one posterior).
    """
    q = model.inference(x, c) if q is None else q
    z = q.rsample((k,))
    return model.log_likelihood(z, x, c) + beta * (model.prior().log_prob(z) - q.log_prob(z))


class VAE(nn.Module):
    """A VAE: encoder -> q(z|x) (a location-scale family), prior N(0, I), decoder -> p(x|z).

    The loss is the negative beta-ELBO with ``n_samples`` (L) reparameterized samples
    (Kingma & Welling 2014, eq. 7): ``-(E_q[log p(x|z)] - beta * KL(q(z|x) || p(z)))``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = _make_encoder(config, 2 * config.latent_dim)
        self.decoder = _make_decoder(config)
        self.likelihood = D.make_likelihood(config.likelihood, config.input_shape, config.sigma, config.learn_sigma)
        # The default model's KL has a cheaper closed form than the generic registry lookup.
        self._fast_kl = config.posterior == "normal"
        q = D.posterior(config.posterior, torch.zeros(1, config.latent_dim), torch.zeros(1, config.latent_dim), config.student_df)
        self._analytic_kl = D.has_analytic_kl(q, D.standard_normal(config.latent_dim))

    # -- the three distributions -------------------------------------------------------------
    def _posterior_params(self, x: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        loc, log_var = self.encoder(x, _one_hot(c, self.config.n_classes)).chunk(2, dim=-1)
        return loc, log_var

    def inference(self, x: Tensor, c: Tensor | None = None):
        """q(z|x, c) as a torch Distribution with event shape (latent_dim,)."""
        loc, log_var = self._posterior_params(x, c)
        return D.posterior(self.config.posterior, loc, log_var, self.config.student_df)

    def generative(self, z: Tensor, c: Tensor | None = None):
        """p(x|z, c) as a torch Distribution with event shape = one example's shape."""
        return self.likelihood(self.decoder(z, _one_hot(c, self.config.n_classes)))

    def log_likelihood(self, z: Tensor, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x|z, c) for samples z of shape (S, B, latent): shape (S, B), nats per example."""
        s, b = z.shape[:2]
        cond = None if c is None else c.repeat(s)
        params = self.decoder(z.flatten(0, 1), _one_hot(cond, self.config.n_classes))
        return self.likelihood.log_prob(params.view(s, b, *params.shape[1:]), x)

    def prior(self):
        """p(z) = N(0, I)."""
        p = next(self.parameters())
        return D.standard_normal(self.config.latent_dim, device=p.device, dtype=p.dtype)

    # -- the shared contract -----------------------------------------------------------------
    def encode(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """The posterior location (its mean for every family offered), shape (B, latent_dim)."""
        return self._posterior_params(x, c)[0]

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """E[x | z]: the likelihood's mean, shaped like the data."""
        return self.likelihood.mean(self.decoder(z, _one_hot(c, self.config.n_classes)))

    def loss(self, x: Tensor, c: Tensor | None = None, *, beta: float = 1.0, n_samples: int = 1,
             objective: str = "elbo") -> LossOutput:
        """Negative training objective and its terms, in nats per example.

        ``objective='elbo'``: the beta-ELBO with L = ``n_samples`` reparameterized samples
        (Kingma & Welling 2014, eq. 7), terms ``elbo`` (<= 0 for discrete data),
        ``log_likelihood`` = E_q[log p(x|z)] and ``kl`` (closed form where one exists).
        ``objective='iwae'``: the importance-weighted bound with k = ``n_samples`` (Burda et al.
        2015, eq. 8), term ``iwae_bound``; its gradient flows through the normalized weights (the
        logsumexp is differentiated as a whole; nothing is detached). With k = 1 it is the ELBO.
        """
        if objective == "iwae":
            log_w = log_importance_weights(self, x, c, n_samples, beta=beta)
            bound = torch.logsumexp(log_w, 0) - math.log(n_samples)
            return LossOutput(-bound.mean(), {"iwae_bound": bound, "elbo": log_w.mean(0)})
        loc, log_var = self._posterior_params(x, c)
        q = D.posterior(self.config.posterior, loc, log_var, self.config.student_df)
        z = q.rsample((n_samples,))  # (L, B, D): the reparameterization trick, z = mu + sigma * eps
        log_lik = self.log_likelihood(z, x, c).mean(0)
        if self._fast_kl:
            kl = D.gaussian_kl_to_standard_normal(loc, log_var)
        else:
            kl = D.kl_term(q, self.prior(), z, analytic=self._analytic_kl)
        loss = -(log_lik - beta * kl).mean()
        return LossOutput(loss, {"elbo": log_lik - kl, "log_likelihood": log_lik, "kl": kl})

    def forward(self, x: Tensor, c: Tensor | None = None, **kwargs) -> LossOutput:
        # The training step goes through __call__ so that DistributedDataParallel's hooks run.
        return self.loss(x, c, **kwargs)

    @torch.no_grad()
    def sample(self, n: int, c: Tensor | None = None) -> Tensor:
        """n draws of E[x|z] with z from the prior (the usual way to show samples)."""
        z = self.prior().sample((n,))
        return self.decode(z, c)


def corrupt(x: Tensor, kind: str, level: float) -> Tensor:
    """A corrupted copy of x for a denoising autoencoder (Vincent et al. 2008).

    gaussian: x + level * N(0, 1); masking: each entry set to 0 with probability ``level``;
    salt-and-pepper: each entry, with probability ``level``, set to 0 or 1 with equal odds.
    """
    if kind == "gaussian":
        return x + level * torch.randn_like(x)
    if kind == "masking":
        return x * (torch.rand_like(x) >= level)
    if kind == "salt-and-pepper":
        hit = torch.rand_like(x) < level
        salt = (torch.rand_like(x) < 0.5).to(x.dtype)
        return torch.where(hit, salt, x)
    raise ConfigError(f"unknown noise {kind!r}; choose one of {', '.join(NOISES)}")


def bernoulli_kl(rho: float, rho_hat: Tensor) -> Tensor:
    """KL(Bernoulli(rho) || Bernoulli(rho_hat)), elementwise, in nats (Ng's sparse autoencoder)."""
    rho_hat = rho_hat.clamp(1e-6, 1 - 1e-6)
    return rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))


class Autoencoder(nn.Module):
    """A deterministic autoencoder z = f(x), x_hat = g(z), optionally sparse or denoising.

    Reconstruction loss per example: binary cross-entropy on logits (nats) for 'bernoulli', or the
    squared error summed over features for 'gaussian' (the MSE / regression view).
    Sparsity: 'l1' adds ``weight * sum_i |a_i|`` on the code (ReLU code layer); 'kl' adds
    ``weight * sum_j KL(rho || rho_hat_j)`` with rho_hat_j the batch-mean activation of a sigmoid code.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = _make_encoder(config, config.latent_dim)
        self.decoder = _make_decoder(config)
        code_act = {"kl": nn.Sigmoid(), "l1": nn.ReLU()}.get(config.sparsity, nn.Identity())
        self.code_activation = code_act

    def encode(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        return self.code_activation(self.encoder(x, _one_hot(c, self.config.n_classes)))

    def _decode_params(self, z: Tensor, c: Tensor | None) -> Tensor:
        return self.decoder(z, _one_hot(c, self.config.n_classes))

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        out = self._decode_params(z, c)
        return torch.sigmoid(out) if self.config.likelihood == "bernoulli" else out

    def reconstruction_error(self, x: Tensor, params: Tensor) -> Tensor:
        """Per-example reconstruction loss from decoder outputs (see class docstring for units)."""
        if self.config.likelihood == "bernoulli":
            return F.binary_cross_entropy_with_logits(params, x, reduction="none").flatten(1).sum(-1)
        return (params - x).pow(2).flatten(1).sum(-1)

    def loss(self, x: Tensor, c: Tensor | None = None, **_: object) -> LossOutput:
        cfg = self.config
        x_in = corrupt(x, cfg.noise, cfg.noise_level) if (cfg.noise and self.training) else x
        code = self.encode(x_in, c)
        rec = self.reconstruction_error(x, self._decode_params(code, c))
        terms = {"reconstruction": rec}
        loss = rec.mean()
        if cfg.sparsity == "l1":
            penalty = cfg.sparsity_weight * code.abs().sum(-1)
            terms["sparsity"] = penalty
            loss = loss + penalty.mean()
        elif cfg.sparsity == "kl":
            penalty = cfg.sparsity_weight * bernoulli_kl(cfg.sparsity_target, code.mean(0)).sum()
            terms["sparsity"] = penalty  # a batch-level penalty: rho_hat is a mean over the batch
            loss = loss + penalty
        unit = "nats/example" if cfg.likelihood == "bernoulli" else "squared error/example"
        return LossOutput(loss, terms, unit)

    def forward(self, x: Tensor, c: Tensor | None = None, **kwargs) -> LossOutput:
        return self.loss(x, c, **kwargs)


MODEL_CLASSES = {"vae": VAE, "ae": Autoencoder}


def build_model(config: ModelConfig) -> nn.Module:
    """The torch module for a config (the one place that maps a kind to a class)."""
    return MODEL_CLASSES[config.kind](config)


def n_parameters(model: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())
