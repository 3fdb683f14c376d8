"""The ``vaekit`` command: a thin layer that parses options, calls the library and prints.

Heavy modules (torch, numpy, matplotlib) are imported inside the command functions so that
``vaekit --help`` answers at once. A :class:`vaekit.errors.VaekitError` becomes one line on stderr
and exit code 2; argparse's own usage errors also exit 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

MODELS = {
    # name: (estimator, preset parameters, help)
    "ae": ("Autoencoder", {}, "undercomplete MLP autoencoder"),
    "sparse-ae": ("Autoencoder", {"sparsity": "l1"}, "sparse autoencoder (L1 or --sparsity kl)"),
    "denoising-ae": ("Autoencoder", {"noise": "masking"}, "denoising autoencoder (--noise, --noise-level)"),
    "vae": ("VAE", {}, "MLP variational autoencoder"),
    # Small batches and lr 2e-3: the conv net needs many more steps than the MLP to leave the
    # blob stage; at 128 and 1e-3, 5 epochs of the embedded sample (175 steps) gave blobs.
    "conv-vae": ("VAE", {"architecture": "conv", "latent_dim": 100, "batch_size": 32, "lr": 2e-3}, "convolutional VAE for images"),
    "cvae": ("VAE", {"conditional": True, "latent_dim": 4}, "conditional VAE (needs labels)"),
}
PRESETS = {
    # The configuration of bench/mnist_nll.py (docs/results.md): a one-layer VAE on dynamically
    # binarized MNIST with KL warm-up, trained for a wall-clock budget.
    "mnist-nll": ["--dataset", "mnist", "--binarize", "dynamic", "--hidden", "400", "--latent-dim", "32",
                  "--warmup-epochs", "10", "--epochs", "100000", "--max-minutes", "40", "--val-fraction", "0.0167"],
    # The best configuration of issue 6 (docs/results.md): the same encoder with an autoregressive
    # (MADE) Bernoulli decoder, a cosine learning-rate schedule over the budget, and the validation
    # NLL logged every 10 epochs; 52 training minutes leave room for evaluation and the report
    # within one hour of wall time on two cores.
    "mnist-best": ["--dataset", "mnist", "--binarize", "dynamic", "--hidden", "400", "--latent-dim", "32",
                   "--likelihood", "autoregressive-bernoulli", "--ar-hidden", "500", "--warmup-epochs", "10",
                   "--lr-schedule", "cosine", "--epochs", "100000", "--max-minutes", "52", "--val-fraction", "0.0167",
                   "--val-nll-every", "10"],
}
DATASETS = "mnist, fashion-mnist, frey-face, digits, binarized-mnist, embedded, or a .npy/.npz/.csv/.parquet file"


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    def _get_help_string(self, action):
        # Options whose help already states their default (or whose default is "unset") do not
        # get argparse's "(default: None)" appended.
        text = action.help or ""
        if "(default" in text or action.default in (None, False):
            return text
        return super()._get_help_string(action)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 400 or 512,256, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive integers, got {text!r}")
    return sizes


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 1, got {v}")
    return v


def _add_data_options(p: argparse.ArgumentParser, default: str | None, split: str) -> None:
    p.add_argument("--dataset", default=default, metavar="NAME|PATH",
                   help=f"data to use: {DATASETS}" + ("" if default else " (default: the dataset the model was trained on)"))
    p.add_argument("--data-dir", default=None, metavar="DIR", help="folder holding the dataset's original files (else the cache, else a download)")
    p.add_argument("--split", default=split, choices=["train", "test", "valid", "all"], help="which split to use")
    p.add_argument("--label-column", default=None, metavar="COL", help="CSV/Parquet column holding class labels")
    p.add_argument("--limit", type=_positive_int, default=None, metavar="N", help="use only the first N examples")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="vaekit",
        description="Train, evaluate and use autoencoders and variational autoencoders.",
        epilog="Run `vaekit COMMAND --help` for each command's options.\nExample: vaekit train --out runs/first",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"vaekit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # -- train --------------------------------------------------------------------------------
    p = sub.add_parser("train", help="train a model and write a run folder", formatter_class=_Formatter,
                       description="Train a model; writes config.json, model.safetensors, metrics.csv, train.log and figures into --out.")
    _add_data_options(p, "embedded", "train")
    p.add_argument("--out", default=None, metavar="RUN_DIR", help="run folder to create (required unless --resume)")
    p.add_argument("--preset", default=None, choices=list(PRESETS),
                   help="a named set of options (options given on the command line win): " + "; ".join(f"{k} = {' '.join(v)}" for k, v in PRESETS.items()))
    p.add_argument("--overwrite", action="store_true", help="replace --out if it already exists")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint, with its original options")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="STEPS", help="write a checkpoint every this many steps (0: only at epoch ends when --checkpoint-minutes is set)")
    p.add_argument("--checkpoint-minutes", type=float, default=0.0, metavar="MIN", help="write a checkpoint at least this often, in minutes (0: off)")
    m = p.add_argument_group("model")
    m.add_argument("--model", default="vae", choices=list(MODELS), help="; ".join(f"{k}: {v[2]}" for k, v in MODELS.items()))
    m.add_argument("--latent-dim", type=int, default=None, help="size of the code z (default: 20 for vae, 4 for cvae, 100 for conv-vae, 32 for autoencoders)")
    m.add_argument("--hidden", type=_sizes, default=None, metavar="SIZES", help="hidden layer sizes of the MLP encoder, mirrored in the decoder, e.g. 400 or 512,256 (default: 400 for VAEs, 256 for autoencoders)")
    m.add_argument("--activation", default=None, choices=["relu", "tanh", "elu", "gelu", "softplus", "sigmoid"], help="hidden activation (default: relu)")
    m.add_argument("--likelihood", default=None, choices=["bernoulli", "continuous-bernoulli", "gaussian", "autoregressive-bernoulli"],
                   help="decoder distribution p(x|z) (default: bernoulli; for autoencoders gaussian means squared error; "
                        "autoregressive-bernoulli: pixels depend on earlier pixels and z through a MADE, VAEs only)")
    m.add_argument("--ar-hidden", type=_positive_int, default=None, help="hidden units of the autoregressive-bernoulli likelihood's MADE (default: 500)")
    m.add_argument("--prior", default=None, choices=["normal", "vamp"], help="p(z): N(0, I) or the VampPrior, a mixture of q(z|u_k) over learned pseudo-inputs (default: normal)")
    m.add_argument("--top-latent-dim", type=int, default=None, help="> 0 adds a second stochastic layer z2 of this size above z1 (q(z2|z1), p(z1|z2)) (default: 0, one layer)")
    m.add_argument("--top-hidden", type=_sizes, default=None, metavar="SIZES", help="hidden sizes of the MLPs between z1 and z2 (default: 100,100)")
    m.add_argument("--pseudo-inputs", type=_positive_int, default=None, help="number K of VampPrior pseudo-inputs (default: 500)")
    m.add_argument("--sigma", type=float, default=None, help="fixed sigma of the Gaussian likelihood (default: 1.0)")
    m.add_argument("--learn-sigma", action="store_true", default=None, help="learn a per-dimension sigma for the Gaussian likelihood")
    m.add_argument("--posterior", default=None, choices=["normal", "laplace", "student-t", "logistic"], help="posterior family q(z|x) (default: normal)")
    m.add_argument("--student-df", type=float, default=None, help="degrees of freedom of the Student-t posterior (default: 5)")
    m.add_argument("--beta", type=float, default=None, help="weight of the KL term (default: 1, the ELBO)")
    m.add_argument("--warmup-epochs", type=float, default=None, help="linear KL warm-up from 0 to beta over this many epochs (default: 0, off)")
    m.add_argument("--mc-samples", type=_positive_int, default=None, help="L Monte-Carlo samples of z per example; k for --objective iwae (default: 1)")
    m.add_argument("--objective", default=None, choices=["elbo", "iwae"], help="training objective: the ELBO, or the importance-weighted bound with k = --mc-samples (default: elbo)")
    m.add_argument("--sparsity", default=None, choices=["l1", "kl"], help="sparse-ae penalty: l1 on the code or KL(rho||rho_hat) (default: l1)")
    m.add_argument("--sparsity-weight", type=float, default=None, help="lambda (l1) or beta (kl) of the sparsity penalty (default: 1e-3)")
    m.add_argument("--sparsity-target", type=float, default=None, help="target mean activation rho of the KL penalty (default: 0.05)")
    m.add_argument("--noise", default=None, choices=["gaussian", "masking", "salt-and-pepper"], help="denoising-ae corruption (default: masking)")
    m.add_argument("--noise-level", type=float, default=None, help="sigma (gaussian) or probability p (masking, salt-and-pepper) (default: 0.3)")
    d = p.add_argument_group("data handling")
    d.add_argument("--binarize", default=None, choices=["none", "dynamic", "static"],
                   help="for a Bernoulli likelihood: dynamic draws a fresh binary image every time one is used, static once (default: none)")
    d.add_argument("--standardize", action="store_true", default=None, help="standardize features (real-valued tables; needs --likelihood gaussian)")
    o = p.add_argument_group("optimization")
    o.add_argument("--optimizer", default="adam", choices=["adam", "rmsprop", "sgd"], help="optimizer (sgd uses --momentum)")
    o.add_argument("--lr", type=float, default=None, help="learning rate (default: 1e-3 for vae and cvae, 2e-3 for conv-vae, 3e-3 for autoencoders)")
    o.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"],
                   help="cosine anneals the learning rate to lr/100 over --epochs, or over --max-minutes when that is set")
    o.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    o.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay")
    o.add_argument("--clip-grad", type=float, default=None, help="clip the global gradient norm to this value")
    o.add_argument("--batch-size", type=_positive_int, default=None, help="examples per step (default: 128 for vae and cvae, 32 for conv-vae, 64 for autoencoders)")
    o.add_argument("--epochs", type=_positive_int, default=10, help="passes over the training data")
    o.add_argument("--val-fraction", type=float, default=0.1, help="share of the training data held out for validation")
    o.add_argument("--early-stopping", type=int, default=0, metavar="PATIENCE", help="stop after this many epochs without validation improvement, keeping the best weights (0: off)")
    o.add_argument("--max-minutes", type=float, default=0.0, metavar="MIN", help="stop after the epoch in which training time passes this budget (0: off)")
    o.add_argument("--val-nll-every", type=int, default=None, metavar="EPOCHS",
                   help="VAE: every this many epochs, log the importance-weighted NLL of (up to 1000) validation examples in metrics.csv (default: 0, off)")
    o.add_argument("--val-nll-k", type=_positive_int, default=None, help="importance samples for --val-nll-every (default: 200)")
    o.add_argument("--seed", type=int, default=0, help="random seed (a CPU run is reproducible)")
    o.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    o.add_argument("--precision", default="float32", choices=["float32", "bf16"], help="bf16 runs the forward pass under bfloat16 autocast (faster on CPUs with AVX-512 BF16 and on GPUs)")
    p.add_argument("--no-figures", action="store_true", help="do not write samples.png and reconstructions.png")
    p.add_argument("--no-report", action="store_true", help="do not write report.html (metrics with k=100 importance samples, and every figure) at the end")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=cmd_train)

    # -- sample -------------------------------------------------------------------------------
    p = sub.add_parser("sample", help="draw new examples from a trained VAE", formatter_class=_Formatter)
    p.add_argument("run", metavar="RUN_DIR", help="a run folder written by `vaekit train`")
    p.add_argument("-n", type=_positive_int, default=64, help="number of samples")
    p.add_argument("--label", type=int, default=None, help="class to draw (conditional models only)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", required=True, metavar="FILE", help=".png (image grid), .npy or .csv")
    p.set_defaults(func=cmd_sample)

    # -- reconstruct --------------------------------------------------------------------------
    p = sub.add_parser("reconstruct", help="originals above their reconstructions", formatter_class=_Formatter)
    p.add_argument("run", metavar="RUN_DIR", help="a run folder written by `vaekit train`")
    _add_data_options(p, None, "test")
    p.add_argument("-n", type=_positive_int, default=10, help="number of examples shown")
    p.add_argument("--out", required=True, metavar="FILE", help=".png (image grid), .npy or .csv")
    p.set_defaults(func=cmd_reconstruct)

    # -- encode -------------------------------------------------------------------------------
    p = sub.add_parser("encode", help="write the codes (posterior means) of a dataset", formatter_class=_Formatter)
    p.add_argument("run", metavar="RUN_DIR", help="a run folder written by `vaekit train`")
    _add_data_options(p, None, "test")
    p.add_argument("--out", required=True, metavar="FILE", help=".npy or .csv")
    p.set_defaults(func=cmd_encode)

    # -- evaluate -----------------------------------------------------------------------------
    from .cli_report import add_evaluate_options, add_parsers as add_report_parsers

    p = sub.add_parser("evaluate", help="ELBO, importance-weighted NLL, reconstruction error, active units, probes",
                       formatter_class=_Formatter,
                       description="Score a run on a split: ELBO and its terms, the importance-weighted log-likelihood (test NLL),\n"
                                   "reconstruction error, active units and KL per dimension, and probe accuracies on the codes.\n"
                                   "Log-likelihoods are in nats per example. Example: vaekit evaluate runs/mnist --k 5000")
    p.add_argument("run", metavar="RUN_DIR", help="a run folder written by `vaekit train`")
    _add_data_options(p, None, "test")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the numbers to this JSON file")
    add_evaluate_options(p)
    p.set_defaults(func=cmd_evaluate)

    # -- plot, report: figures and the HTML run report, in cli_report.py ----------------------
    add_report_parsers(sub, _Formatter, _add_data_options)

    # -- detect (fit / score): anomaly detection, in cli_detect.py ----------------------------
    from .cli_detect import add_parser as add_detect_parser

    add_detect_parser(sub, _Formatter)
    return parser


# -- helpers -------------------------------------------------------------------------------------


def _say(args, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, flush=True)


def _run_config(run: Path) -> dict:
    from .io import read_config

    return read_config(run)


def _load_data(args, run_cfg: dict | None = None):
    """The dataset an option set asks for, defaulting to the one the run was trained on."""
    from .data import load_dataset

    source, data_dir, label_column = args.dataset, args.data_dir, args.label_column
    if source is None and run_cfg is not None:
        meta = run_cfg.get("run", {})
        source = meta.get("dataset", "embedded")
        data_dir = data_dir or meta.get("data_dir")
        label_column = label_column or meta.get("label_column")
    return load_dataset(source, args.split, data_dir=data_dir, label_column=label_column, limit=args.limit)


def _write_array(path: Path, arr, header: str | None = None) -> None:
    import numpy as np

    from .io import atomic_path

    suffix = path.suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise _error(f"cannot write {path}: use a .npy or .csv file name")
    with atomic_path(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, arr)
        else:
            np.savetxt(tmp, arr.reshape(len(arr), -1), delimiter=",", fmt="%.6g", header=header or "", comments="")


def _error(msg: str):
    from .errors import VaekitError

    return VaekitError(msg)


def _images_or_array(path: Path, images, ncol: int, title: str, image_shape, row_labels=None) -> None:
    from .plots import save_image_grid

    if path.suffix.lower() == ".png":
        if len(image_shape) not in (3,) and not _is_square(image_shape):
            raise _error(f"this model's data (shape {tuple(image_shape)}) are not images; write a .npy or .csv instead of {path.name}")
        save_image_grid(path, images, ncol, title=title, row_labels=row_labels)
    else:
        _write_array(path, images)


def _is_square(shape) -> bool:
    import math

    n = math.prod(shape)
    return len(shape) == 1 and int(math.isqrt(n)) ** 2 == n


# -- commands ------------------------------------------------------------------------------------


def make_estimator(args):
    """The estimator that a `vaekit train` option set describes (library objects only)."""
    from . import estimators

    cls_name, preset, _ = MODELS[args.model]
    cls = getattr(estimators, cls_name)
    given = {
        "latent_dim": args.latent_dim, "hidden": args.hidden, "activation": args.activation,
        "likelihood": args.likelihood, "sigma": args.sigma, "learn_sigma": args.learn_sigma,
        "posterior": args.posterior, "student_df": args.student_df, "beta": args.beta,
        "warmup_epochs": args.warmup_epochs, "n_samples": args.mc_samples, "objective": args.objective, "sparsity": args.sparsity,
        "sparsity_weight": args.sparsity_weight, "sparsity_target": args.sparsity_target,
        "noise": args.noise, "noise_level": args.noise_level, "binarize": args.binarize,
        "standardize": args.standardize, "ar_hidden": args.ar_hidden, "prior": args.prior, "n_pseudo_inputs": args.pseudo_inputs,
        "top_latent_dim": args.top_latent_dim, "top_hidden": args.top_hidden,
        "val_nll_every": args.val_nll_every, "val_nll_k": args.val_nll_k,
    }
    given = {k: v for k, v in given.items() if v is not None}
    accepted = cls().get_params()
    wrong = [k for k in given if k not in accepted]
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-").replace("n-samples", "mc-samples").replace("n-pseudo-inputs", "pseudo-inputs") for k in wrong)
        raise _error(f"{flags} does not apply to --model {args.model}; drop it or choose a VAE model")
    common = {
        "epochs": args.epochs, "batch_size": args.batch_size, "optimizer": args.optimizer, "lr": args.lr, "momentum": args.momentum,
        "weight_decay": args.weight_decay, "clip_grad": args.clip_grad, "val_fraction": args.val_fraction,
        "early_stopping": args.early_stopping, "max_minutes": args.max_minutes, "seed": args.seed, "device": args.device, "precision": args.precision,
        "lr_schedule": args.lr_schedule,
        "verbose": False,
    }
    common = {k: v for k, v in common.items() if v is not None or k == "clip_grad"}  # unset: the preset's or the estimator's default
    return cls(**{**preset, **given, **common})


def _staging_dir(out: Path) -> Path:
    """Where a run is written until it finishes (and where a crashed run's checkpoint waits)."""
    return out.parent / f".{out.name}.partial"


def _init_distributed(args) -> int:
    """Join the process group when started by torchrun; returns this process's rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        use_cuda = args.device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            args.device = f"cuda:{local}"
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return dist.get_rank()


def _leave_distributed() -> None:
    """Wait for every rank, then close the process group: a rank that exits while another still
    holds the group makes gloo abort it ("terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def cmd_train(args) -> int:
    from .checkpoint import read_checkpoint
    from .io import publish_dir

    resume = None
    if args.resume:
        out = Path(args.resume)
        staging = _staging_dir(out)
        if not staging.exists():
            if (out / "model.safetensors").exists():
                raise _error(f"{out} already finished training; start a new run with --out")
            raise _error(f"nothing to resume at {out}: no unfinished run folder {staging.name} beside it")
        resume = read_checkpoint(staging)
        saved = resume["extra"].get("argv")
        if not saved:
            raise _error(f"the checkpoint in {staging} does not record its command; start the run again")
        args = build_parser().parse_args(saved)
        args.argv, args.resume = saved, str(out)
    elif not args.out:
        raise _error("say where to write the run: --out RUN_DIR (or --resume RUN_DIR to continue one)")
    out = Path(args.out)
    rank = _init_distributed(args)
    if not resume and out.exists() and not args.overwrite and (not out.is_dir() or any(out.iterdir())):
        raise _error(f"{out} already exists; choose another --out or pass --overwrite to replace it")
    est = make_estimator(args)
    # Bad options fail before any data is read: build the configs once for a stand-in input shape
    # (the real shape is checked against the model when fit sees the data).
    est._model_config((1, 28, 28) if est.architecture == "conv" else (784,), 10 if getattr(est, "conditional", False) else 0)
    est._train_config().validate()
    data = _load_data(args)
    if getattr(est, "conditional", False) and data.y is None:
        raise _error(f"--model cvae needs labels but {args.dataset} has none; pass --label-column for a table")
    staging = _staging_dir(out)
    if rank != 0:  # only rank 0 writes the run folder
        _train_into(args, est, data, None, resume=resume)
        _leave_distributed()
        return 0
    if not resume:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    try:
        _train_into(args, est, data, staging, resume=resume)
        publish_dir(staging, out)
    except BaseException as e:
        from .train import TrainingDiverged

        has_checkpoint = (staging / "checkpoint.safetensors").exists()
        if has_checkpoint and isinstance(e, (TrainingDiverged, KeyboardInterrupt)):
            print(f"vaekit: the last good checkpoint is kept in {staging}; continue with `vaekit train --resume {out}`", file=sys.stderr)
        else:
            shutil.rmtree(staging, ignore_errors=True)  # nothing half-written survives a failure
        raise
    _leave_distributed()  # a no-op unless started by torchrun
    written = ["config.json", "model.safetensors", "metrics.csv", "train.log"]
    written += [] if args.no_figures else ["samples.png", "reconstructions.png"]
    written += [] if args.no_report else ["report.html"]
    _say(args, f"wrote {out}/ ({', '.join(f for f in written if (out / f).exists())})")
    return 0


def _train_into(args, est, data, run: Path | None, resume: dict | None = None) -> None:
    import csv
    import time

    import numpy as np

    from .io import atomic_path, read_json, write_json

    log_lines: list[str] = []
    rows: list[dict] = []

    def log(line: str) -> None:
        log_lines.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {line}")
        with atomic_path(run / "train.log") as tmp:
            tmp.write_text("\n".join(log_lines) + "\n")

    def on_epoch(row: dict) -> None:
        rows.append(row)
        with atomic_path(run / "metrics.csv") as tmp, open(tmp, "w", newline="") as f:
            # Some columns (val_iw_nll) appear only every few epochs: the header is the union, blanks elsewhere.
            w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)), restval="")
            w.writeheader()
            w.writerows(rows)

    labels = data.y if getattr(est, "conditional", False) else None
    if run is None:  # a non-zero rank of a distributed run: train, write nothing
        est.fit(data.X, labels, progress=False)
        return
    if resume:
        log_lines.extend((run / "train.log").read_text().splitlines() if (run / "train.log").exists() else [])
        rows.extend(resume["history"])
    else:
        log(f"vaekit {' '.join(args.argv)}")
        log(f"data: {data.name}, {len(data)} examples of shape {data.shape}")
    from .checkpoint import Checkpointer

    checkpointer = None
    if args.checkpoint_every or args.checkpoint_minutes:
        checkpointer = Checkpointer(run, args.checkpoint_every, args.checkpoint_minutes, extra={"argv": args.argv})
    est.verbose = not args.quiet
    est.fit(data.X, labels, on_epoch=on_epoch, log=log, checkpointer=checkpointer, resume=resume)
    est.verbose = False
    (run / "checkpoint.safetensors").unlink(missing_ok=True)  # the finished model replaces it
    est.save(run)
    cfg = read_json(run / "config.json")
    cfg["run"] = {
        "dataset": args.dataset, "data_dir": args.data_dir, "label_column": args.label_column,
        "n_train_examples": len(data), "classes": data.classes, "command": "vaekit " + " ".join(args.argv),
    }
    write_json(run / "config.json", cfg)
    if not getattr(args, "no_report", False):
        _write_report(args, run, data)
    if args.no_figures:
        return
    if data.is_image or _is_square(data.shape):
        from .data import load_dataset

        if getattr(est, "conditional", False):
            samples = np.concatenate([est.sample(8, label=k) for k in range(est.n_classes_)])
            names = [str(c) for c in (data.classes or range(est.n_classes_))]
            _images_or_array(run / "samples.png", samples, 8, "samples p(x|z, c), one row per class", data.shape, row_labels=names)
        elif hasattr(est, "sample"):
            from .plots import sample_caption

            _images_or_array(run / "samples.png", est.sample(64), 8, f"samples from the prior: {sample_caption(est)}", data.shape)
        from .errors import DataError

        try:
            test = load_dataset(args.dataset, "test", data_dir=args.data_dir, label_column=args.label_column)
        except DataError:  # e.g. a file too small for a test split: show training examples instead
            test = data
        X = test.X[:10]
        y = test.y[:10] if getattr(est, "conditional", False) else None
        recon = est.reconstruct(X, y)
        _images_or_array(run / "reconstructions.png", np.concatenate([X, recon]), 10,
                         "originals (top) and reconstructions (bottom), test split", data.shape)


def _write_report(args, run: Path, data) -> None:
    """report.html for a finished run; a failure here is reported but does not undo the training."""
    from .io import read_config
    from .report import REPORT_K, build_report, report_iw_limit

    n_iw = report_iw_limit(read_config(run)["model"].get("architecture", "mlp"))
    _say(args, f"writing report.html (metrics with k={REPORT_K} importance samples on up to {n_iw} test images; --no-report skips it)")
    try:
        build_report(run, train=data, shown_as=args.out)  # the training data fit the probes; the report reads the test split
    except Exception as e:  # noqa: BLE001 - the trained model matters more than its report
        print(f"vaekit: warning: report.html not written ({type(e).__name__}: {e}); run `vaekit report {args.out}` to retry", file=sys.stderr)


def cmd_sample(args) -> int:
    from .io import load

    est = load(args.run)
    if not hasattr(est, "sample"):
        raise _error(f"{args.run} holds an autoencoder, which has no prior to sample from; train a VAE (--model vae)")
    x = est.sample(args.n, label=args.label, seed=args.seed)
    ncol = min(8, args.n) if args.n <= 64 else 10
    title = "samples from the prior" + (f", class {args.label}" if args.label is not None else "")
    _images_or_array(Path(args.out), x, ncol, title, est.input_shape_)
    print(f"wrote {args.n} samples to {args.out}")
    return 0


def cmd_reconstruct(args) -> int:
    import numpy as np

    from .io import load

    cfg = _run_config(Path(args.run))
    est = load(args.run)
    data = _load_data(args, cfg)
    X = data.X[: args.n]
    y = data.y[: args.n] if getattr(est, "conditional", False) else None
    recon = est.reconstruct(X, y)
    out = Path(args.out)
    if out.suffix.lower() == ".png":
        _images_or_array(out, np.concatenate([X, recon]), len(X), "originals (top) and reconstructions (bottom)", est.input_shape_)
    else:
        _write_array(out, recon)
    print(f"wrote {len(X)} reconstructions to {out}")
    return 0


def cmd_encode(args) -> int:
    from .io import load

    cfg = _run_config(Path(args.run))
    est = load(args.run)
    data = _load_data(args, cfg)
    y = data.y if getattr(est, "conditional", False) else None
    Z = est.encode(data.X, y)
    _write_array(Path(args.out), Z, header=",".join(f"z{i}" for i in range(Z.shape[1])))
    print(f"wrote codes of shape {Z.shape} to {args.out}")
    return 0


def cmd_evaluate(args) -> int:
    from .cli_report import cmd_evaluate as evaluate_run

    return evaluate_run(args)


def _expand_preset(argv: list[str]) -> list[str]:
    """`train --preset NAME ...` becomes `train PRESET-OPTIONS ...`: later (explicit) options win."""
    if len(argv) < 2 or argv[0] != "train":
        return argv
    for i, a in enumerate(argv):
        name = a.split("=", 1)[1] if a.startswith("--preset=") else (argv[i + 1] if a == "--preset" and i + 1 < len(argv) else None)
        if name in PRESETS:
            return ["train", *PRESETS[name], *argv[1:]]
    return argv


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    argv = _expand_preset(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("vaekit: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - only our own error type is turned into one line
        from .errors import VaekitError

        if isinstance(e, VaekitError):
            print(f"vaekit: error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
