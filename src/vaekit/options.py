"""Every option of the estimators, declared once.

:data:`OPTIONS` is the single source: each :class:`Option` says its Python name, default, help,
constraint, which estimators take it (``kinds``), where it goes (``target``: the model config, the
training loop, or the estimator itself), when it applies (``when``), and its command-line flag.
From it derive the estimators' constructor signatures (scikit-learn style, flat, so
``get_params`` / ``clone`` work), :func:`check_params` (the one validation, run at ``fit`` and by
the CLI before any data is read), the ``vaekit train`` flags with their defaults, choices and help,
the training config, and the report's table of the options that apply to a model.

To add an option: one ``Option(...)`` line here, then its use (in the model, the training loop or
the estimator). Standard library only, so that ``vaekit --help`` stays fast.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import disentangling, objectives  # noqa: F401 - register the training objectives (standard library only)
from .errors import ConfigError
from .registry import FAMILIES, LIKELIHOODS, OBJECTIVES, POSTERIORS, PRIORS, Registry

KINDS = FAMILIES.names()  # the estimator families (vaekit.registry.FAMILIES)
# Who takes an option: the latent-variable options (prior, posterior, beta, ...) belong to the
# families with a density, the sparsity and noise knobs to the autoencoder, the MLP's layer sizes
# to the two families that have one (a VQ-VAE's networks are fixed convolutions, vaekit.vq), the
# codebook's options to the VQ-VAE.
DENSITY = FAMILIES.names(has_density=True)
MLP_KINDS = FAMILIES.names(needs_images=False)
AUTOENCODER = FAMILIES.names(has_density=False, needs_images=False)
VQ = FAMILIES.names(discrete_codes=True)
FAMILY_DEFAULT = object()  # the default differs by family: FAMILIES[kind].defaults[name]
ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "softplus", "sigmoid")


def as_sizes(value) -> tuple[int, ...]:
    """Layer sizes as a tuple of ints, from 400, (512, 256), [512, 256] or '512,256'."""
    if isinstance(value, str):
        try:
            return tuple(int(h) for h in value.split(",") if h.strip())
        except ValueError:
            raise ConfigError(f"sizes must be integers separated by commas, got {value!r}") from None
    if isinstance(value, bool):
        raise ConfigError(f"sizes must be integers, got {value!r}")
    try:
        return (int(value),) if not hasattr(value, "__iter__") else tuple(int(h) for h in value)
    except (TypeError, ValueError):
        raise ConfigError(f"sizes must be integers like 400 or (512, 256), got {value!r}") from None


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) or type(v).__module__ == "numpy"


def _integer(v) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (type(v).__module__ == "numpy" and float(v).is_integer())


@dataclass(frozen=True)
class Option:
    """One estimator parameter and everything derived from it.

    ``type``: 'int', 'float', 'str', 'bool' or 'sizes' (layer sizes); ``nullable``: None allowed.
    ``low`` / ``high``: bounds (``low_open`` / ``high_open``: strict). ``choices``: allowed values,
    a tuple or one tuple per kind. ``default``: a value, or one per kind. ``when``: the parameters
    under which the option has an effect (for the report), e.g. ``lambda p: p['prior'] == 'vamp'``.
    ``flag``: the ``vaekit train`` flag (default ``--name-with-dashes``; None: no flag).
    """

    name: str
    type: str
    default: Any
    help: str
    kinds: tuple[str, ...] = KINDS
    target: str = "model"  # "model": the model config; "train": the training loop; "estimator": fit itself
    group: str = "model"  # the --help section
    choices: tuple | dict | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False
    when: Callable[[dict], bool] | None = None
    flag: str | None = ""
    metavar: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def cli_flag(self) -> str | None:
        return None if self.flag is None else (self.flag or "--" + self.name.replace("_", "-"))

    def default_for(self, kind: str):
        if self.default is FAMILY_DEFAULT:
            return FAMILIES[kind].defaults[self.name]
        return self.default[kind] if isinstance(self.default, dict) else self.default  # another table's per-kind defaults

    def choices_for(self, kind: str) -> tuple | None:
        return self.choices[kind] if isinstance(self.choices, dict) else self.choices

    def all_choices(self) -> list | None:
        if self.choices is None:
            return None
        if isinstance(self.choices, dict):
            return list(dict.fromkeys(c for cs in self.choices.values() for c in cs))
        return list(self.choices)

    def expectation(self, kind: str) -> str:
        """What a valid value looks like, in words (for error messages)."""
        choices = self.choices_for(kind)
        if choices is not None:
            text = "one of " + ", ".join(map(str, choices))
        elif self.type == "sizes":
            text = "positive layer sizes like 400 or (512, 256)"
        elif self.type == "bool":
            text = "True or False"
        else:
            text = {"int": "an integer", "float": "a number", "str": "a string"}[self.type]
            if self.low is not None and self.high is not None:
                text += f" in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
            elif self.low is not None:
                text += f" {'>' if self.low_open else '>='} {self.low:g}"
        return text + (" or None" if self.nullable else "")

    def check(self, value, kind: str):
        """``value`` normalized (sizes become tuples), or a ConfigError naming this parameter."""
        if value is None and self.nullable:
            return None
        bad = ConfigError(f"{self.name} must be {self.expectation(kind)}, got {value!r}")
        if self.type == "sizes":
            sizes = as_sizes(value)
            if not sizes or min(sizes) < 1:
                raise bad
            return sizes
        if self.type == "bool":
            if not isinstance(value, bool) and type(value).__name__ != "bool_":
                raise bad
            return bool(value)
        if self.type == "str":
            if not isinstance(value, str):
                raise bad
        elif self.type == "int" and not _integer(value):
            raise bad
        elif self.type == "float" and not (_number(value) and math.isfinite(float(value))):
            raise bad
        choices = self.choices_for(kind)
        if choices is not None and value not in choices:
            raise bad
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise bad
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise bad
        return value


def _read_by(registry: Registry, choice: str, name: str) -> Callable[[dict], bool]:
    """``when`` for an option of a component: the chosen ``choice`` (e.g. the likelihood) reads it."""
    return lambda p: isinstance(p.get(choice), str) and p[choice] in registry and name in registry[p[choice]].options.values()


OPTIONS: tuple[Option, ...] = (
    # -- the model ---------------------------------------------------------------------------
    Option("latent_dim", "int", FAMILY_DEFAULT, "size of the code z",
           low=1),
    Option("hidden", "sizes", FAMILY_DEFAULT,
           "hidden layer sizes of the MLP encoder, mirrored in the decoder, e.g. 400 or 512,256 (default: 400 for VAEs, 256 for autoencoders)",
           metavar="SIZES", kinds=MLP_KINDS, when=lambda p: p.get("architecture") != "conv"),
    Option("activation", "str", "relu", "hidden activation", choices=ACTIVATIONS),
    Option("architecture", "str", "mlp", "mlp, or conv: a convolutional pair for (C, H, W) images (the papers' 4x4 stride-2 net "
           "from 64 pixels a side, the course's pooled pair below)", choices=("mlp", "conv"), flag=None,
           kinds=MLP_KINDS,
           extra={"cli": {"mlp": "--model vae", "conv": "--model conv-vae"}}),
    Option("likelihood", "str", "bernoulli", "decoder distribution p(x|z); for autoencoders gaussian means squared error; "
           "autoregressive-bernoulli: pixels depend on earlier pixels and z through a MADE, VAEs only",
           choices={kind: LIKELIHOODS.names(kind) for kind in KINDS}),
    Option("sigma", "float", 1.0, "fixed sigma of the Gaussian likelihood (its initial value with --learn-sigma)", kinds=DENSITY, low=0,
           low_open=True, when=_read_by(LIKELIHOODS, "likelihood", "sigma")),
    Option("learn_sigma", "bool", False, "learn a per-dimension sigma for the Gaussian likelihood", kinds=DENSITY,
           when=_read_by(LIKELIHOODS, "likelihood", "learn_sigma")),
    Option("ar_hidden", "int", 500, "hidden units of the autoregressive-bernoulli likelihood's MADE", kinds=DENSITY, low=1,
           when=_read_by(LIKELIHOODS, "likelihood", "ar_hidden")),
    Option("ar_dropout", "float", 0.0, "share of the MADE's hidden units dropped at each training step, a regularizer where the "
           "decoder overfits; evaluation uses them all", kinds=DENSITY, low=0, high=1, high_open=True,
           when=_read_by(LIKELIHOODS, "likelihood", "ar_dropout")),
    Option("posterior", "str", "normal", "posterior family q(z|x)", kinds=DENSITY, choices=POSTERIORS.names()),
    Option("student_df", "float", 5.0, "degrees of freedom of the Student-t posterior", kinds=DENSITY, low=0, low_open=True,
           when=_read_by(POSTERIORS, "posterior", "student_df")),
    Option("iaf_steps", "int", 2, "autoregressive steps T of the iaf posterior (0: its Gaussian base alone)", kinds=DENSITY, low=0,
           when=_read_by(POSTERIORS, "posterior", "iaf_steps")),
    Option("iaf_hidden", "int", 256, "hidden units of each iaf step's MADE, and the size of the context h the encoder adds",
           kinds=DENSITY, low=1, when=_read_by(POSTERIORS, "posterior", "iaf_hidden")),
    Option("prior", "str", "normal", "p(z): N(0, I) or the VampPrior, a mixture of q(z|u_k) over learned pseudo-inputs (with top_latent_dim, p(z2))",
           kinds=DENSITY, choices=PRIORS.names(choice=True)),
    Option("n_pseudo_inputs", "int", 500, "number K of VampPrior pseudo-inputs", kinds=DENSITY, low=1, flag="--pseudo-inputs",
           when=_read_by(PRIORS, "prior", "n_pseudo_inputs")),
    Option("top_latent_dim", "int", 0, "> 0 adds a second stochastic layer z2 above z1 (q(z2|z1), p(z1|z2), p(z2) the prior); 0: one layer",
           kinds=DENSITY, low=0),
    Option("top_hidden", "sizes", (100, 100), "hidden sizes of the MLPs between z1 and z2", kinds=DENSITY, metavar="SIZES",
           when=lambda p: bool(p.get("top_latent_dim"))),
    Option("conditional", "bool", False, "q(z|x, c) and p(x|z, c) with c a one-hot class label (pass y to fit)", kinds=DENSITY, target="estimator",
           flag=None, extra={"cli": {"True": "--model cvae", "False": "--model vae"}}),
    Option("n_classes", "int", None, "number of classes of a conditional model (default: from the labels)", kinds=DENSITY, target="estimator",
           low=1, nullable=True,
           flag=None, when=lambda p: bool(p.get("conditional"))),
    Option("label_scale", "float", 30.0, "a conditional model's one-hot label is multiplied by this before the networks see it: "
           "a bare one-hot (1) learns so slowly beside z that the decoder ignores it (vaekit.models.LABEL_SCALE says why)",
           kinds=DENSITY, low=0, low_open=True, when=lambda p: bool(p.get("conditional"))),
    Option("sparsity", "str", None, "sparse-ae penalty: l1 on the code or KL(rho||rho_hat) (default: l1 for sparse-ae)", kinds=AUTOENCODER,
           choices=("l1", "kl"), nullable=True),
    Option("sparsity_weight", "float", 1e-3, "lambda (l1) or beta (kl) of the sparsity penalty", kinds=AUTOENCODER, low=0,
           when=lambda p: bool(p.get("sparsity"))),
    Option("sparsity_target", "float", 0.05, "target mean activation rho of the KL penalty", kinds=AUTOENCODER, low=0, high=1, low_open=True,
           high_open=True,
           when=lambda p: p.get("sparsity") == "kl"),
    Option("noise", "str", None, "denoising-ae corruption (default: masking for denoising-ae)", kinds=AUTOENCODER,
           choices=("gaussian", "masking", "salt-and-pepper"), nullable=True),
    Option("noise_level", "float", 0.3, "sigma (gaussian) or probability p (masking, salt-and-pepper)", kinds=AUTOENCODER, low=0,
           when=lambda p: bool(p.get("noise"))),
    # van den Oord et al. (2017): commitment 0.25; an EMA decay of 0.99 (their appendix A.1).
    Option("codebook_size", "int", 32, "vq-vae: number K of codebook entries", kinds=VQ, low=2),
    Option("commitment", "float", 0.25, "vq-vae: weight beta of the commitment loss ||z_e - sg(e)||^2", kinds=VQ, low=0),
    Option("ema_decay", "float", 0.99, "vq-vae: decay of the codebook's moving averages", kinds=VQ, low=0, high=1, low_open=True,
           high_open=True),
    # -- the objective -----------------------------------------------------------------------
    Option("beta", "float", 1.0, "weight of the KL term (1: the ELBO)", kinds=DENSITY, target="train", low=0),
    Option("warmup_epochs", "float", 0.0, "linear KL warm-up from 0 to beta over this many epochs (0: off)", kinds=DENSITY, target="train", low=0),
    Option("n_samples", "int", 1, "L Monte-Carlo samples of z per example; k for --objective iwae", kinds=DENSITY, target="train", low=1,
           flag="--mc-samples"),
    Option("objective", "str", "elbo", "training objective: " + "; ".join(f"{o.name}: {o.help}" for o in OBJECTIVES), kinds=DENSITY,
           target="train", choices=OBJECTIVES.names()),
    Option("free_bits", "float", 0.5, "--objective free-bits: nats of KL each latent dimension may use for free (lambda)", kinds=DENSITY,
           target="train", low=0, metavar="LAMBDA", when=_read_by(OBJECTIVES, "objective", "free_bits")),
    # Chen et al. (2018) penalize the total correlation alone: alpha = gamma = 1, beta = 6 on dSprites (their fig. 4).
    Option("tc_alpha", "float", 1.0, "--objective beta-tcvae: weight alpha of the index-code mutual information", kinds=DENSITY,
           target="train", low=0, metavar="ALPHA", when=_read_by(OBJECTIVES, "objective", "tc_alpha")),
    Option("tc_beta", "float", 6.0, "--objective beta-tcvae: weight beta of the total correlation", kinds=DENSITY,
           target="train", low=0, metavar="BETA", when=_read_by(OBJECTIVES, "objective", "tc_beta")),
    Option("tc_gamma", "float", 1.0, "--objective beta-tcvae: weight gamma of the dimension-wise KL", kinds=DENSITY,
           target="train", low=0, metavar="GAMMA", when=_read_by(OBJECTIVES, "objective", "tc_gamma")),
    Option("tc_estimator", "str", "mws", "--objective beta-tcvae: how q(z) is estimated from the batch: mws, the paper's minibatch-weighted "
           "sampling (its TC reads about (D - 1) log N too high where posteriors overlap), or stratified, the example's own term "
           "weighted 1/N (unbiased)", kinds=DENSITY, target="train", choices=("mws", "stratified"),
           when=_read_by(OBJECTIVES, "objective", "tc_estimator")),
    # Kim & Mnih (2018) found gamma = 35 best on dSprites among 10..100 (their fig. 5).
    Option("factor_gamma", "float", 35.0, "--objective factor-vae: weight gamma of the total correlation, as the discriminator estimates it",
           kinds=DENSITY, target="train", low=0, metavar="GAMMA", when=_read_by(OBJECTIVES, "objective", "factor_gamma")),
    # The paper's discriminator is 6 layers of 1000 units; 3 of 256 take 4 ms a step at one thread where 5 of 1000
    # take 90 ms, most of a 64x64 conv VAE's step (vaekit.disentangling.Discriminator).
    Option("discriminator_hidden", "sizes", (256, 256, 256), "--objective factor-vae: hidden layer sizes of the discriminator MLP",
           kinds=DENSITY, target="train", metavar="SIZES", when=_read_by(OBJECTIVES, "objective", "discriminator_hidden")),
    Option("discriminator_lr", "float", 1e-4, "--objective factor-vae: learning rate of the discriminator's Adam (betas 0.5, 0.9 as in the paper)",
           kinds=DENSITY, target="train", low=0, low_open=True, metavar="LR", when=_read_by(OBJECTIVES, "objective", "discriminator_lr")),
    # -- data handling -----------------------------------------------------------------------
    Option("binarize", "str", "none", "for a Bernoulli likelihood: dynamic draws a fresh binary image every time one is used, static once",
           kinds=DENSITY, target="train", group="data handling", choices=("none", "dynamic", "static")),
    Option("standardize", "bool", False, "standardize features (real-valued tables; needs --likelihood gaussian)", target="estimator",
           group="data handling"),
    # -- optimization ------------------------------------------------------------------------
    Option("epochs", "int", 10, "passes over the training data", target="train", group="optimization", low=1),
    # Autoencoders take smaller, larger steps: 10 epochs of the embedded sample at 128 and 1e-3 left
    # a 32-unit code at 18.9 squared error per test image and a masking denoiser 1 dB above its
    # noisy input; at 64 and 3e-3, 9.4 and 3.3 dB (tests/test_course_acceptance.py).
    Option("batch_size", "int", FAMILY_DEFAULT, "examples per step",
           target="train", group="optimization", low=1),
    Option("optimizer", "str", "adam", "optimizer (sgd uses --momentum)", target="train", group="optimization", choices=("adam", "rmsprop", "sgd")),
    Option("lr", "float", FAMILY_DEFAULT, "learning rate",
           target="train", group="optimization", low=0, low_open=True),
    Option("lr_schedule", "str", "constant",
           "cosine anneals the learning rate to lr * --lr-final over --epochs, or over --max-minutes or --max-steps when set",
           target="train", group="optimization", choices=("constant", "cosine")),
    Option("lr_final", "float", 0.01, "cosine: the last learning rate, as a share of --lr", target="train", group="optimization",
           low=0, high=1, when=lambda p: p.get("lr_schedule") == "cosine"),
    Option("momentum", "float", 0.9, "SGD momentum", target="train", group="optimization", low=0, when=lambda p: p.get("optimizer") == "sgd"),
    Option("weight_decay", "float", 0.0, "L2 weight decay", target="train", group="optimization", low=0),
    Option("clip_grad", "float", None, "clip the global gradient norm to this value (default: no clipping)", target="train", group="optimization",
           low=0, low_open=True, nullable=True),
    Option("val_fraction", "float", 0.1, "share of the training data held out for validation, at most 10 000 examples", target="train",
           group="optimization", low=0, high=1, high_open=True),
    Option("early_stopping", "int", 0, "stop after this many epochs without validation improvement, keeping the best weights (0: off)",
           target="train", group="optimization", low=0, metavar="PATIENCE"),
    Option("max_minutes", "float", 0.0, "stop when training time passes this budget, checked after every step (0: off)", target="train",
           group="optimization", low=0, metavar="MIN"),
    Option("max_steps", "int", 0, "stop after this many optimizer steps in all, mid-epoch if need be (0: off)", target="train",
           group="optimization", low=0, metavar="N"),
    Option("log_every", "int", 0, "every this many steps, a row of the training terms (their mean over those steps) in metrics.csv, "
           "with a step column (0: off)", target="train", group="optimization", low=0, metavar="N"),
    Option("val_nll_every", "int", 0, "every this many epochs, log the importance-weighted NLL of validation examples in metrics.csv (0: off)",
           kinds=DENSITY, target="train", group="optimization", low=0, metavar="EPOCHS"),
    Option("val_nll_k", "int", 200, "importance samples for --val-nll-every", kinds=DENSITY, target="train", group="optimization", low=1,
           when=lambda p: bool(p.get("val_nll_every"))),
    Option("val_nll_examples", "int", 1000, "validation examples (at most) that --val-nll-every scores; its cost grows with this and k",
           kinds=DENSITY, target="train", group="optimization", low=1, metavar="N", when=lambda p: bool(p.get("val_nll_every"))),
    Option("seed", "int", 0, "random seed (a CPU run is reproducible)", target="train", group="optimization"),
    Option("device", "str", "auto", "cpu, cuda or auto (cuda when available)", target="train", group="optimization"),
    Option("precision", "str", "float32",
           "bf16 runs the networks under bfloat16 autocast, the densities and losses in float32 (faster on CPUs with AVX-512 BF16 and on GPUs)",
           target="train", group="optimization", choices=("float32", "bf16")),
    Option("verbose", "bool", False, "print one line per epoch to stderr", target="estimator", flag=None),
)
BY_NAME = {o.name: o for o in OPTIONS}


def options_for(kind: str, target: str | None = None, table: tuple[Option, ...] | None = None) -> tuple[Option, ...]:
    """The options an estimator family takes (in signature order), optionally only one target's.

    ``table`` is another declaration table built from :class:`Option` (the anomaly detectors'),
    :data:`OPTIONS` by default."""
    return tuple(o for o in (OPTIONS if table is None else table) if kind in o.kinds and (target is None or o.target == target))


def defaults(kind: str, table: tuple[Option, ...] | None = None) -> dict:
    return {o.name: o.default_for(kind) for o in options_for(kind, table=table)}


def _subject(kind: str) -> str:
    """'a VAE', 'an autoencoder', or the kind itself for another table's kinds."""
    if kind in FAMILIES:
        return f"{FAMILIES[kind].article} {FAMILIES[kind].title}"
    return kind


def check_params(params: dict, kind: str, table: tuple[Option, ...] | None = None) -> dict:
    """Each parameter checked against its declaration; returns them normalized (sizes as tuples).

    Raises a ConfigError that names the Python parameter, its expected values and what it got.
    Rules between parameters (a likelihood and its data, a prior and a conditional model) are
    checked where the model config is built (vaekit.models.config_from_params).
    """
    out = {}
    by_name = BY_NAME if table is None else {o.name: o for o in table}
    for name, value in params.items():
        opt = by_name.get(name)
        if opt is None or kind not in opt.kinds:
            raise ConfigError(f"{name} does not apply to {_subject(kind)}")
        out[name] = opt.check(value, kind)
    if "objective" in out:
        _check_objective(out)
    return out


def _check_objective(params: dict) -> None:
    """The rules between an objective and the model it trains, read from the objective's flags."""
    objective = OBJECTIVES[params["objective"]]
    say = f"objective={params['objective']!r}"
    prior = params.get("prior")
    if objective.needs_standard_normal_prior and isinstance(prior, str) and prior in PRIORS and not PRIORS[prior].standard_normal:
        raise ConfigError(f"{say} needs a prior that factorizes over the dimensions (its dimension-wise terms split log p(z)); "
                          f"use prior='{PRIORS.names(standard_normal=True)[0]}'")
    post = params.get("posterior")
    # A family says it has no independent dimensions with location_scale=False (a flow); undeclared reads as having them.
    if objective.needs_factorized_posterior and isinstance(post, str) and post in POSTERIORS \
            and POSTERIORS[post].flags.get("location_scale", True) is False:
        raise ConfigError(f"{say} needs a posterior q(z|x) over independent dimensions, which posterior={post!r} is not; "
                          f"use posterior='{POSTERIORS.names()[0]}'")
    if objective.needs_factorized_posterior and params.get("top_latent_dim"):
        raise ConfigError(f"{say} needs a posterior q(z|x) over independent dimensions, which two stochastic layers are not; "
                          "use top_latent_dim=0")
    if "beta" not in objective.options:
        for name, off in (("beta", 1.0), ("warmup_epochs", 0.0)):
            if params.get(name, off) != off:
                own = " ".join(k for k in objective.options.values() if k != "n_samples" and BY_NAME[k].type == "float")
                raise ConfigError(f"{name} does not apply to {say}, which weighs its terms with {own}; leave {name}={off:g}")


def applicable(params: dict, kind: str) -> list[Option]:
    """The options that have an effect on a model with these parameters (for the report)."""
    return [o for o in options_for(kind) if o.when is None or o.when(params)]


def make_init(kind: str, doc: str = "", table: tuple[Option, ...] | None = None) -> Callable:
    """An ``__init__`` that stores the declared parameters unchanged, with a real signature.

    Generated as source, as dataclasses does, so that ``inspect.signature`` (and with it
    scikit-learn's ``get_params`` / ``clone``) sees every parameter with its default.
    """
    opts = options_for(kind, table=table)
    for o in opts:  # the names become source: only identifiers may pass
        if not o.name.isidentifier():
            raise ValueError(f"option name {o.name!r} is not an identifier")
    args = ", ".join(f"{o.name}=_defaults[{o.name!r}]" for o in opts)
    body = "".join(f"    self.{o.name} = {o.name}\n" for o in opts)
    namespace: dict[str, Any] = {"_defaults": defaults(kind, table)}
    exec(f"def __init__(self, {args}):\n{body}", namespace)  # noqa: S102 - source built from the table above
    init = namespace["__init__"]
    init.__doc__ = doc
    return init


def flag_names() -> dict[str, str]:
    """Python parameter name -> its ``vaekit train`` flag, for options that have one."""
    return {o.name: o.cli_flag for o in OPTIONS if o.cli_flag}


def _as_flag(opt: Option, value: str, original: str) -> str:
    """``name=value`` as the command line says it: ``--flag value``, or the --model that sets it."""
    if opt.cli_flag is None:
        return opt.extra.get("cli", {}).get(value, original)
    if opt.type == "bool":
        return opt.cli_flag if value == "True" else f"no {opt.cli_flag}"
    return f"{opt.cli_flag} {value}"


def to_flags(message: str) -> str:
    """A library error message with Python parameters written as the CLI's flags.

    ``name=value`` becomes ``--flag value`` (or the --model that sets a parameter without a flag);
    a bare name is translated where it stands as a parameter: containing an underscore, or
    followed by `` must`` (single words like ``prior`` also appear in prose).
    """
    for opt in sorted(OPTIONS, key=lambda o: -len(o.name)):
        assign = rf"(?<![\w-]){re.escape(opt.name)}=('([^']*)'|[\w.+-]+)"

        def flagged(m: re.Match[str], o: Option = opt) -> str:
            return _as_flag(o, m.group(2) if m.group(2) is not None else m.group(1), m.group(0))

        message = re.sub(assign, flagged, message)
        if opt.cli_flag:
            bare = rf"(?<![\w-]){re.escape(opt.name)}(?![\w-])" if "_" in opt.name else rf"(?<![\w-]){re.escape(opt.name)}(?= must)"
            message = re.sub(bare, opt.cli_flag, message)
    return message
