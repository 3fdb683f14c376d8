"""``vaekit detect fit`` and ``vaekit detect score``: anomaly detection on CSV, Parquet or .npy files.

``fit`` reads the training file into memory and writes a detector folder (atomically: a staging
folder renamed into place). ``score`` streams the data in chunks of ``--chunk-rows`` rows, so memory
stays flat however large the file is, and writes one output row per input row, in input order, to
a temporary file renamed into place at the end. Everything here is a call into vaekit.anomaly.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from ..anomaly.options import DETECTOR_OPTIONS, KINDS, METHODS, WRAPS  # noqa: F401 - METHODS: the CLI's choices, importable here
from .common import Formatter, add_raw_csv_option, error, say, sizes


def _int_or_auto(text: str):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None


def add_parser(sub) -> None:
    """Register ``detect`` (with ``fit`` and ``score``) on the ``vaekit`` subparsers."""
    p = sub.add_parser("detect", help="anomaly detection: fit a detector, score a file", formatter_class=Formatter,
                       description="Fit an anomaly detector on mostly-normal rows, then score files of any size.\n"
                                   "Example: vaekit detect fit train.csv --out det --label-column is_fraud\n"
                                   "         vaekit detect score det new.csv --out scores.csv --id-column tx_id")
    dsub = p.add_subparsers(dest="detect_command", metavar="ACTION")
    p.set_defaults(func=lambda args: _missing_action(p))

    f = dsub.add_parser("fit", help="train a detector on a CSV, Parquet or .npy file", formatter_class=Formatter)
    f.add_argument("data", metavar="DATA", help="training rows (.csv with a header, .parquet or .npy), assumed mostly normal")
    f.add_argument("--out", required=True, metavar="DETECTOR_DIR", help="detector folder to create")
    f.add_argument("--overwrite", action="store_true", help="replace --out if it already exists")
    f.add_argument("--label-column", default=None, metavar="COL",
                   help="column of 0/1 labels (1 = anomaly): dropped from the features; reports the training ROC-AUC "
                        "(with --fit-on all), and see --fit-on")
    f.add_argument("--fit-on", default="all", choices=["all", "normal"],
                   help="all: train on every row (labels only for the report); normal: train on the rows labelled 0 only (needs --label-column), "
                        "as a novelty detector (novelty=True: its own score terms and neighbours, and a threshold set on "
                        "held-out rows; see docs/anomaly.md)")
    f.add_argument("--id-column", default=None, metavar="COL", help="row identifier column, dropped from the features")
    add_detector_options(f)
    f.add_argument("--quiet", action="store_true", help="print nothing but errors and warnings")
    f.set_defaults(func=cmd_detect_fit)

    s = dsub.add_parser("score", help="score a CSV, Parquet or .npy file in chunks", formatter_class=Formatter)
    s.add_argument("detector", metavar="DETECTOR_DIR", help="a folder written by `vaekit detect fit`")
    s.add_argument("data", metavar="DATA", help="rows to score (.csv, .parquet or .npy) with the training columns")
    s.add_argument("--out", required=True, metavar="FILE",
                   help="output CSV: id (if given), score, is_anomaly (and label), one row per input row in input order")
    s.add_argument("--label-column", default=None, metavar="COL",
                   help="column of 0/1 labels (1 = anomaly): ROC-AUC, PR-AUC and precision@n are printed and written to FILE's .metrics.json")
    s.add_argument("--id-column", default=None, metavar="COL", help="row identifier column, copied to the output")
    s.add_argument("--explain", type=int, default=0, metavar="N",
                   help="add the N features that contribute most to each row's reconstruction term, with their contributions "
                        "(columns contribution_I_nats, or contribution_I_sq_units for an autoencoder or --method reconstruction; "
                        "not in the score's units)")
    add_raw_csv_option(s, "ids and feature names")
    s.add_argument("--chunk-rows", type=int, default=65536, help="rows read and scored at a time (memory grows with this, not with the file)")
    s.add_argument("--progress", choices=["auto", "always", "never"], default="auto",
                   help="progress bar with rows/s on stderr (auto: when stderr is a terminal)")
    s.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    s.add_argument("--quiet", action="store_true", help="print nothing but errors and warnings")
    s.set_defaults(func=cmd_detect_score)


def _model_name(kind: str) -> str:
    """A detector class's ``--model`` name: the name of the model family it wraps."""
    return WRAPS[kind].name


def _per_kind_text(opt) -> str:
    """What the help says of an option whose default or choices differ by detector: each one's default,
    and the choices only some take (as ``elbo and likelihood need --model vae``)."""
    text = ""
    if isinstance(opt.default, dict):
        text = " (default: " + ", ".join(f"{opt.default[k]} for {_model_name(k)}" for k in KINDS) + ")"
    if isinstance(opt.choices, dict):
        for kind in KINDS:
            only = [c for c in opt.choices[kind] if not all(c in opt.choices[k] for k in KINDS)]
            if only:
                text += f"; {' and '.join(only)} need{'s' if len(only) == 1 else ''} --model {_model_name(kind)}"
    return text


def add_detector_options(p: argparse.ArgumentParser) -> None:
    """``--model`` and one flag per detector option that has one, derived from
    vaekit.anomaly.options.DETECTOR_OPTIONS: its help, its default (shown by the formatter), its choices."""
    p.add_argument("--model", default=_model_name(KINDS[0]), choices=[_model_name(k) for k in KINDS],
                   help="; ".join(f"{_model_name(k)}: {k}" for k in KINDS))
    for opt in DETECTOR_OPTIONS:
        if not opt.cli_flag:
            continue
        per_kind = isinstance(opt.default, dict)
        kw = dict(dest=opt.name, default=None if per_kind else opt.default, help=opt.help + _per_kind_text(opt))
        if opt.type == "bool":
            p.add_argument(opt.cli_flag, *opt.extra.get("aliases", ()), action="store_true", **kw)
            continue
        if opt.extra.get("action"):
            kw["action"] = opt.extra["action"]
        else:
            kw["type"] = _int_or_auto if opt.extra.get("auto") else {"int": int, "float": float, "sizes": sizes}.get(opt.type, str)
        if opt.choices is not None:
            kw["choices"] = opt.all_choices()
        else:
            kw["metavar"] = opt.metavar or opt.cli_flag.lstrip("-").upper().replace("-", "_")
        p.add_argument(opt.cli_flag, *opt.extra.get("aliases", ()), **kw)


def _missing_action(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


# -- reading ---------------------------------------------------------------------------------------


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".npy"):
        raise error(f"cannot read {path}: unsupported type {suffix!r}; use .csv, .parquet or .npy")
    if not path.is_file():
        raise error(f"data file not found: {path}; check the path")
    return suffix


# What the NaN/Inf error of a numeric table advises, when fitting and when scoring.
_FIX_FIT = "clean the data or pass --impute to fill them with the training medians"
_FIX_SCORE = "clean the data, or refit the detector with `vaekit detect fit --impute` to fill them with the training medians"


def _frames(path: Path, chunk_rows: int, label_column: str | None, id_column: str | None, categorical: bool,
            nonfinite: str | None = _FIX_FIT, drop: tuple[str, ...] | list[str] = ()):
    """Chunks of ``path`` as (features, labels or None, ids or None).

    Features are a DataFrame (so that the detector matches columns by name and can one-hot
    encode text categories) or, for .npy, an array, in float64: the detector scales in float64
    and clips what lies beyond float32. Numeric-only tables go through
    vaekit.data.iter_table_chunks and its checks (NaN/Inf end in ``nonfinite``'s advice, or pass
    through to the detector's imputation when it is None); tables with categorical columns need
    the raw text, so they are read as DataFrames by the same reader. ``drop`` are columns left out
    of the features unconverted (ID-like columns, columns the detector does not use).
    """
    import numpy as np
    import pandas as pd

    from ..data.tables import column_hint, iter_table_chunks, table_frames

    suffix = _suffix(path)
    if suffix == ".npy":
        if label_column or id_column:
            raise error(f"{path}: a .npy file has no named columns, so --label-column/--id-column cannot be used; use CSV or Parquet")
        yield from iter_table_chunks(path, chunk_rows, dtype=np.float64, nonfinite=nonfinite)
        return
    header = _header(path)
    for flag, col in (("--label-column", label_column), ("--id-column", id_column)):
        if col is not None and col not in header:
            raise error(f"{path}: no column named {col!r} ({flag}){column_hint(col, header)}")
    if label_column is not None:
        _check_label_type(path, label_column)
    drop = tuple(c for c in drop if c in header and c not in (label_column, id_column))
    if not categorical:
        names = [c for c in header if c not in (label_column, id_column) and c not in drop]
        for X, y, ids in iter_table_chunks(path, chunk_rows, label_column, id_column, dtype=np.float64, nonfinite=nonfinite,
                                           drop_columns=drop):
            yield pd.DataFrame(X, columns=names, copy=False), y, ids
        return
    for df in table_frames(path, chunk_rows):
        y = df.pop(label_column).to_numpy() if label_column else None
        ids = df.pop(id_column).to_numpy() if id_column else None
        yield (df.drop(columns=list(drop)) if drop else df), y, ids


def _check_label_type(path: Path, column: str) -> None:
    """Anomaly labels must be numbers 0/1: text labels would be mapped to indices in sorted order,
    which silently decides which class is "the anomaly"."""
    import pandas as pd

    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        head = next(pq.ParquetFile(path).iter_batches(batch_size=1000, columns=[column])).to_pandas()[column]
    else:
        from ..data.tables import sniff_delimiter

        head = pd.read_csv(path, usecols=[column], nrows=1000, sep=sniff_delimiter(path))[column]
    if not (pd.api.types.is_numeric_dtype(head) or pd.api.types.is_bool_dtype(head)):
        raise error(f"{path}: label column {column!r} holds text ({head.iloc[0]!r}); anomaly labels must be 0 (normal) or 1 (anomaly)")


def _header(path: Path) -> list[str]:
    import pandas as pd

    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            return [str(c) for c in pq.ParquetFile(path).schema_arrow.names]
        except Exception as e:  # noqa: BLE001 - any reader failure is a bad file
            raise error(f"{path}: cannot read Parquet ({e}); check that the file is complete") from None
    from ..data.tables import sniff_delimiter

    try:
        return [str(c) for c in pd.read_csv(path, nrows=0, sep=sniff_delimiter(path)).columns]
    except (pd.errors.EmptyDataError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise error(f"{path}: cannot read a CSV header ({e}); the file needs a header row") from None


# -- commands --------------------------------------------------------------------------------------


def _columns(text: str | None, flag: str) -> list[str] | None:
    if not text:
        return None
    cols = [c.strip() for c in text.split(",") if c.strip()]
    if not cols:
        raise error(f"{flag} takes column names separated by commas, got {text!r}")
    return cols


def _param(opt, value):
    """A flag's value as the detector's parameter: sizes as a tuple, columns as a list."""
    from ..options import as_sizes

    if opt.type == "sizes":
        return tuple(as_sizes(value))
    if opt.type == "columns":
        return (list(value) or None) if isinstance(value, list) else _columns(value, opt.cli_flag)
    return value


def make_detector(args):
    """The detector that a `vaekit detect fit` option set describes (library objects only): each
    flag stores under its parameter's name; one not given (None) leaves the detector's default."""
    from ..anomaly.detectors import DETECTORS
    from ..errors import ConfigError

    kind = next(k for k in KINDS if _model_name(k) == args.model)
    params = {o.name: _param(o, getattr(args, o.name)) for o in DETECTOR_OPTIONS if o.cli_flag and getattr(args, o.name) is not None}
    # Rows labelled normal are known to be normal: novelty detection, with its own defaults.
    det = DETECTORS[kind](**params, novelty=args.fit_on == "normal")
    try:
        det.check_params()  # bad options fail before any data is read
    except ConfigError as e:
        # The library's message names the parameter; on the command line, name the flag too.
        opt = next((o for o in DETECTOR_OPTIONS if o.cli_flag and str(e).startswith((f"{o.name} ", f"{o.name}="))), None)
        if opt is None:
            raise
        raise ConfigError(f"{opt.cli_flag}: {e}") from None
    if args.fit_on == "normal" and args.label_column is None:
        raise error("--fit-on normal trains on the rows labelled 0, so it needs --label-column COL")
    return det


def cmd_detect_fit(args) -> int:
    from ..atomicfiles import lock_folder

    # One writer per detector folder: a second `detect fit --out` of the same folder is refused.
    with lock_folder(args.out):
        return _detect_fit(args)


def _detect_fit(args) -> int:
    import numpy as np
    import pandas as pd

    from ..anomaly import detection_metrics
    from ..atomicfiles import publish_dir, staging_dir

    out = Path(args.out)
    if out.exists() and not args.overwrite and (not out.is_dir() or any(out.iterdir())):
        raise error(f"{out} already exists; choose another --out or pass --overwrite to replace it")
    det = make_detector(args)
    data = Path(args.data)
    dropped = _id_like_in_file(data, args, det)
    det.set_params(id_columns=dropped)  # saved with the detector: it leaves exactly these out
    parts, ys = [], []
    for X, y, _ in _frames(data, 1 << 16, args.label_column, args.id_column, det.categorical is not None,
                           None if det.impute else _FIX_FIT, drop=dropped):
        parts.append(X)
        ys.append(y)
    X = pd.concat(parts, ignore_index=True) if isinstance(parts[0], pd.DataFrame) else np.concatenate(parts)
    y = np.concatenate(ys) if args.label_column is not None else None
    if y is not None:
        X, y = _select_rows(args, det, X, y)
    say(args, f"fitting {type(det).__name__} (method {det.method}) on {len(X)} rows x {X.shape[1]} columns of {data}")
    det.fit(X)
    staging = staging_dir(out)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        det.save(staging)
        publish_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # nothing half-written survives a failure
        raise
    say(args, f"threshold {det.threshold_:.6g}: {int(det.labels_.sum())} of {len(X)} training rows flagged ({det.labels_.mean():.2%})")
    held = getattr(det, "calibration_scores_", None)
    if held is not None:
        n = len(held)
        c = det.contamination
        share = f"about --contamination {c:g} or fewer" if 1 / (n + 1) <= c else f"about 1/{n + 1} = {1 / (n + 1):.1%}"
        say(args, f"the threshold is set on {n} normal rows held out of a second network's training ({int((held > det.threshold_).sum())} "
                  f"above it); it flags {share} of new normal rows")
    if y is not None and args.fit_on == "all":
        m = detection_metrics(y, det.decision_scores_)
        say(args, f"training ROC-AUC {_fmt(m['roc_auc'])}, PR-AUC {_fmt(m['pr_auc'])}, precision@{m['n_anomalies']} {_fmt(m['precision_at_n'])}")
    say(args, f"wrote {out}/")
    return 0


def _id_like_in_file(path: Path, args, det) -> list[str]:
    """The ID-like columns of a CSV or Parquet training file (a .npy has none), after checking that the
    columns named by --categorical and --keep-column exist; a one-line warning names them."""
    import pandas as pd

    from ..anomaly.table import id_like_columns
    from ..data.tables import column_hint, table_frames

    if _suffix(path) == ".npy":
        if det.keep_columns or det.categorical:
            raise error(f"{path}: a .npy file has no named columns, so --keep-column/--categorical cannot be used; use CSV or Parquet")
        return []
    header = _header(path)
    named = (("--label-column", [args.label_column] if args.label_column else []), ("--id-column", [args.id_column] if args.id_column else []),
             ("--categorical", det.categorical or []), ("--keep-column", det.keep_columns or []))
    for flag, cols in named:
        for c in cols:
            if c not in header:
                raise error(f"{path}: no column named {c!r} ({flag}){column_hint(c, header)}")
    skip = {args.label_column, args.id_column, *(det.categorical or []), *(det.keep_columns or [])} - {None}
    if not [c for c in header if c not in skip]:
        return []
    frame = pd.concat(list(table_frames(path, 1 << 16, [c for c in header if c not in skip])), ignore_index=True)
    found = id_like_columns(frame, exclude=skip)
    if found:
        what = "; ".join(f"{c!r} ({why})" for c, why in found.items())
        keep = " ".join(f"--keep-column {c}" for c in found)
        print(f"vaekit: warning: leaving out ID-like column(s) {what}; pass {keep} to use them as features", file=sys.stderr)
    return list(found)


def _select_rows(args, det, X, y):
    """The training rows for --fit-on, after a warning when --contamination contradicts the labels."""
    import numpy as np

    from ..anomaly import detection_metrics

    detection_metrics(y, np.zeros(len(y)))  # the labels must be 0/1 before they choose rows
    share = float(np.mean(y))
    if args.fit_on == "normal":
        keep = np.asarray(y) == 0
        if keep.sum() < 2:
            raise error(f"--fit-on normal: only {int(keep.sum())} row(s) of {args.data} are labelled 0; a detector needs at least 2 normal rows")
        say(args, f"--fit-on normal: training on the {int(keep.sum())} rows labelled 0 (leaving out {int((~keep).sum())} anomalies), "
                   "as a novelty detector")
        return X[keep].reset_index(drop=True) if hasattr(X, "reset_index") else X[keep], y[keep]
    if det.threshold is None and share > 0 and not (share / 3 <= det.contamination <= share * 3):
        print(f"vaekit: warning: --contamination {det.contamination:g} is far from the labelled share of anomalies "
              f"{share:.4g} in {args.data}; the threshold flags {det.contamination:.2%} of the training rows "
              f"(pass --contamination {min(share, 0.5):.4g} to match the labels)", file=sys.stderr)
    return X, y


def _fmt(v) -> str:
    return "n/a (one class only)" if v is None else f"{v:.4f}"


def cmd_detect_score(args) -> int:
    import time

    import numpy as np

    from ..anomaly import NONFINITE_SCORE, detection_metrics, load_detector
    from ..atomicfiles import atomic_path, write_json
    from ..csvcells import write_csv
    from ..errors import DataError

    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise error(f"--out {out} must be a .csv file")
    if args.chunk_rows < 1:
        raise error(f"--chunk-rows must be at least 1, got {args.chunk_rows}")
    if args.explain < 0:
        raise error(f"--explain takes the number of features to list (0 for none), got {args.explain}")
    det = load_detector(args.detector, device=args.device)
    data = Path(args.data)
    _suffix(data)
    _check_not_features(det, args)
    show = {"always": True, "never": False}.get(args.progress, sys.stderr.isatty() and not args.quiet)
    from tqdm.auto import tqdm

    unused = _unused_columns(det, data, args)
    if args.explain:
        say(args, f"note: {_explain_note(det)}")
    bar = tqdm(total=_row_count(data), unit="rows", unit_scale=True, disable=not show, desc="scoring", file=sys.stderr)
    scores, labels = [], []
    n, flagged, overflowed, t0 = 0, 0, 0, time.perf_counter()
    try:
        with atomic_path(out) as tmp, open(tmp, "w", newline="") as f:
            for X, y, ids in _frames(data, args.chunk_rows, args.label_column, args.id_column, det.categorical is not None,
                                     None if det.preprocessor_.impute else _FIX_SCORE, drop=unused):
                try:
                    table = _score_chunk(det, X, ids, y, args)
                except DataError as e:
                    if not n:
                        raise
                    raise error(f"{data}, the chunk from row {n} on (rows counted from there): {e}") from None
                if args.label_column is not None:
                    labels.append(np.asarray(y))
                    scores.append(table["score"].to_numpy())  # kept only for the metrics: 8 bytes a row
                write_csv(table, f, raw=args.raw_csv, header=(n == 0), float_format="%.9g")
                overflowed += int((table["score"] >= NONFINITE_SCORE).sum())
                n += len(table)
                flagged += int(table["is_anomaly"].sum())
                bar.update(len(table))
            # Bad labels fail here, before the output is renamed into place.
            m = detection_metrics(np.concatenate(labels), np.concatenate(scores)) if args.label_column is not None else None
    finally:
        bar.close()
    secs = time.perf_counter() - t0
    if overflowed:
        print(f"vaekit: warning: {overflowed} row(s) drove the network beyond float32's range (a NaN/Inf score: values far "
              f"outside the training data); they are written with score {NONFINITE_SCORE:g} and is_anomaly 1", file=sys.stderr)
    say(args, f"scored {n} rows in {secs:.1f}s ({n / max(secs, 1e-9):,.0f} rows/s), {flagged} flagged; wrote {out}")
    if m is not None:
        m.update(threshold=det.threshold_, n_flagged=flagged)
        metrics_path = out.with_suffix(".metrics.json")
        write_json(metrics_path, {"detector": str(args.detector), "data": str(data), **m})
        say(args,
            f"ROC-AUC {_fmt(m['roc_auc'])}  PR-AUC {_fmt(m['pr_auc'])}  precision@{m['n_anomalies']} {_fmt(m['precision_at_n'])}  -> {metrics_path}")
    return 0


def _score_chunk(det, X, ids, y, args):
    """One chunk's output rows: id, score, is_anomaly, the --explain columns, the label."""
    import warnings

    import numpy as np
    import pandas as pd

    from ..anomaly import NonFiniteScoreWarning

    cols = {}
    if args.id_column is not None:
        cols[args.id_column] = ids
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonFiniteScoreWarning)  # cmd_detect_score sums them up in one line
        s = det.decision_function(X)
    cols["score"] = s
    cols["is_anomaly"] = (s > det.threshold_).astype(np.int64)
    if args.explain:
        contrib = det.explain(X)
        k = min(args.explain, contrib.shape[1])
        values = contrib.to_numpy()
        top = np.argsort(-values, axis=1, kind="stable")[:, :k]
        names = np.asarray(contrib.columns, dtype=object)
        unit = explain_unit(det)
        for i in range(k):
            cols[f"feature_{i + 1}"] = names[top[:, i]]
            cols[f"contribution_{i + 1}_{unit}"] = np.take_along_axis(values, top[:, i : i + 1], 1)[:, 0]
    if args.label_column is not None:
        cols[args.label_column] = y
    return pd.DataFrame(cols)


# The unit of decision_function per score method, in words.
SCORE_UNITS = {
    "combined": "robust units (each term minus its training median, over its training spread, summed)",
    "elbo": "nats", "likelihood": "nats", "reconstruction": "squared scaled units",
    "latent": "code-space distance", "knn": "code-space distance",
}


def explain_unit(det) -> str:
    """The unit of --explain's contributions, as it ends their column names: nats or sq_units."""
    return "nats" if det.explains_in_nats else "sq_units"


def _explain_note(det) -> str:
    """One line saying what --explain's contributions measure, and that the score is in other units."""
    if explain_unit(det) == "nats":
        what = "nats: each feature's share of the reconstruction term -E_q[log p(x|z)]"
    else:
        what = "squared scaled units: each feature's share of the squared reconstruction error"
    rel = "the same unit as" if det.method in ("elbo", "likelihood", "reconstruction") else "not on the scale of"
    return f"contribution_I_{explain_unit(det)} columns are in {what}; {rel} the score, which is in {SCORE_UNITS[det.method]}"


def _unused_columns(det, data: Path, args) -> list[str]:
    """Columns of a CSV or Parquet file that the detector does not use (ID-like columns left out at
    fit, any others): left unread, so a text column there cannot fail the scoring."""
    names = det.preprocessor_.feature_names_
    if names is None or data.suffix.lower() == ".npy":
        return []
    used = set(names) | set(det.categorical or [])
    return [c for c in _header(data) if c not in used and c not in (args.label_column, args.id_column)]


def _check_not_features(det, args) -> None:
    """A column the detector was fitted on cannot be dropped now as a label or an id."""
    names = det.preprocessor_.feature_names_ or []
    for flag, col in (("--label-column", args.label_column), ("--id-column", args.id_column)):
        if col is not None and col in names:
            raise error(
                f"column {col!r} was a feature when this detector was fitted, so it cannot be the {flag} now; "
                f"score without {flag} {col}, or refit with `vaekit detect fit ... {flag} {col}` to leave it out of the features"
            )


def _row_count(path: Path) -> int | None:
    """Rows in a Parquet or .npy file from its metadata; None for CSV (counting would read it twice)."""
    import numpy as np

    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception:  # noqa: BLE001 - the reader reports a bad file properly later
            return None
    if path.suffix.lower() == ".npy":
        try:
            return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[0])
        except Exception:  # noqa: BLE001
            return None
    return None
