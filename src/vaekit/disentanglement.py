"""Disentanglement metrics of codes against ground-truth factors, each with its protocol written down.

``disentanglement_scores(codes, factors)`` takes codes ``(N, D)`` (posterior means, one row per
example) and factors ``(N, K)`` (the classes of the true generative factors of the same examples,
e.g. :attr:`vaekit.data.Dataset.factors` of sprites) and returns the seven numbers below. Nothing
needs a generator of new images: the fixed-factor batches of the β-VAE and FactorVAE scores are drawn
from the given examples by grouping them on the fixed factor's value (for a full factorial grid such
as sprites, or a uniform sample of one, a draw from the group is a draw of the other factors from
their distribution, as the papers' generators give). Every random choice follows ``seed``.

Factors. A column is *continuous* when its values are not all whole numbers or it has more than
:data:`MAX_CLASSES` distinct values (or when ``continuous`` says so); wherever a metric needs classes
(mutual information, fixed-factor groups, classifiers) such a factor is cut into ``bins`` equal-width
bins, and where a metric regresses (SAP, DCI) its value is used. Constant factors carry no
information and are left out. Mutual information and entropies are in nats, from contingency tables,
computed here (:func:`mutual_information`), so no library version can change them.

Protocols (defaults; all of disentanglement_lib's default sample sizes where it has one):

``mig`` (Chen et al. 2018, disentanglement_lib's default): each code dimension is cut into ``bins`` = 20
    equal-width bins between its minimum and maximum (bin ``min(floor(20 (z - min) / (max - min)), 19)``);
    I(z_j; v_k) from the contingency table of bins and factor classes; for each factor the gap between
    the largest and second-largest I over dimensions, divided by H(v_k); the mean over factors. All N
    examples are used. The maximum for a factor with n uniform classes is H(bins of v_k) / log n, which
    is 1 when n <= 21 (each class has its own bin) and below 1 otherwise: 20 bins hold 32 positions
    with entropy 2.9459 nats, 0.8500 of log 32, and 40 orientations with 2.9957 nats, 0.8121 of log 40;
    so the whole sprites grid's true factors as the code score (1 + 1 + 0.8121 + 0.85 + 0.85) / 5 = 0.9024.
``sap`` (Kumar et al. 2018): a score S[j, k] per dimension and factor: for a discrete factor, the test
    accuracy of predicting v_k from z_j alone by the majority class of each of z_j's 20 bins (bins from
    the training part); for a continuous factor, R² of the linear regression of v_k on z_j (the squared
    correlation). SAP is the mean over factors of the gap between the two largest S[:, k]. Train and
    test parts: a seeded 80/20 split of the N examples. A perfect code scores 1 on a continuous factor
    but 1 minus the accuracy an unrelated dimension reaches (about 1/n for n balanced classes) on a
    discrete one: 0.67 for the 3 sprites shapes.
``dci_*`` (Eastwood & Williams 2018): for each factor an ensemble of extremely randomized trees
    (scikit-learn's ``ExtraTreesClassifier``, or ``...Regressor`` for a continuous factor: 10 trees of
    depth at most 8, every feature tried at each split, ``random_state`` seed + k) trained on the 80% part;
    the importance matrix R[j, k] is its impurity-based feature importances. Disentanglement is
    Σ_j ρ_j (1 - H_K(P_j.)), P_jk = R_jk / Σ_k R_jk, ρ_j = Σ_k R_jk / Σ R (entropy with log base K);
    completeness the mean over factors of 1 - H_D(R_.k / Σ_j R_jk) (log base D); informativeness the
    mean over factors of the forest's test accuracy (R² clipped at 0 for a continuous factor).
``beta_vae`` (Higgins et al. 2017): a training point is the mean over ``batch_size`` = 64 pairs of
    examples that share the value of one factor (factor drawn uniformly, value as the value of a
    uniformly drawn example, pair members drawn uniformly with replacement from its group) of |z1 - z2|,
    labelled by the factor; a logistic regression (scikit-learn, default settings, max_iter 1000) is
    trained on 10 000 such points and scored by its accuracy on 5 000 more.
``factor_vae`` (Kim & Mnih 2018): codes divided by each dimension's standard deviation over all N;
    dimensions with a standard deviation below 0.05 are dropped (collapsed); a vote is (the dimension of
    least variance within a batch of 64 examples sharing one factor's value, that factor); the
    majority-vote classifier (each dimension -> the factor it most often won for) is built from 10 000
    votes and scored by its accuracy on 5 000 more.

``beta_vae`` and ``factor_vae`` are ``{"mean": ..., "sd": ...}`` over ``repeats`` draws (sd with
ddof 1); the others single numbers. Chance level is 0 for MIG, SAP and DCI disentanglement and
completeness, and about 1/K for the two classifier scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import DataError

__all__ = ["disentanglement_scores", "score_model", "format_scores", "score_text", "MEASURES", "DISENTANGLEMENT_N", "mig", "sap",
           "sap_from_scores", "dci", "dci_from_importance", "beta_vae_score", "factor_vae_score", "mutual_information", "entropy",
           "discretize", "MAX_CLASSES"]

BINS = 20
MAX_CLASSES = 64  # a whole-number factor with more distinct values than this is treated as continuous
TRAIN_FRACTION = 0.8
BATCH_SIZE = 64
N_TRAIN, N_EVAL = 10_000, 5_000
COLLAPSED_SD = 0.05
FOREST_TREES, FOREST_DEPTH = 10, 8  # tried every feature at each split, an irrelevant code dimension gets no importance


# ------------------------------------------------------------------------------ information


def discretize(x: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Each column of ``x`` cut into ``bins`` equal-width bins between its min and max: int64 of the same shape.

    Bin ``min(floor(bins (x - min) / (max - min)), bins - 1)``; a constant column is all bin 0.
    The product comes before the division so that whole-number values on a grid land in exact bins.
    """
    x = np.asarray(x, dtype=np.float64)
    lo, hi = x.min(axis=0), x.max(axis=0)
    width = np.where(hi > lo, hi - lo, 1.0)
    return np.clip(np.floor((x - lo) * bins / width), 0, bins - 1).astype(np.int64)


def _codes(labels: np.ndarray) -> np.ndarray:
    return np.unique(np.asarray(labels).reshape(-1), return_inverse=True)[1].reshape(-1)


def entropy(labels: np.ndarray) -> float:
    """H(a) = -Σ p log p in nats, of the empirical distribution of the discrete values ``labels``."""
    counts = np.bincount(_codes(labels))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) = Σ p(a, b) log(p(a, b) / (p(a) p(b))) in nats, from the contingency table of two discrete arrays."""
    ia, ib = _codes(a), _codes(b)
    if len(ia) != len(ib):
        raise DataError(f"mutual information needs paired values; got {len(ia)} and {len(ib)}")
    table = np.bincount(ia * (ib.max() + 1) + ib, minlength=(ia.max() + 1) * (ib.max() + 1)).reshape(ia.max() + 1, -1)
    p = table / table.sum()
    pa, pb = p.sum(axis=1, keepdims=True), p.sum(axis=0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (pa @ pb)[nz])).sum())


# ------------------------------------------------------------------------------ inputs


@dataclass
class _Factors:
    classes: np.ndarray  # (N, K) int64: the factor classes, continuous factors binned
    values: np.ndarray  # (N, K) float64: the factors as given
    continuous: np.ndarray  # (K,) bool


def _prepare(codes, factors, continuous, bins: int) -> tuple[np.ndarray, _Factors]:
    z = np.asarray(codes, dtype=np.float64)
    v = np.asarray(factors)
    v = v[:, None] if v.ndim == 1 else v
    if z.ndim != 2 or v.ndim != 2 or len(z) != len(v):
        raise DataError(f"codes {z.shape} and factors {v.shape} must be (N, D) and (N, K) with the same N, one row per example")
    if len(z) < 10 or not np.isfinite(z).all():
        raise DataError(f"disentanglement metrics need at least 10 examples of finite codes; got {len(z)} rows"
                        + ("" if np.isfinite(z).all() else " with NaN or inf among them"))
    v = v.astype(np.float64)
    whole = np.all(v == np.round(v), axis=0) & np.array([len(np.unique(col)) <= MAX_CLASSES for col in v.T])
    cont = ~whole if continuous is None else _mask(continuous, v.shape[1])
    keep = np.array([len(np.unique(col)) > 1 for col in v.T])
    if not keep.any():
        raise DataError("every factor is constant over these examples; disentanglement needs factors that vary")
    v, cont = v[:, keep], cont[keep]
    classes = np.where(cont, discretize(v, bins), np.stack([_codes(col) for col in v.T], axis=1))
    return z, _Factors(classes.astype(np.int64), v, cont)


def _mask(continuous, k: int) -> np.ndarray:
    c = np.asarray(continuous)
    if c.dtype == bool:
        if c.shape != (k,):
            raise DataError(f"continuous must have one flag per factor ({k}); got {c.shape}")
        return c.copy()
    out = np.zeros(k, dtype=bool)
    out[c.astype(np.int64)] = True
    return out


def _split(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(n)
    cut = int(round(n * TRAIN_FRACTION))
    return perm[:cut], perm[cut:]


# ------------------------------------------------------------------------------ MIG, SAP, DCI


def mig(codes, factors, *, bins: int = BINS, continuous: Sequence | None = None) -> float:
    """Mutual information gap (protocol in the module docstring): mean over factors of the gap between the
    two largest I(z_j; v_k), divided by H(v_k). In [0, 1]."""
    z, f = _prepare(codes, factors, continuous, bins)
    zb = discretize(z, bins)
    gaps = []
    for k in range(f.classes.shape[1]):
        mi = np.sort([mutual_information(zb[:, j], f.classes[:, k]) for j in range(zb.shape[1])])[::-1]
        second = mi[1] if len(mi) > 1 else 0.0
        gaps.append((mi[0] - second) / entropy(f.classes[:, k]))
    return float(np.mean(gaps))


def sap_from_scores(scores: np.ndarray) -> float:
    """SAP from a score matrix S (D x K): the mean over factors of the largest S[:, k] minus the second largest."""
    s = np.sort(np.asarray(scores, dtype=np.float64), axis=0)[::-1]
    if len(s) < 2:
        return float(s[0].mean())
    return float((s[0] - s[1]).mean())


def _binned_vote_accuracy(ztr, ytr, zte, yte, bins: int) -> float:
    """Test accuracy of predicting y from one code value by the training majority class of its bin."""
    lo, hi = ztr.min(), ztr.max()
    width = hi - lo if hi > lo else 1.0

    def bin_of(x):
        return np.clip(np.floor((x - lo) * bins / width), 0, bins - 1).astype(np.int64)

    n_cls = int(max(ytr.max(), yte.max())) + 1
    votes = np.zeros((bins, n_cls), dtype=np.int64)
    np.add.at(votes, (bin_of(ztr), ytr), 1)
    votes[votes.sum(axis=1) == 0] = np.bincount(ytr, minlength=n_cls)  # an empty bin predicts the overall majority
    return float((votes.argmax(axis=1)[bin_of(zte)] == yte).mean())


def _r2_single(x: np.ndarray, y: np.ndarray) -> float:
    """R² of the least-squares line of y on x: their squared correlation (0 if either is constant)."""
    xc, yc = x - x.mean(), y - y.mean()
    den = (xc @ xc) * (yc @ yc)
    return float((xc @ yc) ** 2 / den) if den > 0 else 0.0


def sap(codes, factors, *, seed: int = 0, bins: int = BINS, continuous: Sequence | None = None) -> float:
    """Separated attribute predictability (protocol in the module docstring). In [0, 1]."""
    z, f = _prepare(codes, factors, continuous, bins)
    tr, te = _split(len(z), np.random.default_rng(seed))
    scores = np.zeros((z.shape[1], f.classes.shape[1]))
    for k in range(f.classes.shape[1]):
        for j in range(z.shape[1]):
            if f.continuous[k]:
                scores[j, k] = _r2_single(z[:, j], f.values[:, k])
            else:
                y = f.classes[:, k]
                scores[j, k] = _binned_vote_accuracy(z[tr, j], y[tr], z[te, j], y[te], bins)
    return sap_from_scores(scores)


def _normalized_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy of each row of p (rows sum to 1) with logarithms to ``base``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1) / np.log(base)


def dci_from_importance(importance: np.ndarray) -> tuple[float, float]:
    """(disentanglement, completeness) of Eastwood & Williams (2018) from an importance matrix R (D codes x K factors)."""
    r = np.abs(np.asarray(importance, dtype=np.float64))
    d, k = r.shape
    per_code = r.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_code = np.where(per_code[:, None] > 0, r / per_code[:, None], 0.0)
        p_factor = np.where(r.sum(axis=0) > 0, r / r.sum(axis=0), 0.0)
    disent = 1.0 - _normalized_entropy(p_code, k) if k > 1 else np.ones(d)
    weight = per_code / per_code.sum() if per_code.sum() > 0 else np.zeros(d)
    complete = 1.0 - _normalized_entropy(p_factor.T, d) if d > 1 else np.ones(k)
    return float((weight * disent).sum()), float(complete.mean())


def dci(codes, factors, *, seed: int = 0, bins: int = BINS, continuous: Sequence | None = None) -> dict[str, float]:
    """DCI disentanglement, completeness and informativeness (protocol in the module docstring)."""
    from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

    z, f = _prepare(codes, factors, continuous, bins)
    tr, te = _split(len(z), np.random.default_rng(seed))
    importance = np.zeros((z.shape[1], f.classes.shape[1]))
    informative = []
    for k in range(f.classes.shape[1]):
        forest_cls = ExtraTreesRegressor if f.continuous[k] else ExtraTreesClassifier
        forest = forest_cls(n_estimators=FOREST_TREES, max_depth=FOREST_DEPTH, max_features=None, random_state=seed + k, n_jobs=1)
        y = f.values[:, k] if f.continuous[k] else f.classes[:, k]
        forest.fit(z[tr], y[tr])
        importance[:, k] = forest.feature_importances_
        informative.append(max(forest.score(z[te], y[te]), 0.0))  # accuracy, or R² for a regressor
    d, c = dci_from_importance(importance)
    return {"dci_disentanglement": d, "dci_completeness": c, "dci_informativeness": float(np.mean(informative))}


# ------------------------------------------------------------------------------ β-VAE and FactorVAE scores


class _Groups:
    """The examples grouped by each factor's class, to draw batches that share one factor's value."""

    def __init__(self, classes: np.ndarray):
        self.order = [np.argsort(classes[:, k], kind="stable") for k in range(classes.shape[1])]
        self.starts, self.sizes = [], []
        for k, order in enumerate(self.order):
            _, first, counts = np.unique(classes[order, k], return_index=True, return_counts=True)
            self.starts.append(first)
            self.sizes.append(counts)
        self.classes = classes

    def draw(self, rng: np.random.Generator, n: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` batches: (factor of each, int64 (n, batch) example indices sharing that factor's value)."""
        k_all = rng.integers(self.classes.shape[1], size=n)
        anchors = rng.integers(len(self.classes), size=n)  # the value of a uniformly drawn example
        out = np.empty((n, batch), dtype=np.int64)
        for k in np.unique(k_all):
            rows = np.flatnonzero(k_all == k)
            value = np.searchsorted(np.unique(self.classes[:, k]), self.classes[anchors[rows], k])
            start, size = self.starts[k][value], self.sizes[k][value]
            offs = (rng.random((len(rows), batch)) * size[:, None]).astype(np.int64)
            out[rows] = self.order[k][start[:, None] + offs]
        return k_all, out


def beta_vae_score(codes, factors, *, seed: int = 0, batch_size: int = BATCH_SIZE, n_train: int = N_TRAIN,
                   n_eval: int = N_EVAL, bins: int = BINS, continuous: Sequence | None = None) -> float:
    """β-VAE score (Higgins et al. 2017) for one draw: accuracy of a logistic regression naming the fixed factor
    from mean |z1 - z2| over pairs sharing it (protocol in the module docstring). Chance is about 1/K."""
    from sklearn.linear_model import LogisticRegression

    z, f = _prepare(codes, factors, continuous, bins)
    groups, rng = _Groups(f.classes), np.random.default_rng(seed)

    def points(n):
        k, idx = groups.draw(rng, n, 2 * batch_size)
        return np.abs(z[idx[:, :batch_size]] - z[idx[:, batch_size:]]).mean(axis=1), k

    x_tr, y_tr = points(n_train)
    x_te, y_te = points(n_eval)
    clf = LogisticRegression(max_iter=1000).fit(x_tr, y_tr)
    return float(clf.score(x_te, y_te))


def _majority_vote_accuracy(train_votes: np.ndarray, eval_votes: np.ndarray) -> float:
    """Accuracy on ``eval_votes`` (D x K counts) of mapping each dimension to its most-voted factor in ``train_votes``."""
    best = np.asarray(train_votes).argmax(axis=1)
    ev = np.asarray(eval_votes)
    return float(ev[np.arange(len(ev)), best].sum() / ev.sum())


def factor_vae_score(codes, factors, *, seed: int = 0, batch_size: int = BATCH_SIZE, n_train: int = N_TRAIN,
                     n_eval: int = N_EVAL, bins: int = BINS, continuous: Sequence | None = None) -> float:
    """FactorVAE score (Kim & Mnih 2018) for one draw: accuracy of the majority-vote classifier of
    (least-variance dimension -> fixed factor) votes (protocol in the module docstring). Chance is about 1/K."""
    z, f = _prepare(codes, factors, continuous, bins)
    sd = z.std(axis=0)
    active = sd >= COLLAPSED_SD
    if not active.any():
        return 0.0  # every dimension collapsed: no vote can name a factor
    zn = z[:, active] / sd[active]
    groups, rng = _Groups(f.classes), np.random.default_rng(seed)
    n_factors = f.classes.shape[1]

    def votes(n):
        counts = np.zeros((zn.shape[1], n_factors), dtype=np.int64)
        for start in range(0, n, 1000):  # in chunks: 1000 x 64 x D values at a time
            k, idx = groups.draw(rng, min(1000, n - start), batch_size)
            np.add.at(counts, (zn[idx].var(axis=1, ddof=1).argmin(axis=1), k), 1)
        return counts

    return _majority_vote_accuracy(votes(n_train), votes(n_eval))


# ------------------------------------------------------------------------------ all of them


def _mean_sd(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


def disentanglement_scores(codes, factors, *, seed: int = 0, repeats: int = 5, bins: int = BINS,
                           continuous: Sequence | None = None) -> dict:
    """The seven disentanglement numbers of ``codes`` (N x D floats) against ``factors`` (N x K classes).

    Keys ``beta_vae``, ``factor_vae`` (``{"mean", "sd"}`` over ``repeats`` seeded draws), ``mig``, ``sap``,
    ``dci_disentanglement``, ``dci_completeness``, ``dci_informativeness`` (numbers in [0, 1]).
    ``continuous``: per-factor flags or indices of continuous factors (default: told from the values).
    Deterministic given ``seed``; the protocols are in this module's docstring.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise DataError(f"repeats must be a positive whole number of draws, got {repeats!r}")
    opts = {"bins": bins, "continuous": continuous}
    draws = np.random.SeedSequence(seed).generate_state(repeats)
    out = {
        "beta_vae": _mean_sd([beta_vae_score(codes, factors, seed=int(s), **opts) for s in draws]),
        "factor_vae": _mean_sd([factor_vae_score(codes, factors, seed=int(s), **opts) for s in draws]),
        "mig": mig(codes, factors, **opts),
        "sap": sap(codes, factors, seed=seed, **opts),
    }
    out.update(dci(codes, factors, seed=seed, **opts))
    return out


# What each number measures, in one line: `vaekit evaluate --disentanglement` prints it beside the
# number and the report captions its table with it.
MEASURES = {
    "beta_vae": "which factor a batch of pairs shared, told by a linear classifier from mean |z1 - z2| (chance ~1/K)",
    "factor_vae": "which factor a batch shared, told by a vote of its least-varying dimension (chance ~1/K)",
    "mig": "gap between the two dimensions most informative about each factor, over its entropy",
    "sap": "gap in predictability of each factor between its two best single dimensions",
    "dci_disentanglement": "how much each dimension's importance (trees) goes to a single factor",
    "dci_completeness": "how much each factor is captured by a single dimension",
    "dci_informativeness": "accuracy of predicting the factors from the whole code (trees, held-out 20%)",
}
DISENTANGLEMENT_N = 10_000  # examples the CLI scores by default: disentanglement_lib's 10 000 points for MIG


def score_model(est, X, factors, y=None, *, n: int | None = None, seed: int = 0, repeats: int = 5) -> dict:
    """:func:`disentanglement_scores` of a fitted estimator's codes (posterior means, ``est.encode``) of ``X``.

    ``n``: score a seeded random sample of that many examples (all when None or larger). ``y``: the
    labels a conditional model encodes with. Returns the seven scores and ``n``, the examples scored.
    """
    factors = np.asarray(factors)
    idx = np.arange(len(factors))
    if n is not None and n < len(idx):
        idx = np.sort(np.random.default_rng(seed).choice(len(idx), n, replace=False))
    cond = None if y is None or not est.is_conditional else np.asarray(y)[idx]
    codes = est.encode(X[idx], cond)
    return {**disentanglement_scores(codes, factors[idx], seed=seed, repeats=repeats), "n": int(len(idx))}


def score_text(value) -> str:
    """A score as shown: ``0.412`` or, over repeated draws, ``0.412 ± 0.031`` (mean ± sd)."""
    return f"{value['mean']:.3f} ± {value['sd']:.3f}" if isinstance(value, dict) else f"{value:.3f}"


def format_scores(scores: dict) -> list[str]:
    """The lines that print ``scores``: name, value (mean ± sd over draws where repeated) and what it measures."""
    return [f"  {key:<20} {score_text(scores[key]):>13}  {what}" for key, what in MEASURES.items()]
