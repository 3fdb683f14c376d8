"""The model file format: a folder with config.json (what to build) and model.safetensors (weights).

Nothing is ever unpickled. Every file is written to a temporary name in the same folder and renamed
into place (vaekit.atomicfiles), so a crash never leaves a half-written model behind. This module knows
the format (names, version, checks, the one writer, format 1's upgrade); building a model from it
is vaekit.runfolder's, and which estimator class a config names is estimators' business.

torch is imported only by the functions that touch tensors, so that reading a config.json (the
checks included) costs a quick command no torch import.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from .atomicfiles import atomic_path, json_text, read_json
from .errors import ModelFileError

if TYPE_CHECKING:
    import torch

FORMAT = "vaekit-model"
FORMAT_VERSION = 3
# Format 2 renamed the prior's weights (V1_RENAMED); format 3 changed only the config's JSON (one
# discriminator key, "name", for every component). Weights of format >= 2 are read as they are.
WEIGHTS_VERSION = 2
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# Which weights a part='encoder' / 'decoder' folder holds. The prior module goes with both halves:
# a two-layer model's code needs q(z2|z1), and sampling needs p(z1|z2). A flow posterior's weights go with the encoder.
# A VQ-VAE's codebook belongs to both halves (the encoder quantizes with it, the decoder reads its entries),
# its prior over the index grid to the decoder (what draws new images).
PART_PREFIXES = {"encoder": ("encoder.", "latent_prior.", "posterior_flow.", "codebook."),
                 "decoder": ("decoder.", "likelihood.", "latent_prior.", "codebook.", "code_prior.")}
# Format 1 (vaekit 0.1.0) kept the prior's weights at the top level and out of the parts.
V1_PART_PREFIXES = {"encoder": ("encoder.",), "decoder": ("decoder.", "likelihood.")}
V1_RENAMED = {"pseudo_inputs": "latent_prior.pseudo_inputs", "encoder_top.": "latent_prior.encoder_top.",
              "decoder_top.": "latent_prior.decoder_top."}
PARTS = ("all", "encoder", "decoder")
# No size of a vaekit model (an input dimension, a layer width, a code length, a class count) comes
# near this; a config that claims more is damaged or hostile, and is refused before anything is built.
MAX_SIZE = 1 << 20
MAX_INPUT_DIMS = 4
# The fields of a model section by the type of value they hold (JSON has no tuples: sizes are lists).
_SIZE_FIELDS = {"latent_dim", "ar_hidden", "n_pseudo_inputs", "made_hidden"}
_COUNT_FIELDS = {"n_classes", "steps"}  # may be 0
_SIZE_LIST_FIELDS = {"input_shape", "hidden"}
_REAL_FIELDS = {"label_scale", "sigma", "df", "weight", "target", "level"}
_BOOL_FIELDS = {"learn_sigma"}
_TEXT_FIELDS = {"kind", "activation", "architecture", "conv_net", "name", "family"}
_SECTION_FIELDS = {"likelihood", "posterior", "prior", "sparsity", "noise"}
_MAX_DEPTH = 32  # a vaekit config nests a few levels; far deeper is not one of ours


# -- writing -----------------------------------------------------------------------------------


def write_model(path: str | Path, config: dict, state: dict[str, torch.Tensor]) -> Path:
    """Write ``state`` (CPU tensors) as model.safetensors and ``config`` as config.json into ``path``.

    ``config`` gets the format's name and version; returns the folder. Both files are complete on
    disk before either replaces its old version, the weights first: a failure while writing leaves
    the old pair, and the config (which says what the weights are) is always the last file to change.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path / CONFIG_FILE) as config_tmp, atomic_path(path / WEIGHTS_FILE) as weights_tmp:
        save_tensors(weights_tmp, state, {"format": FORMAT})
        config_tmp.write_text(json_text({"format": FORMAT, "format_version": FORMAT_VERSION, **config}))
    return path


def save_tensors(file: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write ``tensors`` (CPU, contiguous) and string ``metadata`` as one safetensors file at ``file``.

    The one safetensors writer (model folders and checkpoints); callers make it atomic with
    :func:`vaekit.atomicfiles.atomic_path`.
    """
    from safetensors.torch import save_file

    save_file(tensors, str(file), metadata=metadata)


# -- reading config.json: checked as data, older formats upgraded -----------------------------


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
    _check_version(cfg.get("format_version", 1), path / CONFIG_FILE)
    for key in ("estimator", "params", "model", "input_shape", "part"):
        if key not in cfg:
            raise ModelFileError(f"{path / CONFIG_FILE} lacks the field {key!r}; the file is damaged or hand-edited")
    check_config_values(cfg, path / CONFIG_FILE)
    if cfg.get("format_version", 1) < FORMAT_VERSION:
        cfg = upgrade_config(cfg, path / CONFIG_FILE) if cfg.get("format_version", 1) < 2 else upgrade_names(cfg)
        check_model_section(cfg["model"], path / CONFIG_FILE)
    return cfg


def check_config_values(cfg: dict, where: Path | str) -> None:
    """The types and ranges of a config.json's values, checked as data before anything is built.

    The one place that does it, so that a hand-edited or hostile file (``latent_dim`` 2.5, ``true``
    where a size belongs, 1e400, a width of 10**9) is one ModelFileError rather than a traceback or
    gigabytes allocated from a few bytes of JSON.
    """
    version = _check_version(cfg.get("format_version", 1), where)
    if not isinstance(cfg["estimator"], str):
        raise ModelFileError(f"{where}: estimator must be a class name, got {cfg['estimator']!r}")
    if cfg["part"] not in PARTS:
        raise ModelFileError(f"{where}: part must be one of {', '.join(PARTS)}, got {cfg['part']!r}")
    if not isinstance(cfg["params"], dict):
        raise ModelFileError(f"{where}: params must be a JSON object, got {type(cfg['params']).__name__}")
    _check_finite_json(cfg, where)
    _check_sizes("input_shape", cfg["input_shape"], where, max_len=MAX_INPUT_DIMS)
    if cfg.get("n_classes") is not None:
        _check_value("n_classes", cfg["n_classes"], where)
    if not isinstance(cfg["model"], dict):
        raise ModelFileError(f"{where}: the model section must be a JSON object, got {type(cfg['model']).__name__}")
    if version >= 2:  # format 1's flat section is checked after its translation
        check_model_section(cfg["model"], where)


def _check_version(version, where) -> int:
    if not _is_int(version) or version < 1:
        raise ModelFileError(f"{where}: format_version must be a positive whole number, got {_short(version)}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{where} was saved by a newer vaekit (format {version}); upgrade vaekit")
    return version


def check_model_section(model: dict, where: Path | str) -> None:
    """Each known field of a (current-format) model section has the type and range it needs."""
    where = f"{where} has an invalid model section"
    for key, value in model.items():
        if key in _SECTION_FIELDS and isinstance(value, dict):
            for option, v in value.items():
                _check_value(f"{key}.{option}", v, where, field=option)
        elif key in _SECTION_FIELDS and value is not None and not isinstance(value, str):
            raise ModelFileError(f"{where}: model field {key!r} must be a name or a JSON object, got {value!r}")
        else:
            _check_value(key, value, where)


def _check_value(name: str, value, where, field: str | None = None) -> None:
    field = field or name
    if field in _SIZE_LIST_FIELDS:
        _check_sizes(name, value, where, max_len=MAX_INPUT_DIMS if field == "input_shape" else 64)
    elif field in _SIZE_FIELDS or field in _COUNT_FIELDS:
        low = 0 if field in _COUNT_FIELDS else 1
        if not _is_int(value) or not low <= value <= MAX_SIZE:
            raise ModelFileError(f"{where}: {name} must be a whole number from {low} to {MAX_SIZE}, got {value!r}")
    elif field in _REAL_FIELDS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ModelFileError(f"{where}: {name} must be a finite number, got {value!r}")
    elif field in _BOOL_FIELDS and not isinstance(value, bool):
        raise ModelFileError(f"{where}: {name} must be true or false, got {value!r}")
    elif field in _TEXT_FIELDS and not isinstance(value, str):
        raise ModelFileError(f"{where}: {name} must be a name (a string), got {value!r}")
    elif field == "conv_depth" and not _is_int(value):
        raise ModelFileError(f"{where}: conv_depth must be a whole number, got {value!r}")


def _check_sizes(name: str, value, where, max_len: int) -> None:
    if (not isinstance(value, (list, tuple)) or not 1 <= len(value) <= max_len
            or not all(_is_int(v) and 1 <= v <= MAX_SIZE for v in value)):
        raise ModelFileError(f"{where}: {name} must be a list of 1 to {max_len} whole numbers from 1 to {MAX_SIZE}, got {_short(value)}")


def _check_finite_json(value, where, depth: int = 0) -> None:
    """No Infinity or NaN anywhere (JSON reads 1e400 as inf; Python's json accepts NaN)."""
    if depth > _MAX_DEPTH:
        raise ModelFileError(f"{where} is nested more than {_MAX_DEPTH} levels deep; the file is damaged or hand-edited")
    if isinstance(value, float) and not math.isfinite(value):
        raise ModelFileError(f"{where} holds the non-finite number {value!r}; the file is damaged or hand-edited")
    if isinstance(value, dict):
        value = value.values()
    if isinstance(value, (list, type({}.values()))):
        for v in value:
            _check_finite_json(v, where, depth + 1)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def upgrade_config(cfg: dict, where: Path | str = CONFIG_FILE) -> dict:
    """A format-1 config (vaekit 0.1.0) in the current format; ``upgraded_from`` records the old version.

    Format 1 saved the model as 25 flat fields for both kinds; they go through the same
    translation as an estimator's parameters (:func:`vaekit.models.config_from_params`), so a
    0.1.0 folder builds exactly the modules it was trained with.
    """
    from .models import FLAT_PARAMS, config_from_params

    model = dict(cfg["model"])
    try:
        kind, shape, n_classes = model.pop("kind", "vae"), tuple(model.pop("input_shape")), model.pop("n_classes", 0)  # format 1's keys
        # Format 1 wrote every field for both kinds; those of the other kind were unused defaults.
        upgraded = config_from_params(kind, shape, n_classes, **{k: v for k, v in model.items() if k in FLAT_PARAMS[kind]}).to_dict()
        upgraded.pop("label_scale")  # format 1 fed a bare one-hot: config_from_dict reads its absence as 1.0
        upgraded["conv_depth"] = 2  # 0.1.0's conv nets pooled twice whatever the image size
    except (KeyError, TypeError, ValueError) as e:  # ConfigError is a ValueError
        raise ModelFileError(f"{where} has an invalid format-1 model section: {e}") from None
    return {**cfg, "format_version": FORMAT_VERSION, "upgraded_from": cfg.get("format_version", 1), "model": upgraded}


# Format 2 named each component by its own key: the model's family by "kind", the posterior by
# "family", the prior, sparsity and noise by "kind", the likelihood by "name".
_FORMAT2_KEYS = {"posterior": "family", "prior": "kind", "sparsity": "kind", "noise": "kind"}


def upgrade_names(cfg: dict) -> dict:
    """A format-2 config with format 3's one discriminator key, ``"name"``, in every component."""
    model = dict(cfg["model"])
    if "kind" in model:
        model["name"] = model.pop("kind")
    for section, key in _FORMAT2_KEYS.items():
        if isinstance(model.get(section), dict) and key in model[section]:
            spec = dict(model[section])
            model[section] = {"name": spec.pop(key), **spec}
    return {**cfg, "format_version": FORMAT_VERSION, "upgraded_from": cfg.get("format_version", 2), "model": model}


# -- reading model.safetensors: the header alone, or the checked tensors -------------------------


def upgrade_state(state: dict[str, torch.Tensor], version: int) -> dict[str, torch.Tensor]:
    """Weights saved in format ``version`` under the current names (format 1: the prior moved into a module)."""
    if version >= WEIGHTS_VERSION:
        return state
    out = {}
    for k, v in state.items():
        for old, new in V1_RENAMED.items():
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    return out


def part_prefixes(part: str, version: int = FORMAT_VERSION, with_encoder: bool = False) -> tuple[str, ...]:
    """The weight-name prefixes a part='encoder' or 'decoder' folder of format ``version`` holds;
    ``with_encoder``: a decoder whose prior runs the encoder (the VampPrior) keeps the encoder too."""
    prefixes = (V1_PART_PREFIXES if version < 2 else PART_PREFIXES)[part]
    return prefixes + ("encoder.",) if with_encoder and part == "decoder" else prefixes


def read_shapes(path: Path, version: int = FORMAT_VERSION) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape in ``path``/model.safetensors, under current names, from the header alone.

    Nothing but the header (bounded by safetensors) is read, so a model can be checked against
    its weights before a single parameter is allocated.
    """
    from safetensors import SafetensorError, safe_open

    file = _weights_file(path)
    try:
        with safe_open(str(file), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _unreadable(file, e) from None
    return upgrade_state(shapes, version)


def read_weights(path: Path, version: int = FORMAT_VERSION) -> dict[str, torch.Tensor]:
    """The tensors of ``path``/model.safetensors, under current names (saved in format ``version``).

    A tensor holding NaN or Inf is refused: such a model scores every row NaN, which downstream
    would read as "normal" (a detector that fails open).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = _weights_file(path)
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _unreadable(file, e) from None
    check_finite_tensors(state, file)
    return upgrade_state(state, version)


def check_finite_tensors(tensors: dict[str, torch.Tensor], file: Path | str) -> None:
    """A ModelFileError naming the first floating-point tensor that holds NaN or Inf."""
    import torch

    for name, t in tensors.items():
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            raise ModelFileError(
                f"{file}: tensor {name} holds NaN or Inf values; the training diverged or the file is damaged, "
                "retrain or restore the model"
            )


def _weights_file(path: Path) -> Path:
    file = Path(path) / WEIGHTS_FILE
    if not file.exists():
        raise ModelFileError(f"{file} not found; the model folder is incomplete (was training interrupted?)")
    return file


def _unreadable(file: Path, e: Exception) -> ModelFileError:
    return ModelFileError(
        f"{file} is not a readable safetensors file ({e}); vaekit never loads pickles, so re-save the model with vaekit"
    )
