"""Pretrained models that ship inside the package: small VAEs to sample from and explore at once.

    >>> import vaekit
    >>> vae = vaekit.load_pretrained("mnist-cvae")
    >>> sevens = vae.sample(16, label=7)

Each model is a folder beside this file in the ordinary model format (config.json and
model.safetensors, weights in float16 to keep the package small; :func:`vaekit.load` upcasts them to
float32) with a CARD.md: the command that trained it, its test metrics and the machine that measured
them, the data and its licence, and what the model is good for. ``scripts/make_pretrained.py``
trains, measures and writes all three.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from ..errors import ConfigError

__all__ = ["NAMES", "default_dataset", "describe", "load_pretrained", "pretrained_path", "summary"]

HERE = Path(__file__).resolve().parent
CARD_FILE = "CARD.md"
# name -> the data its commands (explore, reconstruct, encode, plot, evaluate) read when no
# --dataset is given: the MNIST models' digits ship with vaekit (the embedded sample, whose test
# split is 1000 MNIST test digits); Frey Face does not, so it reads the recorded dataset (frey-face,
# from --data-dir, the cache or a download).
DEFAULT_DATA: dict[str, str | None] = {"mnist-2d": "embedded", "mnist-cvae": "embedded", "frey-2d": None}
NAMES: tuple[str, ...] = tuple(DEFAULT_DATA)


def pretrained_path(name: str) -> Path:
    """The folder of the pretrained model ``name``; a ConfigError naming the models when there is none."""
    if name not in DEFAULT_DATA:
        near = difflib.get_close_matches(str(name), NAMES, n=1, cutoff=0.5)
        hint = f"; did you mean {near[0]}?" if near else ""
        raise ConfigError(f"no pretrained model named {name!r}; the pretrained models are {', '.join(NAMES)}{hint}")
    return HERE / name


def load_pretrained(name: str, device: str = "cpu"):
    """The pretrained estimator ``name`` (one of :data:`NAMES`), loaded as :func:`vaekit.load` loads a run.

    The weights are stored in float16 and upcast to float32; the folder is checked like any model
    file (sizes against the weights' header, no NaN or Inf).
    """
    from ..runfolder import load

    return load(pretrained_path(name), device)


def default_dataset(name: str) -> str | None:
    """The data the commands read for ``name`` when none is given (None: the dataset it was trained on)."""
    pretrained_path(name)
    return DEFAULT_DATA[name]


def summary(name: str) -> str:
    """The one-line summary of ``name``: the first line of its card's text (after the title)."""
    card = pretrained_path(name) / CARD_FILE
    try:
        lines = card.read_text(encoding="utf-8").splitlines()
    except OSError:
        return "(no CARD.md: the package is incomplete)"
    return next((line.strip() for line in lines if line.strip() and not line.startswith("#")), "")


def describe() -> str:
    """One line per pretrained model: its name and its card's summary, then how to use one."""
    width = max(map(len, NAMES))
    rows = [f"{name:<{width}}  {summary(name)}" for name in NAMES]
    rows.append("use one with --pretrained NAME (vaekit sample, explore, reconstruct, encode, plot, evaluate) "
                "or vaekit.load_pretrained(NAME); its card: " + str(HERE / "NAME" / CARD_FILE))
    return "\n".join(rows)
