"""Folders of the user's own images: made here from the real Fashion-MNIST and Frey Face data, written
as PNG/JPEG files, then read back through load_dataset."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaekit.data import load_dataset
from vaekit.data.idx import read_idx
from vaekit.data.images import read_image_folder, scan_image_folder
from vaekit.errors import DataError

FASHION_NAMES = ["T-shirt", "Trouser", "Pullover"]


@pytest.fixture(scope="module")
def fashion(shared_data) -> tuple[np.ndarray, np.ndarray]:
    """The first 30 Fashion-MNIST test images of classes 0, 1, 2 (uint8 28x28) and their labels."""
    X = read_idx(shared_data / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")
    y = read_idx(shared_data / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    keep = np.flatnonzero(y < 3)[:30]
    return X[keep], y[keep]


def _write_class_folders(root: Path, X: np.ndarray, y: np.ndarray, rgb: bool = False) -> Path:
    for i, (img, label) in enumerate(zip(X, y)):
        folder = root / FASHION_NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(img)
        if rgb:  # colour each class differently so that channels carry information
            tint = np.array([[1.0, 0.4, 0.2], [0.2, 1.0, 0.4], [0.3, 0.5, 1.0]])[label]
            im = Image.fromarray((img[..., None] * tint).astype(np.uint8), "RGB")
        im.save(folder / f"{i:04d}.png")
    return root


def test_class_folders_give_labels_and_exact_pixels(tmp_path, fashion) -> None:
    X, y = fashion
    root = _write_class_folders(tmp_path / "fashion", X, y)
    Xr, yr, classes = read_image_folder(root)
    assert classes == sorted(FASHION_NAMES)  # sorted names: the same mapping on every machine
    assert Xr.shape == (len(X), 1, 28, 28) and Xr.dtype == np.uint8
    # Files are read in sorted path order: map each back to the original image by its file name.
    order = [int(p.stem) for p in scan_image_folder(root).files]
    np.testing.assert_array_equal(Xr[:, 0], X[order])  # PNG is lossless: every pixel comes back
    names = [FASHION_NAMES[k] for k in y[order]]
    assert [classes[k] for k in yr] == names


def test_load_dataset_reads_a_folder_with_split(tmp_path, fashion) -> None:
    X, y = fashion
    root = _write_class_folders(tmp_path / "fashion", X, y)
    train = load_dataset(str(root), "train")
    test = load_dataset(str(root), "test")
    assert len(train) + len(test) == len(X) and len(test) == 3  # the fixed 90/10 split
    assert train.X.dtype == np.float32 and 0 <= train.X.min() and train.X.max() <= 1
    assert train.name == "fashion" and train.classes == sorted(FASHION_NAMES)
    assert train.y is not None and set(train.y) <= {0, 1, 2}


def test_rgb_folder_keeps_colour(tmp_path, fashion) -> None:
    X, y = fashion
    root = _write_class_folders(tmp_path / "rgb", X, y, rgb=True)
    ds = load_dataset(str(root), "all")
    assert ds.shape == (3, 28, 28)
    # The tint differs by class, so the channel means must differ between classes.
    means = np.array([ds.X[ds.y == k].mean(axis=(0, 2, 3)) for k in range(3)])
    assert np.argmax(means[0]) != np.argmax(means[1])
    grey = load_dataset(str(root), "all", channels=1)
    assert grey.shape == (1, 28, 28)


def test_flat_folder_has_no_labels_and_keeps_non_square_size(tmp_path, shared_data) -> None:
    from scipy.io import loadmat

    ff = loadmat(shared_data / "frey-face" / "frey_rawface.mat")["ff"].T.reshape(-1, 28, 20)[:40]
    root = tmp_path / "frey"
    root.mkdir()
    for i, img in enumerate(ff):
        Image.fromarray(img).save(root / f"face{i:03d}.png")
    ds = load_dataset(str(root), "all")
    assert ds.y is None and ds.classes is None
    assert ds.shape == (1, 28, 20)
    np.testing.assert_allclose(ds.X[:, 0], ff / 255.0, atol=1e-7)


def test_mixed_sizes_need_image_size_then_resize_and_crop(tmp_path) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 60), dtype=np.uint8)).save(root / "wide.png")
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / "square.jpg")
    with pytest.raises(DataError, match=r"2 different sizes .*image_size"):
        load_dataset(str(root), "all")
    ds = load_dataset(str(root), "all", image_size=16)
    assert ds.shape == (3, 16, 16)  # one RGB file makes the folder RGB by default
    # A constant image stays constant after resizing and cropping.
    Image.fromarray(np.full((20, 50), 200, np.uint8)).save(root / "flat.png")
    ds = load_dataset(str(root), "all", image_size=8, channels=1)
    flat = ds.X[[i for i, p in enumerate(scan_image_folder(root).files) if p.name == "flat.png"][0]]
    np.testing.assert_allclose(flat, 200 / 255, atol=1 / 255)


def test_sixteen_bit_png_keeps_its_depth(tmp_path) -> None:
    root = tmp_path / "deep"
    root.mkdir()
    img = np.array([[0, 1000], [30000, 65535]], dtype=np.uint16)
    Image.fromarray(img).save(root / "a.png")
    ds = load_dataset(str(root), "all")
    np.testing.assert_allclose(ds.X[0, 0], img / 65535.0, atol=1e-6)


def test_bad_files_are_skipped_with_a_warning_or_rejected_when_strict(tmp_path, fashion) -> None:
    X, y = fashion
    root = _write_class_folders(tmp_path / "fashion", X[:12], y[:12])
    (root / FASHION_NAMES[0] / "notes.png").write_text("this is not an image")
    good = root / FASHION_NAMES[1] / "broken.jpg"
    Image.fromarray(X[0]).save(good)
    good.write_bytes(good.read_bytes()[:40])  # a truncated JPEG
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(str(root), "all")
    messages = [str(w.message) for w in caught]
    assert len(ds) == 12
    assert any("notes.png" in m for m in messages) and any("broken.jpg" in m for m in messages)
    assert any("skipped 2 unreadable" in m for m in messages)
    with pytest.raises(DataError, match=r"notes.png: not a readable image .*--strict"):
        load_dataset(str(root), "all", strict=True)


@pytest.mark.parametrize("make", ["missing", "empty", "only-text"])
def test_folder_without_images_is_one_line_error(tmp_path, make: str) -> None:
    root = tmp_path / "imgs"
    if make != "missing":
        root.mkdir()
    if make == "only-text":
        (root / "readme.txt").write_text("hi")
    with pytest.raises(DataError) as e:
        read_image_folder(root)
    assert "\n" not in str(e.value)
    assert ("not found" in str(e.value)) if make == "missing" else ("folder with no image files" in str(e.value))


def test_image_options_refused_for_other_sources() -> None:
    with pytest.raises(DataError, match="apply to folders of images"):
        load_dataset("embedded", "test", image_size=28)
    with pytest.raises(DataError, match="channels must be 1"):
        read_image_folder(".", channels=2)


def test_worker_processes_decode_the_same(tmp_path, fashion) -> None:
    X, y = fashion
    root = _write_class_folders(tmp_path / "fashion", X, y)
    one, _, _ = read_image_folder(root, workers=1)
    two, _, _ = read_image_folder(root, workers=2)
    np.testing.assert_array_equal(one, two)


# -- through the command line ------------------------------------------------------------------


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory, shared_data) -> Path:
    """300 Fashion-MNIST test images of classes 0-2, tinted by class, as RGB PNG class folders."""
    X = read_idx(shared_data / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")
    y = read_idx(shared_data / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    keep = np.flatnonzero(y < 3)[:300]
    return _write_class_folders(tmp_path_factory.mktemp("imgs") / "clothes", X[keep], y[keep], rgb=True)


def test_image_folder_end_to_end_through_the_cli(tmp_path, rgb_folder, capsys) -> None:
    import json

    from vaekit.cli import main

    (rgb_folder / FASHION_NAMES[0] / "notes.png").write_text("not an image")
    run = tmp_path / "run"
    try:
        with pytest.warns(UserWarning, match=r"skipping .*notes.png: not a readable image"):
            assert main(["train", "--model", "conv-vae", "--latent-dim", "8", "--dataset", str(rgb_folder), "--epochs", "1",
                         "--batch-size", "50", "--quiet", "--out", str(run)]) == 0
    finally:
        (rgb_folder / FASHION_NAMES[0] / "notes.png").unlink()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["input_shape"] == [3, 28, 28] and cfg["run"]["classes"] == sorted(FASHION_NAMES)
    assert cfg["run"]["channels"] == 3
    for f in ("samples.png", "reconstructions.png", "report.html"):
        assert (run / f).stat().st_size > 0
    # Every later command reads the same folder back the way the model was trained on it.
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["reconstruct", str(run), "--out", str(tmp_path / "r.png")]) == 0
    assert main(["encode", str(run), "--out", str(tmp_path / "z.npy")]) == 0
    assert np.load(tmp_path / "z.npy").shape == (30, 8)  # the folder's fixed 10 % test split
    assert main(["evaluate", str(run), "--k", "5", "--no-probe"]) == 0
    assert "ELBO" in capsys.readouterr().out
    # A grey reading of an RGB-trained model's folder does not fit the model: one line, exit 2.
    assert main(["encode", str(run), "--channels", "1", "--out", str(tmp_path / "z1.npy")]) == 2
    assert "shape" in capsys.readouterr().err


def test_image_folder_cli_errors_are_one_line(tmp_path, capsys) -> None:
    from vaekit.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "--dataset", str(empty), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vaekit: error: ") and "folder with no image files" in err and len(err.splitlines()) == 1
    assert main(["train", "--dataset", "embedded", "--image-size", "8", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "apply to folders of images" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cli_prints_a_warning_as_one_line(tmp_path) -> None:
    import os
    import subprocess
    import sys

    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / f"{i}.png")
    (root / "bad.png").write_text("no")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    r = subprocess.run([sys.executable, "-m", "vaekit", "train", "--dataset", str(root), "--split", "all", "--epochs", "1",
                        "--batch-size", "2", "--val-fraction", "0.3", "--latent-dim", "2", "--hidden", "4", "--no-report",
                        "--no-figures", "--quiet", "--out", str(tmp_path / "r")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("vaekit: warning: skipping ") and "bad.png" in lines[0]
    assert all(ln.startswith("vaekit: warning: ") for ln in lines)  # no file:line or source echo


def test_a_run_on_resized_images_is_read_back_at_its_size_by_every_command(tmp_path, capsys) -> None:
    """Mixed sizes need --image-size at training; report, evaluate and explore read the folder the same way."""
    from vaekit.cli import main
    from vaekit.data import load_run_dataset
    from vaekit.explore.explorer import Explorer

    root = tmp_path / "mixed"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(30):
            h, w = (20, 24) if i % 2 else (30, 30)
            Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8)).save(root / cls / f"{i}.png")
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(root), "--image-size", "12", "--epochs", "1", "--batch-size", "10",
                 "--latent-dim", "2", "--hidden", "8", "--quiet", "--no-figures", "--out", str(run)]) == 0
    assert (run / "report.html").stat().st_size > 0
    import json

    meta = json.loads((run / "config.json").read_text())["run"]
    assert meta["image_size"] == 12 and load_run_dataset(meta, "test").shape == (1, 12, 12)
    assert main(["evaluate", str(run), "--k", "5"]) == 0
    assert main(["report", str(run)]) == 0
    assert Explorer.from_run(run).info()["data"]["shape"] == [1, 12, 12]
    capsys.readouterr()
