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
    Case("explore: a port that is in use", lambda t: ["explore", str(t / "any-run"), "--no-browser", "--port", str(_busy_port())]),
]


_HELD: list = []  # sockets kept listening while a case runs


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
    err = capsys.readouterr().err.strip()
    new = sorted(str(p.relative_to(tmp)) for p in set(tmp.rglob("*")) - before)
    return rc, err, new


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(case, tmp_path, capsys):
    rc, err, new = run_case(case, tmp_path, capsys)
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaekit") and ": error: " in lines[0], err
    assert "Traceback" not in err
    assert new == [], f"left behind: {new}"
    assert not (tmp_path / "pwned").exists()
    if (tmp_path / "out" / "keep.txt").exists():
        assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
