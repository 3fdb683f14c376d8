"""The detector fails closed and writes spreadsheet-safe CSVs (issue 22, items 5, 6 and 10).

A NaN score is never "normal"; extreme finite values (3.4e38, 1e20, -1e30, 1e39) are clipped in
the scaled space and scored high with every scaling; --impute works for numeric-only tables; text
cells that a spreadsheet would run as formulas are neutralized, and ids holding line breaks stay
one row each.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from vaekit.anomaly import NONFINITE_SCORE, AutoencoderDetector, NonFiniteScoreWarning, VAEDetector, load_detector, scoring
from vaekit.anomaly.detectors import _BaseDetector
from vaekit.anomaly.table import CLIP, SCALINGS
from vaekit.cli import main
from vaekit.csvcells import safe_frame, safe_text
from vaekit.errors import DataError, ModelFileError

SMALL = dict(n_steps=100, hidden=(16,), latent_dim=2, batch_size=64)
EXTREMES = (3.4e38, 1e20, -1e30)


def normal_rows(n=300, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def with_extremes(X, seed=1):
    """X with 9 rows that hold one extreme value each (3.4e38, 1e20, -1e30 in turn), at random places."""
    rng = np.random.default_rng(seed)
    out, where = X.copy(), rng.choice(len(X), 9, replace=False)
    for k, i in enumerate(where):
        out[i, k % X.shape[1]] = EXTREMES[k % 3]
    return out, where


# -- extreme finite inputs ----------------------------------------------------------------------


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("cls", [VAEDetector, AutoencoderDetector])
def test_extreme_rows_are_scored_finite_and_flagged_with_every_scaling(cls, scaling):
    X = normal_rows()
    det = cls(scaling=scaling, contamination=0.02, **SMALL).fit(X)
    Xe, where = with_extremes(normal_rows(seed=5))
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFiniteScoreWarning)  # finite by the clip, not by the NaN fallback
        s = det.decision_function(Xe)
    assert np.isfinite(s).all() and (s < NONFINITE_SCORE).all()
    assert (s[where] > det.threshold_).all(), s[where]
    assert det.predict(Xe)[where].all()
    assert det.predict(np.delete(Xe, where, 0)).mean() < 0.1  # the normal rows around them are not swept along


@pytest.mark.parametrize("method", ["elbo", "likelihood", "latent", "knn", "reconstruction"])
def test_extreme_rows_are_flagged_by_every_score_method(method):
    det = VAEDetector(method=method, scaling="none", contamination=0.02, **SMALL).fit(normal_rows())
    Xe, where = with_extremes(normal_rows(seed=5))
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFiniteScoreWarning)
        s = det.decision_function(Xe)
    assert np.isfinite(s).all() and (s[where] > det.threshold_).all(), s[where]


def test_scaled_values_are_clipped_before_the_network():
    det = AutoencoderDetector(scaling="standard", n_steps=2).fit(normal_rows())
    Z = det.preprocessor_.transform(np.array([[1e39, -1e308, 3.4e38, 0.0]]))
    assert Z.dtype == np.float32 and np.array_equal(Z[0, :3], [CLIP, -CLIP, CLIP])


def test_values_beyond_float32_are_refused_in_training_but_scored_when_scoring():
    X = normal_rows()
    bad = X.copy()
    bad[4, 2] = 1e39
    with pytest.raises(DataError, match="too large for float32"):
        AutoencoderDetector(n_steps=2).fit(bad)
    det = AutoencoderDetector(contamination=0.02, **SMALL).fit(X)
    s = det.decision_function(bad)
    assert np.isfinite(s).all() and s[4] > det.threshold_


def test_training_values_beyond_the_clip_warn():
    X = normal_rows()
    X[:, 1] *= 1e6  # raw units far beyond +-CLIP with scaling='none'
    with pytest.warns(UserWarning, match=r"columns \[1\] lie beyond the \+-10000 scaled units"):
        AutoencoderDetector(scaling="none", n_steps=2).fit(X)


# -- NaN scores fail closed ---------------------------------------------------------------------


def _nan_for_big_rows(monkeypatch):
    """Make the network's terms NaN for rows holding a value above 100 (the overflow a row far
    outside the training data could cause), as a model cannot be made to do on demand."""
    terms = _BaseDetector._terms

    def patched(self, Xs, names=None):
        out = terms(self, Xs, names)
        big = np.abs(Xs).max(1) > 100
        return {k: np.where(big, np.nan, v) for k, v in out.items()}

    monkeypatch.setattr(_BaseDetector, "_terms", patched)


def test_a_nan_score_is_flagged_never_normal(monkeypatch):
    det = AutoencoderDetector(scaling="none", contamination=0.02, **SMALL).fit(normal_rows())
    _nan_for_big_rows(monkeypatch)
    X = normal_rows(5, seed=3)
    X[2, 0] = 1e6
    with pytest.warns(NonFiniteScoreWarning, match="1 of 5 rows drove the network beyond float32's range"):
        s = det.decision_function(X)
    assert s[2] == NONFINITE_SCORE and np.isfinite(s).all()
    with pytest.warns(NonFiniteScoreWarning):
        assert det.predict(X)[2] == 1
    with pytest.warns(NonFiniteScoreWarning):
        assert det.score_terms(X)["score"][2] == NONFINITE_SCORE


def test_a_model_that_cannot_score_a_typical_row_is_an_error():
    det = AutoencoderDetector(**SMALL).fit(normal_rows())
    with np.errstate(all="ignore"):
        next(det.estimator_.model_.parameters()).data.fill_(float("nan"))  # damaged in memory; load refuses it on disk
    with pytest.raises(ModelFileError, match="scores 3 of 3 rows, and even a typical row, as NaN/Inf"):
        det.decision_function(normal_rows(3))


@pytest.mark.parametrize("cls", [VAEDetector, AutoencoderDetector], ids=lambda c: c.__name__)
def test_a_network_that_diverged_is_one_line_also_through_the_first_pass(cls, monkeypatch):
    # Every score of the network is NaN, the first pass (which picks the reference rows) included.
    real = scoring.scoring_model

    def broken(model):
        m = real(model)
        with torch.no_grad():
            for p in m.parameters():
                p.fill_(float("nan"))
        return m

    monkeypatch.setattr(scoring, "scoring_model", broken)
    with pytest.raises(DataError, match="training diverged: 300 of 300 training rows score NaN/Inf"):
        cls(n_steps=2).fit(normal_rows())


def test_fit_refuses_nan_training_scores(monkeypatch):
    monkeypatch.setattr(_BaseDetector, "_fit_score_state", lambda self, Xf: np.full(len(Xf), np.nan))
    with pytest.raises(DataError, match="training diverged: 300 of 300 training rows score NaN/Inf"):
        AutoencoderDetector(n_steps=2).fit(normal_rows())


def test_cli_writes_a_nan_score_as_a_flagged_row_with_one_warning(tmp_path, monkeypatch, capsys):
    pd.DataFrame(normal_rows(), columns=list("abcd")).to_csv(tmp_path / "train.csv", index=False)
    assert main(["detect", "fit", str(tmp_path / "train.csv"), "--out", str(tmp_path / "det"), "--model", "ae",
                 "--scaling", "none", "--steps", "30", "--quiet"]) == 0
    new = pd.DataFrame(normal_rows(50, seed=2), columns=list("abcd"))
    new.loc[[7, 40], "b"] = 1e6
    new.to_csv(tmp_path / "new.csv", index=False)
    _nan_for_big_rows(monkeypatch)
    capsys.readouterr()
    assert main(["detect", "score", str(tmp_path / "det"), str(tmp_path / "new.csv"), "--out", str(tmp_path / "s.csv"),
                 "--chunk-rows", "20", "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vaekit: warning: 2 row(s) drove the network"), err
    got = pd.read_csv(tmp_path / "s.csv")
    assert got["score"][[7, 40]].tolist() == [NONFINITE_SCORE] * 2 and got["is_anomaly"][[7, 40]].tolist() == [1, 1]
    assert got["score"].notna().all()


# -- the CLI: 1e39, NaN messages and --impute ---------------------------------------------------


@pytest.fixture(scope="module")
def numeric(tmp_path_factory):
    """A numeric table with ids and a detector fitted on it (standard scaling: the issue's case)."""
    d = tmp_path_factory.mktemp("num")
    df = pd.DataFrame(normal_rows(400, 3), columns=["f0", "f1", "f2"])
    df.insert(0, "id", np.arange(400) - 5)  # numeric ids, some negative
    df.to_csv(d / "train.csv", index=False)
    assert main(["detect", "fit", str(d / "train.csv"), "--out", str(d / "det"), "--id-column", "id", "--scaling", "standard",
                 "--contamination", "0.02", "--steps", "150", "--quiet"]) == 0
    return d, df


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_cli_scores_values_beyond_float32_as_anomalies(numeric, tmp_path, suffix, capsys):
    d, df = numeric
    X = df[["f0", "f1", "f2"]].to_numpy(copy=True)
    X[[3, 250], [1, 2]] = [1e39, -3.4e38]
    if suffix == ".csv":
        pd.DataFrame(X, columns=["f0", "f1", "f2"]).to_csv(tmp_path / "x.csv", index=False)
    else:
        np.save(tmp_path / "x.npy", X)  # float64: 1e39 survives until the detector clips it
        assert main(["detect", "fit", str(tmp_path / "x.npy"), "--out", str(tmp_path / "det"), "--steps", "2", "--quiet"]) == 2
        assert "too large for float32" in capsys.readouterr().err  # in training data it is a data error
    det_dir = d / "det" if suffix == ".csv" else _npy_detector(df, tmp_path)
    assert main(["detect", "score", str(det_dir), str(tmp_path / f"x{suffix}"), "--out", str(tmp_path / "s.csv"),
                 "--chunk-rows", "100", "--quiet"]) == 0
    got = pd.read_csv(tmp_path / "s.csv")
    assert got["score"].notna().all() and got["is_anomaly"][[3, 250]].tolist() == [1, 1]


def _npy_detector(df, tmp_path):
    np.save(tmp_path / "train.npy", df[["f0", "f1", "f2"]].to_numpy())
    assert main(["detect", "fit", str(tmp_path / "train.npy"), "--out", str(tmp_path / "det"), "--scaling", "standard",
                 "--contamination", "0.02", "--steps", "150", "--quiet"]) == 0
    return tmp_path / "det"


def test_cli_nan_while_scoring_names_the_row_and_impute(numeric, tmp_path, capsys):
    d, df = numeric
    bad = df.copy()
    bad.loc[260, "f1"] = np.nan  # in the third chunk of 100
    bad.to_csv(tmp_path / "bad.csv", index=False)
    capsys.readouterr()
    assert main(["detect", "score", str(d / "det"), str(tmp_path / "bad.csv"), "--out", str(tmp_path / "s.csv"),
                 "--id-column", "id", "--chunk-rows", "100"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "before training" not in err, err
    assert "1 NaN/Inf value(s), first at row 260, column 'f1'" in err and "vaekit detect fit --impute" in err, err
    assert not (tmp_path / "s.csv").exists()


def test_cli_impute_works_for_numeric_only_tables(tmp_path):
    df = pd.DataFrame(normal_rows(300, 3), columns=["f0", "f1", "f2"])
    df.loc[[4, 100], "f1"] = np.nan
    df.loc[50, "f2"] = np.inf
    df.to_csv(tmp_path / "t.csv", index=False)
    assert main(["detect", "fit", str(tmp_path / "t.csv"), "--out", str(tmp_path / "det"), "--impute", "--steps", "40", "--quiet"]) == 0
    assert main(["detect", "score", str(tmp_path / "det"), str(tmp_path / "t.csv"), "--out", str(tmp_path / "s.csv"),
                 "--chunk-rows", "64", "--quiet"]) == 0
    det = load_detector(tmp_path / "det")
    med = det.preprocessor_.impute_values_
    finite = df.to_numpy()
    np.testing.assert_allclose(med, [np.median(finite[np.isfinite(finite[:, j]), j]) for j in range(3)], rtol=1e-12)
    filled = np.where(np.isfinite(finite), finite, np.asarray(med)[None, :])
    got = pd.read_csv(tmp_path / "s.csv")["score"]
    assert got.notna().all()
    np.testing.assert_allclose(got, det.decision_function(filled), rtol=1e-6, atol=1e-6)


# -- spreadsheet-safe CSVs ----------------------------------------------------------------------


@pytest.mark.parametrize("text, want", [
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"), ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+1+1", "'+1+1"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("-5", "-5"), ("+1.5e3", "+1.5e3"), ("a=b", "a=b"), ("t001", "t001"), ("", ""),
])
def test_safe_text(text, want):
    assert safe_text(text) == want


def test_safe_frame_touches_text_never_numbers():
    df = pd.DataFrame({"=x": ["=a", "b"], "n": [-5, 3], "s": [-1.5, 2.0], "o": ["-x", None]})
    out = safe_frame(df)
    assert list(out.columns) == ["'=x", "n", "s", "o"]
    assert out["'=x"].tolist() == ["'=a", "b"] and out["o"].tolist()[0] == "'-x" and pd.isna(out["o"][1])
    assert out["n"].tolist() == [-5, 3] and out["s"].tolist() == [-1.5, 2.0] and out["n"].dtype == df["n"].dtype
    assert list(df.columns)[0] == "=x" and df["=x"][0] == "=a"  # the input is not modified
    assert safe_frame(df, raw=True) is df


IDS = ["=cmd|' /C calc'!A0", "a\rb", "c\nd", "=HYPERLINK(\"http://evil\")", "@x", "-y", "\r", "plain"]


@pytest.mark.parametrize("raw", [False, True])
def test_cli_score_ids_and_feature_names_are_safe_and_one_row_each(tmp_path, raw):
    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame({"=HYPERLINK(\"x\")": rng.normal(size=n), "-f": rng.normal(size=n), "ok": rng.normal(size=n)})
    ids = [IDS[i % len(IDS)] + f"#{i}" if i % len(IDS) != 6 else "\r" for i in range(n)]  # one id is a lone \r
    df.insert(0, "tx", ids)
    df.to_csv(tmp_path / "t.csv", index=False, lineterminator="\r\n")  # quoted, so the input itself is one row each
    assert len(pd.read_csv(tmp_path / "t.csv")) == n
    assert main(["detect", "fit", str(tmp_path / "t.csv"), "--out", str(tmp_path / "det"), "--id-column", "tx", "--model", "ae",
                 "--steps", "20", "--quiet"]) == 0
    out = tmp_path / "s.csv"
    argv = ["detect", "score", str(tmp_path / "det"), str(tmp_path / "t.csv"), "--out", str(out), "--id-column", "tx",
            "--explain", "3", "--chunk-rows", "50", "--quiet"]
    assert main(argv + (["--raw-csv"] if raw else [])) == 0
    got = pd.read_csv(out, keep_default_na=False)
    assert len(got) == n
    want_ids = ids if raw else [safe_text(i) for i in ids]
    assert got["tx"].tolist() == want_ids  # every id on its own row, aligned with its score below
    det = load_detector(tmp_path / "det")
    np.testing.assert_allclose(got["score"], det.decision_function(df.drop(columns="tx")), rtol=1e-6, atol=1e-6)
    names = set(got["feature_1"]) | set(got["feature_2"]) | set(got["feature_3"])
    assert names == ({"=HYPERLINK(\"x\")", "-f", "ok"} if raw else {"'=HYPERLINK(\"x\")", "'-f", "ok"})
    assert got["score"].dtype == np.float64 and got["contribution_1_sq_units"].dtype == np.float64


def test_cli_score_numeric_ids_stay_numbers(numeric, tmp_path):
    d, df = numeric
    assert main(["detect", "score", str(d / "det"), str(d / "train.csv"), "--out", str(tmp_path / "s.csv"), "--id-column", "id",
                 "--quiet"]) == 0
    text = (tmp_path / "s.csv").read_text()
    assert "\n-5," in text and "'" not in text
    got = pd.read_csv(tmp_path / "s.csv")
    assert got["id"].tolist() == df["id"].tolist() and (got["score"] < 0).any()  # negative scores stay numbers too


def test_encode_csv_labels_are_safe(tmp_path):
    from vaekit.cli.use import write_codes

    Z = np.arange(8, dtype=np.float32).reshape(4, 2) - 3
    classes = ["=evil()", "-x", "ok\rline", "@y"]
    write_codes(tmp_path / "z.csv", Z, np.array([0, 1, 2, 3]), classes)
    got = pd.read_csv(tmp_path / "z.csv")
    assert got["label"].tolist() == ["'=evil()", "'-x", "ok\rline", "'@y"] and got["z0"].tolist() == [-3, -1, 1, 3]
    write_codes(tmp_path / "raw.csv", Z, np.array([0, 1, 2, 3]), classes, raw_csv=True)
    assert pd.read_csv(tmp_path / "raw.csv")["label"].tolist() == classes


def test_cli_encode_writes_safe_labels(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.random((60, 4)), columns=list("abcd"))
    df["y"] = np.where(np.arange(60) % 2, "=1+1", "@cat")
    df.to_csv(tmp_path / "d.csv", index=False)
    assert main(["train", "--epochs", "1", "--quiet", "--no-figures", "--no-report", "--dataset", str(tmp_path / "d.csv"),
                 "--label-column", "y", "--batch-size", "20", "--out", str(tmp_path / "run")]) == 0
    assert main(["encode", str(tmp_path / "run"), "--dataset", str(tmp_path / "d.csv"), "--label-column", "y",
                 "--out", str(tmp_path / "z.csv")]) == 0
    assert set(pd.read_csv(tmp_path / "z.csv")["label"]) == {"'=1+1", "'@cat"}
    assert main(["encode", str(tmp_path / "run"), "--dataset", str(tmp_path / "d.csv"), "--label-column", "y",
                 "--out", str(tmp_path / "raw.csv"), "--raw-csv"]) == 0
    assert set(pd.read_csv(tmp_path / "raw.csv")["label"]) == {"=1+1", "@cat"}
