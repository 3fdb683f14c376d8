"""The combined score's terms: the input-space neighbour term against a brute-force computation,
the sum of robust z-scores, both detectors' defaults, and folders saved with another term list."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vaekit
from vaekit.anomaly import AutoencoderDetector, VAEDetector, load_detector
from vaekit.anomaly.options import COMBINED_TERMS, REFERENCE_TRIM
from vaekit.errors import ModelFileError

V2 = Path(__file__).parent / "fixtures" / "v2" / "detector"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5)) @ rng.standard_normal((5, 5))
    X[:6] += 8.0  # a few far rows, so the terms are not all alike
    return X


@pytest.fixture(scope="module", params=[VAEDetector, AutoencoderDetector], ids=lambda c: c.__name__)
def fitted(request, data):
    return request.param(n_steps=60, seed=1).fit(data)


def test_each_detector_and_mode_adds_its_chosen_terms(fitted, data):
    assert fitted.method == "combined" and not fitted.novelty
    density = fitted.family.has_density
    assert fitted.combined_terms_ == (("likelihood", "knn_input") if density else ("knn", "knn_input")) == COMBINED_TERMS[density, False]
    novel = type(fitted)(n_steps=60, seed=1, novelty=True).fit(data)
    assert novel.combined_terms_ == ("elbo" if density else "reconstruction", "knn_input") == COMBINED_TERMS[density, True]


def test_knn_input_is_the_mean_distance_to_the_nearest_saved_rows(fitted, data):
    rows = fitted._transform(data[:40])
    ref = fitted.reference_rows_.astype(np.float64)
    d = np.sqrt(((rows[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
    assert fitted._n_neighbors == 10
    want = np.sort(d, axis=1)[:, :10].mean(1)
    got = fitted.score_terms(data[:40])["knn_input"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_outlier_detection_draws_its_reference_from_the_least_anomalous_rows(fitted, data):
    Xf = fitted._transform(data)
    ref = fitted.reference_rows_
    # every reference row is a training row, and as many rows as are below the first pass's
    # 1 - trim quantile (all of them here: fewer than 1024)
    trim = REFERENCE_TRIM[fitted.family.has_density]
    assert len(ref) == int((np.arange(len(Xf)) <= np.quantile(np.arange(len(Xf)), 1 - trim)).sum())
    match = (np.abs(Xf[:, None, :].astype(np.float32) - ref[None]) == 0).all(-1)
    assert (match.sum(0) == 1).all()
    # the six far rows score highest in the first pass, so none of them is a neighbour of anything
    assert not match[:6].any()
    assert np.array_equal(fitted.reference_codes_, fitted.estimator_.encode(Xf[match.any(1)]).astype(np.float32))


def test_on_a_large_table_the_first_pass_reads_a_sample_and_still_leaves_far_rows_out():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((20_000, 3))
    X[:400] += 12.0  # far rows, the top of any first pass: a random 1024 of 20 000 would hold ~20 of them
    det = VAEDetector(n_steps=20, seed=0).fit(X)
    Xf = det._transform(X).astype(np.float32)
    assert len(det.reference_rows_) == 1024
    far = Xf[:400]
    assert not (np.abs(det.reference_rows_[:, None, :] - far[None]) == 0).all(-1).any()


def test_novelty_keeps_every_training_row_and_five_neighbours(data):
    det = VAEDetector(n_steps=30, seed=1, novelty=True).fit(data)
    assert det._n_neighbors == 5 and np.array_equal(det.reference_rows_, det._transform(data).astype(np.float32))
    assert VAEDetector(n_steps=30, seed=1, novelty=True, n_neighbors=7).fit(data)._n_neighbors == 7


def test_a_saved_novelty_detector_keeps_its_mode(data, tmp_path):
    det = AutoencoderDetector(n_steps=30, seed=1, novelty=True).fit(data)
    again = load_detector(det.save(tmp_path / "det"))
    assert again.novelty and again.n_neighbors == "auto" and again._n_neighbors == 5
    assert again.combined_terms_ == ("reconstruction", "knn_input") and len(again.reference_rows_) == len(data)
    assert np.array_equal(again.decision_function(data), det.decision_function(data))
    assert json.loads((tmp_path / "det" / "detector.json").read_text())["format_version"] == 4


def test_a_group_of_anomalies_in_the_training_rows_does_not_hide_itself():
    # 20 anomalies in one tight group among 400 normal rows: with them in the reference set each is
    # near 10 of its own; the trimmed reference leaves them out, so their neighbour term is large.
    # The VAE's first pass finds them by their ELBO (an autoencoder reconstructs such a group well and
    # its first pass does not: docs/anomaly.md says so).
    cls = VAEDetector
    rng = np.random.default_rng(3)
    X = np.vstack([rng.standard_normal((400, 4)), 4.0 + 0.05 * rng.standard_normal((20, 4))])
    y = np.r_[np.zeros(400), np.ones(20)]
    outlier = cls(n_steps=150, seed=0).fit(X)
    untrimmed = cls(n_steps=150, seed=0, novelty=True, n_neighbors=10).fit(X)  # the reference is every row
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, outlier.score_terms(X)["knn_input"]) > 0.99 > roc_auc_score(y, untrimmed.score_terms(X)["knn_input"])
    assert roc_auc_score(y, outlier.decision_scores_) > 0.99


def test_the_score_is_the_sum_of_the_terms_robust_z_scores(fitted, data):
    terms = fitted.score_terms(data)
    z = sum((terms[t].to_numpy() - loc) / sc for t, loc, sc in zip(fitted.combined_terms_, fitted.term_location_, fitted.term_scale_))
    np.testing.assert_allclose(terms["score"].to_numpy(), z, rtol=1e-6, atol=1e-6)
    # the locations and scales are each term's training median and IQR / 1.349
    train = fitted.score_terms(data)
    for t, loc, sc in zip(fitted.combined_terms_, fitted.term_location_, fitted.term_scale_):
        q75, q25 = np.percentile(train[t], [75, 25])
        assert loc == pytest.approx(np.median(train[t])) and sc == pytest.approx((q75 - q25) / 1.349)


def test_a_saved_detector_scores_the_same_with_its_reference_rows(fitted, data, tmp_path):
    fitted.save(tmp_path / "det")
    again = load_detector(tmp_path / "det")
    assert again.combined_terms_ == fitted.combined_terms_
    assert np.array_equal(again.reference_rows_, fitted.reference_rows_)
    assert np.array_equal(again.decision_function(data), fitted.decision_function(data))


def test_a_folder_saved_with_two_terms_keeps_them():
    det = vaekit.load_detector(V2)
    assert det._combined_terms == ("elbo", "knn") and getattr(det, "reference_rows_", None) is None
    rows = pd.read_csv(V2.parent / "detector-rows.csv")
    assert "knn_input" not in det.score_terms(rows)


@pytest.mark.parametrize("names", [["elbo", "isolation"], ["elbo", "latent"], ["elbo", "combined"], ["elbo", "elbo"], []])
def test_a_folder_naming_unknown_or_repeated_terms_is_refused(names, tmp_path):
    shutil.copytree(V2, tmp_path / "det")
    cfg = json.loads((tmp_path / "det" / "detector.json").read_text())
    cfg["combined_terms"] = {"names": names, "location": [0.0] * len(names), "scale": [1.0] * len(names)}
    (tmp_path / "det" / "detector.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="combined_terms"):
        load_detector(tmp_path / "det")


def test_an_autoencoder_folder_may_not_name_a_density_term(tmp_path, data):
    AutoencoderDetector(n_steps=20).fit(data).save(tmp_path / "ae")
    cfg = json.loads((tmp_path / "ae" / "detector.json").read_text())
    cfg["combined_terms"]["names"][0] = "elbo"
    (tmp_path / "ae" / "detector.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="each must be one of"):
        load_detector(tmp_path / "ae")


def test_more_neighbours_than_kept_rows_is_said_not_silently_clamped(data):
    small = data[:40]  # the outlier reference keeps the 60 % a first pass finds least anomalous: 24 rows
    with pytest.warns(UserWarning, match=r"n_neighbors=30 is more than the 24 training rows kept as neighbours"):
        det = VAEDetector(n_steps=5, seed=1, n_neighbors=30).fit(small)
    # and it does what it says: every kept row is a neighbour, the same as asking for all 24
    same = VAEDetector(n_steps=5, seed=1, n_neighbors=24).fit(small)
    np.testing.assert_array_equal(det.decision_function(small), same.decision_function(small))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 'auto' (10) on a table this small says nothing
        VAEDetector(n_steps=5, seed=1).fit(data[:12])
