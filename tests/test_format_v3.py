"""Folders written in today's format (model format 3: one discriminator key, "name", in every
component) load and give the numbers they gave when written.

tests/fixtures/v3 was written by scripts/make_format_fixtures.py; expected.json holds what that code
computed on the first four test images. A change that alters what a saved folder computes, or how
format 3 is read, fails here; tests/test_format_v2.py keeps the previous format honest.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from fixture_numbers import check_numbers

import vaekit
from vaekit.checkpoint import read_checkpoint
from vaekit.data import load_dataset
from vaekit.modelfile import FORMAT_VERSION, read_config

FIXTURES = Path(__file__).parent / "fixtures" / "v3"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())["numbers"]


def test_the_fixture_is_the_current_format_with_one_discriminator_key():
    raw = json.loads((FIXTURES / "vae" / "config.json").read_text())
    assert raw["format_version"] == FORMAT_VERSION == 3
    assert "upgraded_from" not in read_config(FIXTURES / "vae")
    model = raw["model"]
    assert model["name"] == "vae" and model["prior"]["name"] == "vamp"
    assert all("name" in model[s] and not {"kind", "family"} & set(model[s]) for s in ("likelihood", "posterior", "prior"))


def test_a_format_3_run_folder_gives_the_same_numbers():
    check_numbers(vaekit.load(FIXTURES / "vae"), EXPECTED["vae"])


def test_a_format_3_checkpoint_resumes_to_the_uninterrupted_model(tmp_path, monkeypatch):
    from vaekit.cli import main

    ckpt = read_checkpoint(FIXTURES / ".checkpointed.partial")
    assert ckpt["epoch"] == 1 and ckpt["step"] == 2
    shutil.copytree(FIXTURES / ".checkpointed.partial", tmp_path / ".checkpointed.partial")
    monkeypatch.chdir(tmp_path)  # the checkpoint recorded `--out checkpointed`, relative to where it ran
    assert main(["train", "--resume", "checkpointed"]) == 0
    X = load_dataset("embedded", "test", limit=4).X
    np.testing.assert_allclose(vaekit.load(tmp_path / "checkpointed").encode(X), EXPECTED["checkpointed"]["encode"],
                               rtol=1e-4, atol=1e-5)


def test_a_format_3_detector_folder_scores_the_same():
    det = vaekit.load_detector(FIXTURES / "detector")
    rows = pd.read_csv(FIXTURES / "detector-rows.csv")
    np.testing.assert_allclose(det.decision_function(rows), EXPECTED["detector"]["decision_function"], rtol=1e-5)
