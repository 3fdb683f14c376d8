"""Tabular anomaly detection: vaekit detectors against IsolationForest, LOF and PCA, ROC-AUC.

Datasets (real, shipped with scikit-learn): breast-cancer (benign = normal, a random 10 of the
malignant rows = anomalies, about 2.7%) and digits (all digits but one = normal, 20 rows of the
rare digit = anomalies). Protocol, per seed: a stratified 60/40 split; every method is fitted
unsupervised on the (contaminated) training part and scored on the test part. Not a timed test.

    python bench/anomaly_tabular.py --seeds 5 --epochs 100 --json bench/anomaly_tabular.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import StandardScaler

from vaekit.anomaly import AutoencoderDetector, VAEDetector


def breast_cancer(seed: int):
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(seed)
    benign, malignant = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    keep = np.r_[benign, rng.choice(malignant, 10, replace=False)]
    return X[keep], (y[keep] == 0).astype(int)


def digits(seed: int, rare: int = 0):
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    normal, anomalous = np.flatnonzero(y != rare), np.flatnonzero(y == rare)
    keep = np.r_[normal, rng.choice(anomalous, 20, replace=False)]
    return X[keep], (y[keep] == rare).astype(int)


class PCAError:
    """Reconstruction error of a PCA keeping 90% of the variance of standardized data."""

    def fit(self, X):
        self.s = StandardScaler().fit(X)
        self.p = PCA(0.9, random_state=0).fit(self.s.transform(X))
        return self

    def decision_function(self, X):
        Z = self.s.transform(X)
        return ((Z - self.p.inverse_transform(self.p.transform(Z))) ** 2).sum(1)


def methods(epochs: int, seed: int) -> dict:
    # The detectors train by steps; an epoch here is a pass over the ~300-1100 training rows.
    nets = dict(latent_dim=4, hidden=(32,), n_steps=epochs * 20, batch_size=32, seed=seed)
    return {
        "VAE combined (default)": lambda: VAEDetector(method="combined", **nets),
        "VAE elbo": lambda: VAEDetector(method="elbo", **nets),
        "VAE likelihood": lambda: VAEDetector(method="likelihood", **nets),
        "VAE reconstruction": lambda: VAEDetector(method="reconstruction", **nets),
        "VAE latent": lambda: VAEDetector(method="latent", **nets),
        "AE reconstruction": lambda: AutoencoderDetector(method="reconstruction", **nets),
        "IsolationForest": lambda: _Flip(IsolationForest(random_state=seed)),
        "LOF (novelty)": lambda: _Flip(LocalOutlierFactor(novelty=True)),
        "PCA error": lambda: PCAError(),
    }


class _Flip:
    """scikit-learn's outlier detectors score inliers high; flip to "higher = more anomalous"."""

    def __init__(self, est):
        self.est = est

    def fit(self, X):
        self.est.fit(X)
        return self

    def decision_function(self, X):
        return -self.est.score_samples(X)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="seeds to average over")
    ap.add_argument("--epochs", type=int, default=100, help="training epochs of the vaekit detectors")
    ap.add_argument("--json", default="bench/anomaly_tabular.json", help="where to write the results")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = {"breast-cancer": breast_cancer, "digits (rare 0)": digits}
    res: dict[str, dict[str, list[float]]] = {}
    t0 = time.time()
    for dname, make in data.items():
        for seed in range(args.seeds):
            X, y = make(seed)
            Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.4, stratify=y, random_state=seed)
            for mname, build in methods(args.epochs, seed).items():
                s = build().fit(Xtr.astype(np.float32)).decision_function(Xte.astype(np.float32))
                res.setdefault(mname, {}).setdefault(dname, []).append(float(roc_auc_score(yte, s)))
    names = list(data)
    print(f"ROC-AUC on held-out rows, mean over {args.seeds} seeds (std in brackets); {time.time() - t0:.0f}s")
    print(f"{'method':<20}" + "".join(f"{n:>22}" for n in names) + f"{'mean':>10}")
    table = {}
    for m, per in res.items():
        means = [np.mean(per[n]) for n in names]
        table[m] = {n: {"mean": float(np.mean(per[n])), "std": float(np.std(per[n])), "runs": per[n]} for n in names}
        table[m]["mean"] = float(np.mean(means))
        print(f"{m:<20}" + "".join(f"{np.mean(per[n]):>14.3f} ({np.std(per[n]):.3f})" for n in names) + f"{np.mean(means):>10.3f}")
    with open(args.json, "w") as f:
        json.dump({"seeds": args.seeds, "epochs": args.epochs, "results": table}, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
