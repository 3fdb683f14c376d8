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
def _busy_neighbours(request):
    """With VAEKIT_TEST_UNDER_LOAD=1, tests marked ``under_load`` run beside two busy processes.

    The multi-process tests (distributed training, kill-and-resume) must hold on a loaded machine,
    where another process can take the CPU between any two steps, not only on a quiet one.
    `make test-under-load` (run by CI after the suite) runs them so.
    """
    if os.environ.get("VAEKIT_TEST_UNDER_LOAD") != "1" or request.node.get_closest_marker("under_load") is None:
        yield
        return
    import subprocess
    import sys

    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for p in busy:
            p.kill()
            p.wait()


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


# What `make test` skipped and how to run it: one line per group at the end of the run. A skip whose
# reason matches no group is listed with its own reason.
SKIP_GROUPS = (
    # (name, words in the skip reason, how to enable the group)
    ("guide code blocks marked not-run", ("marked not-run",),
     "copy them into a shell or notebook that has what their <!-- not-run: ... --> comment in docs/ names (data, a server, a cluster)"),
    ("real-data tests", ("real data not found",),
     "set VAEKIT_SHARED_DATA to the folder holding mnist/, frey-face/ and the other data sets (default: ../shared/data beside the checkout)"),
    ("browser tests", ("chromium", "selenium"), "apt-get install chromium chromium-driver (selenium comes with make test)"),
    ("Spark tests", ("spark", "java"), "install a Java 17+ runtime: apt-get install openjdk-17-jre-headless"),
    ("Dask tests", ("dask",), "pip install 'vaekit[dask]' (make test installs it)"),
    ("compiled-evaluation tests", ("c++ compiler",), "apt-get install g++"),
    ("TensorBoard tests", ("tensorboard",), "pip install 'vaekit[tensorboard]' (make test installs it)"),
    ("documentation-site tests", ("mkdocs",), "pip install -e '.[docs]' (make test installs it)"),
)


def skip_summary(reasons: list[str]) -> list[str]:
    """One line per group of skipped tests: how many, and what enables them."""
    counts: dict[str, int] = {}
    for reason in reasons:
        low = reason.lower()
        name = next((g[0] for g in SKIP_GROUPS if any(w in low for w in g[1])), reason.removeprefix("Skipped: "))
        counts[name] = counts.get(name, 0) + 1
    fixes = {g[0]: g[2] for g in SKIP_GROUPS}
    return [f"{n:3d} {name} skipped: to run them, {fixes[name]}" if name in fixes else f"{n:3d} skipped: {name}"
            for name, n in sorted(counts.items(), key=lambda kv: -kv[1])]


def pytest_terminal_summary(terminalreporter) -> None:
    reasons = []
    for rep in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(rep, "longrepr", None)
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            reasons.append(str(longrepr[2]))
    if reasons:
        terminalreporter.section("skipped groups")
        for line in skip_summary(reasons):
            terminalreporter.write_line(line)
