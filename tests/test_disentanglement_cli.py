"""Sprites' factors reach every command: `vaekit encode --out z.npz` keeps them beside the codes,
`vaekit evaluate --disentanglement` scores the codes against them, and the report of a sprites run
shows the scores with what each measures. Tiny runs (a conv-vae on a few hundred sprites)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vaekit.cli import main
from vaekit.data import NAMED_SOURCES, load_dataset
from vaekit.data.sprites import FACTOR_NAMES
from vaekit.disentanglement import MEASURES

KEYS = ("beta_vae", "factor_vae", "mig", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    quick = ["--epochs", "1", "--quiet", "--no-report", "--device", "cpu"]
    assert main(["train", "--dataset", "sprites", "--limit", "150", "--model", "conv-vae", "--latent-dim", "3",
                 "--out", str(root / "sprites"), *quick]) == 0
    assert main(["train", "--limit", "200", "--latent-dim", "2", "--hidden", "32", "--out", str(root / "mnist"), *quick]) == 0
    return root


def test_encode_npz_writes_the_factors_beside_the_codes(runs, tmp_path, capsys):
    out = tmp_path / "z.npz"
    assert main(["encode", str(runs / "sprites"), "--limit", "120", "--out", str(out)]) == 0
    assert "factors shape, scale, orientation, pos_x, pos_y" in capsys.readouterr().out
    with np.load(out, allow_pickle=False) as z:
        assert z["z"].shape == (120, 3)
        assert z["factors"].shape == (120, 5) and z["factors"].dtype == np.int64
        assert list(z["factor_names"]) == list(FACTOR_NAMES)
        assert (z["y"] == z["factors"][:, 0]).all() and list(z["classes"]) == ["square", "ellipse", "heart"]
        # The factors are those of the same examples, in the same order as the codes.
        assert (z["factors"] == load_dataset("sprites", "test", limit=120).factors).all()


def test_encode_npy_keeps_its_behaviour_and_says_where_the_factors_go(runs, tmp_path, capsys):
    out = tmp_path / "z.npy"
    assert main(["encode", str(runs / "sprites"), "--limit", "40", "--out", str(out)]) == 0
    assert np.load(out).shape == (40, 3)
    printed = capsys.readouterr().out
    assert "factors are written only to a .npz" in printed


def test_evaluate_disentanglement_prints_a_table_and_writes_json(runs, tmp_path, capsys):
    js = tmp_path / "d.json"
    assert main(["evaluate", str(runs / "sprites"), "--disentanglement", "--limit", "300", "--json", str(js)]) == 0
    printed = capsys.readouterr().out
    for key in KEYS:
        assert key in printed and MEASURES[key] in printed
    r = json.loads(js.read_text())
    assert r["dataset"] == "sprites" and r["split"] == "test" and r["n"] == 300
    for key in KEYS:
        v = r[key]
        if isinstance(v, dict):
            assert set(v) == {"mean", "sd"} and 0 <= v["mean"] <= 1 and v["sd"] >= 0
        else:
            assert 0 <= v <= 1


def test_evaluate_disentanglement_without_factors_is_one_line(runs, capsys):
    rc = main(["evaluate", str(runs / "mnist"), "--disentanglement", "--limit", "50"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "no ground-truth factors" in err[0] and "--dataset sprites" in err[0]


def test_report_of_a_sprites_run_shows_the_scores_and_the_traversal(runs, tmp_path):
    from vaekit.report import build_report

    test = load_dataset("sprites", "test", limit=150)
    train = load_dataset("sprites", "train", limit=150)
    page = build_report(runs / "sprites", tmp_path / "r.html", k=2, iw_limit=10, test=test, train=train).read_text()
    assert "Latent traversal, one dimension per row" in page
    assert '<h3 id="disentanglement">Disentanglement</h3>' in page
    for key in KEYS:
        assert f"<td>{key}</td>" in page
    assert "what it measures" in page and "--disentanglement" in page


def test_dataset_help_lists_every_named_dataset(capsys):
    with pytest.raises(SystemExit):
        main(["encode", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in NAMED_SOURCES:
        assert name in text
    assert "\x00" not in text
