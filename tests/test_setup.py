"""The set-up chooses the torch build: the CPU wheel without an NVIDIA GPU, the default with one.

`make -n -B setup` prints the commands it would run; a stand-in nvidia-smi first on PATH plays a
machine with or without a GPU (one that fails is what a driver-less machine's nvidia-smi does)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _torch_install_line(tmp_path: Path, gpu: bool) -> str:
    fake = tmp_path / "bin"
    fake.mkdir()
    smi = fake / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: stand-in'\nexit 0\n" if gpu else "#!/bin/sh\nexit 9\n")
    smi.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(["make", "-n", "-B", "setup", f"VENV={tmp_path / 'venv'}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    lines = [ln for ln in out.splitlines() if "pip install" in ln and "torch" in ln]
    assert len(lines) == 1, out
    return lines[0]


@pytest.mark.skipif(platform.system() != "Linux", reason="the +cpu wheel is the Linux choice")
def test_no_gpu_installs_the_cpu_build_only(tmp_path) -> None:
    line = _torch_install_line(tmp_path, gpu=False)
    # "+cpu" pins the local version: pip cannot satisfy it with PyPI's CUDA build.
    assert "torch==2.13.0+cpu" in line and "download.pytorch.org/whl/cpu" in line


def test_gpu_installs_the_default_build(tmp_path) -> None:
    line = _torch_install_line(tmp_path, gpu=True)
    assert "torch==2.13.0" in line and "+cpu" not in line and "whl/cpu" not in line


def test_torch_is_installed_before_the_package(tmp_path) -> None:
    fake = tmp_path / "x"
    out = subprocess.run(["make", "-n", "-B", "setup", f"VENV={fake}"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    torch_at = next(i for i, ln in enumerate(out) if "pip install" in ln and "torch==" in ln)
    pkg_at = next(i for i, ln in enumerate(out) if "pip install" in ln and " -e " in ln)
    assert torch_at < pkg_at


def _planned_installs(target: str, venv: Path) -> list[str]:
    out = subprocess.run(["make", "-n", "-B", target, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ln for ln in out.splitlines() if "pip install" in ln and " -e " in ln]


def test_demo_installs_the_core_only(tmp_path) -> None:
    # The demo needs vaekit and its dependencies, not pyspark, selenium, dask or ruff (gigabytes).
    assert [ln.split()[-1] for ln in _planned_installs("demo", tmp_path / "v")] == ["."]


def test_test_adds_the_extras_on_top_of_the_demo_venv(tmp_path) -> None:
    # `make test` on a demo .venv installs only the extras; alone, the core and then the extras.
    assert [ln.split()[-1] for ln in _planned_installs("test", tmp_path / "v")] == [".", "'.[dev,dask,spark,docs]'"]
    venv = tmp_path / "demo-venv"
    venv.mkdir()
    (venv / ".vaekit-core").touch()  # what `make demo` leaves behind
    out = subprocess.run(["make", "-n", "test", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    installs = [ln for ln in out.splitlines() if "pip install" in ln]
    assert len(installs) == 1 and "'.[dev,dask,spark,docs]'" in installs[0], out


def test_docs_installs_the_docs_extra_and_builds_strictly(tmp_path) -> None:
    # `make docs` adds only MkDocs and its plugins to the core .venv, then fails on any warning.
    assert [ln.split()[-1] for ln in _planned_installs("docs", tmp_path / "v")] == [".", "'.[docs]'"]
    out = subprocess.run(["make", "-n", "-B", "docs", f"VENV={tmp_path / 'v'}"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert any("mkdocs build --strict" in ln for ln in out.splitlines()), out
