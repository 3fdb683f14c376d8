"""``vaekit evaluate``, ``vaekit plot`` and ``vaekit report``: see and measure a trained run.

Thin: each command loads the run and its data, calls vaekit.plots / vaekit.report /
vaekit.evaluate, and prints. Heavy imports stay inside the functions so ``vaekit --help`` is fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import Formatter, ProgressLines, add_data_options, error, load_data, positive_int, run_config
from .pretrained import add_pretrained_option, resolve_run

PLOT_KINDS = ("reconstructions", "samples", "manifold", "latent", "interpolate", "traversal", "curves")


def _pair(text: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two integers like 0,1, got {text!r}") from None
    return a, b


def add_parsers(sub) -> None:
    """Register ``evaluate``, ``plot`` and ``report`` on the ``vaekit`` subparsers."""
    p = sub.add_parser("evaluate", help="ELBO, importance-weighted NLL, reconstruction error, active units, probes",
                       formatter_class=Formatter,
                       description="Score a run on a split: ELBO and its terms, the importance-weighted log-likelihood (test NLL),\n"
                                   "reconstruction error, active units and KL per dimension, and probe accuracies on the codes.\n"
                                   "Log-likelihoods are in nats per example. Example: vaekit evaluate runs/mnist --k 5000")
    p.add_argument("run", metavar="RUN_DIR", nargs="?", help="a run folder written by `vaekit train` (or --pretrained NAME)")
    add_pretrained_option(p)
    add_data_options(p, None, "test")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the numbers to this JSON file")
    add_evaluate_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("plot", help="draw one figure of a run as PNG", formatter_class=Formatter,
                       description="Draw one of the lecture's figures for a trained run.\n"
                                   "  reconstructions  originals above reconstructions (denoising: clean / corrupted / denoised)\n"
                                   "  samples          decoded draws from the prior (conditional: one row per class)\n"
                                   "  manifold         decoded grid of z at Normal quantiles 0.05..0.95 (2-D latent; else --dims traversal)\n"
                                   "  latent           posterior means coloured by label (PCA or t-SNE above 2-D)\n"
                                   "  interpolate      decoded line between two class-mean codes, plus latent arithmetic\n"
                                   "  traversal        one row per latent dimension (most KL first), swept over [-3, 3], others at a test code\n"
                                   "  curves           training curves from metrics.csv\n"
                                   "Example: vaekit plot runs/mnist2d manifold --out manifold.png")
    p.add_argument("run", metavar="RUN_DIR", nargs="?", help="a run folder written by `vaekit train` (or --pretrained NAME)")
    p.add_argument("kind", choices=PLOT_KINDS, help="which figure")
    add_pretrained_option(p)
    p.add_argument("--out", required=True, metavar="FILE.png", help="PNG file to write")
    add_data_options(p, None, "test")
    p.add_argument("-n", type=positive_int, default=None,
                   help="examples (reconstructions, default 10), samples (default 64), grid points per axis (manifold, default 15) "
                        "or dimensions shown (traversal, default 10)")
    p.add_argument("--dims", type=_pair, default=(0, 1), metavar="I,J", help="manifold: the two latent dimensions to traverse (others at 0)")
    p.add_argument("--label", type=int, default=None, help="manifold of a conditional model: the class to decode")
    p.add_argument("--method", default="pca", choices=["pca", "tsne"], help="latent: projection of codes with more than 2 dimensions")
    p.add_argument("--classes", type=_pair, default=(1, 7), metavar="A,B", help="interpolate: the two classes whose mean codes are joined")
    p.add_argument("--steps", type=positive_int, default=None, help="interpolate: decoded points on the line (default 10); "
                   "traversal: values per dimension (default 11)")
    p.add_argument("--seed", type=int, default=0, help="random seed (samples, noise of a denoising model, subsampling)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("report", help="write one self-contained HTML page for a run, or one comparing runs", formatter_class=Formatter,
                       description="Write an HTML page that explains a run: every figure that applies to the model, each with what\n"
                                   "it shows and what to look for, then the test metrics and the configuration; images embedded\n"
                                   "(open it from disk, mail it). Several runs: one page comparing them (rate against distortion,\n"
                                   "reconstructions side by side, their numbers).\n"
                                   "Example: vaekit report runs/ae runs/vae runs/beta4 --out compare.html")
    p.add_argument("run", metavar="RUN_DIR", nargs="+", help="a run folder written by `vaekit train`; two or more to compare them")
    p.add_argument("--out", default=None, metavar="FILE.html",
                   help="where to write it (default: RUN_DIR/report.html; required when comparing runs)")
    p.add_argument("--k", type=positive_int, default=100, help="importance samples for the IW log-likelihood on the page (small: fast)")
    p.add_argument("--iw-limit", type=positive_int, default=-1, metavar="N",
                   help="test examples that get the IW estimate (default: 1000; 100 for conv-vae, whose decoder is slow)")
    p.set_defaults(func=cmd_report)


def add_evaluate_options(p) -> None:
    """The options ``vaekit evaluate`` adds to the data options."""
    p.add_argument("--k", type=positive_int, default=5000,
                   help="importance samples per example for the IW log-likelihood (Burda et al. report k=5000)")
    p.add_argument("--iw-limit", type=positive_int, default=None, metavar="N",
                   help="compute the IW estimate on the first N examples only (default: all)")
    p.add_argument("--probe-limit", type=positive_int, default=None, metavar="N",
                   help="fit the probes on the first N training examples (default: all)")
    p.add_argument("--no-probe", action="store_true", help="skip the logistic-regression and k-NN probes")
    p.add_argument("--no-binarize", action="store_true", help="score a model trained on binarized data on the gray levels as given")
    p.add_argument("--seed", type=int, default=0, help="random seed of the Monte-Carlo estimates")
    p.add_argument("--disentanglement", action="store_true",
                   help="score only the disentanglement metrics (beta_vae, factor_vae, mig, sap, dci_*) of the posterior means "
                        "against the data's ground-truth factors (sprites), on a seeded sample of --limit examples (default: "
                        "10000: about 30 s for a convolutional model on 2 cores)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress on stderr (a bar on a terminal, else a line every few seconds); the results are printed")


def _load(args):
    from ..runfolder import load

    resolve_run(args)
    cfg = run_config(Path(args.run))
    est = load(args.run)
    return cfg, est, (lambda: load_data(args, cfg))


def cmd_plot(args) -> int:
    from .. import plots
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise error(f"plots are written as PNG; name the output FILE.png, not {out.name}")
    if args.kind == "traversal" and args.limit is None:
        # The figure reads TRAVERSAL_CODES codes: render no more (sprites' whole test split is 73 728 images).
        args.limit = plots.TRAVERSAL_CODES
    cfg, est, data = _load(args)
    classes = cfg.get("run", {}).get("classes")
    kind = args.kind
    if kind == "curves":
        fig = plots.curves_figure(plots.read_metrics(Path(args.run) / "metrics.csv"),
                                  unit=est.loss_unit)
    elif kind == "samples":
        fig = plots.samples_figure(est, n=args.n or 64, seed=args.seed, classes=classes)
    elif kind == "manifold":
        fig = plots.manifold_figure(est, n=args.n or 15, dims=args.dims, label=args.label)
    else:
        ds = data()
        classes = classes or ds.classes
        if kind == "reconstructions":
            fig = plots.reconstructions_figure(est, ds.X, ds.y, n=args.n or 10, seed=args.seed)
        elif kind == "traversal":
            fig = plots.traversal_figure(est, ds.X, ds.y, steps=args.steps or 11, max_dims=args.n or plots.TRAVERSAL_MAX_DIMS,
                                         seed=args.seed)
        elif kind == "latent":
            fig = plots.latent_figure(est, ds.X, ds.y, classes=classes, method=args.method, seed=args.seed)
        else:
            a, b = args.classes
            fig = plots.interpolation_figure(est, ds.X, ds.y, a=a, b=b, steps=args.steps or 10, classes=classes)
    plots.save_figure(fig, out)
    print(f"wrote {kind} figure to {out}")
    return 0


def cmd_report(args) -> int:
    from ..report import build_comparison, build_report

    if len(args.run) > 1:
        if args.out is None:
            raise error(f"comparing {len(args.run)} runs writes one page outside the run folders; pass --out compare.html")
        path = build_comparison(args.run, args.out, k=args.k, iw_limit=args.iw_limit)
    else:
        path = build_report(args.run[0], args.out, k=args.k, iw_limit=args.iw_limit, progress=sys.stderr.isatty())
    print(f"wrote {path}")
    return 0


def cmd_evaluate(args) -> int:
    from ..atomicfiles import write_json
    from ..data import load_run_dataset
    from ..errors import VaekitError
    from ..evaluate import evaluate, format_results

    if args.disentanglement:
        return _evaluate_disentanglement(args)
    cfg, est, data = _load(args)
    ds = data()
    if est.is_conditional and ds.y is None:
        raise error(f"{args.run} holds a conditional model, which needs labels, but {ds.name} has none; pass --label-column")
    Xtr = ytr = None
    if not args.no_probe and ds.y is not None:
        try:
            tr = load_run_dataset(cfg.get("run", {}), "train", source=args.dataset, data_dir=args.data_dir,
                                  label_column=args.label_column, limit=args.probe_limit,
                                  image_size=args.image_size, channels=args.channels)
            Xtr, ytr = tr.X, tr.y
        except VaekitError as e:
            print(f"vaekit: note: no probes, the train split could not be read ({e})")
    # A bar on a terminal; elsewhere (logs, CI, notebooks) a plain line every few seconds.
    progress = False if args.quiet else True if sys.stderr.isatty() else ProgressLines(f"evaluating (IW log p(x), k={args.k})")
    r = evaluate(est, ds.X, ds.y, X_train=Xtr, y_train=ytr, k=args.k, iw_limit=args.iw_limit,
                 binarize=not args.no_binarize, seed=args.seed, progress=progress)
    print(f"{ds.name} ({args.split} split, {len(ds.X)} examples), per example:")
    print("\n".join(format_results(r)))
    if args.json:
        write_json(Path(args.json), {"run": str(args.run), "dataset": ds.name, "split": args.split, **r})
    return 0


def _evaluate_disentanglement(args) -> int:
    """``vaekit evaluate --disentanglement``: the seven scores of the codes against the data's factors, with what each measures."""
    from ..atomicfiles import write_json
    from ..disentanglement import DISENTANGLEMENT_N, format_scores, score_model

    # A sprites --limit is a seeded sample that covers every factor value (vaekit.data.sprites.cover_order), scored whole.
    args.limit = args.limit or DISENTANGLEMENT_N

    cfg, est, data = _load(args)
    ds = data()
    if ds.factors is None:
        raise error(f"{ds.name} has no ground-truth factors to score the codes against; the disentanglement metrics need a "
                    "dataset that has them: evaluate a run trained with --dataset sprites")
    if est.is_conditional and ds.y is None:
        raise error(f"{args.run} holds a conditional model, which needs labels, but {ds.name} has none; pass --label-column")
    if not args.quiet:  # the one slow step; on stderr, so that the results on stdout stay clean
        print(f"vaekit: encoding {len(ds.X)} examples and scoring their codes against {ds.factors.shape[1]} factors "
              "(about 30 s for a convolutional model on 10 000 sprites on a quiet 2-core machine)", file=sys.stderr, flush=True)
    r = score_model(est, ds.X, ds.factors, ds.y, seed=args.seed)
    print(f"{ds.name} ({args.split} split, {r['n']} examples, seed {args.seed}), codes = posterior means; "
          f"factors {', '.join(ds.factor_names or [])}; each score in [0, 1], higher is more disentangled:")
    print("\n".join(format_scores(r)))
    if args.json:
        write_json(Path(args.json), {"run": str(args.run), "dataset": ds.name, "split": args.split, **r})
    return 0
