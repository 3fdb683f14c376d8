"""Anomaly scores of prepared rows (torch, no gradients), thresholds and probabilities.

Every score is higher = more anomalous and depends on its own row only: the Monte-Carlo scores use
standard noise ``eps`` drawn once at fit time (common random numbers), the neighbour score a fixed
reference set of training codes. Each function takes a batch ``x`` (B, features) already
transformed by the detector's :class:`~vaekit.anomaly.table.TablePreprocessor` and returns (B,).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution

from .. import distributions as D
from ..errors import ConfigError, DataError
from ..objectives import draws_last as draws_last  # re-exported: the layout every Monte-Carlo score reduces in
from ..objectives import importance_weights
from ..registry import POSTERIORS


def per_feature_nll(model, x: Tensor, eps: Tensor | None = None) -> Tensor:
    """-log p(x_d | z) for each column d, shape (B, features), in nats.

    ``eps=None``: through the posterior mean (deterministic, also for an autoencoder, whose
    decoder's likelihood is a unit-variance Gaussian up to the constant ``log sqrt(2 pi)`` and a
    factor 1/2: see :func:`per_feature_squared_error`). With ``eps`` (K, latent): the average over
    the K draws ``z_k = loc + scale * eps_k``, the reconstruction term of the negative ELBO.
    """
    if eps is None:
        return -D.factors(model.generative(model.encode(x))).log_prob(x)
    _, z = _posterior_draws(model, x, eps)
    return -draws_last(D.factors(model.generative(z)).log_prob(x)).mean(-1)


def per_feature_squared_error(model, x: Tensor) -> Tensor:
    """(x_d - E[x_d | z = encode(x)])^2 per column, shape (B, features), in squared scaled units."""
    return (model.decode(model.encode(x)) - x).pow(2)


def reconstruction_error(model, x: Tensor) -> Tensor:
    """||x - decode(encode(x))||^2 summed over columns: deterministic (posterior mean)."""
    return per_feature_squared_error(model, x).flatten(1).sum(-1)


def kl_divergence(model, x: Tensor, eps: Tensor) -> Tensor:
    """KL(q(z|x) || p(z)) in nats: closed form where torch has one, else the estimate over ``eps``."""
    return model.kl(*_posterior_draws(model, x, eps))


def negative_elbo(model, x: Tensor, eps: Tensor) -> Tensor:
    """-(E_q[log p(x|z)] - KL(q || p)) in nats, with the fixed draws ``eps`` (K, latent)."""
    return per_feature_nll(model, x, eps).sum(-1) + kl_divergence(model, x, eps)


def iw_nll(model, x: Tensor, eps: Tensor) -> Tensor:
    """-log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x) in nats (Burda et al. 2016, eq. 8), with the
    fixed draws ``eps`` (K, latent) and the K draws on the last axis (see :func:`draws_last`)."""
    return -importance_weights(model, x, q=_posterior(model, x), noise=eps, layout="draws_last").bound()


def latent_distance(model, x: Tensor, centres: Tensor) -> Tensor:
    """Euclidean distance from encode(x) to the nearest k-means centre of the training codes."""
    return _distances(model.encode(x), centres).min(-1).values


def knn_distance(model, x: Tensor, reference: Tensor, k: int) -> Tensor:
    """Mean distance from encode(x) to its k nearest reference codes (training rows).

    A row that is itself in the reference set finds itself at distance 0 first; every row is
    treated alike (the k nearest, self included), so scores do not depend on whether a row was
    part of the reference sample. The mean over k (not the k-th distance) is the smoother choice
    of Angiulli & Pizzuti (2002).
    """
    d = _distances(model.encode(x), reference)
    return d.topk(min(k, reference.shape[0]), dim=-1, largest=False).values.mean(-1)


def input_knn_distance(x: Tensor, reference: Tensor, k: int) -> Tensor:
    """Mean distance from the scaled row itself to its k nearest reference rows (training rows).

    :func:`knn_distance` in the detector's input space instead of its code space: it needs no
    network, and it sees what the code leaves out (a row can be common in code space yet sit off
    the training rows in a column the code does not carry). Self included, as there.
    """
    d = _distances(x, reference)
    return d.topk(min(k, reference.shape[0]), dim=-1, largest=False).values.mean(-1)


def _distances(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean distances (A, B) from the differences themselves, not ``|a|^2 + |b|^2 - 2 a.b``.

    The matrix-product shortcut cancels catastrophically for near neighbours (the distances that
    matter here), so its error, and its disagreement between CPUs, is far above float rounding.
    """
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


# The posterior log-variances a score uses: a posterior std between e^-30 and e^10 (22 000) prior
# units. The encoder's log-variance is linear in the row, so a row far beyond the training data
# (clipped to +-CLIP scaled units, see anomaly.table.CLIP) can ask for exp(+-1e4): inf in float32,
# or a std of exactly 0, and either turns the score into NaN. No row the model has seen comes near
# these bounds, so typical scores are unchanged and such a row keeps a finite, very high score.
LOG_VAR_MIN, LOG_VAR_MAX = -60.0, 20.0


def _posterior(model, x: Tensor) -> Distribution:
    """q(z|x) with its scale kept within LOG_VAR_MIN..LOG_VAR_MAX (a location-scale posterior)."""
    q = model.inference(x)
    return q.with_log_var_bounds(LOG_VAR_MIN, LOG_VAR_MAX) if isinstance(q, D.LocationScale) else q


def _posterior_draws(model, x: Tensor, eps: Tensor) -> tuple[Distribution, Tensor]:
    """q(z|x) and the K draws z_k = loc + scale * eps_k (K, B, latent): the reparameterization.

    Asks the posterior itself (the model is seen through its contract only): a distribution without
    draws from given standard noise, such as a flow, is refused in one line."""
    q = _posterior(model, x)
    if not isinstance(q, D.LocationScale):
        raise ConfigError(f"the anomaly scores draw z from fixed standard noise (the same for every row), which a "
                          f"{type(q).__name__} posterior does not offer; use a location-scale posterior such as posterior='normal'")
    return q, q.reparameterize(eps)


def given_noise(family: str) -> None:
    """Refuse, in one line, a posterior family without draws from given standard noise (its ``location_scale`` flag)."""
    if not POSTERIORS[family].location_scale:
        raise ConfigError(f"the anomaly scores draw z from fixed standard noise (the same for every row), which the {family} "
                          "posterior does not offer; use a location-scale posterior such as posterior='normal'")


def standard_draws(family: str, df: float, k: int, dim: int, seed: int) -> np.ndarray:
    """K x dim draws of the posterior family's standard form (loc 0, scale 1), by inverse CDF."""
    from scipy import stats

    given_noise(family)
    u = np.random.default_rng(seed).uniform(1e-7, 1 - 1e-7, size=(k, dim))
    dist = {"normal": stats.norm, "laplace": stats.laplace, "logistic": stats.logistic,
            "student-t": stats.t(df)}[family]
    return dist.ppf(u).astype(np.float32)


# -- combining and thresholding scores --------------------------------------------------------------


def robust_location_scale(scores: np.ndarray) -> tuple[float, float]:
    """(median, IQR / 1.349) of training scores, the scale floored so that it is never 0.

    Used to put differently scaled terms (nats, code distances) on one footing before adding
    them: the median and IQR are not moved by the anomalies in the training scores.
    """
    s = np.asarray(scores, dtype=np.float64)
    med = float(np.median(s))
    q75, q25 = np.percentile(s, [75, 25])
    scale = float(q75 - q25) / 1.349
    if not scale > 0:
        scale = float(s.std()) or 1.0
    return med, scale


def quantile_threshold(scores: np.ndarray, contamination: float) -> float:
    """The ``1 - contamination`` quantile of the training scores."""
    return float(np.quantile(scores, 1.0 - float(contamination)))


def conformal_threshold(held_out: np.ndarray, contamination: float) -> float:
    """The split-conformal threshold of n held-out normal rows' scores: their ceil((n + 1)(1 - c))-th smallest.

    A new row exchangeable with the held-out ones scores above it with probability at most c
    = ``contamination`` (Vovk et al. 2005; Bates et al. 2023, "Testing for outliers with
    conformal p-values"), and at least c - 1 / (n + 1). Where that rank exceeds n (fewer than
    1 / c - 1 rows), the largest score: the share flagged is then about 1 / (n + 1), above c.
    """
    s = np.sort(np.asarray(held_out, dtype=np.float64))
    rank = math.ceil((len(s) + 1) * (1.0 - float(contamination)))
    return float(s[min(rank, len(s)) - 1])


def to_proba(scores: np.ndarray, train: np.ndarray, how: str) -> np.ndarray:
    """[P(normal), P(anomaly)] per row, shape (N, 2), each monotone in the score, against the
    reference scores ``train`` (a detector's held-out calibration scores, else its training scores).

    ``'linear'``: min-max scaling over the reference, clipped to [0, 1]. ``'unify'``:
    ``erf((s - mean) / (std * sqrt 2))`` clipped at 0 (Kriegel et al. 2011), as PyOD does. Neither
    is calibrated. ``'conformal'``: P(anomaly) = 1 - p with p = (1 + #{reference >= s}) / (n + 1),
    the conformal p-value (Vovk et al. 2005): where the reference and a new normal row's score
    are exchangeable (a novelty detector's held-out rows), P(anomaly) >= 1 - a for at most a share
    a of new normal rows, and a score is above :func:`conformal_threshold` (c) exactly when
    P(anomaly) >= 1 - c.
    """
    if how == "conformal":
        ref = np.sort(np.asarray(train, dtype=np.float64))
        at_least = len(ref) - np.searchsorted(ref, scores, side="left")  # reference scores >= s
        p = 1.0 - (1.0 + at_least) / (len(ref) + 1.0)
        return np.column_stack([1.0 - p, p])
    if how == "linear":
        lo, hi = float(train.min()), float(train.max())
        p = (scores - lo) / (hi - lo) if hi > lo else (scores > hi).astype(np.float64)
    else:
        from scipy.special import erf

        sd = float(train.std())
        p = erf((scores - float(train.mean())) / ((sd if sd > 0 else 1.0) * math.sqrt(2)))
    p = np.clip(p, 0.0, 1.0)
    return np.column_stack([1.0 - p, p])


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
