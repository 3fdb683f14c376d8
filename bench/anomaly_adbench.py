"""Anomaly detection on ADBench's classical tables in both protocols: vaekit against the usual detectors.

Protocols (``bench/anomaly_corpus.py``):

* **unsupervised** (ADBench's): every detector, at its defaults, is fitted on all rows of a set
  without labels and scores the same rows;
* **normal-only** (ADBench's semi-supervised setting; ``vaekit detect fit --fit-on normal``): fitted
  on a seeded random half of the normal rows, scoring the other half plus every anomaly.

ROC-AUC and average precision (AP) against the labels, in percent, the mean rank among the
detectors, and seconds (fit + score). Sets larger than ``--max-rows`` are subsampled (uniformly,
seeded; the same rows for every detector) because kNN, LOF and PyOD's networks grow faster than
linearly with the rows; a last table times the default vaekit detector and IsolationForest on the
two largest sets in full. One thread (``torch.set_num_threads(1)``, ``OMP_NUM_THREADS=1`` set
before numpy loads). ``--corpus`` runs every table ``bench/anomaly_corpus.py`` lists instead of the
twelve ADBench sets.

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/anomaly_adbench.py --json bench/anomaly_adbench.json

vaekit columns: ``VAEDetector()`` (the default, score ``combined``; in the normal-only protocol
``VAEDetector(novelty=True)``, what ``--fit-on normal`` makes) and the single-term scores of that same
fitted detector (``elbo``, ``likelihood``, ``knn_input``), then ``AutoencoderDetector()`` and its
``reconstruction``, ``knn`` and ``knn_input`` terms. Terms read from one fit share that fit's seconds.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy, scipy and torch start their pools

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly_corpus import PROTOCOLS, split, tables  # noqa: E402

from vaekit.anomaly import AutoencoderDetector, VAEDetector  # noqa: E402

DEFAULT = "vaekit VAEDetector()"


# -- baselines: each takes (rows to fit on, rows to score) and returns scores, higher = more anomalous --


def isolation_forest(Xf, Xs):
    return -IsolationForest(random_state=0).fit(Xf).score_samples(Xs)


def lof(Xf, Xs):
    sc = StandardScaler().fit(Xf)
    if Xf is Xs:
        return -LocalOutlierFactor().fit(sc.transform(Xf)).negative_outlier_factor_
    return -LocalOutlierFactor(novelty=True).fit(sc.transform(Xf)).score_samples(sc.transform(Xs))


def knn(Xf, Xs, k: int = 5):
    """Distance to the k-th nearest training row (PyOD KNN's 'largest' default), standardized features.
    When the scored rows are the training rows, a row's own zero distance is skipped."""
    sc = StandardScaler().fit(Xf)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(sc.transform(Xf))
    if Xf is Xs:
        return nn.kneighbors(sc.transform(Xf))[0][:, -1]
    return nn.kneighbors(sc.transform(Xs), n_neighbors=k)[0][:, -1]


def pca_error(Xf, Xs):
    """Squared reconstruction error of a PCA keeping 90% of the variance of standardized data."""
    sc = StandardScaler().fit(Xf)
    p = PCA(0.9, random_state=0).fit(sc.transform(Xf))
    Z = sc.transform(Xs)
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
        def score(Xf, Xs):
            det = make().fit(Xf)
            return det.decision_scores_ if Xf is Xs else det.decision_function(Xs)
        return score

    return {"PyOD ECOD": run(ECOD), "PyOD AutoEncoder": run(lambda: AutoEncoder(verbose=0, random_state=0)),
            "PyOD VAE": run(lambda: VAE(verbose=0, random_state=0))}


def timed(fn, Xf, Xs):
    t = time.perf_counter()
    s = fn(Xf, Xs)
    return np.asarray(s, dtype=np.float64), time.perf_counter() - t


def vaekit_columns(Xf, Xs, novelty: bool) -> dict[str, tuple[np.ndarray, float, float]]:
    """name -> (scores, fit seconds, score seconds) for the vaekit detectors and their terms.

    ``novelty``: the normal-only protocol, where the training rows are known to be normal: the
    detectors are made as ``vaekit detect fit --fit-on normal`` makes them (``novelty=True``)."""
    out = {}
    for label, det, terms in (
        ("VAEDetector", VAEDetector(novelty=novelty), ("elbo", "likelihood", "knn_input")),
        ("AutoencoderDetector", AutoencoderDetector(novelty=novelty), ("reconstruction", "knn", "knn_input")),
    ):
        t = time.perf_counter()
        det.fit(Xf)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        table = det.score_terms(Xs)
        score_s = time.perf_counter() - t
        out[f"vaekit {label}()"] = (table["score"].to_numpy(), fit_s, score_s)
        for term in terms:
            out[f"  {label} {term}"] = (table[term].to_numpy(), fit_s, score_s)
    return out


def run_set(table, protocol: str, max_rows: int, baselines: dict) -> dict:
    X, y = table.load(max_rows)
    Xf, Xs, ys = split(X, y, protocol)
    if protocol == "unsupervised":
        Xs = Xf  # the same object: the baselines then score their own training rows
    res = {}
    for name, fn in baselines.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s, secs = timed(fn, Xf, Xs)
        res[name] = (s, secs, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res.update(vaekit_columns(Xf, Xs, novelty=protocol == "normal-only"))
    row = {"rows": len(X), "features": X.shape[1], "anomalies": int(y.sum()), "scored": len(ys)}
    for name, (s, fit_s, score_s) in res.items():
        row[name] = {"roc_auc": 100 * roc_auc_score(ys, s), "ap": 100 * average_precision_score(ys, s), "seconds": fit_s + score_s}
    return row


def mean_ranks(results: dict, names: list[str], metric: str) -> dict[str, float]:
    from scipy.stats import rankdata

    ranks = [rankdata([-results[s][n][metric] for n in names]) for s in results]
    return dict(zip(names, np.mean(ranks, axis=0)))


def print_tables(results: dict, names: list[str], protocol: str) -> None:
    sets = list(results)
    short = {s: (s.split("_", 1)[1] if s[0].isdigit() else s)[:9] for s in sets}
    what = {"unsupervised": "fit on all rows, score all rows",
            "normal-only": "fit on a seeded half of the normal rows, score the other half and every anomaly"}[protocol]
    for metric, title in (("roc_auc", "ROC-AUC"), ("ap", "average precision")):
        print(f"\n{protocol}: {title} (%), {what}")
        heads = "".join(f"{short[s]:>10s}" for s in sets)
        print(f"{'detector':40s}" + heads + f"{'mean':>8s}{'rank':>7s}{'sec':>8s}")
        ranks = mean_ranks(results, names, metric)
        for n in names:
            vals = [results[s][n][metric] for s in sets]
            secs = sum(results[s][n]["seconds"] for s in sets)
            print(f"{n:40s}" + "".join(f"{v:10.1f}" for v in vals) + f"{np.mean(vals):8.2f}{ranks[n]:7.2f}{secs:8.1f}")
    for other in ("IsolationForest", "kNN distance"):
        gap = [results[s][DEFAULT]["roc_auc"] - results[s][other]["roc_auc"] for s in sets]
        print(f"{DEFAULT} minus {other}, ROC-AUC points: mean {np.mean(gap):+.2f}, worst set {min(gap):+.1f} "
              f"({sets[int(np.argmin(gap))]}), ahead on {sum(g > 0 for g in gap)} of {len(gap)}")


def full_size_timing(files: list[str]) -> list[dict]:
    rows = []
    by_name = {t.name: t for t in tables()}
    for f in files:
        X, y = by_name[f].load(0)
        for name, fn in (("IsolationForest", lambda X: isolation_forest(X, X)),
                         (DEFAULT, lambda X: VAEDetector().fit(X).decision_scores_)):
            t = time.perf_counter()
            s = fn(X)
            secs = time.perf_counter() - t
            rows.append({"set": f, "rows": len(X), "detector": name, "seconds": secs, "roc_auc": 100 * roc_auc_score(y, s)})
    print("\nfull size, unsupervised, fit + score all rows, one thread")
    print(f"{'set':20s}{'rows':>9s}  {'detector':24s}{'seconds':>9s}{'ROC-AUC':>9s}")
    for r in rows:
        print(f"{r['set']:20s}{r['rows']:9d}  {r['detector']:24s}{r['seconds']:9.1f}{r['roc_auc']:9.1f}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="*", default=None, help="table names, e.g. 11_donors wine (default: the twelve ADBench sets)")
    ap.add_argument("--corpus", action="store_true", help="every table of bench/anomaly_corpus.py, not only the ADBench sets")
    ap.add_argument("--protocols", nargs="*", default=list(PROTOCOLS), choices=PROTOCOLS)
    ap.add_argument("--max-rows", type=int, default=10000, help="subsample larger sets to this many rows (0 = all)")
    ap.add_argument("--no-pyod", action="store_true", help="leave out PyOD's detectors")
    ap.add_argument("--full-size", nargs="*", default=["11_donors", "16_http"], help="sets timed in full (none: skip)")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers here")
    ap.add_argument("--full-size-only", action="store_true", help="only the full-size timing (its entry in --json replaced)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.full_size_only:
        full = full_size_timing(args.full_size)
        if args.json:
            saved = json.loads(args.json.read_text()) if args.json.exists() else {}
            args.json.write_text(json.dumps({**saved, "full_size": full}, indent=1))
        return
    chosen = [t for t in tables() if (t.name in args.sets if args.sets else args.corpus or t.source == "adbench")]
    if not chosen:
        raise SystemExit(f"no such tables {args.sets}; choose from {', '.join(t.name for t in tables())}")
    baselines = {"IsolationForest": isolation_forest, "LOF": lof, "kNN distance": knn, "PCA reconstruction": pca_error}
    if not args.no_pyod:
        baselines.update(pyod_detectors())
    t0 = time.perf_counter()
    results: dict[str, dict] = {p: {} for p in args.protocols}
    for table in chosen:
        for p in args.protocols:
            results[p][table.name] = r = run_set(table, p, args.max_rows, baselines)
            print(f"{table.name} ({p}): {r['rows']} rows x {r['features']}, {time.perf_counter() - t0:.0f}s so far", flush=True)
    print(f"\n{len(chosen)} sets, at most {args.max_rows} rows each; {time.perf_counter() - t0:.0f}s; load {os.getloadavg()[0]:.1f}")
    for p in args.protocols:
        first = next(iter(results[p].values()))
        print_tables(results[p], [n for n in first if isinstance(first[n], dict)], p)
    full = full_size_timing(args.full_size) if args.full_size else []
    if args.json:
        args.json.write_text(json.dumps({"max_rows": args.max_rows, "results": results, "full_size": full}, indent=1))


if __name__ == "__main__":
    main()
