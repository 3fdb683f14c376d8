"""The detectors: ``VAEDetector`` and ``AutoencoderDetector``, their parameters (declared in
:mod:`vaekit.anomaly.options`), fitting and sizing.

The package docstring (``vaekit.anomaly``) says what the scores mean; the scoring engine
(``scoring``), the explanations (``explain``), the PyOD contract (``base``) and the folder format
(``writer``, ``persistence``) each have their module.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from ..options import make_init
from . import scores as S
from .base import BaseDetector
from .explain import Explanations
from .options import DETECTOR_OPTIONS, METHODS, PROBA_METHODS, WRAPS, check_detector_params, detector_options  # noqa: F401 - METHODS, PROBA_METHODS: their old home
from .scoring import NONFINITE_SCORE, NonFiniteScoreWarning, ScoringEngine, scoring_model  # noqa: F401 - importable from here as before
from .table import TablePreprocessor
from .writer import CONFIG_FILE, FORMAT, FORMAT_VERSION, MODEL_DIR, TENSORS_FILE, save_detector  # noqa: F401 - importable from here as before

# Optimization steps when n_steps='auto'. Small tables get this many steps however few rows
# they have (one pass over 200 rows is 2 steps and learns nothing); large tables get this many
# steps of larger batches instead of more passes, so the cost stops growing with the row count.
_AUTO_STEPS = 1500
# novelty=True sets its threshold on held-out rows (_hold_out_calibration): a fifth of the table,
# at least this many (else the training scores' quantile) and at most that many.
_MIN_HELD_OUT, _MAX_HELD_OUT = 10, 8192
# The twin's term scales come from at most this many of its training rows.
_TWIN_SCALE_ROWS = 16384


class _BaseDetector(Explanations, ScoringEngine, BaseDetector):
    """What both detectors share; see :class:`VAEDetector` for the parameters. ``family`` is the
    ``vaekit.registry.FAMILIES`` entry of the model the detector trains."""

    family = None

    def check_params(self) -> None:
        """Check the parameters (scikit-learn's rule: at fit, not in __init__); a ConfigError naming the bad one."""
        check_detector_params(self.get_params(), type(self).__name__)

    def _seed(self) -> int:
        """``random_state`` (scikit-learn's and PyOD's name) if given, else ``seed``."""
        return int(self.seed if self.random_state is None else self.random_state)

    def _estimator(self, n_rows: int, n_cols: int):
        """The vaekit estimator this detector trains, with the 'auto' sizes resolved for the table."""
        from .. import estimators  # noqa: F401 - binds each family's estimator class

        batch = _auto_batch(n_rows) if self.batch_size == "auto" else int(min(self.batch_size, n_rows))
        steps = _AUTO_STEPS if self.n_steps == "auto" else int(self.n_steps)
        latent = _auto_latent(n_cols) if self.latent_dim == "auto" else int(self.latent_dim)
        given = {o.name: getattr(self, o.name) for o in detector_options(type(self).__name__, "estimator")}
        return self.family.parts["estimator"](
            latent_dim=latent, standardize=False, epochs=max(1, round(steps / math.ceil(n_rows / batch))), batch_size=batch,
            val_fraction=0.0, seed=self._seed(), **given)

    def _fit(self, X) -> np.ndarray:
        """Sets ``preprocessor_`` and ``estimator_`` besides the score state; returns the training rows' scores."""
        pre = TablePreprocessor(categorical=self.categorical, impute=self.impute, scaling=self.scaling,
                                id_columns=self.id_columns, keep_columns=self.keep_columns)
        Xf = pre.fit_transform(X)
        if len(Xf) < 2:
            raise DataError("cannot fit a detector on 1 sample (one row): it needs at least 2, better hundreds, of mostly normal rows")
        if self.method == "latent" and len(Xf) < int(self.n_clusters):
            raise DataError(f"{len(Xf)} rows are fewer than n_clusters={self.n_clusters}; pass more rows or a smaller n_clusters (--n-clusters)")
        self.preprocessor_ = pre
        self.__dict__.pop("calibration_scores_", None)
        self.estimator_ = self._estimator(*Xf.shape).fit(Xf)
        scores = self._fit_score_state(Xf)
        if not np.isfinite(scores).all():
            bad = int((~np.isfinite(scores)).sum())
            raise DataError(f"training diverged: {bad} of {len(Xf)} training rows score NaN/Inf, so no threshold can be set; "
                            "lower lr (--lr) or use scaling='robust'")
        n_ref = len(self.reference_codes_)
        if self.method in ("knn", "combined") and self.n_neighbors != "auto" and int(self.n_neighbors) > n_ref:
            warnings.warn(f"n_neighbors={self.n_neighbors} is more than the {n_ref} training rows kept as neighbours, so the "
                          f"neighbour terms average over all {n_ref}; pass n_neighbors <= {n_ref} (--n-neighbors)", UserWarning, stacklevel=3)
        if self.novelty and self.threshold is None:
            self._hold_out_calibration(Xf)
        return scores

    def _hold_out_calibration(self, Xf: np.ndarray) -> None:
        """novelty=True: ``calibration_scores_``, the scores of a seeded fifth of the rows (at most 8192)
        by a twin detector trained on the rest, from which ``threshold_`` is set (split conformal).

        The training rows' own scores are no guide to a new normal row's: the network has fitted
        them and each is one of its own nearest neighbours, so their 1 - contamination quantile
        flagged 20 % (VAE) and 26 % (autoencoder) of new normal rows on average over 14 tables at
        contamination 0.05 (bench/novelty_threshold.py). The twin's held-out rows are new to it as
        new rows are to this detector, and its scores are in the same robust units. The cost is a
        second training. Under 50 rows: the training scores' quantile, with a warning; too few
        held-out rows for the contamination asked: a warning that says what share is flagged.
        """
        n_hold = min(len(Xf) // 5, _MAX_HELD_OUT)
        if n_hold < _MIN_HELD_OUT:
            warnings.warn(f"novelty detection on {len(Xf)} rows: too few to hold {_MIN_HELD_OUT} out for the threshold, so it is the "
                          "training rows' own quantile, which new normal rows exceed far more often than contamination says (on "
                          "small tables nearly all of them); fit on 50 rows or more, or set threshold= (--threshold) from normal rows "
                          "you held out", UserWarning, stacklevel=4)
            return
        from sklearn.base import clone

        order = np.random.default_rng([self._seed(), 2]).permutation(len(Xf))
        held, rest = np.sort(order[:n_hold]), np.sort(order[n_hold:])
        twin = clone(self)
        twin.preprocessor_ = self.preprocessor_
        twin.estimator_ = twin._estimator(len(rest), Xf.shape[1]).fit(Xf[rest])
        # Its term scales from a sample of its rows on a large table (a median and a spread need no
        # more), which keeps a 300 000-row fit from paying the neighbour terms of every row twice.
        sample = None if len(rest) <= _TWIN_SCALE_ROWS else np.sort(np.random.default_rng([self._seed(), 3]).choice(
            len(rest), _TWIN_SCALE_ROWS, replace=False))
        twin._fit_score_state(Xf[rest], scale_rows=sample)
        # Not through _scores' stand-in for non-finite rows: a stand-in of 1e300 as the threshold would call every row normal.
        held_scores = twin._combine(twin._terms(Xf[held]))
        if not np.isfinite(held_scores).all():
            bad = int((~np.isfinite(held_scores)).sum())
            raise DataError(f"training diverged: the second network, which sets the threshold, scores {bad} of {n_hold} held-out rows "
                            "NaN/Inf; lower lr (--lr), use scaling='robust', or pass threshold= (--threshold)")
        self.calibration_scores_ = held_scores
        c = float(self.contamination)
        if 1.0 / (n_hold + 1) > c:  # the conformal rank is beyond the held-out rows: their largest score is the threshold
            need = math.ceil(1.0 / c - 1.0)
            warnings.warn(f"novelty detection: {n_hold} held-out rows cannot set a threshold that flags only contamination={c:g} of "
                          f"new normal rows; it is the largest of their scores, which about 1/{n_hold + 1} = {1 / (n_hold + 1):.1%} "
                          f"of them exceed. Fit on {5 * need} rows or more for this contamination, or pass contamination >= "
                          f"{1 / (n_hold + 1):.3g} (--contamination)", UserWarning, stacklevel=4)

    def _decision_function(self, X) -> np.ndarray:
        """Units depend on ``method``: robust standard units summed over terms ('combined'), nats per
        row ('elbo', 'likelihood'), squared scaled error ('reconstruction'), code-space distance
        ('latent', 'knn'). Deterministic: a row always gets the same score, whatever its batch.
        Never NaN: a row the network cannot score in float32 gets ``NONFINITE_SCORE`` (flagged,
        with a :class:`NonFiniteScoreWarning`); a model that cannot score a typical row raises
        :class:`~vaekit.errors.ModelFileError`.
        """
        return self._scores(self._transform(X))

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
        With ``novelty=True`` (training rows all normal) the share of *new* normal rows flagged, at
        most: ``threshold_`` is the split-conformal quantile of held-out rows' scores (see
        ``calibration_scores_``), since the training rows' own scores are lower than a new row's.
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
    n_neighbors : int or 'auto'
        Neighbours among the saved training codes ('knn') and, for 'combined', among the saved
        training codes and rows. 'auto': 10, or 5 with ``novelty=True``.
    novelty : bool
        The training rows are known to be normal (novelty detection; scikit-learn's name in
        ``LocalOutlierFactor``); ``vaekit detect fit --fit-on normal`` sets it. It picks the
        ``combined`` terms and their reference set: with False (the rows may hold anomalies) 1024
        rows drawn from those a first pass finds least anomalous; with True every training row, up
        to 8192. Both were chosen by cross-validation over 23 tables (docs/anomaly.md).
    proba : 'linear', 'unify' or 'conformal'
        How ``predict_proba`` maps scores to [0, 1] (see :meth:`predict_proba`).
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
    calibration_scores_ : ndarray or absent
        ``novelty=True`` without ``threshold``, 50 training rows or more: the scores of a seeded
        fifth of the training rows (at most 8192) by a twin detector trained on the other rows;
        ``threshold_`` is their ceil((n + 1)(1 - contamination))-th smallest, or their largest where
        that rank is beyond n (fewer than 1 / contamination - 1 rows; a warning then says so)
        (:func:`vaekit.anomaly.scores.conformal_threshold`). Fitting trains a second network for
        it. Saved with the detector; ``predict_proba`` maps scores against them.
    n_features_in_, feature_names_in_, categories_ :
        The input columns (names for DataFrame input) and the categories of each categorical one.
    cluster_centers_, reference_codes_, reference_rows_ :
        The k-means centres ('latent'), the saved training codes ('knn', 'combined') and the same
        training rows as the network sees them ('combined').
    eps_ :
        The fixed standard noise of a VAE's Monte-Carlo terms.
    combined_terms_, term_location_, term_scale_ :
        'combined': the terms added (see ``vaekit.anomaly.options.COMBINED_TERMS``), each term's
        training median and scale.
"""


class VAEDetector(_BaseDetector):
    __doc__ = """Anomaly detector on a VAE with a Gaussian decoder whose per-feature variance is learned.

    ``n_score_samples`` (K) is the number of z draws for the Monte-Carlo terms; ``beta`` the weight
    of the KL term in training; ``learn_sigma`` learns a per-feature decoder sigma (default: a
    fixed sigma of 1 makes the score little more than the squared norm of the scaled row).
    """ + _SHARED_DOC

    family = WRAPS["VAEDetector"]
    if TYPE_CHECKING:  # the signature make_init builds at run time, for type checkers and IDEs
        # <generated signature VAEDetector: scripts/sync_signatures.py writes this block from vaekit.anomaly.options.DETECTOR_OPTIONS>
        method: str
        contamination: float
        threshold: float | None
        latent_dim: int | str
        hidden: int | tuple[int, ...] | list[int] | str
        activation: str
        likelihood: str
        scaling: str
        categorical: list | tuple | None
        impute: bool
        id_columns: list | tuple | str | None
        keep_columns: list | tuple | None
        n_clusters: int
        n_neighbors: int | str
        novelty: bool
        n_score_samples: int
        beta: float
        learn_sigma: bool
        proba: str
        n_steps: int | str
        batch_size: int | str
        lr: float
        weight_decay: float
        seed: int
        random_state: int | None
        device: str
        verbose: bool

        def __init__(
            self,
            method: str = 'combined',
            contamination: float = 0.01,
            threshold: float | None = None,
            latent_dim: int | str = 'auto',
            hidden: int | tuple[int, ...] | list[int] | str = (64,),
            activation: str = 'relu',
            likelihood: str = 'gaussian',
            scaling: str = 'robust',
            categorical: list | tuple | None = None,
            impute: bool = False,
            id_columns: list | tuple | str | None = 'auto',
            keep_columns: list | tuple | None = None,
            n_clusters: int = 8,
            n_neighbors: int | str = 'auto',
            novelty: bool = False,
            n_score_samples: int = 8,
            beta: float = 1.0,
            learn_sigma: bool = True,
            proba: str = 'linear',
            n_steps: int | str = 'auto',
            batch_size: int | str = 'auto',
            lr: float = 0.001,
            weight_decay: float = 0.0,
            seed: int = 0,
            random_state: int | None = None,
            device: str = 'cpu',
            verbose: bool = False,
        ) -> None: ...
        # </generated signature VAEDetector>
    else:
        __init__ = make_init("VAEDetector", "The parameters, stored unchanged (see the class docstring).", table=DETECTOR_OPTIONS)


class AutoencoderDetector(_BaseDetector):
    __doc__ = """Anomaly detector on a deterministic autoencoder: reconstruction error, latent distances or both.
    """ + _SHARED_DOC

    family = WRAPS["AutoencoderDetector"]
    if TYPE_CHECKING:  # the signature make_init builds at run time, for type checkers and IDEs
        # <generated signature AutoencoderDetector: scripts/sync_signatures.py writes this block from vaekit.anomaly.options.DETECTOR_OPTIONS>
        method: str
        contamination: float
        threshold: float | None
        latent_dim: int | str
        hidden: int | tuple[int, ...] | list[int] | str
        activation: str
        likelihood: str
        scaling: str
        categorical: list | tuple | None
        impute: bool
        id_columns: list | tuple | str | None
        keep_columns: list | tuple | None
        n_clusters: int
        n_neighbors: int | str
        novelty: bool
        proba: str
        n_steps: int | str
        batch_size: int | str
        lr: float
        weight_decay: float
        seed: int
        random_state: int | None
        device: str
        verbose: bool

        def __init__(
            self,
            method: str = 'combined',
            contamination: float = 0.01,
            threshold: float | None = None,
            latent_dim: int | str = 'auto',
            hidden: int | tuple[int, ...] | list[int] | str = (64,),
            activation: str = 'relu',
            likelihood: str = 'gaussian',
            scaling: str = 'robust',
            categorical: list | tuple | None = None,
            impute: bool = False,
            id_columns: list | tuple | str | None = 'auto',
            keep_columns: list | tuple | None = None,
            n_clusters: int = 8,
            n_neighbors: int | str = 'auto',
            novelty: bool = False,
            proba: str = 'linear',
            n_steps: int | str = 'auto',
            batch_size: int | str = 'auto',
            lr: float = 0.001,
            weight_decay: float = 0.0,
            seed: int = 0,
            random_state: int | None = None,
            device: str = 'cpu',
            verbose: bool = False,
        ) -> None: ...
        # </generated signature AutoencoderDetector>
    else:
        __init__ = make_init("AutoencoderDetector", "The parameters, stored unchanged (see the class docstring).", table=DETECTOR_OPTIONS)


DETECTORS = {cls.__name__: cls for cls in (VAEDetector, AutoencoderDetector)}
_standard_draws = S.standard_draws  # the name 0.1.0 tests and notebooks imported
