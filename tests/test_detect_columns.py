"""What an analyst's table meets in `vaekit detect`: ID-like columns left out (and kept on request),
--explain's unit written out, the near miss for a mistyped column, NaN advice naming --impute, and
semicolon- or tab-separated files read as such."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from vaekit.anomaly import VAEDetector, load_detector
from vaekit.anomaly.table import IdColumnWarning, TablePreprocessor, id_like_columns
from vaekit.cli import main
from vaekit.data.tables import column_hint, read_table, sniff_delimiter
from vaekit.errors import ConfigError

FAST = ["--steps", "5", "--quiet"]


def _table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "tx_id": rng.permutation(900_000)[:n] + 100_000,  # shuffled unique integers under an id's name
        "amount": rng.normal(size=n),
        "cents": rng.permutation(10**7)[:n],  # unique integers too, but a plausible feature: kept
        "b": rng.normal(size=n),
        "fraud": (rng.random(n) < 0.05).astype(int),
    })


# -- the rule ---------------------------------------------------------------------------------------


def test_id_like_rule():
    n = 50
    rng = np.random.default_rng(1)
    df = pd.DataFrame({
        "code": [f"T{i:04d}" for i in rng.permutation(n)],  # text, different in every row
        "row": np.arange(n) + 7,  # integers rising row by row
        "down": np.arange(n)[::-1].copy(),  # falling
        "customerId": rng.permutation(1000)[:n],  # an identifier's name (camel case)
        "key": rng.permutation(1000)[:n],
        "cents": rng.permutation(1000)[:n],  # unique integers, any other name: a feature
        "paid": rng.permutation(1000)[:n],  # ends in "id" but is not an identifier's name
        "x": rng.normal(size=n),  # floats never
        "flag": np.arange(n) % 2 == 0,  # booleans never
        "cat": rng.choice(["a", "b"], n),  # repeated text
    })
    assert list(id_like_columns(df)) == ["code", "row", "down", "customerId", "key"]
    assert list(id_like_columns(df, exclude=["code", "row"])) == ["down", "customerId", "key"]
    assert id_like_columns(df.head(19)) == {}  # too few rows to tell
    with_gap = df.assign(code=df["code"].where(np.arange(n) != 3, None))
    assert "code" not in id_like_columns(with_gap)  # a missing value: not an id


def test_detector_leaves_id_columns_out_and_remembers(tmp_path):
    df = _table().drop(columns="fraud")
    with pytest.warns(IdColumnWarning, match="'tx_id'") as rec:
        det = VAEDetector(n_steps=5).fit(df)
    assert len(rec) == 1 and "keep_columns" in str(rec[0].message)
    assert det.preprocessor_.dropped_columns_ == ["tx_id"]
    assert list(det.feature_names_in_) == ["amount", "cents", "b"]
    det.save(tmp_path / "det")
    back = load_detector(tmp_path / "det")
    assert back.preprocessor_.dropped_columns_ == ["tx_id"]
    # Scoring ignores the column whether it is there or not, and gives the same scores.
    np.testing.assert_array_equal(back.decision_function(df), det.decision_function(df.drop(columns="tx_id")))

    with warnings.catch_warnings():
        warnings.simplefilter("error", IdColumnWarning)
        kept = VAEDetector(n_steps=5, keep_columns=["tx_id"]).fit(df)
        none = VAEDetector(n_steps=5, id_columns=None).fit(df)
    assert list(kept.feature_names_in_) == list(none.feature_names_in_) == ["tx_id", "amount", "cents", "b"]
    listed = VAEDetector(n_steps=5, id_columns=["b"]).fit(df)  # a list: exactly those, no detection
    assert list(listed.feature_names_in_) == ["tx_id", "amount", "cents"]


def test_preprocessor_parameters_are_checked():
    df = _table().drop(columns="fraud")
    with pytest.raises(ConfigError, match="did you mean 'tx_id'"):
        TablePreprocessor(keep_columns=["TX_ID"]).fit_transform(df)
    with pytest.raises(ConfigError, match="did you mean 'amount'"):
        TablePreprocessor(categorical=["amont"]).fit_transform(df)
    with pytest.raises(ConfigError, match="id_columns takes"):
        TablePreprocessor(id_columns="tx_id").fit_transform(df)
    pre = TablePreprocessor()
    with pytest.warns(IdColumnWarning):
        pre.fit_transform(df)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdColumnWarning)  # a column mistake fails before any warning
        with pytest.raises(ConfigError):
            TablePreprocessor(categorical=["amont"]).fit_transform(df)
    assert TablePreprocessor.from_json(pre.to_json()).dropped_columns_ == ["tx_id"]
    old = pre.to_json()
    del old["dropped_columns"]  # a folder saved before the field existed
    assert TablePreprocessor.from_json(old).dropped_columns_ == []


def test_an_array_is_never_searched_for_ids():
    X = np.column_stack([np.arange(100), np.random.default_rng(0).normal(size=100)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdColumnWarning)
        pre = TablePreprocessor()
        assert pre.fit_transform(X).shape == (100, 2)


# -- the command line ---------------------------------------------------------------------------------


def test_cli_leaves_an_id_column_out_with_one_warning_and_scoring_follows(tmp_path, capsys):
    df = _table()
    df.insert(0, "ref", [f"R{i:05d}" for i in range(len(df))])  # a text id: must not fail as "non-numeric"
    df.to_csv(tmp_path / "tx.csv", index=False)
    assert main(["detect", "fit", str(tmp_path / "tx.csv"), "--label-column", "fraud", "--out", str(tmp_path / "det"), *FAST]) == 0
    err = capsys.readouterr().err
    warn = [line for line in err.splitlines() if "ID-like" in line]
    assert len(warn) == 1 and "'ref'" in warn[0] and "'tx_id'" in warn[0] and "--keep-column tx_id" in warn[0], err
    cfg = json.loads((tmp_path / "det" / "detector.json").read_text())
    assert cfg["preprocessor"]["dropped_columns"] == ["ref", "tx_id"]
    assert cfg["preprocessor"]["feature_names"] == ["amount", "cents", "b"]
    out = tmp_path / "s.csv"
    assert main(["detect", "score", str(tmp_path / "det"), str(tmp_path / "tx.csv"), "--out", str(out),
                 "--label-column", "fraud", "--id-column", "ref", "--quiet"]) == 0
    assert len(pd.read_csv(out)) == len(df)

    assert main(["detect", "fit", str(tmp_path / "tx.csv"), "--label-column", "fraud", "--id-column", "ref",
                 "--keep-column", "tx_id", "--out", str(tmp_path / "kept"), *FAST]) == 0
    assert "ID-like" not in capsys.readouterr().err
    assert load_detector(tmp_path / "kept").preprocessor_.feature_names_ == ["tx_id", "amount", "cents", "b"]


@pytest.mark.parametrize("flag,given,near", [
    ("--label-column", "Fraud", "fraud"), ("--id-column", "TX_ID", "tx_id"),
    ("--categorical", "ammount", "amount"), ("--keep-column", "tx-id", "tx_id"),
])
def test_cli_column_mistakes_suggest_the_near_miss(tmp_path, capsys, flag, given, near):
    _table().to_csv(tmp_path / "tx.csv", index=False)
    argv = ["detect", "fit", str(tmp_path / "tx.csv"), "--out", str(tmp_path / "det"), flag, given, *FAST]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vaekit: error: ") and "\n" not in err, err  # one line: no ID warning before it
    assert f"did you mean {near!r}?" in err and flag in err
    assert not (tmp_path / "det").exists()


def test_column_hint_lists_all_when_nothing_is_near():
    names = [f"col{i}" for i in range(30)]
    assert column_hint("Col7", names) == "; did you mean 'col7'?"
    hint = column_hint("zzz", names)
    assert "'col19'" in hint and "'col20'" not in hint and "(30 columns in all)" in hint


@pytest.mark.parametrize("model,method,unit,same", [
    ("vae", "combined", "nats", False), ("vae", "elbo", "nats", True), ("ae", "reconstruction", "sq_units", True),
])
def test_cli_explain_says_its_unit(tmp_path, capsys, model, method, unit, same):
    _table().drop(columns=["tx_id", "fraud"]).to_csv(tmp_path / "t.csv", index=False)
    assert main(["detect", "fit", str(tmp_path / "t.csv"), "--out", str(tmp_path / "det"), "--model", model,
                 "--method", method, *FAST]) == 0
    assert main(["detect", "score", str(tmp_path / "det"), str(tmp_path / "t.csv"), "--out", str(tmp_path / "s.csv"),
                 "--explain", "2"]) == 0
    got = pd.read_csv(tmp_path / "s.csv")
    assert [c for c in got.columns if c.startswith("contribution")] == [f"contribution_1_{unit}", f"contribution_2_{unit}"]
    note = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert len(note) == 1
    assert ("the same unit as the score" in note[0]) == same
    if method == "combined":
        assert "in nats" in note[0] and "robust units" in note[0]


# -- NaN at scoring time -------------------------------------------------------------------------------


@pytest.mark.parametrize("categorical,where", [(False, "amount"), (True, "amount"), (True, "c")])
def test_an_empty_cell_at_scoring_names_impute(tmp_path, capsys, categorical, where):
    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame({"amount": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y"], n)})
    if not categorical:
        df = df.drop(columns="c")
    df.to_csv(tmp_path / "fit.csv", index=False)
    cat = ["--categorical", "c"] if categorical else []
    assert main(["detect", "fit", str(tmp_path / "fit.csv"), "--out", str(tmp_path / "det"), *cat, *FAST]) == 0
    df.loc[70, where] = np.nan
    df.to_csv(tmp_path / "new.csv", index=False)
    assert main(["detect", "score", str(tmp_path / "det"), str(tmp_path / "new.csv"), "--out", str(tmp_path / "s.csv"),
                 "--chunk-rows", "50"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vaekit: error: ") and "\n" not in err, err
    assert "--impute" in err and "before training" not in err, err
    assert "row 70" in err or ("row 50" in err and "row 20" in err), err  # the row, or the chunk and its row
    assert not (tmp_path / "s.csv").exists()


# -- delimiters ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sep,name", [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_a_semicolon_or_tab_separated_file_is_read_with_a_note(tmp_path, sep, name):
    df = _table().drop(columns="tx_id")
    df.to_csv(tmp_path / "tx.csv", index=False, sep=sep)
    with pytest.warns(UserWarning, match=f"{name}-separated") as rec:  # a one-line note, once per file
        assert main(["detect", "fit", str(tmp_path / "tx.csv"), "--label-column", "fraud", "--out", str(tmp_path / "det"), *FAST]) == 0
    assert len([w for w in rec if "separated" in str(w.message)]) == 1
    assert sniff_delimiter(tmp_path / "tx.csv") == sep
    assert load_detector(tmp_path / "det").preprocessor_.feature_names_ == ["amount", "cents", "b"]
    assert main(["detect", "score", str(tmp_path / "det"), str(tmp_path / "tx.csv"), "--out", str(tmp_path / "s.csv"),
                 "--label-column", "fraud", "--quiet"]) == 0
    X, y, _ = read_table(tmp_path / "tx.csv", label_column="fraud")  # what `vaekit train` reads
    np.testing.assert_allclose(X, df.drop(columns="fraud").to_numpy(np.float32))
    np.testing.assert_array_equal(y, df["fraud"])


def test_a_comma_file_stays_a_comma_file(tmp_path):
    (tmp_path / "a.csv").write_text("a,b;c\n1,2\n3,4\n")  # a comma in the header: comma-separated
    assert sniff_delimiter(tmp_path / "a.csv") == ","
    (tmp_path / "one.csv").write_text("a\n1\n2\n")
    assert sniff_delimiter(tmp_path / "one.csv") == ","


def test_a_line_of_another_delimiter_is_named_in_the_error(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("a,b\n1;2,5\n3;4,6\n")
    assert main(["train", "--dataset", str(tmp_path / "t.csv"), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--quiet", "--no-figures", "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'1;2'" in err and "semicolon-separated" in err and "\n" not in err, err
