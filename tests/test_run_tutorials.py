"""scripts/run_tutorials.py runs with any Python (it finds the checkout's .venv) and leaves the committed
figures in docs/tutorials/figures alone unless --write-figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE_PYTHON = Path(sys.base_prefix) / "bin" / "python3"  # the interpreter the venv was made from: no vaekit


def _base_python_lacks_vaekit() -> bool:
    if not BASE_PYTHON.exists():
        return False
    return subprocess.run([str(BASE_PYTHON), "-c", "import vaekit"], capture_output=True).returncode != 0


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "python").exists() or not _base_python_lacks_vaekit(),
                    reason="needs the checkout's .venv and a Python without vaekit")
def test_a_python_without_vaekit_runs_the_tutorials_with_the_venv_and_figures_go_elsewhere(tmp_path):
    tut = tmp_path / "tutorials"
    tut.mkdir()
    (tut / "01-x.md").write_text(
        "```bash\nvaekit --version\necho png > docs/tutorials/figures/zz-bash.png\n```\n"
        "```python\nimport vaekit\nopen('docs/tutorials/figures/zz-python.png', 'w').write('png')\n```\n")
    figs = tmp_path / "figs"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "VAEKIT_TUTORIALS_REEXEC")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p)  # no vaekit on PATH
    res = subprocess.run([str(BASE_PYTHON), str(ROOT / "scripts" / "run_tutorials.py"), "--tutorials-dir", str(tut),
                          "--figures-dir", str(figs)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (figs / "zz-bash.png").exists() and (figs / "zz-python.png").exists()
    assert not (ROOT / "docs" / "tutorials" / "figures" / "zz-bash.png").exists()
    assert not (ROOT / "docs" / "tutorials" / "figures" / "zz-python.png").exists()


def test_figure_paths_move_only_without_write_figures():
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_tutorials_t", ROOT / "scripts" / "run_tutorials.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    code = "vaekit plot runs/x manifold --out docs/tutorials/figures/04-m.png\n"
    assert mod.with_figures_in(code, "runs/tutorials/figures") == "vaekit plot runs/x manifold --out runs/tutorials/figures/04-m.png\n"
    assert mod.with_figures_in(code, None) == code  # --write-figures
