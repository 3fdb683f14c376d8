"""The two model families as torch modules: a deterministic autoencoder and a VAE.

Every model keeps one contract, :class:`Model` (``encode``, ``decode``, ``loss`` with named terms),
so the trainer, evaluators, plots and CLI never ask which model they hold; a model with a density
also keeps :class:`DensityModel` (``inference`` -> q(z|x), ``prior`` -> p(z), ``generative`` ->
p(x|z), ``log_likelihood``, ``kl``, ``kl_dims``), every distribution a torch Distribution.
Labels ``c`` are class indices; models that are not conditional ignore them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution

from . import distributions as D
from . import flows  # noqa: F401 - binds the flow posteriors (iaf) to their declarations
from .errors import ConfigError
from .nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, StridedConvDecoder, StridedConvEncoder, conv_depth_for, conv_net_for
from .objectives import LossOutput
from .objectives import importance_weights as importance_weights  # re-exported: the IW routine lives with the objectives
from .objectives import log_importance_weights as log_importance_weights
from .options import BY_NAME, options_for
from .priors import build_prior, check_prior_spec
from .registry import FAMILIES, LIKELIHOODS, OBJECTIVES, POSTERIORS, PRIORS, Component

NOISES = ("gaussian", "masking", "salt-and-pepper")
SPARSITIES = ("l1", "kl")
# A conditional model's one-hot label is multiplied by this before it joins the encoder's and the
# decoder's inputs. Adam moves every weight by about lr per step, so an input's pull on a unit grows
# with its size; a bare one-hot (a single 1 beside 784 pixels or 20 Gaussian z's) learns 20-100x
# more slowly than z, so the encoder writes the class into z first and the decoder then ignores the
# label (the KL saves at most log 10 nats by undoing that). On the embedded sample, samples asked for
# class k were judged k in 37 % of cases at 1 and in 97 % at 30 (docs/tutorials/04-aevb-and-the-conditional-vae.md).
# Models saved before this existed read a bare one-hot: config_from_dict gives them 1.0. The
# default is the option's (``label_scale``, ``--label-scale``), declared in vaekit.options.
LABEL_SCALE = BY_NAME["label_scale"].default
# A model without a prior (a deterministic autoencoder) answers capability questions about p(z) with
# this component, whose flags all read False.
NO_PRIOR = Component("prior", "none")
NO_POSTERIOR = Component("posterior", "none")  # likewise for q(z|x): an autoencoder's code is a point


class NoDensityConfig:
    """The config side of a family without a density (an autoencoder, a VQ-VAE): no prior, no posterior."""

    family: ClassVar  # its entry in vaekit.registry.FAMILIES (set by the decorator)

    @property
    def kind(self) -> str:
        return self.family.name

    @property
    def prior_component(self):
        """No prior: every capability flag of it reads False (``cfg.prior_component.standard_normal``)."""
        return NO_PRIOR

    @property
    def posterior_component(self):
        """No posterior: every capability flag of it reads False."""
        return NO_POSTERIOR


@FAMILIES.implements("ae", role="config")
@dataclass
class AEConfig(NoDensityConfig):
    """What rebuilds an autoencoder's modules; saved as JSON beside the weights.

    ``likelihood``: 'bernoulli' (cross-entropy on logits) or 'gaussian' (squared error).
    ``sparsity``: None or ``{"name": "l1", "weight": w}`` / ``{"name": "kl", "weight": w, "target": rho}``.
    ``noise``: None or ``{"name": "gaussian" | "masking" | "salt-and-pepper", "level": p}``.
    """

    family: ClassVar  # its entry in vaekit.registry.FAMILIES (set by the decorator)
    input_shape: tuple[int, ...] = (784,)
    latent_dim: int = 32
    hidden: tuple[int, ...] = (256,)
    activation: str = "relu"
    architecture: str = "mlp"  # "mlp" or "conv"
    conv_depth: int = 2  # conv only: pooling stages (chosen from the image size; 2 in every 0.1.0 file)
    conv_net: str = "pooled"  # conv only: "pooled" (the course's) or "strided" (the papers', for 64 x 64 and up); see nets
    n_classes: int = 0  # > 0: fed a one-hot label in encoder and decoder
    label_scale: float = LABEL_SCALE  # the one-hot label is multiplied by this (see LABEL_SCALE)
    likelihood: str = "bernoulli"
    sparsity: dict | None = None
    noise: dict | None = None

    @property
    def code_dim(self) -> int:
        return self.latent_dim

    def __post_init__(self) -> None:
        _normalize_net(self)
        if self.likelihood not in LIKELIHOODS.names(self.kind):
            raise ConfigError(f"likelihood {self.likelihood!r} is not available for an autoencoder; "
                              f"choose one of {', '.join(LIKELIHOODS.names(self.kind))}")
        if self.sparsity is not None:
            s = _check_component("sparsity", self.sparsity, {"l1": {"weight"}, "kl": {"weight", "target"}})
            if s["name"] == "kl" and not 0 < s.get("target", 0.05) < 1:
                raise ConfigError(f"sparsity target rho must lie in (0, 1), got sparsity_target={s['target']}")
        if self.noise is not None:
            n = _check_component("noise", self.noise, {k: {"level"} for k in NOISES})
            if n["name"] in ("masking", "salt-and-pepper") and not 0 <= n.get("level", 0.3) <= 1:
                raise ConfigError(f"{n['name']} noise level is a probability; got noise_level={n['level']}")

    def to_dict(self) -> dict:
        return {"name": self.kind, **dataclasses.asdict(self)}

    @classmethod
    def from_params(cls, input_shape: tuple[int, ...], n_classes: int, net: dict, params: dict) -> AEConfig:
        """The config of flat estimator parameters (see config_from_params)."""
        sparsity = noise = None
        if params.get("sparsity"):
            sparsity = {"name": params["sparsity"], "weight": params.get("sparsity_weight", 1e-3)}
            if params["sparsity"] == "kl":
                sparsity["target"] = params.get("sparsity_target", 0.05)
        if params.get("noise"):
            noise = {"name": params["noise"], "level": params.get("noise_level", 0.3)}
        return cls(input_shape=input_shape, n_classes=n_classes, likelihood=params.get("likelihood", "bernoulli"),
                   sparsity=sparsity, noise=noise, **net)


@FAMILIES.implements("vae", role="config")
@dataclass
class VAEConfig:
    """What rebuilds a VAE's modules; saved as JSON beside the weights.

    Three components, each JSON with a name and only the options that apply to it:
    ``likelihood`` p(x|z): ``{"name": "bernoulli"}``, ``{"name": "gaussian", "sigma": 1.0,
    "learn_sigma": false}``, ``{"name": "autoregressive-bernoulli", "ar_hidden": 500}``, ...;
    ``posterior`` q(z|x): ``{"name": "normal"}`` or ``{"name": "student-t", "df": 5.0}``;
    ``prior`` p(z): ``{"name": "normal"}``, ``{"name": "vamp", "n_pseudo_inputs": 500}`` or
    ``{"name": "two-layer", "latent_dim": 2, "hidden": [100, 100]}`` or ``{"name": "two-layer-vamp", "latent_dim": 2,
    "hidden": [100, 100], "n_pseudo_inputs": 500}`` (see vaekit.priors).
    """

    family: ClassVar
    input_shape: tuple[int, ...] = (784,)
    latent_dim: int = 20
    hidden: tuple[int, ...] = (400,)
    activation: str = "relu"
    architecture: str = "mlp"
    conv_depth: int = 2  # conv only: pooling stages (chosen from the image size; 2 in every 0.1.0 file)
    conv_net: str = "pooled"  # conv only: "pooled" (the course's) or "strided" (the papers', for 64 x 64 and up); see nets
    n_classes: int = 0
    label_scale: float = LABEL_SCALE
    likelihood: dict = field(default_factory=lambda: {"name": "bernoulli"})
    posterior: dict = field(default_factory=lambda: {"name": "normal"})
    prior: dict = field(default_factory=lambda: {"name": "normal"})

    @property
    def kind(self) -> str:
        return self.family.name

    @property
    def prior_component(self):
        """p(z)'s registered component: ``cfg.prior_component.standard_normal`` is "p(z) = N(0, I)"."""
        return PRIORS[self.prior["name"]]

    @property
    def posterior_component(self):
        """q(z|x)'s registered component: ``cfg.posterior_component.location_scale`` is "independent dimensions,
        draws from given noise" (False for a flow, whose per-dimension KLs against p(z_j) are unknown)."""
        return POSTERIORS[self.posterior["name"]]

    @property
    def code_dim(self) -> int:
        """Length of a model's code: z1 and, with two stochastic layers, z2 after it."""
        return self.latent_dim + (int(self.prior.get("latent_dim", 2)) if self.prior_component.top_layer else 0)

    def __post_init__(self) -> None:
        _normalize_net(self)
        lik = _check_component("likelihood", self.likelihood, _taken(LIKELIHOODS))
        if LIKELIHOODS[lik["name"]].mlp_only and self.architecture != "mlp":
            raise ConfigError(f"the {lik['name']} likelihood needs the MLP decoder; use another likelihood or architecture='mlp'")
        if int(lik.get("ar_hidden", 1)) < 1:
            raise ConfigError(f"ar_hidden must be at least 1, got {lik['ar_hidden']}")
        _check_component("posterior", self.posterior, _taken(POSTERIORS))
        check_prior_spec(self.prior, conditional=bool(self.n_classes))
        _check_pair(POSTERIORS[self.posterior["name"]], PRIORS[self.prior["name"]])
        if self.prior_component.needs_encoder and int(self.prior.get("n_pseudo_inputs", 500)) < 1:
            raise ConfigError(f"the VampPrior needs at least 1 pseudo-input, got n_pseudo_inputs={self.prior['n_pseudo_inputs']}")

    def to_dict(self) -> dict:
        return {"name": self.kind, **dataclasses.asdict(self)}

    @classmethod
    def from_params(cls, input_shape: tuple[int, ...], n_classes: int, net: dict, params: dict) -> VAEConfig:
        """The config of flat estimator parameters: each component with the options it reads."""
        name = params.get("likelihood", "bernoulli")
        lik = {"name": name, **component_options(LIKELIHOODS[name], params)}
        family = params.get("posterior", "normal")
        post = {"name": family, **component_options(POSTERIORS[family], params)}
        prior = params.get("prior", "normal")
        top = int(params.get("top_latent_dim", 0) or 0)
        if top < 0:
            raise ConfigError(f"top_latent_dim must be >= 0 (0: one stochastic layer), got {top}")
        if prior not in PRIORS.names(choice=True):
            raise ConfigError(f"unknown prior {prior!r}; choose {' or '.join(PRIORS.names(choice=True))}")
        if top and not PRIORS[prior].two_layer:  # the second layer moves p(z) from z1 to z2
            raise ConfigError(f"{PRIORS[prior].title or 'the ' + prior + ' prior'} with two stochastic layers is not available; "
                              "use prior='normal' or top_latent_dim=0")
        name = PRIORS[prior].two_layer if top else prior
        prior_spec = {"name": name, **component_options(PRIORS[name], params)}
        return cls(input_shape=input_shape, n_classes=n_classes, likelihood=lik, posterior=post, prior=prior_spec, **net)


ModelConfig = AEConfig | VAEConfig
# The flat parameters each family translates (config_from_params): its options with target "model".
FLAT_PARAMS = {f.name: {o.name for o in options_for(f.name, "model")} for f in FAMILIES}


def _normalize_net(cfg) -> None:
    """Shared checks of the networks' fields (JSON lists become tuples)."""
    cfg.input_shape = tuple(int(s) for s in cfg.input_shape)
    cfg.hidden = tuple(int(h) for h in cfg.hidden)
    cfg.n_classes = int(cfg.n_classes or 0)
    cfg.label_scale = float(cfg.label_scale)
    if not cfg.label_scale > 0:
        raise ConfigError(f"label_scale must be > 0, got {cfg.label_scale}")
    if int(cfg.latent_dim) < 1:
        raise ConfigError(f"latent_dim must be at least 1, got {cfg.latent_dim}")
    if any(h < 1 for h in cfg.hidden):
        raise ConfigError(f"hidden layer sizes must be positive, got {list(cfg.hidden)}")
    if cfg.architecture not in ("mlp", "conv"):
        raise ConfigError(f"unknown architecture {cfg.architecture!r}; expected 'mlp' or 'conv'")
    cfg.conv_depth = int(cfg.conv_depth)
    if not 2 <= cfg.conv_depth <= 5:
        raise ConfigError(f"conv_depth must be 2 to 5 pooling stages, got {cfg.conv_depth}")
    if cfg.conv_net not in ("pooled", "strided"):
        raise ConfigError(f"unknown conv_net {cfg.conv_net!r}; expected 'pooled' or 'strided'")


def _taken(registry) -> dict[str, set[str]]:
    """Each registered component's name -> the JSON options it takes."""
    return {c.name: set(c.options) for c in registry}


_CONVERT = {"int": int, "float": float, "bool": bool, "str": str, "sizes": lambda v: [int(h) for h in v]}


def component_options(component, params: dict) -> dict:
    """The JSON options of a registered component, read from the flat parameters (or their
    declared defaults) and converted to the declared type: ``{"sigma": 1.0, "learn_sigma": False}``."""
    return {key: _CONVERT[BY_NAME[name].type](params.get(name, BY_NAME[name].default))
            for key, name in component.options.items()}


def _check_pair(posterior: Component, prior: Component) -> None:
    """A prior that needs a capability of the posterior (its ``posterior_needs`` flags) refuses one without it."""
    for flag, why in (prior.posterior_needs or {}).items():
        if not getattr(posterior, flag):
            title = prior.title or f"the {prior.name} prior"
            raise ConfigError(f"{title} is not available with the {posterior.name} posterior ({flag} is False): {why}; "
                              "choose a posterior that can, such as posterior='normal'")


def _check_component(what: str, spec, allowed: dict[str, set[str]]) -> dict:
    """A component spec ``{"name": name, option: value}`` (the one discriminator key of every
    component in the saved JSON) checked against the closed set ``allowed``."""
    if not isinstance(spec, dict) or spec.get("name") not in allowed:
        name = spec.get("name") if isinstance(spec, dict) else spec
        raise ConfigError(f"unknown {what} {name!r}; choose one of {', '.join(allowed)}")
    extra = sorted(set(spec) - {"name"} - allowed[spec["name"]])
    if extra:
        raise ConfigError(f"the {spec['name']} {what} takes no option {', '.join(extra)}")
    return spec


def config_from_params(kind: str = "vae", input_shape: tuple[int, ...] = (784,), n_classes: int = 0, **params) -> ModelConfig:
    """Translate an estimator's flat parameters into a model config (the one place that does it).

    ``params`` are the estimator's network and latent-side parameters (``latent_dim``, ``hidden``,
    ``likelihood``, ``prior``, ``sparsity``, ...); ones that do not apply to the chosen components
    are left out of the config. The family's config class translates its own (``from_params``).
    """
    if kind not in FAMILIES:
        raise ConfigError(f"unknown model kind {kind!r}; choose one of {', '.join(FAMILIES.names())}")
    family = FAMILIES[kind]
    wrong = sorted(set(params) - FLAT_PARAMS[kind])
    if wrong:
        raise ConfigError(f"{', '.join(wrong)} does not apply to {family.article} {family.title}")
    net = {k: params[k] for k in ("latent_dim", "hidden", "activation", "architecture") if k in params}
    if net.get("architecture") == "conv" and len(input_shape) == 3:
        net["conv_depth"] = conv_depth_for(*input_shape[1:])
        net["conv_net"] = conv_net_for(*input_shape[1:])
    if "label_scale" in params:
        net["label_scale"] = float(params["label_scale"])
    return family.parts["config"].from_params(tuple(input_shape), n_classes, net, params)


def config_from_dict(d: dict) -> ModelConfig:
    """The config a saved ``model`` section (current format) describes."""
    d = dict(d)
    kind = d.pop("name", None)
    if kind not in FAMILIES:
        raise ConfigError(f"unknown model kind {kind!r}; expected one of {', '.join(FAMILIES.names())}")
    cls = FAMILIES[kind].parts["config"]
    if d.get("n_classes") and "label_scale" not in d:
        d["label_scale"] = 1.0  # a conditional model saved before label_scale existed saw a bare one-hot
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"model config has unknown fields {sorted(unknown)}; was it written by a newer vaekit?")
    return cls(**d)


@runtime_checkable
class Model(Protocol):
    """The contract every model family's module keeps (its class carries ``family``, the FAMILIES
    entry, and ``config``): the trainer, evaluators, plots and CLI call only these.

    - ``encode(x, c)``: the code, (B, code_dim); for a density model the posterior mean. What
      estimators (``est.encode``), probes and distances use.
    - ``decode(z, c)``: E[x|z], shaped like the data.
    - ``loss(x, c, **options)``: a :class:`~vaekit.objectives.LossOutput`, the scalar to minimize and
      named per-example terms (nats, or the likelihood's loss unit for an autoencoder).
    """

    def encode(self, x: Tensor, c: Tensor | None = None) -> Tensor: ...

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor: ...

    def loss(self, x: Tensor, c: Tensor | None = None, **options) -> LossOutput: ...


@runtime_checkable
class DensityModel(Model, Protocol):
    """A model with a density (``model.family.has_density``; an autoencoder has none): what the
    ELBO, importance sampling, samples from the prior and the likelihood-based anomaly scores need.

    Every posterior and prior is a ``torch.distributions.Distribution``, and nothing here is typed
    by a family's parameters, so a flow or a discrete code fits the same signatures:

    - ``inference(x, c)``: q(z|x, c), batch (B,), event (code_dim,); draw with ``rsample``.
    - ``prior()``: p(z), event (code_dim,) (build it once per pass: a VampPrior's is an encoder pass).
    - ``generative(z, c)``: p(x|z, c), event = one example's shape.
    - ``log_likelihood(z, x, c)``: log p(x|z, c) for draws z (S, B, code_dim), (S, B) nats, without
      copying x S times.
    - ``kl(q, z)``: KL(q || p(z)) per example, (B,) nats, q from ``inference``: closed form where one
      exists (read from q itself), else Monte-Carlo over the draws z (L, B, code_dim).
    - ``kl_dims(q, z)``: the same per code dimension against p(z)'s marginals, (B, code_dim) nats,
      or a ConfigError where the marginals are unknown.

    Importance weights over these (the IWAE objective, evaluation, anomaly scores) are
    :func:`vaekit.objectives.importance_weights`.
    """

    def inference(self, x: Tensor, c: Tensor | None = None) -> Distribution: ...

    def prior(self) -> Distribution: ...

    def generative(self, z: Tensor, c: Tensor | None = None) -> Distribution: ...

    def log_likelihood(self, z: Tensor, x: Tensor, c: Tensor | None = None) -> Tensor: ...

    def kl(self, q: Distribution, z: Tensor) -> Tensor: ...

    def kl_dims(self, q: Distribution, z: Tensor) -> Tensor: ...


def _condition(c: Tensor | None, cfg: ModelConfig) -> Tensor | None:
    """What a conditional model's networks see of the labels: ``label_scale`` times their one-hot."""
    if not cfg.n_classes:
        return None
    if c is None:
        raise ConfigError("this model is conditional: it needs a label for each example (pass y / --label)")
    return cfg.label_scale * F.one_hot(c.long(), cfg.n_classes).float()


def _make_encoder(cfg, out_dim: int) -> nn.Module:
    if cfg.architecture == "conv" and cfg.conv_net == "strided":
        return StridedConvEncoder(cfg.input_shape, out_dim, cfg.activation, cfg.n_classes)
    if cfg.architecture == "conv":
        return ConvEncoder(cfg.input_shape, out_dim, cfg.activation, cfg.n_classes, depth=cfg.conv_depth)
    return MLPEncoder(cfg.input_shape, list(cfg.hidden), out_dim, cfg.activation, cfg.n_classes)


def _posterior_flow(cfg: VAEConfig) -> nn.Module | None:
    """A posterior with weights of its own (not ``location_scale``: a flow, vaekit.flows), built from its
    JSON options as ``impl(latent_dim, **options)``; None for a location-scale family."""
    component = POSTERIORS[cfg.posterior["name"]]
    if component.location_scale:
        return None
    return component.build(cfg.latent_dim, **{k: v for k, v in cfg.posterior.items() if k != "name"})


def _make_decoder(cfg, out_shape: tuple[int, ...] | None = None) -> nn.Module:
    """The decoder net; ``out_shape`` is what the likelihood wants per example (default: the data's shape)."""
    out_shape = cfg.input_shape if out_shape is None else out_shape
    if cfg.architecture == "conv" and cfg.conv_net == "strided":
        return StridedConvDecoder(cfg.latent_dim, out_shape, cfg.activation, cfg.n_classes)
    if cfg.architecture == "conv":
        return ConvDecoder(cfg.latent_dim, out_shape, cfg.activation, cfg.n_classes, depth=cfg.conv_depth)
    return MLPDecoder(cfg.latent_dim, list(reversed(cfg.hidden)), out_shape, cfg.activation, cfg.n_classes)


@FAMILIES.implements("vae")
class VAE(nn.Module):
    """A VAE: encoder -> q(z|x) (a location-scale family), a prior p(z), decoder -> p(x|z); a :class:`DensityModel`.

    The prior is a :class:`vaekit.priors.Prior` module (N(0, I), the VampPrior, or two stochastic
    layers); the VAE asks it for p(z), the KL and, with two layers, the whole posterior and code.
    The loss is the negative beta-ELBO with ``n_samples`` (L) reparameterized samples
    (Kingma & Welling 2014, eq. 7): ``-(E_q[log p(x|z)] - beta * KL(q(z|x) || p(z)))``.
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        lik = {k: v for k, v in config.likelihood.items() if k != "name"}
        flow = _posterior_flow(config)
        self.encoder = _make_encoder(config, 2 * config.latent_dim + (flow.context_dim if flow is not None else 0))
        self.likelihood = LIKELIHOODS[config.likelihood["name"]].build(config.input_shape, **lik)
        self.decoder = _make_decoder(config, self.likelihood.param_shape(config.input_shape))
        # Registered last, so that parameters keep the order of format 1 (optimizer states in checkpoints).
        self.latent_prior = build_prior(config.prior, latent_dim=config.latent_dim, posterior=config.posterior,
                                        input_shape=config.input_shape, activation=config.activation)
        self.posterior_flow = flow  # after the prior too; None (no weights) for a location-scale family

    # -- the density interface ----------------------------------------------------------------
    def q_bottom(self, x: Tensor, c: Tensor | None = None) -> Distribution:
        """q(z1|x, c), the encoder's posterior over the layer the decoder reads (batch (B,), event
        (latent_dim,)); the whole posterior with one stochastic layer. What the VampPrior mixes."""
        out = D.full_precision(self.encoder(x, _condition(c, self.config)))
        if self.posterior_flow is not None:  # the encoder's (loc, log_var, context h) through the flow
            loc, log_var, h = out.split([self.config.latent_dim, self.config.latent_dim, self.posterior_flow.context_dim], dim=-1)
            return self.posterior_flow(loc, log_var, h)
        loc, log_var = out.chunk(2, dim=-1)
        post = self.config.posterior
        return D.posterior(post["name"], loc, log_var, post.get("df", 5.0))

    def posterior_params(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The encoder head's (loc, log_var) of q(z1|x, c), read off :meth:`q_bottom`: for checking the
        location-scale arithmetic by hand (tests, notebooks). Not part of the model contract."""
        q = self.q_bottom(x, c)
        return q.loc, q.log_var

    def inference(self, x: Tensor, c: Tensor | None = None) -> Distribution:
        """q(z|x, c) as a torch Distribution with event shape (code_dim,)."""
        return self.latent_prior.posterior(self.q_bottom(x, c))

    def _decoder_params(self, z: Tensor, c: Tensor | None) -> Tensor:
        """The decoder's outputs at codes z (B, code_dim) or (S, B, code_dim), leading dims kept.

        Samples are flattened into one batch for the network (labels repeated, not x), then viewed back."""
        if z.dim() <= 2:
            return D.full_precision(self.decoder(self.latent_prior.bottom(z), _condition(c, self.config)))
        s, b = z.shape[:2]
        cond = None if c is None else c.repeat(s)
        params = self.decoder(self.latent_prior.bottom(z).flatten(0, 1), _condition(cond, self.config))
        return D.full_precision(params.view(s, b, *params.shape[1:]))

    def generative(self, z: Tensor, c: Tensor | None = None) -> Distribution:
        """p(x|z, c) as a torch Distribution with event shape = one example's shape; z (B, code_dim)
        or (S, B, code_dim), the batch shape its leading dims."""
        return self.likelihood(self._decoder_params(z, c), len(self.config.input_shape))

    def log_likelihood(self, z: Tensor, x: Tensor, c: Tensor | None = None) -> Tensor:
        """log p(x|z, c) for samples z of shape (S, B, code_dim): shape (S, B), nats per example."""
        return self.likelihood.log_prob(self._decoder_params(z, c), x)

    def prior(self) -> Distribution:
        """p(z) as a torch Distribution with event shape (code_dim,)."""
        return self.latent_prior(self.q_bottom)

    def prior_marginals(self) -> Distribution:
        """p(z_j) for each code dimension j (batch (code_dim,)), or a ConfigError where they are unknown."""
        return self.latent_prior.marginals(self.q_bottom)

    def kl(self, q: Distribution, z: Tensor) -> Tensor:
        """KL(q(z|x) || p(z)) per example in nats, q from :meth:`inference`: closed form where one
        exists (read from q), else Monte-Carlo over the draws z (L, B, code_dim)."""
        return self.latent_prior.kl(q, z, self.q_bottom)

    def kl_dims(self, q: Distribution, z: Tensor) -> Tensor:
        """KL(q(z_j|x) || p(z_j)) per example and code dimension, (B, code_dim) nats (see Prior.kl_dims)."""
        return self.latent_prior.kl_dims(q, z, self.q_bottom)

    # -- the shared contract -----------------------------------------------------------------
    def encode(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """The posterior location (its mean for every family offered), shape (B, code_dim).

        With two layers: [mu1, mu2(mu1)], the top layer's location at the bottom one's.
        """
        return self.latent_prior.code(self.inference(x, c))

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """E[x | z]: the likelihood's mean, shaped like the data."""
        return self.likelihood.mean(self._decoder_params(z, c))

    def loss(self, x: Tensor, c: Tensor | None = None, *, objective: str = "elbo", **options) -> LossOutput:
        """Negative training objective and its named terms, in nats per example.

        ``objective`` names a function registered in :data:`vaekit.registry.OBJECTIVES` (``elbo``,
        ``iwae``, ... see vaekit.objectives); ``options`` are the training options it reads
        (``beta``, ``n_samples``, ...).
        """
        return OBJECTIVES[objective].impl(self, x, c, options)

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


@FAMILIES.implements("ae")
class Autoencoder(nn.Module):
    """A deterministic autoencoder z = f(x), x_hat = g(z), optionally sparse or denoising.

    Reconstruction loss per example: binary cross-entropy on logits (nats) for 'bernoulli', or the
    squared error summed over features for 'gaussian' (the MSE / regression view).
    Sparsity: 'l1' adds ``weight * sum_i |a_i|`` on the code (ReLU code layer); 'kl' adds
    ``weight * sum_j KL(rho || rho_hat_j)`` with rho_hat_j the batch-mean activation of a sigmoid code.
    """

    def __init__(self, config: AEConfig):
        super().__init__()
        self.config = config
        self.encoder = _make_encoder(config, config.latent_dim)
        self.decoder = _make_decoder(config)
        sparsity = (config.sparsity or {}).get("name")
        code_act = {"kl": nn.Sigmoid(), "l1": nn.ReLU()}.get(sparsity, nn.Identity())
        self.code_activation = code_act

    def encode(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        return self.code_activation(D.full_precision(self.encoder(x, _condition(c, self.config))))

    def _decode_params(self, z: Tensor, c: Tensor | None) -> Tensor:
        return D.full_precision(self.decoder(z, _condition(c, self.config)))

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        out = self._decode_params(z, c)
        return torch.sigmoid(out) if LIKELIHOODS[self.config.likelihood].needs_unit_interval else out

    def reconstruction_error(self, x: Tensor, params: Tensor) -> Tensor:
        """Per-example reconstruction loss from decoder outputs (see class docstring for units)."""
        if LIKELIHOODS[self.config.likelihood].needs_unit_interval:  # logits against data in [0, 1]
            return F.binary_cross_entropy_with_logits(params, x, reduction="none").flatten(1).sum(-1)
        return (params - x).pow(2).flatten(1).sum(-1)

    def loss(self, x: Tensor, c: Tensor | None = None, **_: object) -> LossOutput:
        cfg = self.config
        noise, sparsity = cfg.noise, cfg.sparsity or {"name": None}
        x_in = corrupt(x, noise["name"], noise.get("level", 0.3)) if (noise and self.training) else x
        code = self.encode(x_in, c)
        rec = self.reconstruction_error(x, self._decode_params(code, c))
        terms = {"reconstruction": rec}
        loss = rec.mean()
        weight = sparsity.get("weight", 1e-3)
        if sparsity["name"] == "l1":
            penalty = weight * code.abs().sum(-1)
            terms["sparsity"] = penalty
            loss = loss + penalty.mean()
        elif sparsity["name"] == "kl":
            penalty = weight * bernoulli_kl(sparsity.get("target", 0.05), code.mean(0)).sum()
            terms["sparsity"] = penalty  # a batch-level penalty: rho_hat is a mean over the batch
            loss = loss + penalty
        unit = LIKELIHOODS[cfg.likelihood].loss_unit + "/example"
        return LossOutput(loss, terms, unit)

    def forward(self, x: Tensor, c: Tensor | None = None, **kwargs) -> LossOutput:
        return self.loss(x, c, **kwargs)


def build_model(config: ModelConfig) -> nn.Module:
    """The torch module for a config: its family's registered class."""
    return config.family.build(config)


def n_parameters(model: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())
