"""Unsupervised anomaly detection on ADBench's classical tables: vaekit against the usual detectors.

Protocol (ADBench's unsupervised one): every detector, with its defaults, is fitted on all rows of
a set without labels and scores the same rows; ROC-AUC and average precision (AP) against the
labels, in percent. Sets larger than ``--max-rows`` are subsampled (uniformly, seeded; the same rows
for every detector) because kNN, LOF and PyOD's networks grow faster than linearly with the rows;
a second table then times the default vaekit detector and IsolationForest on the two largest sets
in full. One thread (``torch.set_num_threads(1)``, ``OMP_NUM_THREADS=1`` set before numpy loads).

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/anomaly_adbench.py --json bench/anomaly_adbench.json

vaekit columns: ``VAEDetector()`` (the default, score ``combined``) and the single-term scores of
that same fitted network (``elbo``, ``likelihood``, ``reconstruction``, ``knn``), then
``AutoencoderDetector(method="combined")`` and its ``reconstruction`` (the autoencoder's default)
and ``knn`` terms. Terms read from one fit share that fit's seconds.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy, scipy and torch start their pools

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.ensemble import IsolationForest  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from vaekit.anomaly import AutoencoderDetector, VAEDetector  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "adbench-dev"
DEFAULT = "vaekit VAEDetector()"


def load_set(path: Path, max_rows: int, seed: int = 0):
    d = np.load(path, allow_pickle=False)
    X, y = d["X"].astype(np.float64), d["y"].astype(np.int64)
    if max_rows and len(X) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(X), max_rows, replace=False))
        X, y = X[keep], y[keep]
    return X, y


# -- baselines: each returns scores, higher = more anomalous ----------------------------------------


def isolation_forest(X):
    return -IsolationForest(random_state=0).fit(X).score_samples(X)


def lof(X):
    Z = StandardScaler().fit_transform(X)
    return -LocalOutlierFactor().fit(Z).negative_outlier_factor_


def knn(X, k: int = 5):
    """Distance to the k-th nearest other row (PyOD KNN's 'largest' default), standardized features."""
    Z = StandardScaler().fit_transform(X)
    d, _ = NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z)
    return d[:, -1]


def pca_error(X):
    """Squared reconstruction error of a PCA keeping 90% of the variance of standardized data."""
    Z = StandardScaler().fit_transform(X)
    p = PCA(0.9, random_state=0).fit(Z)
    return ((Z - p.inverse_transform(p.transform(Z))) ** 2).sum(1)


def pyod_detectors() -> dict:
    """PyOD's ECOD, AutoEncoder and VAE with their defaults, when PyOD is installed."""
    try:
        from pyod.models.auto_encoder import AutoEncoder
        from pyod.models.ecod import ECOD
        from pyod.models.vae import VAE
    except ImportError as e:
        print(f"PyOD columns skipped: {e}")
        return {}

    def run(make):
        def score(X):
            return make().fit(X).decision_scores_
        return score

    return {"PyOD ECOD": run(ECOD), "PyOD AutoEncoder": run(lambda: AutoEncoder(verbose=0, random_state=0)),
            "PyOD VAE": run(lambda: VAE(verbose=0, random_state=0))}


def timed(fn, X):
    t = time.perf_counter()
    s = fn(X)
    return np.asarray(s, dtype=np.float64), time.perf_counter() - t


def vaekit_columns(X) -> dict[str, tuple[np.ndarray, float, float]]:
    """name -> (scores, fit seconds, score seconds) for the vaekit detectors and their terms."""
    out = {}
    for label, det, terms in (
        ("VAEDetector", VAEDetector(), ("elbo", "likelihood", "reconstruction", "knn")),
        ("AutoencoderDetector", AutoencoderDetector(method="combined"), ("reconstruction", "knn")),
    ):
        t = time.perf_counter()
        det.fit(X)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        table = det.score_terms(X)
        score_s = time.perf_counter() - t
        main = f"vaekit {label}()" if label == "VAEDetector" else f"vaekit {label}(method='combined')"
        out[main] = (table["score"].to_numpy(), fit_s, score_s)
        for term in terms:
            out[f"  {label} {term}"] = (table[term].to_numpy(), fit_s, score_s)
    return out


def run_set(path: Path, max_rows: int, baselines: dict) -> dict:
    X, y = load_set(path, max_rows)
    res = {}
    for name, fn in baselines.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s, secs = timed(fn, X)
        res[name] = (s, secs, 0.0)
    res.update(vaekit_columns(X))
    row = {"rows": len(X), "features": X.shape[1], "anomalies": int(y.sum())}
    for name, (s, fit_s, score_s) in res.items():
        row[name] = {"roc_auc": 100 * roc_auc_score(y, s), "ap": 100 * average_precision_score(y, s), "seconds": fit_s + score_s}
    return row


def mean_ranks(results: dict, names: list[str], metric: str) -> dict[str, float]:
    from scipy.stats import rankdata

    ranks = [rankdata([-results[s][n][metric] for n in names]) for s in results]
    return dict(zip(names, np.mean(ranks, axis=0)))


def print_tables(results: dict, names: list[str], held_out: set[str]) -> None:
    sets = list(results)
    short = {s: s.split("_", 1)[1][:9] for s in sets}
    for metric, title in (("roc_auc", "ROC-AUC"), ("ap", "average precision")):
        print(f"\n{title} (%), fit on all rows, score all rows; * = held-out set (not looked at while choosing defaults)")
        heads = "".join(f"{short[s] + ('*' if s in held_out else ''):>11s}" for s in sets)
        print(f"{'detector':46s}" + heads + f"{'mean':>8s}{'rank':>7s}{'sec':>8s}")
        ranks = mean_ranks(results, names, metric)
        for n in names:
            vals = [results[s][n][metric] for s in sets]
            secs = sum(results[s][n]["seconds"] for s in sets)
            print(f"{n:46s}" + "".join(f"{v:11.1f}" for v in vals) + f"{np.mean(vals):8.2f}{ranks[n]:7.2f}{secs:8.1f}")
    iso = "IsolationForest"
    gap = [results[s][DEFAULT]["roc_auc"] - results[s][iso]["roc_auc"] for s in sets]
    dev = [g for s, g in zip(sets, gap) if s not in held_out]
    held = [g for s, g in zip(sets, gap) if s in held_out]
    print(f"\n{DEFAULT} minus IsolationForest, ROC-AUC points: mean {np.mean(gap):+.2f} (development sets {np.mean(dev):+.2f}, "
          f"held-out {np.mean(held):+.2f}), worst set {min(gap):+.1f}")


def full_size_timing(data_dir: Path, files: list[str]) -> list[dict]:
    rows = []
    for f in files:
        X, y = load_set(data_dir / f, 0)
        for name, fn in (("IsolationForest", isolation_forest), (DEFAULT, lambda X: VAEDetector().fit(X).decision_scores_)):
            s, secs = timed(fn, X)
            rows.append({"set": f, "rows": len(X), "detector": name, "seconds": secs, "roc_auc": 100 * roc_auc_score(y, s)})
    print("\nfull size, fit + score all rows, one thread")
    print(f"{'set':20s}{'rows':>9s}  {'detector':24s}{'seconds':>9s}{'ROC-AUC':>9s}")
    for r in rows:
        print(f"{r['set']:20s}{r['rows']:9d}  {r['detector']:24s}{r['seconds']:9.1f}{r['roc_auc']:9.1f}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="folder of ADBench .npz files")
    ap.add_argument("--sets", nargs="*", default=None, help="file names (default: every .npz in --data-dir)")
    ap.add_argument("--max-rows", type=int, default=10000, help="subsample larger sets to this many rows (0 = all)")
    ap.add_argument("--held-out", nargs="*", default=["10_cover.npz", "11_donors.npz", "16_http.npz", "33_skin.npz", "34_smtp.npz", "8_celeba.npz"],
                    help="sets marked as held out in the table (not used while choosing defaults)")
    ap.add_argument("--no-pyod", action="store_true", help="leave out PyOD's detectors")
    ap.add_argument("--full-size", nargs="*", default=["11_donors.npz", "16_http.npz"], help="sets timed in full (none: skip)")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not args.data_dir.is_dir():
        raise SystemExit(f"no data at {args.data_dir}; pass --data-dir (see shared/data/adbench-dev/SOURCES.md)")
    files = args.sets or sorted(p.name for p in args.data_dir.glob("*.npz"))
    files = sorted(files, key=lambda f: int(f.split("_")[0]))
    baselines = {"IsolationForest": isolation_forest, "LOF": lof, "kNN distance": knn, "PCA reconstruction": pca_error}
    if not args.no_pyod:
        baselines.update(pyod_detectors())
    t0 = time.perf_counter()
    results = {}
    for f in files:
        results[f] = run_set(args.data_dir / f, args.max_rows, baselines)
        print(f"{f}: {results[f]['rows']} rows x {results[f]['features']}, {time.perf_counter() - t0:.0f}s so far", flush=True)
    names = [n for n in results[files[0]] if isinstance(results[files[0]][n], dict)]
    print(f"\n{len(files)} sets, at most {args.max_rows} rows each; {time.perf_counter() - t0:.0f}s; load {os.getloadavg()[0]:.1f}")
    print_tables(results, names, set(args.held_out))
    full = full_size_timing(args.data_dir, args.full_size) if args.full_size else []
    if args.json:
        args.json.write_text(json.dumps({"max_rows": args.max_rows, "results": results, "full_size": full}, indent=1))


if __name__ == "__main__":
    main()
