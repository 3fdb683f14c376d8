"""The `vaekit` command end to end on small data: every model trains into a run folder, every
command reads it back, and every bad input gives one line, exit code 2 and nothing half-written."""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vaekit.cli import MODELS, main

SRC = Path(__file__).resolve().parents[1] / "src"
SMALL = ["--dataset", "embedded", "--limit", "300", "--epochs", "2", "--batch-size", "50", "--seed", "0", "--device", "cpu", "--quiet", "--no-report"]
PER_MODEL = {
    "ae": ["--hidden", "32", "--latent-dim", "4", "--no-figures"],
    "sparse-ae": ["--hidden", "32", "--latent-dim", "4", "--sparsity", "kl", "--no-figures"],
    "denoising-ae": ["--hidden", "32", "--latent-dim", "4", "--noise", "salt-and-pepper", "--no-figures"],
    "vae": ["--hidden", "32", "--latent-dim", "4"],
    "conv-vae": ["--latent-dim", "4", "--no-figures"],
    "cvae": ["--hidden", "32", "--latent-dim", "2"],
    "vq-vae": ["--latent-dim", "4", "--codebook-size", "16", "--no-figures"],  # its networks are fixed convolutions: no --hidden
}
# A preset registered later trains with the small MLP settings (its own parameters stay as its preset sets them).
SMALL_NET = ["--hidden", "32", "--latent-dim", "4", "--no-figures"]


def _per_model(model: str) -> list[str]:
    return PER_MODEL.get(model, SMALL_NET)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One trained run folder per --model choice."""
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for model in MODELS:
        run = base / model
        assert main(["train", "--model", model, "--out", str(run), *SMALL, *_per_model(model)]) == 0
        out[model] = run
    return out


def _check_error(capsys, argv, *, match: str | None = None) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaekit: error: "), err
    assert "Traceback" not in err
    if match:
        assert match in lines[0], lines[0]
    return lines[0]


def _no_leftovers(parent: Path, name: str) -> None:
    assert not (parent / name).exists()
    assert not [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")], list(parent.iterdir())


# -- train writes a complete run folder -------------------------------------------------------------


@pytest.mark.parametrize("model", list(MODELS))
def test_train_writes_a_run_folder(runs, model):
    run = runs[model]
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "model.safetensors", "metrics.csv", "train.log"} <= names
    assert not [n for n in names if n.startswith(".")]  # no temp files
    if model in ("vae", "cvae"):
        assert {"samples.png", "reconstructions.png"} <= names
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(np.isfinite(float(r["train_loss"])) and np.isfinite(float(r["val_loss"])) for r in rows)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["run"]["dataset"] == "embedded" and cfg["run"]["classes"] == [str(d) for d in range(10)]
    assert "--model " + model in cfg["run"]["command"]  # the command that made the run, not the test runner's
    assert cfg["model"]["latent_dim"] == int(_per_model(model)[_per_model(model).index("--latent-dim") + 1])
    log = (run / "train.log").read_text()
    assert "epoch 2/2" in log and "data: embedded" in log


def test_train_options_reach_the_model(runs):
    cfg = json.loads((runs["sparse-ae"] / "config.json").read_text())
    assert cfg["model"]["sparsity"]["name"] == "kl" and cfg["model"]["name"] == "ae"
    cfg = json.loads((runs["denoising-ae"] / "config.json").read_text())
    assert cfg["model"]["noise"]["name"] == "salt-and-pepper"
    cfg = json.loads((runs["conv-vae"] / "config.json").read_text())
    assert cfg["model"]["architecture"] == "conv" and cfg["model"]["input_shape"] == [1, 28, 28]
    cfg = json.loads((runs["cvae"] / "config.json").read_text())
    assert cfg["model"]["n_classes"] == 10


# -- the commands that read a run ------------------------------------------------------------------


def test_sample(runs, tmp_path, capsys):
    assert main(["sample", str(runs["vae"]), "-n", "6", "--out", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (6, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    assert main(["sample", str(runs["vae"]), "-n", "6", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0
    assert main(["sample", str(runs["cvae"]), "-n", "5", "--label", "7", "--out", str(tmp_path / "c.npy")]) == 0
    assert np.load(tmp_path / "c.npy").shape == (5, 1, 28, 28)
    # the same seed gives the same samples
    assert main(["sample", str(runs["vae"]), "-n", "6", "--out", str(tmp_path / "t.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), s)


@pytest.mark.parametrize("argv, match", [
    (["sample", "{cvae}", "-n", "4"], "pass label=K"),
    (["sample", "{cvae}", "-n", "4", "--label", "12"], "not a class"),
    (["sample", "{ae}", "-n", "4"], "no prior"),
    (["sample", "{vae}", "-n", "4", "--label", "3"], "conditional"),
    (["sample", "{vae}", "-n", "4", "--out-ext", ".txt"], ".npy or .csv"),
])
def test_sample_errors(runs, tmp_path, capsys, argv, match):
    ext = ".npy"
    if "--out-ext" in argv:
        ext = argv[argv.index("--out-ext") + 1]
        argv = argv[: argv.index("--out-ext")]
    argv = [a.format(**{k: str(v) for k, v in runs.items()}) for a in argv]
    _check_error(capsys, [*argv, "--out", str(tmp_path / f"x{ext}")], match=match)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("model", ["vae", "ae", "conv-vae", "cvae"])
def test_reconstruct_encode_evaluate(runs, tmp_path, capsys, model):
    run = str(runs[model])
    assert main(["reconstruct", run, "--limit", "50", "-n", "4", "--out", str(tmp_path / "r.npy")]) == 0
    assert np.load(tmp_path / "r.npy").shape == (4, 1, 28, 28)
    assert main(["reconstruct", run, "--limit", "50", "-n", "4", "--out", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").exists()
    assert main(["encode", run, "--limit", "30", "--out", str(tmp_path / "z.npy")]) == 0
    cfg = json.loads((runs[model] / "config.json").read_text())
    assert np.load(tmp_path / "z.npy").shape == (30, cfg["model"]["latent_dim"])
    assert main(["encode", run, "--limit", "30", "--out", str(tmp_path / "z.csv")]) == 0
    with open(tmp_path / "z.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "z0" and len(rows) == 31
    capsys.readouterr()
    assert main(["evaluate", run, "--limit", "100", "--k", "10", "--no-probe", "--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["n"] == 100 and result["split"] == "test" and "100 examples" in out
    numbers = [v for v in result.values() if isinstance(v, float)]
    assert numbers and all(np.isfinite(numbers))


def test_overwrite_replaces_a_run(runs, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "old.txt").write_text("old")
    argv = ["train", "--model", "ae", "--out", str(run), *SMALL, *PER_MODEL["ae"]]
    assert main(argv + ["--overwrite"]) == 0
    assert not (run / "old.txt").exists() and (run / "model.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# -- bad input: one line, exit code 2, nothing left behind -----------------------------------------


@pytest.fixture
def bad_files(tmp_path):
    rng = np.random.default_rng(0)
    files = tmp_path / "files"
    files.mkdir()
    np.save(files / "pixels255.npy", np.round(rng.random((100, 784)) * 255).astype(np.float32))
    np.save(files / "wide.npy", rng.random((100, 28, 30), dtype=np.float32))
    idx = files / "idx"
    idx.mkdir()
    with gzip.open(idx / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x03" + b"\x00\x00\x00\x10" + b"garbage, not 16 images")
    with gzip.open(idx / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01\x00\x00\x00\x10" + bytes(range(10)) * 2)
    return files


@pytest.mark.parametrize("extra, match", [
    (["--dataset", "{files}/missing.npy"], "not found"),
    (["--dataset", "mnist", "--data-dir", "{files}/idx"], "train-images-idx3-ubyte"),
    (["--dataset", "{files}/pixels255.npy"], "[0, 1]"),
    (["--dataset", "{files}/wide.npy", "--model", "conv-vae"], "28x30"),
    (["--batch-size", "1000"], "--batch-size 1000 is larger"),
    (["--latent-dim", "0"], "--latent-dim must be an integer >= 1, got 0"),
    (["--model", "ae", "--beta", "2"], "--beta does not apply"),
    (["--dataset", "{files}/pixels255.npy", "--model", "cvae"], "labels"),
    (["--device", "tpu"], "unknown device"),
])
def test_train_bad_input(tmp_path, bad_files, capsys, extra, match):
    extra = [a.format(files=bad_files) for a in extra]
    out = tmp_path / "run"
    argv = ["train", "--out", str(out), "--limit", "300", "--epochs", "1", "--hidden", "16", "--latent-dim", "2", "--quiet",
            "--no-figures", "--no-report", "--device", "cpu", *extra]
    _check_error(capsys, argv, match=match)
    _no_leftovers(tmp_path, "run")


def test_existing_out_is_kept_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    _check_error(capsys, ["train", "--out", str(out), "--epochs", "1", "--quiet"], match="--overwrite")
    assert [p.name for p in tmp_path.iterdir()] == ["run"] and (out / "precious.txt").read_text() == "keep me"
    assert [p.name for p in out.iterdir()] == ["precious.txt"]


def test_commands_on_a_missing_or_broken_run(tmp_path, capsys):
    _check_error(capsys, ["sample", str(tmp_path / "nope"), "--out", str(tmp_path / "s.npy")], match="does not exist")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{")
    for cmd in (["encode", str(broken), "--out", str(tmp_path / "z.npy")], ["evaluate", str(broken)]):
        _check_error(capsys, cmd, match="not valid JSON")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]


def _subprocess(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-m", "vaekit.cli", *argv], capture_output=True, text=True, env=env, timeout=120)


def test_console_exit_code_and_one_line_error(tmp_path):
    r = _subprocess("train", "--out", str(tmp_path / "run"), "--latent-dim", "0")
    assert r.returncode == 2
    assert r.stderr.startswith("vaekit: error: --latent-dim must be an integer >= 1, got 0") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "run").exists()
    r = _subprocess("train", "--out", str(tmp_path / "run"), "--epochs", "0")  # argparse's own check
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--epochs" in r.stderr


# -- help --------------------------------------------------------------------------------------------


def test_help_is_fast_and_lists_commands():
    r = _subprocess("--help")
    assert r.returncode == 0
    for cmd in ("train", "sample", "reconstruct", "encode", "evaluate"):
        assert cmd in r.stdout
    # --help must not pay for torch
    code = "import sys; from vaekit.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SRC)})
    assert r.stdout.strip() == "False"


@pytest.mark.parametrize("cmd", ["train", "sample", "reconstruct", "encode", "evaluate"])
def test_each_subcommand_help_mentions_defaults(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "default" in out and "--out" in out or cmd == "evaluate"
    if cmd == "train":
        for flag in ("--model", "--latent-dim", "--likelihood", "--posterior", "--epochs", "--batch-size", "--overwrite"):
            assert flag in out
        text = " ".join(re.sub(r"-\n\s+", "-", out).split())  # argparse may wrap a line after a hyphen (conv-/vae)
        assert "examples per step (default: 128 for VAEs, 64 for autoencoders, 64 for VQ-VAEs; 32 for --model conv-vae)" in text
        assert "size of the code z (default: 20 for VAEs, 32 for autoencoders, 16 for VQ-VAEs; 100 for --model conv-vae, 4 for --model cvae)" in text
        assert "(default: vae)" in text


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_preset_expands_and_explicit_options_win():
    from vaekit.cli import build_parser, expand_preset, presets

    argv = expand_preset(["train", "--preset", "mnist-nll", "--latent-dim", "8", "--out", "r"])
    args = build_parser().parse_args(argv)
    assert args.dataset == "mnist" and args.binarize == "dynamic" and args.max_minutes == 40
    assert args.latent_dim == 8  # given after the preset, so it wins
    assert argv[1 : 1 + len(presets()["mnist-nll"])] == presets()["mnist-nll"]
    assert expand_preset(["sample", "--preset", "x"]) == ["sample", "--preset", "x"]


def test_max_minutes_stops_training_after_the_budget(tmp_path):
    import numpy as np

    from vaekit import VAE

    X = np.random.default_rng(0).random((256, 10)).astype(np.float32)
    # A budget of a few milliseconds is spent by the first epoch: training stops there.
    est = VAE(hidden=8, latent_dim=2, batch_size=32, epochs=50, max_minutes=1e-6, val_fraction=0).fit(X)
    assert len(est.history_) == 1
    est = VAE(hidden=8, latent_dim=2, batch_size=32, epochs=3, max_minutes=0, val_fraction=0).fit(X)
    assert len(est.history_) == 3
