"""Shared fixtures. Real data lives in ../shared/data beside the checkout (CI has it there too);
tests that need it skip with a clear reason where it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("VAEKIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (set VAEKIT_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Never let a test read or fill the user's real download cache.
    monkeypatch.setenv("VAEKIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("VAEKIT_OFFLINE", "1")


@pytest.fixture(scope="session")
def explore_run(tmp_path_factory):
    """A 2-D VAE trained for one epoch on 600 embedded MNIST digits, saved as a run folder, with its test split.

    Shared by the explorer's API, command and browser tests: (estimator, test Dataset, run folder).
    """
    import vaekit
    from vaekit.data import load_dataset

    train = load_dataset("embedded", "train", limit=600)
    test = load_dataset("embedded", "test", limit=300)
    est = vaekit.VAE(latent_dim=2, hidden=(128,), epochs=2, seed=0, device="cpu").fit(train.X)
    run = est.save(tmp_path_factory.mktemp("explore") / "vae2d")
    return est, test, run
