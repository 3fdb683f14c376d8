"""Scoring with a saved detector on a distributed engine (Dask's map_partitions, Spark's mapInPandas)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .detectors import _BaseDetector
from .persistence import load_detector
from .writer import CONFIG_FILE

# -- scoring on a distributed engine ---------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _cached_detector(path: str, stamp: float) -> _BaseDetector:
    # Keyed on the folder's detector.json modification time, so a folder replaced in place
    # (`detect fit --overwrite`) is read again rather than served stale.
    return load_detector(path)


def score_partition(detector_dir: str | Path, frame, keep: list[str] | None = None):
    """Score one pandas partition with a saved detector: a DataFrame with ``keep``'s columns, ``score``, ``is_anomaly``.

    Meant for ``dask.dataframe.map_partitions`` and Spark's ``mapInPandas``: the detector is loaded
    once per worker process and cached, the features are picked from ``frame`` by their training
    names (other columns are ignored), and the scores equal ``vaekit detect score``'s row for row.
    The result keeps ``frame``'s index; ``score`` is float64, ``is_anomaly`` int64 (1 = anomaly).
    """
    import pandas as pd

    path = Path(detector_dir).resolve()
    det = _cached_detector(str(path), (path / CONFIG_FILE).stat().st_mtime if (path / CONFIG_FILE).is_file() else 0.0)
    out = pd.DataFrame({c: frame[c] for c in keep or []}, index=frame.index)
    if len(frame) == 0:
        out["score"] = np.empty(0, dtype=np.float64)
        out["is_anomaly"] = np.empty(0, dtype=np.int64)
        return out
    s = det.decision_function(frame)
    out["score"] = s
    out["is_anomaly"] = (s > det.threshold_).astype(np.int64)
    return out
