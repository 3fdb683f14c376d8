"""The components a model is composed of, each registered under a name with what it can do.

Standard library only, so that the command line's choices (``--likelihood``, ``--posterior``,
``--prior``, ``--objective``) come from here without importing torch. Each kind of component has
one :class:`Registry`; a :class:`Component` says its name, which model families take it
(``families``), which estimator options it reads (``options``: JSON key -> the option's name in
``vaekit.options``, where each is declared once), and its capability flags (``flags``), which
consumers read instead of comparing names: ``LIKELIHOODS["gaussian"].needs_unit_interval``.

Two ways to register, by where the implementation can live:

- **Next to the code**, when the implementation imports nothing heavy at module level: the training
  objectives (``vaekit.objectives``) are plain functions on tensors and register with
  ``@OBJECTIVES.register("elbo", ...)``.
- **Declared here, implemented next to the code**, for components built on torch (likelihoods,
  posterior families, priors): the declaration below carries every flag the command line and the
  consumers need; the class or function in ``distributions`` / ``priors`` binds itself with
  ``@LIKELIHOODS.implements("bernoulli")``. ``tests/test_conformance.py`` checks that every
  declaration has an implementation and runs the same property tests on all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError


@dataclass
class Component:
    """One registered component: its name, families, options and capability flags."""

    kind: str
    name: str
    families: tuple[str, ...] = ("vae",)
    options: dict[str, str] = field(default_factory=dict)  # JSON key -> option name in vaekit.options
    help: str = ""
    flags: dict[str, Any] = field(default_factory=dict)
    impl: Any = None  # the class or function; None until its module is imported
    parts: dict[str, Any] = field(default_factory=dict)  # further implementations by role (a family's "config", "estimator")

    def __getattr__(self, flag: str):
        # A capability not declared reads as False: a new flag needs no edit of older components.
        if flag.startswith("__"):
            raise AttributeError(flag)
        return self.__dict__.get("flags", {}).get(flag, False)

    def build(self, *args, **kwargs):
        if self.impl is None:
            raise ConfigError(f"the {self.name} {self.kind} is declared but its implementation was not imported")
        return self.impl(*args, **kwargs)


class Registry:
    """The components of one kind, in registration order (the order of every list a user sees)."""

    def __init__(self, kind: str, attr: str = "component"):
        self.kind = kind
        self.attr = attr  # the attribute an implementation gets pointing at its entry: ``VAE.family``
        self._entries: dict[str, Component] = {}

    def declare(self, name: str, **meta) -> Component:
        """Declare a component whose implementation binds itself later with :meth:`implements`."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        entry = self._entries[name] = Component(self.kind, name, **meta)
        return entry

    def implements(self, name: str, role: str = "impl") -> Callable:
        """Decorator: bind a class or function to the declared component ``name``.

        ``role`` "impl" is the implementation :meth:`Component.build` calls; a family has further
        parts (its "config" class, its scikit-learn "estimator"), kept in ``Component.parts``. Every
        part gets an attribute (``attr``, e.g. ``family``) pointing back at the entry, so that a
        consumer holding a model, a config or an estimator asks ``obj.family.has_density``.
        """
        def bind(obj):
            entry = self[name]
            if role == "impl":
                entry.impl = obj
            else:
                entry.parts[role] = obj
            setattr(obj, self.attr, entry)
            return obj
        return bind

    def register(self, name: str, **meta) -> Callable:
        """Decorator: declare and implement in one step (for implementations without heavy imports)."""
        def add(obj):
            self.declare(name, **meta)
            return self.implements(name)(obj)
        return add

    def __getitem__(self, name: str) -> Component:
        entry = self._entries.get(name)
        if entry is None:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries)}")
        return entry

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Component]:
        return iter(self._entries.values())

    def names(self, family: str | None = None, **flags) -> tuple[str, ...]:
        """The names taken by ``family`` (all when None) whose flags have the given values."""
        return tuple(c.name for c in self if (family is None or family in c.families)
                     and all(getattr(c, f) == v for f, v in flags.items()))


FAMILIES = Registry("family", attr="family")
PRESETS = Registry("preset", attr="preset")
LIKELIHOODS = Registry("likelihood")
POSTERIORS = Registry("posterior")
PRIORS = Registry("prior")
OBJECTIVES = Registry("objective")

# -- likelihoods p(x|z) (implemented in vaekit.distributions) ------------------------------------
# needs_unit_interval: data must lie in [0, 1]; discrete: a probability mass over binary data (the
# conformance suite sums it over all images of a few pixels); mlp_only: needs the MLP decoder; sequential_mean:
# E[x|z] has no closed form, figures show one draw's probabilities; loss_unit: what an
# autoencoder's reconstruction error is measured in; blur: what to look for in a decoded image
# (the report's captions); column_sum: log p(x|z) is a sum over the data's columns (an anomaly detector splits it up).
LIKELIHOODS.declare(
    "bernoulli", families=("vae", "ae", "vq"), flags={
        "needs_unit_interval": True, "discrete": True, "loss_unit": "nats", "column_sum": True,
        "blur": "a Bernoulli decoder draws its mean E[x|z], the probability that each pixel is on, so strokes it is unsure of "
                "come out gray and blurry: that blur is the mean of many plausible images, not a bug"})
LIKELIHOODS.declare(
    "continuous-bernoulli", flags={
        "needs_unit_interval": True, "column_sum": True,
        "blur": "a continuous Bernoulli decoder draws its mean, which is less washed out than a Bernoulli's but still an average"})
LIKELIHOODS.declare(
    "gaussian", families=("vae", "ae", "vq"), options={"sigma": "sigma", "learn_sigma": "learn_sigma"}, flags={
        "loss_unit": "squared error", "column_sum": True,
        "blur": "a Gaussian decoder's mean is the average of the images that z could stand for (it minimizes squared error), "
                "so fine detail blurs away"})
LIKELIHOODS.declare(
    "autoregressive-bernoulli", options={"ar_hidden": "ar_hidden", "ar_dropout": "ar_dropout"}, flags={
        "needs_unit_interval": True, "discrete": True, "mlp_only": True, "sequential_mean": True,
        "blur": "an autoregressive decoder draws pixels one after another, so its images are sharp draws, not means"})

# -- posterior families q(z|x) (location-scale ones implemented in vaekit.distributions) ----------
# kl_formula: KL(q(z_j|x) || N(0, 1)) of one dimension in closed form (the report's caption);
# location_scale: z = loc + scale * eps with independent dimensions, so draws from given standard noise
# (common random numbers, the anomaly scores) and per-dimension factors exist; log_prob_anywhere: log q(z|x)
# at any z, not only at q's own draws (a VampPrior's mixture evaluates q(z|u_k) at other posteriors' draws).
_LOCATION_SCALE = {"location_scale": True, "log_prob_anywhere": True}
POSTERIORS.declare("normal", flags={"kl_formula": "½(μ_j² + σ_j² − 1 − log σ_j²) for a Normal posterior", **_LOCATION_SCALE})
POSTERIORS.declare("laplace", flags=_LOCATION_SCALE)
POSTERIORS.declare("student-t", options={"df": "student_df"}, flags=_LOCATION_SCALE)
POSTERIORS.declare("logistic", flags=_LOCATION_SCALE)
# An inverse autoregressive flow (Kingma et al. 2016; vaekit.flows): a Gaussian pushed through T MADE steps. Its
# log-density is exact at its own draws; elsewhere it needs the flow's inverse, which is not provided. The KL is Monte-Carlo.
POSTERIORS.declare("iaf", options={"steps": "iaf_steps", "made_hidden": "iaf_hidden"}, help="inverse autoregressive flow", flags={
    "location_scale": False, "log_prob_anywhere": False, "closed_form_kl": False,
    "kl_note": "a Monte-Carlo estimate log q(z|x) − log p(z) at the draws (no closed form through the flow)"})

# -- priors p(z) (implemented in vaekit.priors) -------------------------------------------------
# choice: offered by --prior (two-layer is chosen by --top-latent-dim); standard_normal: p(z) = N(0, I);
# conditional: available for a conditional model; title: its name in messages; symbol: how captions write
# it (p(z) when not declared).
# two_layer: the registered prior that --top-latent-dim makes of this one (p(z2) this prior, p(z1|z2) a network);
# top_layer: the code is [z1, z2], the spec's latent_dim the size of z2.
PRIORS.declare("normal", flags={"choice": True, "standard_normal": True, "conditional": True, "symbol": "N(0, I)",
                                "two_layer": "two-layer"})
# needs_encoder: p(z) runs the encoder (over its pseudo-inputs), so a decoder saved alone keeps the encoder's weights.
# posterior_needs: the POSTERIORS flags it needs of the posterior, each with why (the config refuses others in one line).
PRIORS.declare("vamp", options={"n_pseudo_inputs": "n_pseudo_inputs"}, flags={
    "choice": True, "title": "the VampPrior", "needs_encoder": True, "two_layer": "two-layer-vamp",
    "posterior_needs": {"log_prob_anywhere": "its mixture evaluates q(z|u_k) at draws of other posteriors"}})
_UPPER = {"location_scale": "its upper layer q(z2|z1) is built in the posterior's location-scale family"}
PRIORS.declare("two-layer", options={"latent_dim": "top_latent_dim", "hidden": "top_hidden"}, flags={
    "conditional": True, "top_layer": True, "posterior_needs": _UPPER})
# The VampPrior on the upper layer (Tomczak & Welling 2018's hierarchical VampPrior, adapted to the bottom-up chain).
PRIORS.declare("two-layer-vamp", options={"latent_dim": "top_latent_dim", "hidden": "top_hidden", "n_pseudo_inputs": "n_pseudo_inputs"},
               flags={"top_layer": True, "needs_encoder": True, "title": "the VampPrior over two stochastic layers",
                      "posterior_needs": {**_UPPER, "log_prob_anywhere": "its mixture evaluates q(z2|.) at draws of other posteriors"}})

# -- model families (implemented in vaekit.models; estimators in vaekit.estimators) ---------------
# has_density: a prior, a posterior and a likelihood, so an ELBO, an importance-weighted NLL, samples
# from p(z) and likelihood-based anomaly scores exist; conditional: takes class labels (the
# estimator's ``conditional`` option); estimator: its scikit-learn class's name (in config.json); json_name: its
# name in `vaekit evaluate --json` (as 0.1.0 wrote it);
# title / plural / article: its name in messages and help; long_title: its name spelled out (the report's
# introduction); codes / code_from: what its encoder gives (figures' titles: "posterior means", "through the
# posterior mean"; an autoencoder's code is a point);
# defaults: the per-family defaults of shared options (vaekit.options reads them; they were measured
# per family: tests/test_course_acceptance.py).
FAMILIES.declare("vae", help="variational autoencoder", flags={
    "has_density": True, "conditional": True, "estimator": "VAE", "json_name": "vae", "title": "VAE", "plural": "VAEs", "article": "a",
    "long_title": "variational autoencoder", "codes": "posterior means", "code_from": "the posterior mean",
    "defaults": {"latent_dim": 20, "hidden": (400,), "batch_size": 128, "lr": 1e-3}})
FAMILIES.declare("ae", help="deterministic autoencoder", flags={
    "estimator": "Autoencoder", "json_name": "autoencoder", "title": "autoencoder", "plural": "autoencoders", "article": "an",
    "long_title": "autoencoder", "codes": "codes", "code_from": "the encoder",
    "defaults": {"latent_dim": 32, "hidden": (256,), "batch_size": 64, "lr": 3e-3}})
# needs_images: takes only (C, H, W) images (its encoder is convolutional); discrete_codes: its code is a grid of
# codebook entries (vaekit.vq), whose indices `encode` writes beside the vectors.
FAMILIES.declare("vq", help="vector-quantized autoencoder", flags={
    "estimator": "VQVAE", "json_name": "vq_vae", "title": "VQ-VAE", "plural": "VQ-VAEs", "article": "a",
    "long_title": "vector-quantized variational autoencoder", "codes": "quantized codes", "code_from": "the nearest codebook entries",
    "needs_images": True, "discrete_codes": True,
    "defaults": {"latent_dim": 16, "batch_size": 64, "lr": 1e-3}})

# -- presets: a family with some options set (``--model``); params win over the family's defaults --
# and lose to what the user gives; needs: the option that defines it. The order is --model's order;
# the last preset of a family whose `needs` option has the preset's value is the --model that
# describes a saved run (cli.config).
PRESETS.declare("ae", families=("ae",), help="undercomplete MLP autoencoder", flags={"params": {}})
PRESETS.declare("sparse-ae", families=("ae",), help="sparse autoencoder (L1 or --sparsity kl)", flags={"params": {"sparsity": "l1"},
                "needs": "sparsity"})
PRESETS.declare("denoising-ae", families=("ae",), help="denoising autoencoder (--noise, --noise-level)",
                flags={"params": {"noise": "masking"}, "needs": "noise"})
PRESETS.declare("vae", families=("vae",), help="MLP variational autoencoder", flags={"params": {}})
# Higgins et al. (2017) weight the KL by beta > 1 to pull the code towards the prior's independent
# axes; 4 is the value their dSprites comparisons (and the course's disentanglement chapter) use.
PRESETS.declare("beta-vae", families=("vae",), help="beta-VAE (Higgins et al. 2017): the KL weighted by --beta 4, "
                "trading reconstruction for a code closer to independent axes", flags={"params": {"beta": 4.0}, "needs": "beta"})
# Small batches and lr 2e-3: the conv net needs many more steps than the MLP to leave the blob
# stage; at 128 and 1e-3, the README's 5 epochs of the embedded sample (175 steps) gave blobs.
PRESETS.declare("conv-vae", families=("vae",), help="convolutional VAE for images", flags={
    "params": {"architecture": "conv", "latent_dim": 100, "batch_size": 32, "lr": 2e-3}, "needs": "architecture"})
# z holds only the style when the label is given: 4 dimensions (see estimators.ConditionalVAE).
PRESETS.declare("cvae", families=("vae",), help="conditional VAE (needs labels)", flags={
    "params": {"conditional": True, "latent_dim": 4}, "needs": "conditional"})
PRESETS.declare("vq-vae", families=("vq",), help="VQ-VAE (van den Oord et al. 2017): a grid of codebook entries per image, "
                "EMA codebook with restarts of dead entries", flags={"params": {}})


def family_of(preset: str) -> Component:
    """The family a preset (a ``--model`` name) belongs to."""
    return FAMILIES[PRESETS[preset].families[0]]


def family_of_estimator(name: str) -> Component:
    """The family whose estimator class is called ``name`` (as config.json records it)."""
    for family in FAMILIES:
        if family.estimator == name:
            return family
    raise ConfigError(f"unknown estimator {name!r}; expected one of {', '.join(f.estimator for f in FAMILIES)}")
