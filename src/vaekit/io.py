"""Loading a saved model folder back: the whole estimator, or only its encoder or decoder.

The format itself (file names, version, checks) is in vaekit.modelfile; which class a config
names is looked up in vaekit.estimators.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ConfigError, ModelFileError
from .estimators import estimator_class
from .modelfile import CONFIG_FILE, WEIGHTS_FILE, part_prefixes, read_config, read_weights
from .models import build_model, config_from_dict, has_density
from .train import resolve_device


def load(path: str | Path, device: str = "cpu"):
    """Load a saved model folder: an estimator (``part='all'``) or an :class:`Encoder` / :class:`Decoder`."""
    path = Path(path)
    cfg = read_config(path)
    params = dict(cfg["params"])
    est = estimator_class(cfg["estimator"], path / CONFIG_FILE)()
    known = est.get_params()
    # JSON has no tuples: give list-valued parameters (hidden sizes) back their constructor type.
    est.set_params(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items() if k in known})
    try:
        model_config = config_from_dict(cfg["model"])
    except (TypeError, ValueError, AttributeError) as e:  # ConfigError is a ValueError
        raise ModelFileError(f"{path / CONFIG_FILE} has an invalid model section: {e}") from None
    model = build_model(model_config)
    version = cfg.get("upgraded_from", cfg["format_version"])
    state = read_weights(path, version)
    scaler = (state.pop("scaler.mean", None), state.pop("scaler.scale", None))
    part = cfg["part"]
    expected = model.state_dict()
    if part != "all":
        expected = {k: v for k, v in expected.items() if k.startswith(part_prefixes(part, version))}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ModelFileError(
            f"{path / WEIGHTS_FILE} does not match its config (missing {missing[:3]}, unexpected {extra[:3]}); the files are from different models"
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise ModelFileError(
                f"{path / WEIGHTS_FILE}: tensor {k} has shape {tuple(v.shape)} but the config implies {tuple(expected[k].shape)}"
            )
    model.load_state_dict(state, strict=(part == "all"))
    model.to(resolve_device(device)).eval()
    est.model_ = model
    est.input_shape_ = tuple(cfg["input_shape"])
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
        if not has_density(self._est.model_):
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
