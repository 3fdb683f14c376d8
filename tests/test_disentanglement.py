"""Known-answer tests of vaekit.disentanglement: every expected value is written from the papers' formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from vaekit.disentanglement import (
    _majority_vote_accuracy,
    beta_vae_score,
    dci,
    dci_from_importance,
    discretize,
    disentanglement_scores,
    entropy,
    factor_vae_score,
    mig,
    mutual_information,
    sap,
    sap_from_scores,
)
from vaekit.errors import DataError

KEYS = {"beta_vae", "factor_vae", "mig", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness"}


def _grid(*sizes: int) -> np.ndarray:
    """Every combination of the factors' classes once: a full factorial grid, as sprites is."""
    return np.array(list(itertools.product(*[range(n) for n in sizes])), dtype=np.int64)


def _binned_entropy(n: int, bins: int = 20) -> float:
    """H of the bins that n uniform classes 0..n-1 fall into: bin floor(bins v / (n - 1)), the last one clipped."""
    counts = np.bincount(np.minimum(np.arange(n) * bins // (n - 1), bins - 1))
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


# ------------------------------------------------------------------------------ the formulas on tiny cases


def test_entropy_and_mutual_information_match_their_formulas() -> None:
    assert entropy([0, 0, 0, 1]) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert mutual_information([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0, abs=1e-15)
    assert mutual_information([0, 0, 1, 1], [5, 5, 7, 7]) == pytest.approx(math.log(2))
    # p(a, b): (0,0) 1/2, (0,1) 1/4, (1,1) 1/4; p(a) = (3/4, 1/4), p(b) = (1/2, 1/2).
    expected = 0.5 * math.log(0.5 / (0.75 * 0.5)) + 0.25 * math.log(0.25 / (0.75 * 0.5)) + 0.25 * math.log(0.25 / (0.25 * 0.5))
    assert mutual_information([0, 0, 0, 1], [0, 0, 1, 1]) == pytest.approx(expected)
    assert mutual_information([0, 0, 0, 1], [0, 0, 1, 1]) == pytest.approx(mutual_information([0, 0, 1, 1], [0, 0, 0, 1]))


def test_discretize_cuts_equal_width_bins_and_keeps_grid_values_in_their_own_bin() -> None:
    assert discretize(np.arange(6.0)[:, None])[:, 0].tolist() == [0, 4, 8, 12, 16, 19]
    assert discretize(np.array([[0.0], [0.049], [0.05], [0.999], [1.0]]))[:, 0].tolist() == [0, 0, 1, 19, 19]
    assert discretize(np.full((3, 1), 2.5))[:, 0].tolist() == [0, 0, 0]


def test_mig_of_a_hand_computable_code() -> None:
    f = np.tile([0, 0, 0, 1], 3)
    z = np.stack([f, np.tile([0, 1, 0, 1], 3)], axis=1).astype(float)  # z0 is the factor; z1 shares some of it
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    i1 = 0.5 * math.log(0.5 / (0.75 * 0.5)) + 0.25 * math.log(0.25 / (0.75 * 0.5)) + 0.25 * math.log(0.25 / (0.25 * 0.5))
    assert mig(z, f) == pytest.approx((h - i1) / h)


def test_sap_and_dci_from_their_matrices() -> None:
    assert sap_from_scores([[0.9, 0.1], [0.2, 0.8], [0.3, 0.3]]) == pytest.approx(((0.9 - 0.3) + (0.8 - 0.3)) / 2)
    assert dci_from_importance(np.eye(3)) == pytest.approx((1.0, 1.0))
    # One code dimension holds both factors: it is not disentangled (P = (1/2, 1/2)), and it carries all the weight.
    assert dci_from_importance([[1, 1], [0, 0]]) == pytest.approx((0.0, 1.0))
    # Factor 0 spread evenly over codes 0 and 1 of three: completeness 1 - H_3(1/2, 1/2, 0) for it.
    assert dci_from_importance([[1, 0], [1, 0], [0, 1]]) == pytest.approx((1.0, (1 - math.log(2) / math.log(3) + 1) / 2))
    # rho = (1/2, 1/2); D = (1, 0); completeness of factor 0 is 1 - H_2(2/3, 1/3), of factor 1 is 1.
    h = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    assert dci_from_importance([[2, 0], [1, 1]]) == pytest.approx((0.5, ((1 - h) + 1) / 2))


def test_the_majority_vote_classifier_of_the_factor_vae_score() -> None:
    votes = np.array([[10, 2], [3, 5], [0, 0]])  # dimension 0 -> factor 0, dimension 1 -> factor 1
    assert _majority_vote_accuracy(votes, votes) == pytest.approx((10 + 5) / 20)
    assert _majority_vote_accuracy(votes, [[0, 4], [4, 0], [0, 0]]) == 0.0


# ------------------------------------------------------------------------------ codes with a known answer


def test_the_true_factors_score_the_protocols_maximum() -> None:
    sizes = (3, 6, 40, 32)
    f = _grid(*sizes)
    # MIG: the second-best information is 0 on a full grid (the factors are exactly independent), so each
    # factor scores H(its 20 bins) / log n: 1 for n <= 21, log 20 / log 40 for 40 classes (two per bin) and
    # (3/4 log 16 + 1/4 log 32) / log 32 for 32 classes (12 bins of two, 8 of one).
    per_factor = [1.0, 1.0, math.log(20) / math.log(40), (0.75 * math.log(16) + 0.25 * math.log(32)) / math.log(32)]
    assert _binned_entropy(32) == pytest.approx(0.75 * math.log(16) + 0.25 * math.log(32))
    assert [_binned_entropy(n) / math.log(n) for n in sizes] == pytest.approx(per_factor)
    assert mig(f.astype(float), f) == pytest.approx(np.mean(per_factor), abs=1e-12)
    scores = disentanglement_scores(f.astype(float), f, repeats=2)
    assert set(scores) == KEYS
    assert scores["dci_disentanglement"] == pytest.approx(1.0, abs=1e-12)  # each code dimension informs one factor
    assert scores["dci_completeness"] == pytest.approx(1.0, abs=1e-12)
    assert scores["dci_informativeness"] == pytest.approx(1.0)
    assert scores["factor_vae"] == {"mean": 1.0, "sd": 0.0}  # the fixed factor's own dimension never varies
    assert scores["beta_vae"]["mean"] > 0.99
    assert scores["sap"] > 0.6


def test_a_rotation_of_the_factors_scores_lower() -> None:
    f = _grid(3, 6, 10, 10)
    z = (f - f.mean(axis=0)) / f.std(axis=0)
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(4, 4)))
    rotated = disentanglement_scores(z @ q, f, repeats=2)
    true = disentanglement_scores(z, f, repeats=2)
    assert rotated["mig"] < 0.5 < true["mig"]
    assert rotated["dci_disentanglement"] < 0.6 and rotated["dci_completeness"] < 0.6
    assert rotated["sap"] < true["sap"] - 0.3


def test_pure_noise_scores_about_zero_and_the_classifiers_chance() -> None:
    rng = np.random.default_rng(0)
    f = _grid(3, 6, 40, 32, 32)[rng.choice(737_280, 10_000, replace=False)]
    s = disentanglement_scores(rng.normal(size=(10_000, 10)), f, repeats=3)
    assert s["mig"] < 0.01 and s["sap"] < 0.02
    assert s["dci_disentanglement"] < 0.02 and s["dci_completeness"] < 0.02
    assert abs(s["factor_vae"]["mean"] - 1 / 5) < 0.03 and abs(s["beta_vae"]["mean"] - 1 / 5) < 0.03


def test_a_factor_spread_over_two_dimensions_loses_gap_and_completeness() -> None:
    f = np.tile(_grid(36, 5, 4), (3, 1))
    spread = np.stack([f[:, 0] // 6, f[:, 0] % 6, f[:, 1], f[:, 2]], axis=1).astype(float)  # two digits of factor 0
    # Each digit carries log 6 nats about factor 0: its gap is 0. Factors 1 and 2 keep their own dimension (gap 1).
    assert mig(spread, f) == pytest.approx((0 + 1 + 1) / 3, abs=1e-12)
    assert mig(f.astype(float), f) > 0.9
    d = dci(spread, f)
    assert d["dci_completeness"] < 0.9 < dci(f.astype(float), f)["dci_completeness"]
    assert d["dci_disentanglement"] > 0.95  # every dimension still serves a single factor


def test_a_continuous_factor_is_binned_not_taken_as_thousands_of_classes() -> None:
    rng = np.random.default_rng(1)
    shape = np.tile(np.arange(5), 1000)
    u = rng.random(5000)
    f = np.stack([shape, u], axis=1)
    z = np.stack([shape, u, rng.normal(size=5000)], axis=1)
    assert mig(z, f) > 0.97
    # Read as 5000 classes (the mistake of metrics that assume discrete factors), H(u) = log 5000 swamps the gap.
    assert mig(z, f, continuous=[False, False]) < 0.7
    assert sap(z, u) > 0.99  # R² of u on its own dimension is 1, on the others about 0
    assert dci(z, f)["dci_informativeness"] > 0.9


# ------------------------------------------------------------------------------ protocol


def test_scores_are_deterministic_given_the_seed_and_drop_collapsed_and_constant_parts() -> None:
    rng = np.random.default_rng(2)
    f = _grid(4, 5, 6)
    z = f + 0.3 * rng.normal(size=f.shape)
    assert disentanglement_scores(z, f, seed=7, repeats=2) == disentanglement_scores(z, f, seed=7, repeats=2)
    noise = rng.normal(size=f.shape)
    assert beta_vae_score(noise, f, seed=1) != beta_vae_score(noise, f, seed=2)
    assert factor_vae_score(noise, f, seed=1) != factor_vae_score(noise, f, seed=2)
    with_dead = np.concatenate([z, np.zeros((len(z), 1))], axis=1)  # a collapsed dimension never wins a vote
    assert factor_vae_score(with_dead, f, seed=3) == factor_vae_score(z, f, seed=3)
    with_constant = np.concatenate([np.zeros((len(f), 1), np.int64), f], axis=1)  # the sprites colour, say
    assert mig(z, with_constant) == mig(z, f)


def test_bad_inputs_are_one_line_errors() -> None:
    with pytest.raises(DataError, match="same N"):
        disentanglement_scores(np.zeros((20, 2)), np.zeros((19, 1)))
    with pytest.raises(DataError, match="every factor is constant"):
        mig(np.random.default_rng(0).normal(size=(20, 2)), np.zeros((20, 2)))
    with pytest.raises(DataError, match="NaN"):
        mig(np.full((20, 2), np.nan), np.arange(20))
    with pytest.raises(DataError, match="repeats"):
        disentanglement_scores(np.zeros((20, 2)), np.arange(20), repeats=0)


def test_the_function_is_public_at_the_top_level() -> None:
    import vaekit

    assert vaekit.disentanglement_scores is disentanglement_scores
