"""Model files: safetensors for tensors, JSON for everything else. Nothing is ever unpickled.

A saved model is a folder with ``config.json`` (what to build) and ``model.safetensors`` (the
weights, plus the input scaler when there is one). Every file is written to a temporary name in the
same folder and renamed into place, so a crash never leaves a half-written model behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError, ModelFileError

FORMAT = "vaekit-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PART_PREFIXES = {"encoder": ("encoder.",), "decoder": ("decoder.", "likelihood.")}


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would surprise users sharing run folders
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def publish_dir(staging: Path, out: Path) -> None:
    """Move a finished folder into place, replacing ``out`` if it exists (the --overwrite case).

    The old folder is renamed aside first, so at every moment ``out`` is either the old complete
    folder or the new complete one.
    """
    import shutil

    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out)


def write_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (tuple, np.ndarray)):
        return list(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{path} not found; point at a folder written by `vaekit train` or model.save()") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path} is not valid JSON ({e}); the model folder is damaged, retrain or restore it") from None


def save_estimator(est, path: str | Path, part: str = "all") -> Path:
    """Write an estimator's config.json and model.safetensors (or one part of them) into ``path``."""
    from safetensors.torch import save_file

    from . import __version__

    if part not in ("all", "encoder", "decoder"):
        raise ConfigError(f"part must be 'all', 'encoder' or 'decoder', got {part!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in est.model_.state_dict().items()}
    if part != "all":
        state = {k: v for k, v in state.items() if k.startswith(PART_PREFIXES[part])}
    if getattr(est, "scaler_mean_", None) is not None:
        state["scaler.mean"] = torch.from_numpy(np.ascontiguousarray(est.scaler_mean_))
        state["scaler.scale"] = torch.from_numpy(np.ascontiguousarray(est.scaler_scale_))
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "vaekit_version": __version__,
        "part": part,
        "estimator": type(est).__name__,
        "params": est.get_params(),
        "model": est.model_.config.to_dict(),
        "input_shape": list(est.input_shape_),
        "n_classes": getattr(est, "n_classes_", 0),
    }
    with atomic_path(path / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT})
    write_json(path / CONFIG_FILE, config)
    return path


def read_config(path: str | Path) -> dict:
    """Read and check a saved model's config.json (format, version, estimator, fields)."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model folder {path} does not exist; train one with `vaekit train --out {path}`")
    if not path.is_dir():
        raise ModelFileError(f"{path} is a file; a vaekit model is a folder holding {CONFIG_FILE} and {WEIGHTS_FILE}")
    cfg = read_json(path / CONFIG_FILE)
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise ModelFileError(f"{path / CONFIG_FILE} is not a vaekit model config (no \"format\": \"{FORMAT}\")")
    if cfg.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(f"{path} was saved by a newer vaekit (format {cfg['format_version']}); upgrade vaekit")
    for key in ("estimator", "params", "model", "input_shape", "part"):
        if key not in cfg:
            raise ModelFileError(f"{path / CONFIG_FILE} lacks the field {key!r}; the file is damaged or hand-edited")
    from .estimators import ESTIMATORS

    if cfg["estimator"] not in ESTIMATORS:
        raise ModelFileError(f"unknown estimator {cfg['estimator']!r} in {path / CONFIG_FILE}; expected one of {', '.join(ESTIMATORS)}")
    return cfg


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = path / WEIGHTS_FILE
    if not file.exists():
        raise ModelFileError(f"{file} not found; the model folder is incomplete (was training interrupted?)")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(
            f"{file} is not a readable safetensors file ({e}); vaekit never loads pickles, so re-save the model with vaekit"
        ) from None


def load(path: str | Path, device: str = "cpu"):
    """Load a saved model folder: an estimator (``part='all'``) or an :class:`Encoder` / :class:`Decoder`."""
    from .estimators import ESTIMATORS
    from .models import ModelConfig, build_model
    from .train import resolve_device

    path = Path(path)
    cfg = read_config(path)
    params = dict(cfg["params"])
    est = ESTIMATORS[cfg["estimator"]]()
    known = est.get_params()
    # JSON has no tuples: give list-valued parameters (hidden sizes) back their constructor type.
    est.set_params(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items() if k in known})
    try:
        model_config = ModelConfig.from_dict({**cfg["model"], "input_shape": tuple(cfg["model"]["input_shape"])})
    except (TypeError, ValueError, AttributeError) as e:  # ConfigError is a ValueError
        raise ModelFileError(f"{path / CONFIG_FILE} has an invalid model section: {e}") from None
    model = build_model(model_config)
    state = _read_weights(path)
    scaler = (state.pop("scaler.mean", None), state.pop("scaler.scale", None))
    part = cfg["part"]
    expected = model.state_dict()
    if part != "all":
        expected = {k: v for k, v in expected.items() if k.startswith(PART_PREFIXES[part])}
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
        self.latent_dim = est.model_.config.latent_dim

    def encode(self, X, y=None) -> np.ndarray:
        return self._est.encode(X, y)

    transform = encode


class Decoder:
    """The decoder half of a saved model: ``decode(Z)`` and (for a VAE) ``sample(n)``."""

    def __init__(self, est):
        self._est = est
        self.latent_dim = est.model_.config.latent_dim

    def decode(self, Z, y=None) -> np.ndarray:
        return self._est.decode(Z, y)

    def sample(self, n: int = 16, label: int | None = None, seed: int | None = None) -> np.ndarray:
        if not hasattr(self._est, "sample"):
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
