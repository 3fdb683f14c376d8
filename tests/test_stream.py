"""Image folders streamed from disk: decoded by worker processes ahead of each training step.

The folders are made from real Fashion-MNIST test images written as PNG class folders. The central
check: a streamed run trains on the same examples in the same order as the in-memory run, so the
two give the same weights and the same history.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit import VAE
from vaekit.batches import StreamBatches
from vaekit.data import load_dataset
from vaekit.data import stream as stream_mod
from vaekit.data.idx import read_idx
from vaekit.data.stream import StreamedImages, stream_image_folder
from vaekit.errors import ConfigError, DataError

NAMES = ["T-shirt", "Trouser", "Pullover"]


@pytest.fixture(scope="module")
def folder(shared_data, tmp_path_factory) -> Path:
    """120 real Fashion-MNIST images of classes 0-2 as PNG files in one subfolder per class."""
    X = read_idx(shared_data / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")
    y = read_idx(shared_data / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    keep = np.flatnonzero(y < 3)[:120]
    root = tmp_path_factory.mktemp("stream") / "fashion"
    for i in keep:
        (root / NAMES[y[i]]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(X[i]).save(root / NAMES[y[i]] / f"{i:05d}.png")
    return root


def test_streamed_folder_decodes_the_same_pixels_and_labels(folder) -> None:
    mem = load_dataset(str(folder), "train", stream=False)
    st = load_dataset(str(folder), "train", stream=True)
    assert isinstance(st.X, StreamedImages) and not isinstance(mem.X, StreamedImages)
    assert st.X.shape == mem.X.shape and len(st) == len(mem) == 108  # the fixed 90/10 split
    np.testing.assert_array_equal(st.y, mem.y)
    assert st.classes == mem.classes == sorted(NAMES)
    np.testing.assert_array_equal(st.X[:], mem.X)  # same float32 values as the in-memory path
    np.testing.assert_array_equal(st.X[5], mem.X[5])
    np.testing.assert_array_equal(st.X[[3, 1, 7]], mem.X[[3, 1, 7]])
    sub = st.subset(np.array([2, 4]))
    assert isinstance(sub.X, StreamedImages) and len(sub) == 2
    np.testing.assert_array_equal(sub.X[:], mem.X[[2, 4]])
    limited = load_dataset(str(folder), "train", stream=True, limit=10)
    assert len(limited) == 10 and limited.y is not None and len(limited.y) == 10


def test_streaming_is_chosen_when_the_folder_would_not_fit(folder, monkeypatch) -> None:
    assert not isinstance(load_dataset(str(folder), "train").X, StreamedImages)  # small: in memory
    # 108 images of 28x28 float32 are 339 KB: pretend only 500 KB of memory is available.
    monkeypatch.setattr("vaekit.data.datasets.available_memory", lambda: 500_000)
    assert isinstance(load_dataset(str(folder), "train").X, StreamedImages)
    with pytest.raises(DataError, match="folders of images"):
        load_dataset("digits", "train", stream=True)


def test_streamed_training_equals_in_memory_training(folder) -> None:
    # Same permutation per epoch, same decoded values, same random draws for dynamic binarization:
    # the worker processes change where decoding happens, not what the model sees.
    mem = load_dataset(str(folder), "train", stream=False)
    st = load_dataset(str(folder), "train", stream=True)
    kw = dict(latent_dim=4, hidden=(32,), epochs=2, batch_size=16, binarize="dynamic", seed=3, val_fraction=0.2)
    a = VAE(**kw).fit(mem.X)
    b = VAE(**kw).fit(st.X)
    for (name, p), q in zip(a.model_.state_dict().items(), b.model_.state_dict().values()):
        assert torch.equal(p, q), name
    assert [r["train_loss"] for r in a.history_] == [r["train_loss"] for r in b.history_]
    assert [r["val_loss"] for r in a.history_] == [r["val_loss"] for r in b.history_]
    np.testing.assert_allclose(b.encode(mem.X[:5]), a.encode(mem.X[:5]))


def test_workers_decode_ahead_in_separate_processes(folder) -> None:
    st, _, _ = stream_image_folder(folder)
    batches = StreamBatches(st, workers=2)
    try:
        order = [torch.tensor([5, 0, 9]), torch.tensor([1, 2])]
        got = list(batches.epoch(order))
        assert [len(x) for x, _ in got] == [3, 2]
        np.testing.assert_array_equal(got[0][0].numpy(), st[[5, 0, 9]])
        assert got[0][1].tolist() == [0, 1, 2]
        assert batches.loader.num_workers == 2 and batches.loader.persistent_workers
        again = list(batches.epoch([torch.tensor([7])]))  # the same workers serve the next epoch
        np.testing.assert_array_equal(again[0][0].numpy(), st[[7]])
    finally:
        batches.close()


def test_a_file_that_fails_to_decode_is_skipped_or_rejected(folder, tmp_path) -> None:
    import shutil

    root = tmp_path / "broken"
    shutil.copytree(folder, root)
    victim = sorted((root / NAMES[0]).glob("*.png"))[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # the header reads, the pixels do not: a truncated PNG
    st, y, _ = stream_image_folder(root)
    i = st.files.index(victim)
    with pytest.warns(UserWarning, match="not a readable image"):
        X, kept = st.batch([i, i + 1])
    assert len(X) == 1 and kept.tolist() == [1]
    with pytest.raises(DataError, match="failed to decode"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st[[i, i + 1]]  # outside training a dropped image would misalign the labels: an error
    strict, _, _ = stream_image_folder(root, strict=True)
    with pytest.raises(DataError, match="drop --strict"):
        strict.batch([i])
    # In training, the batch with the broken file is one example shorter, its label dropped with it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = VAE(latent_dim=2, hidden=(16,), epochs=1, batch_size=32, val_fraction=0.0, conditional=True).fit(st, y)
    assert np.isfinite(est.history_[0]["train_loss"])
    with pytest.raises(DataError, match="drop --strict"):
        VAE(latent_dim=2, hidden=(16,), epochs=1, batch_size=32, val_fraction=0.0).fit(strict)


def test_stream_refuses_what_needs_the_whole_set_in_memory(folder) -> None:
    st, _, _ = stream_image_folder(folder)
    with pytest.raises(ConfigError, match="static binarization"):
        VAE(latent_dim=2, hidden=(16,), epochs=1, binarize="static").fit(st)
    with pytest.raises(DataError, match="standardize"):
        VAE(latent_dim=2, hidden=(16,), epochs=1, likelihood="gaussian", standardize=True).fit(st)


def test_available_memory_reads_the_system() -> None:
    assert stream_mod.available_memory() > 1 << 20


def test_cli_stream_flag_trains_from_disk_and_says_so(folder, tmp_path) -> None:
    from vaekit.cli import main

    run = tmp_path / "run"
    argv = ["train", "--dataset", str(folder), "--stream", "--epochs", "1", "--latent-dim", "2", "--hidden", "16",
            "--batch-size", "32", "--no-report", "--no-figures", "--quiet", "--out", str(run)]
    assert main(argv) == 0
    assert "streamed from disk" in (run / "train.log").read_text()
    assert (run / "model.safetensors").exists()
