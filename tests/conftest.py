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
