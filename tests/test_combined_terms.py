"""The combined score's terms: the input-space neighbour term against a brute-force computation,
the sum of robust z-scores, both detectors' defaults, and folders saved with another term list."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vaekit
from vaekit.anomaly import AutoencoderDetector, VAEDetector, load_detector
from vaekit.anomaly.options import COMBINED_TERMS
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


def test_both_detectors_default_to_the_three_term_combined_score(fitted):
    assert fitted.method == "combined"
    first = "elbo" if fitted.family.has_density else "reconstruction"
    assert fitted.combined_terms_ == (first, "knn", "knn_input") == COMBINED_TERMS[fitted.family.has_density]


def test_knn_input_is_the_mean_distance_to_the_nearest_saved_rows(fitted, data):
    rows = fitted._transform(data[:40])
    ref = fitted.reference_rows_.astype(np.float64)
    assert ref.shape == (min(1024, len(data)), rows.shape[1])
    d = np.sqrt(((rows[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
    want = np.sort(d, axis=1)[:, : fitted.n_neighbors].mean(1)
    got = fitted.score_terms(data[:40])["knn_input"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


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
