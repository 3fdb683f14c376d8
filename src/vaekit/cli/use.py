"""``vaekit sample``, ``reconstruct`` and ``encode``: use a trained run on new data."""

from __future__ import annotations

from pathlib import Path

from .common import Formatter, add_data_options, add_raw_csv_option, error, images_or_array, load_data, positive_int, run_config, write_array
from .pretrained import add_pretrained_option, resolve_run


def add_parsers(sub) -> None:
    """Register ``sample``, ``reconstruct`` and ``encode`` on the ``vaekit`` subparsers."""
    # -- sample -------------------------------------------------------------------------------
    p = sub.add_parser("sample", help="draw new examples from a trained VAE", formatter_class=Formatter)
    p.add_argument("run", metavar="RUN_DIR", nargs="?", help="a run folder written by `vaekit train` (or --pretrained NAME)")
    add_pretrained_option(p)
    p.add_argument("-n", type=positive_int, default=64, help="number of samples")
    p.add_argument("--label", type=int, default=None, help="class to draw (conditional models only)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", required=True, metavar="FILE", help=".png (image grid), .npy or .csv")
    p.set_defaults(func=cmd_sample)

    # -- reconstruct --------------------------------------------------------------------------
    p = sub.add_parser("reconstruct", help="originals above their reconstructions", formatter_class=Formatter)
    p.add_argument("run", metavar="RUN_DIR", nargs="?", help="a run folder written by `vaekit train` (or --pretrained NAME)")
    add_pretrained_option(p)
    add_data_options(p, None, "test")
    p.add_argument("-n", type=positive_int, default=10, help="number of examples shown")
    p.add_argument("--out", required=True, metavar="FILE", help=".png (image grid), .npy or .csv")
    p.set_defaults(func=cmd_reconstruct)

    # -- encode -------------------------------------------------------------------------------
    p = sub.add_parser("encode", help="write the codes (posterior means) of a dataset", formatter_class=Formatter)
    p.add_argument("run", metavar="RUN_DIR", nargs="?", help="a run folder written by `vaekit train` (or --pretrained NAME)")
    add_pretrained_option(p)
    add_data_options(p, None, "test")
    p.add_argument("--out", required=True, metavar="FILE",
                   help=".npz (arrays z, and y and classes when the data has labels, factors (N x K integers) and "
                        "factor_names when it has ground-truth factors, as sprites does), .csv (columns z0.., and label "
                        "when the data has labels) or .npy (the codes only)")
    add_raw_csv_option(p, "the labels of a .csv")
    p.set_defaults(func=cmd_encode)


def cmd_sample(args) -> int:
    from ..plots import density_preset
    from ..runfolder import load

    resolve_run(args)
    est = load(args.run)
    if est.family.discrete_codes and not est.can_sample:
        raise error(f"{args.run} holds a VQ-VAE without a prior over its code grid yet; train one with `vaekit train-prior {args.run}`")
    if not est.can_sample:
        raise error(f"{args.run} holds {est.family.article} {est.family.title}, which has no prior to sample from; "
                    f"train a VAE (--model {density_preset()})")
    x = est.sample(args.n, label=args.label, seed=args.seed)
    ncol = min(8, args.n) if args.n <= 64 else 10
    title = "samples from the prior" + (f", class {args.label}" if args.label is not None else "")
    images_or_array(Path(args.out), x, ncol, title, est.input_shape_)
    print(f"wrote {args.n} samples to {args.out}")
    return 0


def cmd_reconstruct(args) -> int:
    import numpy as np

    from ..runfolder import load

    resolve_run(args)
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npy", ".csv"):
        raise error(f"cannot write {out}: use a .png (image grid), .npy or .csv file name")
    cfg = run_config(Path(args.run))
    est = load(args.run)
    data = load_data(args, cfg)
    X = data.X[: args.n]
    y = data.y[: args.n] if est.is_conditional else None
    recon = est.reconstruct(X, y)
    if out.suffix.lower() == ".png":
        images_or_array(out, np.concatenate([X, recon]), len(X), "originals (top) and reconstructions (bottom)", est.input_shape_)
    else:
        write_array(out, recon)
    print(f"wrote {len(X)} reconstructions to {out}")
    return 0


def cmd_encode(args) -> int:
    from ..runfolder import load

    resolve_run(args)
    cfg = run_config(Path(args.run))
    est = load(args.run)
    data = load_data(args, cfg)
    y = data.y if est.is_conditional else None
    Z = est.encode(data.X, y)
    out = Path(args.out)
    npz = out.suffix.lower() == ".npz"
    # A VQ-VAE's code is also a grid of codebook indices, and the encoder's vectors before quantization.
    grids = {"indices": est.indices(data.X), "z_e": est.encode_continuous(data.X)} if npz and est.family.discrete_codes else {}
    write_codes(out, Z, data.y, data.classes, raw_csv=args.raw_csv,
                factors=data.factors if npz else None, factor_names=data.factor_names, extra=grids)
    labelled = data.y is not None and out.suffix.lower() != ".npy"
    kept = (["their labels"] if labelled else []) + ([f"factors {', '.join(data.factor_names or [])}"] if npz and data.factors is not None else [])
    kept += [f"{name} {tuple(a.shape)}" for name, a in grids.items()]
    print(f"wrote codes of shape {Z.shape}{' and ' + ' and '.join(kept) if kept else ''} to {out}")
    if data.y is not None and out.suffix.lower() == ".npy":
        print("(the labels are not in a .npy file; write .npz or .csv to keep them beside the codes)")
    if data.factors is not None and not npz:
        print("(the ground-truth factors are written only to a .npz file; write .npz to keep them beside the codes)")
    if est.family.discrete_codes and not npz:
        print("(the codebook index grid and the vectors before quantization are written only to a .npz file)")
    return 0


def write_codes(path: Path, Z, y=None, classes=None, raw_csv: bool = False, factors=None, factor_names=None,
                extra: dict | None = None) -> None:
    """Codes with their labels where known: .npz (z, y, classes, and factors, factor_names when given,
    and the arrays of ``extra`` under their names), .csv (z0.., label) or .npy (z only).

    A .csv's text labels are spreadsheet-safe unless ``raw_csv`` (see vaekit.csvcells). ``factors``
    (int64 N x K, the ground-truth factor classes) go to a .npz only.
    """
    import numpy as np

    from ..atomicfiles import atomic_path
    from ..csvcells import write_csv

    suffix = path.suffix.lower()
    if suffix not in (".npz", ".csv", ".npy"):
        raise error(f"cannot write {path}: use a .npz, .csv or .npy file name")
    if suffix == ".npy" or (suffix == ".csv" and y is None):
        write_array(path, Z, header=",".join(f"z{i}" for i in range(Z.shape[1])))
        return
    with atomic_path(path) as tmp:
        if suffix == ".npz":
            arrays = {"z": Z}
            if y is not None:
                arrays["y"] = y
                if classes is not None:
                    arrays["classes"] = np.asarray([str(c) for c in classes])  # unicode, loads without pickle
            if factors is not None:
                arrays["factors"] = np.asarray(factors, dtype=np.int64)
                if factor_names is not None:
                    arrays["factor_names"] = np.asarray([str(n) for n in factor_names])
            arrays.update(extra or {})
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        else:
            import pandas as pd

            frame = pd.DataFrame(Z, columns=[f"z{i}" for i in range(Z.shape[1])])
            frame["label"] = [classes[k] for k in y] if classes is not None else y
            with open(tmp, "w", newline="") as f:
                write_csv(frame, f, raw=raw_csv, float_format="%.6g")
