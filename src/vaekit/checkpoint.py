"""Training checkpoints that survive a crash at any moment.

One checkpoint is one safetensors file: the model's and the optimizer's tensors, the random-number
generator states and the running sums of the current epoch as tensors, and everything else
(epoch, step, history, optimizer hyper-parameters, the command that started the run) as JSON in
the file's metadata. Keeping it in one file makes the atomic write (temporary file in the same
folder, fsync, rename) cover all of it: a reader sees either the previous checkpoint or the new
one, never a mix. Nothing is pickled.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from .atomicfiles import atomic_path
from .errors import ModelFileError
from .modelfile import FORMAT_VERSION, check_finite_tensors, save_tensors, upgrade_state

CHECKPOINT_FILE = "checkpoint.safetensors"


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for pid, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for key, value in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


class Checkpointer:
    """Writes a checkpoint into ``folder`` every ``every_steps`` steps and/or ``every_minutes``.

    ``extra`` is JSON saved alongside (the CLI stores the command line there so that
    ``vaekit train --resume`` can rebuild the same run).
    """

    def __init__(self, folder: str | Path, every_steps: int = 0, every_minutes: float = 0.0, extra: dict | None = None):
        self.path = Path(folder) / CHECKPOINT_FILE
        self.every_steps = int(every_steps)
        self.every_seconds = float(every_minutes) * 60.0
        self.extra = extra or {}
        self._last = time.monotonic()

    def due(self, global_step: int) -> bool:
        if self.every_steps and global_step % self.every_steps == 0:
            return True
        return bool(self.every_seconds) and time.monotonic() - self._last >= self.every_seconds

    def save(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, epoch: int, step: int,
             history: list[dict], sums: dict[str, torch.Tensor], early_stopping=None) -> None:
        """Write the checkpoint atomically. ``early_stopping``: a vaekit.train.EarlyStopping whose
        patience count and best weights a resumed run continues from."""
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
        tensors.update(opt_tensors)
        tensors["rng.cpu"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda{i}"] = s
        for name, value in sums.items():
            tensors[f"sums.{name}"] = torch.as_tensor(value).detach().cpu().reshape(())
        meta = {"format_version": FORMAT_VERSION, "epoch": epoch, "step": step, "history": history,
                "optimizer": opt_meta, "extra": self.extra}
        if early_stopping is not None:
            meta["early_stopping"], best = early_stopping.state()
            tensors.update({f"best.{k}": v for k, v in best.items()})
        with atomic_path(self.path) as tmp:
            save_tensors(tmp, tensors, {"vaekit": json.dumps(meta)})
        self._last = time.monotonic()


def read_checkpoint(path: str | Path) -> dict:
    """The contents of a checkpoint file: model, optimizer and RNG state plus its JSON metadata."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.exists():
        raise ModelFileError(f"no checkpoint at {path}; the run never reached its first checkpoint, start it again without --resume")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("vaekit", "null"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path} is not a readable vaekit checkpoint ({e}); vaekit never loads pickles") from None
    except RecursionError:  # metadata nested deeper than any vaekit writes
        raise ModelFileError(f"{path} has metadata nested too deeply to be a vaekit checkpoint") from None
    if not isinstance(meta, dict) or "epoch" not in meta:
        raise ModelFileError(f"{path} lacks vaekit checkpoint metadata; it was not written by vaekit")
    _check_meta(meta, path)
    _check_tensors(tensors, path)
    # Weights, optimizer moments and best weights holding NaN/Inf would resume a diverged run silently.
    check_finite_tensors({k: v for k, v in tensors.items() if not k.startswith("rng.")}, path)
    # Checkpoints of vaekit 0.1.0 carry no version: format 1, whose prior weights had other names.
    model = upgrade_state({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}, meta.get("format_version", 1))
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    sums = {k[len("sums."):]: v for k, v in tensors.items() if k.startswith("sums.")}
    rng = {k[len("rng."):]: v for k, v in tensors.items() if k.startswith("rng.")}
    extra = {}
    if "early_stopping" in meta:
        best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
        extra["early_stopping"] = (meta["early_stopping"], best)
    try:
        optimizer = _unflatten_optimizer(optim, meta["optimizer"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise _damaged(path, "its optimizer state is malformed") from None
    return {
        **extra,
        "model": model,
        "optimizer": optimizer,
        "rng": rng,
        "sums": sums,
        "epoch": meta["epoch"],
        "step": meta["step"],
        "history": meta["history"],
        "extra": meta.get("extra", {}),
    }


# -- a checkpoint is data: every field is checked before a run is rebuilt from it ----------------

_MAX_EPOCHS = 10**9


def _damaged(path: Path, what: str) -> ModelFileError:
    return ModelFileError(f"{path}: {what}; the checkpoint is damaged or was not written by vaekit, "
                          "start the run again without --resume")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_meta(meta: dict, path: Path) -> None:
    """The JSON half: counters in range, one history row of numbers per finished epoch, the
    optimizer's and early stopping's fields of the right types, a recorded command of strings."""
    epoch, step, history = meta["epoch"], meta.get("step"), meta.get("history")
    if not _is_int(epoch) or not 1 <= epoch <= _MAX_EPOCHS:
        raise _damaged(path, f"its epoch {epoch!r} is not a whole number from 1 to {_MAX_EPOCHS}")
    if not _is_int(step) or not 0 <= step <= _MAX_EPOCHS:
        raise _damaged(path, f"its step {step!r} is not a whole number of at least 0")
    if not isinstance(history, list) or len(history) != epoch - 1:
        raise _damaged(path, f"its history does not hold one row for each of the {epoch - 1} finished epochs")
    for row in history:
        if not isinstance(row, dict) or not all(isinstance(k, str) and (v is None or _is_number(v)) for k, v in row.items()) \
                or not _is_number(row.get("seconds")) or row["seconds"] < 0:
            raise _damaged(path, "a row of its history is not a set of finite numbers with the epoch's seconds")
    opt = meta.get("optimizer")
    if not isinstance(opt, dict) or not isinstance(opt.get("param_groups"), list) or not isinstance(opt.get("scalars"), dict):
        raise _damaged(path, "its optimizer state is malformed")
    if not all(isinstance(g, dict) for g in opt["param_groups"]):
        raise _damaged(path, "its optimizer state is malformed")
    extra = meta.get("extra", {})
    if not isinstance(extra, dict):
        raise _damaged(path, "its recorded options are malformed")
    argv = extra.get("argv")
    if argv is not None and (not isinstance(argv, list) or not all(isinstance(a, str) for a in argv)):
        raise _damaged(path, "its recorded command is not a list of strings")
    if "early_stopping" in meta:
        es = meta["early_stopping"]
        if not isinstance(es, dict) or not (es.get("best_loss") is None or _is_number(es["best_loss"])) \
                or not _is_int(es.get("bad_epochs", 0)) or es.get("bad_epochs", 0) < 0:
            raise _damaged(path, "its early-stopping state is malformed")


def _check_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """The tensor half: random-number states the generators accept, one finite number per running sum."""
    expected = torch.get_rng_state()
    cpu = tensors.get("rng.cpu")
    if cpu is None or cpu.dtype != torch.uint8 or cpu.shape != expected.shape:
        raise _damaged(path, f"its CPU random state is not {expected.numel()} bytes")
    for name, t in tensors.items():
        if name.startswith("rng.cuda") and t.dtype != torch.uint8:
            raise _damaged(path, f"its random state {name} is not bytes")
        if name.startswith("sums.") and (t.numel() != 1 or not t.is_floating_point() or not torch.isfinite(t).all()):
            raise _damaged(path, f"its running sum {name[5:]} is not one finite number")
