"""Every candidate score term of the anomaly detectors, on every table of the corpus, in both protocols.

Writes one .npz per (table, protocol, seed) into ``--out``: for each term ``T`` the scores of the
rows it was fitted on (``T@fit``, what a combined score's robust location and scale are taken from)
and of the scored rows (``T@score``), plus ``y`` of the scored rows. ``bench/anomaly_select.py``
then chooses a combination by leave-one-group-out over these files, without refitting anything.

Terms: the default ``VAEDetector``'s and ``AutoencoderDetector``'s single-term scores
(``vae.elbo``, ``vae.likelihood``, ``vae.reconstruction``, ``vae.knn``, ``ae.reconstruction``,
``ae.knn``); the input-space neighbour term ``knn_input`` at 5 and 10 neighbours over the 1024 rows a
detector saves (``vae.knnf5``, ``vae.knnf10``) and, for comparison only, the fifth neighbour among all
training rows (``vae.knn5_feat``); the same over up to 8192 training rows (``vae.knnfall5``,
``vae.knnfall10``; codes: ``{vae,ae}.knnall5``), the reference of novelty detection; over a self-cleaned
reference, 1024 rows drawn from those below the 1 - q quantile of the family's first-pass score
(``{vae,ae}.knnf10_c{q}``, q = 5 to 50 %; codes ``{vae,ae}.knn_c{q}``, q = 5 to 20 %); isolation forests (scikit-learn's defaults) on the detector's
preprocessed features with and without tail compression (``vae.iso_feat``, ``vae.iso_featc``), on its
codes (``vae.iso_z``) and on codes and residuals (``vae.iso_zr``, ``ae.iso_zr``); and the baselines on
the raw table (``base.iso``: IsolationForest; ``base.knn5``: distance to the fifth neighbour,
standardized features).

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/anomaly_terms.py --out /tmp/anomaly_terms --seeds 0 1 2 [--only NAME ...]

(About 25 minutes in one process; two processes on different ``--seeds`` may share the folder.)

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
        pick = np.sort(np.random.default_rng(seed).permutation(len(F_fit))[:1024])
        for k in (5, 10):  # knn_input at n_neighbors 5 and 10
            out[f"vae.knnf{k}@fit"], out[f"vae.knnf{k}@score"] = mean_knn(F_fit[pick], F_fit, F_score, k, same)
        # Novelty mode: the training rows are known to be normal, so keep up to 8192 of them (all, on
        # these tables) as the input-space reference, at 5 and 10 neighbours, and the codes likewise.
        dense = np.sort(np.random.default_rng(seed).permutation(len(F_fit))[:8192])
        for k in (5, 10):
            out[f"vae.knnfall{k}@fit"], out[f"vae.knnfall{k}@score"] = mean_knn(F_fit[dense], F_fit, F_score, k, same)
    Z_fit, Z_score = det.estimator_.encode(F_fit), det.estimator_.encode(F_score)
    dense = np.sort(np.random.default_rng(seed).permutation(len(F_fit))[:8192])
    out[f"{prefix}.knnall5@fit"], out[f"{prefix}.knnall5@score"] = mean_knn(Z_fit[dense], Z_fit, Z_score, 5, same)
    # Self-cleaned references: the 1024 reference rows drawn only from training rows whose first-pass
    # score (the family's default: elbo or reconstruction, + knn + knn_input) is below its 1 - q quantile.
    first_terms = [out[f"{prefix}.{'elbo' if prefix == 'vae' else 'reconstruction'}@fit"], out[f"{prefix}.knn@fit"]]
    ref0 = F_fit[np.sort(np.random.default_rng(seed).permutation(len(F_fit))[:1024])]
    first_terms.append(mean_knn(ref0, F_fit, F_fit, 10, True)[0])
    first = sum(robust_z_fit(t) for t in first_terms)
    for q in (5, 10, 20, 30, 40, 50):
        keep = np.flatnonzero(first <= np.quantile(first, 1 - q / 100))
        pick = np.sort(np.random.default_rng(seed).permutation(keep)[:1024])
        out[f"{prefix}.knnf10_c{q}@fit"], out[f"{prefix}.knnf10_c{q}@score"] = mean_knn(F_fit[pick], F_fit, F_score, 10, same)
        if q <= 20:
            out[f"{prefix}.knn_c{q}@fit"], out[f"{prefix}.knn_c{q}@score"] = mean_knn(Z_fit[pick], Z_fit, Z_score, 10, same)


def robust_z_fit(t: np.ndarray) -> np.ndarray:
    """A term's robust z-score on its own rows (median, IQR / 1.349), as method='combined' scales it."""
    q75, q25 = np.percentile(t, [75, 25])
    scale = (q75 - q25) / 1.349
    return (t - np.median(t)) / (scale if scale > 0 else (t.std() or 1.0))


def mean_knn(ref, F_fit, F_score, k, same):
    """Mean distance to the k nearest reference rows (self included when a row is one), fit and scored rows."""
    k = min(k, len(ref))
    nn = NearestNeighbors(n_neighbors=k).fit(ref)
    d_fit = nn.kneighbors(F_fit, n_neighbors=k)[0].mean(1)
    return d_fit, (d_fit if same else nn.kneighbors(F_score, n_neighbors=k)[0].mean(1))


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
