"""The package's layering: no import cycle, counting imports inside functions (scripts/import_graph.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "import_graph.py"


def _graph_module():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_vaekit_has_no_import_cycle():
    g = _graph_module()
    graph = g.import_graph()
    assert "vaekit.cli.train" in graph and "vaekit.train" in graph["vaekit.cli.train"]
    assert g.find_cycles(graph) == []


def test_the_checker_finds_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "vaekit"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("def f():\n    from .. import a\n")
    (pkg / "b.py").write_text("x = 1\ndef g():\n    from .sub.c import f\n")
    g = _graph_module()
    graph = g.import_graph(tmp_path)
    assert graph["vaekit.sub.c"] == {"vaekit.a"}
    assert g.find_cycles(graph) == [["vaekit.a", "vaekit.b", "vaekit.sub.c"]]


def test_the_script_prints_the_graph_and_exits_0():
    r = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "no import cycle" in r.stderr and "cli.train" in r.stdout


def test_help_does_not_import_torch():
    code = "import sys; from vaekit.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
