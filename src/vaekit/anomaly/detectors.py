"""The detectors: parameters, fit, the scoring engine, the scikit-learn / PyOD API and explanations.

The package docstring (``vaekit.anomaly``) says what the scores mean; this module computes them.
"""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin

from ..errors import ConfigError, DataError, ModelFileError
from . import scores as S
from .table import SCALINGS, TablePreprocessor

METHODS = ("combined", "elbo", "likelihood", "reconstruction", "latent", "knn")
_DENSITY_METHODS = ("elbo", "likelihood")
# Likelihoods whose log-density is a sum over the table's columns (what explain splits up).
DETECTOR_LIKELIHOODS = {"vae": ("gaussian", "bernoulli", "continuous-bernoulli"), "ae": ("gaussian", "bernoulli")}
PROBA_METHODS = ("linear", "unify")
FORMAT = "vaekit-detector"
FORMAT_VERSION = 2
CONFIG_FILE = "detector.json"
TENSORS_FILE = "detector.safetensors"
MODEL_DIR = "model"

# Rows x samples x features kept in memory at once while scoring (about 16 MB of float32).
_SCORE_BUDGET = 1 << 22
# Rows per scoring chunk at most. Every chunk is padded to the same row count (see
# ``estimators.batched(fixed_shape=True)``), so a row's score is bit-identical whatever batch it
# comes in; the cap keeps the padding cheap when one row is scored alone.
_MAX_CHUNK = 1024
def scoring_model(model: torch.nn.Module) -> torch.nn.Module:
    """A float64 copy of ``model``, the network every score is computed with (then rounded to float32).

    A float32 matrix product's last bits depend on the kernel the library picks, and on AVX2
    machines MKL's kernels give a row a different result at another position in the same batch;
    fixed-shape chunks alone cannot stop that. In float64 those differences are ~1e-16 relative,
    and rounding each score term to float32 removes them: a row's score is the same whatever its
    batch, and across CPUs it is the same in all but a rare row one float32 step apart. A fresh
    copy per call (a detector's network is small) always has the current weights.
    """
    return copy.deepcopy(model).double().eval()


# Training codes kept as the neighbour score's reference set: enough for a stable local density,
# small enough that scoring a row costs one (rows x 1024) distance matrix.
_N_REFERENCE = 1024
# Optimization steps when n_steps='auto'. Small tables get this many steps however few rows
# they have (one pass over 200 rows is 2 steps and learns nothing); large tables get this many
# steps of larger batches instead of more passes, so the cost stops growing with the row count.
_AUTO_STEPS = 1500
# The score of a finite row whose score came out NaN or infinite (see _BaseDetector._fail_closed):
# above every real score, so the row is flagged, yet finite, so ranks, sums and AUCs still work.
NONFINITE_SCORE = 1e300


class NonFiniteScoreWarning(UserWarning):
    """Rows whose score was NaN/Inf got :data:`NONFINITE_SCORE` (they are flagged as anomalies)."""


class _BaseDetector(OutlierMixin, BaseEstimator):
    """What both detectors share; see :class:`VAEDetector` for the parameters."""

    _kind = ""

    # -- parameters ----------------------------------------------------------------------------
    def check_params(self) -> None:
        """Check the parameters (scikit-learn's rule: at fit, not in __init__); a ConfigError naming the bad one."""
        allowed = METHODS if self._kind == "vae" else tuple(m for m in METHODS if m not in _DENSITY_METHODS)
        if self.method not in allowed:
            if self.method in _DENSITY_METHODS:
                raise ConfigError(f"score method {self.method!r} needs a VAE (a density model); use VAEDetector or one of {', '.join(allowed)}")
            raise ConfigError(f"unknown score method {self.method!r}; choose one of {', '.join(allowed)}")
        if self.threshold is None:
            c = self.contamination
            if isinstance(c, bool) or not isinstance(c, (int, float, np.number)) or not 0 < c <= 0.5:
                raise ConfigError(f"contamination is the expected share of anomalies in (0, 0.5], got {c!r}; e.g. 0.01")
        elif not (isinstance(self.threshold, (int, float, np.number)) and math.isfinite(self.threshold)):
            raise ConfigError(f"threshold must be a finite number (a decision_function value), got {self.threshold!r}")
        for name in ("n_clusters", "n_neighbors"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("latent_dim", "n_steps", "batch_size"):
            v = getattr(self, name)
            if v != "auto" and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
                raise ConfigError(f"{name} must be 'auto' or an integer of at least 1, got {v!r}")
        if self.proba not in PROBA_METHODS:
            raise ConfigError(f"unknown proba method {self.proba!r}; choose 'linear' or 'unify'")
        if self.scaling not in SCALINGS:
            raise ConfigError(f"unknown scaling {self.scaling!r}; choose one of {', '.join(SCALINGS)}")
        # The scores split the reconstruction term over columns (explain), which needs a likelihood
        # that factorizes over them: not an autoregressive one.
        likelihoods = DETECTOR_LIKELIHOODS[self._kind]
        if self.likelihood not in likelihoods:
            raise ConfigError(f"likelihood {self.likelihood!r} is not available for {type(self).__name__}; "
                              f"choose one of {', '.join(repr(n) for n in likelihoods)}")
        if self.scaling != "none" and self.likelihood != "gaussian":
            raise ConfigError(f"scaling={self.scaling!r} needs likelihood='gaussian' (scaled data is not in [0, 1]); "
                              "pass scaling='none' for [0, 1] data")
        self._seed()

    def _seed(self) -> int:
        """``random_state`` (scikit-learn's and PyOD's name) if given, else ``seed``."""
        rs, seed = self.random_state, self.seed
        if rs is not None and not isinstance(rs, (int, np.integer)):
            raise ConfigError(f"random_state must be an integer seed (a RandomState object cannot be saved), got {type(rs).__name__}")
        if rs is not None and seed != 0 and int(rs) != int(seed):
            raise ConfigError(f"seed={seed} and random_state={rs} disagree; they are two names for one seed, pass one of them")
        return int(seed if rs is None else rs)

    def _estimator(self, n_rows: int, n_cols: int):
        """The vaekit estimator this detector trains, with the 'auto' sizes resolved for the table."""
        from .. import estimators

        batch = _auto_batch(n_rows) if self.batch_size == "auto" else int(min(self.batch_size, n_rows))
        steps = _AUTO_STEPS if self.n_steps == "auto" else int(self.n_steps)
        latent = _auto_latent(n_cols) if self.latent_dim == "auto" else int(self.latent_dim)
        common = dict(
            latent_dim=latent, hidden=self.hidden, activation=self.activation, likelihood=self.likelihood,
            standardize=False, epochs=max(1, round(steps / math.ceil(n_rows / batch))), batch_size=batch, lr=self.lr,
            weight_decay=self.weight_decay, val_fraction=0.0, seed=self._seed(), device=self.device, verbose=self.verbose,
        )
        if self._kind == "vae":
            return estimators.VAE(beta=self.beta, learn_sigma=self.learn_sigma, **common)
        return estimators.Autoencoder(**common)

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Train on X (rows assumed mostly normal; ``y`` is ignored). Returns self.

        Sets ``preprocessor_``, ``estimator_``, ``decision_scores_`` (the training rows' scores),
        ``threshold_`` (the ``1 - contamination`` quantile of those, or the given ``threshold``)
        and ``labels_``.
        """
        self.check_params()
        pre = TablePreprocessor(categorical=self.categorical, impute=self.impute, scaling=self.scaling,
                                id_columns=self.id_columns, keep_columns=self.keep_columns)
        Xf = pre.fit_transform(X)
        if len(Xf) < 2:
            raise DataError("cannot fit a detector on 1 sample (one row): it needs at least 2, better hundreds, of mostly normal rows")
        if self.method == "latent" and len(Xf) < int(self.n_clusters):
            raise DataError(f"{len(Xf)} rows are fewer than n_clusters={self.n_clusters}; pass more rows or a smaller n_clusters (--n-clusters)")
        self.preprocessor_ = pre
        self.estimator_ = self._estimator(*Xf.shape).fit(Xf)
        self.decision_scores_ = self._fit_score_state(Xf)
        if not np.isfinite(self.decision_scores_).all():
            bad = int((~np.isfinite(self.decision_scores_)).sum())
            raise DataError(f"training diverged: {bad} of {len(Xf)} training rows score NaN/Inf, so no threshold can be set; "
                            "lower lr (--lr) or use scaling='robust'")
        self.threshold_ = float(self.threshold) if self.threshold is not None else S.quantile_threshold(self.decision_scores_, self.contamination)
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)
        return self

    def _fit_score_state(self, Xf: np.ndarray) -> np.ndarray:
        """Fix what the score needs besides the network (noise draws, reference codes, centres,
        term scales); returns the training rows' scores, from the one scoring pass this needs."""
        for attr in ("eps_", "cluster_centers_", "reference_codes_", "term_location_", "term_scale_"):
            self.__dict__.pop(attr, None)
        cfg = self.estimator_.model_.config
        seed = self._seed()
        # The noise and the reference codes are cheap, so every detector keeps them: score_terms
        # can then give every single-term score of the same network.
        if self._kind == "vae":
            post = cfg.posterior
            self.eps_ = S.standard_draws(post["family"], post.get("df", 5.0), int(self.n_score_samples), cfg.latent_dim, seed)
        pick = np.sort(np.random.default_rng(seed).permutation(len(Xf))[:_N_REFERENCE])
        self.reference_codes_ = self.estimator_.encode(Xf[pick]).astype(np.float32)
        if self.method == "latent":
            from sklearn.cluster import KMeans

            Z = self.estimator_.encode(Xf)
            k = int(min(self.n_clusters, len(np.unique(Z, axis=0))))
            km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(Z.astype(np.float64))
            self.cluster_centers_ = km.cluster_centers_.astype(np.float32)
        terms = self._terms(Xf)
        if self.method == "combined":
            loc_scale = [S.robust_location_scale(terms[t]) for t in self._combined_terms]
            self.term_location_ = np.array([a for a, _ in loc_scale])
            self.term_scale_ = np.array([b for _, b in loc_scale])
        return self._combine(terms)

    # -- scoring -------------------------------------------------------------------------------
    @property
    def _combined_terms(self) -> tuple[str, ...]:
        return ("elbo" if self._kind == "vae" else "reconstruction", "knn")

    def _check_fitted(self) -> None:
        if not hasattr(self, "estimator_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first or load_detector(path)")

    def _transform(self, X) -> np.ndarray:
        """X as the network's input: the preprocessor, then (0.1.0 folders only) the estimator's scaler."""
        return self.estimator_.prepare_X(self.preprocessor_.transform(X, who=type(self).__name__))

    def _batch_rows(self, n_cols: int, k: int) -> int:
        return max(1, min(_MAX_CHUNK, _SCORE_BUDGET // (max(1, k) * max(1, n_cols))))

    def _terms(self, Xs: np.ndarray, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """The named score terms of prepared rows, float64 (N,) each: one batched pass over Xs."""
        names = names or (self._combined_terms if self.method == "combined" else (self.method,))
        dev = self.estimator_.device_
        state = {a: torch.as_tensor(getattr(self, a), device=dev, dtype=torch.float64)
                 for a in ("eps_", "cluster_centers_", "reference_codes_") if getattr(self, a, None) is not None}
        fns = {
            "reconstruction": lambda m, x: S.reconstruction_error(m, x),
            "elbo": lambda m, x: S.negative_elbo(m, x, state["eps_"]),
            "likelihood": lambda m, x: S.iw_nll(m, x, state["eps_"]),
            "latent": lambda m, x: S.latent_distance(m, x, state["cluster_centers_"]),
            "knn": lambda m, x: S.knn_distance(m, x, state["reference_codes_"], int(self.n_neighbors)),
        }
        model = scoring_model(self.estimator_.model_)
        k = int(getattr(self, "n_score_samples", 1)) if any(n in ("elbo", "likelihood") for n in names) else 1
        batch = self._batch_rows(Xs.shape[1] + len(getattr(self, "reference_codes_", ())), k)

        def run(xb):
            return torch.stack([fns[n](model, xb.double()) for n in names], -1)

        out = self.estimator_.batched(run, Xs, batch_size=batch, fixed_shape=True).astype(np.float64)
        return {n: out[:, i] for i, n in enumerate(names)}

    def _scores(self, Xs: np.ndarray) -> np.ndarray:
        return self._fail_closed(self._combine(self._terms(Xs)))

    def _fail_closed(self, s: np.ndarray) -> np.ndarray:
        """Scores with no NaN or Inf: a NaN compares False with the threshold, so it would read "normal".

        The rows are finite (the preprocessor refuses or imputes NaN/Inf and clips the rest), so
        a non-finite score means either the model is broken (it then fails on a typical row too:
        an error) or the row drove the network beyond float32's range, which only a row far
        outside the training data does: it gets NONFINITE_SCORE and is flagged, with a warning.
        """
        bad = ~np.isfinite(s)
        if not bad.any():
            return s
        typical = np.zeros((1, self.preprocessor_.n_outputs), dtype=np.float32)  # every scaled feature at its centre
        t = self._combine(self._terms(self.estimator_.prepare_X(typical)))
        if not np.isfinite(t).all():
            raise ModelFileError(f"this detector scores {int(bad.sum())} of {len(s)} rows, and even a typical row, as NaN/Inf: "
                                 "its model or saved state is damaged; refit the detector")
        import warnings

        warnings.warn(f"{int(bad.sum())} of {len(s)} rows drove the network beyond float32's range (NaN/Inf scores); "
                      f"they get the score {NONFINITE_SCORE:g} and are flagged as anomalies", NonFiniteScoreWarning, stacklevel=3)
        return np.where(bad, NONFINITE_SCORE, s)

    def _combine(self, terms: dict[str, np.ndarray]) -> np.ndarray:
        if self.method != "combined":
            return terms[self.method]
        return sum((terms[t] - loc) / sc for t, loc, sc in zip(self._combined_terms, self.term_location_, self.term_scale_))

    def decision_function(self, X) -> np.ndarray:
        """Anomaly score of each row, shape (N,): higher = more anomalous (PyOD's sign).

        Units depend on ``method``: robust standard units summed over terms ('combined'), nats per
        row ('elbo', 'likelihood'), squared scaled error ('reconstruction'), code-space distance
        ('latent', 'knn'). Deterministic: a row always gets the same score, whatever its batch.
        Never NaN: a row the network cannot score in float32 gets ``NONFINITE_SCORE`` (flagged,
        with a :class:`NonFiniteScoreWarning`); a model that cannot score a typical row raises
        :class:`~vaekit.errors.ModelFileError`.
        """
        self._check_fitted()
        return self._scores(self._transform(X))

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

        ``proba='linear'``: min-max scaling over the training scores, clipped to [0, 1];
        ``proba='unify'``: ``erf((s - mean) / (std * sqrt 2))`` clipped at 0 (Kriegel et al.
        2011), as PyOD does. Neither is a calibrated probability; both are monotone in the score.
        """
        return S.to_proba(self.decision_function(X), self.decision_scores_, self.proba)

    # -- explanations --------------------------------------------------------------------------
    def explain(self, X):
        """Each input feature's contribution to each row's reconstruction term: a DataFrame (N, features).

        The reconstruction term is the part of the score that is a sum over columns: the squared
        error for ``method='reconstruction'`` (squared scaled units), else the negative expected
        log-likelihood ``-E_q[log p(x|z)]`` in nats (with the detector's fixed draws for a VAE,
        through the posterior mean for an autoencoder). A categorical feature's contribution is
        summed over its one-hot columns. Each row sums to
        ``score_terms(X)['reconstruction']``; larger = that feature is further from what the
        model expects for this row.
        """
        import pandas as pd

        self._check_fitted()
        Xs = self._transform(X)
        per_col = self._per_column_reconstruction(Xs)
        groups = self.preprocessor_.groups()
        cols = np.stack([per_col[:, idx].sum(1) for _, idx in groups], axis=1)
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame(cols, columns=[name for name, _ in groups], index=index)

    def score_terms(self, X):
        """Every score this fitted detector can give, one column each, plus ``score`` and ``explained``.

        ``score`` is ``decision_function``; ``explained`` the reconstruction term that
        :meth:`explain` splits over features (its row sums); ``reconstruction``, ``knn`` and, for a
        VAE, ``elbo`` and ``likelihood`` are the single-term scores of the same network, in the
        units of those methods (``latent`` only when it is the method). A DataFrame (N, terms).
        """
        import pandas as pd

        self._check_fitted()
        Xs = self._transform(X)
        names = ["reconstruction"]
        names += ["elbo", "likelihood"] if getattr(self, "eps_", None) is not None else []
        names += ["knn"] if getattr(self, "reference_codes_", None) is not None else []
        names += ["latent"] if self.method == "latent" else []
        terms = self._terms(Xs, tuple(names))
        index = X.index if isinstance(X, pd.DataFrame) else None
        cols = {"score": self._fail_closed(self._combine(terms)), "explained": self._per_column_reconstruction(Xs).sum(1), **terms}
        return pd.DataFrame(cols, index=index)

    def _per_column_reconstruction(self, Xs: np.ndarray) -> np.ndarray:
        model = scoring_model(self.estimator_.model_)
        if self.method == "reconstruction" or self._kind == "ae":
            fn = functools.partial(S.per_feature_squared_error, model)
        else:
            eps = None if getattr(self, "eps_", None) is None else torch.as_tensor(self.eps_, device=self.estimator_.device_, dtype=torch.float64)
            fn = functools.partial(S.per_feature_nll, model, eps=eps)
        k = len(getattr(self, "eps_", ())) or 1
        return self.estimator_.batched(lambda xb: fn(xb.double()), Xs, batch_size=self._batch_rows(Xs.shape[1], k),
                                      fixed_shape=True).astype(np.float64)

    # -- fitted attributes kept for 0.1.0 callers ------------------------------------------------
    @property
    def n_features_in_(self) -> int:
        self._check_fitted()
        return self.preprocessor_.n_features_in

    @property
    def feature_names_in_(self):
        names = self.preprocessor_.feature_names_ if hasattr(self, "preprocessor_") else None
        if names is None:
            raise AttributeError("feature_names_in_ is set only when fit saw a DataFrame")
        return np.asarray(names, dtype=object)

    @property
    def categories_(self) -> dict[str, list[str]]:
        self._check_fitted()
        return self.preprocessor_.categories_

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


def _auto_batch(n_rows: int) -> int:
    """128 rows a step up to 64k rows, then growing with the table to 1024: a fixed step budget
    then still sees every row of a large table about 2 to 3 times."""
    return int(min(n_rows, max(128, min(1024, n_rows // 512))))


def _auto_latent(n_cols: int) -> int:
    """Half the input columns, at least 2 and at most 8: a code as wide as the input can copy it
    and then reconstructs anomalies as well as normal rows."""
    return int(max(2, min(8, math.ceil(n_cols / 2))))


_SHARED_DOC = """
    Parameters
    ----------
    method : 'combined', 'elbo', 'likelihood', 'reconstruction', 'latent' or 'knn'
        The score method: how a row is scored (see the module docstring); higher = more anomalous.
        The command line's ``--method``.
    contamination : float in (0, 0.5]
        Expected share of anomalies in the training data: ``threshold_`` is the
        ``1 - contamination`` quantile of the training scores. Ignored when ``threshold`` is set.
    threshold : float or None
        An explicit threshold on ``decision_function`` (e.g. from a validation set).
    latent_dim : int or 'auto'
        Code size; 'auto' is half the input columns, between 2 and 8.
    hidden : tuple of int
        The networks' hidden layer sizes.
    activation : str
        The networks' hidden activation.
    likelihood : 'gaussian' or 'bernoulli'
        'gaussian' for real-valued data (no squashing output), 'bernoulli' for data in [0, 1].
    scaling : 'robust', 'standard' or 'none'
        Per numeric column, in float64: 'robust' centres on the median, divides by the larger of the
        standard deviation and IQR / 1.349, and compresses values beyond 3 units logarithmically
        (see :func:`vaekit.anomaly.table.robust_scale`); 'standard' is mean / standard deviation.
    categorical : list of column names (DataFrame) or positions (array), or None
        Columns one-hot encoded with the training categories; unseen categories become all-zero.
    impute : bool
        Fill NaN / infinite numeric values with the training medians (else they are an error).
    id_columns : 'auto', list of column names, or None
        'auto' leaves the ID-like columns of a DataFrame out of the features (a different text in
        every row; different integers in every row that rise or fall row by row, or whose name
        reads as an identifier such as ``tx_id``: see :func:`vaekit.anomaly.table.id_like_columns`),
        with a one-line :class:`~vaekit.anomaly.table.IdColumnWarning`. A list leaves out those
        columns; None leaves out nothing. The columns left out are saved with the detector
        (``preprocessor_.dropped_columns_``) and ignored when scoring.
    keep_columns : list of column names or None
        Columns used as features even if they look ID-like (the command line's ``--keep-column``).
    n_clusters : int
        k of the k-means on training codes ('latent' score).
    n_neighbors : int
        Neighbours among the saved training codes ('knn' and 'combined' scores).
    proba : 'linear' or 'unify'
        How ``predict_proba`` maps scores to [0, 1].
    n_steps, batch_size : int or 'auto'
        Optimization steps and rows per step. 'auto': 1500 steps; 128 rows a step, growing to
        1024 for tables over 64k rows (larger tables: larger steps, not more of them).
    lr, weight_decay : float
        Adam's learning rate and weight decay.
    seed : int
        Fixes weight initialization, batch order, k-means, the reference codes and the Monte-Carlo
        noise. ``random_state`` is the same seed under scikit-learn's and PyOD's name.
    device : 'cpu', 'cuda' or 'auto'
        Where the networks train and score.

    Attributes
    ----------
    preprocessor_ : TablePreprocessor
        The fitted preprocessor (JSON in detector.json). Set by ``fit``, like every attribute here.
    estimator_ : VAE or Autoencoder
        The fitted ``vaekit.estimators.VAE`` / ``Autoencoder``.
    decision_scores_ : ndarray of shape (N,)
        Scores of the training rows.
    threshold_ : float
        The ``decision_function`` value above which a row is an anomaly.
    labels_ : ndarray of shape (N,)
        0/1 labels of the training rows.
    n_features_in_, feature_names_in_, categories_ :
        The input columns (names for DataFrame input) and the categories of each categorical one.
    cluster_centers_, reference_codes_ :
        The k-means centres ('latent') and the saved training codes ('knn', 'combined').
    eps_ :
        The fixed standard noise of a VAE's Monte-Carlo terms.
    term_location_, term_scale_ :
        'combined': each term's training median and scale.
"""


class VAEDetector(_BaseDetector):
    __doc__ = """Anomaly detector on a VAE with a Gaussian decoder whose per-feature variance is learned.

    ``n_score_samples`` (K) is the number of z draws for the Monte-Carlo terms; ``beta`` the weight
    of the KL term in training; ``learn_sigma`` learns a per-feature decoder sigma (default: a
    fixed sigma of 1 makes the score little more than the squared norm of the scaled row).
    """ + _SHARED_DOC

    _kind = "vae"

    def __init__(self, method: str = "combined", contamination: float = 0.01, threshold: float | None = None,
                 latent_dim: int | str = "auto", hidden=(64,), activation: str = "relu", likelihood: str = "gaussian",
                 scaling: str = "robust", categorical=None, impute: bool = False, id_columns="auto", keep_columns=None,
                 n_clusters: int = 8,
                 n_neighbors: int = 10, n_score_samples: int = 8, beta: float = 1.0, learn_sigma: bool = True,
                 proba: str = "linear", n_steps: int | str = "auto", batch_size: int | str = "auto", lr: float = 1e-3,
                 weight_decay: float = 0.0, seed: int = 0, random_state: int | None = None, device: str = "cpu",
                 verbose: bool = False):
        self.method = method
        self.contamination = contamination
        self.threshold = threshold
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.activation = activation
        self.likelihood = likelihood
        self.scaling = scaling
        self.categorical = categorical
        self.impute = impute
        self.id_columns = id_columns
        self.keep_columns = keep_columns
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.n_score_samples = n_score_samples
        self.beta = beta
        self.learn_sigma = learn_sigma
        self.proba = proba
        self.n_steps = n_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def check_params(self) -> None:
        super().check_params()
        if int(self.n_score_samples) < 1:
            raise ConfigError(f"n_score_samples must be at least 1, got {self.n_score_samples}")


class AutoencoderDetector(_BaseDetector):
    __doc__ = """Anomaly detector on a deterministic autoencoder: reconstruction error, latent distances or both.
    """ + _SHARED_DOC

    _kind = "ae"

    def __init__(self, method: str = "reconstruction", contamination: float = 0.01, threshold: float | None = None,
                 latent_dim: int | str = "auto", hidden=(64,), activation: str = "relu", likelihood: str = "gaussian",
                 scaling: str = "robust", categorical=None, impute: bool = False, id_columns="auto", keep_columns=None,
                 n_clusters: int = 8,
                 n_neighbors: int = 10, proba: str = "linear", n_steps: int | str = "auto", batch_size: int | str = "auto",
                 lr: float = 1e-3, weight_decay: float = 0.0, seed: int = 0, random_state: int | None = None,
                 device: str = "cpu", verbose: bool = False):
        self.method = method
        self.contamination = contamination
        self.threshold = threshold
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.activation = activation
        self.likelihood = likelihood
        self.scaling = scaling
        self.categorical = categorical
        self.impute = impute
        self.id_columns = id_columns
        self.keep_columns = keep_columns
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.proba = proba
        self.n_steps = n_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.random_state = random_state
        self.device = device
        self.verbose = verbose


DETECTORS = {"VAEDetector": VAEDetector, "AutoencoderDetector": AutoencoderDetector}
_standard_draws = S.standard_draws  # the name 0.1.0 tests and notebooks imported


# -- save / load: safetensors + JSON, never pickle -------------------------------------------------


# -- writing a detector folder (reading it: persistence.py) ----------------------------------------

_TENSOR_ATTRS = (("eps_", "eps"), ("cluster_centers_", "cluster_centers"), ("reference_codes_", "reference_codes"))


def save_detector(det: _BaseDetector, path: str | Path) -> Path:
    """Write ``det`` into the folder ``path``: detector.json (parameters, threshold, the
    preprocessor, term scales), detector.safetensors (training scores, noise, codes), model/."""
    from safetensors.torch import save_file

    from .. import __version__
    from ..fileio import atomic_path, write_json

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    det.estimator_.save(path / MODEL_DIR)
    tensors = {"decision_scores": torch.from_numpy(np.ascontiguousarray(det.decision_scores_, dtype=np.float64))}
    for attr, key in _TENSOR_ATTRS:
        if getattr(det, attr, None) is not None:
            tensors[key] = torch.from_numpy(np.ascontiguousarray(getattr(det, attr), dtype=np.float32))
    with atomic_path(path / TENSORS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    terms = None
    if getattr(det, "term_location_", None) is not None:
        terms = {"names": list(det._combined_terms), "location": det.term_location_.tolist(), "scale": det.term_scale_.tolist()}
    write_json(path / CONFIG_FILE, {
        "format": FORMAT, "format_version": FORMAT_VERSION, "vaekit_version": __version__,
        "detector": type(det).__name__, "params": _jsonable(det.get_params()), "threshold": det.threshold_,
        "preprocessor": det.preprocessor_.to_json(), "combined_terms": terms,
    })
    return path


def _jsonable(params: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}
