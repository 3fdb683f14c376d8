"""`vaekit train` output safety (issue 22, items 3, 4 and 8): --resume DIR resumes DIR only, into
DIR, with typed flags applied or refused; one writer per output folder; the last good checkpoint
survives a failed write; the model is published before its report; temporary files never
outlive a caught signal and never sit inside a published folder."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vaekit import atomicfiles, checkpoint
from vaekit.atomicfiles import finishing_dir, lock_folder, lock_path, staging_dir
from vaekit.checkpoint import read_checkpoint
from vaekit.cli import main

# 256 rows / batch 32 = 8 steps an epoch; a checkpoint every 2 steps.
TRAIN = ["train", "--quiet", "--no-figures", "--no-report", "--batch-size", "32", "--val-fraction", "0",
         "--hidden", "16", "--latent-dim", "2", "--seed", "1"]
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).random((256, 6)).astype(np.float32))
    return path


def _train(out: Path, data: Path, *extra: str) -> int:
    return main([*TRAIN, "--dataset", str(data), "--out", str(out), *extra])


def _interrupted(monkeypatch, out: Path, data: Path, saves: int = 1, *extra: str) -> Path:
    """A run stopped (as by Ctrl-C) after ``saves`` checkpoints; returns its staging folder."""
    real = checkpoint.Checkpointer.save
    done = []

    def save(self, *a, **k):
        if len(done) == saves:
            raise KeyboardInterrupt
        done.append(1)
        real(self, *a, **k)

    monkeypatch.setattr(checkpoint.Checkpointer, "save", save)
    try:
        assert _train(out, data, "--epochs", "2", "--checkpoint-every", "2", *extra) == 130
    finally:
        monkeypatch.setattr(checkpoint.Checkpointer, "save", real)
    staging = staging_dir(out)
    assert (staging / "checkpoint.safetensors").exists()
    return staging


def _edit_checkpoint(staging: Path, change) -> None:
    """Rewrite a checkpoint with ``change(meta, tensors)`` applied: a crafted or damaged checkpoint."""
    path = staging / "checkpoint.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["vaekit"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    change(meta, tensors)
    save_file(tensors, str(path), metadata={"vaekit": json.dumps(meta)})


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("vaekit: error: "), err
    return err


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.tmp")]


# -- --resume DIR: DIR only, into DIR ----------------------------------------------------------


def test_resume_ignores_the_output_paths_a_checkpoint_records(tmp_path, data, monkeypatch, capsys):
    run, victim, elsewhere = tmp_path / "run", tmp_path / "victim", tmp_path / "tb"
    staging = _interrupted(monkeypatch, run, data)
    victim.mkdir()
    (victim / "precious.txt").write_text("mine")
    _edit_checkpoint(staging, lambda meta, t: meta["extra"]["argv"].extend(
        ["--out", str(victim), "--overwrite", "--tensorboard", str(elsewhere)]))
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0
    assert (victim / "precious.txt").read_text() == "mine" and sorted(os.listdir(victim)) == ["precious.txt"]
    assert not elsewhere.exists()
    assert (run / "model.safetensors").exists() and not staging.exists()
    argv = json.loads((run / "config.json").read_text())["run"]["argv"]
    assert f"--out={run}" in argv and "--overwrite" not in argv and str(elsewhere) not in argv


def test_a_renamed_partial_never_replaces_the_run_its_name_held(tmp_path, data, monkeypatch):
    run_a, run_b = tmp_path / "runA", tmp_path / "runB"
    _interrupted(monkeypatch, run_a, data).rename(staging_dir(run_b))
    assert _train(run_a, data, "--epochs", "1", "--seed", "7") == 0  # a different, finished runA
    before = {p.name: p.read_bytes() for p in run_a.iterdir()}
    # Resumed by its staging folder's own name: the partial's name says where it goes.
    assert main(["train", "--resume", str(staging_dir(run_b))]) == 0
    assert {p.name: p.read_bytes() for p in run_a.iterdir()} == before
    assert (run_b / "model.safetensors").exists() and not staging_dir(run_b).exists()


def test_resume_replaces_an_existing_folder_only_with_overwrite_typed(tmp_path, data, monkeypatch, capsys):
    run = tmp_path / "run"
    staging = _interrupted(monkeypatch, run, data, 1, "--overwrite")  # the recorded command said --overwrite
    run.mkdir()
    (run / "keep.txt").write_text("mine")
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    assert "--overwrite" in _one_line_error(capsys)
    assert (run / "keep.txt").read_text() == "mine" and (staging / "checkpoint.safetensors").exists()
    assert main(["train", "--resume", str(run), "--overwrite"]) == 0
    assert (run / "model.safetensors").exists() and not (run / "keep.txt").exists()


def test_flags_typed_with_resume_are_applied_or_refused_by_name(tmp_path, data, monkeypatch, capsys):
    run = tmp_path / "run"
    staging = _interrupted(monkeypatch, run, data)
    capsys.readouterr()
    for extra, named in ((["--lr", "0.5"], "--lr"), (["--latent-dim", "3", "--seed", "2"], "--latent-dim, --seed"),
                         (["--out", str(tmp_path / "other")], "--out")):
        assert main(["train", "--resume", str(run), *extra]) == 2
        assert named in _one_line_error(capsys)
        assert (staging / "checkpoint.safetensors").exists() and not run.exists()
    # More epochs than the run started with: applied, and recorded for a later resume.
    assert main(["train", "--resume", str(run), "--epochs", "3"]) == 0
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 3
    assert "--epochs=3" in json.loads((run / "config.json").read_text())["run"]["argv"]


def test_fewer_epochs_than_begun_is_refused(tmp_path, data, monkeypatch, capsys):
    run = tmp_path / "run"
    _interrupted(monkeypatch, run, data, 5)  # the 5th checkpoint: epoch 2, step 2
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "1"]) == 2
    assert "--epochs 2 or more" in _one_line_error(capsys)


def _set_argv(argv):
    return lambda meta, t: meta["extra"].__setitem__("argv", argv)


@pytest.mark.parametrize("change", [
    _set_argv("train --out /tmp/x"),
    _set_argv(["train", "--latent-dim", "abc"]),
    _set_argv(["train", "--latent-dim", "-3"]),
    _set_argv(["sample", "somewhere"]),
    lambda meta, t: meta.__setitem__("epoch", "2"),
    lambda meta, t: meta.__setitem__("step", -1),
    lambda meta, t: meta.__setitem__("history", [{"seconds": "x"}]),
    lambda meta, t: t.__setitem__("rng.cpu", t["rng.cpu"][:100]),
    lambda meta, t: t.__setitem__("sums.loss", torch.tensor(float("nan"))),
    lambda meta, t: t.__setitem__(next(k for k in t if k.startswith("model.") and k.endswith("weight")), torch.zeros(3, 3)),
], ids=["argv-a-string", "argv-bad-type", "argv-out-of-range", "argv-another-command", "epoch-a-string",
        "negative-step", "history-not-numbers", "short-rng-state", "nan-running-sum", "weights-of-another-shape"])
def test_a_damaged_checkpoint_is_one_line_and_kept(tmp_path, data, monkeypatch, capsys, change):
    run = tmp_path / "run"
    staging = _interrupted(monkeypatch, run, data)
    _edit_checkpoint(staging, change)
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    _one_line_error(capsys)
    assert (staging / "checkpoint.safetensors").exists() and not run.exists()


# -- one writer per output folder ---------------------------------------------------------------


def test_a_second_writer_of_the_same_folder_is_refused(tmp_path, data, capsys):
    out = tmp_path / "run"
    with lock_folder(out):  # another process's run, as far as flock is concerned (a separate open)
        assert _train(out, data, "--epochs", "1") == 2
        assert "being written by another vaekit process" in _one_line_error(capsys)
        assert not out.exists() and not staging_dir(out).exists()
    assert not lock_path(out).exists()  # released and removed
    assert _train(out, data, "--epochs", "1") == 0
    assert not lock_path(out).exists() and (out / "model.safetensors").exists()


def test_a_second_detector_fit_into_the_same_folder_is_refused(tmp_path, capsys):
    import pandas as pd

    pd.DataFrame(np.random.default_rng(0).normal(size=(200, 3)), columns=list("abc")).to_csv(tmp_path / "t.csv", index=False)
    fit = ["detect", "fit", str(tmp_path / "t.csv"), "--steps", "5", "--quiet", "--out", str(tmp_path / "det")]
    with lock_folder(tmp_path / "det"):
        assert main(fit) == 2
        assert "being written by another vaekit process" in _one_line_error(capsys)
        assert not (tmp_path / "det").exists()
    assert main(fit) == 0 and (tmp_path / "det" / "detector.json").exists()
    assert not lock_path(tmp_path / "det").exists()


def test_a_failed_atomic_write_leaves_no_folder_it_created(tmp_path):
    target = tmp_path / "new" / "deeper" / "scores.csv"
    with pytest.raises(RuntimeError), atomicfiles.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk trouble")
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError), atomicfiles.atomic_path(tmp_path / "kept" / "s.csv"):
        raise RuntimeError("disk trouble")
    assert (tmp_path / "kept").is_dir() and not any((tmp_path / "kept").iterdir())  # a folder the user had stays


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen([sys.executable, "-m", "vaekit", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.under_load
def test_two_trainings_started_at_once_into_one_folder(tmp_path, data):
    out = tmp_path / "same"
    procs = [_cli(*TRAIN, "--dataset", str(data), "--out", str(out), "--epochs", "2") for _ in range(2)]
    results = sorted((p.wait(timeout=600), p.stderr.read().decode().strip()) for p in procs)
    assert [rc for rc, _ in results] == [0, 2], results
    err = results[1][1]
    assert len(err.splitlines()) == 1 and ("another vaekit process" in err or "already exists" in err), err
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same", "x.npy"]  # no lock, staging or temp left


# -- the last good checkpoint survives a failed write ------------------------------------------


def test_disk_full_at_the_second_checkpoint_keeps_the_first(tmp_path, data, monkeypatch, capsys):
    import safetensors.torch

    real, calls = safetensors.torch.save_file, []

    def full_disk(tensors, filename, metadata=None):
        if "checkpoint" in Path(filename).name:
            calls.append(filename)
            if len(calls) == 2:
                Path(filename).write_bytes(b"half a checkpoint")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    run = tmp_path / "run"
    assert _train(run, data, "--epochs", "2", "--checkpoint-every", "2") == 2
    err = _one_line_error(capsys)
    assert "the disk is full" in err and f"--resume {run}" in err
    staging = staging_dir(run)
    ckpt = read_checkpoint(staging)
    assert (ckpt["epoch"], ckpt["step"]) == (1, 2)  # the first checkpoint, whole
    assert _temps(tmp_path) == [] and not run.exists()
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    assert main(["train", "--resume", str(run)]) == 0
    assert (run / "model.safetensors").exists()


def test_stale_temporary_files_are_not_published(tmp_path, data, monkeypatch):
    run = tmp_path / "run"
    staging = _interrupted(monkeypatch, run, data)
    (staging / ".checkpoint.safetensors.x1y2.tmp").write_bytes(b"left by a SIGKILL mid-checkpoint")
    assert main(["train", "--resume", str(run)]) == 0
    assert _temps(tmp_path) == []


# -- the model is published before the report --------------------------------------------------


def test_model_is_published_before_the_report_and_a_kill_there_keeps_it(tmp_path, data, monkeypatch, capsys):
    from vaekit.cli import train as cli_train

    run = tmp_path / "run"
    seen = {}

    def report_killed_midway(args, out, data):
        seen["published"] = (out / "model.safetensors").exists() and not staging_dir(out).exists()
        with atomicfiles.atomic_path(out / "report.html") as tmp:
            seen["temp_outside"] = tmp.parent != out
            tmp.write_text("<html>half")
            raise KeyboardInterrupt  # Ctrl-C (or SIGTERM) while the report is drawn

    monkeypatch.setattr(cli_train, "_write_report", report_killed_midway)
    assert main([*[a for a in TRAIN if a != "--no-report"], "--dataset", str(data), "--out", str(run), "--epochs", "1"]) == 130
    assert seen == {"published": True, "temp_outside": True}
    import vaekit

    assert vaekit.load(run).transform(np.load(data)[:4]).shape == (4, 2)  # a usable model
    assert _temps(tmp_path) == [] and not finishing_dir(run).exists() and not (run / "report.html").exists()
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    err = _one_line_error(capsys)
    assert "already trained" in err and f"vaekit report {run}" in err


def test_resume_after_a_sigkill_while_the_report_was_drawn_says_so(tmp_path, data, capsys):
    run = tmp_path / "run"
    assert _train(run, data, "--epochs", "1") == 0
    finishing_dir(run).mkdir()  # what a SIGKILL during the report leaves
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    assert "report was not finished" in _one_line_error(capsys)


def test_a_trained_model_left_in_staging_is_published_by_resume(tmp_path, data, monkeypatch, capsys):
    run = tmp_path / "run"

    def killed(staging, out):
        raise KeyboardInterrupt  # after the checkpoint was dropped, before the rename

    monkeypatch.setattr(atomicfiles, "publish_dir", killed)
    assert _train(run, data, "--epochs", "1", "--checkpoint-every", "2") == 130
    assert "the trained model is kept" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["train", "--resume", str(run)]) == 0
    assert (run / "model.safetensors").exists() and not staging_dir(run).exists()


# -- signals: temporary files go, resumable state stays ------------------------------------------


def test_sigterm_inside_an_atomic_write_removes_its_temporary_file(tmp_path):
    if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        pytest.skip("the test runner handles SIGTERM itself")
    with pytest.raises(SystemExit) as exc, atomicfiles.cleanup_on_signals(), atomicfiles.atomic_path(tmp_path / "scores.csv") as tmp:
        tmp.write_text("id,score\n")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    assert exc.value.code == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is gone after the command


@pytest.mark.slow
@pytest.mark.under_load
def test_sigterm_during_training_keeps_the_checkpoint_and_no_temporary_file(tmp_path):
    run = tmp_path / "run"
    proc = _cli("train", "--out", str(run), "--limit", "3000", "--epochs", "20", "--no-figures", "--no-report",
                "--quiet", "--checkpoint-every", "3", "--threads", "1")
    ckpt = staging_dir(run) / "checkpoint.safetensors"
    deadline = time.time() + 600
    while not ckpt.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=600) == 128 + signal.SIGTERM
    err = proc.stderr.read().decode()
    assert f"--resume {run}" in err and "Traceback" not in err, err
    read_checkpoint(staging_dir(run))
    assert _temps(tmp_path) == [] and not lock_path(run).exists()


_SCORE_KILLED = """
import contextlib, os, signal, sys
signal.signal(signal.SIGHUP, signal.SIG_DFL)  # as in a terminal: under nohup SIGHUP is ignored, and vaekit respects that
import vaekit.atomicfiles as f
real = f.atomic_path

@contextlib.contextmanager
def killed_while_writing(path):
    with real(path) as tmp:
        yield tmp
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))  # the rows are written, the rename not yet done

f.atomic_path = killed_while_writing
from vaekit.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_detect_score_leaves_no_temporary_file_on_a_signal(tmp_path, sig):
    rows = np.random.default_rng(0).normal(size=(200, 4))
    table = tmp_path / "t.csv"
    table.write_text("a,b,c,d\n" + "\n".join(",".join(f"{v:.4f}" for v in r) for r in rows) + "\n")
    det = tmp_path / "det"
    assert main(["detect", "fit", str(table), "--out", str(det), "--steps", "20", "--quiet"]) == 0
    out = tmp_path / "scores.csv"
    proc = subprocess.run([sys.executable, "-c", _SCORE_KILLED, sig, "detect", "score", str(det), str(table),
                           "--out", str(out), "--quiet"], env={**os.environ, "PYTHONPATH": SRC},
                          capture_output=True, timeout=600)
    assert proc.returncode == 128 + getattr(signal, sig), proc.stderr.decode()
    assert not out.exists() and _temps(tmp_path) == []
