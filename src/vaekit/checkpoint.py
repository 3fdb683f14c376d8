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
import time
from pathlib import Path

import torch

from .errors import ModelFileError
from .fileio import atomic_path
from .modelfile import FORMAT_VERSION, upgrade_state

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
        from safetensors.torch import save_file

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
            save_file(tensors, str(tmp), metadata={"vaekit": json.dumps(meta)})
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
    if not isinstance(meta, dict) or "epoch" not in meta:
        raise ModelFileError(f"{path} lacks vaekit checkpoint metadata; it was not written by vaekit")
    # Checkpoints of vaekit 0.1.0 carry no version: format 1, whose prior weights had other names.
    model = upgrade_state({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}, meta.get("format_version", 1))
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    sums = {k[len("sums."):]: v for k, v in tensors.items() if k.startswith("sums.")}
    rng = {k[len("rng."):]: v for k, v in tensors.items() if k.startswith("rng.")}
    extra = {}
    if "early_stopping" in meta:
        best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
        extra["early_stopping"] = (meta["early_stopping"], best)
    return {
        **extra,
        "model": model,
        "optimizer": _unflatten_optimizer(optim, meta["optimizer"]),
        "rng": rng,
        "sums": sums,
        "epoch": meta["epoch"],
        "step": meta["step"],
        "history": meta["history"],
        "extra": meta.get("extra", {}),
    }
