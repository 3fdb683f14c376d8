"""The tables the anomaly detectors' defaults are chosen and checked on, and the two protocols.

Three sources, each table a (X, y) pair with y = 1 for an anomaly:

* ``adbench``: the twelve ADBench classical tables in ``shared/data/adbench-dev`` (each its own group);
* ``sklearn``: scikit-learn's bundled real tables (breast cancer, wine, iris, digits): the smallest
  class (or one seeded digit) as anomalies, downsampled to 10 % (5 % for digits) of the normal
  rows, seeded;
* ``mnist`` / ``fashion``: image-derived tables the way ADBench derives its image sets: 3000 rows of
  raw pixels in [0, 1], one class as normal and the other nine, downsampled to 5 %, as anomalies;
  three normal classes per dataset, drawn with a fixed seed (not chosen by looking at results).
  (The other way round, one class as the anomalies among nine normal ones, is no anomaly task in
  pixel space: every detector, the forest and kNN included, scored about 50 on it.)

Tables that share a source image set are one *group*, so that a leave-one-group-out estimate never
tunes on a near copy of the table it then scores.

Protocols (``split``): ``unsupervised``, fit on every row without labels and score the same rows;
``normal-only`` (ADBench's semi-supervised setting, ``vaekit detect fit --fit-on normal``), fit on
a seeded random half of the normal rows and score the other half plus every anomaly.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PROTOCOLS = ("unsupervised", "normal-only")


@dataclass(frozen=True)
class Table:
    name: str
    group: str
    source: str

    def load(self, max_rows: int = 10000) -> tuple[np.ndarray, np.ndarray]:
        X, y = _LOADERS[self.source](self.name)
        if max_rows and len(X) > max_rows:
            keep = np.sort(np.random.default_rng(0).choice(len(X), max_rows, replace=False))
            X, y = X[keep], y[keep]
        return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)


def _adbench(name: str):
    d = np.load(DATA / "adbench-dev" / f"{name}.npz", allow_pickle=False)
    return d["X"], d["y"]


def _downsample(X, y_class, anomaly_classes, share: float, seed: int):
    """Rows of ``anomaly_classes`` as anomalies, downsampled to ``share`` of the normal rows."""
    rng = np.random.default_rng(seed)
    is_anom = np.isin(y_class, anomaly_classes)
    normal = np.flatnonzero(~is_anom)
    anom = np.flatnonzero(is_anom)
    n_anom = max(2, min(len(anom), int(round(share * len(normal)))))
    rows = np.sort(np.concatenate([normal, rng.choice(anom, n_anom, replace=False)]))
    return X[rows], is_anom[rows].astype(np.int64)


def _sklearn(name: str):
    from sklearn import datasets

    base, _, cls = name.partition("-")
    X, yc = getattr(datasets, f"load_{base}")(return_X_y=True)
    if base == "digits":
        return _downsample(X, yc, [int(cls)], 0.05, seed=int(cls))
    counts = np.bincount(yc)
    return _downsample(X, yc, [int(np.argmin(counts))], 0.10, seed=0)


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path) as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _images(name: str):
    folder, _, cls = name.rpartition("-")
    X = _idx(DATA / folder / "train-images-idx3-ubyte.gz").reshape(-1, 784) / 255.0
    yc = _idx(DATA / folder / "train-labels-idx1-ubyte.gz").astype(np.int64)
    rng = np.random.default_rng(int(cls))
    normal = rng.choice(np.flatnonzero(yc == int(cls)), 2850, replace=False)
    anomalies = rng.choice(np.flatnonzero(yc != int(cls)), 150, replace=False)  # 5 % of 3000 rows
    rows = np.sort(np.concatenate([normal, anomalies]))
    return X[rows], (yc[rows] != int(cls)).astype(np.int64)


_LOADERS = {"adbench": _adbench, "sklearn": _sklearn, "images": _images}


def _image_tables(folder: str, group: str) -> list[Table]:
    classes = sorted(np.random.default_rng(2026).choice(10, 3, replace=False).tolist())
    return [Table(f"{folder}-{c}", group, "images") for c in classes]


def tables() -> list[Table]:
    ad = sorted((p.stem for p in (DATA / "adbench-dev").glob("*.npz")), key=lambda s: int(s.split("_")[0]))
    out = [Table(n, n, "adbench") for n in ad]
    out += [Table(n, n, "sklearn") for n in ("breast_cancer", "wine", "iris")]
    out += [Table(f"digits-{c}", "digits", "sklearn") for c in (3, 8)]
    out += _image_tables("mnist", "mnist") + _image_tables("fashion-mnist", "fashion-mnist")
    return out


def split(X: np.ndarray, y: np.ndarray, protocol: str, seed: int = 0):
    """(X_fit, X_score, y_score) for a protocol."""
    if protocol == "unsupervised":
        return X, X, y
    if protocol != "normal-only":
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    normal = np.flatnonzero(y == 0)
    half = np.random.default_rng(seed).permutation(normal)[: len(normal) // 2]
    fit = np.zeros(len(y), bool)
    fit[half] = True
    return X[fit], X[~fit], y[~fit]
