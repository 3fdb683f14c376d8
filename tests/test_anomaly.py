"""Anomaly detectors: the scikit-learn contract, score signs and determinism, preprocessing,
save/load safety, and the streaming CLI against in-memory scoring."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import average_precision_score, make_scorer, roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from vaekit.anomaly import AutoencoderDetector, VAEDetector, detection_metrics, load_detector
from vaekit.cli import main
from vaekit.errors import ConfigError, DataError, ModelFileError

TINY = dict(n_steps=2, hidden=(4,), latent_dim=2)
# Scores saved by the float32-scoring 0.1.0 code, reproduced by the float64 scoring on another CPU: the tolerance
# docs/anomaly.md promises. On one CPU a row's score is bit-identical (test_same_rows_same_scores_whatever_the_batch).
CROSS_CPU_RTOL, CROSS_CPU_ATOL = 1e-5, 1e-6
SMALL = dict(n_steps=100, hidden=(16,), latent_dim=2, batch_size=64)
VAE_METHODS = ("combined", "reconstruction", "elbo", "likelihood", "latent", "knn")

# scikit-learn's outlier checks assume its own convention (predict -> -1/+1, decision_function
# positive for inliers); these detectors follow PyOD (predict -> 1 = anomaly, higher = more anomalous).
CONVENTION = "PyOD sign convention: predict gives 1 = anomaly / 0 = normal, not sklearn's -1/+1"
EXPECTED_FAILS = {"check_outliers_train": CONVENTION, "check_outliers_fit_predict": CONVENTION}


@parametrize_with_checks(
    [VAEDetector(**TINY, n_score_samples=4), VAEDetector(method="latent", **TINY), AutoencoderDetector(**TINY)],
    expected_failed_checks=lambda est: EXPECTED_FAILS,
)
def test_sklearn_checks(estimator, check):
    check(estimator)


def blob(n=400, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


@pytest.fixture(scope="module")
def fitted():
    """One small fitted VAEDetector per score method, on a 2-d Gaussian blob scaled away from unit variance."""
    X = blob() * np.array([3.0, 0.5, 1.0, 10.0], dtype=np.float32) + 5
    return X, {m: VAEDetector(method=m, contamination=0.05, **SMALL).fit(X) for m in VAE_METHODS}


# -- the contract --------------------------------------------------------------------------------


def test_clone_and_params_are_unchanged():
    det = VAEDetector(method="likelihood", hidden=(8, 4), categorical=["a"], contamination=0.02)
    params = det.get_params()
    assert params["hidden"] == (8, 4) and params["categorical"] == ["a"] and params["method"] == "likelihood"
    twin = clone(det)
    assert twin.get_params() == params and twin is not det
    assert det.set_params(contamination=0.1) is det and det.contamination == 0.1


def test_fit_returns_self_and_fitted_attributes(fitted):
    X, dets = fitted
    det = dets["elbo"]
    assert det.decision_scores_.shape == (len(X),)
    assert np.array_equal(det.labels_, (det.decision_scores_ > det.threshold_).astype(int))
    assert np.array_equal(det.predict(X), det.labels_)
    with pytest.raises(Exception, match="not fitted"):
        VAEDetector().decision_function(X)


def test_pipeline_and_grid_search():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(200, 3)), rng.normal(6, 1, size=(10, 3))]).astype(np.float32)
    y = np.r_[np.zeros(200), np.ones(10)].astype(int)
    # The detector standardizes on its own; a Pipeline still composes (here with an identity step).
    from sklearn.preprocessing import FunctionTransformer

    pipe = Pipeline([("id", FunctionTransformer()), ("det", AutoencoderDetector(**SMALL))]).fit(X)
    assert pipe.decision_function(X).shape == (210,)
    scorer = make_scorer(roc_auc_score, response_method="decision_function")
    grid = GridSearchCV(AutoencoderDetector(**SMALL), {"method": ["reconstruction", "latent"]}, scoring=scorer,
                        cv=StratifiedKFold(2, shuffle=True, random_state=0))
    grid.fit(X, y)  # y only for the scorer: the detector ignores it
    assert grid.best_params_["method"] in ("reconstruction", "latent")
    assert grid.best_score_ > 0.8


def test_elbo_needs_a_vae():
    with pytest.raises(ConfigError, match="needs a VAE"):
        AutoencoderDetector(method="elbo").fit(blob())
    with pytest.raises(ConfigError, match="unknown score method"):
        VAEDetector(method="distance").fit(blob())
    with pytest.raises(ConfigError, match="contamination"):
        VAEDetector(contamination=0.7).fit(blob())


# -- signs, determinism, thresholds ----------------------------------------------------------------


@pytest.mark.parametrize("method", VAE_METHODS)
def test_planted_outlier_scores_highest(fitted, method):
    X, dets = fitted
    det = dets[method]
    outlier = X.mean(0) + 12 * X.std(0)  # far outside the blob
    Q = np.vstack([X[:50], outlier[None]])
    s = det.decision_function(Q)
    assert s[-1] > s[:-1].max()
    assert np.array_equal(det.score_samples(Q), -s)
    assert det.predict(Q)[-1] == 1
    proba = det.predict_proba(Q)
    assert proba.shape == (51, 2) and np.allclose(proba.sum(1), 1) and proba[-1, 1] == proba[:, 1].max()


@pytest.mark.parametrize("method", VAE_METHODS)
def test_same_rows_same_scores_whatever_the_batch(fitted, method):
    X, dets = fitted
    det = dets[method]
    full = det.decision_function(X)
    assert np.array_equal(full, det.decision_function(X))
    # Bit-identical, not close: chunks of other sizes, single rows, another order, one thread.
    parts = np.concatenate([det.decision_function(X[i : i + 37]) for i in range(0, len(X), 37)])
    np.testing.assert_array_equal(parts, full)
    np.testing.assert_array_equal([det.decision_function(X[i : i + 1])[0] for i in range(0, len(X), 50)], full[::50])
    order = np.random.default_rng(1).permutation(len(X))
    np.testing.assert_array_equal(det.decision_function(X[order]), full[order])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        np.testing.assert_array_equal(det.decision_function(X[:7]), full[:7])
    finally:
        torch.set_num_threads(threads)


def test_refit_with_same_seed_is_reproducible():
    X = blob(200)
    a = VAEDetector(method="likelihood", **SMALL).fit(X).decision_scores_
    b = VAEDetector(method="likelihood", **SMALL).fit(X).decision_scores_
    assert np.array_equal(a, b)


@pytest.mark.parametrize("c", [0.02, 0.1])
def test_contamination_sets_the_share_flagged(fitted, c):
    X, _ = fitted
    det = AutoencoderDetector(contamination=c, **SMALL).fit(X)
    assert abs(det.labels_.mean() - c) <= 1.0 / len(X) + 1e-12
    assert det.threshold_ == pytest.approx(np.quantile(det.decision_scores_, 1 - c))


def test_explicit_threshold_overrides_contamination(fitted):
    X, dets = fitted
    t = float(np.median(dets["reconstruction"].decision_scores_))
    det = AutoencoderDetector(threshold=t, **SMALL).fit(X)
    assert det.threshold_ == t
    assert np.array_equal(det.labels_, (det.decision_scores_ > t).astype(int))


def test_predict_proba_unify_is_the_erf_of_the_standardized_score(fitted):
    from scipy.special import erf

    X, dets = fitted
    det = clone(dets["elbo"]).set_params(proba="unify").fit(X)
    s = det.decision_function(X[:20])
    mu, sd = det.decision_scores_.mean(), det.decision_scores_.std()
    want = np.clip(erf((s - mu) / (sd * math.sqrt(2))), 0, 1)
    np.testing.assert_allclose(det.predict_proba(X[:20])[:, 1], want, rtol=1e-12)


# -- the scores against closed forms --------------------------------------------------------------


def test_reconstruction_score_is_the_squared_error_of_the_posterior_mean(fitted):
    X, dets = fitted
    det = dets["reconstruction"]
    Xs = det.preprocessor_.transform(X)
    np.testing.assert_allclose(det.decision_function(X), ((Xs - det.estimator_.reconstruct(Xs)) ** 2).sum(1), rtol=1e-4)


def test_elbo_and_iw_likelihood_match_torch_distributions(fitted):
    """Recompute both scores for a few rows from torch.distributions objects and the stored noise."""
    X, dets = fitted
    for method in ("elbo", "likelihood"):
        det = dets[method]
        model = det.estimator_.model_
        x = torch.from_numpy(det.preprocessor_.transform(X[:5]))
        with torch.no_grad():
            loc, log_var = model.posterior_params(x, None)
            q = torch.distributions.Independent(torch.distributions.Normal(loc, (0.5 * log_var).exp()), 1)
            z = loc + (0.5 * log_var).exp() * torch.from_numpy(det.eps_)[:, None, :]
            log_px = torch.stack([model.generative(zk).log_prob(x) for zk in z])
            prior = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(2), torch.ones(2)), 1)
            if method == "elbo":
                want = -(log_px.mean(0) - torch.distributions.kl_divergence(q, prior))
            else:
                log_w = log_px + prior.log_prob(z) - q.log_prob(z)
                want = -(torch.logsumexp(log_w, 0) - math.log(len(z)))
        np.testing.assert_allclose(det.decision_function(X[:5]), want.numpy(), rtol=1e-4)
    # The importance-weighted bound is tighter than the ELBO (Burda et al. 2016, thm. 1): on average
    # over rows, the IW negative log-likelihood lies below the negative ELBO of the same model.
    same_model = clone(dets["likelihood"]).set_params(method="elbo").fit(X)
    assert dets["likelihood"].decision_function(X).mean() < same_model.decision_function(X).mean()


def test_latent_score_is_the_distance_to_the_nearest_centre(fitted):
    X, dets = fitted
    det = dets["latent"]
    Z = det.estimator_.encode(det.preprocessor_.transform(X[:10]))
    d = np.sqrt(((Z[:, None, :] - det.cluster_centers_[None]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(det.decision_function(X[:10]), d, rtol=1e-4, atol=1e-5)


def test_standard_noise_has_the_family_quantiles():
    from vaekit.anomaly import _standard_draws

    eps = _standard_draws("laplace", 5.0, 4000, 3, seed=0)
    # Laplace(0, 1): variance 2, median absolute value log 2.
    assert abs(eps.var() - 2.0) < 0.15 and abs(np.median(np.abs(eps)) - math.log(2)) < 0.05


# -- preprocessing ----------------------------------------------------------------------------------


def frame(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"amount": rng.normal(50, 10, n), "hour": rng.normal(12, 3, n),
                         "merchant": rng.choice(["shop", "cafe", "fuel"], n)})


def test_categorical_one_hot_with_unseen_categories_as_zero():
    df = frame()
    det = AutoencoderDetector(categorical=["merchant"], **SMALL).fit(df)
    assert det.categories_ == {"merchant": ["cafe", "fuel", "shop"]}
    F = det.preprocessor_.transform(pd.DataFrame({"hour": [1.0, 2.0], "merchant": ["fuel", "casino"], "amount": [3.0, 4.0]}))
    # Columns are matched by name (order differs above), then one-hot blocks follow the numbers.
    raw = det.preprocessor_.transform(pd.DataFrame({"hour": [12.0], "merchant": ["shop"], "amount": [50.0]}))
    assert raw.shape == (1, 5) and np.array_equal(raw[0, 2:], [0, 0, 1])
    np.testing.assert_array_equal(F[:, 2:], [[0, 1, 0], [0, 0, 0]])
    assert F[0, 0] < F[1, 0] < raw[0, 0] and F[0, 1] < F[1, 1] < raw[0, 1]  # scaled, order kept
    assert det.estimator_.n_features_in_ == 5
    with pytest.raises(ConfigError, match="not in the data"):
        AutoencoderDetector(categorical=["shop_id"], **TINY).fit(df)


def test_text_column_without_categorical_is_a_clear_error():
    with pytest.raises(DataError, match="non-numeric value 'shop'|non-numeric value 'cafe'|non-numeric value 'fuel'"):
        AutoencoderDetector(**TINY).fit(frame())


def test_nan_is_an_error_unless_impute():
    X = blob(200)
    X[3, 1] = np.nan
    X[7, 2] = np.inf
    with pytest.raises(DataError, match=r"2 NaN or infinite values \(first at row 3, column 1: nan\).*impute=True"):
        VAEDetector(**TINY).fit(X)
    det = VAEDetector(impute=True, **SMALL).fit(X)
    medians = [np.median(X[np.isfinite(X[:, j]), j].astype(np.float64)) for j in range(X.shape[1])]
    impute = det.preprocessor_.impute_values_
    np.testing.assert_allclose(impute, medians, rtol=1e-12)
    s = det.decision_function(X[[3, 7]])
    assert np.isfinite(s).all()
    filled = X[[3, 7]].astype(np.float64)
    filled[0, 1], filled[1, 2] = impute[1], impute[2]
    np.testing.assert_allclose(s, det.decision_function(filled))


def test_wrong_number_of_features_names_both(fitted):
    X, dets = fitted
    with pytest.raises(DataError, match="X has 3 features, but VAEDetector is expecting 4"):
        dets["elbo"].decision_function(X[:, :3])


# -- save / load --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", VAE_METHODS)
def test_save_load_gives_the_same_scores(fitted, method, tmp_path):
    X, dets = fitted
    det = dets[method]
    det.save(tmp_path / "d")
    same = load_detector(tmp_path / "d")
    assert type(same) is VAEDetector and same.get_params()["method"] == method
    assert np.array_equal(same.decision_function(X), det.decision_function(X))
    assert same.threshold_ == det.threshold_ and np.array_equal(same.labels_, det.labels_)
    assert np.array_equal(same.predict_proba(X), det.predict_proba(X))


def test_save_load_keeps_categories_and_imputation(tmp_path):
    df = frame()
    df.loc[5, "amount"] = np.nan
    det = AutoencoderDetector(categorical=["merchant"], impute=True, **SMALL).fit(df)
    det.save(tmp_path / "d")
    same = load_detector(tmp_path / "d")
    assert same.categories_ == det.categories_
    np.testing.assert_array_equal(same.decision_function(df), det.decision_function(df))
    files = sorted(p.name for p in (tmp_path / "d").rglob("*") if p.is_file())
    assert files == ["config.json", "detector.json", "detector.safetensors", "model.safetensors"]


@pytest.fixture
def saved(tmp_path):
    det = VAEDetector(method="latent", **TINY).fit(blob(100))
    return det.save(tmp_path / "d")


def test_pickle_in_place_of_tensors_is_refused(saved):
    import pickle

    (saved / "detector.safetensors").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        load_detector(saved)


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.update(format="something-else"), "not a vaekit detector config"),
    (lambda c: c.update(detector="os.system"), "unknown detector"),
    (lambda c: c.update(format_version=99), "format version"),
    (lambda c: c.pop("threshold"), "damaged or hand-edited"),
    (lambda c: c.update(threshold="nan"), "damaged or hand-edited"),
    (lambda c: c["params"].update(method="evil"), "unknown score method"),
    (lambda c: c["preprocessor"].update(categories={"m": [1, 2]}), "damaged or hand-edited"),
    (lambda c: c["preprocessor"].update(scale=[1.0, -1.0, 1.0, 1.0]), "damaged or hand-edited"),
    (lambda c: c.pop("preprocessor"), "damaged or hand-edited"),
])
def test_garbled_config_is_refused(saved, edit, match):
    cfg = json.loads((saved / "detector.json").read_text())
    edit(cfg)
    (saved / "detector.json").write_text(json.dumps(cfg))
    with pytest.raises((ModelFileError, ConfigError), match=match):
        load_detector(saved)


def test_truncated_json_and_missing_tensor_are_refused(saved, tmp_path):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(saved / "detector.safetensors"))
    tensors["cluster_centers"] = torch.zeros(3, 7)  # wrong latent size
    save_file(tensors, str(saved / "detector.safetensors"))
    with pytest.raises(ModelFileError, match="cluster_centers"):
        load_detector(saved)
    (saved / "detector.json").write_text('{"format": "vaekit-det')
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_detector(saved)
    with pytest.raises(ModelFileError, match="not a vaekit detector folder"):
        load_detector(tmp_path / "nowhere")


# -- metrics and the CLI ------------------------------------------------------------------------------


def test_detection_metrics_against_sklearn():
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.1).astype(int)
    s = rng.normal(size=200) + 2 * y
    m = detection_metrics(y, s)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, s))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, s))
    top = np.argsort(-s)[: y.sum()]
    assert m["precision_at_n"] == pytest.approx(y[top].mean()) and m["n_anomalies"] == y.sum()
    assert detection_metrics(np.zeros(5), np.arange(5))["roc_auc"] is None
    with pytest.raises(DataError, match="0 \\(normal\\) or 1"):
        detection_metrics([0, 2, 1], [1, 2, 3])


@pytest.fixture(scope="module")
def transactions(tmp_path_factory):
    d = tmp_path_factory.mktemp("tx")
    rng = np.random.default_rng(3)
    n = 1200
    df = pd.DataFrame({"tx_id": [f"t{i:05d}" for i in rng.permutation(n)]})
    for j in range(5):
        df[f"f{j}"] = rng.normal(size=n)
    y = np.zeros(n, dtype=int)
    y[rng.choice(n, 24, replace=False)] = 1
    df.loc[y == 1, ["f0", "f3"]] += 7
    df["channel"] = rng.choice(["web", "pos"], n)
    df["is_fraud"] = y
    df.to_csv(d / "tx.csv", index=False)
    df.to_parquet(d / "tx.parquet")
    df.drop(columns=["channel"]).to_csv(d / "num.csv", index=False)
    return d, df


def test_cli_fit_and_streaming_score_match_in_memory(transactions, tmp_path, capsys):
    d, df = transactions
    det_dir = tmp_path / "det"
    assert main(["detect", "fit", str(d / "num.csv"), "--out", str(det_dir), "--label-column", "is_fraud",
                 "--id-column", "tx_id", "--steps", "150", "--contamination", "0.02", "--quiet"]) == 0
    out = tmp_path / "scores.csv"
    assert main(["detect", "score", str(det_dir), str(d / "num.csv"), "--out", str(out), "--label-column", "is_fraud",
                 "--id-column", "tx_id", "--chunk-rows", "100", "--quiet"]) == 0
    got = pd.read_csv(out)
    assert list(got.columns) == ["tx_id", "score", "is_anomaly", "is_fraud"]
    assert list(got["tx_id"]) == list(df["tx_id"])  # input order and ids kept across 12 chunks
    det = load_detector(det_dir)
    want = det.decision_function(df[[f"f{j}" for j in range(5)]])  # float64, as the CLI reads a CSV
    # Parsed in 12 chunks, scored in fixed-shape batches: the CSV's 9 digits exactly.
    np.testing.assert_array_equal(got["score"], [float(f"{v:.9g}") for v in want])
    np.testing.assert_array_equal(got["is_anomaly"], (want > det.threshold_).astype(int))
    # The chunk size itself changes nothing: the same file whole gives the same bytes.
    assert main(["detect", "score", str(det_dir), str(d / "num.csv"), "--out", str(tmp_path / "whole.csv"), "--label-column", "is_fraud",
                 "--id-column", "tx_id", "--chunk-rows", "5000", "--quiet"]) == 0
    assert (tmp_path / "whole.csv").read_bytes() == out.read_bytes()
    metrics = json.loads((tmp_path / "scores.metrics.json").read_text())
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(df["is_fraud"], got["score"]), abs=1e-9)
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(df["is_fraud"], got["score"]), abs=1e-9)
    assert metrics["n_anomalies"] == 24 and metrics["roc_auc"] > 0.95


def test_cli_categorical_parquet_to_csv(transactions, tmp_path):
    d, df = transactions
    det_dir = tmp_path / "det"
    assert main(["detect", "fit", str(d / "tx.parquet"), "--out", str(det_dir), "--label-column", "is_fraud",
                 "--id-column", "tx_id", "--categorical", "channel", "--model", "ae", "--steps", "60", "--quiet"]) == 0
    out = tmp_path / "s.csv"
    assert main(["detect", "score", str(det_dir), str(d / "tx.csv"), "--out", str(out), "--id-column", "tx_id",
                 "--chunk-rows", "500", "--quiet"]) == 0
    det = load_detector(det_dir)
    assert det.categories_ == {"channel": ["pos", "web"]}
    want = det.decision_function(df.drop(columns=["tx_id", "is_fraud"]))
    np.testing.assert_allclose(pd.read_csv(out)["score"], want, rtol=1e-6, atol=1e-6)


def test_cli_npy(tmp_path):
    X = blob(300)
    np.save(tmp_path / "x.npy", X)
    assert main(["detect", "fit", str(tmp_path / "x.npy"), "--out", str(tmp_path / "det"), "--steps", "20", "--quiet"]) == 0
    assert main(["detect", "score", str(tmp_path / "det"), str(tmp_path / "x.npy"), "--out", str(tmp_path / "s.csv"),
                 "--chunk-rows", "64", "--quiet"]) == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "s.csv")["score"], load_detector(tmp_path / "det").decision_function(X), rtol=1e-6)


def test_cli_bad_inputs_exit_2_and_write_nothing(transactions, tmp_path, capsys):
    d, df = transactions
    det_dir = tmp_path / "det"
    assert main(["detect", "fit", str(d / "num.csv"), "--out", str(det_dir), "--id-column", "tx_id", "--steps", "2", "--quiet"]) == 0
    out = tmp_path / "s.csv"
    bad = tmp_path / "bad.csv"
    broken = df.drop(columns=["channel"]).copy()
    broken["f2"] = broken["f2"].astype(object)
    broken.loc[700, "f2"] = "oops"  # in the second chunk: the first chunk was already scored
    broken.to_csv(bad, index=False)
    cases = [
        ["detect", "score", str(det_dir), str(bad), "--out", str(out), "--id-column", "tx_id", "--chunk-rows", "500"],
        ["detect", "score", str(det_dir), str(d / "nope.csv"), "--out", str(out)],
        ["detect", "score", str(tmp_path / "nodet"), str(d / "num.csv"), "--out", str(out)],
        ["detect", "score", str(det_dir), str(d / "num.csv"), "--out", str(out), "--label-column", "nolabel"],
        ["detect", "fit", str(d / "num.csv"), "--out", str(tmp_path / "d2"), "--model", "ae", "--score", "elbo"],
        ["detect", "fit", str(d / "tx.csv"), "--out", str(tmp_path / "d2"), "--contamination", "0.9"],
        ["detect", "fit", str(d / "tx.csv"), "--out", str(tmp_path / "d2"), "--steps", "2", "--id-column", "tx_id"],
    ]
    for argv in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("vaekit: error: ") and "\n" not in err, err
    assert not out.exists() and not (tmp_path / "d2").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "det"]  # no temp files left


def test_cli_help_mentions_every_option(capsys):
    for argv in (["detect", "fit", "--help"], ["detect", "score", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = capsys.readouterr().out
        assert "--label-column" in text and "--id-column" in text


# -- explanations -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, method", [("vae", "combined"), ("vae", "elbo"), ("vae", "reconstruction"), ("ae", "combined")])
def test_explain_splits_the_reconstruction_term_over_features(kind, method):
    df = frame(400)
    df.loc[7, "hour"] = 80.0  # far out in one feature only
    cls = VAEDetector if kind == "vae" else AutoencoderDetector
    det = cls(method=method, categorical=["merchant"], **SMALL).fit(df)
    ex = det.explain(df)
    assert list(ex.columns) == ["amount", "hour", "merchant"] and ex.index.equals(df.index)
    terms = det.score_terms(df)
    np.testing.assert_allclose(ex.sum(axis=1), terms["explained"], rtol=1e-9)
    np.testing.assert_allclose(terms["score"], det.decision_function(df), rtol=1e-12)
    assert ex.loc[7].idxmax() == "hour"
    # The categorical feature's share is the sum over its three one-hot columns.
    Xs = det.preprocessor_.transform(df.iloc[:5])
    model = det.estimator_.model_
    with torch.no_grad():
        x = torch.from_numpy(Xs)
        if method == "reconstruction" or kind == "ae":
            per_col = (model.decode(model.encode(x)) - x) ** 2
        else:
            loc, log_var = model.posterior_params(x, None)
            z = loc + (0.5 * log_var).exp() * torch.from_numpy(det.eps_)[:, None, :]
            sigma = model.likelihood.log_sigma.exp()
            per_col = -torch.distributions.Normal(model.decoder(z, None), sigma).log_prob(x).mean(0)
    np.testing.assert_allclose(ex["merchant"].iloc[:5], per_col[:, 2:].sum(1).numpy(), rtol=1e-4, atol=1e-6)
    if kind == "vae" and method != "reconstruction":  # the ELBO's other part is the KL term
        kl = terms["elbo"] - terms["explained"]
        assert (kl > 0).all()


def test_cli_explain_adds_the_top_features(transactions, tmp_path):
    d, df = transactions
    det_dir = tmp_path / "det"
    assert main(["detect", "fit", str(d / "num.csv"), "--out", str(det_dir), "--id-column", "tx_id",
                 "--label-column", "is_fraud", "--steps", "60", "--contamination", "0.02", "--quiet"]) == 0
    out = tmp_path / "s.csv"
    assert main(["detect", "score", str(det_dir), str(d / "num.csv"), "--out", str(out), "--id-column", "tx_id",
                 "--explain", "3", "--chunk-rows", "500", "--quiet"]) == 0
    got = pd.read_csv(out)
    # The contributions' unit is in their names: nats for a VAE's ELBO terms, not the score's robust units.
    assert list(got.columns) == ["tx_id", "score", "is_anomaly", "feature_1", "contribution_1_nats", "feature_2",
                                 "contribution_2_nats", "feature_3", "contribution_3_nats"]
    ex = load_detector(det_dir).explain(df[[f"f{j}" for j in range(5)]])
    top = np.sort(ex.to_numpy(), axis=1)[:, ::-1][:, :3]
    np.testing.assert_allclose(got[["contribution_1_nats", "contribution_2_nats", "contribution_3_nats"]], top, rtol=1e-6, atol=1e-6)
    assert (got["feature_1"] == ex.idxmax(axis=1)).all()
    # The planted anomalies moved f0 and f3: those lead their explanations.
    fraud = df["is_fraud"].to_numpy() == 1
    assert set(got.loc[fraud, "feature_1"]) <= {"f0", "f3"}


# -- what tripped new users ------------------------------------------------------------------------------


def test_method_names_are_the_same_in_the_api_and_the_cli(capsys):
    from vaekit import anomaly
    from vaekit.cli import detect as cli_detect

    assert cli_detect.METHODS == anomaly.METHODS
    assert "score=" not in anomaly.__doc__ and "VAEDetector(contamination=0.01)" in anomaly.__doc__
    with pytest.raises(SystemExit):
        main(["detect", "fit", "--help"])
    assert "--method" in capsys.readouterr().out


def test_random_state_is_the_seed():
    X = blob(150)
    a = VAEDetector(random_state=3, **TINY).fit(X).decision_scores_
    b = VAEDetector(seed=3, **TINY).fit(X).decision_scores_
    c = VAEDetector(**TINY).fit(X).decision_scores_
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(ConfigError, match="seed=2 and random_state=3 disagree"):
        VAEDetector(seed=2, random_state=3, **TINY).fit(X)
    assert clone(VAEDetector(random_state=5)).get_params()["random_state"] == 5


def test_scaling_is_computed_in_float64():
    rng = np.random.default_rng(0)
    X = np.column_stack([1e6 + rng.normal(0, 1e-3, 500), rng.normal(size=500)])
    for scaling in ("standard", "robust"):
        Z = VAEDetector(scaling=scaling, **TINY).fit(X).preprocessor_.transform(X)
        # In float32, 1e6 + 1e-3 noise is one or two distinct values; scaled in float64 it keeps its spread.
        assert len(np.unique(Z[:, 0])) > 400 and 0.5 < Z[:, 0].std() < 1.5, scaling


def test_values_beyond_float32_are_named_as_such():
    X = blob(50).astype(np.float64)
    X[4, 2] = 1e39
    with pytest.raises(DataError, match=r"1 values too large for float32 .*first 1e\+39 at row 4, column 2"):
        VAEDetector(**TINY).fit(X)
    X[4, 2] = np.inf
    with pytest.raises(DataError, match="NaN or infinite"):
        VAEDetector(**TINY).fit(X)


def test_one_row_or_fewer_rows_than_clusters_is_a_clear_error():
    with pytest.raises(DataError, match="cannot fit a detector on 1 sample"):
        VAEDetector(**TINY).fit(blob(1))
    with pytest.raises(DataError, match="5 rows are fewer than n_clusters=8"):
        VAEDetector(method="latent", **TINY).fit(blob(5))


def test_robust_scaling_bounds_a_rare_value_in_an_almost_constant_column():
    from vaekit.anomaly.table import KNEE, compress_tails, robust_scale

    rng = np.random.default_rng(0)
    X = np.column_stack([np.r_[np.zeros(2499), 1.0], rng.standard_t(2, 2500)])
    med, scale = robust_scale(X)
    assert med[0] == 0 and scale[0] == pytest.approx(X[:, 0].std())  # never smaller than the std
    z = X[-1, 0] / scale[0]
    assert z == pytest.approx(50, rel=1e-3)  # the "50 standard deviations" of plain standardizing
    assert compress_tails(np.array([z]))[0] == pytest.approx(KNEE + math.log1p(z - KNEE))
    t = np.linspace(-10, 10, 201)
    c = compress_tails(t)
    assert np.all(np.diff(c) > 0) and np.array_equal(c[np.abs(t) <= KNEE], t[np.abs(t) <= KNEE])


def test_step_budget_not_epochs():
    det = VAEDetector()
    small, large = det._estimator(200, 10), det._estimator(619_326, 10)
    steps = lambda est, n: est.epochs * math.ceil(n / est.batch_size)  # noqa: E731
    assert small.batch_size == 128 and steps(small, 200) == 1500
    assert large.batch_size == 1024 and 1000 <= steps(large, 619_326) <= 1500
    assert small.latent_dim == 5 and det._estimator(100, 3).latent_dim == 2 and det._estimator(100, 300).latent_dim == 8


def test_preprocessor_json_round_trip_is_exact():
    from vaekit.anomaly.table import TablePreprocessor

    df = frame(200)
    df.loc[3, "hour"] = np.nan
    pre = TablePreprocessor(categorical=["merchant"], impute=True)
    A = pre.fit_transform(df)
    back = TablePreprocessor.from_json(json.loads(json.dumps(pre.to_json())))
    assert np.array_equal(back.transform(df), A) and back.groups() == pre.groups()
    assert back.groups() == [("amount", [0]), ("hour", [1]), ("merchant", [2, 3, 4])]


@pytest.mark.parametrize("name", ["detector", "detector-ae-latent"])
def test_detector_folders_written_by_0_1_0_load_and_score_the_same(name):
    """Folders written by the 0.1.0 code (tests/fixtures/v1, see scripts/make_v1_fixtures.py; the
    autoencoder one was written by e2e598c's save) give their 0.1.0 scores and can be explained."""
    from pathlib import Path

    v1 = Path(__file__).parent / "fixtures" / "v1"
    det = load_detector(v1 / name)
    if name == "detector":
        rows = pd.read_csv(v1 / "detector-rows.csv")
        want = json.loads((v1 / "expected.json").read_text())["numbers"]["detector"]["decision_function"]
        assert det.method == "elbo" and det.scaling == "standard" and det.preprocessor_.categorical == ["colour"]
    else:
        rows = np.loadtxt(v1 / f"{name}-rows.csv", delimiter=",")
        want = np.loadtxt(v1 / f"{name}-scores.csv")
        assert det.method == "latent" and det.cluster_centers_.shape[0] == 3
    # The expected scores were computed on another CPU, whose kernels sum in another order: the
    # cross-CPU tolerance docs/anomaly.md states (same CPU: bit-identical, tested elsewhere).
    np.testing.assert_allclose(det.decision_function(rows), want, rtol=CROSS_CPU_RTOL, atol=CROSS_CPU_ATOL)
    assert det.explain(rows).shape == (len(rows), det.n_features_in_)


def test_cli_fit_on_normal_rows_and_contamination_warning(transactions, tmp_path, capsys):
    d, df = transactions
    common = ["--id-column", "tx_id", "--label-column", "is_fraud", "--steps", "20"]
    assert main(["detect", "fit", str(d / "num.csv"), "--out", str(tmp_path / "a"), *common, "--fit-on", "normal"]) == 0
    n_normal = int((df["is_fraud"] == 0).sum())
    assert len(load_detector(tmp_path / "a").decision_scores_) == n_normal
    said = "".join(capsys.readouterr())
    # the threshold is set on a held-out fifth of the normal rows, and fit says so and what share it flags
    assert "as a novelty detector" in said
    assert re.search(rf"the threshold is set on {n_normal // 5} normal rows held out of a second network's training \(\d+ above it\); "
                     r"it flags (about --contamination 0.01 or fewer|about 1/\d+ = [\d.]+% of new normal rows)", said)
    assert main(["detect", "fit", str(d / "num.csv"), "--out", str(tmp_path / "b"), *common, "--contamination", "0.2", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning: --contamination 0.2 is far from the labelled share of anomalies 0.02" in err
    assert main(["detect", "fit", str(d / "num.csv"), "--out", str(tmp_path / "c"), *common, "--contamination", "0.03", "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["detect", "fit", str(d / "num.csv"), "--out", str(tmp_path / "e"), "--id-column", "tx_id", "--fit-on", "normal"]) == 2
    assert "--fit-on normal trains on the rows labelled 0, so it needs --label-column" in capsys.readouterr().err


def test_cli_label_column_that_was_a_feature_is_named(transactions, tmp_path, capsys):
    d, df = transactions
    assert main(["detect", "fit", str(d / "num.csv"), "--out", str(tmp_path / "det"), "--id-column", "tx_id", "--steps", "2", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["detect", "score", str(tmp_path / "det"), str(d / "num.csv"), "--out", str(tmp_path / "s.csv"),
                 "--id-column", "tx_id", "--label-column", "is_fraud"]) == 2
    err = capsys.readouterr().err
    assert "column 'is_fraud' was a feature when this detector was fitted, so it cannot be the --label-column now" in err
    assert not (tmp_path / "s.csv").exists()
