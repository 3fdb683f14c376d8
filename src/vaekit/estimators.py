"""The Python API: scikit-learn style estimators around the torch modules of models.py.

``VAE`` and ``Autoencoder`` follow the scikit-learn contract (constructor arguments stored as given,
no work in ``__init__``, ``fit`` returns ``self``, learned state in attributes ending in ``_``),
so ``clone``, ``get_params`` and ``Pipeline`` work. They take and return NumPy arrays; the torch
module they train is ``model_``.

The course's other models are presets of these two (see the functions at the bottom):
``SparseAutoencoder``, ``DenoisingAutoencoder``, ``ConvVAE`` and ``ConditionalVAE``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from . import vq  # noqa: F401 - binds the VQ-VAE family's config and module to its declaration
from .data.stream import is_streamed
from .errors import ConfigError, DataError, ModelFileError
from .modelfile import part_prefixes, write_model
from .models import ModelConfig, build_model, config_from_params
from .options import check_params, make_init, options_for
from .registry import FAMILIES, LIKELIHOODS, POSTERIORS, PRESETS, Component
from .train import TrainConfig, fit

if TYPE_CHECKING:
    from typing_extensions import Self, TypedDict, Unpack  # in typing from Python 3.11 / 3.12

    class VAEParams(TypedDict, total=False):
        """The parameters of :class:`VAE`, for the presets' ``**kwargs``."""

        # <generated signature VAEParams: scripts/sync_signatures.py writes this block from vaekit.options.OPTIONS>
        latent_dim: int
        hidden: int | tuple[int, ...] | list[int] | str
        activation: str
        architecture: str
        likelihood: str
        sigma: float
        learn_sigma: bool
        ar_hidden: int
        ar_dropout: float
        posterior: str
        student_df: float
        iaf_steps: int
        iaf_hidden: int
        prior: str
        n_pseudo_inputs: int
        top_latent_dim: int
        top_hidden: int | tuple[int, ...] | list[int] | str
        conditional: bool
        n_classes: int | None
        label_scale: float
        beta: float
        warmup_epochs: float
        n_samples: int
        objective: str
        free_bits: float
        tc_alpha: float
        tc_beta: float
        tc_gamma: float
        tc_estimator: str
        factor_gamma: float
        discriminator_hidden: int | tuple[int, ...] | list[int] | str
        discriminator_lr: float
        binarize: str
        standardize: bool
        epochs: int
        batch_size: int
        optimizer: str
        lr: float
        lr_schedule: str
        lr_final: float
        momentum: float
        weight_decay: float
        clip_grad: float | None
        val_fraction: float
        early_stopping: int
        max_minutes: float
        max_steps: int
        log_every: int
        val_nll_every: int
        val_nll_k: int
        val_nll_examples: int
        seed: int
        device: str
        precision: str
        verbose: bool
        # </generated signature VAEParams>

    class AutoencoderParams(TypedDict, total=False):
        """The parameters of :class:`Autoencoder`, for the presets' ``**kwargs``."""

        # <generated signature AutoencoderParams: scripts/sync_signatures.py writes this block from vaekit.options.OPTIONS>
        latent_dim: int
        hidden: int | tuple[int, ...] | list[int] | str
        activation: str
        architecture: str
        likelihood: str
        sparsity: str | None
        sparsity_weight: float
        sparsity_target: float
        noise: str | None
        noise_level: float
        standardize: bool
        epochs: int
        batch_size: int
        optimizer: str
        lr: float
        lr_schedule: str
        lr_final: float
        momentum: float
        weight_decay: float
        clip_grad: float | None
        val_fraction: float
        early_stopping: int
        max_minutes: float
        max_steps: int
        log_every: int
        seed: int
        device: str
        precision: str
        verbose: bool
        # </generated signature AutoencoderParams>


def check_array(X, name: str = "X") -> np.ndarray:
    """X as a float32 array with at least 2 dimensions and only finite values, or a DataError."""
    if sp.issparse(X):
        raise DataError(f"{name} is a sparse matrix; sparse input is not supported: pass {name}.toarray()")
    raw = np.asarray(X)
    if np.iscomplexobj(raw):
        raise DataError(f"{name} has complex values: Complex data not supported; pass the real part, or real and imaginary parts as two features")
    try:
        arr = np.ascontiguousarray(raw, dtype=np.float32)  # torch.from_numpy takes no negative strides (X[::-1])
    except (TypeError, ValueError) as e:
        raise DataError(f"{name} must be numeric: {e}") from None
    if arr.ndim < 2:
        raise DataError(f"{name} must have one row per example (2-D or more), got shape {arr.shape}; "
                        "Reshape your data with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one example")
    if len(arr) == 0:
        raise DataError(f"{name} is empty (shape {arr.shape}); pass at least one example")
    if arr[0].size == 0:
        raise DataError(f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required; pass at least one column")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = np.argwhere(bad)[0]
        raise DataError(
            f"{name} has {int(bad.sum())} NaN or infinite values (first at index {tuple(int(i) for i in first)}); "
            "remove or impute them before training"
        )
    return arr


def check_labels(y, n: int, n_classes: int | None = None) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise DataError(f"labels must have shape ({n},), one per example, got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise DataError("labels must be integer class indices 0..K-1; encode string labels first (e.g. sklearn LabelEncoder)")
    if y.min() < 0 or (n_classes is not None and y.max() >= n_classes):
        raise DataError(f"labels must lie in 0..{(n_classes or 0) - 1 if n_classes else 'K-1'}, got range {y.min()}..{y.max()}")
    return y.astype(np.int64)


class _Inputs:
    """How a fitted estimator takes its inputs: checked, shaped and scaled as the model sees them,
    labels checked, and run through the model in (fixed-shape) batches. A mixin of :class:`_Base`."""

    @property
    def _conditional(self) -> bool:
        return self.family.conditional and bool(self.conditional)

    @property
    def is_conditional(self) -> bool:
        """Whether this estimator takes class labels (``conditional=True`` of a family that offers it)."""
        return self._conditional

    def prepare_X(self, X, *, fitting: bool = False) -> np.ndarray:
        """X as the model sees it: checked, given a channel axis (conv), scaled; ``fitting`` fits the scaler."""
        X = check_array(X)
        if (getattr(self, "architecture", "mlp") == "conv" or self.family.needs_images) and X.ndim == 3:
            X = X[:, None]  # (N, H, W) grayscale images get their channel axis
        if not fitting:
            if X.shape[1:] != tuple(self.input_shape_):
                raise DataError(
                    f"this model was trained on examples of shape {tuple(self.input_shape_)}, got {X.shape[1:]}; "
                    "pass data with the same features as the training data"
                )
        if fitting and self.standardize:
            self.scaler_mean_ = X.mean(0)
            std = X.std(0)
            self.scaler_scale_ = np.where(std > 0, std, 1.0).astype(np.float32)
        if getattr(self, "scaler_mean_", None) is not None:
            X = (X - self.scaler_mean_) / self.scaler_scale_
        if LIKELIHOODS[self.likelihood].needs_unit_interval:
            lo, hi = float(X.min()), float(X.max())
            if lo < 0 or hi > 1:
                fix = ("rescale the columns to [0, 1] (e.g. divide pixels by 255), or for real-valued features use "
                       "likelihood='gaussian' with standardize=True") if X.ndim == 2 else \
                    "rescale the data (e.g. divide pixels by 255) or use likelihood='gaussian'"
                raise DataError(f"values lie in [{lo:g}, {hi:g}] but a {self.likelihood} likelihood needs data in [0, 1]; {fix}")
        return X

    def _check_stream(self, X):
        """What prepare_X checks, for a folder streamed from disk (its pixels lie in [0, 1] by construction)."""
        if self.standardize:
            raise DataError("standardize=True needs the per-pixel mean and spread of the whole training set, which a "
                            "folder streamed from disk does not give; train without it (pixels already lie in [0, 1])")
        return X

    def _unscale(self, X: np.ndarray) -> np.ndarray:
        if getattr(self, "scaler_mean_", None) is not None:
            return X * self.scaler_scale_ + self.scaler_mean_
        return X

    def _prepare_y(self, y, n: int, *, fitting: bool = False):
        if not self._conditional:
            return None
        if y is None:
            raise DataError("a conditional model needs labels: pass y (class indices 0..K-1) / --label")
        if fitting:
            y = check_labels(y, n)
            self.n_classes_ = int(self.n_classes or y.max() + 1)
        return check_labels(y, n, self.n_classes_)

    @property
    def loss_unit(self) -> str:
        """What the loss, its terms and the training curves are measured in, per example."""
        return "nats per example" if self.family.has_density else f"{LIKELIHOODS[self.likelihood].loss_unit} per example"

    @property
    def device_(self) -> torch.device:
        return next(self.model_.parameters()).device

    def check_fitted(self) -> None:
        """Raise a ConfigError unless the estimator was fitted or loaded."""
        if not hasattr(self, "model_"):
            raise ConfigError(f"this {type(self).__name__} is not fitted yet; call fit(X) first or vaekit.load(path)")

    def batched(self, fn: Callable, *arrays, batch_size: int = 2048, fixed_shape: bool = False) -> np.ndarray:
        """Apply a tensor function to aligned arrays in batches, in eval mode, without gradients.

        ``fixed_shape=True`` pads the last batch with zero rows to ``batch_size``, so every call of
        ``fn`` sees the same shape. CPU matrix-product libraries (MKL, oneDNN) choose their kernels,
        and so the order of their float sums, by the operands' shapes: a row's result can change in
        the last bits with the batch it is in (seen on AVX-512 machines), while at a fixed shape it
        depends on the row alone, not on its position or neighbours. Row-wise ``fn`` only.
        """
        self.model_.eval()
        n = len(arrays[0])
        outs = []
        with torch.no_grad():
            for i in range(0, n, batch_size):
                args = [None if a is None else torch.as_tensor(_pad_rows(a[i : i + batch_size], batch_size if fixed_shape else 0),
                                                               device=self.device_) for a in arrays]
                outs.append(fn(*args).float().cpu().numpy()[: min(batch_size, n - i)])
        return np.concatenate(outs) if outs else np.empty((0,))

    def _scored(self, X, y) -> tuple[np.ndarray, np.ndarray | None]:
        """X (and labels) as the model scores them: binarized as ``vaekit evaluate`` does for a model
        trained on binary images, then checked and scaled like any input."""
        from .evaluate import binarize_for_eval

        self.check_fitted()
        X, _ = binarize_for_eval(self, check_array(X))
        X = self.prepare_X(X)
        return X, self._prepare_y(y, len(X))

    def _log_jacobian(self) -> float:
        """log |d x_scaled / d x| per example: what turns a density of scaled data into one of X as given."""
        if getattr(self, "scaler_mean_", None) is None:
            return 0.0
        return -float(np.log(self.scaler_scale_.astype(np.float64)).sum())


class _Base(TransformerMixin, _Inputs, BaseEstimator):  # the sklearn mixin first, so scikit-learn sees the transformer tags
    """What the estimator families share: parameters, fitting, the transformer API, save/load
    (inputs and batches: :class:`_Inputs`)."""

    family: Component  # its entry in vaekit.registry.FAMILIES (set by FAMILIES.implements)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # the networks compute in float32, whatever X's dtype
        return tags

    @property
    def kind(self) -> str:
        """The family's name: which options of vaekit.options this estimator takes."""
        return self.family.name

    # -- parameters: declared once in vaekit.options ----------------------------------------------
    def check_params(self) -> dict:
        """Check every parameter against its declaration and the rules between them.

        Runs at ``fit``; the CLI runs it before reading any data. Returns the parameters
        normalized (sizes as tuples); raises a ConfigError naming the Python parameter.
        """
        params = check_params(self.get_params(), self.kind)
        # The rules between parameters live where the configs are built: build them once for a
        # stand-in input shape (the real shape is checked against the model when fit sees data).
        images = params.get("architecture") == "conv" or self.family.needs_images
        self._model_config((1, 28, 28) if images else (784,), 10 if self._conditional else 0, params)
        self._train_config(params).validate()
        if params["standardize"] and LIKELIHOODS[params["likelihood"]].needs_unit_interval:
            real = " or ".join(f"likelihood='{n}'" for n in LIKELIHOODS.names(self.kind, needs_unit_interval=False))
            raise ConfigError(f"standardize=True needs {real}: standardized data is not in [0, 1]")
        return params

    def _model_config(self, input_shape: tuple[int, ...], n_classes: int, params: dict | None = None) -> ModelConfig:
        params = self.get_params() if params is None else params
        model_params = {o.name: params[o.name] for o in options_for(self.kind, "model")}
        return config_from_params(self.kind, input_shape, n_classes, **model_params)

    def _train_config(self, params: dict | None = None) -> TrainConfig:
        params = self.get_params() if params is None else params
        return TrainConfig(**{o.name: params[o.name] for o in options_for(self.kind, "train")})

    # -- the API -------------------------------------------------------------------------------
    def fit(self, X, y=None, *, X_val=None, y_val=None, progress: bool | None = None,
            on_epoch: Callable[[dict], None] | None = None, log: Callable[[str], None] | None = None,
            checkpointer=None, resume: dict | None = None) -> Self:
        """Train on X (and labels y for a conditional model). Returns self.

        ``history_`` then holds one dict per epoch with the mean train and validation loss and
        its terms in nats per example.
        """
        params = self.check_params()
        streamed = is_streamed(X)
        X = self._check_stream(X) if streamed else self.prepare_X(X, fitting=True)
        y = self._prepare_y(y, len(X), fitting=True)
        self.input_shape_ = tuple(X.shape[1:])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        cfg = self._model_config(self.input_shape_, getattr(self, "n_classes_", 0) if self._conditional else 0, params)
        tcfg = self._train_config(params)
        torch.manual_seed(self.seed)  # weight initialization is part of what the seed fixes
        self.model_ = build_model(cfg)
        Xv = yv = None
        if X_val is not None:
            Xv = torch.from_numpy(self.prepare_X(X_val))
            yv = None if y_val is None or not self._conditional else torch.from_numpy(check_labels(y_val, len(Xv), self.n_classes_))
        self.history_ = fit(
            self.model_, X if streamed else torch.from_numpy(X), None if y is None else torch.from_numpy(y), tcfg,
            X_val=Xv, y_val=yv, progress=progress, quiet=not self.verbose, on_epoch=on_epoch, log=log,
            checkpointer=checkpointer, resume=resume,
        )
        return self

    def encode(self, X, y=None) -> np.ndarray:
        """The code of each example (a VAE's posterior mean), shape (N, latent_dim)."""
        self.check_fitted()
        X = self.prepare_X(X)
        return self.batched(self.model_.encode, X, self._prepare_y(y, len(X)))

    def transform(self, X, y=None) -> np.ndarray:
        """Same as :meth:`encode` (scikit-learn's name for dimensionality reduction)."""
        return self.encode(X, y)

    def fit_transform(self, X, y=None, **fit_params) -> np.ndarray:
        """fit(X, y) then the codes of X; a conditional model encodes with the same labels y."""
        return self.fit(X, y, **fit_params).transform(X, y)

    def decode(self, Z, y=None) -> np.ndarray:
        """E[x|z] for each code, in the units of the training data."""
        self.check_fitted()
        Z = check_array(Z, "Z")
        if Z.shape[1:] != (self.model_.config.code_dim,):
            raise DataError(f"codes must have shape (N, {self.model_.config.code_dim}), got {Z.shape}")
        return self._unscale(self.batched(self.model_.decode, Z, self._prepare_y(y, len(Z))))

    def reconstruct(self, X, y=None) -> np.ndarray:
        """decode(encode(X)): deterministic, through the posterior mean."""
        self.check_fitted()
        X = self.prepare_X(X)
        y = self._prepare_y(y, len(X))
        return self._unscale(self.batched(lambda xb, yb: self.model_.decode(self.model_.encode(xb, yb), yb), X, y))

    def inverse_transform(self, Z, y=None) -> np.ndarray:
        """Codes back to data space, the inverse of :meth:`transform`: same as :meth:`decode`.

        ``inverse_transform(transform(X))`` is :meth:`reconstruct` (X): through the posterior mean,
        in the units of the training data.
        """
        return self.decode(Z, y)

    def score(self, X, y=None) -> float:
        """The mean of :meth:`score_samples` over X: higher is better (scikit-learn's convention).

        What ``GridSearchCV`` and ``cross_val_score`` compare when no ``scoring`` is given. For a
        VAE the mean ELBO per example in nats, for an autoencoder the negative mean reconstruction
        loss (see each class's ``score_samples``). Seeded by ``seed``: the same model and X give the
        same number, so candidates are compared on the same draws.
        """
        return float(np.mean(self.score_samples(X, y)))

    def save(self, path: str | Path, part: str = "all") -> Path:
        """Write config.json and model.safetensors into the folder ``path`` (created if needed).

        ``part='encoder'`` or ``'decoder'`` writes only that half (for embeddings or generation).
        """
        self.check_fitted()
        if part not in ("all", "encoder", "decoder"):
            raise ConfigError(f"part must be 'all', 'encoder' or 'decoder', got {part!r}")
        return write_model(path, self.file_config(part), self.state_tensors(part))

    def state_tensors(self, part: str = "all") -> dict[str, torch.Tensor]:
        """The tensors model.safetensors holds: the module's state (of ``part``) and the scaler's, on the CPU."""
        state = {k: v.detach().cpu().contiguous() for k, v in self.model_.state_dict().items()}
        if part != "all":
            keep = part_prefixes(part, with_encoder=bool(self.model_.config.prior_component.needs_encoder))
            state = {k: v for k, v in state.items() if k.startswith(keep)}
        if getattr(self, "scaler_mean_", None) is not None:
            state["scaler.mean"] = torch.from_numpy(np.ascontiguousarray(self.scaler_mean_))
            state["scaler.scale"] = torch.from_numpy(np.ascontiguousarray(self.scaler_scale_))
        return state

    def file_config(self, part: str = "all") -> dict:
        """What config.json says of this model (without the format's name and version, which write_model adds)."""
        from . import __version__

        return {"vaekit_version": __version__, "part": part, "estimator": type(self).__name__, "params": self.get_params(),
                "model": self.model_.config.to_dict(), "input_shape": list(self.input_shape_), "n_classes": getattr(self, "n_classes_", 0)}

    can_sample = property(lambda self: bool(self.family.has_density), doc="Whether sample() can draw new examples: a family with a prior.")


@FAMILIES.implements("vae", role="estimator")
class VAE(_Base):
    """A variational autoencoder (Kingma & Welling 2014) with a choice of posterior and likelihood.

    Parameters are declared in :data:`vaekit.options.OPTIONS` (which also gives ``vaekit train --help``).
    ``likelihood``: 'bernoulli' (data in [0, 1]), 'continuous-bernoulli' or 'gaussian' (with a
    fixed ``sigma`` or, with ``learn_sigma=True``, a learned per-dimension sigma).
    ``posterior``: 'normal', 'laplace', 'student-t' (``student_df`` degrees of freedom), 'logistic', or 'iaf'
    (an inverse autoregressive flow, vaekit.flows: ``iaf_steps`` MADE steps of ``iaf_hidden`` units; Monte-Carlo KL).
    ``conditional=True`` makes q(z|x, c) and p(x|z, c) with c a one-hot class label (pass y to fit).
    """

    if TYPE_CHECKING:  # the signature make_init builds at run time, for type checkers and IDEs
        # <generated signature VAE: scripts/sync_signatures.py writes this block from vaekit.options.OPTIONS>
        latent_dim: int
        hidden: int | tuple[int, ...] | list[int] | str
        activation: str
        architecture: str
        likelihood: str
        sigma: float
        learn_sigma: bool
        ar_hidden: int
        ar_dropout: float
        posterior: str
        student_df: float
        iaf_steps: int
        iaf_hidden: int
        prior: str
        n_pseudo_inputs: int
        top_latent_dim: int
        top_hidden: int | tuple[int, ...] | list[int] | str
        conditional: bool
        n_classes: int | None
        label_scale: float
        beta: float
        warmup_epochs: float
        n_samples: int
        objective: str
        free_bits: float
        tc_alpha: float
        tc_beta: float
        tc_gamma: float
        tc_estimator: str
        factor_gamma: float
        discriminator_hidden: int | tuple[int, ...] | list[int] | str
        discriminator_lr: float
        binarize: str
        standardize: bool
        epochs: int
        batch_size: int
        optimizer: str
        lr: float
        lr_schedule: str
        lr_final: float
        momentum: float
        weight_decay: float
        clip_grad: float | None
        val_fraction: float
        early_stopping: int
        max_minutes: float
        max_steps: int
        log_every: int
        val_nll_every: int
        val_nll_k: int
        val_nll_examples: int
        seed: int
        device: str
        precision: str
        verbose: bool

        def __init__(
            self,
            latent_dim: int = 20,
            hidden: int | tuple[int, ...] | list[int] | str = (400,),
            activation: str = 'relu',
            architecture: str = 'mlp',
            likelihood: str = 'bernoulli',
            sigma: float = 1.0,
            learn_sigma: bool = False,
            ar_hidden: int = 500,
            ar_dropout: float = 0.0,
            posterior: str = 'normal',
            student_df: float = 5.0,
            iaf_steps: int = 2,
            iaf_hidden: int = 256,
            prior: str = 'normal',
            n_pseudo_inputs: int = 500,
            top_latent_dim: int = 0,
            top_hidden: int | tuple[int, ...] | list[int] | str = (100, 100),
            conditional: bool = False,
            n_classes: int | None = None,
            label_scale: float = 30.0,
            beta: float = 1.0,
            warmup_epochs: float = 0.0,
            n_samples: int = 1,
            objective: str = 'elbo',
            free_bits: float = 0.5,
            tc_alpha: float = 1.0,
            tc_beta: float = 6.0,
            tc_gamma: float = 1.0,
            tc_estimator: str = 'mws',
            factor_gamma: float = 35.0,
            discriminator_hidden: int | tuple[int, ...] | list[int] | str = (256, 256, 256),
            discriminator_lr: float = 0.0001,
            binarize: str = 'none',
            standardize: bool = False,
            epochs: int = 10,
            batch_size: int = 128,
            optimizer: str = 'adam',
            lr: float = 0.001,
            lr_schedule: str = 'constant',
            lr_final: float = 0.01,
            momentum: float = 0.9,
            weight_decay: float = 0.0,
            clip_grad: float | None = None,
            val_fraction: float = 0.1,
            early_stopping: int = 0,
            max_minutes: float = 0.0,
            max_steps: int = 0,
            log_every: int = 0,
            val_nll_every: int = 0,
            val_nll_k: int = 200,
            val_nll_examples: int = 1000,
            seed: int = 0,
            device: str = 'auto',
            precision: str = 'float32',
            verbose: bool = False,
        ) -> None: ...
        # </generated signature VAE>
    else:
        __init__ = make_init("vae", "Store the parameters unchanged (see vaekit.options.OPTIONS for each one).")

    def class_labels(self, label: int | None, n: int) -> np.ndarray | None:
        """``n`` copies of class ``label`` for a conditional model (None otherwise), checked.

        The one check of "which class to draw" that sampling and the figures share.
        """
        if not self._conditional:
            if label is not None:
                raise ConfigError("label= (--label) only applies to a conditional model (ConditionalVAE / --model cvae)")
            return None
        if label is None:
            raise ConfigError("this model is conditional: pass label=K (--label K) to say which class to draw")
        if not 0 <= int(label) < self.n_classes_:
            raise ConfigError(f"label {label} is not a class of this model; choose 0..{self.n_classes_ - 1}")
        return np.full(n, int(label), dtype=np.int64)

    def sample(self, n: int = 16, label: int | None = None, seed: int | None = None) -> np.ndarray:
        """n new examples E[x|z], z ~ N(0, I) (of class ``label`` for a conditional model)."""
        self.check_fitted()
        if n < 1:
            raise ConfigError(f"number of samples must be at least 1, got {n}")
        y = self.class_labels(label, n)
        seed = self.seed if seed is None else seed
        if self.model_.config.prior_component.standard_normal:
            gen = torch.Generator().manual_seed(seed)
            Z = torch.randn(n, self.model_.config.latent_dim, generator=gen).numpy()
        else:  # a learned prior draws with torch's own stream, seeded here and restored after
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(seed)
                Z = self.model_.prior().sample((n,)).cpu().numpy()
        return self.decode(Z, y)

    def kl_per_dimension(self, X, y=None) -> np.ndarray:
        """Mean KL(q(z_j|x) || p(z_j)) over the examples X, for each latent dimension j, in nats.

        p(z_j) is the j-th marginal of this model's prior: N(0, 1) (closed form for a normal
        posterior), or for ``prior='vamp'`` the mixture (1/K) sum_k q(z_j|u_k) (a seeded Monte-Carlo
        estimate; these need not add up to the ELBO's KL, as the mixture does not factorize). With
        two stochastic layers no per-dimension marginal is known: a ConfigError says so.
        A dimension with a KL near 0 is inactive: the posterior ignores x there (posterior collapse).
        """
        from .metrics import kl_per_dimension

        self.check_fitted()
        X = self.prepare_X(X)
        y = self._prepare_y(y, len(X))
        dev = self.device_
        kl = kl_per_dimension(self.model_, torch.from_numpy(X).to(dev), None if y is None else torch.from_numpy(y).to(dev))
        return kl.numpy()

    def score_samples(self, X, y=None, *, k: int | None = None, n_samples: int = 1, batch_size: int = 1024) -> np.ndarray:
        """Each example's ELBO in nats (higher: the model explains it better), shape (N,), float64.

        ``k=None``: the ELBO E_q[log p(x|z)] - KL(q(z|x) || p(z)) with ``n_samples`` draws of z and
        the closed-form KL where one exists, as training's validation loss computes it (with
        beta = 1 whatever the model's ``beta``: a lower bound on log p(x), not the training
        objective). ``k=K``: the importance-weighted estimate of log p(x) with K samples (Burda et al.
        2015), tighter as K grows; ``vaekit evaluate`` reports it with K = 5000.
        Data are scored as ``vaekit evaluate`` scores them (one fixed binarization for a model trained
        on binary images). With ``standardize=True`` the log-density is of X as given (the
        scaler's log-Jacobian is added), so models with and without it compare. The draws are
        seeded by ``seed`` (torch's random state is restored after): a fixed model and X give the
        same numbers every call. For the ELBO one draw of the noise serves every row (common random
        numbers), so a row's score does not depend on the rows beside it; the importance-weighted
        estimate and a two-layer model's upper layer draw afresh for each batch of rows.
        """
        from .metrics import iw_log_likelihood

        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
            raise ConfigError(f"k (importance samples) must be None for the ELBO or an integer of at least 1, got {k!r}")
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ConfigError(f"n_samples (draws of z per example) must be an integer of at least 1, got {n_samples!r}")
        X, y = self._scored(X, y)
        dev = self.device_
        Xt, yt = torch.from_numpy(X).to(dev), None if y is None else torch.from_numpy(y).to(dev)
        if k is not None:
            out = iw_log_likelihood(self.model_, Xt, yt, k=int(k), seed=self.seed).numpy()
        else:
            out = self._elbo(Xt, yt, int(n_samples), batch_size)
        return out + self._log_jacobian()

    @torch.no_grad()
    def _elbo(self, X: torch.Tensor, y: torch.Tensor | None, n_samples: int, batch_size: int) -> np.ndarray:
        """The ELBO of each row as ``model.loss`` computes it, with common random numbers.

        One seeded draw of the posterior family's standard noise eps (n_samples, latent_dim) serves
        every row, z = loc + scale * eps, so a row's score depends on the row alone (not on its
        batch or neighbours: scikit-learn's subset invariance) and models compared on the same data
        see the same noise. With two stochastic layers the upper layer is drawn per batch instead, and so
        is a posterior without draws from given noise (not ``location_scale``: a flow).
        """
        from . import distributions as D

        model = self.model_
        cfg = model.config
        given_noise = POSTERIORS[cfg.posterior["name"]].location_scale
        one_layer = cfg.code_dim == cfg.latent_dim and given_noise
        was_training = model.training
        model.eval()
        out = []
        with torch.random.fork_rng(devices=[X.device] if X.device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            zeros = torch.zeros(1, cfg.latent_dim, device=X.device)
            eps = D.posterior(cfg.posterior["name"], zeros, zeros, cfg.posterior.get("df", 5.0)).sample((n_samples,)) if given_noise else None
            for i in range(0, len(X), batch_size):
                xb, cb = X[i : i + batch_size], None if y is None else y[i : i + batch_size]
                q = model.inference(xb, cb)
                z = q.reparameterize(eps[:, 0]) if one_layer else q.rsample((n_samples,))  # (S, B, code_dim)
                elbo = model.log_likelihood(z, xb, cb).mean(0) - model.kl(q, z)
                out.append(elbo.double().cpu())
        model.train(was_training)
        return torch.cat(out).numpy()


@FAMILIES.implements("ae", role="estimator")
class Autoencoder(_Base):
    """An undercomplete MLP (or conv) autoencoder, optionally sparse or denoising.

    ``likelihood``: 'bernoulli' (binary cross-entropy on logits, data in [0, 1]) or 'gaussian'
    (squared error, the MSE view). ``sparsity``: None, 'l1' (``sparsity_weight * sum |a|``) or 'kl'
    (``sparsity_weight * sum_j KL(sparsity_target || rho_hat_j)``). ``noise``: None, 'gaussian',
    'masking' or 'salt-and-pepper' at ``noise_level`` (a denoising autoencoder).
    """

    if TYPE_CHECKING:  # the signature make_init builds at run time, for type checkers and IDEs
        # <generated signature Autoencoder: scripts/sync_signatures.py writes this block from vaekit.options.OPTIONS>
        latent_dim: int
        hidden: int | tuple[int, ...] | list[int] | str
        activation: str
        architecture: str
        likelihood: str
        sparsity: str | None
        sparsity_weight: float
        sparsity_target: float
        noise: str | None
        noise_level: float
        standardize: bool
        epochs: int
        batch_size: int
        optimizer: str
        lr: float
        lr_schedule: str
        lr_final: float
        momentum: float
        weight_decay: float
        clip_grad: float | None
        val_fraction: float
        early_stopping: int
        max_minutes: float
        max_steps: int
        log_every: int
        seed: int
        device: str
        precision: str
        verbose: bool

        def __init__(
            self,
            latent_dim: int = 32,
            hidden: int | tuple[int, ...] | list[int] | str = (256,),
            activation: str = 'relu',
            architecture: str = 'mlp',
            likelihood: str = 'bernoulli',
            sparsity: str | None = None,
            sparsity_weight: float = 0.001,
            sparsity_target: float = 0.05,
            noise: str | None = None,
            noise_level: float = 0.3,
            standardize: bool = False,
            epochs: int = 10,
            batch_size: int = 64,
            optimizer: str = 'adam',
            lr: float = 0.003,
            lr_schedule: str = 'constant',
            lr_final: float = 0.01,
            momentum: float = 0.9,
            weight_decay: float = 0.0,
            clip_grad: float | None = None,
            val_fraction: float = 0.1,
            early_stopping: int = 0,
            max_minutes: float = 0.0,
            max_steps: int = 0,
            log_every: int = 0,
            seed: int = 0,
            device: str = 'auto',
            precision: str = 'float32',
            verbose: bool = False,
        ) -> None: ...
        # </generated signature Autoencoder>
    else:
        __init__ = make_init("ae", "Store the parameters unchanged (see vaekit.options.OPTIONS for each one).")

    def corrupt(self, X, seed: int = 0) -> np.ndarray:
        """A corrupted copy of X with this model's noise (what a denoising model learns to undo)."""
        from .models import corrupt

        if not self.noise:
            raise ConfigError("this autoencoder has no noise model; create it with noise='gaussian', 'masking' or 'salt-and-pepper'")
        torch.manual_seed(seed)
        return corrupt(torch.as_tensor(check_array(X)), self.noise, self.noise_level).numpy()

    def score_samples(self, X, y=None) -> np.ndarray:
        """Each example's negative reconstruction loss, shape (N,), float64: higher is a better fit.

        In the model's units (``loss_unit``): minus the binary cross-entropy in nats for
        ``likelihood='bernoulli'``, minus the squared error summed over features for 'gaussian'
        (of the scaled data with ``standardize=True``). Through the code of the clean input (no
        noise, no sparsity penalty): the reconstruction term training reports. Deterministic.
        """
        X, y = self._scored(X, y)
        model = self.model_

        def neg_loss(xb, yb):
            return -model.reconstruction_error(xb, model._decode_params(model.encode(xb, yb), yb))

        return self.batched(neg_loss, X, y).astype(np.float64)


@FAMILIES.implements("vq", role="estimator")
class VQVAE(_Base):
    """A VQ-VAE (van den Oord et al. 2017) for images: each image coded as a grid of codebook entries.

    X: images (N, H, W) or (N, C, H, W), H and W divisible by 4. ``latent_dim``: the size D of each
    code vector; ``codebook_size``: K entries; ``commitment``: the weight β of the commitment loss;
    ``ema_decay``: the codebook's moving-average decay (see :mod:`vaekit.vq`). ``encode`` / ``transform``
    give the quantized grid flattened (``code_dim`` = D x H/4 x W/4 numbers); :meth:`indices` the grid
    of entry numbers; :meth:`encode_continuous` the encoder's vectors before quantization.
    """

    if TYPE_CHECKING:  # the signature make_init builds at run time, for type checkers and IDEs
        # <generated signature VQVAE: scripts/sync_signatures.py writes this block from vaekit.options.OPTIONS>
        latent_dim: int
        activation: str
        likelihood: str
        codebook_size: int
        commitment: float
        ema_decay: float
        standardize: bool
        epochs: int
        batch_size: int
        optimizer: str
        lr: float
        lr_schedule: str
        lr_final: float
        momentum: float
        weight_decay: float
        clip_grad: float | None
        val_fraction: float
        early_stopping: int
        max_minutes: float
        max_steps: int
        log_every: int
        seed: int
        device: str
        precision: str
        verbose: bool

        def __init__(
            self,
            latent_dim: int = 16,
            activation: str = 'relu',
            likelihood: str = 'bernoulli',
            codebook_size: int = 32,
            commitment: float = 0.25,
            ema_decay: float = 0.99,
            standardize: bool = False,
            epochs: int = 10,
            batch_size: int = 64,
            optimizer: str = 'adam',
            lr: float = 0.001,
            lr_schedule: str = 'constant',
            lr_final: float = 0.01,
            momentum: float = 0.9,
            weight_decay: float = 0.0,
            clip_grad: float | None = None,
            val_fraction: float = 0.1,
            early_stopping: int = 0,
            max_minutes: float = 0.0,
            max_steps: int = 0,
            log_every: int = 0,
            seed: int = 0,
            device: str = 'auto',
            precision: str = 'float32',
            verbose: bool = False,
        ) -> None: ...
        # </generated signature VQVAE>
    else:
        __init__ = make_init("vq", "Store the parameters unchanged (see vaekit.options.OPTIONS for each one).")

    def indices(self, X) -> np.ndarray:
        """The codebook entry chosen in each cell of each image's code grid: int64 (N, H/4, W/4)."""
        self.check_fitted()
        X = self.prepare_X(X)
        return self.batched(lambda xb: self.model_.indices(xb), X).astype(np.int64)

    def encode_continuous(self, X) -> np.ndarray:
        """The encoder's vectors z_e before quantization: float32 (N, D, H/4, W/4)."""
        self.check_fitted()
        X = self.prepare_X(X)
        return self.batched(lambda xb: self.model_.encode_continuous(xb), X)

    def decode_indices(self, indices) -> np.ndarray:
        """Images decoded from index grids (N, H/4, W/4) of entries (an edited grid, or one drawn from a prior)."""
        self.check_fitted()
        idx = np.asarray(indices)
        rows, cols = self.model_.config.grid
        if idx.ndim != 3 or idx.shape[1:] != (rows, cols) or not np.issubdtype(idx.dtype, np.integer):
            raise DataError(f"index grids must be whole numbers of shape (N, {rows}, {cols}), got {idx.dtype} {idx.shape}")
        k = self.model_.config.codebook_size
        if idx.size and (idx.min() < 0 or idx.max() >= k):
            raise DataError(f"codebook indices must lie in 0..{k - 1}, got {idx.min()}..{idx.max()}")
        return self.decode(self.batched(lambda ib: self.model_.grid_of(ib), idx))

    def codebook_usage(self, X) -> dict[str, float]:
        """How the codes of X use the codebook: ``perplexity`` exp(entropy of the entries' shares over
        all cells of all images; K when all are used evenly) and ``usage``, the share of entries used at all."""
        idx = self.indices(X).ravel()
        k = self.model_.config.codebook_size
        share = np.bincount(idx, minlength=k) / max(len(idx), 1)
        nz = share[share > 0]
        return {"perplexity": float(np.exp(-(nz * np.log(nz)).sum())), "usage": float((share > 0).mean()),
                "codebook_size": k}

    # -- the second stage: a prior over the index grid (vaekit.codeprior) -----------------------------
    @property
    def can_sample(self) -> bool:
        """Whether new images can be drawn: once a prior over the code grid is trained (:meth:`fit_prior`)."""
        return hasattr(self, "model_") and self.model_.code_prior is not None

    def fit_prior(self, X, *, epochs: int = 10, kind: str = "pixelcnn", width: int | None = None, layers: int | None = None,
                  heads: int | None = None, kernel: int | None = None, batch_size: int = 64, lr: float = 1e-3,
                  max_minutes: float = 0.0, val_fraction: float = 0.1, seed: int | None = None,
                  log: Callable[[str], None] | None = None) -> Self:
        """Train the prior over the index grids of X (the VQ-VAE's own training images), keeping the VQ-VAE
        as it is (vaekit.codeprior): ``kind='pixelcnn'``, a gated PixelCNN of ``layers`` layers of ``width``
        maps with ``kernel`` x ``kernel`` convolutions (default 6, 32, 3), or ``'transformer'``, a causal
        transformer of ``layers`` layers of ``width`` units and ``heads`` heads (default 2, 64, 4).
        ``prior_history_`` then holds one row per epoch, the NLL in nats per image. Returns self."""
        import dataclasses

        from .codeprior import check_prior_spec, fit_grid_prior
        from .train import split_validation

        self.check_fitted()
        if epochs < 1 or batch_size < 1 or not lr > 0 or not 0 <= val_fraction < 1 or max_minutes < 0:
            raise ConfigError(f"fit_prior needs epochs >= 1, batch_size >= 1, lr > 0, 0 <= val_fraction < 1 and max_minutes >= 0; "
                              f"got {epochs}, {batch_size}, {lr}, {val_fraction}, {max_minutes}")
        given = {"width": width, "layers": layers, "heads": heads, "kernel": kernel}
        spec = check_prior_spec({"kind": kind, **{k: v for k, v in given.items() if v is not None}})
        seed = self.seed if seed is None else seed
        grids = torch.from_numpy(self.indices(X).reshape(len(X), -1))
        tr, va = split_validation(len(grids), val_fraction, seed)
        old = self.model_
        torch.manual_seed(seed)
        model = build_model(dataclasses.replace(old.config, code_prior=spec))
        missing, unexpected = model.load_state_dict(old.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("code_prior.") for k in missing), (missing, unexpected)
        model.to(self.device_)
        self.prior_history_ = fit_grid_prior(model.code_prior, grids[tr].to(self.device_), epochs=epochs, batch_size=batch_size,
                                             lr=lr, max_minutes=max_minutes, val_grids=grids[va].to(self.device_), seed=seed, log=log)
        self.model_ = model.eval()
        return self

    def sample(self, n: int = 16, label: int | None = None, seed: int | None = None) -> np.ndarray:
        """n new images: index grids drawn from the code prior, decoded. Needs :meth:`fit_prior` first."""
        self.check_fitted()
        if label is not None:
            raise ConfigError("label= (--label) only applies to a conditional model (ConditionalVAE / --model cvae)")
        if n < 1:
            raise ConfigError(f"number of samples must be at least 1, got {n}")
        self.model_.eval()
        gen = torch.Generator(device=self.device_).manual_seed(self.seed if seed is None else seed)
        return self._unscale(self.model_.sample(n, generator=gen).float().cpu().numpy())

    def prior_nll(self, X) -> np.ndarray:
        """-log p(k(x)) of each image's index grid under the code prior, nats, float64 (N,)."""
        self.check_fitted()
        X = self.prepare_X(X)
        return self.batched(lambda xb: self.model_.prior_nll(xb), X).astype(np.float64)

    def log_likelihood_bound(self, X) -> np.ndarray:
        """The two-stage model's bound log p(x) >= log p(x | z_q(k(x))) + log p(k(x)) in nats, per image (N,):
        minus the reconstruction term and the prior's NLL (vaekit.codeprior). Bernoulli decoders only (a
        squared error is not a log-likelihood)."""
        if not LIKELIHOODS[self.likelihood].discrete:
            raise ConfigError(f"the log-likelihood bound needs a decoder with a likelihood in nats (bernoulli), not {self.likelihood!r}")
        return self.score_samples(X) - self.prior_nll(X)

    def score_samples(self, X, y=None) -> np.ndarray:
        """Each image's negative reconstruction loss through its quantized code, shape (N,), float64:
        minus the binary cross-entropy in nats (bernoulli) or minus the squared error (gaussian)."""
        X, y = self._scored(X, y)
        model = self.model_
        return self.batched(lambda xb: -model.reconstruction_error(xb, model._decode_params(model.encode(xb))), X).astype(np.float64)


# -- the course's models, as presets of the two families ----------------------------------------


def _preset(name: str, positional: dict | None = None, **kwargs) -> _Base:
    """The estimator of a registered preset: its family's class with the preset's parameters, which the
    caller's override. ``positional``: the leading arguments 0.1.0's presets took by position (``...``: not given)."""
    given = {k: v for k, v in (positional or {}).items() if v is not ...}
    for k in given.keys() & kwargs.keys():
        raise TypeError(f"{k} was given both by position and by keyword; pass it once")
    preset = PRESETS[name]
    return FAMILIES[preset.families[0]].parts["estimator"](**{**preset.params, **given, **kwargs})


# The presets' leading parameters may also be passed by position, as in 0.1.0 (SparseAutoencoder("kl")); their
# defaults (``...``) are the preset's own, in vaekit.registry.PRESETS, else the family's.
def SparseAutoencoder(sparsity: str | None = ..., /, **kwargs: Unpack[AutoencoderParams]) -> Autoencoder:  # type: ignore[assignment]
    """An autoencoder with an L1 (``sparsity='l1'``, the default) or KL(rho || rho_hat) (``'kl'``)
    sparsity penalty on its code: the ``sparse-ae`` preset."""
    return _preset("sparse-ae", {"sparsity": sparsity}, **kwargs)


def DenoisingAutoencoder(noise: str | None = ..., noise_level: float = ..., /,  # type: ignore[assignment]
                         **kwargs: Unpack[AutoencoderParams]) -> Autoencoder:
    """An autoencoder trained to recover x from a corrupted copy (``noise``: gaussian, masking (the
    default), salt-and-pepper, at ``noise_level``): the ``denoising-ae`` preset."""
    return _preset("denoising-ae", {"noise": noise, "noise_level": noise_level}, **kwargs)


def ConvVAE(latent_dim: int = ..., batch_size: int = ..., lr: float = ..., /, **kwargs: Unpack[VAEParams]) -> VAE:  # type: ignore[assignment]
    """The course's convolutional VAE for (C, H, W) images: the ``conv-vae`` preset (latent 100,
    batch 32, lr 2e-3; vaekit.registry.PRESETS). From 64 pixels a side it builds the disentanglement
    papers' 4x4 stride-2 network instead of the course's pooled pair (vaekit.nets.conv_net_for).

    It trains with smaller batches and a larger step than the MLP VAE because the conv net needs
    many more steps to leave the blob stage: on the embedded sample, 5 epochs at batch 128 and
    lr 1e-3 gave prior samples that a digit classifier was sure of (p >= 0.9) in 16 % of cases and
    reconstructions it read as their original's digit in 75 %; at 32 and 2e-3, 34 % and 93 %.
    """
    return _preset("conv-vae", {"latent_dim": latent_dim, "batch_size": batch_size, "lr": lr}, **kwargs)


def ConditionalVAE(latent_dim: int = ..., /, **kwargs: Unpack[VAEParams]) -> VAE:  # type: ignore[assignment]
    """A VAE whose encoder and decoder also see a one-hot class label: ``sample(n, label=7)``; the
    ``cvae`` preset (latent 4).

    The label carries the class, so z only has to hold the style; 4 dimensions are enough for that
    and leave N(0, I) few holes. With 20 on the 5 000-image embedded sample, samples asked for a
    class were that class in 96 % of cases on average but 85 % for the worst class, and fell with
    longer training as the aggregate posterior drew away from the prior; with 4, 97-100 % for
    every class (docs/tutorials/04-aevb-and-the-conditional-vae.md).
    """
    return _preset("cvae", {"latent_dim": latent_dim}, **kwargs)


ESTIMATORS = {f.estimator: f.parts["estimator"] for f in FAMILIES}


def estimator_class(name: str, where: str | Path = "the model config") -> type[_Base]:
    """The estimator class a saved config names (the one lookup from name to class)."""
    try:
        return ESTIMATORS[name]
    except (KeyError, TypeError):
        raise ModelFileError(f"unknown estimator {name!r} in {where}; expected one of {', '.join(ESTIMATORS)}") from None


def _pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    """``a`` with zero rows appended up to ``rows`` (unchanged when it has that many or more)."""
    a = np.asarray(a)
    if len(a) >= rows:
        return a
    return np.concatenate([a, np.zeros((rows - len(a), *a.shape[1:]), dtype=a.dtype)])
