"""The model file format: a folder with config.json (what to build) and model.safetensors (weights).

Nothing is ever unpickled. Every file is written to a temporary name in the same folder and renamed
into place (vaekit.fileio), so a crash never leaves a half-written model behind. This module knows
the format (names, version, checks); which estimator class a config names is estimators' business.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import ModelFileError
from .fileio import atomic_path, read_json, write_json

FORMAT = "vaekit-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PART_PREFIXES = {"encoder": ("encoder.",), "decoder": ("decoder.", "likelihood.")}


def write_model(path: str | Path, config: dict, state: dict[str, torch.Tensor]) -> Path:
    """Write ``state`` (CPU tensors) as model.safetensors and ``config`` as config.json into ``path``.

    ``config`` gets the format's name and version; returns the folder.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT})
    write_json(path / CONFIG_FILE, {"format": FORMAT, "format_version": FORMAT_VERSION, **config})
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
    return cfg


def read_weights(path: Path) -> dict[str, torch.Tensor]:
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
