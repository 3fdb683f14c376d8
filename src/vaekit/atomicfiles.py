"""Files that are never half-written: atomic writes, whole folders published at once, JSON.

Standard library only, so that plots, checkpoints and the CLI can write files without importing
torch. A crash at any moment leaves either the old file (or folder) or the new one, never a mix.
Temporary files are known while they exist, so that a signal removes them (:func:`cleanup_on_signals`),
and one writer at a time owns an output folder (:func:`lock_folder`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from .errors import ModelFileError, VaekitError

# Every temporary file of an unfinished atomic write: a caught signal removes them before the
# process exits, so no `.NAME.*.tmp` outlives a SIGTERM, SIGHUP or Ctrl-C.
_LIVE_TEMPS: set[str] = set()
# Folder -> folder where atomic writes into it keep their temporary files (see temporaries_in).
_TEMP_HOMES: dict[Path, Path] = {}


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (or in the folder :func:`temporaries_in` names);
    on success it replaces ``path`` atomically."""
    path = Path(path)
    created = _missing_folders(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    home = _TEMP_HOMES.get(path.parent.resolve(), path.parent)
    fd, tmp = tempfile.mkstemp(dir=home, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    _LIVE_TEMPS.add(tmp)
    ok = False
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would surprise users sharing run folders
        os.replace(tmp, path)
        _fsync_dir(path.parent)  # the rename itself survives a power cut: the old file is gone only once the new one is on disk
        ok = True
    finally:
        _LIVE_TEMPS.discard(tmp)
        if os.path.exists(tmp):
            os.unlink(tmp)
        if not ok:
            _remove_if_empty(created)  # a failed write leaves no folder it made behind


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, outermost first."""
    folder = folder.absolute()
    return [p for p in [*reversed(folder.parents), folder] if not p.exists()]


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders (as from :func:`_missing_folders`) innermost first, each only if empty."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform or file system that cannot open folders: the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def temporaries_in(folder: str | Path, home: str | Path) -> Iterator[None]:
    """While active, atomic writes into ``folder`` keep their temporary files in ``home``.

    A published folder is written this way after it is in place (a run's report and figures), so that
    a kill at any moment leaves no temporary file inside it. ``home`` must be on the same file system
    (a sibling folder): the final rename is then still atomic.
    """
    key = Path(folder).resolve()
    _TEMP_HOMES[key] = Path(home)
    try:
        yield
    finally:
        _TEMP_HOMES.pop(key, None)


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the temporary files (``.NAME.*.tmp``) an atomic write killed with SIGKILL left in ``folder``."""
    stale = [p for p in Path(folder).glob(".*.tmp") if p.is_file() and str(p) not in _LIVE_TEMPS]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


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


def finishing_dir(out: str | Path) -> Path:
    """Where the temporary files of a published run's report and figures live while they are drawn:
    ``.NAME.finishing`` beside it. Its presence after the process is gone says the run stopped there."""
    out = Path(out)
    return out.parent / f".{out.name}.finishing"


# -- one writer per output folder --------------------------------------------------------------


class FolderLocked(VaekitError):
    """Another process is writing the same output folder."""


def lock_path(out: str | Path) -> Path:
    """The lock file of the output folder ``out``: ``.NAME.lock`` beside it."""
    out = Path(out)
    return out.parent / f".{out.name}.lock"


@contextlib.contextmanager
def lock_folder(out: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on the output folder ``out`` for the body; a second holder is refused.

    flock(2) on ``.NAME.lock`` beside the folder: the kernel releases it when the process ends,
    however it ends, so a crashed run never leaves a stale lock. The file is removed on release;
    a process that opened it just before is caught by the inode check and refused rather than
    sharing the folder. Raises :class:`FolderLocked` (one line, naming the holder's process id).
    """
    import fcntl

    path = lock_path(out)
    created = _missing_folders(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise FolderLocked(f"{out} is being written by another vaekit process{_holder(path)}; "
                               f"wait for it to finish or choose another output folder") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder finished and removed the file between our open and our lock
            raise FolderLocked(f"{out} was being written by another vaekit process a moment ago; run the command again")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)  # while still held: nobody can take a lock on a file about to vanish
    finally:
        os.close(fd)
        _remove_if_empty(created)  # a run that wrote nothing leaves no folder made for its lock


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


# -- signals -----------------------------------------------------------------------------------


class SignalExit(SystemExit):
    """Raised in the main thread by a caught SIGTERM or SIGHUP: unwinds (every ``finally`` runs,
    so temporary files go and resumable state is kept) and exits with status 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


def remove_live_temps() -> None:
    """Delete the temporary files of every unfinished atomic write of this process."""
    for tmp in list(_LIVE_TEMPS):
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _LIVE_TEMPS.discard(tmp)


def _on_signal(signum, frame) -> None:
    remove_live_temps()  # first, in case some code on the way out swallows the exception
    raise SignalExit(signum)


@contextlib.contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """For the body, SIGTERM and SIGHUP raise :class:`SignalExit` instead of killing the process
    at once (SIGINT already raises KeyboardInterrupt), so that temporary files are removed and
    ``finally`` blocks run. Only in the main thread, and only for signals whose handler is the
    default one: a host program's own handlers are left alone. The previous handlers come back after.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) == signal.SIG_DFL:
            previous[sig] = signal.signal(sig, _on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _json_default(o):
    # NumPy scalars and arrays, without importing NumPy: they all have tolist().
    if isinstance(o, tuple) or hasattr(o, "tolist"):
        return o.tolist() if hasattr(o, "tolist") else list(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def json_text(obj) -> str:
    """``obj`` as vaekit writes JSON files: indented, tuples and NumPy values as lists / numbers."""
    return json.dumps(obj, indent=2, default=_json_default) + "\n"


def write_json(path: str | Path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically (tuples and NumPy values become lists/numbers)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(obj))


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
