"""The scoring engine the detectors share: the state a score needs besides the network, and the
fixed-shape float64 pass that turns prepared rows into score terms and a score.

A row's score depends on that row only, never on its batch, chunk or process: the Monte-Carlo
terms reuse noise drawn once at fit, the neighbour terms a fixed set of training codes, every
chunk is padded to one shape, and the network runs in float64 (see :func:`scoring_model`).
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import torch

from ..errors import ModelFileError
from . import scores as S
from .options import DENSITY_METHODS, FIRST_PASS_TERMS, REFERENCE_TRIM, combined_terms_for, resolved_neighbors

# Rows x samples x features kept in memory at once while scoring (about 16 MB of float32).
_SCORE_BUDGET = 1 << 22
# Rows per scoring chunk at most. Every chunk is padded to the same row count (see
# ``estimators.batched(fixed_shape=True)``), so a row's score is bit-identical whatever batch it
# comes in; the cap keeps the padding cheap when one row is scored alone.
_MAX_CHUNK = 1024
# Training codes kept as the neighbour score's reference set: enough for a stable local density,
# small enough that scoring a row costs one (rows x 1024) distance matrix.
_N_REFERENCE = 1024
# With novelty=True (training rows known to be normal) a denser reference: every training row up to
# this many. A sparse sample of clean rows makes the normal tails look empty.
_N_REFERENCE_NOVELTY = 8192
# Rows the first pass of outlier detection reads at most (see ScoringEngine._trimmed_reference_terms).
_FIRST_PASS_ROWS = 16384
# The score of a finite row whose score came out NaN or infinite (see ScoringEngine._fail_closed):
# above every real score, so the row is flagged, yet finite, so ranks, sums and AUCs still work.
NONFINITE_SCORE = 1e300


class NonFiniteScoreWarning(UserWarning):
    """Rows whose score was NaN/Inf got :data:`NONFINITE_SCORE` (they are flagged as anomalies)."""


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


def batch_rows(n_cols: int, k: int) -> int:
    """Rows per scoring chunk for ``n_cols`` values a row and ``k`` draws, within the memory budget."""
    return max(1, min(_MAX_CHUNK, _SCORE_BUDGET // (max(1, k) * max(1, n_cols))))


class ScoringEngine:
    """The detectors' scores of prepared rows. Reads the fitted ``estimator_``, ``preprocessor_``,
    ``method`` and the score state this class fixes at fit (``eps_``, ``reference_codes_``,
    ``cluster_centers_``, ``term_location_`` / ``term_scale_``); ``family`` is the wrapped model family."""

    @property
    def _combined_terms(self) -> tuple[str, ...]:
        # A fitted detector keeps the terms it was fitted with (a folder saved by an earlier
        # version scores with its own); a new fit takes its family's current default.
        fitted = getattr(self, "combined_terms_", None)
        return tuple(fitted) if fitted is not None else combined_terms_for(self.family, self.novelty)

    @property
    def _n_neighbors(self) -> int:
        return resolved_neighbors(self.n_neighbors, self.novelty)

    def _fit_score_state(self, Xf: np.ndarray, scale_rows: np.ndarray | None = None) -> np.ndarray:
        """Fix what the score needs besides the network (noise draws, reference codes, centres,
        term scales); returns the training rows' scores. One scoring pass over the training rows, after,
        for ``combined`` outlier detection, a first pass over at most 16384 of them (_trimmed_reference_terms).

        ``scale_rows`` (novelty detection only): the rows, a sample of Xf, whose terms set the term
        scales, instead of all; the scores returned are theirs. The reference is still drawn from
        all of Xf, so the sample holds reference rows at the rate the whole table does."""
        for attr in ("eps_", "cluster_centers_", "reference_codes_", "reference_rows_", "combined_terms_", "term_location_", "term_scale_"):
            self.__dict__.pop(attr, None)
        cfg = self.estimator_.model_.config
        seed = self._seed()
        # The noise and the reference codes are cheap, so every detector keeps them: score_terms
        # can then give every single-term score of the same network.
        if self.family.has_density:
            post = cfg.posterior
            self.eps_ = S.standard_draws(post["name"], post.get("df", 5.0), int(self.n_score_samples), cfg.latent_dim, seed)
        n_ref = _N_REFERENCE_NOVELTY if self.novelty else _N_REFERENCE
        self._keep_reference(Xf, np.sort(np.random.default_rng(seed).permutation(len(Xf))[:n_ref]))
        if self.method == "latent":
            from sklearn.cluster import KMeans

            Z = self.estimator_.encode(Xf)
            k = int(min(self.n_clusters, len(np.unique(Z, axis=0))))
            km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(Z.astype(np.float64))
            self.cluster_centers_ = km.cluster_centers_.astype(np.float32)
        if self.method != "combined":
            return self._combine(self._terms(Xf))
        self.combined_terms_ = combined_terms_for(self.family, self.novelty)
        if self.novelty:
            terms = self._terms(Xf if scale_rows is None else Xf[scale_rows])
        else:
            terms = self._trimmed_reference_terms(Xf, seed)
        loc_scale = [S.robust_location_scale(terms[t]) for t in self._combined_terms]
        self.term_location_ = np.array([a for a, _ in loc_scale])
        self.term_scale_ = np.array([b for _, b in loc_scale])
        return self._combine(terms)

    def _keep_reference(self, Xf: np.ndarray, pick: np.ndarray) -> None:
        self.reference_codes_ = self.estimator_.encode(Xf[pick]).astype(np.float32)
        self.reference_rows_ = Xf[pick].astype(np.float32)

    def _trimmed_reference_terms(self, Xf: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        """Outlier detection: redraw the reference set from the rows a first pass finds least anomalous.

        The first pass sums the robust z-scores of FIRST_PASS_TERMS over the reference drawn from all
        rows; the new reference (as many rows) comes from those below its 1 - REFERENCE_TRIM quantile.
        Anomalies that come in small groups are otherwise each other's nearest neighbours and look
        normal. The first pass reads at most _FIRST_PASS_ROWS rows (a seeded sample of a larger
        table: a quantile and 1024 rows need no more). Returns the combined score's terms of every
        training row, computed over the new reference.
        """
        density = bool(self.family.has_density)
        first_names = FIRST_PASS_TERMS[density]
        rows = np.arange(len(Xf))
        if len(Xf) > _FIRST_PASS_ROWS:
            rows = np.sort(np.random.default_rng([seed, 1]).choice(len(Xf), _FIRST_PASS_ROWS, replace=False))
        first = self._terms(Xf[rows], first_names)
        z = sum((first[t] - loc) / sc for t in first_names for loc, sc in [S.robust_location_scale(first[t])])
        ok = np.isfinite(z)
        if not ok.any():  # a diverged network: keep the first reference; fit then says so in one line
            return self._terms(Xf)
        keep = rows[ok & (z <= np.quantile(z[ok], 1.0 - REFERENCE_TRIM[density]))]
        self._keep_reference(Xf, np.sort(np.random.default_rng(seed).permutation(keep)[:_N_REFERENCE]))
        return self._terms(Xf)

    def _transform(self, X) -> np.ndarray:
        """X as the network's input: the preprocessor, then (0.1.0 folders only) the estimator's scaler."""
        return self.estimator_.prepare_X(self.preprocessor_.transform(X, who=type(self).__name__))

    def _terms(self, Xs: np.ndarray, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """The named score terms of prepared rows, float64 (N,) each: one batched pass over Xs."""
        names = names or (self._combined_terms if self.method == "combined" else (self.method,))
        dev = self.estimator_.device_
        state = {a: torch.as_tensor(getattr(self, a), device=dev, dtype=torch.float64)
                 for a in ("eps_", "cluster_centers_", "reference_codes_", "reference_rows_") if getattr(self, a, None) is not None}
        fns = {
            "reconstruction": lambda m, x: S.reconstruction_error(m, x),
            "elbo": lambda m, x: S.negative_elbo(m, x, state["eps_"]),
            "likelihood": lambda m, x: S.iw_nll(m, x, state["eps_"]),
            "latent": lambda m, x: S.latent_distance(m, x, state["cluster_centers_"]),
            "knn": lambda m, x: S.knn_distance(m, x, state["reference_codes_"], self._n_neighbors),
            "knn_input": lambda m, x: S.input_knn_distance(x, state["reference_rows_"], self._n_neighbors),
        }
        model = scoring_model(self.estimator_.model_)
        k = int(getattr(self, "n_score_samples", 1)) if any(n in DENSITY_METHODS for n in names) else 1
        batch = batch_rows(Xs.shape[1] + len(getattr(self, "reference_codes_", ())) + len(getattr(self, "reference_rows_", ())), k)

        def run(xb):
            return torch.stack([fns[n](model, xb.double()) for n in names], -1)

        out = self.estimator_.batched(run, Xs, batch_size=batch, fixed_shape=True).astype(np.float64)
        return {n: out[:, i] for i, n in enumerate(names)}

    def _combine(self, terms: dict[str, np.ndarray]) -> np.ndarray:
        if self.method != "combined":
            return terms[self.method]
        return sum((terms[t] - loc) / sc for t, loc, sc in zip(self._combined_terms, self.term_location_, self.term_scale_))

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
        warnings.warn(f"{int(bad.sum())} of {len(s)} rows drove the network beyond float32's range (NaN/Inf scores); "
                      f"they get the score {NONFINITE_SCORE:g} and are flagged as anomalies", NonFiniteScoreWarning, stacklevel=4)
        return np.where(bad, NONFINITE_SCORE, s)
