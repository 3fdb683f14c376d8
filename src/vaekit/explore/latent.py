"""Facts about each latent dimension of the codes on the plane: how much it is used, its range, class means."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .limits import VAE_RANGE


@dataclass(frozen=True)
class LatentFacts:
    """Per-dimension facts of the codes (N, code_dim) that the page lays its plane and sliders out with.

    ``kl``: mean KL(q(z_j|x) || p(z_j)) in nats where the prior factorizes, else None; ``variance``:
    the variance of the codes; ``active``: Burda et al.'s active units (models with a density), else
    None; ``order``: dimensions most used first (by KL, else by variance); ``lo``/``hi``: each
    dimension's range on the plane; ``class_means``: label -> mean code (empty for a conditional model).
    """

    variance: np.ndarray
    kl: np.ndarray | None
    active: np.ndarray | None
    order: list[int]
    lo: np.ndarray
    hi: np.ndarray
    class_means: dict[int, np.ndarray]

    def dims_json(self) -> list[dict]:
        return [{"index": j, "kl": None if self.kl is None else float(self.kl[j]), "variance": float(self.variance[j]),
                 "active": None if self.active is None else bool(self.active[j]), "lo": float(self.lo[j]), "hi": float(self.hi[j])}
                for j in range(len(self.variance))]

    def plane(self) -> list[int]:
        """The plane's axes: a 2-D model's plane is z itself (z0 across, z1 up); above 2-D, the two most used dimensions."""
        code_dim = len(self.variance)
        return [0, 1] if code_dim == 2 else self.order[:2] if code_dim > 2 else [0]


def latent_facts(codes: np.ndarray, y: np.ndarray | None, kl: np.ndarray | None, *, has_prior: bool,
                 class_means: bool) -> LatentFacts:
    """The facts of ``codes``; ``has_prior``: the plane covers at least the prior's bulk, [-3, 3] per dimension.

    ``class_means``: whether the mean code of a class means something (not for a conditional model,
    which takes the class as an input rather than writing it into z).
    """
    from ..evaluate import active_units, latent_variances

    variance = latent_variances(codes)
    key = kl if kl is not None else variance
    order = [int(j) for j in np.argsort(-np.asarray(key), kind="stable")]
    lo, hi = np.percentile(codes, 0.5, axis=0), np.percentile(codes, 99.5, axis=0)
    margin = 0.1 * np.maximum(hi - lo, 1e-3)
    lo, hi = lo - margin, hi + margin
    if has_prior:
        lo, hi = np.minimum(lo, -VAE_RANGE), np.maximum(hi, VAE_RANGE)
    means = {}
    if y is not None and class_means:
        means = {int(k): codes[y == k].mean(0) for k in sorted(np.unique(y))}
    return LatentFacts(variance=variance, kl=kl, active=active_units(codes) if has_prior else None, order=order,
                       lo=lo.astype(np.float64), hi=hi.astype(np.float64), class_means=means)
