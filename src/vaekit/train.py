"""The training loop: one loop for every model, driven by the ``loss`` contract of models.py.

Data lives on the device as one tensor; each epoch draws a permutation and slices batches from it,
so there is no per-example Python work and no DataLoader. Loss terms are accumulated as tensors and
read back once per epoch (plus a few times per epoch for the progress bar), because every ``.item()``
is a synchronization point.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .batches import StreamBatches
from .data.stream import is_streamed
from .errors import ConfigError, VaekitError
from .metrics import accumulate_terms, evaluate_loss, format_terms, iw_log_likelihood, kl_per_dimension
from .objectives import LossOutput
from .options import DENSITY, OPTIONS, as_sizes, check_params
from .registry import OBJECTIVES


class TrainingDiverged(VaekitError):
    """The loss became NaN or infinite."""


def _validate(self) -> None:
    """Check every field against its declaration in vaekit.options; raises a ConfigError."""
    check_params(dataclasses.asdict(self), DENSITY[0])  # a density family takes every training option
    resolve_device(self.device)


def _to_dict(self) -> dict:
    return dataclasses.asdict(self)


# The options of the optimization (every option declared with target "train"), saved in
# config.json beside the model's own. Generated from the declarations so that a new training
# option is one declaration plus its use in this module.
if TYPE_CHECKING:  # the class make_dataclass builds below, for type checkers and IDEs

    @dataclass
    class TrainConfig:
        """Options of the optimization: every option of vaekit.options with target 'train'."""

        # <generated signature TrainConfig: scripts/sync_signatures.py writes this block from vaekit.options.OPTIONS>
        beta: float = 1.0
        warmup_epochs: float = 0.0
        n_samples: int = 1
        objective: str = 'elbo'
        free_bits: float = 0.5
        tc_alpha: float = 1.0
        tc_beta: float = 6.0
        tc_gamma: float = 1.0
        tc_estimator: str = 'mws'
        factor_gamma: float = 35.0
        discriminator_hidden: int | tuple[int, ...] | list[int] | str = (256, 256, 256)
        discriminator_lr: float = 0.0001
        binarize: str = 'none'
        epochs: int = 10
        batch_size: int = 128
        optimizer: str = 'adam'
        lr: float = 0.001
        lr_schedule: str = 'constant'
        lr_final: float = 0.01
        momentum: float = 0.9
        weight_decay: float = 0.0
        clip_grad: float | None = None
        val_fraction: float = 0.1
        early_stopping: int = 0
        max_minutes: float = 0.0
        max_steps: int = 0
        log_every: int = 0
        val_nll_every: int = 0
        val_nll_k: int = 200
        val_nll_examples: int = 1000
        seed: int = 0
        device: str = 'auto'
        precision: str = 'float32'
        # </generated signature TrainConfig>

        def validate(self) -> None: ...

        def to_dict(self) -> dict: ...

else:
    TrainConfig = dataclasses.make_dataclass(
        "TrainConfig",
        # Defaults of the first density family (the VAE's): an estimator always passes its own.
        [(o.name, object, dataclasses.field(default=o.default_for(DENSITY[0]))) for o in OPTIONS if o.target == "train"],
        namespace={"validate": _validate, "to_dict": _to_dict, "__module__": __name__,
                   "__doc__": "Options of the optimization: every option of vaekit.options with target 'train'."},
    )


def objective_options(cfg: TrainConfig, beta: float) -> dict:
    """What a training step passes to ``model.loss``: the objective's name and the options its
    registration says it reads (vaekit.registry.OBJECTIVES), with beta as the warm-up has it now."""
    opts = {key: getattr(cfg, name) for key, name in OBJECTIVES[cfg.objective].options.items()}
    return {"objective": cfg.objective, **opts, "beta": beta}


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when available; asking for CUDA on a machine without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device='cuda' was asked for but no CUDA GPU is available; use device='cpu' or device='auto'")
    if name.split(":")[0] not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r}; choose cpu, cuda or auto")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX-512 BF16 or AMX tiles)."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    checks = [check for check in checks if check is not None]
    return not checks or any(check() for check in checks)  # a torch that cannot tell: assume it does, warn nobody


def warn_if_bf16_is_slow(cfg: TrainConfig, device: torch.device) -> None:
    """--precision bf16 pays on CPUs with native bfloat16 (1.5x the steps of the mnist-best model at
    batch 128 on a 2-core AVX-512 BF16 machine); elsewhere autocast emulates it and training is
    slower than float32."""
    if cfg.precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        warnings.warn("this CPU has no native bfloat16 (AVX-512 BF16 or AMX), so --precision bf16 trains slower than float32 "
                      "here; pass --precision float32 (precision='float32' in Python) for speed", RuntimeWarning, stacklevel=3)


def make_optimizer(params, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        # The fused kernel is several times faster than the default on CPU and GPU alike.
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def scheduled_lr(cfg: TrainConfig, epoch_progress: float, seconds: float, steps: int = 0) -> float:
    """The learning rate at a point of training under ``cfg.lr_schedule``.

    'cosine' anneals from lr to lr * lr_final along a half cosine (Loshchilov & Hutter 2017, one cycle).
    Progress is the larger of the share of epochs done and, with --max-minutes, the share of the
    time budget spent (with --max-steps, of the ``steps`` taken so far): a budgeted run (epochs set
    huge) anneals over its minutes or steps instead.
    """
    if cfg.lr_schedule == "constant":
        return cfg.lr
    t = epoch_progress / cfg.epochs
    if cfg.max_minutes:
        t = max(t, seconds / (cfg.max_minutes * 60))
    if cfg.max_steps:
        t = max(t, steps / cfg.max_steps)
    t = min(1.0, t)
    floor = cfg.lr * cfg.lr_final
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * t))


# Every epoch ends with a pass over the validation rows (loss, KL per dimension); a tenth of a
# 663 552-image training split (sprites) made that pass 4.5 minutes on 2 cores, longer than a
# 300-step run itself. 10 000 rows pin the validation loss to well under a nat.
MAX_VALIDATION = 10_000


def validation_size(n: int, fraction: float) -> int:
    """Rows held out for validation from n training rows: ``fraction`` of them, at most :data:`MAX_VALIDATION`."""
    return min(int(round(n * fraction)), MAX_VALIDATION)


def split_validation(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices of a seeded train / validation split of n examples (:func:`validation_size` held out)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
    n_val = validation_size(n, fraction)
    return perm[n_val:], perm[:n_val]


def _distributed() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless running under torch.distributed (torchrun)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _epoch_permutation(n: int, seed: int, epoch: int, device: torch.device) -> Tensor:
    # Seeded per epoch (not from the global stream) so that every rank of a distributed run draws
    # the same order, and a resumed run can recompute the order of the epoch it stopped in.
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen).to(device)


class EarlyStopping:
    """Patience on the validation loss, keeping the best weights (state saved in checkpoints).

    ``update`` is called once per epoch; it returns True when ``patience`` epochs in a row brought
    no improvement. A resumed run continues the count and keeps the best weights seen before.
    """

    def __init__(self, patience: int):
        self.patience = int(patience)
        self.best_loss = math.inf
        self.best_state: dict[str, Tensor] | None = None
        self.bad_epochs = 0

    def update(self, val_loss: float, model: nn.Module) -> bool:
        if val_loss < self.best_loss:
            self.best_loss, self.bad_epochs = val_loss, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def restore_best(self, model: nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)  # keep the best weights, not the last

    def state(self) -> tuple[dict, dict[str, Tensor]]:
        """(JSON metadata, tensors) for a checkpoint."""
        tensors = {} if self.best_state is None else {k: v.detach().cpu().contiguous() for k, v in self.best_state.items()}
        return {"best_loss": self.best_loss if math.isfinite(self.best_loss) else None, "bad_epochs": self.bad_epochs}, tensors

    def load_state(self, meta: dict, tensors: dict[str, Tensor]) -> None:
        self.best_loss = math.inf if meta.get("best_loss") is None else float(meta["best_loss"])
        self.bad_epochs = int(meta.get("bad_epochs", 0))
        self.best_state = dict(tensors) or None


@dataclass
class _Loop:
    """What every step of one training run needs (built once by fit)."""

    model: nn.Module
    step_model: nn.Module  # the model, or its DistributedDataParallel wrapper
    opt: torch.optim.Optimizer
    cfg: TrainConfig
    device: torch.device
    rank: int
    world: int
    X: Tensor
    y: Tensor | None
    steps_per_epoch: int
    n_seen: int  # examples per epoch over all ranks (DDP drops the last partial batch)
    checkpointer: object | None
    stopper: EarlyStopping | None
    progress: bool
    check_every: int  # steps between NaN checks (each one a host sync on a GPU)
    stream: StreamBatches | None = None  # set when X is a folder streamed from disk
    extra: dict = field(default_factory=dict)  # what the objective needs beside its options: dataset_size, discriminator
    on_step: Callable[[dict], None] | None = None  # takes the --log-every rows
    window: dict = field(default_factory=dict)  # the running sums of the terms since the last --log-every row
    window_n: int = 0
    stopped: str | None = None  # why training stopped inside an epoch (--max-steps, --max-minutes)


def place_data(X: Tensor, y: Tensor | None, X_val: Tensor | None, y_val: Tensor | None, cfg: TrainConfig,
               device: torch.device) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """The training and validation tensors on ``device``: split off validation, binarize if asked.

    Without ``X_val``, ``cfg.val_fraction`` of X is held out (seeded). A static binarization is
    one draw from the run's seed (every rank sees the same data); with a dynamic one the
    validation split is still drawn once, so validation numbers compare across epochs.
    A streamed X (:class:`~vaekit.data.stream.StreamedImages`) stays on disk; its validation
    split, which every epoch reads whole, is decoded into memory.
    """
    streamed = is_streamed(X)
    if streamed and cfg.binarize == "static":
        raise ConfigError("a static binarization draws the whole training set at once, which a folder streamed from disk "
                          "cannot be; use binarize='dynamic' or 'none'")
    if X_val is None and cfg.val_fraction > 0:
        tr, va = split_validation(len(X), cfg.val_fraction, cfg.seed)
        X, X_val = (X.subset(tr.numpy()), torch.from_numpy(X[va.numpy()])) if streamed else (X[tr], X[va])
        if y is not None:
            y, y_val = y[tr], y[va]
    X = X if streamed else X.to(device)
    y = None if y is None else y.to(device)
    if X_val is not None:
        X_val = X_val.to(device)
        y_val = None if y_val is None else y_val.to(device)
    if cfg.binarize == "static":
        gen = torch.Generator(device=X.device).manual_seed(cfg.seed)
        X = torch.bernoulli(X, generator=gen)
        if X_val is not None:
            X_val = torch.bernoulli(X_val, generator=gen)
    elif cfg.binarize == "dynamic" and X_val is not None:
        X_val = torch.bernoulli(X_val, generator=torch.Generator(device=X_val.device).manual_seed(cfg.seed + 2))
    return X, y, X_val, y_val


def restore(resume: dict, model: nn.Module, opt: torch.optim.Optimizer, stopper: EarlyStopping | None,
            device: torch.device) -> tuple[int, int, list[dict], dict[str, Tensor]]:
    """Load a checkpoint into the model, optimizer, random states and early stopping.

    Returns (epoch, step) to continue from, the history so far and the running sums of the
    unfinished epoch. A checkpoint whose tensors do not fit this model and optimizer (another
    run's, or an edited one) is a one-line ModelFileError, not a traceback.
    """
    from .errors import ModelFileError

    try:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        torch.set_rng_state(resume["rng"]["cpu"])
        cuda_states = [resume["rng"][f"cuda{i}"] for i in range(len(resume["rng"])) if f"cuda{i}" in resume["rng"]]
        if cuda_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])
        if stopper is not None and "early_stopping" in resume:
            stopper.load_state(*resume["early_stopping"])
            own, best = model.state_dict(), stopper.best_state
            if best is not None and (best.keys() != own.keys() or any(best[k].shape != own[k].shape for k in own)):
                raise ValueError("its best weights (early stopping) do not match the model")
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
        reason = " ".join(str(e).split())[:300]
        raise ModelFileError(f"the checkpoint does not fit this run's model and optimizer ({reason}); "
                             "start the run again without --resume") from None
    sums = {k: v.to(device) for k, v in resume["sums"].items()}
    return resume["epoch"], resume["step"], list(resume["history"]), sums


def _step_lr_and_beta(loop: _Loop, epoch: int, step: int, seconds: float) -> float:
    """Set this step's learning rate (schedule) on the optimizer; return this step's KL weight (warm-up)."""
    cfg = loop.cfg
    progress = epoch - 1 + step / loop.steps_per_epoch
    if cfg.lr_schedule != "constant":
        lr = scheduled_lr(cfg, progress, seconds, (epoch - 1) * loop.steps_per_epoch + step)
        for group in loop.opt.param_groups:
            group["lr"] = lr
    return cfg.beta * min(1.0, progress / cfg.warmup_epochs) if cfg.warmup_epochs > 0 else cfg.beta


def train_epoch(loop: _Loop, epoch: int, first_step: int, sums: dict[str, Tensor], trained_seconds: float,
                history: list[dict]) -> tuple[LossOutput | None, int]:
    """Run the steps ``first_step`` .. end of one epoch, or until --max-steps or --max-minutes stops
    it inside (``loop.stopped`` then says why); adds to ``sums`` in place. Returns the last
    LossOutput and the number of the epoch's steps done (``loop.steps_per_epoch`` when it ran whole)."""
    cfg, model = loop.cfg, loop.model
    model.train()
    t0 = time.perf_counter()
    perm = _epoch_permutation(len(loop.X), cfg.seed, epoch, loop.device)
    local = cfg.batch_size // loop.world

    def indices(step: int) -> Tensor:  # this rank's examples of the step's global batch
        idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        return idx[loop.rank * local : (loop.rank + 1) * local] if loop.world > 1 else idx

    decoded = None
    if loop.stream is not None:  # worker processes decode the epoch's batches ahead, in this order
        decoded = loop.stream.epoch([indices(s).cpu() for s in range(first_step, loop.steps_per_epoch)])
    bar = None
    if loop.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=loop.steps_per_epoch, initial=first_step, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, unit="batch")
    out, done = None, first_step
    for step in range(first_step, loop.steps_per_epoch):
        done = step + 1
        idx = indices(step)
        if decoded is None:
            xb = loop.X[idx]
        else:
            xb, kept = next(decoded)
            xb = xb.to(loop.device, non_blocking=True)
            if len(kept) < len(idx):  # an unreadable file was skipped: drop its label too
                idx = idx[kept.to(idx.device)]
                if not len(idx):
                    continue
        if cfg.binarize == "dynamic":
            xb = torch.bernoulli(xb)
        yb = None if loop.y is None else loop.y[idx]
        # Under DDP the clock part of the schedule moves once per epoch (trained_seconds is agreed
        # across ranks), so every rank applies the same learning rate.
        within = time.perf_counter() - t0 if loop.world == 1 else 0.0
        out = _train_step(loop, xb, yb, _step_lr_and_beta(loop, epoch, step, trained_seconds + within), epoch, step)
        accumulate_terms(sums, out, len(idx))
        if bar is not None:
            bar.update()
            if step % 25 == 0:  # one sync every 25 steps keeps the bar honest and cheap
                bar.set_postfix(loss=f"{out.loss.item():.2f}")
        global_step = (epoch - 1) * loop.steps_per_epoch + step + 1
        if loop.on_step is not None:
            _log_step(loop, out, len(idx), epoch, global_step)
        if loop.checkpointer is not None and loop.rank == 0:
            if step + 1 < loop.steps_per_epoch and loop.checkpointer.due(global_step):
                loop.checkpointer.save(model, loop.opt, epoch=epoch, step=step + 1, history=history, sums=sums,
                                       early_stopping=loop.stopper)
        if step + 1 < loop.steps_per_epoch and _stops_inside(loop, global_step, trained_seconds + time.perf_counter() - t0):
            break
    if bar is not None:
        bar.close()
    return out, done


def _train_step(loop: _Loop, xb: Tensor, yb: Tensor | None, beta: float, epoch: int, step: int) -> LossOutput:
    """One optimizer step on a batch; returns its LossOutput. A non-finite loss raises before the step is applied."""
    cfg = loop.cfg
    with torch.autocast(loop.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
        out = loop.step_model(xb, yb, **objective_options(cfg, beta), **loop.extra)
    loop.opt.zero_grad(set_to_none=True)
    out.loss.backward()
    if cfg.clip_grad:
        nn.utils.clip_grad_norm_(loop.model.parameters(), cfg.clip_grad)
    if step % loop.check_every == 0 and not torch.isfinite(out.loss):
        raise TrainingDiverged(
            f"the training loss became {out.loss.item()} at epoch {epoch}, step {step + 1}; this step was not applied. "
            "Lower --lr, add --clip-grad 5, or check the data for extreme values"
        )
    loop.opt.step()
    return out


def _log_step(loop: _Loop, out: LossOutput, n: int, epoch: int, global_step: int) -> None:
    """Add a step's terms to the --log-every window; every ``log_every`` steps, hand its means on as a row.

    The row: ``epoch`` (progress in epochs: 1.5 is half-way through the second), ``step`` (optimizer
    steps in all), ``lr`` and ``train_*``, the means per example over the window's steps (this
    process's batches under torchrun), in the units of the epoch rows.
    """
    accumulate_terms(loop.window, out, n)
    loop.window_n += n
    if global_step % loop.cfg.log_every:
        return
    progress = epoch - 1 + (global_step - (epoch - 1) * loop.steps_per_epoch) / loop.steps_per_epoch
    row = {"epoch": round(progress, 6), "step": global_step, "lr": loop.opt.param_groups[0]["lr"]}
    row.update({f"train_{k}": v.item() / loop.window_n for k, v in loop.window.items()})
    loop.window, loop.window_n = {}, 0
    if loop.on_step is not None:
        loop.on_step(row)


def _stops_inside(loop: _Loop, global_step: int, seconds: float) -> bool:
    """Whether --max-steps or --max-minutes ends training after this step (``loop.stopped`` says which).

    Under torchrun the clock is checked at epoch ends only, where the ranks agree on it."""
    cfg = loop.cfg
    if cfg.max_steps and global_step >= cfg.max_steps:
        loop.stopped = f"--max-steps {cfg.max_steps} reached"
    elif cfg.max_minutes and loop.world == 1 and seconds >= cfg.max_minutes * 60:
        loop.stopped = f"the --max-minutes budget of {cfg.max_minutes:g} min is spent"
    return loop.stopped is not None


def epoch_row(loop: _Loop, epoch: int, seconds: float, sums: dict[str, Tensor], n_seen: int,
              X_val: Tensor | None, y_val: Tensor | None) -> dict:
    """The epoch's metrics row: epoch, seconds, train_* and val_* means per example (and val_iw_nll when due).

    A VAE with the N(0, I) prior also gets ``val_kl_dim_j``: KL(q(z_j|x) || N(0, 1)) on the
    validation split, nats per example, one column per latent dimension.
    """
    cfg, model = loop.cfg, loop.model
    if loop.world > 1:
        import torch.distributed as dist

        for v in sums.values():
            dist.all_reduce(v)
    train_terms = {k: v.item() / n_seen for k, v in sums.items()}
    if not math.isfinite(train_terms["loss"]):
        raise TrainingDiverged(
            f"the training loss became {train_terms['loss']} in epoch {epoch}; "
            "lower --lr, add --clip-grad 5, or check the data for extreme values"
        )
    # The learning rate the epoch ended with (it moves under --lr-schedule cosine).
    row = {"epoch": epoch, "seconds": round(seconds, 3), "lr": loop.opt.param_groups[0]["lr"]}
    row.update({f"train_{k}": v for k, v in train_terms.items()})
    if X_val is not None and len(X_val):
        row.update({f"val_{k}": v for k, v in evaluate_loss(model, X_val, y_val, beta=cfg.beta).items()})
        cfg_m = model.config
        if model.family.has_density and cfg_m.prior_component.standard_normal and cfg_m.posterior_component.location_scale:
            # Which latent units carry information, and from when (one at 0 has collapsed to the prior):
            # one encoder pass; against N(0, I) the per-dimension KLs add up to val_kl. A flow's
            # dimensions are dependent: it has no per-dimension KL (the report says so).
            row.update({f"val_kl_dim_{j}": float(v) for j, v in enumerate(kl_per_dimension(model, X_val, y_val))})
        if cfg.val_nll_every and model.family.has_density and (epoch % cfg.val_nll_every == 0 or epoch == cfg.epochs):
            m = cfg.val_nll_examples
            nll = -iw_log_likelihood(model, X_val[:m], None if y_val is None else y_val[:m], k=cfg.val_nll_k, seed=0)
            row["val_iw_nll"] = nll.mean().item()
            model.train()
    return row


def epoch_line(row: dict, cfg: TrainConfig, unit: str) -> str:
    """The one log line of an epoch: losses and terms (train, then validation), the IW NLL, the time."""
    def terms(prefix: str) -> dict[str, float]:
        return {k[len(prefix):]: v for k, v in row.items()
                if k.startswith(prefix) and k != "val_iw_nll" and not k.startswith("val_kl_dim_")}

    train, val = terms("train_"), terms("val_")
    line = f"epoch {row['epoch']}/{cfg.epochs}  train loss {train['loss']:.3f} ({format_terms(train)})"
    if val:
        line += f"  val loss {val['loss']:.3f} ({format_terms(val)})"
    if "val_iw_nll" in row:
        line += f"  val NLL {row['val_iw_nll']:.2f} (k={cfg.val_nll_k})"
    return line + f"  [{unit}]  {row['seconds']:.1f}s"


def _make_loop(model: nn.Module, X: Tensor, y: Tensor | None, cfg: TrainConfig, device: torch.device, rank: int, world: int,
               checkpointer, progress: bool) -> _Loop:
    """The optimizer, the DDP wrapper, the number of steps and the early stopping of one run."""
    if cfg.batch_size > len(X):
        raise ConfigError(f"batch_size {cfg.batch_size} is larger than the {len(X)} training examples; pass a smaller batch_size")
    if cfg.batch_size % world:
        raise ConfigError(f"batch_size {cfg.batch_size} does not split evenly over {world} processes; pass a multiple of {world}")
    step_model = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        step_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    # Under DDP every rank must take a non-empty, equal slice of each batch, so the last partial
    # batch is dropped (as DistributedSampler's drop_last does); one process keeps it.
    steps_per_epoch = len(X) // cfg.batch_size if world > 1 else math.ceil(len(X) / cfg.batch_size)
    return _Loop(model, step_model, make_optimizer(model.parameters(), cfg, device), cfg, device, rank, world, X, y,
                 steps_per_epoch, steps_per_epoch * cfg.batch_size if world > 1 else len(X), checkpointer,
                 EarlyStopping(cfg.early_stopping) if cfg.early_stopping else None, progress,
                 # A NaN check needs the loss on the host: free on CPU, a sync on a GPU, so there only sometimes.
                 check_every=1 if device.type == "cpu" else 50, extra=_objective_extras(model, len(X), cfg, device))


def _objective_extras(model: nn.Module, n_train: int, cfg: TrainConfig, device: torch.device) -> dict:
    """What the objective needs beside its options, as its registration's flags ask: the training
    set's size N (beta-TCVAE's minibatch-weighted sampling) and a discriminator with its own
    optimizer (FactorVAE's), built once per run."""
    objective = OBJECTIVES[cfg.objective] if model.family.has_density else None
    extras: dict = {}
    if objective is not None and objective.needs_dataset_size:
        extras["dataset_size"] = n_train
    if objective is not None and objective.discriminator:
        extras["discriminator"] = objective.discriminator(model.config.code_dim, as_sizes(cfg.discriminator_hidden),
                                                          cfg.discriminator_lr, device)
    return extras


def _agreed_seconds(loop: _Loop, seconds: float) -> float:
    """Under DDP, the largest clock over the ranks: the budget's stop and the schedule depend on it."""
    if loop.world == 1:
        return seconds
    import torch.distributed as dist

    agreed = torch.tensor([seconds], dtype=torch.float64, device=loop.device)
    dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
    return agreed.item()


def fit(
    model: nn.Module,
    X: Tensor,
    y: Tensor | None = None,
    cfg: TrainConfig | None = None,
    *,
    X_val: Tensor | None = None,
    y_val: Tensor | None = None,
    progress: bool | None = None,
    quiet: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
    log: Callable[[str], None] | None = None,
    checkpointer=None,
    resume: dict | None = None,
) -> list[dict]:
    """Train ``model`` in place on X (and labels y for a conditional model); returns the history.

    X is a float tensor of examples; when ``X_val`` is not given, ``cfg.val_fraction`` of X is held
    out (seeded). Each history row has the epoch, its wall time, and the mean train and validation
    loss and terms in nats per example (``train_loss``, ``train_elbo``, ``val_loss``, ...).
    ``progress``: a tqdm bar per epoch (default: when stderr is a terminal and not quiet).
    ``checkpointer``: a :class:`vaekit.checkpoint.Checkpointer`; ``resume``: what
    :func:`vaekit.checkpoint.read_checkpoint` returned, to continue exactly where it stopped.
    Under torch.distributed (torchrun), each rank trains on its slice of every global batch of
    ``cfg.batch_size`` examples; gradients and logged sums are reduced across ranks.
    """
    cfg = cfg or TrainConfig()
    cfg.validate()
    device = resolve_device(cfg.device)
    rank, world = _distributed()
    if rank == 0:  # one line per run, not one per torchrun process
        warn_if_bf16_is_slow(cfg, device)
    torch.manual_seed(cfg.seed + rank)
    model.to(device)
    X, y, X_val, y_val = place_data(X, y, X_val, y_val, cfg, device)
    loop = _make_loop(model, X, y, cfg, device, rank, world, checkpointer,
                      progress=(sys.stderr.isatty() and not quiet and rank == 0) if progress is None else progress)
    if is_streamed(X):
        loop.stream = StreamBatches(X)
    try:
        return _run(loop, cfg, X_val, y_val, quiet=quiet, on_epoch=on_epoch, log=log, checkpointer=checkpointer, resume=resume)
    finally:
        if loop.stream is not None:
            loop.stream.close()


def _run(loop: _Loop, cfg: TrainConfig, X_val: Tensor | None, y_val: Tensor | None, *, quiet: bool,
         on_epoch: Callable[[dict], None] | None, log: Callable[[str], None] | None, checkpointer,
         resume: dict | None) -> list[dict]:
    """The epochs of :func:`fit`, from the start or from ``resume``, until the budget or early stopping ends them."""
    model, device, rank = loop.model, loop.device, loop.rank
    stopper = loop.stopper
    say = log or (lambda s: None)

    def tell(msg: str) -> None:
        say(msg)
        if not quiet and rank == 0:
            print(msg, file=sys.stderr, flush=True)

    start_epoch, start_step, history, resumed_sums = 1, 0, [], {}
    if resume is not None and "discriminator" in loop.extra:
        raise ConfigError(f"--resume is not available for objective={cfg.objective!r}: its discriminator is not saved in checkpoints; "
                          "start the run again without --resume")
    if cfg.log_every and rank == 0:
        loop.on_step = on_epoch
    if resume is not None:
        start_epoch, start_step, history, resumed_sums = restore(resume, model, loop.opt, stopper, device)
        say(f"resumed at epoch {start_epoch}, step {start_step}")
    trained_seconds = sum(row["seconds"] for row in history)
    for epoch in range(start_epoch, cfg.epochs + 1):
        first = start_step if epoch == start_epoch else 0
        sums = dict(resumed_sums) if (epoch == start_epoch and first) else {}
        t0 = time.perf_counter()
        out, done = train_epoch(loop, epoch, first, sums, trained_seconds, history)
        # A partial epoch (stopped inside) is the mean over the examples it saw.
        n_seen = loop.n_seen if done == loop.steps_per_epoch else min(done * cfg.batch_size, loop.n_seen)
        row = epoch_row(loop, epoch, time.perf_counter() - t0, sums, n_seen, X_val, y_val)
        history.append(row)
        if on_epoch and rank == 0:
            on_epoch(row)
        if rank == 0:
            say(line := epoch_line(row, cfg, out.unit if out is not None else "nats/example"))
            if not quiet:
                print(line, file=sys.stderr, flush=True)
        stop = None
        if stopper is not None and "val_loss" in row and stopper.update(row["val_loss"], model):
            stop = f"early stopping after epoch {epoch}: no validation improvement for {stopper.bad_epochs} epochs"
        if loop.stopped:
            if checkpointer is not None and rank == 0:  # --resume continues the epoch where it stopped
                checkpointer.save(model, loop.opt, epoch=epoch, step=done, history=history[:-1], sums=sums, early_stopping=stopper)
            tell(f"stopping at step {done} of {loop.steps_per_epoch} in epoch {epoch}: {loop.stopped}")
            break
        if checkpointer is not None and rank == 0:
            checkpointer.save(model, loop.opt, epoch=epoch + 1, step=0, history=history, sums={}, early_stopping=stopper)
        trained_seconds = _agreed_seconds(loop, trained_seconds + row["seconds"])
        if cfg.max_minutes and trained_seconds >= cfg.max_minutes * 60 and epoch < cfg.epochs:
            tell(f"stopping after epoch {epoch}: the --max-minutes budget of {cfg.max_minutes:g} min is spent")
            break
        if cfg.max_steps and epoch * loop.steps_per_epoch >= cfg.max_steps and epoch < cfg.epochs:
            tell(f"stopping after epoch {epoch}: --max-steps {cfg.max_steps} reached")
            break
        if stop:
            tell(stop)
            break
    if stopper is not None:
        stopper.restore_best(model)
    model.eval()
    return history
