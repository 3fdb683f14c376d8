"""Crash safety: a run killed with SIGKILL mid-epoch resumes to bitwise the same weights, a
diverging run stops with a clear message and keeps its last checkpoint, and checkpoint files are
never unpickled."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vaekit.checkpoint import read_checkpoint
from vaekit.cli import main
from vaekit.errors import ModelFileError

# --threads pinned: the number of threads changes how float sums are split, so bitwise equality
# is promised for the same count (README); the test process's own count may have been changed.
ARGS = ["--limit", "3000", "--epochs", "3", "--no-figures", "--no-report", "--quiet", "--seed", "3",
        "--mc-samples", "2", "--binarize", "dynamic", "--batch-size", "64", "--threads", "2"]


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.Popen([sys.executable, "-m", "vaekit", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _position(staging: Path) -> tuple[int, int]:
    """(epoch, step) of the checkpoint in ``staging``, (0, 0) while there is none; reads only its metadata."""
    from safetensors import safe_open

    try:
        with safe_open(str(staging / "checkpoint.safetensors"), framework="pt") as f:
            meta = json.loads(f.metadata()["vaekit"])
    except Exception:  # noqa: BLE001 - not written yet (the rename is atomic, so never half-written)
        return (0, 0)
    return meta["epoch"], meta["step"]


@pytest.mark.slow
@pytest.mark.under_load
def test_sigkill_mid_epoch_then_resume_gives_bitwise_identical_weights(tmp_path):
    # The reference: the same run, never interrupted.
    assert main(["train", "--out", str(tmp_path / "ref"), *ARGS]) == 0

    run = tmp_path / "run"
    staging = tmp_path / ".run.partial"
    proc = _cli("--out", str(run), *ARGS, "--checkpoint-every", "5")
    # Kill as soon as a checkpoint from inside epoch 2 (or later) is on disk. Waiting on the
    # checkpoint itself, not on a clock, keeps this right under load: a fixed sleep after the first
    # epoch's metrics.csv could land before the epoch-end checkpoint was written (another process
    # holding the CPU), and the resumed run then started from inside epoch 1.
    deadline = time.time() + 900  # generous: two busy processes beside it slow the run several-fold
    while _position(staging) < (2, 1):
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()}"
        assert time.time() < deadline, "training did not reach a checkpoint inside epoch 2"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=600)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed; make it longer"
    assert not run.exists()
    ckpt = read_checkpoint(staging)
    assert (ckpt["epoch"], ckpt["step"]) >= (2, 1)  # it stopped inside epoch 2 or later, mid-epoch or at an epoch's end

    assert main(["train", "--resume", str(run)]) == 0
    a = load_file(str(tmp_path / "ref" / "model.safetensors"))
    b = load_file(str(run / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not staging.exists() and not (run / "checkpoint.safetensors").exists()
    ref_rows = (tmp_path / "ref" / "metrics.csv").read_text().splitlines()
    rows = (run / "metrics.csv").read_text().splitlines()
    def strip(lines):  # drop the wall time column
        return [",".join(c for i, c in enumerate(line.split(",")) if i != 1) for line in lines]

    assert strip(rows) == strip(ref_rows)


def test_resume_refuses_a_finished_run_and_a_missing_one(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "done"), "--limit", "600", "--epochs", "1", "--no-figures", "--quiet"]) == 0
    assert main(["train", "--resume", str(tmp_path / "done")]) == 2
    assert "already finished" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "never")]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_nan_loss_stops_with_step_and_keeps_last_checkpoint(tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(512, 6)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, X)
    out = tmp_path / "run"
    rc = main(["train", "--out", str(out), "--dataset", str(path), "--model", "ae", "--likelihood", "gaussian",
               "--optimizer", "sgd", "--lr", "1", "--epochs", "3", "--batch-size", "32", "--checkpoint-every", "1", "--quiet",
               "--no-figures", "--val-fraction", "0"])
    err = capsys.readouterr().err
    assert rc == 2
    assert re.search(r"became (nan|inf) at epoch 1, step \d+", err) and "--lr" in err and "--resume" in err
    assert not out.exists()
    staging = tmp_path / ".run.partial"
    ckpt = read_checkpoint(staging)  # the last good checkpoint is still readable
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_a_pickle_named_like_a_checkpoint_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import pickle

    (tmp_path / "checkpoint.safetensors").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelFileError, match="never loads pickles"):
        read_checkpoint(tmp_path)
    assert not marker.exists()
