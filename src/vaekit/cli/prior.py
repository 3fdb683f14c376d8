"""``vaekit train-prior``: the second stage of a VQ-VAE, a prior over its grid of codebook indices."""

from __future__ import annotations

from pathlib import Path

from .common import Formatter, add_data_options, error, load_data, positive_float, positive_int, run_config

DESCRIPTION = """\
Train the prior over a VQ-VAE run's index grids (a gated PixelCNN, or with --kind transformer a small
causal transformer; vaekit.codeprior) on the
grids its encoder gives the training images, and write it into the run folder, so that `vaekit sample`
draws new images and `vaekit evaluate` reports the prior's NLL and the two-stage bound in nats. The
VQ-VAE itself is not changed; a prior trained before is replaced.
"""


def add_parser(sub) -> None:
    p = sub.add_parser("train-prior", help="train a VQ-VAE run's prior over its code grid (so that it can be sampled)",
                       formatter_class=Formatter, description=DESCRIPTION)
    p.add_argument("run", metavar="RUN_DIR", help="a run folder of a VQ-VAE (vaekit train --model vq-vae)")
    add_data_options(p, None, "train")
    p.add_argument("--epochs", type=positive_int, default=10, help="passes over the index grids")
    p.add_argument("--kind", choices=["pixelcnn", "transformer"], default="pixelcnn",
                   help="the model over the grid: a gated PixelCNN (the lower test NLL at equal minutes, docs/results.md) "
                        "or a causal transformer")
    p.add_argument("--width", type=positive_int, default=None, help="feature maps (pixelcnn, default 32) or units (transformer, default 64)")
    p.add_argument("--layers", type=positive_int, default=None, help="layers (default: pixelcnn 6, transformer 2)")
    p.add_argument("--heads", type=positive_int, default=None, help="transformer only: attention heads, dividing --width (default 4)")
    p.add_argument("--kernel", type=positive_int, default=None, help="pixelcnn only: odd kernel size of its convolutions (default 3)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="grids per step")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="Adam's learning rate")
    p.add_argument("--max-minutes", type=positive_float, default=None, metavar="MIN", help="stop when training time passes this budget")
    p.add_argument("--seed", type=int, default=0, help="random seed (initialization, order, the held-out tenth)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_train_prior)


def cmd_train_prior(args) -> int:
    from ..atomicfiles import lock_folder

    run = Path(args.run)
    with lock_folder(run):  # one writer of a run folder at a time, as train holds it
        return _train_prior(args, run)


def _train_prior(args, run: Path) -> int:
    import time

    from ..atomicfiles import atomic_path
    from ..modelfile import write_model
    from ..runfolder import load

    cfg = run_config(run)
    est = load(run)
    if not est.family.discrete_codes:
        raise error(f"{run} holds {est.family.article} {est.family.title}; train-prior trains the prior of a VQ-VAE "
                    "(vaekit train --model vq-vae)")
    data = load_data(args, cfg)
    log_file = run / "train.log"
    lines = log_file.read_text().splitlines() if log_file.exists() else []

    def log(line: str) -> None:
        lines.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {line}")
        if not args.quiet:
            print(line, flush=True)

    log(f"vaekit train-prior {run}: index grids of {len(data)} {data.name} images ({args.split} split), a tenth held out")
    est.fit_prior(data.X, epochs=args.epochs, kind=args.kind, width=args.width, layers=args.layers, heads=args.heads, kernel=args.kernel,
                  batch_size=args.batch_size,
                  lr=args.lr, max_minutes=args.max_minutes or 0.0, seed=args.seed, log=log)
    last = est.prior_history_[-1]
    new = {k: v for k, v in cfg.items() if k not in ("format", "format_version")}  # write_model adds the current ones
    new["model"] = est.model_.config.to_dict()
    new["prior"] = {"command": f"vaekit train-prior {run}", "dataset": data.name, "n_grids": len(data), "history": est.prior_history_}
    write_model(run, new, est.state_tensors())
    with atomic_path(log_file) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    held = f"{last['prior_val_nll']:.2f} nats per image on the held-out grids" if "prior_val_nll" in last else \
        f"{last['prior_train_nll']:.2f} nats per image on the training grids"
    print(f"wrote the prior into {run}/ (config.json, model.safetensors): NLL {held}; `vaekit sample {run} --out samples.png` draws from it")
    return 0

