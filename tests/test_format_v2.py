"""Folders written in model format 2 (vaekit before the one discriminator key) load and give the numbers they gave when written.

tests/fixtures/v2 was written by scripts/make_format_fixtures.py (then make_v2_fixtures.py); expected.json holds what that code
computed on the first four test images. A change that alters what a saved folder computes fails here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixture_numbers import check_numbers

import vaekit
from vaekit.checkpoint import read_checkpoint
from vaekit.data import load_dataset
from vaekit.modelfile import FORMAT_VERSION, read_config

FIXTURES = Path(__file__).parent / "fixtures" / "v2"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())["numbers"]


def test_the_fixture_is_format_2_and_reads_as_format_3_with_one_discriminator_key():
    raw = json.loads((FIXTURES / "vae" / "config.json").read_text())
    assert raw["format_version"] == 2 and FORMAT_VERSION == 3
    assert raw["model"]["kind"] == "vae" and "family" in raw["model"]["posterior"] and "kind" in raw["model"]["prior"]
    cfg = read_config(FIXTURES / "vae")
    assert cfg["upgraded_from"] == 2 and cfg["format_version"] == 3
    model = cfg["model"]
    assert model["name"] == "vae" and "kind" not in model
    for section in ("likelihood", "posterior", "prior"):
        assert set(model[section]) - set(raw["model"][section]) == {"name"} or "name" in raw["model"][section]
        assert model[section]["name"] == raw["model"][section].get("name", raw["model"][section].get("family", raw["model"][section].get("kind")))


def test_todays_writer_uses_the_one_discriminator_key(tmp_path):
    est = vaekit.load(FIXTURES / "vae")
    raw = json.loads((est.save(tmp_path / "again") / "config.json").read_text())
    assert raw["format_version"] == FORMAT_VERSION and raw["model"]["name"] == "vae"
    assert all(raw["model"][s]["name"] for s in ("likelihood", "posterior", "prior"))
    assert "kind" not in raw["model"] and "family" not in raw["model"]["posterior"] and "kind" not in raw["model"]["prior"]


def test_a_format_2_run_folder_gives_the_same_numbers():
    check_numbers(vaekit.load(FIXTURES / "vae"), EXPECTED["vae"])


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_a_format_2_run_re_saved_in_parts_loads_the_same_halves(tmp_path, part):
    est = vaekit.load(FIXTURES / "vae")
    est.save(tmp_path / part, part=part)
    half = vaekit.load(tmp_path / part)
    X = load_dataset("embedded", "test", limit=4).X
    if part == "encoder":
        np.testing.assert_array_equal(half.encode(X), est.encode(X))
    else:
        # A VampPrior's p(z) runs its pseudo-inputs through the encoder, so its decoder folder keeps the encoder too.
        Z = est.encode(X)
        np.testing.assert_array_equal(half.decode(Z), est.decode(Z))
        np.testing.assert_array_equal(half.sample(3, seed=2), est.sample(3, seed=2))


def test_a_format_2_checkpoint_reads_and_resumes_to_the_uninterrupted_model(tmp_path, monkeypatch):
    from vaekit.cli import main

    ckpt = read_checkpoint(FIXTURES / ".checkpointed.partial")
    assert ckpt["epoch"] == 1 and ckpt["step"] == 2 and ckpt["history"] == []
    shutil.copytree(FIXTURES / ".checkpointed.partial", tmp_path / ".checkpointed.partial")
    monkeypatch.chdir(tmp_path)  # the checkpoint recorded `--out checkpointed`, relative to where it ran
    assert main(["train", "--resume", "checkpointed"]) == 0
    want = EXPECTED["checkpointed"]
    X = load_dataset("embedded", "test", limit=4).X
    np.testing.assert_allclose(vaekit.load(tmp_path / "checkpointed").encode(X), want["encode"], rtol=1e-4, atol=1e-5)


def test_a_format_2_detector_folder_scores_the_same():
    det = vaekit.load_detector(FIXTURES / "detector")
    rows = pd.read_csv(FIXTURES / "detector-rows.csv")
    np.testing.assert_allclose(det.decision_function(rows), EXPECTED["detector"]["decision_function"], rtol=1e-5)
