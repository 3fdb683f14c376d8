"""`make test` ends with one line per group of skipped tests and what enables it (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_skipped_groups_are_counted_with_their_fix(tmp_path) -> None:
    (tmp_path / "test_fake.py").write_text(
        "import pytest\n"
        "@pytest.mark.parametrize('i', range(3))\n"
        "def test_real(i):\n    pytest.skip('real data not found at /nowhere (set VAEKIT_SHARED_DATA)')\n"
        "def test_browser():\n    pytest.skip('headless Chromium not found: apt-get install chromium chromium-driver')\n"
        "def test_spark():\n    pytest.skip('Spark needs a Java runtime (java on PATH); install openjdk-17-jre-headless')\n"
        "def test_other():\n    pytest.skip('a GPU is present')\n"
        "def test_runs():\n    pass\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    # tests/conftest.py loaded as a plugin, as pytest loads it for the real suite.
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider", str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True).stdout
    summary = out[out.index("skipped groups"):]
    assert "  3 real-data tests skipped: to run them, set VAEKIT_SHARED_DATA" in summary
    assert "  1 browser tests skipped: to run them, apt-get install chromium chromium-driver" in summary
    assert "  1 Spark tests skipped: to run them, install a Java 17+ runtime" in summary
    assert "  1 skipped: a GPU is present" in summary
