"""The novelty detector's threshold: split conformal on rows held out of a twin's training.

Known answers for the conformal rank, its coverage on exchangeable scores, and the detectors: a
novelty detector flags about ``contamination`` of new normal rows where the training scores' own
quantile flags several times that; an explicit threshold or outlier detection trains no twin."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from vaekit.anomaly import AutoencoderDetector, VAEDetector, load_detector
from vaekit.anomaly.scores import conformal_threshold, to_proba


@pytest.mark.parametrize(("n", "c", "rank"), [(19, 0.1, 18), (19, 0.05, 19), (99, 0.05, 95), (99, 0.01, 99), (19, 0.01, 19), (4, 0.5, 3)])
def test_the_conformal_threshold_is_the_ceil_n_plus_1_times_1_minus_c_th_smallest(n, c, rank):
    scores = np.random.default_rng(n).permutation(np.arange(1.0, n + 1))  # the k-th smallest is k
    assert rank == min(math.ceil((n + 1) * (1 - c)), n)
    assert conformal_threshold(scores, c) == float(rank)


def test_a_new_exchangeable_score_exceeds_it_with_probability_at_most_c():
    # n = 39 held-out scores, c = 0.1: rank 36, so P(new > threshold) = 1 - 36/40 = 0.1 exactly
    # (continuous scores); with c = 0.12 the rank is still 36 (ceil(35.2)): 0.1 <= 0.12.
    rng = np.random.default_rng(0)
    held, new = rng.standard_normal((20000, 39)), rng.standard_normal(20000)
    for c, want in ((0.1, 0.1), (0.12, 0.1), (0.025, 0.025)):
        thr = np.array([conformal_threshold(h, c) for h in held])
        assert abs(np.mean(new > thr) - want) < 0.006, c


def test_conformal_proba_is_one_minus_the_conformal_p_value():
    # reference 1, 2, 3, 4: a score of 0 has all 4 at or above it (p = 5/5), 2 has 3 (p = 4/5), 2.5 has 2, 5 has none (p = 1/5)
    p = to_proba(np.array([0.0, 2.0, 2.5, 5.0]), np.array([4.0, 2.0, 1.0, 3.0]), "conformal")
    np.testing.assert_allclose(p[:, 1], [0.0, 0.2, 0.4, 0.8])
    np.testing.assert_allclose(p.sum(1), 1.0)


def test_conformal_proba_flags_what_the_threshold_flags_and_covers_new_exchangeable_scores():
    rng = np.random.default_rng(1)
    for n, c in ((39, 0.1), (99, 0.05), (60, 0.05), (19, 0.2)):
        held, new = rng.standard_normal(n), rng.standard_normal(500)
        p_anomaly = to_proba(new, held, "conformal")[:, 1]
        flagged = new > conformal_threshold(held, c)
        np.testing.assert_array_equal(flagged, p_anomaly >= 1 - c - 1e-12)
    # P(anomaly) >= 1 - a for at most a share a of new scores exchangeable with the reference (here exactly 4/40)
    held, new = rng.standard_normal((20000, 39)), rng.standard_normal(20000)
    p_anomaly = np.array([to_proba(new[i:i + 1], held[i], "conformal")[0, 1] for i in range(len(new))])
    assert abs(np.mean(p_anomaly >= 0.9 - 1e-12) - 0.1) < 0.006


@pytest.fixture(scope="module")
def normal_rows():
    rng = np.random.default_rng(3)
    mix = rng.standard_normal((6, 6))
    return rng.standard_normal((300, 6)) @ mix, rng.standard_normal((3000, 6)) @ mix


@pytest.mark.parametrize("cls", [VAEDetector, AutoencoderDetector], ids=lambda c: c.__name__)
def test_a_novelty_detector_flags_about_contamination_of_new_normal_rows(cls, normal_rows):
    train, new = normal_rows
    det = cls(novelty=True, contamination=0.05, n_steps=600, seed=0).fit(train)
    assert len(det.calibration_scores_) == 60  # a fifth of 300
    assert det.threshold_ == conformal_threshold(det.calibration_scores_, 0.05)
    s = det.decision_function(new)
    flagged = np.mean(s > det.threshold_)
    in_sample = np.mean(s > np.quantile(det.decision_scores_, 0.95))
    # the training rows' own quantile flags twice what was asked or more (10-13 % over three seeds);
    # the held-out one at most about what was asked (0.5-5.6 % over three seeds: 60 held-out rows; the
    # lower bound only rules out a threshold above every score)
    assert in_sample > 0.08
    assert 0.001 < flagged < 0.075
    np.testing.assert_array_equal(det.predict(new), (s > det.threshold_).astype(np.int64))


def test_the_threshold_survives_saving_and_the_scores_do_not_depend_on_it(normal_rows, tmp_path):
    train, new = normal_rows
    det = VAEDetector(novelty=True, contamination=0.05, n_steps=50, seed=0).fit(train)
    plain = VAEDetector(novelty=True, contamination=0.05, n_steps=50, seed=0, threshold=1.0).fit(train)
    np.testing.assert_array_equal(det.decision_function(new[:50]), plain.decision_function(new[:50]))
    loaded = load_detector(det.save(tmp_path / "d"))
    assert loaded.threshold_ == det.threshold_
    np.testing.assert_array_equal(loaded.predict(new[:200]), det.predict(new[:200]))
    # the held-out scores go with it: predict_proba maps against them, before and after loading
    np.testing.assert_array_equal(loaded.calibration_scores_, det.calibration_scores_)
    for proba in ("linear", "conformal"):
        det.set_params(proba=proba), loaded.set_params(proba=proba)
        np.testing.assert_array_equal(loaded.predict_proba(new[:200]), det.predict_proba(new[:200]))
    held = det.calibration_scores_
    linear = det.set_params(proba="linear").predict_proba(new[:200])[:, 1]
    s = det.decision_function(new[:200])
    np.testing.assert_allclose(linear, np.clip((s - held.min()) / (held.max() - held.min()), 0, 1))
    assert "calibration_scores_" not in vars(load_detector(plain.save(tmp_path / "p")))  # an explicit threshold holds nothing out


def test_novelty_detector_conformal_proba_agrees_with_predict(normal_rows):
    train, new = normal_rows
    det = AutoencoderDetector(novelty=True, contamination=0.05, n_steps=200, seed=0, proba="conformal").fit(train)
    p_anomaly = det.predict_proba(new)[:, 1]
    np.testing.assert_array_equal(det.predict(new), (p_anomaly >= 0.95 - 1e-12).astype(np.int64))


def test_no_twin_is_trained_with_an_explicit_threshold_or_for_outlier_detection(normal_rows, monkeypatch):
    train, _ = normal_rows
    calls = []
    original = VAEDetector._estimator

    def counting(self, *shape):
        calls.append(shape)
        return original(self, *shape)

    monkeypatch.setattr(VAEDetector, "_estimator", counting)
    for params in ({"novelty": True, "threshold": 2.5}, {"novelty": False}):
        calls.clear()
        det = VAEDetector(n_steps=5, seed=0, **params).fit(train)
        assert calls == [train.shape] and not hasattr(det, "calibration_scores_")
    calls.clear()
    VAEDetector(n_steps=5, seed=0, novelty=True, contamination=0.05).fit(train)
    assert calls == [train.shape, (240, 6)]  # the detector, then its twin on the other four fifths


def test_too_few_held_out_rows_for_the_contamination_asked_is_said(normal_rows):
    train, _ = normal_rows
    # 60 held-out rows: contamination 0.01 would need 99, so the threshold is the largest score, which
    # about 1/61 of new normal rows exceed; 0.05 needs 19 and says nothing
    with pytest.warns(UserWarning, match=r"60 held-out rows cannot set a threshold that flags only contamination=0.01 .* "
                                         r"about 1/61 = 1.6% of them exceed\. Fit on 495 rows or more"):
        det = VAEDetector(novelty=True, contamination=0.01, n_steps=5, seed=0).fit(train)
    assert det.threshold_ == det.calibration_scores_.max()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        VAEDetector(novelty=True, contamination=0.05, n_steps=5, seed=0).fit(train)


def test_too_few_rows_to_hold_out_fall_back_to_the_training_quantile_with_a_warning(normal_rows):
    train, _ = normal_rows
    with pytest.warns(UserWarning, match="too few to hold 10 out"):
        det = AutoencoderDetector(novelty=True, contamination=0.1, n_steps=5, seed=0).fit(train[:49])
    assert not hasattr(det, "calibration_scores_")
    assert det.threshold_ == np.quantile(det.decision_scores_, 0.9)


def test_on_a_large_table_the_twin_sets_its_scales_from_a_sample(normal_rows, monkeypatch):
    import vaekit.anomaly.detectors as detectors
    from vaekit.anomaly.scoring import ScoringEngine

    train, _ = normal_rows
    monkeypatch.setattr(detectors, "_TWIN_SCALE_ROWS", 100)  # "large": the twin trains on 240 rows
    scored = []
    original = ScoringEngine._terms

    def spy(self, Xs, names=None):
        scored.append(len(Xs))
        return original(self, Xs, names)

    monkeypatch.setattr(ScoringEngine, "_terms", spy)
    det = VAEDetector(novelty=True, contamination=0.05, n_steps=5, seed=0).fit(train)
    # the detector's own scales from all 300 rows, the twin's from 100 of its 240, then the 60 held out
    assert scored == [300, 100, 60]
    assert len(det.calibration_scores_) == 60


def test_a_diverged_twin_is_an_error_not_a_threshold_that_flags_nothing(normal_rows, monkeypatch):
    from vaekit.anomaly.scoring import ScoringEngine
    from vaekit.errors import DataError

    train, _ = normal_rows
    original = ScoringEngine._terms

    def diverged_on_held_out(self, Xs, names=None):
        out = original(self, Xs, names)
        return {k: np.full_like(v, np.nan) for k, v in out.items()} if len(Xs) == 60 else out

    monkeypatch.setattr(ScoringEngine, "_terms", diverged_on_held_out)
    with pytest.raises(DataError, match=r"training diverged: the second network, which sets the threshold, scores 60 of 60 held-out rows NaN/Inf"):
        VAEDetector(novelty=True, contamination=0.05, n_steps=5, seed=0).fit(train)


def test_a_loaded_detector_is_rethresholded_for_another_contamination_without_training(normal_rows, tmp_path):
    train, new = normal_rows
    loaded = load_detector(VAEDetector(novelty=True, contamination=0.05, n_steps=50, seed=0).fit(train).save(tmp_path / "d"))
    scores = loaded.decision_function(new[:200])
    assert loaded.set_threshold(contamination=0.2) is loaded
    assert loaded.contamination == 0.2 and loaded.threshold_ == conformal_threshold(loaded.calibration_scores_, 0.2)
    np.testing.assert_array_equal(loaded.decision_function(new[:200]), scores)  # the model is untouched
    np.testing.assert_array_equal(loaded.predict(new[:200]), (scores > loaded.threshold_).astype(np.int64))
    np.testing.assert_array_equal(loaded.labels_, (loaded.decision_scores_ > loaded.threshold_).astype(np.int64))
    assert load_detector(loaded.save(tmp_path / "d2")).threshold_ == loaded.threshold_  # a save keeps the new choice
    loaded.set_threshold(threshold=float(np.median(scores)))
    assert loaded.threshold_ == float(np.median(scores)) and loaded.predict(new[:200]).sum() == np.sum(scores > np.median(scores))
    outlier = AutoencoderDetector(contamination=0.1, n_steps=50, seed=0).fit(train)  # no held-out rows: the training quantile
    assert outlier.set_threshold(contamination=0.3).threshold_ == pytest.approx(np.quantile(outlier.decision_scores_, 0.7), rel=1e-6)


def test_set_threshold_refuses_a_bad_request_and_leaves_the_detector_as_it_was(normal_rows):
    from vaekit.errors import ConfigError

    train, _ = normal_rows
    det = VAEDetector(contamination=0.05, n_steps=50, seed=0)
    with pytest.raises(Exception, match="not fitted"):
        det.set_threshold(contamination=0.1)
    det.fit(train)
    before = det.threshold_
    for bad in ({}, {"contamination": 0.1, "threshold": 1.0}):
        with pytest.raises(ConfigError, match="one of contamination"):
            det.set_threshold(**bad)
    with pytest.raises(ConfigError, match=r"contamination .* must be in \(0, 0.5\]"):
        det.set_threshold(contamination=0.7)
    for bad in (float("nan"), "abc"):  # a NaN threshold would flag nothing; a string is not a score
        with pytest.raises(ConfigError, match="threshold must be a finite number"):
            det.set_threshold(threshold=bad)
    assert det.contamination == 0.05 and det.threshold is None and det.threshold_ == before
