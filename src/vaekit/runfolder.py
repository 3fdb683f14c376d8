"""Run folders: a saved model folder (config.json + model.safetensors) loaded back in one path.

:func:`load` reads in this order, and refuses with one line at the first step that fails:

1. config.json, checked as data and upgraded from an older format (:func:`vaekit.modelfile.read_config`);
2. the weights file's header: each tensor's name and shape, nothing else (:func:`vaekit.modelfile.read_shapes`);
3. the model, built under an allocation budget (:func:`sized_build`): a config whose sizes are
   absurd allocates at most the budget, the rest of its tensors only as shapes on the meta device;
4. the shapes the config implies against the header's (:func:`check_shapes`): the model is built
   for real only now when step 3 had to leave some of it on the meta device;
5. the weights, checked for NaN / Inf, filled in.

The format itself (file names, versions, value checks, the writer) is vaekit.modelfile; which
estimator class a config names is looked up in vaekit.estimators.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from .errors import ConfigError, ModelFileError
from .estimators import estimator_class
from .modelfile import CONFIG_FILE, WEIGHTS_FILE, part_prefixes, read_config, read_shapes, read_weights
from .models import build_model, config_from_dict
from .train import resolve_device

# What building a model may allocate before its sizes are checked against the weights file:
# every model vaekit trains on its bundled data (MNIST's autoregressive decoder included, about
# 3.5 M numbers) fits, so the common load builds once, for real; a larger config builds the rest
# of its tensors as shapes on the meta device first (slower: meta kernels import torch._dynamo).
BUILD_BUDGET = 8 << 20  # numbers (32 MB of float32)


def load(path: str | Path, device: str = "cpu"):
    """Load a saved model folder: an estimator (``part='all'``) or an :class:`Encoder` / :class:`Decoder`.

    Every size in config.json is checked against the weights file's header before more than
    :data:`BUILD_BUDGET` numbers are allocated, so a few bytes of hostile JSON cannot allocate gigabytes.
    """
    path = Path(path)
    cfg = read_config(path)
    est = _estimator(cfg, path / CONFIG_FILE)
    version, part, input_shape = cfg.get("upgraded_from", cfg["format_version"]), cfg["part"], tuple(cfg["input_shape"])
    found = read_shapes(path, version)
    model_config = _model_config(cfg, path)
    model, expected = sized_build(model_config)
    # A decoder of a prior that runs the encoder holds the encoder too (folders saved before that
    # was known lack it: they decode, and refuse to sample; see Decoder.sample).
    with_encoder = bool(model_config.prior_component.needs_encoder) and any(k.startswith("encoder.") for k in found)
    if part != "all":
        expected = {k: v for k, v in expected.items() if k.startswith(part_prefixes(part, version, with_encoder))}
    check_shapes(path, expected, found, input_shape)
    if model is None:
        model = build_model(model_config)
    _fill(est, model, read_weights(path, version), path, strict=(part == "all"))
    est.model_ = model.to(resolve_device(device)).eval()
    est.input_shape_ = input_shape
    est.n_features_in_ = int(np.prod(est.input_shape_))
    if cfg.get("n_classes"):
        est.n_classes_ = int(cfg["n_classes"])
    if part == "encoder":
        return Encoder(est)
    if part == "decoder":
        return Decoder(est, can_sample=with_encoder or not model_config.prior_component.needs_encoder)
    return est


def _estimator(cfg: dict, where: Path):
    """The estimator a config names, its saved parameters set and checked."""
    est = estimator_class(cfg["estimator"], where)()
    known = est.get_params()
    # JSON has no tuples: give list-valued parameters (hidden sizes) back their constructor type.
    est.set_params(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["params"].items() if k in known})
    try:
        est.check_params()
    except (TypeError, ValueError, AttributeError) as e:  # ConfigError is a ValueError
        raise ModelFileError(f"{where} has invalid params: {e}") from None
    return est


def _model_config(cfg: dict, path: Path):
    """The model section as a config object, its input size the same as the folder's."""
    try:
        model_config = config_from_dict(cfg["model"])
    except (TypeError, ValueError, AttributeError) as e:  # ConfigError is a ValueError
        raise ModelFileError(f"{path / CONFIG_FILE} has an invalid model section: {e}") from None
    if math.prod(cfg["input_shape"]) != math.prod(model_config.input_shape):
        shape = list(cfg["input_shape"])
        raise ModelFileError(f"{path / CONFIG_FILE}: input_shape {shape} does not fit the model's {list(model_config.input_shape)}")
    return model_config


def _fill(est, model, state: dict, path: Path, strict: bool) -> None:
    """Put the checked weights into ``model`` and a standardized model's scaler into ``est``."""
    # Half-precision weights (the pretrained models ship as fp16 to stay small) are upcast to
    # float32 here, the scaler's too, so that a loaded model computes in float32 like a trained one.
    state = {k: v.float() if v.is_floating_point() and v.element_size() < 4 else v for k, v in state.items()}
    mean, scale = state.pop("scaler.mean", None), state.pop("scaler.scale", None)
    if scale is not None and not bool((scale > 0).all()):
        raise ModelFileError(f"{path / WEIGHTS_FILE}: tensor scaler.scale holds values that are not positive; the file is damaged")
    model.load_state_dict(state, strict=strict)
    if mean is not None:
        est.scaler_mean_, est.scaler_scale_ = mean.numpy(), scale.numpy()


# -- sizes: what a config implies, checked against the weights file's header -------------------


def sized_build(model_config, budget: int = BUILD_BUDGET):
    """``(model, shapes)``: the module a config describes and the shape of each of its weights.

    Tensors are allocated for real until they add up to ``budget`` numbers; those beyond it are
    made on the meta device (shapes, no memory), and ``model`` is then None: build it once the
    shapes are checked. Building for real in the common case costs one build instead of two, and
    avoids the meta device's kernels, which import torch._dynamo (seconds) on first use.
    """
    import torch

    rng = torch.get_rng_state()
    guard = _budget_mode()(budget)
    try:
        with guard:
            model = build_model(model_config)
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    except (RuntimeError, ValueError, TypeError, OverflowError) as e:
        if not guard.spilled:
            raise ModelFileError(f"the model section of {CONFIG_FILE} cannot be built: {e}") from None
        shapes = _meta_shapes(model_config)  # a real and a meta tensor met in some module's __init__
    if not guard.spilled:
        return model, shapes
    torch.set_rng_state(rng)  # the real build to come draws its initial weights as one build would
    return None, shapes


def _meta_shapes(model_config) -> dict[str, tuple[int, ...]]:
    """The weight shapes a config implies, from a model built wholly on the meta device."""
    import torch
    from torch.distributions import Distribution

    # Argument validation reads values (.item()), which meta tensors do not have; a priori
    # distributions built in __init__ (a Student-t prior's) would fail on it.
    validate = Distribution._validate_args
    Distribution.set_default_validate_args(False)
    try:
        with torch.device("meta"):
            model = build_model(model_config)
    except (RuntimeError, ValueError, TypeError, OverflowError) as e:
        raise ModelFileError(f"the model section of {CONFIG_FILE} cannot be built: {e}") from None
    finally:
        Distribution.set_default_validate_args(validate)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@functools.cache
def _budget_mode() -> type:
    """The allocation guard's class, made on first use so that importing this module stays cheap."""
    from torch.overrides import TorchFunctionMode
    from torch.utils._device import _device_constructors

    # Constructors handed the data itself allocate no more than the caller already holds.
    sized = {f for f in _device_constructors() if f.__name__ not in ("tensor", "as_tensor", "asarray")}

    class Budget(TorchFunctionMode):
        """Tensor constructors allocate for real until ``budget`` numbers are used, then on the meta device."""

        def __init__(self, budget: int):
            super().__init__()
            self.left, self.spilled = budget, False

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in sized and kwargs.get("device") is None:
                # The same constructor on the meta device says how large its tensor is, allocating nothing.
                shaped = func(*args, **{**kwargs, "device": "meta"})
                if self.spilled or shaped.numel() > self.left:
                    self.spilled = True
                    return shaped
                self.left -= shaped.numel()
            return func(*args, **kwargs)

    return Budget


def check_shapes(path: Path, expected: dict, found: dict, input_shape: tuple[int, ...]) -> None:
    """The weights file holds exactly the tensors the config implies, of the same shapes.

    The scaler of a standardized model is either absent or both of its tensors, each of one
    example's shape.
    """
    scaler = [k for k in ("scaler.mean", "scaler.scale") if k in found]
    if scaler:
        expected = {**expected, "scaler.mean": input_shape, "scaler.scale": input_shape}
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        raise ModelFileError(
            f"{path / WEIGHTS_FILE} does not match its config (missing {missing[:3]}, unexpected {extra[:3]}); the files are from different models"
        )
    for k, shape in found.items():
        if shape != expected[k]:
            raise ModelFileError(f"{path / WEIGHTS_FILE}: tensor {k} has shape {shape} but the config implies {expected[k]}")


# -- the halves of a model ---------------------------------------------------------------------


class Encoder:
    """The encoder half of a saved model: ``encode(X)`` gives codes (posterior means)."""

    def __init__(self, est):
        self._est = est
        self.latent_dim = est.model_.config.code_dim  # the length of a code (z1 and z2 for two layers)

    def encode(self, X, y=None) -> np.ndarray:
        return self._est.encode(X, y)

    transform = encode


class Decoder:
    """The decoder half of a saved model: ``decode(Z)`` and (for a VAE) ``sample(n)``."""

    def __init__(self, est, can_sample: bool = True):
        self._est = est
        self.latent_dim = est.model_.config.code_dim  # the length of a code (z1 and z2 for two layers)
        self._can_sample = can_sample  # False: a VampPrior decoder saved without the encoder its prior runs

    def decode(self, Z, y=None) -> np.ndarray:
        return self._est.decode(Z, y)

    def sample(self, n: int = 16, label: int | None = None, seed: int | None = None) -> np.ndarray:
        if not self._est.model_.family.has_density:
            raise ConfigError("only a VAE decoder can sample from a prior; an autoencoder's code has none")
        if not self._can_sample:
            raise ModelFileError("this decoder folder lacks the encoder its prior (the VampPrior) runs to draw z; "
                                 "save the decoder again from the full model (model.save(path, part='decoder')) or load the full model folder")
        return self._est.sample(n, label=label, seed=seed)


def load_encoder(path: str | Path, device: str = "cpu") -> Encoder:
    """The encoder of a saved model folder (a full model or one saved with part='encoder')."""
    obj = load(path, device)
    if isinstance(obj, Decoder):
        raise ModelFileError(f"{path} holds only a decoder; save the encoder with model.save(path, part='encoder')")
    return obj if isinstance(obj, Encoder) else Encoder(obj)


def load_decoder(path: str | Path, device: str = "cpu") -> Decoder:
    """The decoder of a saved model folder (a full model or one saved with part='decoder')."""
    obj = load(path, device)
    if isinstance(obj, Encoder):
        raise ModelFileError(f"{path} holds only an encoder; save the decoder with model.save(path, part='decoder')")
    return obj if isinstance(obj, Decoder) else Decoder(obj)
