"""What lies behind a detector's score: each feature's share of the reconstruction term
(:meth:`Explanations.explain`) and every single-term score of the same network (``score_terms``)."""

from __future__ import annotations

import functools

import numpy as np
import torch

from . import scores as S
from .scoring import batch_rows, scoring_model


class Explanations:
    """The explanations of a fitted detector; used with :class:`~vaekit.anomaly.scoring.ScoringEngine`."""

    def explain(self, X):
        """Each input feature's contribution to each row's reconstruction term: a DataFrame (N, features).

        The reconstruction term is the part of the score that is a sum over columns: the squared
        error for ``method='reconstruction'`` (squared scaled units), else the negative expected
        log-likelihood ``-E_q[log p(x|z)]`` in nats (with the detector's fixed draws for a VAE,
        through the posterior mean for an autoencoder). A categorical feature's contribution is
        summed over its one-hot columns. Each row sums to
        ``score_terms(X)['explained']``; larger = that feature is further from what the
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
        units of those methods (``latent`` only when it is the method); ``knn_input``, a term of
        ``combined``, is the mean distance to the nearest saved training rows in scaled input
        units. A DataFrame (N, terms).
        """
        import pandas as pd

        self._check_fitted()
        Xs = self._transform(X)
        names = ["reconstruction"]
        names += ["elbo", "likelihood"] if getattr(self, "eps_", None) is not None else []
        names += ["knn"] if getattr(self, "reference_codes_", None) is not None else []
        names += ["knn_input"] if getattr(self, "reference_rows_", None) is not None else []
        names += ["latent"] if self.method == "latent" else []
        terms = self._terms(Xs, tuple(names))
        index = X.index if isinstance(X, pd.DataFrame) else None
        cols = {"score": self._fail_closed(self._combine(terms)), "explained": self._per_column_reconstruction(Xs).sum(1), **terms}
        return pd.DataFrame(cols, index=index)

    @property
    def explains_in_nats(self) -> bool:
        """Whether :meth:`explain` splits a log-likelihood (nats), else a squared error: a model with
        a density explains in nats unless the score is the reconstruction error itself."""
        return self.family.has_density and self.method != "reconstruction"

    def _per_column_reconstruction(self, Xs: np.ndarray) -> np.ndarray:
        model = scoring_model(self.estimator_.model_)
        if not self.explains_in_nats:
            fn = functools.partial(S.per_feature_squared_error, model)
        else:
            eps = None if getattr(self, "eps_", None) is None else torch.as_tensor(self.eps_, device=self.estimator_.device_, dtype=torch.float64)
            fn = functools.partial(S.per_feature_nll, model, eps=eps)
        k = len(getattr(self, "eps_", ())) or 1
        return self.estimator_.batched(lambda xb: fn(xb.double()), Xs, batch_size=batch_rows(Xs.shape[1], k),
                                      fixed_shape=True).astype(np.float64)
