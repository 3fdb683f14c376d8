"""Files that are never half-written: atomic writes, whole folders published at once, JSON.

Standard library only, so that plots, checkpoints and the CLI can write files without importing
torch. A crash at any moment leaves either the old file (or folder) or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import ModelFileError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would surprise users sharing run folders
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def staging_dir(out: str | Path) -> Path:
    """Where the folder ``out`` is written until it is complete: ``.NAME.partial`` beside it.

    One name for every kind of folder (run, detector), so that a crashed run's checkpoint is found
    again by ``vaekit train --resume`` and users learn one pattern to clean up.
    """
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def publish_dir(staging: Path, out: Path) -> None:
    """Move a finished folder into place, replacing ``out`` if it exists (the --overwrite case).

    The old folder is renamed aside first, so at every moment ``out`` is either the old complete
    folder or the new complete one.
    """
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out)


def _json_default(o):
    # NumPy scalars and arrays, without importing NumPy: they all have tolist().
    if isinstance(o, tuple) or hasattr(o, "tolist"):
        return o.tolist() if hasattr(o, "tolist") else list(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def write_json(path: str | Path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically (tuples and NumPy values become lists/numbers)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


# vaekit's own JSON files (configs, detector settings with their column lists) are far smaller;
# a larger one is not ours, and is refused before it is read into memory.
MAX_JSON_BYTES = 64 << 20


def read_json(path: Path) -> dict:
    """The JSON in ``path``, or a ModelFileError that says what is wrong with the file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ModelFileError(f"{path} is larger than {MAX_JSON_BYTES >> 20} MB, far more than a vaekit JSON file; it is not one of ours")
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{path} not found; point at a folder written by `vaekit train` or model.save()") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path} is not valid JSON ({e}); the model folder is damaged, retrain or restore it") from None
    except RecursionError:  # deeply nested brackets: the parser runs out of stack
        raise ModelFileError(f"{path} is nested too deeply to be a vaekit file; the model folder is damaged, retrain or restore it") from None
    except (IsADirectoryError, PermissionError, OSError) as e:
        raise ModelFileError(f"cannot read {path}: {e.strerror or e}") from None
