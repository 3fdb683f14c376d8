"""The sprites grid (vaekit.data.sprites): rendering, factors, splits, limits and the published file's reader."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vaekit.data import load_dataset
from vaekit.data import sprites as sp
from vaekit.data.stream import is_streamed
from vaekit.errors import DataError


def _index(shape, scale, orient, x, y) -> int:
    return int(np.ravel_multi_index((shape, scale, orient, x, y), sp.FACTOR_SIZES))


def test_grid_layout_is_the_published_one() -> None:
    assert sp.N_SPRITES == 737_280 and sp.FACTOR_SIZES == (3, 6, 40, 32, 32)
    assert sp.factor_classes([0, 1, 32, sp.N_SPRITES - 1]).tolist() == [
        [0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [2, 5, 39, 31, 31]]  # pos_y fastest, as in the file
    values = sp.factor_values(sp.factor_classes([_index(2, 5, 10, 31, 0)]))[0]
    assert np.allclose(values, [3, 1.0, np.pi / 2, 1.0, 0.0])
    with pytest.raises(DataError, match="sprite indices"):
        sp.factor_classes([sp.N_SPRITES])


def test_each_image_is_a_pure_binary_function_of_its_index() -> None:
    idx = np.random.default_rng(1).choice(sp.N_SPRITES, 300, replace=False)
    X = sp.render(idx)
    assert X.shape == (300, 1, 64, 64) and X.dtype == np.float32
    assert set(np.unique(X)) == {0.0, 1.0}
    assert np.array_equal(X[7:8], sp.render(idx[7:8])) and np.array_equal(X[::-1], sp.render(idx[::-1]))
    assert (X.sum(axis=(1, 2, 3)) > 0).all()


def test_position_moves_the_sprite_by_whole_pixels_and_keeps_it_inside_the_frame() -> None:
    for shape in range(3):
        corners = sp.render([_index(shape, 5, 5, x, y) for x, y in [(0, 0), (31, 0), (0, 31), (31, 31), (16, 9)]])
        assert len({float(m) for m in corners.sum(axis=(1, 2, 3))}) == 1  # nothing clipped at any corner
        assert np.array_equal(np.roll(corners[0], (9, 16), axis=(1, 2)), corners[4])
        frame = np.ones((64, 64), bool)
        frame[1:-1, 1:-1] = False
        assert not corners[:, 0][:, frame].any()  # the border pixels stay empty


def test_factors_change_the_image_as_described() -> None:
    area = sp.render([_index(0, s, 0, 16, 16) for s in range(6)]).sum(axis=(1, 2, 3))
    assert (np.diff(area) > 0).all()
    assert area[-1] == 400  # the unrotated square at scale 1 is 20 x 20 pixels
    turns = {shape: sp.render([_index(shape, 5, o, 16, 16) for o in (0, 10, 20)]) for shape in range(3)}
    assert np.array_equal(turns[0][0], turns[0][1])  # a square turned by π/2 is itself
    assert np.array_equal(turns[1][0], turns[1][2]) and not np.array_equal(turns[1][0], turns[1][1])  # an ellipse by π
    assert not np.array_equal(turns[2][0], turns[2][2])  # a heart is only itself after 2π
    # A heart upside down is the mirror image of the upright one (it is symmetric about its vertical axis).
    assert np.abs(turns[2][0][0, ::-1, :] - turns[2][2][0]).sum() <= 0.02 * turns[2][0].sum() + 16


def test_splits_partition_the_grid_and_limits_cover_every_factor() -> None:
    test = load_dataset("sprites", "test", stream=True)
    train = load_dataset("sprites", "train", stream=True)
    assert len(test) == 73_728 and len(train) + len(test) == sp.N_SPRITES
    assert is_streamed(test.X) and is_streamed(train.X)
    assert not np.intersect1d(test.X.indices, train.X.indices).size
    small = load_dataset("sprites", "train", limit=200)
    assert isinstance(small.X, np.ndarray) and small.X.shape == (200, 1, 64, 64)
    assert [len(np.unique(small.factors[:, k])) for k in range(5)] == list(sp.FACTOR_SIZES)
    assert np.array_equal(small.y, small.factors[:, 0]) and small.classes == sp.SHAPES
    assert small.factor_names == list(sp.FACTOR_NAMES)
    assert np.array_equal(small.X, sp.render(np.ravel_multi_index(small.factors.T, sp.FACTOR_SIZES)))
    again = load_dataset("sprites", "train", limit=200)
    assert np.array_equal(again.factors, small.factors)
    larger = load_dataset("sprites", "train", limit=1000)  # a larger limit extends the same sample
    rows = {tuple(r) for r in larger.factors}
    assert all(tuple(r) in rows for r in small.factors)
    part = small.subset(np.arange(10, 20))
    assert np.array_equal(part.factors, small.factors[10:20]) and part.factor_names == small.factor_names


def test_a_streamed_split_renders_what_the_array_would_hold() -> None:
    ds = load_dataset("sprites", "test", stream=True)
    some = ds.subset(np.arange(100, 140))
    assert np.array_equal(some.X[:], sp.render(some.X.indices))
    X, kept = some.X.batch([3, 1, 2])
    assert np.array_equal(X, some.X[[3, 1, 2]]) and kept.tolist() == [0, 1, 2]
    assert np.array_equal(some.X[5], sp.render(some.X.indices[5:6])[0])
    assert np.array_equal(some.factors, sp.factor_classes(some.X.indices))


def test_sprites_arguments_that_do_not_apply_are_refused() -> None:
    with pytest.raises(DataError, match="no split 'valid'"):
        load_dataset("sprites", "valid")
    with pytest.raises(DataError, match="do not apply to sprites"):
        load_dataset("sprites", "train", image_size=32)
    with pytest.raises(DataError, match="do not apply to sprites"):
        load_dataset("sprites", "train", label_column="shape")


# ------------------------------------------------------------------------------ the published file


class _Tripwire:
    """Unpickling it creates a folder: proof that the pickled metadata entry was (or was not) loaded."""

    def __init__(self, where: str):
        self.where = where

    def __reduce__(self):
        return (os.mkdir, (self.where,))


_MARKED = 8  # rows of the fake file that hold an (inverted) sprite; the rest are blank


def _fake_dsprites(path: Path, tripwire: Path) -> None:
    """A file with the published layout: latents_classes, a pickled metadata entry, and 3 GB of imgs
    (written compressed in chunks, mostly zeros, the first rows inverted sprites so that reading them shows)."""
    classes = np.concatenate([np.zeros((sp.N_SPRITES, 1), np.int64), sp.factor_classes(np.arange(sp.N_SPRITES))], axis=1)
    np.savez(path, latents_classes=classes, metadata=np.array([_Tripwire(str(tripwire))], dtype=object))
    zero = bytes(8192 * 4096)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z, \
            z.open("imgs.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (sp.N_SPRITES, 64, 64)})
        f.write((1 - sp.render(np.arange(_MARKED))).astype(np.uint8).tobytes())
        f.write(zero[: (8192 - _MARKED) * 4096])
        for _ in range(1, sp.N_SPRITES // 8192):
            f.write(zero)


def test_the_published_file_is_read_without_unpickling(tmp_path: Path, monkeypatch) -> None:
    path, tripwire = tmp_path / sp.DSPRITES_FILE, tmp_path / "unpickled"
    _fake_dsprites(path, tripwire)
    wanted = np.array([0, 3, 7, 8, 9000])
    packed, classes = sp.read_dsprites_file(path, wanted)
    X = sp.SpriteImages(wanted, packed)[:]
    assert np.array_equal(X[:3], 1 - sp.render(wanted[:3])) and not X[3:].any()
    assert np.array_equal(classes, sp.factor_classes(wanted))
    assert not tripwire.exists()
    # load_dataset finds the file in data_dir (directly or under sprites/) and hands it the split's indices.
    # (Reading the split's rows is the same code as above, but decompresses all 3 GB: recorded, not run.)
    seen = []

    def record(p, idx):
        seen.append((Path(p), len(idx)))
        return np.full((len(idx), 512), 255, np.uint8), sp.factor_classes(idx)

    monkeypatch.setattr("vaekit.data.datasets.read_dsprites_file", record)
    ds = load_dataset("sprites", "test", limit=50, data_dir=tmp_path)
    assert seen == [(path, 50)] and ds.X.all() and len(ds) == 50
    assert not tripwire.exists()


def test_a_file_of_another_layout_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / sp.DSPRITES_FILE
    np.savez(bad, imgs=np.zeros((4, 64, 64), np.uint8), latents_classes=np.zeros((4, 6), np.int64))
    with pytest.raises(DataError, match="latents_classes has shape"):
        load_dataset("sprites", "test", limit=5, data_dir=tmp_path)
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        sp.read_dsprites_file(bad, [0])
