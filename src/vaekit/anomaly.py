"""Anomaly detectors with the scikit-learn / PyOD interface, built on vaekit's autoencoders.

    >>> from vaekit.anomaly import VAEDetector, load_detector
    >>> det = VAEDetector(contamination=0.01, score="elbo").fit(X_train)   # mostly normal rows
    >>> det.decision_function(X_new)      # higher = more anomalous
    >>> det.predict(X_new)                # 1 = anomaly, 0 = normal (PyOD's convention)
    >>> det.save("detectors/cards"); same = load_detector("detectors/cards")

A detector is a preprocessing step (categorical one-hot, optional median imputation), a
:class:`vaekit.estimators.VAE` or :class:`~vaekit.estimators.Autoencoder` trained on the result
(standardized, with a Gaussian decoder by default), and a score. Scores, higher = more anomalous:

- ``'reconstruction'``: squared error ``||x - decode(encode(x))||^2`` summed over features, in
  standardized units, through the posterior mean (so deterministic);
- ``'elbo'``: the negative ELBO ``-(E_q[log p(x|z)] - KL(q(z|x) || p(z)))``, nats per example;
- ``'likelihood'``: the importance-weighted negative log-likelihood
  ``-log (1/K) sum_k p(x, z_k) / q(z_k|x)`` (Burda et al. 2016, eq. 8), nats per example: the
  "statistical" definition of an anomaly, low density under the model;
- ``'latent'``: Euclidean distance from the code to the nearest of ``n_clusters`` k-means centres
  of the training codes: the "proximity-based" definition.

The two Monte-Carlo scores draw their standardized noise ``eps`` once at fit time (seeded) and
reuse it for every row (common random numbers): a row's score then depends on that row only, never
on the batch or chunk it arrives in, so in-memory and streamed scoring agree and a saved detector
scores the same after loading.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin

from . import distributions as D
from .errors import ConfigError, DataError, ModelFileError

SCORES = ("reconstruction", "elbo", "likelihood", "latent")
PROBA_METHODS = ("linear", "unify")
FORMAT = "vaekit-detector"
FORMAT_VERSION = 1
CONFIG_FILE = "detector.json"
TENSORS_FILE = "detector.safetensors"
MODEL_DIR = "model"

# Rows x samples x features kept in memory at once while scoring (about 16 MB of float32).
_SCORE_BUDGET = 1 << 22


class NotNumericError(DataError, TypeError):
    """A feature cell that is not a number (a TypeError too, as scikit-learn expects)."""


class _BaseDetector(OutlierMixin, BaseEstimator):
    """What both detectors share; see :class:`VAEDetector` for the parameters."""

    _kind = ""

    # -- parameters ----------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.method not in SCORES:
            raise ConfigError(f"unknown score method {self.method!r}; choose one of {', '.join(SCORES)}")
        if self._kind == "ae" and self.method in ("elbo", "likelihood"):
            raise ConfigError(f"score method {self.method!r} needs a VAE (a density model); use VAEDetector or method='reconstruction'/'latent'")
        if self.threshold is None:
            c = self.contamination
            if isinstance(c, bool) or not isinstance(c, (int, float, np.number)) or not 0 < c <= 0.5:
                raise ConfigError(f"contamination is the expected share of anomalies in (0, 0.5], got {c!r}; e.g. 0.01")
        elif not (isinstance(self.threshold, (int, float, np.number)) and math.isfinite(self.threshold)):
            raise ConfigError(f"threshold must be a finite number (a decision_function value), got {self.threshold!r}")
        if int(self.n_clusters) < 1:
            raise ConfigError(f"n_clusters must be at least 1, got {self.n_clusters}")
        if self.proba not in PROBA_METHODS:
            raise ConfigError(f"unknown proba method {self.proba!r}; choose 'linear' or 'unify'")
        if self.standardize and self.likelihood != "gaussian":
            raise ConfigError("standardize=True needs likelihood='gaussian' (standardized data is not in [0, 1]); pass standardize=False for [0, 1] data")

    def _estimator(self):
        from . import estimators

        common = dict(
            latent_dim=self.latent_dim, hidden=self.hidden, activation=self.activation, likelihood=self.likelihood,
            standardize=self.standardize, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
            weight_decay=self.weight_decay, val_fraction=0.0, seed=self.seed, device=self.device, verbose=self.verbose,
        )
        if self._kind == "vae":
            return estimators.VAE(beta=self.beta, learn_sigma=self.learn_sigma, **common)
        return estimators.Autoencoder(**common)

    # -- tables -> a float matrix -----------------------------------------------------------------
    def _columns(self, X, fitting: bool):
        """(numeric block as an object/float array, categorical block as strings or None)."""
        import pandas as pd

        cats = list(self.categorical or [])
        if isinstance(X, pd.DataFrame):
            names = [str(c) for c in X.columns]
            X = X.set_axis(names, axis=1)
            if fitting:
                self.feature_names_in_ = np.asarray(names, dtype=object)
            elif getattr(self, "feature_names_in_", None) is not None:
                want = [str(c) for c in self.feature_names_in_]
                missing = [c for c in want if c not in names]
                if missing:
                    raise DataError(f"columns {missing[:5]} seen in training are missing; pass the same columns as the training data")
                X = X[want]  # match by name, so column order in a new file does not matter
                names = want
            unknown = [c for c in cats if c not in names]
            if unknown:
                raise ConfigError(f"categorical columns {unknown} are not in the data; columns are {names[:20]}")
            numeric = [c for c in names if c not in cats]
            block = X[numeric]
            fast = all(pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t) for t in block.dtypes)
            num = block.to_numpy(dtype=np.float32 if fast else object) if numeric else np.empty((len(X), 0), np.float32)
            cat = X[cats].to_numpy(dtype=object) if cats else None
            return num, cat, numeric
        if hasattr(X, "toarray") or hasattr(X, "tocsr"):
            raise NotNumericError("sparse input is not supported; pass a dense array (X.toarray()) or a DataFrame")
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise DataError(f"X must be a table of shape (n_rows, n_features), got shape {arr.shape}. Reshape your data with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one row")
        if fitting:
            self.__dict__.pop("feature_names_in_", None)
        if cats:
            bad = [c for c in cats if not (isinstance(c, (int, np.integer)) and 0 <= c < arr.shape[1])]
            if bad:
                raise ConfigError(f"with an array, categorical= takes column positions 0..{arr.shape[1] - 1}, got {bad}; or pass a pandas DataFrame and column names")
        numeric = [i for i in range(arr.shape[1]) if i not in cats]
        return arr[:, numeric], (arr[:, cats] if cats else None), numeric

    def _to_float(self, num) -> np.ndarray:
        if num.dtype.kind in "biuf":
            return num.astype(np.float32)
        if num.dtype.kind == "c":
            raise DataError("Complex data not supported: pass real-valued features (e.g. the real and imaginary parts as two columns)")
        try:
            return num.astype(np.float64).astype(np.float32)
        except (TypeError, ValueError) as e:
            flat = num.reshape(-1)
            for i, v in enumerate(flat):
                try:
                    float(v)
                except (TypeError, ValueError):
                    r, c = divmod(i, num.shape[1])
                    raise NotNumericError(
                        f"non-numeric value {v!r} at row {r}, feature {c} ({e}); pass numbers, or name the column in categorical="
                    ) from None
            raise NotNumericError(f"features must be numeric ({e})") from None

    def _features(self, X, fitting: bool = False) -> np.ndarray:
        """X (array or DataFrame) as the float32 matrix the model sees, before standardization."""
        import pandas as pd

        num, cat, numeric = self._columns(X, fitting)
        if len(num) == 0:
            raise DataError(f"X is empty (0 rows); pass at least one row to {'fit' if fitting else 'score'}")
        num = self._to_float(num)
        if fitting:
            self.numeric_columns_ = list(numeric)
            n_feat = num.shape[1] + (0 if cat is None else cat.shape[1])
            if n_feat == 0:
                raise DataError(f"X has 0 feature(s) (shape=({len(num)}, 0)) while a minimum of 1 is required; pass at least one feature column")
            self.n_features_in_ = n_feat
        else:
            n_feat = num.shape[1] + (0 if cat is None else cat.shape[1])
            if n_feat != self.n_features_in_:
                raise DataError(
                    f"X has {n_feat} features, but {type(self).__name__} is expecting {self.n_features_in_} features as input; "
                    "pass the same columns as the training data"
                )
        bad = ~np.isfinite(num)
        if self.impute:
            if fitting:
                with np.errstate(all="ignore"):
                    med = np.nanmedian(np.where(bad, np.nan, num), axis=0) if len(num) else np.zeros(num.shape[1])
                self.impute_values_ = np.where(np.isfinite(med), med, 0.0).astype(np.float32)
            if bad.any():
                num = np.where(bad, self.impute_values_[None, :], num)
        elif bad.any():
            r, c = np.argwhere(bad)[0]
            name = numeric[c]
            raise DataError(
                f"X has {int(bad.sum())} NaN or infinite values (first at row {r}, column {name!r}); "
                "clean the data or pass impute=True (--impute) to fill them with the training medians"
            )
        if cat is None:
            return num
        if fitting:
            self.categories_ = {}
        blocks = [num]
        for j, col in enumerate(self.categorical):
            values = cat[:, j]
            missing = pd.isna(values)
            if missing.any() and not self.impute:
                raise DataError(
                    f"categorical column {col!r} has {int(missing.sum())} missing values (first at row {int(np.argmax(missing))}); "
                    "fill them or pass impute=True (missing categories are then encoded as all-zero)"
                )
            keys = np.array([None if m else str(v) for v, m in zip(values, missing)], dtype=object)
            if fitting:
                self.categories_[str(col)] = sorted({k for k in keys if k is not None})
            levels = self.categories_[str(col)]
            index = {k: i for i, k in enumerate(levels)}
            onehot = np.zeros((len(keys), len(levels)), dtype=np.float32)
            pos = np.fromiter((index.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
            hit = pos >= 0  # unseen or missing categories stay all-zero rather than failing in production
            onehot[np.nonzero(hit)[0], pos[hit]] = 1.0
            blocks.append(onehot)
        return np.concatenate(blocks, axis=1)

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Train on X (rows assumed mostly normal; ``y`` is ignored). Returns self.

        Sets ``decision_scores_`` (the training rows' scores), ``threshold_`` (the
        ``1 - contamination`` quantile of those, or the given ``threshold``) and ``labels_``.
        """
        self._check_params()
        Xf = self._features(X, fitting=True)
        est = self._estimator()
        # A batch larger than the data is an error in the trainer; small tables are common here.
        est.batch_size = int(min(self.batch_size, len(Xf)))
        est.fit(Xf)
        self.estimator_ = est
        cfg = est.model_.config
        if self.method in ("elbo", "likelihood"):
            self.eps_ = _standard_draws(est.posterior, est.student_df, int(self.n_score_samples), cfg.latent_dim, self.seed)
        if self.method == "latent":
            from sklearn.cluster import KMeans

            Z = est.encode(Xf)
            k = int(min(self.n_clusters, len(np.unique(Z, axis=0))))
            km = KMeans(n_clusters=k, n_init=10, random_state=self.seed).fit(Z.astype(np.float64))
            self.cluster_centers_ = km.cluster_centers_.astype(np.float32)
        self.decision_scores_ = self._scores(Xf)
        if self.threshold is not None:
            self.threshold_ = float(self.threshold)
        else:
            self.threshold_ = float(np.quantile(self.decision_scores_, 1.0 - float(self.contamination)))
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)
        return self

    # -- scoring -------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "estimator_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first or load_detector(path)")

    def _scores(self, Xf: np.ndarray) -> np.ndarray:
        est = self.estimator_
        Xs = est.prepare_X(Xf)
        model = est.model_
        k = 1 if self.method in ("reconstruction", "latent") else int(self.n_score_samples)
        batch = max(1, min(4096, _SCORE_BUDGET // (k * max(1, Xs.shape[1]))))
        extra = {}
        if self.method in ("elbo", "likelihood"):
            extra["eps"] = torch.as_tensor(self.eps_, device=est.device_)
        if self.method == "latent":
            extra["centres"] = torch.as_tensor(self.cluster_centers_, device=est.device_)
        fn = {"reconstruction": _reconstruction_error, "elbo": _negative_elbo,
              "likelihood": _iw_nll, "latent": _latent_distance}[self.method]
        return est.batched(lambda xb: fn(model, xb, **extra), Xs, batch_size=batch).astype(np.float64)

    def decision_function(self, X) -> np.ndarray:
        """Anomaly score of each row, shape (N,): higher = more anomalous (PyOD's sign).

        Units depend on ``method``: squared standardized error ('reconstruction'), nats per row
        ('elbo', 'likelihood'), code-space distance ('latent'). Deterministic: the same row always
        gets the same score, whatever batch it comes in.
        """
        self._check_fitted()
        return self._scores(self._features(X))

    def score_samples(self, X) -> np.ndarray:
        """``-decision_function(X)``: scikit-learn's sign, lower = more abnormal."""
        return -self.decision_function(X)

    def predict(self, X) -> np.ndarray:
        """1 for an anomaly (score above ``threshold_``), 0 for a normal row; int64, shape (N,).

        This is PyOD's convention. It differs from scikit-learn's IsolationForest and
        LocalOutlierFactor, whose ``predict`` returns -1 for outliers and +1 for inliers.
        """
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def fit_predict(self, X, y=None) -> np.ndarray:
        """fit(X) then the training rows' labels (1 = anomaly, 0 = normal)."""
        return self.fit(X).labels_

    def predict_proba(self, X) -> np.ndarray:
        """[P(normal), P(anomaly)] per row, shape (N, 2), from the training scores.

        ``proba='linear'``: min-max scaling of the score over the training scores, clipped to
        [0, 1]. ``proba='unify'``: ``erf((s - mean) / (std * sqrt 2))`` clipped at 0 (Kriegel et
        al. 2011, "Interpreting and unifying outlier scores"), as PyOD does. Neither is a
        calibrated probability; both are monotone in the score.
        """
        s = self.decision_function(X)
        train = self.decision_scores_
        if self.proba == "linear":
            lo, hi = float(train.min()), float(train.max())
            p = (s - lo) / (hi - lo) if hi > lo else (s > hi).astype(np.float64)
        else:
            from scipy.special import erf

            sd = float(train.std())
            p = erf((s - float(train.mean())) / ((sd if sd > 0 else 1.0) * math.sqrt(2)))
        p = np.clip(p, 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the detector into the folder ``path``: detector.json, detector.safetensors, model/."""
        self._check_fitted()
        return save_detector(self, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = bool(self.impute)
        tags.non_deterministic = False
        return tags


_SHARED_DOC = """
    Parameters
    ----------
    method : 'reconstruction', 'elbo', 'likelihood' or 'latent'
        The score method: how a row is scored (see the module docstring); higher = more anomalous.
    contamination : float in (0, 0.5]
        Expected share of anomalies in the training data: ``threshold_`` is the
        ``1 - contamination`` quantile of the training scores. Ignored when ``threshold`` is set.
    threshold : float or None
        An explicit threshold on ``decision_function`` (e.g. from a validation set).
    latent_dim, hidden, activation : the networks (code size, hidden layer sizes, activation).
    likelihood : 'gaussian' (real-valued data, no squashing output) or 'bernoulli' (data in [0, 1]).
    standardize : bool
        Standardize features with the training mean and standard deviation (needs 'gaussian').
    categorical : list of column names (DataFrame) or positions (array), or None
        Columns one-hot encoded with the training categories; unseen categories become all-zero.
    impute : bool
        Fill NaN / infinite numeric values with the training medians (else they are an error).
    n_clusters : int
        k of the k-means on training codes ('latent' score).
    proba : 'linear' or 'unify'
        How ``predict_proba`` maps scores to [0, 1].
    epochs, batch_size, lr, weight_decay : the optimization (see ``vaekit train --help``).
    seed : int
        Fixes weight initialization, batch order, k-means and the Monte-Carlo noise.
    device : 'cpu', 'cuda' or 'auto'.

    Attributes (after fit)
    ----------------------
    estimator_ : the fitted vaekit.estimators.VAE / Autoencoder
    decision_scores_ : (N,) scores of the training rows
    threshold_ : float
    labels_ : (N,) 0/1 labels of the training rows
    n_features_in_, feature_names_in_ (DataFrame input), categories_, impute_values_,
    cluster_centers_ ('latent'), eps_ ('elbo' / 'likelihood': the fixed standard noise)
"""


class VAEDetector(_BaseDetector):
    __doc__ = """Anomaly detector on a VAE: ELBO, importance-weighted likelihood, reconstruction or latent score.

    ``n_score_samples`` (K) is the number of z samples for 'elbo' and 'likelihood'; ``beta`` the
    weight of the KL term in training; ``learn_sigma`` learns a per-feature decoder sigma.
    """ + _SHARED_DOC

    _kind = "vae"

    def __init__(self, method: str = "elbo", contamination: float = 0.01, threshold: float | None = None,
                 latent_dim: int = 8, hidden=(64,), activation: str = "relu", likelihood: str = "gaussian",
                 standardize: bool = True, categorical=None, impute: bool = False, n_clusters: int = 8,
                 n_score_samples: int = 32, beta: float = 1.0, learn_sigma: bool = False, proba: str = "linear",
                 epochs: int = 50, batch_size: int = 128, lr: float = 1e-3, weight_decay: float = 0.0,
                 seed: int = 0, device: str = "cpu", verbose: bool = False):
        self.method = method
        self.contamination = contamination
        self.threshold = threshold
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.activation = activation
        self.likelihood = likelihood
        self.standardize = standardize
        self.categorical = categorical
        self.impute = impute
        self.n_clusters = n_clusters
        self.n_score_samples = n_score_samples
        self.beta = beta
        self.learn_sigma = learn_sigma
        self.proba = proba
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.device = device
        self.verbose = verbose

    def _check_params(self) -> None:
        super()._check_params()
        if int(self.n_score_samples) < 1:
            raise ConfigError(f"n_score_samples must be at least 1, got {self.n_score_samples}")


class AutoencoderDetector(_BaseDetector):
    __doc__ = """Anomaly detector on a deterministic autoencoder: reconstruction error or latent distance.
    """ + _SHARED_DOC

    _kind = "ae"

    def __init__(self, method: str = "reconstruction", contamination: float = 0.01, threshold: float | None = None,
                 latent_dim: int = 8, hidden=(64,), activation: str = "relu", likelihood: str = "gaussian",
                 standardize: bool = True, categorical=None, impute: bool = False, n_clusters: int = 8,
                 proba: str = "linear", epochs: int = 50, batch_size: int = 128, lr: float = 1e-3,
                 weight_decay: float = 0.0, seed: int = 0, device: str = "cpu", verbose: bool = False):
        self.method = method
        self.contamination = contamination
        self.threshold = threshold
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.activation = activation
        self.likelihood = likelihood
        self.standardize = standardize
        self.categorical = categorical
        self.impute = impute
        self.n_clusters = n_clusters
        self.proba = proba
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.device = device
        self.verbose = verbose


DETECTORS = {"VAEDetector": VAEDetector, "AutoencoderDetector": AutoencoderDetector}


# -- the four scores, on a batch of prepared rows (torch, no grad) ---------------------------------


def _reconstruction_error(model, x: torch.Tensor) -> torch.Tensor:
    """||x - E[x | z = encode(x)]||^2 summed over features: deterministic (posterior mean)."""
    return (model.decode(model.encode(x)) - x).pow(2).flatten(1).sum(-1)


def _latent_distance(model, x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    return torch.cdist(model.encode(x), centres).min(-1).values


def _log_weights(model, x: torch.Tensor, eps: torch.Tensor):
    """z_k = loc + scale * eps_k with the fixed noise; returns log p(x|z), log p(z), log q(z|x), q, z, loc, log_var."""
    post = model.config.posterior
    loc, log_var = model.posterior_params(x, None)
    q = D.posterior(post["family"], loc, log_var, post.get("df", 5.0))
    z = loc + torch.exp(0.5 * log_var) * eps[:, None, :]  # (K, B, latent): the reparameterization
    log_px = model.log_likelihood(z, x)  # (K, B) without a copy of x per draw
    return log_px, model.prior().log_prob(z), q.log_prob(z), q, z, loc, log_var


def _negative_elbo(model, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """-(E_q[log p(x|z)] - KL(q || p)) in nats (analytic KL where torch has one, as in training)."""
    log_px, _, _, q, z, loc, log_var = _log_weights(model, x, eps)
    kl = model.kl(q, z, loc, log_var)
    return -(log_px.mean(0) - kl)


def _iw_nll(model, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """-log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x) in nats (Burda et al. 2016, eq. 8)."""
    log_px, log_pz, log_qz, *_ = _log_weights(model, x, eps)
    log_w = log_px + log_pz - log_qz
    return -(torch.logsumexp(log_w, 0) - math.log(log_w.shape[0]))


def _standard_draws(family: str, df: float, k: int, dim: int, seed: int) -> np.ndarray:
    """K x dim draws of the posterior family's standard form (loc 0, scale 1), by inverse CDF."""
    from scipy import stats

    u = np.random.default_rng(seed).uniform(1e-7, 1 - 1e-7, size=(k, dim))
    dist = {"normal": stats.norm, "laplace": stats.laplace, "logistic": stats.logistic,
            "student-t": stats.t(df)}[family]
    return dist.ppf(u).astype(np.float32)


# -- metrics for labelled data ---------------------------------------------------------------------


def detection_metrics(y_true, scores) -> dict:
    """ROC-AUC, PR-AUC (average precision) and precision@n (n = number of true anomalies).

    ``y_true``: 1 = anomaly, 0 = normal. AUCs are None when only one class is present.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    try:
        y = np.asarray(y_true, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("anomaly labels must be numbers: 0 (normal) or 1 (anomaly)") from None
    s = np.asarray(scores, dtype=np.float64)
    if not np.isin(y, (0, 1)).all():
        raise DataError(f"anomaly labels must be 0 (normal) or 1 (anomaly), got values {np.unique(y)[:5].tolist()}")
    y = y.astype(np.int64)
    n_pos = int(y.sum())
    out = {"n": int(len(y)), "n_anomalies": n_pos, "roc_auc": None, "pr_auc": None, "precision_at_n": None}
    if 0 < n_pos < len(y):
        top = np.argsort(-s, kind="stable")[:n_pos]
        out.update(roc_auc=float(roc_auc_score(y, s)), pr_auc=float(average_precision_score(y, s)),
                   precision_at_n=float(y[top].mean()))
    return out


# -- save / load: safetensors + JSON, never pickle -------------------------------------------------


def save_detector(det: _BaseDetector, path: str | Path) -> Path:
    """Write ``det`` into the folder ``path`` (see :meth:`_BaseDetector.save`)."""
    from safetensors.torch import save_file

    from . import __version__
    from .fileio import atomic_path, write_json

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    det.estimator_.save(path / MODEL_DIR)
    tensors = {"decision_scores": torch.from_numpy(np.ascontiguousarray(det.decision_scores_, dtype=np.float64))}
    for attr, key in (("eps_", "eps"), ("cluster_centers_", "cluster_centers"), ("impute_values_", "impute_values")):
        if getattr(det, attr, None) is not None:
            tensors[key] = torch.from_numpy(np.ascontiguousarray(getattr(det, attr), dtype=np.float32))
    with atomic_path(path / TENSORS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    names = getattr(det, "feature_names_in_", None)
    write_json(path / CONFIG_FILE, {
        "format": FORMAT, "format_version": FORMAT_VERSION, "vaekit_version": __version__,
        "detector": type(det).__name__, "params": _jsonable(det.get_params()),
        "threshold": det.threshold_, "n_features_in": det.n_features_in_,
        "numeric_columns": list(det.numeric_columns_), "feature_names": None if names is None else [str(n) for n in names],
        "categories": getattr(det, "categories_", None),
    })
    return path


def _jsonable(params: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def load_detector(path: str | Path, device: str = "cpu") -> _BaseDetector:
    """A detector saved with :meth:`save`; every file is checked and nothing is unpickled."""
    from .fileio import read_json
    from .io import load

    path = Path(path)
    if not (path / CONFIG_FILE).is_file():
        raise ModelFileError(f"{path} is not a vaekit detector folder (no {CONFIG_FILE}); write one with `vaekit detect fit --out {path}`")
    cfg = read_json(path / CONFIG_FILE)
    where = path / CONFIG_FILE
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise ModelFileError(f"{where} is not a vaekit detector config (no \"format\": \"{FORMAT}\")")
    if not isinstance(cfg.get("format_version"), int) or cfg["format_version"] > FORMAT_VERSION:
        raise ModelFileError(f"{where} has format version {cfg.get('format_version')!r}; this vaekit reads up to {FORMAT_VERSION}")
    cls = DETECTORS.get(cfg.get("detector"))
    if cls is None:
        raise ModelFileError(f"{where}: unknown detector {cfg.get('detector')!r}; expected one of {', '.join(DETECTORS)}")
    try:
        det = cls()
        params = cfg["params"]
        known = det.get_params()
        det.set_params(**{k: v for k, v in params.items() if k in known})
        det.set_params(device=device)
        det._check_params()
        det.threshold_ = float(cfg["threshold"])
        det.n_features_in_ = int(cfg["n_features_in"])
        det.numeric_columns_ = list(cfg["numeric_columns"])
        if cfg.get("feature_names") is not None:
            det.feature_names_in_ = np.asarray([str(n) for n in cfg["feature_names"]], dtype=object)
        if cfg.get("categories") is not None:
            cats = cfg["categories"]
            if not isinstance(cats, dict) or not all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in cats.values()):
                raise TypeError("categories must map column names to lists of strings")
            det.categories_ = {str(k): v for k, v in cats.items()}
        if not math.isfinite(det.threshold_):
            raise ValueError(f"threshold {det.threshold_} is not finite")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        if isinstance(e, ModelFileError):
            raise
        raise ModelFileError(f"{where} is damaged or hand-edited ({type(e).__name__}: {e}); re-save the detector with vaekit") from None
    det.estimator_ = load(path / MODEL_DIR, device=device)
    tensors = _read_tensors(path / TENSORS_FILE)
    latent = det.estimator_.model_.config.latent_dim
    det.decision_scores_ = _expect(tensors, "decision_scores", lambda s: len(s) == 1 and s[0] > 0, path).numpy().astype(np.float64)
    if det.method in ("elbo", "likelihood"):
        det.eps_ = _expect(tensors, "eps", lambda s: s == (int(det.n_score_samples), latent), path).numpy()
    if det.method == "latent":
        det.cluster_centers_ = _expect(tensors, "cluster_centers", lambda s: len(s) == 2 and s[1] == latent, path).numpy()
    if det.impute:
        det.impute_values_ = _expect(tensors, "impute_values", lambda s: s == (len(det.numeric_columns_),), path).numpy()
    n_model = det.estimator_.n_features_in_
    n_onehot = len(det.numeric_columns_) + sum(len(v) for v in getattr(det, "categories_", {}).values())
    if n_model != n_onehot:
        raise ModelFileError(f"{path}: the model takes {n_model} inputs but the columns in {CONFIG_FILE} make {n_onehot}; the files are from different detectors")
    det.labels_ = (det.decision_scores_ > det.threshold_).astype(np.int64)
    return det


def _read_tensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not file.is_file():
        raise ModelFileError(f"{file} not found; the detector folder is incomplete")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{file} is not a readable safetensors file ({e}); vaekit never loads pickles, so re-save the detector") from None


def _expect(tensors: dict, key: str, shape_ok, path: Path) -> torch.Tensor:
    t = tensors.get(key)
    if t is None:
        raise ModelFileError(f"{path / TENSORS_FILE} lacks the tensor {key!r}; the detector folder is damaged")
    if not shape_ok(tuple(t.shape)) or not torch.isfinite(t).all():
        raise ModelFileError(f"{path / TENSORS_FILE}: tensor {key!r} has shape {tuple(t.shape)} or non-finite values that do not fit this detector")
    return t
