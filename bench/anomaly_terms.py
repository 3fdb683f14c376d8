"""Every candidate score term of the anomaly detectors, on every table of the corpus, in both protocols.

Writes one .npz per (table, protocol, seed) into ``--out``: for each term ``T`` the scores of the
rows it was fitted on (``T@fit``, what a combined score's robust location and scale are taken from)
and of the scored rows (``T@score``), plus ``y`` of the scored rows. ``bench/anomaly_select.py``
then chooses a combination by leave-one-group-out over these files, without refitting anything.

Terms: the default ``VAEDetector``'s and ``AutoencoderDetector``'s single-term scores
(``vae.elbo``, ``vae.likelihood``, ``vae.reconstruction``, ``vae.knn``, ``ae.reconstruction``,
``ae.knn``); the input-space neighbour term ``knn_input`` at 5 and 10 neighbours over the 1024 rows a
detector saves (``vae.knnf5``, ``vae.knnf10``) and, for comparison only, the fifth neighbour among all
training rows (``vae.knn5_feat``); isolation forests (scikit-learn's defaults) on the detector's
preprocessed features with and without tail compression (``vae.iso_feat``, ``vae.iso_featc``), on its
codes (``vae.iso_z``) and on codes and residuals (``vae.iso_zr``, ``ae.iso_zr``); and the baselines on
the raw table (``base.iso``: IsolationForest; ``base.knn5``: distance to the fifth neighbour,
standardized features).

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/anomaly_terms.py --out /tmp/anomaly_terms --seeds 0 1 2 [--only NAME ...]

Resumable: a file that exists is skipped.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.ensemble import IsolationForest  # noqa: E402
from sklearn.neighbors import NearestNeighbors  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly_corpus import PROTOCOLS, split, tables  # noqa: E402

from vaekit.anomaly import AutoencoderDetector, VAEDetector  # noqa: E402
from vaekit.anomaly.table import KNEE  # noqa: E402


def expand_tails(c: np.ndarray, knee: float = KNEE) -> np.ndarray:
    """The inverse of ``table.compress_tails``."""
    a = np.abs(c)
    return np.where(a > knee, np.sign(c) * (knee + np.expm1(np.maximum(a - knee, 0.0))), c)


def forest(F_fit, F_score, seed, same):
    f = IsolationForest(random_state=seed).fit(F_fit)
    s_fit = -f.score_samples(F_fit)
    return s_fit, (s_fit if same else -f.score_samples(F_score))


def kth_distance(F_fit, F_score, k, same):
    nn = NearestNeighbors(n_neighbors=k + 1).fit(F_fit)
    d_fit = nn.kneighbors(F_fit)[0][:, -1]  # the row itself is its own nearest neighbour
    return d_fit, (d_fit if same else nn.kneighbors(F_score, n_neighbors=k)[0][:, -1])


def detector_terms(cls, prefix, X_fit, X_score, seed, same, out, n_neighbors=10):
    t = time.perf_counter()
    det = cls(seed=seed, n_neighbors=n_neighbors).fit(X_fit)
    out[f"{prefix}.seconds"] = np.array(time.perf_counter() - t)
    tf = det.score_terms(X_fit)
    ts = tf if same else det.score_terms(X_score)
    for term in ("elbo", "likelihood", "reconstruction", "knn", "explained"):
        if term in tf:
            out[f"{prefix}.{term}@fit"], out[f"{prefix}.{term}@score"] = tf[term].to_numpy(), ts[term].to_numpy()
    F_fit, F_score = det._transform(X_fit), det._transform(X_score)
    views = {"zr": lambda F: np.hstack([det.estimator_.encode(F), F - det.estimator_.reconstruct(F)])}
    if prefix == "vae":
        views.update(feat=expand_tails, featc=lambda F: F)
    for name, view in views.items():
        out[f"{prefix}.iso_{name}@fit"], out[f"{prefix}.iso_{name}@score"] = forest(view(F_fit), view(F_score), seed, same)
    if prefix == "vae":
        views["z"] = lambda F: det.estimator_.encode(F)
        out["vae.iso_z@fit"], out["vae.iso_z@score"] = forest(views["z"](F_fit), views["z"](F_score), seed, same)
        out["vae.knn5_feat@fit"], out["vae.knn5_feat@score"] = kth_distance(F_fit, F_score, 5, same)
        # The way a detector can afford it: mean distance to the k nearest of 1024 saved training
        # rows (the rows its code-space knn keeps), the row itself included when it is one of them.
        ref = F_fit[np.sort(np.random.default_rng(seed).permutation(len(F_fit))[:1024])]
        nn = NearestNeighbors(n_neighbors=min(10, len(ref))).fit(ref)
        for k in (5, 10):  # knn_input at n_neighbors 5 and 10
            k = min(k, len(ref))
            out[f"vae.knnf{k}@fit"] = nn.kneighbors(F_fit, n_neighbors=k)[0].mean(1)
            out[f"vae.knnf{k}@score"] = out[f"vae.knnf{k}@fit"] if same else nn.kneighbors(F_score, n_neighbors=k)[0].mean(1)


def run(table, protocol, seed, max_rows, n_neighbors=10):
    X, y = table.load(max_rows)
    X_fit, X_score, y_score = split(X, y, protocol, seed)
    same = protocol == "unsupervised"
    out = {"y": y_score, "group": np.array(table.group), "rows": np.array(len(X)), "features": np.array(X.shape[1])}
    out["base.iso@fit"], out["base.iso@score"] = forest(X_fit, X_score, seed, same)
    sc = StandardScaler().fit(X_fit)
    out["base.knn5@fit"], out["base.knn5@score"] = kth_distance(sc.transform(X_fit), sc.transform(X_score), 5, same)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector_terms(VAEDetector, "vae", X_fit, X_score, seed, same, out, n_neighbors)
        detector_terms(AutoencoderDetector, "ae", X_fit, X_score, seed, same, out, n_neighbors)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", nargs="*", default=None, help="table names (default: all)")
    ap.add_argument("--protocols", nargs="*", default=list(PROTOCOLS))
    ap.add_argument("--seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--max-rows", type=int, default=10000)
    ap.add_argument("--n-neighbors", type=int, default=10, help="the detectors' n_neighbors (their code-space knn term)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    for table in tables():
        if args.only and table.name not in args.only:
            continue
        for protocol in args.protocols:
            for seed in args.seeds:
                path = args.out / f"{table.name}__{protocol}__s{seed}.npz"
                if path.exists():
                    continue
                t = time.perf_counter()
                out = run(table, protocol, seed, args.max_rows, args.n_neighbors)
                tmp = path.with_suffix(".tmp.npz")
                np.savez(tmp, **out)
                tmp.rename(path)
                print(f"{path.name}: {int(out['rows'])} rows x {int(out['features'])}, {time.perf_counter() - t:.0f}s", flush=True)


if __name__ == "__main__":
    main()
