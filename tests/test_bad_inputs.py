"""Every bad input the docs list (docs/bad-inputs.md): one line on stderr, exit code 2, nothing
half-written. `python scripts/bad_input_table.py` runs the same cases and writes that table."""

from __future__ import annotations

import gzip
import json
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from vaekit.cli import main

TRAIN = ["train", "--epochs", "1", "--quiet", "--no-figures", "--no-report"]


def _idx(path: Path, magic_type: int, dims: list[int], payload: bytes, gz: bool = True) -> None:
    raw = struct.pack(">HBB", 0, magic_type, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + payload
    path.write_bytes(gzip.compress(raw) if gz else raw)


def _mnist_dir(tmp: Path, images: bytes | None = None, labels: bytes | None = None) -> Path:
    d = tmp / "mnist"
    d.mkdir(exist_ok=True)
    img = tmp / "img.gz"
    _idx(img, 0x08, [20, 28, 28], bytes(20 * 784))
    lab = tmp / "lab.gz"
    _idx(lab, 0x08, [20], bytes(20))
    for split in ("train", "t10k"):
        (d / f"{split}-images-idx3-ubyte.gz").write_bytes(images if images is not None else img.read_bytes())
        (d / f"{split}-labels-idx1-ubyte.gz").write_bytes(labels if labels is not None else lab.read_bytes())
    return d


def _run(tmp: Path) -> Path:
    run = tmp / "trained"
    if not run.exists():
        np.save(tmp / "ok.npy", np.random.default_rng(0).random((200, 6)).astype(np.float32))
        assert main([*TRAIN, "--dataset", str(tmp / "ok.npy"), "--out", str(run), "--batch-size", "32"]) == 0
    return run


@dataclass
class Case:
    name: str
    make: Callable[[Path], list[str]]  # builds the files in tmp and returns the CLI arguments


def _csv(tmp: Path, text: str, name: str = "t.csv") -> str:
    (tmp / name).write_text(text)
    return str(tmp / name)


def _npy(tmp: Path, arr: np.ndarray, name: str = "a.npy") -> str:
    np.save(tmp / name, arr)
    return str(tmp / name)


def _mutate_config(tmp: Path, change: Callable[[dict], None]) -> list[str]:
    import shutil

    run = _run(tmp)
    bad = tmp / "edited"
    shutil.copytree(run, bad)
    cfg = json.loads((bad / "config.json").read_text())
    change(cfg)
    (bad / "config.json").write_text(json.dumps(cfg))
    return ["encode", str(bad), "--dataset", str(tmp / "ok.npy"), "--out", str(tmp / "out" / "z.npy")]


def _folder(tmp: Path, sizes: list[tuple[int, int]], bad: bool = False) -> Path:
    """A folder of grey PNGs of the given (height, width); ``bad`` adds a text file named .png."""
    from PIL import Image

    d = tmp / "images"
    d.mkdir()
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(np.full((h, w), 100, np.uint8)).save(d / f"{i}.png")
    if bad:
        (d / "notes.png").write_text("not an image")
    return d


def _existing_run(tmp: Path) -> Path:
    (tmp / "out").mkdir()
    (tmp / "out" / "keep.txt").write_text("mine")
    return tmp / "out"


def _pickle_weights(tmp: Path) -> list[str]:
    import shutil

    run = _run(tmp)
    bad = tmp / "pickled"
    shutil.copytree(run, bad)

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {tmp / 'pwned'}",))

    (bad / "model.safetensors").write_bytes(pickle.dumps(Evil()))
    return ["sample", str(bad), "--out", str(tmp / "out" / "s.npy")]


def _wrong_shape_weights(tmp: Path) -> list[str]:
    return _mutate_config(tmp, lambda c: c["model"].update(latent_dim=c["model"]["latent_dim"] + 1))


def _raw_config(tmp: Path, edit: Callable[[str], str]) -> list[str]:
    """A copy of the trained run whose config.json text is rewritten (for what json.dumps cannot write)."""
    args = _mutate_config(tmp, lambda c: None)
    cfg = tmp / "edited" / "config.json"
    cfg.write_text(edit(cfg.read_text()))
    return args


def _nan_weight(tmp: Path) -> list[str]:
    from safetensors.torch import load_file, save_file

    args = _mutate_config(tmp, lambda c: None)
    weights = tmp / "edited" / "model.safetensors"
    state = load_file(str(weights))
    state[sorted(state)[0]][0] = float("nan")
    save_file(state, str(weights))
    return args


def _run_trained_on(tmp: Path, dataset: str) -> list[str]:
    """A copy of the trained run whose config.json says it was trained on ``dataset``; no --dataset given."""
    args = _mutate_config(tmp, lambda c: c.setdefault("run", {}).update(dataset=dataset))
    return args[: args.index("--dataset")] + args[args.index("--dataset") + 2 :]


def _png_header(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb for a decoder)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b""))


def _bomb_folder(tmp: Path) -> Path:
    d = _folder(tmp, [(8, 8)] * 3)
    _png_header(d / "huge.png", 30000, 30000)
    return d


def _wide_csv(tmp: Path) -> str:
    n = 1_000_000
    return _csv(tmp, ",".join(f"c{i}" for i in range(n)) + "\n" + ",".join("0" for _ in range(n)) + "\n", "wide.csv")


def _partial(tmp: Path, edit: Callable[[dict], None] | None = None) -> Path:
    """A run stopped (as by Ctrl-C) right after its first checkpoint: ``.run.partial`` beside ``run``.
    ``edit(tensors)`` damages the checkpoint's tensors."""
    import contextlib
    import io

    from safetensors import safe_open
    from safetensors.torch import save_file

    from vaekit import checkpoint

    run, real = tmp / "run", checkpoint.Checkpointer.save

    def once(self, *a, **k):
        real(self, *a, **k)
        raise KeyboardInterrupt

    checkpoint.Checkpointer.save = once
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # its "interrupted" lines are not the case's output
            rc = main([*TRAIN, "--dataset", _npy(tmp, np.random.default_rng(0).random((128, 6)).astype(np.float32), "p.npy"),
                       "--out", str(run), "--epochs", "2", "--batch-size", "32", "--checkpoint-every", "2"])
    finally:
        checkpoint.Checkpointer.save = real
    assert rc == 130
    if edit is not None:
        path = tmp / ".run.partial" / "checkpoint.safetensors"
        with safe_open(str(path), framework="pt") as f:
            meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
        edit(tensors)
        save_file(tensors, str(path), metadata=meta)
    return run


def _partial_over_a_folder(tmp: Path) -> Path:
    """A resumable run whose own name is taken meanwhile by a folder holding a file."""
    run = _partial(tmp)
    run.mkdir()
    (run / "keep.txt").write_text("mine")
    return run


def _locked(out: Path) -> Path:
    """``out``, locked as by another `vaekit train` writing it (held while the case runs)."""
    from vaekit.atomicfiles import lock_folder

    held = lock_folder(out)
    held.__enter__()
    _HELD.append(held)
    return out


def _score_nan_without_impute(tmp: Path) -> list[str]:
    """A detector fitted without --impute, asked to score a table with a NaN in its second chunk."""
    rows = np.random.default_rng(0).normal(size=(60, 3))
    np.savetxt(tmp / "fit.csv", rows, delimiter=",", header="a,b,c", comments="")
    assert main(["detect", "fit", str(tmp / "fit.csv"), "--out", str(tmp / "det"), "--steps", "2", "--quiet"]) == 0
    rows[45, 1] = np.nan
    np.savetxt(tmp / "new.csv", rows, delimiter=",", header="a,b,c", comments="")
    return ["detect", "score", str(tmp / "det"), str(tmp / "new.csv"), "--chunk-rows", "20", "--out", str(tmp / "s.csv")]


def _score_empty_category_without_impute(tmp: Path) -> list[str]:
    """A detector with a categorical column, fitted without --impute, asked to score a row with no category."""
    rng = np.random.default_rng(0)
    rows = [f"{a:.4f},{b:.4f},{c}" for a, b, c in zip(rng.normal(size=60), rng.normal(size=60), rng.choice(["x", "y"], 60))]
    _csv(tmp, "a,b,c\n" + "\n".join(rows) + "\n", "fit.csv")
    assert main(["detect", "fit", str(tmp / "fit.csv"), "--categorical", "c", "--out", str(tmp / "det"), "--steps", "2", "--quiet"]) == 0
    rows[45] = rows[45].rsplit(",", 1)[0] + ","
    _csv(tmp, "a,b,c\n" + "\n".join(rows) + "\n", "new.csv")
    return ["detect", "score", str(tmp / "det"), str(tmp / "new.csv"), "--chunk-rows", "20", "--out", str(tmp / "s.csv")]


CASES = [
    Case("missing data file", lambda t: [*TRAIN, "--dataset", str(t / "nope.csv"), "--out", str(t / "out")]),
    Case("a folder where a data file belongs", lambda t: [*TRAIN, "--dataset", str((t / "d.csv").mkdir() or t / "d.csv"), "--out", str(t / "out")]),
    Case("unknown file type", lambda t: [*TRAIN, "--dataset", _csv(t, "x", "data.txt"), "--out", str(t / "out")]),
    Case("truncated gzip IDX", lambda t: [*TRAIN, "--dataset", "mnist", "--data-dir", str(_mnist_dir(t, images=gzip.compress(bytes(5000))[:40])), "--out", str(t / "out")]),
    Case("IDX with a bad magic number", lambda t: [*TRAIN, "--dataset", "mnist", "--data-dir", str(_mnist_dir(t, images=gzip.compress(b"\x12\x34" + bytes(3000)))), "--out", str(t / "out")]),
    Case("IDX whose header count does not match its bytes", lambda t: [*TRAIN, "--dataset", "mnist", "--data-dir", str(_mnist_dir(t, images=gzip.compress(struct.pack(">HBBIII", 0, 8, 3, 50, 28, 28) + bytes(20 * 784)))), "--out", str(t / "out")]),
    Case("images and labels of different counts", lambda t: [*TRAIN, "--dataset", "mnist", "--data-dir", str(_mnist_dir(t, labels=gzip.compress(struct.pack(">HBBI", 0, 8, 1, 7) + bytes(7)))), "--out", str(t / "out")]),
    Case("CSV with a non-numeric cell", lambda t: [*TRAIN, "--dataset", _csv(t, "a,b\n1,2\n3,hello\n"), "--out", str(t / "out")]),
    Case("CSV with ragged rows", lambda t: [*TRAIN, "--dataset", _csv(t, "a,b\n1,2\n3,4,5\n"), "--out", str(t / "out")]),
    Case("NaN in the data", lambda t: [*TRAIN, "--dataset", _csv(t, "a,b\n0.1,0.2\nnan,0.3\n"), "--out", str(t / "out")]),
    Case("infinite value in a .npy", lambda t: [*TRAIN, "--dataset", _npy(t, np.array([[0.1, np.inf], [0.2, 0.3]], np.float32)), "--out", str(t / "out")]),
    Case("empty data (header only)", lambda t: [*TRAIN, "--dataset", _csv(t, "a,b\n"), "--out", str(t / "out")]),
    Case("label column that does not exist", lambda t: [*TRAIN, "--dataset", _csv(t, "a,b\n0.1,0.2\n0.3,0.4\n"), "--label-column", "y", "--out", str(t / "out")]),
    Case("pixel values outside [0, 1] for a Bernoulli likelihood", lambda t: [*TRAIN, "--dataset", _npy(t, np.random.default_rng(0).integers(0, 256, (100, 16)).astype(np.float32)), "--out", str(t / "out")]),
    Case("wrong image size for the convolutional model", lambda t: [*TRAIN, "--model", "conv-vae", "--dataset", _npy(t, np.random.default_rng(0).random((50, 1, 28, 30)).astype(np.float32)), "--out", str(t / "out")]),
    Case("batch size larger than the data", lambda t: [*TRAIN, "--dataset", _npy(t, np.random.default_rng(0).random((40, 5)).astype(np.float32)), "--batch-size", "500", "--out", str(t / "out")]),
    Case("latent dimension of 0", lambda t: [*TRAIN, "--latent-dim", "0", "--out", str(t / "out")]),
    Case("an autoregressive decoder on the convolutional model", lambda t: [*TRAIN, "--model", "conv-vae", "--likelihood", "autoregressive-bernoulli", "--out", str(t / "out")]),
    Case("a VampPrior on a conditional model", lambda t: [*TRAIN, "--model", "cvae", "--prior", "vamp", "--out", str(t / "out")]),
    Case("a VAE-only option on an autoencoder", lambda t: [*TRAIN, "--model", "ae", "--prior", "vamp", "--out", str(t / "out")]),
    Case("a negative --val-nll-every", lambda t: [*TRAIN, "--val-nll-every", "-1", "--out", str(t / "out")]),
    Case("run folder that already exists", lambda t: [*TRAIN, "--out", str(_existing_run(t))]),
    Case("cvae on data without labels", lambda t: [*TRAIN, "--model", "cvae", "--dataset", _npy(t, np.random.default_rng(0).random((60, 4)).astype(np.float32)), "--out", str(t / "out")]),
    Case("--device cuda on a machine without a GPU", lambda t: [*TRAIN, "--device", "cuda", "--out", str(t / "out")] if not __import__("torch").cuda.is_available() else pytest.skip("a GPU is present")),
    Case("data of the wrong dimension for a trained model", lambda t: ["encode", str(_run(t)), "--dataset", _npy(t, np.random.default_rng(0).random((10, 9)).astype(np.float32), "nine.npy"), "--out", str(t / "out" / "z.npy")]),
    Case("model folder that does not exist", lambda t: ["sample", str(t / "no-run"), "--out", str(t / "out" / "s.png")]),
    Case("a pickle named model.safetensors", _pickle_weights),
    Case("config.json with an unknown model type", lambda t: _mutate_config(t, lambda c: c["model"].update(kind="gan"))),
    Case("config.json with a missing field", lambda t: _mutate_config(t, lambda c: c.pop("model"))),
    Case("weights whose shapes do not match the config", _wrong_shape_weights),
    Case("output file of an unknown type", lambda t: ["encode", str(_run(t)), "--out", str(t / "out" / "z.txt")]),
    Case("--resume of a run that never started", lambda t: ["train", "--resume", str(t / "never")]),
    Case("--resume with a flag that would change the run", lambda t: ["train", "--resume", str(_partial(t)), "--lr", "0.5"]),
    Case("--resume with another --out", lambda t: ["train", "--resume", str(_partial(t)), "--out", str(t / "elsewhere")]),
    Case("--resume with fewer --epochs than begun", lambda t: ["train", "--resume", str(_partial(t)), "--epochs", "0"]),
    Case("--resume of a checkpoint with a short random state", lambda t: ["train", "--resume", str(_partial(t, lambda ts: ts.update({"rng.cpu": ts["rng.cpu"][:100]})))]),
    Case("--resume onto a folder that exists, without --overwrite", lambda t: ["train", "--resume", str(_partial_over_a_folder(t))]),
    Case("a run folder another vaekit process is writing", lambda t: [*TRAIN, "--out", str(_locked(t / "out"))]),
    Case("a misspelt option", lambda t: ["train", "--epocs", "2", "--out", str(t / "out")]),
    Case("a model that does not exist", lambda t: ["train", "--model", "gan", "--out", str(t / "out")]),
    Case("a real-valued table with the default Bernoulli likelihood", lambda t: [*TRAIN, "--dataset", _csv(t, "a,b\n1.5,-2\n3,4\n0.5,7\n"), "--batch-size", "2", "--out", str(t / "out")]),
    Case("a config file with an unknown option", lambda t: ["train", "--config", _csv(t, "latent_dim = 2\nepocs = 3\n", "c.toml"), "--out", str(t / "out")]),
    Case("a config file that is not TOML", lambda t: ["train", "--config", _csv(t, "latent_dim: 2\n", "c.toml"), "--out", str(t / "out")]),
    Case("a preset that does not exist", lambda t: ["train", "--preset", "mnist-fast", "--out", str(t / "out")]),
    Case("a folder with no images", lambda t: [*TRAIN, "--dataset", str(_folder(t, [])), "--out", str(t / "out")]),
    Case("a folder of images of different sizes", lambda t: [*TRAIN, "--dataset", str(_folder(t, [(8, 8), (10, 12)])), "--out", str(t / "out")]),
    Case("an unreadable image with --strict", lambda t: [*TRAIN, "--strict", "--dataset", str(_folder(t, [(8, 8)], bad=True)), "--out", str(t / "out")]),
    Case("a static binarization of a streamed folder", lambda t: [*TRAIN, "--stream", "--binarize", "static", "--dataset", str(_folder(t, [(8, 8)] * 12)), "--out", str(t / "out")]),
    Case("--stream for data that is not a folder", lambda t: [*TRAIN, "--stream", "--out", str(t / "out")]),
    Case("a validation split that is the training split", lambda t: [*TRAIN, "--dataset", "binarized-mnist", "--split", "valid", "--val-split", "valid", "--out", str(t / "out")]),
    Case("a validation split the dataset does not have", lambda t: [*TRAIN, "--val-split", "valid", "--out", str(t / "out")]),
    Case("--image-size for data that is not a folder", lambda t: [*TRAIN, "--image-size", "32", "--out", str(t / "out")]),
    Case("comparing runs without --out", lambda t: ["report", str(_run(t)), str(_run(t))]),
    Case("a comparison page not named .html", lambda t: ["report", str(_run(t)), str(_run(t)), "--out", str(t / "out" / "compare.png")]),
    Case("a comparison with a folder that is not a run", lambda t: ["report", str(_run(t)), str(t / "no-run"), "--out", str(t / "out" / "c.html")]),
    Case("samples written as .jpg", lambda t: ["sample", str(_run(t)), "--out", str(t / "out" / "s.jpg")]),
    Case("explore: a model folder that does not exist", lambda t: ["explore", str(t / "no-run"), "--no-browser", "--port", "0"]),
    Case("explore: data of another shape than the model's", lambda t: ["explore", str(_run(t)), "--dataset", _npy(t, np.random.default_rng(0).random((10, 9)).astype(np.float32), "nine.npy"), "--no-browser", "--port", "0"]),
    Case("config.json with latent_dim 10^9 (nothing is allocated)", lambda t: _mutate_config(t, lambda c: c["model"].update(latent_dim=10**9))),
    Case("config.json with hidden sizes [60000, 60000] (nothing is allocated)", lambda t: _mutate_config(t, lambda c: c["model"].update(hidden=[60000, 60000]))),
    Case("config.json with latent_dim 2.5", lambda t: _mutate_config(t, lambda c: c["model"].update(latent_dim=2.5))),
    Case("config.json with true where a size belongs", lambda t: _mutate_config(t, lambda c: c["model"].update(latent_dim=True))),
    Case("config.json with 1e400", lambda t: _raw_config(t, lambda text: text.replace('"label_scale": 30.0', '"label_scale": 1e400'))),
    Case("config.json nested 100 000 levels deep", lambda t: _raw_config(t, lambda text: "[" * 100_000 + "]" * 100_000)),
    Case("a NaN weight in a model folder", _nan_weight),
    Case("a run whose recorded dataset is / (no walk of the file system)", lambda t: _run_trained_on(t, "/")),
    Case("a run whose recorded dataset no longer exists", lambda t: _run_trained_on(t, str(t / "gone.csv"))),
    Case("a 30000 x 30000 PNG with --strict", lambda t: [*TRAIN, "--strict", "--dataset", str(_bomb_folder(t)), "--out", str(t / "out")]),
    Case("a gzip IDX of a few KB whose header claims 3 GB", lambda t: [*TRAIN, "--dataset", "mnist", "--data-dir", str(_mnist_dir(t, images=gzip.compress(struct.pack(">HBBIII", 0, 8, 3, 3_000_000, 32, 32) + bytes(3 << 20)))), "--out", str(t / "out")]),
    Case("a table with a million columns", lambda t: [*TRAIN, "--dataset", _wide_csv(t), "--out", str(t / "out")]),
    Case("an escape code in a file name", lambda t: [*TRAIN, "--dataset", str(t / "\x1b[2J\x1b[31mred.csv"), "--out", str(t / "out")]),
    Case("detect score: NaN for a detector fitted without --impute", _score_nan_without_impute),
    Case("detect score: an empty category for a detector fitted without --impute", _score_empty_category_without_impute),
    Case("detect fit: a label column in the wrong case (Fraud for fraud)", lambda t: ["detect", "fit", _csv(t, "a,fraud\n0.1,0\n0.2,1\n0.3,0\n"), "--label-column", "Fraud", "--steps", "2", "--out", str(t / "det")]),
    Case("detect fit: a --keep-column the table does not have", lambda t: ["detect", "fit", _csv(t, "tx_id,a\n1,0.1\n2,0.2\n"), "--keep-column", "txid", "--steps", "2", "--out", str(t / "det")]),
    Case("detect fit: a value beyond float32 (1e39) in the training table", lambda t: ["detect", "fit", _csv(t, "a,b\n0.1,0.2\n1e39,0.3\n0.2,0.1\n"), "--steps", "2", "--out", str(t / "out" / "det")]),
    Case("explore: a port that is in use", lambda t: ["explore", str(t / "any-run"), "--no-browser", "--port", str(_busy_port())]),
]


_HELD: list = []  # sockets kept listening and folder locks held while a case runs


def _busy_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    _HELD.append(s)
    return s.getsockname()[1]


def run_case(case: Case, tmp: Path, capsys) -> tuple[int, str, list[str]]:
    args = case.make(tmp)
    before = {p for p in tmp.rglob("*")}
    try:
        rc = main(args)
    except SystemExit as e:  # argparse's own checks (unknown option, wrong choice) exit through it
        rc = e.code
    finally:
        _release_held()
    err = capsys.readouterr().err.strip()
    new = sorted(str(p.relative_to(tmp)) for p in set(tmp.rglob("*")) - before)
    return rc, err, new


def _release_held() -> None:
    """Close the sockets and locks a case held while it ran (left to exit, a held lock's finalizer
    runs after the interpreter has torn down ``os`` and prints a traceback)."""
    while _HELD:
        held = _HELD.pop()
        if hasattr(held, "__exit__"):
            held.__exit__(None, None, None)
        else:
            held.close()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(case, tmp_path, capsys):
    rc, err, new = run_case(case, tmp_path, capsys)
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaekit") and ": error: " in lines[0], err
    assert "Traceback" not in err
    assert "\x1b" not in err  # escape codes from file names are shown escaped, never sent to the terminal
    assert new == [], f"left behind: {new}"
    assert not (tmp_path / "pwned").exists()
    if (tmp_path / "out" / "keep.txt").exists():
        assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


_PEAK = """
import resource, sys
from vaekit.cli import main
rc = main(sys.argv[1:])
print(rc, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def _peak_mb(args: list[str]) -> tuple[int, int]:
    """(exit status, peak resident memory in MB) of one CLI call in a fresh process."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _PEAK, *args], capture_output=True, text=True, timeout=300)
    rc, peak = out.stdout.split()[-2:]
    return int(rc), int(peak)


@pytest.mark.parametrize("model", [{"latent_dim": 10**6}, {"hidden": [60000, 60000]}], ids=["latent_dim", "hidden"])
def test_huge_sizes_in_a_small_config_allocate_nothing(model, tmp_path, capsys):
    """A config.json of a few KB that implies gigabytes of weights is refused before they are built:
    the process peaks no higher than loading the honest model (plus a margin far below the claim)."""
    args = _mutate_config(tmp_path, lambda c: c["model"].update(**model))
    honest = ["encode", str(tmp_path / "trained"), *args[2:]]
    assert (tmp_path / "edited" / "config.json").stat().st_size < 4096
    rc_bad, peak_bad = _peak_mb(args)
    rc_ok, peak_ok = _peak_mb(honest)
    assert (rc_bad, rc_ok) == (2, 0)
    assert peak_bad < peak_ok + 200, (peak_bad, peak_ok)


def test_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    """ENOSPC while writing an output: one line naming the cause, exit 2, no temporary file left."""
    import errno

    args = ["encode", str(_run(tmp_path)), "--dataset", str(tmp_path / "ok.npy"), "--out", str(tmp_path / "out" / "z.npy")]
    (tmp_path / "out").mkdir()
    capsys.readouterr()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vaekit: error: the disk is full"), err
    assert list((tmp_path / "out").iterdir()) == []


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    """Only the machine's state (disk, permissions, memory) becomes one line: other OSErrors are bugs."""
    import errno

    monkeypatch.setattr(np, "save", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EBADF, "Bad file descriptor")))
    with pytest.raises(OSError):
        main(["encode", str(_run(tmp_path)), "--dataset", str(tmp_path / "ok.npy"), "--out", str(tmp_path / "z.npy")])


def test_escape_codes_are_shown_escaped_in_warnings_too(tmp_path):
    """A skipped image whose name holds an escape code is named with the code escaped."""
    import warnings

    d = _folder(tmp_path, [(8, 8)] * 12)
    (d / "\x1b]0;owned\x07.png").write_text("not an image")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*TRAIN, "--dataset", str(d), "--out", str(tmp_path / "run"), "--batch-size", "4"]) == 0
    # main installs vaekit's one-line format: what the terminal would show.
    shown = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    assert "\\x1b]0;owned\\x07.png" in shown and "\x1b" not in shown and "\x07" not in shown
