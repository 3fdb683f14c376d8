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
from .nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, mlp

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
    # The one-hot label is multiplied by this before it joins the encoder's and decoder's inputs.
    # Adam moves every weight by about lr per step, so an input's pull on a unit grows with its size;
    # a bare one-hot (a single 1 beside 784 pixels or 20 Gaussian z's) learns so much more slowly
    # than z that the encoder writes the class into z first and the decoder then ignores the label
    # (the KL saves at most log 10 nats by undoing that). At 1, samples asked for class k on the
    # embedded sample were that class in 37 % of cases; at 30, 97 % (docs/tutorials/04-aevb-and-the-conditional-vae.md).
    label_scale: float = 30.0
    sparsity: str | None = None  # autoencoder only: None | "l1" | "kl"
    sparsity_weight: float = 1e-3
    sparsity_target: float = 0.05
    noise: str | None = None  # denoising autoencoder only: None | gaussian | masking | salt-and-pepper
    noise_level: float = 0.3
    ar_hidden: int = 500  # autoregressive-bernoulli likelihood: hidden units of its MADE
    prior: str = "normal"  # vae: "normal" N(0, I) or "vamp" (a mixture of q(z|u_k), Tomczak & Welling 2018)
    n_pseudo_inputs: int = 500  # VampPrior: the number K of learned pseudo-inputs u_k
    top_latent_dim: int = 0  # vae: > 0 adds a second stochastic layer z2 above z1 (q(z2|z1), p(z1|z2))
    top_hidden: tuple[int, ...] = (100, 100)  # the MLPs between z1 and z2 (Burda et al. 2015 use 100, 100)

    @property
    def standard_normal_prior(self) -> bool:
        """Whether p(z) is N(0, I) (one stochastic layer, no learned prior), as quantile grids assume."""
        return self.prior == "normal" and not self.top_latent_dim

    @property
    def code_dim(self) -> int:
        """Length of a model's code: z1 and, with two stochastic layers, z2 after it."""
        return self.latent_dim + self.top_latent_dim

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)
        self.hidden = tuple(int(h) for h in self.hidden)
        self.top_hidden = tuple(int(h) for h in self.top_hidden)
        self.validate()

    def validate(self) -> None:
        if self.kind not in ("vae", "ae"):
            raise ConfigError(f"unknown model kind {self.kind!r}; expected 'vae' or 'ae'")
        if int(self.latent_dim) < 1:
            raise ConfigError(f"latent dimension must be at least 1, got {self.latent_dim}; pass --latent-dim 2 or more")
        if not self.label_scale > 0:
            raise ConfigError(f"label_scale must be > 0, got {self.label_scale}")
        if any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden layer sizes must be positive, got {list(self.hidden)}")
        if self.architecture not in ("mlp", "conv"):
            raise ConfigError(f"unknown architecture {self.architecture!r}; expected 'mlp' or 'conv'")
        allowed = ("bernoulli", "gaussian") if self.kind == "ae" else D.LIKELIHOODS
        if self.likelihood not in allowed:
            raise ConfigError(f"likelihood {self.likelihood!r} is not available for this model; choose one of {', '.join(allowed)}")
        if self.likelihood == "autoregressive-bernoulli" and self.architecture != "mlp":
            raise ConfigError("the autoregressive-bernoulli likelihood needs the MLP decoder; drop --model conv-vae or pick --likelihood bernoulli")
        if self.ar_hidden < 1:
            raise ConfigError(f"--ar-hidden must be at least 1, got {self.ar_hidden}")
        if self.prior not in ("normal", "vamp"):
            raise ConfigError(f"unknown prior {self.prior!r}; choose normal or vamp")
        if self.top_latent_dim < 0 or any(h < 1 for h in self.top_hidden):
            raise ConfigError(f"the second stochastic layer needs --top-latent-dim >= 0 and positive --top-hidden sizes, got {self.top_latent_dim} and {list(self.top_hidden)}")
        if self.top_latent_dim and self.kind == "ae":
            raise ConfigError("a second stochastic layer (--top-latent-dim) applies to VAEs only")
        if self.top_latent_dim and self.prior == "vamp":
            raise ConfigError("the VampPrior with two stochastic layers is not available; drop --prior vamp or --top-latent-dim")
        if self.prior == "vamp" and self.n_classes:
            raise ConfigError("the VampPrior is not available for a conditional model; drop --prior vamp or use --model vae")
        if self.prior == "vamp" and self.n_pseudo_inputs < 1:
            raise ConfigError(f"the VampPrior needs at least 1 pseudo-input, got {self.n_pseudo_inputs}; pass --pseudo-inputs 500")
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
        if d.get("n_classes") and "label_scale" not in d:
            d = {**d, "label_scale": 1.0}  # conditional models saved before label_scale saw a bare one-hot
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


def _condition(c: Tensor | None, cfg: ModelConfig) -> Tensor | None:
    """What a conditional model's networks see of the labels: ``label_scale`` times their one-hot."""
    if not cfg.n_classes:
        return None
    if c is None:
        raise ConfigError("this model is conditional: it needs a label for each example (pass y / --label)")
    return cfg.label_scale * F.one_hot(c.long(), cfg.n_classes).float()


def _make_encoder(cfg: ModelConfig, out_dim: int) -> nn.Module:
    if cfg.architecture == "conv":
        return ConvEncoder(cfg.input_shape, out_dim, cfg.activation, cfg.n_classes)
    return MLPEncoder(cfg.input_shape, list(cfg.hidden), out_dim, cfg.activation, cfg.n_classes)


def _make_decoder(cfg: ModelConfig, out_shape: tuple[int, ...] | None = None) -> nn.Module:
    """The decoder net; ``out_shape`` is what the likelihood wants per example (default: the data's shape)."""
    out_shape = cfg.input_shape if out_shape is None else out_shape
    if cfg.architecture == "conv":
        return ConvDecoder(cfg.latent_dim, out_shape, cfg.activation, cfg.n_classes)
    return MLPDecoder(cfg.latent_dim, list(reversed(cfg.hidden)), out_shape, cfg.activation, cfg.n_classes)


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
    """A VAE: encoder -> q(z|x) (a location-scale family), a prior p(z), decoder -> p(x|z).

    The prior is N(0, I) or the VampPrior. With ``top_latent_dim > 0`` the model has two
    stochastic layers (Burda et al. 2015, section 5): q(z1|x) q(z2|z1) and p(z2) p(z1|z2) p(x|z1),
    and its code is z = [z1, z2]. The loss is the negative beta-ELBO with ``n_samples`` (L) reparameterized samples
    (Kingma & Welling 2014, eq. 7): ``-(E_q[log p(x|z)] - beta * KL(q(z|x) || p(z)))``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = _make_encoder(config, 2 * config.latent_dim)
        self.likelihood = D.make_likelihood(config.likelihood, config.input_shape, config.sigma, config.learn_sigma, config.ar_hidden)
        self.decoder = _make_decoder(config, self.likelihood.param_shape(config.input_shape))
        if config.prior == "vamp":
            # Pseudo-inputs start as faint near-blank images, N(0.05, 0.01) as Tomczak & Welling (2018) do.
            self.pseudo_inputs = nn.Parameter(0.05 + 0.01 * torch.randn(config.n_pseudo_inputs, *config.input_shape))
        if config.top_latent_dim:
            d1, d2 = config.latent_dim, config.top_latent_dim
            self.encoder_top = mlp([d1, *config.top_hidden, 2 * d2], config.activation)  # z1 -> q(z2 | z1)
            self.decoder_top = mlp([d2, *reversed(config.top_hidden), 2 * d1], config.activation)  # z2 -> p(z1 | z2)
        single = config.standard_normal_prior
        # The default model's KL has a cheaper closed form than the generic registry lookup.
        self._fast_kl = config.posterior == "normal" and single
        q = D.posterior(config.posterior, torch.zeros(1, config.latent_dim), torch.zeros(1, config.latent_dim), config.student_df)
        self._analytic_kl = single and D.has_analytic_kl(q, D.standard_normal(config.latent_dim))

    # -- the three distributions -------------------------------------------------------------
    def _posterior_params(self, x: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        loc, log_var = self.encoder(x, _condition(c, self.config)).chunk(2, dim=-1)
        return loc, log_var

    def _q_top(self, z1: Tensor):
        loc, log_var = self.encoder_top(z1).chunk(2, dim=-1)
        return D.posterior(self.config.posterior, loc, log_var, self.config.student_df)

    def _p_bottom(self, z2: Tensor):
        loc, log_var = self.decoder_top(z2).chunk(2, dim=-1)
        return D.posterior("normal", loc, log_var)

    def _posterior(self, loc: Tensor, log_var: Tensor):
        q1 = D.posterior(self.config.posterior, loc, log_var, self.config.student_df)
        if not self.config.top_latent_dim:
            return q1
        return D.ChainDistribution(q1, self._q_top, self.config.latent_dim, self.config.top_latent_dim)

    def inference(self, x: Tensor, c: Tensor | None = None):
        """q(z|x, c) as a torch Distribution with event shape (code_dim,)."""
        return self._posterior(*self._posterior_params(x, c))

    def _bottom(self, z: Tensor) -> Tensor:
        """z1, the layer that p(x|.) conditions on (the whole code for a one-layer model)."""
        return z[..., : self.config.latent_dim] if self.config.top_latent_dim else z

    def generative(self, z: Tensor, c: Tensor | None = None):
        """p(x|z, c) as a torch Distribution with event shape = one example's shape."""
        return self.likelihood(self.decoder(self._bottom(z), _condition(c, self.config)))

    def log_likelihood(self, z: Tensor, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x|z, c) for samples z of shape (S, B, code_dim): shape (S, B), nats per example."""
        s, b = z.shape[:2]
        cond = None if c is None else c.repeat(s)
        params = self.decoder(self._bottom(z).flatten(0, 1), _condition(cond, self.config))
        return self.likelihood.log_prob(params.view(s, b, *params.shape[1:]), x)

    def prior(self):
        """p(z): N(0, I), or the VampPrior (1/K) sum_k q(z | u_k) with learned pseudo-inputs u_k."""
        if self.config.prior == "vamp":
            # hardtanh keeps the pseudo-inputs in [0, 1], where the encoder has seen data.
            loc, log_var = self._posterior_params(F.hardtanh(self.pseudo_inputs, 0.0, 1.0), None)
            return D.mixture_of_posteriors(self.config.posterior, loc, log_var, self.config.student_df)
        p = next(self.parameters())
        if self.config.top_latent_dim:
            top = D.standard_normal(self.config.top_latent_dim, device=p.device, dtype=p.dtype)
            return D.ChainDistribution(top, self._p_bottom, self.config.top_latent_dim, self.config.latent_dim, head_first=False)
        return D.standard_normal(self.config.latent_dim, device=p.device, dtype=p.dtype)

    # -- the shared contract -----------------------------------------------------------------
    def encode(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """The posterior location (its mean for every family offered), shape (B, code_dim).

        With two layers: [mu1, mu2(mu1)], the top layer's location at the bottom one's.
        """
        loc = self._posterior_params(x, c)[0]
        if not self.config.top_latent_dim:
            return loc
        return torch.cat([loc, self._q_top(loc).mean], -1)

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """E[x | z]: the likelihood's mean, shaped like the data."""
        return self.likelihood.mean(self.decoder(self._bottom(z), _condition(c, self.config)))

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
        q = self._posterior(loc, log_var)
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
        return self.code_activation(self.encoder(x, _condition(c, self.config)))

    def _decode_params(self, z: Tensor, c: Tensor | None) -> Tensor:
        return self.decoder(z, _condition(c, self.config))

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
