"""What the use commands write: codes with their labels, refused output types named with the allowed
ones, and a table refused by a Bernoulli likelihood pointed at both fixes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vaekit.cli import main
from vaekit.data import load_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae"
    assert main(["train", "--latent-dim", "2", "--hidden", "32", "--epochs", "1", "--limit", "500", "--batch-size", "100",
                 "--no-report", "--no-figures", "--quiet", "--out", str(out)]) == 0
    return out


def test_encode_npz_holds_codes_labels_and_class_names(run, tmp_path) -> None:
    assert main(["encode", str(run), "--out", str(tmp_path / "z.npz")]) == 0
    with np.load(tmp_path / "z.npz", allow_pickle=False) as z:
        codes, y, classes = z["z"], z["y"], list(z["classes"])
    test = load_dataset("embedded", "test")
    assert codes.shape == (len(test), 2)
    np.testing.assert_array_equal(y, test.y)
    assert classes == [str(d) for d in range(10)]


def test_encode_csv_has_a_label_column_and_the_same_codes(run, tmp_path) -> None:
    assert main(["encode", str(run), "--out", str(tmp_path / "z.csv")]) == 0
    assert main(["encode", str(run), "--out", str(tmp_path / "z.npy")]) == 0
    frame = pd.read_csv(tmp_path / "z.csv")
    assert list(frame.columns) == ["z0", "z1", "label"]
    np.testing.assert_array_equal(frame["label"].to_numpy(), load_dataset("embedded", "test").y)
    np.testing.assert_allclose(frame[["z0", "z1"]].to_numpy(), np.load(tmp_path / "z.npy"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("command", [["sample"], ["reconstruct"]])
def test_an_unsupported_output_type_lists_png(run, tmp_path, capsys, command) -> None:
    assert main([*command, str(run), "--out", str(tmp_path / "x.jpg")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"vaekit: error: cannot write {tmp_path / 'x.jpg'}: use a .png (image grid), .npy or .csv file name"
    assert not (tmp_path / "x.jpg").exists()


def test_real_valued_table_with_bernoulli_suggests_gaussian_and_standardize(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    pd.DataFrame(rng.normal(size=(200, 4)) * 10, columns=list("abcd")).to_csv(tmp_path / "t.csv", index=False)
    assert main(["train", "--dataset", str(tmp_path / "t.csv"), "--epochs", "1", "--quiet", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--likelihood" in err and "gaussian" in err and "--standardize" in err, err
    assert len(err.strip().splitlines()) == 1
