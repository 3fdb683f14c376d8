"""The signatures type checkers see (scripts/sync_signatures.py) are the ones the code builds at run time."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import sys
from pathlib import Path

import pytest

import vaekit
from vaekit.anomaly import AutoencoderDetector, VAEDetector
from vaekit.estimators import VAE, Autoencoder
from vaekit.options import OPTIONS, Option
from vaekit.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("sync_signatures", ROOT / "scripts" / "sync_signatures.py")
sync = sys.modules["sync_signatures"] = importlib.util.module_from_spec(spec)  # registered first: its dataclass looks itself up there
spec.loader.exec_module(sync)


def test_every_generated_block_is_current():
    """A new or changed option without re-running the script fails here."""
    assert sync.stale() == [], "run python scripts/sync_signatures.py"
    assert sync.main(["--check"]) == 0


def test_an_option_added_to_the_table_makes_the_block_stale():
    extra = Option("new_knob", "float", 0.5, "a knob the written signature lacks")
    block = sync.init_block("src/vaekit/estimators.py", "VAE", lambda: (*OPTIONS, extra), "vae")
    assert sync.stale([block]) == ["src/vaekit/estimators.py: VAE"]
    assert "new_knob: float = 0.5," in sync.rewrite(block.path.read_text(), block)


def test_a_missing_marker_names_the_fix(tmp_path):
    block = sync.Block(tmp_path / "x.py", "Nothing", lambda: [])
    block.path.write_text("class Nothing: ...\n")
    with pytest.raises(SystemExit, match="add the two marker lines"):
        sync.stale([block])


def _written(path: Path, cls: str) -> ast.ClassDef:
    tree = ast.parse((ROOT / path).read_text())
    return next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls)


@pytest.mark.parametrize("est", [VAE, Autoencoder, VAEDetector, AutoencoderDetector], ids=lambda c: c.__name__)
def test_written_init_is_the_runtime_init(est):
    """Names, order and defaults of the TYPE_CHECKING ``__init__`` against make_init's, read independently of the script."""
    init = next(n for n in ast.walk(_written(Path(inspect.getfile(est)).relative_to(ROOT), est.__name__))
                if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    args = init.args.args[1:]
    written = [(a.arg, ast.literal_eval(d)) for a, d in zip(args, init.args.defaults)]
    runtime = [(p.name, p.default) for p in list(inspect.signature(est.__init__).parameters.values())[1:]]
    assert written == runtime


def test_written_train_config_is_the_runtime_one():
    cls = _written(Path("src/vaekit/train.py"), "TrainConfig")
    written = [(n.target.id, ast.literal_eval(n.value)) for n in cls.body if isinstance(n, ast.AnnAssign)]
    assert written == [(f.name, f.default) for f in dataclasses.fields(TrainConfig)]


def test_the_package_stub_names_every_lazy_export():
    stub = ast.parse((ROOT / "src/vaekit/__init__.pyi").read_text())
    imported = {a.asname: n.module for n in stub.body if isinstance(n, ast.ImportFrom) for a in n.names}
    assert imported == vaekit._EXPORTS
