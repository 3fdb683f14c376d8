"""Property-based tests: random and mutated bytes fed to the IDX, .npy and CSV readers either load
correct data or raise vaekit's own DataError; never another exception, never a hang."""

from __future__ import annotations

import gzip
import io
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaekit.data import load_dataset, read_idx
from vaekit.errors import DataError

FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_idx(rows: int = 3, h: int = 4, w: int = 5) -> bytes:
    data = np.arange(rows * h * w, dtype=np.uint8).tobytes()
    return struct.pack(">HBBIII", 0, 0x08, 3, rows, h, w) + data


def _mutate(base: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    b = bytearray(base)
    for pos, val in edits:
        if b:
            b[pos % len(b)] = val
    return bytes(b[:cut] if cut is not None else b)


@FUZZ
@given(st.binary(max_size=300))
def test_idx_reader_random_bytes(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("idx") / "x.idx"
    path.write_bytes(blob)
    try:
        arr = read_idx(path)
    except DataError:
        return
    # If it loaded, the header must have described exactly these bytes.
    assert isinstance(arr, np.ndarray)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6), st.none() | st.integers(0, 80),
       st.booleans())
def test_idx_reader_mutated_valid_file(tmp_path_factory, edits, cut, gz):
    raw = _mutate(_valid_idx(), edits, cut)
    blob = gzip.compress(raw) if gz else raw
    if gz and edits:  # also corrupt the compressed stream itself
        blob = _mutate(blob, edits[:2], None)
    path = tmp_path_factory.mktemp("idx") / ("x.idx.gz" if gz else "x.idx")
    path.write_bytes(blob)
    try:
        arr = read_idx(path)
    except DataError:
        return
    assert arr.size == int(np.prod(arr.shape))
    if not edits and cut is None:
        assert arr.shape == (3, 4, 5)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6), st.none() | st.integers(0, 300))
def test_npy_reader_mutated(tmp_path_factory, edits, cut):
    buf = io.BytesIO()
    np.save(buf, np.arange(24, dtype=np.float32).reshape(6, 4) / 24)
    path = tmp_path_factory.mktemp("npy") / "x.npy"
    path.write_bytes(_mutate(buf.getvalue(), edits, cut))
    try:
        ds = load_dataset(str(path), "all")
    except DataError:
        return
    assert ds.X.dtype == np.float32 and np.isfinite(ds.X).all() and len(ds.X) > 0


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("0123456789.,-e\nabcnaNinf \"")), max_size=200))
def test_csv_reader_random_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("csv") / "x.csv"
    path.write_text("a,b,c\n" + text)
    try:
        ds = load_dataset(str(path), "all")
    except DataError:
        return
    assert ds.X.shape[1] == 3 and np.isfinite(ds.X).all()


def test_a_pickled_npy_is_refused(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError):
        load_dataset(str(path), "all")
