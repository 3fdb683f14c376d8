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
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .errors import ConfigError, VaekitError

OPTIMIZERS = ("adam", "rmsprop", "sgd")


class TrainingDiverged(VaekitError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """Options of the optimization, saved in config.json beside the model's own."""

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    clip_grad: float | None = None  # max global gradient norm
    beta: float = 1.0  # weight of the KL term (beta-VAE); 1 is the ELBO
    warmup_epochs: float = 0.0  # linear KL warm-up from 0 to beta over this many epochs
    n_samples: int = 1  # L Monte-Carlo samples per example (k for the IWAE objective)
    objective: str = "elbo"  # or "iwae": the importance-weighted bound with k = n_samples
    binarize: str = "none"  # "dynamic": a fresh Bernoulli draw of each image every time it is used
    val_fraction: float = 0.1
    early_stopping: int = 0  # patience in epochs on the validation loss; 0 = off
    max_minutes: float = 0.0  # stop after the epoch that crosses this much training time; 0 = off
    seed: int = 0
    device: str = "auto"
    precision: str = "float32"  # or "bf16": bfloat16 autocast of the forward pass
    lr_schedule: str = "constant"  # or "cosine": anneal to lr/100 over the epochs (or the --max-minutes budget)
    val_nll_every: int = 0  # VAE: every this many epochs, the importance-weighted NLL of the validation split; 0 = off
    val_nll_k: int = 200  # importance samples for that estimate
    val_nll_examples: int = 1000  # on at most this many validation examples (its cost grows with both)

    def validate(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")
        if self.n_samples < 1:
            raise ConfigError(f"the number of Monte-Carlo samples must be at least 1, got {self.n_samples}")
        if self.binarize not in ("none", "dynamic", "static"):
            raise ConfigError(f"unknown binarization {self.binarize!r}; choose none, dynamic or static")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"validation fraction must lie in [0, 1), got {self.val_fraction}")
        if self.beta < 0:
            raise ConfigError(f"beta must be >= 0, got {self.beta}")
        if self.objective not in ("elbo", "iwae"):
            raise ConfigError(f"unknown objective {self.objective!r}; choose elbo or iwae")
        if self.val_nll_every < 0 or self.val_nll_k < 1 or self.val_nll_examples < 1:
            raise ConfigError("--val-nll-every must be >= 0, and its k and number of examples at least 1")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"unknown learning-rate schedule {self.lr_schedule!r}; choose constant or cosine")
        if self.precision not in ("float32", "bf16"):
            raise ConfigError(f"unknown precision {self.precision!r}; choose float32 or bf16")
        resolve_device(self.device)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when available; asking for CUDA on a machine without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    if name.split(":")[0] not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r}; choose cpu, cuda or auto")
    return torch.device(name)


def make_optimizer(params, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        # The fused kernel is several times faster than the default on CPU and GPU alike.
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def scheduled_lr(cfg: TrainConfig, epoch_progress: float, seconds: float) -> float:
    """The learning rate at a point of training under ``cfg.lr_schedule``.

    'cosine' anneals from lr to lr/100 along a half cosine (Loshchilov & Hutter 2017, one cycle).
    Progress is the larger of the share of epochs done and, with --max-minutes, the share of the
    time budget spent: a budgeted run (epochs set huge) anneals over its minutes instead.
    """
    if cfg.lr_schedule == "constant":
        return cfg.lr
    t = epoch_progress / cfg.epochs
    if cfg.max_minutes:
        t = max(t, seconds / (cfg.max_minutes * 60))
    t = min(1.0, t)
    floor = cfg.lr / 100
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * t))


def split_validation(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices of a seeded train / validation split of n examples."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
    n_val = int(round(n * fraction))
    return perm[n_val:], perm[:n_val]


@torch.no_grad()
def evaluate_loss(model: nn.Module, X: Tensor, y: Tensor | None, *, beta: float = 1.0, batch_size: int = 1024) -> dict[str, float]:
    """Mean loss and terms over all of X (not one batch), per example, in eval mode."""
    was_training = model.training
    model.eval()
    sums: dict[str, Tensor] = {}
    for i in range(0, len(X), batch_size):
        xb = X[i : i + batch_size]
        out = model.loss(xb, None if y is None else y[i : i + batch_size], beta=beta)
        _accumulate(sums, out, len(xb))
    model.train(was_training)
    return {k: v.item() / len(X) for k, v in sums.items()}


def _val_kl_per_dimension(model: nn.Module, X_val: Tensor, y_val: Tensor | None) -> dict[str, float]:
    """``val_kl_dim_j``: KL(q(z_j|x) || N(0, 1)) averaged over the validation split, in nats.

    Logged every epoch so the report can show which latent units switch on, and when (a unit that
    stays at 0 has collapsed to the prior). One encoder pass; only for a VAE with the N(0, I) prior,
    where the per-dimension KLs add up to the logged ``val_kl``. Empty for any other model.
    """
    if not hasattr(model, "prior") or not model.config.standard_normal_prior:
        return {}
    from .evaluate import kl_per_dimension

    was_training = model.training
    kl = kl_per_dimension(model, X_val, y_val)  # seeded in a forked RNG: training draws are untouched
    model.train(was_training)
    return {f"val_kl_dim_{j}": float(v) for j, v in enumerate(kl)}


def _accumulate(sums: dict[str, Tensor], out, batch: int) -> None:
    sums["loss"] = sums.get("loss", 0) + out.loss.detach() * batch
    for name, t in out.terms.items():
        t = t.detach()
        total = t.sum() if t.dim() else t * batch
        sums[name] = sums.get(name, 0) + total


def format_terms(terms: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in terms.items() if k != "loss")


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
    torch.manual_seed(cfg.seed + rank)
    model.to(device)
    if X_val is None and cfg.val_fraction > 0:
        tr, va = split_validation(len(X), cfg.val_fraction, cfg.seed)
        X, X_val = X[tr], X[va]
        if y is not None:
            y, y_val = y[tr], y[va]
    X = X.to(device)
    y = None if y is None else y.to(device)
    if X_val is not None:
        X_val = X_val.to(device)
        y_val = None if y_val is None else y_val.to(device)
    if cfg.batch_size > len(X):
        raise ConfigError(f"batch size {cfg.batch_size} is larger than the {len(X)} training examples; pass a smaller --batch-size")
    if cfg.batch_size % world:
        raise ConfigError(f"batch size {cfg.batch_size} does not split evenly over {world} processes; pass a multiple of {world}")
    if cfg.binarize == "static":
        # One draw from the run's seed (not the rank's stream): every rank must see the same data.
        gen = torch.Generator(device=X.device).manual_seed(cfg.seed)
        X = torch.bernoulli(X, generator=gen)
        if X_val is not None:
            X_val = torch.bernoulli(X_val, generator=gen)
    elif cfg.binarize == "dynamic" and X_val is not None:
        # Validation numbers are only comparable across epochs on one fixed binarization.
        X_val = torch.bernoulli(X_val, generator=torch.Generator(device=X_val.device).manual_seed(cfg.seed + 2))

    step_model = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        step_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = make_optimizer(model.parameters(), cfg, device)
    n = len(X)
    # Under DDP every rank must take a non-empty, equal slice of each batch, so the last partial
    # batch is dropped (as DistributedSampler's drop_last does); one process keeps it.
    steps_per_epoch = n // cfg.batch_size if world > 1 else math.ceil(n / cfg.batch_size)
    n_seen = steps_per_epoch * cfg.batch_size if world > 1 else n
    local = cfg.batch_size // world
    progress = (sys.stderr.isatty() and not quiet and rank == 0) if progress is None else progress
    say = log or (lambda s: None)
    history: list[dict] = []
    best = (math.inf, None)
    bad_epochs = 0
    start_epoch, start_step, resumed_sums = 1, 0, {}
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        torch.set_rng_state(resume["rng"]["cpu"])
        history = list(resume["history"])
        start_epoch, start_step = resume["epoch"], resume["step"]
        resumed_sums = {k: v.to(device) for k, v in resume["sums"].items()}
        say(f"resumed at epoch {start_epoch}, step {start_step}")
    # A NaN check needs the loss on the host: free on CPU, a sync on a GPU, so there only sometimes.
    check_every = 1 if device.type == "cpu" else 50
    autocast = cfg.precision == "bf16"

    trained_seconds = sum(row["seconds"] for row in history)
    for epoch in range(start_epoch, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        perm = _epoch_permutation(n, cfg.seed, epoch, device)
        first = start_step if epoch == start_epoch else 0
        sums: dict[str, Tensor] = dict(resumed_sums) if (epoch == start_epoch and first) else {}
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps_per_epoch, initial=first, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, unit="batch")
        for step in range(first, steps_per_epoch):
            idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            if world > 1:
                idx = idx[rank * local : (rank + 1) * local]
            xb = X[idx]
            if cfg.binarize == "dynamic":
                xb = torch.bernoulli(xb)
            yb = None if y is None else y[idx]
            if cfg.lr_schedule != "constant":
                # Under DDP the clock part moves once per epoch (trained_seconds is agreed across ranks
                # below), so every rank applies the same learning rate.
                within = time.perf_counter() - t0 if world == 1 else 0.0
                lr = scheduled_lr(cfg, epoch - 1 + step / steps_per_epoch, trained_seconds + within)
                for group in opt.param_groups:
                    group["lr"] = lr
            beta = cfg.beta
            if cfg.warmup_epochs > 0:
                beta *= min(1.0, (epoch - 1 + step / steps_per_epoch) / cfg.warmup_epochs)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                kwargs = {"objective": "iwae"} if cfg.objective == "iwae" else {}
                out = step_model(xb, yb, beta=beta, n_samples=cfg.n_samples, **kwargs)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            if cfg.clip_grad:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            if step % check_every == 0 and not torch.isfinite(out.loss):
                raise TrainingDiverged(
                    f"the training loss became {out.loss.item()} at epoch {epoch}, step {step + 1}; this step was not applied. "
                    "Lower --lr, add --clip-grad 5, or check the data for extreme values"
                )
            opt.step()
            _accumulate(sums, out, len(idx))
            if bar is not None:
                bar.update()
                if step % 25 == 0:  # one sync every 25 steps keeps the bar honest and cheap
                    bar.set_postfix(loss=f"{out.loss.item():.2f}")
            if checkpointer is not None and rank == 0:
                global_step = (epoch - 1) * steps_per_epoch + step + 1
                if step + 1 < steps_per_epoch and checkpointer.due(global_step):
                    checkpointer.save(model, opt, epoch=epoch, step=step + 1, history=history, sums=sums)
        if bar is not None:
            bar.close()
        if world > 1:
            import torch.distributed as dist

            for v in sums.values():
                dist.all_reduce(v)
        train_terms = {k: v.item() / n_seen for k, v in sums.items()}
        if not math.isfinite(train_terms["loss"]):
            raise TrainingDiverged(
                f"the training loss became {train_terms['loss']} in epoch {epoch}; "
                "lower --lr, add --clip-grad 5, or check the data for extreme values"
            )
        row = {"epoch": epoch, "seconds": round(time.perf_counter() - t0, 3)}
        row.update({f"train_{k}": v for k, v in train_terms.items()})
        val_terms = {}
        if X_val is not None and len(X_val):
            val_terms = evaluate_loss(model, X_val, y_val, beta=cfg.beta)
            row.update({f"val_{k}": v for k, v in val_terms.items()})
            row.update(_val_kl_per_dimension(model, X_val, y_val))
            if cfg.val_nll_every and hasattr(model, "prior") and (epoch % cfg.val_nll_every == 0 or epoch == cfg.epochs):
                from .evaluate import iw_log_likelihood

                m = cfg.val_nll_examples
                nll = -iw_log_likelihood(model, X_val[:m], None if y_val is None else y_val[:m], k=cfg.val_nll_k, seed=0)
                row["val_iw_nll"] = nll.mean().item()
                model.train()
        history.append(row)
        if on_epoch and rank == 0:
            on_epoch(row)
        line = f"epoch {epoch}/{cfg.epochs}  train loss {train_terms['loss']:.3f} ({format_terms(train_terms)})"
        if val_terms:
            line += f"  val loss {val_terms['loss']:.3f} ({format_terms(val_terms)})"
        if "val_iw_nll" in row:
            line += f"  val NLL {row['val_iw_nll']:.2f} (k={cfg.val_nll_k})"
        line += f"  [{out.unit}]  {row['seconds']:.1f}s"
        if rank == 0:
            say(line)
            if not quiet:
                print(line, file=sys.stderr, flush=True)
        if checkpointer is not None and rank == 0:
            checkpointer.save(model, opt, epoch=epoch + 1, step=0, history=history, sums={})
        trained_seconds += row["seconds"]
        if world > 1:
            import torch.distributed as dist

            # Ranks must agree on the clock: the budget's stop and the cosine schedule depend on it.
            agreed = torch.tensor([trained_seconds], dtype=torch.float64, device=device)
            dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
            trained_seconds = agreed.item()
        if cfg.max_minutes and trained_seconds >= cfg.max_minutes * 60 and epoch < cfg.epochs:
            msg = f"stopping after epoch {epoch}: the --max-minutes budget of {cfg.max_minutes:g} min is spent"
            say(msg)
            if not quiet and rank == 0:
                print(msg, file=sys.stderr)
            break
        if cfg.early_stopping and val_terms:
            if val_terms["loss"] < best[0]:
                best = (val_terms["loss"], {k: v.detach().clone() for k, v in model.state_dict().items()})
                bad_epochs = 0
            else:
                bad_epochs += 1
                if bad_epochs >= cfg.early_stopping:
                    msg = f"early stopping after epoch {epoch}: no validation improvement for {bad_epochs} epochs"
                    say(msg)
                    if not quiet and rank == 0:
                        print(msg, file=sys.stderr)
                    break
    if cfg.early_stopping and best[1] is not None:
        model.load_state_dict(best[1])  # keep the best weights, not the last
    model.eval()
    return history
