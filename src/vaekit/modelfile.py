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
from .models import FLAT_PARAMS, config_from_params

FORMAT = "vaekit-model"
FORMAT_VERSION = 2
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# Which weights a part='encoder' / 'decoder' folder holds. The prior module goes with both halves:
# a two-layer model's code needs q(z2|z1), and sampling needs p(z1|z2).
PART_PREFIXES = {"encoder": ("encoder.", "latent_prior."), "decoder": ("decoder.", "likelihood.", "latent_prior.")}
# Format 1 (vaekit 0.1.0) kept the prior's weights at the top level and out of the parts.
V1_PART_PREFIXES = {"encoder": ("encoder.",), "decoder": ("decoder.", "likelihood.")}
V1_RENAMED = {"pseudo_inputs": "latent_prior.pseudo_inputs", "encoder_top.": "latent_prior.encoder_top.",
              "decoder_top.": "latent_prior.decoder_top."}


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
    if cfg.get("format_version", 1) < FORMAT_VERSION:
        cfg = upgrade_config(cfg, path / CONFIG_FILE)
    return cfg


def upgrade_config(cfg: dict, where: Path | str = CONFIG_FILE) -> dict:
    """A format-1 config (vaekit 0.1.0) in the current format; ``upgraded_from`` records the old version.

    Format 1 saved the model as 25 flat fields for both kinds; they go through the same
    translation as an estimator's parameters (:func:`vaekit.models.config_from_params`), so a
    0.1.0 folder builds exactly the modules it was trained with.
    """
    model = dict(cfg["model"])
    try:
        kind, shape, n_classes = model.pop("kind", "vae"), tuple(model.pop("input_shape")), model.pop("n_classes", 0)
        # Format 1 wrote every field for both kinds; those of the other kind were unused defaults.
        upgraded = config_from_params(kind, shape, n_classes, **{k: v for k, v in model.items() if k in FLAT_PARAMS[kind]}).to_dict()
        upgraded.pop("label_scale")  # format 1 fed a bare one-hot: config_from_dict reads its absence as 1.0
        upgraded["conv_depth"] = 2  # 0.1.0's conv nets pooled twice whatever the image size
    except (KeyError, TypeError, ValueError) as e:  # ConfigError is a ValueError
        raise ModelFileError(f"{where} has an invalid format-1 model section: {e}") from None
    return {**cfg, "format_version": FORMAT_VERSION, "upgraded_from": cfg.get("format_version", 1), "model": upgraded}


def upgrade_state(state: dict[str, torch.Tensor], version: int) -> dict[str, torch.Tensor]:
    """Weights saved in format ``version`` under the current names (format 1: the prior moved into a module)."""
    if version >= FORMAT_VERSION:
        return state
    out = {}
    for k, v in state.items():
        for old, new in V1_RENAMED.items():
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    return out


def part_prefixes(part: str, version: int = FORMAT_VERSION) -> tuple[str, ...]:
    """The weight-name prefixes a part='encoder' or 'decoder' folder of format ``version`` holds."""
    return (V1_PART_PREFIXES if version < 2 else PART_PREFIXES)[part]


def read_weights(path: Path, version: int = FORMAT_VERSION) -> dict[str, torch.Tensor]:
    """The tensors of ``path``/model.safetensors, under current names (saved in format ``version``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = path / WEIGHTS_FILE
    if not file.exists():
        raise ModelFileError(f"{file} not found; the model folder is incomplete (was training interrupted?)")
    try:
        return upgrade_state(load_file(str(file)), version)
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(
            f"{file} is not a readable safetensors file ({e}); vaekit never loads pickles, so re-save the model with vaekit"
        ) from None
