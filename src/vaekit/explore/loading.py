"""What an explorer is built from: a run folder's model and the data it was trained on, or a detector and its table.

Each function returns ``(estimator, dataset, options)``, the arguments of
:class:`~vaekit.explore.explorer.Explorer`, which ``Explorer.from_run`` passes on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..anomaly.detectors import CONFIG_FILE as DETECTOR_CONFIG  # what marks a folder written by `vaekit detect fit`
from ..errors import DataError, VaekitError
from .limits import MAX_POINTS


def from_run(run: str | Path, *, dataset: str | None, data_dir: str | None, split: str, label_column: str | None,
             limit: int | None) -> tuple[object, object, dict]:
    """A run folder (``vaekit train`` or ``model.save``, or a detector folder) and its data; see ``Explorer.from_run``."""
    from ..data import load_run_dataset
    from ..modelfile import read_config
    from ..runfolder import load

    run = Path(run)
    if (run / DETECTOR_CONFIG).is_file():
        return from_detector(run, dataset, label_column, limit)
    cfg = read_config(run)
    if cfg["part"] != "all":
        raise VaekitError(f"{run} holds only the {cfg['part']} of a model; explore needs both halves (save with part='all')")
    est = load(run)
    meta = cfg.get("run", {})
    data = load_run_dataset(meta, split, source=dataset, data_dir=data_dir, label_column=label_column, limit=limit or MAX_POINTS)
    if tuple(data.shape) != tuple(est.input_shape_):
        raise DataError(f"{run} was trained on examples of shape {tuple(est.input_shape_)} but {data.name} has {data.shape}; "
                        "pass the training data with --dataset (and --data-dir)")
    classes = meta.get("classes") or data.classes
    return est, data, {"name": run.name or str(run), "classes": classes, "max_points": limit or MAX_POINTS,
                       "command": meta.get("command"), "split": split}


def from_detector(path: Path, dataset: str | None, label_column: str | None, limit: int | None) -> tuple[object, object, dict]:
    """An anomaly detector's network, on the first rows of the table ``dataset``.

    The rows go through the detector's own preprocessing (one-hot categories, imputation), so
    the plane shows what its network sees; ``label_column`` (e.g. 0/1 anomaly labels) colours them.
    """
    import pandas as pd

    from ..anomaly import load_detector
    from ..data import Dataset

    det = load_detector(path)
    if dataset is None:
        raise DataError(f"{path} is an anomaly detector, which does not record its data; pass the table with --dataset FILE.csv")
    file = Path(dataset).expanduser()
    if file.suffix.lower() not in (".csv", ".parquet") or not file.is_file():
        raise DataError(f"--dataset {dataset}: a detector is explored on a .csv or .parquet file that exists; check the path")
    n = limit or MAX_POINTS
    df = pd.read_csv(file, nrows=n) if file.suffix.lower() == ".csv" else pd.read_parquet(file).head(n)
    y = None if label_column is None else _labels(df, file, label_column)
    # The detector's preprocessing: the matrix its network was trained on (its estimator scales further itself).
    X = det.preprocessor_.transform(df, who=type(det).__name__)
    names = [str(c) for c in det.preprocessor_.numeric_columns_]
    for col, levels in (getattr(det, "categories_", None) or {}).items():
        names += [f"{col}={level}" for level in levels]
    return det.estimator_, Dataset(X, y, file.name), {
        "name": path.name or str(path), "max_points": n, "feature_names": names,
        "classes": ["normal", "anomaly"] if y is not None and y.max() <= 1 else None}


def _labels(df, file: Path, label_column: str) -> np.ndarray:
    """The class numbers of ``label_column``, popped from ``df``."""
    import pandas as pd

    if label_column not in df.columns:
        raise DataError(f"{file}: no column named {label_column!r}; columns are {[str(c) for c in df.columns][:20]}")
    y = pd.to_numeric(df.pop(label_column), errors="coerce").to_numpy()
    if not np.isfinite(y).all() or (y != np.round(y)).any() or (y < 0).any():
        raise DataError(f"{file}: --label-column {label_column} must hold class numbers 0, 1, ... (e.g. 1 = anomaly)")
    return y.astype(np.int64)
