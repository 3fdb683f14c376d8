"""Loading a saved model folder back: the whole estimator, or only its encoder or decoder.

The format itself (file names, version, checks) is in vaekit.modelfile; which class a config
names is looked up in vaekit.estimators.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import ConfigError, ModelFileError
from .estimators import estimator_class
from .modelfile import CONFIG_FILE, WEIGHTS_FILE, part_prefixes, read_config, read_shapes, read_weights
from .models import build_model, config_from_dict
from .train import resolve_device


def load(path: str | Path, device: str = "cpu"):
    """Load a saved model folder: an estimator (``part='all'``) or an :class:`Encoder` / :class:`Decoder`.

    Every size in config.json is checked against the weights file's header before the model is
    built, so a few bytes of hostile JSON cannot allocate gigabytes.
    """
    path = Path(path)
    cfg = read_config(path)
    est = _estimator(cfg, path / CONFIG_FILE)
    try:
        model_config = config_from_dict(cfg["model"])
    except (TypeError, ValueError, AttributeError) as e:  # ConfigError is a ValueError
        raise ModelFileError(f"{path / CONFIG_FILE} has an invalid model section: {e}") from None
    version = cfg.get("upgraded_from", cfg["format_version"])
    part = cfg["part"]
    input_shape = tuple(cfg["input_shape"])
    if math.prod(input_shape) != math.prod(model_config.input_shape):
        raise ModelFileError(f"{path / CONFIG_FILE}: input_shape {list(input_shape)} does not fit the model's {list(model_config.input_shape)}")
    _check_shapes(path, _meta_shapes(model_config, part, version), read_shapes(path, version), input_shape)
    model = build_model(model_config)
    # Half-precision weights (the pretrained models ship as fp16 to stay small) are upcast to
    # float32 here, the scaler's too, so that a loaded model computes in float32 like a trained one.
    state = {k: v.float() if v.is_floating_point() and v.element_size() < 4 else v for k, v in read_weights(path, version).items()}
    scaler = (state.pop("scaler.mean", None), state.pop("scaler.scale", None))
    if scaler[1] is not None and not bool((scaler[1] > 0).all()):
        raise ModelFileError(f"{path / WEIGHTS_FILE}: tensor scaler.scale holds values that are not positive; the file is damaged")
    model.load_state_dict(state, strict=(part == "all"))
    model.to(resolve_device(device)).eval()
    est.model_ = model
    est.input_shape_ = input_shape
    est.n_features_in_ = int(np.prod(est.input_shape_))
    if cfg.get("n_classes"):
        est.n_classes_ = int(cfg["n_classes"])
    if scaler[0] is not None:
        est.scaler_mean_, est.scaler_scale_ = scaler[0].numpy(), scaler[1].numpy()
    if part == "encoder":
        return Encoder(est)
    if part == "decoder":
        return Decoder(est)
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


def _meta_shapes(model_config, part: str, version: int) -> dict[str, tuple[int, ...]]:
    """The weight shapes a config implies, from a model built on the meta device (nothing allocated)."""
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
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if part != "all":
        shapes = {k: v for k, v in shapes.items() if k.startswith(part_prefixes(part, version))}
    return shapes


def _check_shapes(path: Path, expected: dict, found: dict, input_shape: tuple[int, ...]) -> None:
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

    def __init__(self, est):
        self._est = est
        self.latent_dim = est.model_.config.code_dim  # the length of a code (z1 and z2 for two layers)

    def decode(self, Z, y=None) -> np.ndarray:
        return self._est.decode(Z, y)

    def sample(self, n: int = 16, label: int | None = None, seed: int | None = None) -> np.ndarray:
        if not self._est.model_.family.has_density:
            raise ConfigError("only a VAE decoder can sample from a prior; an autoencoder's code has none")
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
