"""A small PyOD-style base for anomaly detectors (Zhao et al. 2019, ``pyod.models.base.BaseDetector``).

A subclass implements two hooks: ``_fit(X) -> training scores`` and ``_decision_function(X) ->
scores`` (higher = more anomalous). The base turns them into the scikit-learn / PyOD API:
``contamination`` or an explicit ``threshold`` sets ``threshold_``; ``decision_scores_`` and
``labels_`` describe the training rows; ``predict`` (1 = anomaly), ``predict_proba``,
``fit_predict``, ``decision_function`` and ``score_samples`` (scikit-learn's sign) follow.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin

from . import scores as S


class BaseDetector(OutlierMixin, BaseEstimator):
    """The PyOD contract over two hooks; parameters ``contamination``, ``threshold`` and ``proba`` are the subclass's."""

    def check_params(self) -> None:
        """Check the parameters (scikit-learn's rule: at fit, not in __init__); a ConfigError naming the bad one."""

    def _fit(self, X) -> np.ndarray:
        """Train on X; return the training rows' scores (N,)."""
        raise NotImplementedError

    def _decision_function(self, X) -> np.ndarray:
        """The scores (N,) of the rows of X, the detector fitted."""
        raise NotImplementedError

    def fit(self, X, y=None):
        """Train on X (rows assumed mostly normal; ``y`` is ignored). Returns self.

        Sets ``decision_scores_`` (the training rows' scores), ``threshold_`` (the ``1 -
        contamination`` quantile of those, the conformal one of ``calibration_scores_`` where a
        subclass holds rows out for it, or the given ``threshold``) and ``labels_``.
        """
        self.check_params()
        self.decision_scores_ = self._fit(X)
        self._process_decision_scores()
        return self

    def _process_decision_scores(self) -> None:
        """``threshold_`` and ``labels_`` from ``decision_scores_`` (PyOD's name for this step)."""
        if self.threshold is not None:
            self.threshold_ = float(self.threshold)
        elif getattr(self, "calibration_scores_", None) is not None:
            self.threshold_ = S.conformal_threshold(self.calibration_scores_, self.contamination)
        else:
            self.threshold_ = S.quantile_threshold(self.decision_scores_, self.contamination)
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)

    def set_threshold(self, *, contamination: float | None = None, threshold: float | None = None):
        """Re-derive ``threshold_`` and ``labels_`` for another ``contamination`` or an explicit
        ``threshold``, without training again (one of the two). Returns self.

        The scores it needs are kept with the detector and saved with it, so a loaded detector can
        be re-thresholded: the conformal threshold of the held-out ``calibration_scores_`` where
        the detector has them, else the quantile of the training rows' ``decision_scores_``, as
        :meth:`fit` does. The parameters change with it, so a later ``save`` keeps the new choice.
        """
        from ..errors import ConfigError

        self._check_fitted()
        if (contamination is None) == (threshold is None):
            raise ConfigError("set_threshold takes one of contamination= (a share of anomalies) or threshold= (a score)")
        before = {"contamination": self.contamination, "threshold": self.threshold}
        self.set_params(threshold=threshold,
                        **({} if contamination is None else {"contamination": contamination}))
        try:
            self.check_params()
        except ConfigError:
            self.set_params(**before)  # a refused value leaves the detector as it was
            raise
        self._process_decision_scores()
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first or load_detector(path)")

    def decision_function(self, X) -> np.ndarray:
        """Anomaly score of each row, shape (N,): higher = more anomalous (PyOD's sign)."""
        self._check_fitted()
        return self._decision_function(X)

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
        """[P(normal), P(anomaly)] per row, shape (N, 2), against reference scores: the held-out
        ``calibration_scores_`` where the detector has them (novelty detection), else the training
        scores (a new normal row scores higher than the rows the network fitted).

        ``proba='linear'``: min-max scaling over the reference, clipped to [0, 1];
        ``proba='unify'``: ``erf((s - mean) / (std * sqrt 2))`` clipped at 0 (Kriegel et al.
        2011), as PyOD does; neither is calibrated. ``proba='conformal'``: one minus the conformal
        p-value among the reference scores, so that with held-out scores at most a share a of new
        normal rows reach 1 - a, and ``predict`` flags exactly the rows at or above 1 - contamination.
        """
        reference = getattr(self, "calibration_scores_", None)
        return S.to_proba(self.decision_function(X), self.decision_scores_ if reference is None else reference, self.proba)
