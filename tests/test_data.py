"""Tests of vaekit.data on the real files in shared/data and on small files made here."""

from __future__ import annotations

import gzip
import http.server
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vaekit.data import (
    Dataset,
    binarize,
    fetch,
    iter_table_chunks,
    load_dataset,
    read_idx,
    sha256_file,
    write_idx,
)
from vaekit.data.sources import SOURCES
from vaekit.errors import DataError

# ------------------------------------------------------------------------------------- IDX


def test_read_idx_real_mnist_test_files(shared_data: Path) -> None:
    images = read_idx(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert labels.min() == 0 and labels.max() == 9
    assert labels[0] == 7  # the famous first test digit
    assert images.max() == 255 and images.min() == 0


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_write_read_idx_round_trip(tmp_path: Path, dtype, name: str) -> None:
    arr = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    out = read_idx(write_idx(tmp_path / name, arr))
    assert out.dtype == np.dtype(dtype) and np.array_equal(out, arr)


def _raw_idx(arr: np.ndarray) -> bytes:
    """A uint8 IDX file's bytes, built by hand (not by write_idx) so the test checks the format."""
    return bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape) + arr.tobytes()


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda b: b"\x01" + b[1:], "magic"),
        (lambda b: b[:2] + b"\x07" + b[3:], "dtype code"),
        (lambda b: b[:-5], "truncated"),
        (lambda b: b + b"\x00\x00", "extra bytes"),
        # header says 7 items, payload holds 6
        (lambda b: b[:4] + (7).to_bytes(4, "big") + b[8:], "truncated"),
        (lambda b: b[:3], "only 3 bytes"),
    ],
)
def test_corrupt_idx_raises(tmp_path: Path, mutate, match: str) -> None:
    raw = _raw_idx(np.arange(6, dtype=np.uint8))
    path = tmp_path / "bad.idx"
    path.write_bytes(mutate(raw))
    with pytest.raises(DataError, match=match):
        read_idx(path)
    gz = tmp_path / "bad.idx.gz"
    gz.write_bytes(gzip.compress(mutate(raw)))
    with pytest.raises(DataError, match=match):
        read_idx(gz)


def test_corrupt_gzip_raises(tmp_path: Path, shared_data: Path) -> None:
    good = (shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF  # damages the deflate stream or its CRC
    (tmp_path / "flipped.gz").write_bytes(bytes(flipped))
    (tmp_path / "short.gz").write_bytes(good[: len(good) // 2])
    for name in ("flipped.gz", "short.gz"):
        with pytest.raises(DataError, match="corrupt gzip"):
            read_idx(tmp_path / name)


# ------------------------------------------------------------------------------- downloads


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/hangup/"):
            # Promise the whole file, send a little, then close: a broken connection.
            self.send_response(200)
            self.send_header("Content-Length", "4542")
            self.end_headers()
            self.wfile.write(b"\x1f\x8b" + b"\x00" * 100)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture()
def mirror(tmp_path: Path, shared_data: Path, monkeypatch):
    """A loopback HTTP server over a temp copy of the mnist files; yields (base URL, served root)."""
    root = tmp_path / "served"
    (root / "mnist").mkdir(parents=True)
    for name in ("t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        shutil.copy(shared_data / "mnist" / name, root / "mnist" / name)
    (root / "corrupt").mkdir()
    (root / "corrupt" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the real file")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Handler(*a, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.delenv("VAEKIT_OFFLINE", raising=False)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def _cache() -> Path:
    return Path(os.environ["VAEKIT_CACHE_DIR"])


def test_download_puts_verified_file_in_cache(mirror, monkeypatch) -> None:
    base, _ = mirror
    path = fetch("mnist", "test_labels", mirrors=[f"{base}/mnist/"])
    assert path == _cache() / "mnist" / "t10k-labels-idx1-ubyte.gz"
    assert sha256_file(path) == SOURCES["mnist"].files["test_labels"].sha256
    assert read_idx(path)[0] == 7
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left


def test_download_tries_mirrors_in_order_and_reads_env(mirror, monkeypatch) -> None:
    base, _ = mirror
    # First mirror 404s, second serves: the {dataset} placeholder fills in "mnist".
    monkeypatch.setenv("VAEKIT_MIRROR", f"{base}/missing/,{base}/{{dataset}}/")
    ds = load_dataset("mnist", "test", limit=5)
    assert ds.y.tolist()[:1] == [7] and ds.X.shape == (5, 1, 28, 28)


@pytest.mark.parametrize("folder", ["corrupt", "hangup"])
def test_bad_download_leaves_nothing(mirror, monkeypatch, folder: str) -> None:
    base, _ = mirror
    with pytest.raises(DataError, match="could not download t10k-labels-idx1-ubyte.gz"):
        fetch("mnist", "test_labels", mirrors=[f"{base}/{folder}/"])
    target = _cache() / "mnist"
    assert not target.exists() or list(target.iterdir()) == []


def test_offline_without_data_dir_says_data_dir() -> None:
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("mnist", "test")


def test_data_dir_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz not found in --data-dir"):
        load_dataset("mnist", "test", data_dir=tmp_path)


# --------------------------------------------------------------------------- named datasets


def test_mnist_and_fashion_from_data_dir(shared_data: Path) -> None:
    # data_dir may be the folder of all datasets or the dataset's own folder.
    for data_dir in (shared_data, shared_data / "mnist"):
        ds = load_dataset("mnist", "test", data_dir=data_dir)
        assert ds.X.shape == (10000, 1, 28, 28) and ds.X.dtype == np.float32
        assert 0.0 <= ds.X.min() and ds.X.max() == 1.0 and ds.y[0] == 7 and ds.y.dtype == np.int64
    fashion = load_dataset("fashion-mnist", "test", data_dir=shared_data, limit=100)
    assert len(fashion) == 100 and fashion.classes[9] == "Ankle boot"
    assert np.bincount(load_dataset("fashion-mnist", "test", data_dir=shared_data).y).tolist() == [1000] * 10


def test_binarized_mnist(shared_data: Path) -> None:
    ds = load_dataset("binarized-mnist", "valid", data_dir=shared_data)
    assert ds.X.shape == (10000, 1, 28, 28) and ds.y is None
    assert set(np.unique(ds.X).tolist()) == {0.0, 1.0}
    assert abs(ds.X.mean() - 0.1311) < 1e-3  # SOURCES.md's measured mean
    with pytest.raises(DataError, match="no split 'valid'"):
        load_dataset("mnist", "valid", data_dir=shared_data)


def test_frey_face(shared_data: Path) -> None:
    full = load_dataset("frey-face", "all", data_dir=shared_data)
    assert full.X.shape == (1965, 1, 28, 20) and full.y is None and full.is_image
    assert 0.0 <= full.X.min() and full.X.max() <= 1.0
    train = load_dataset("frey-face", "train", data_dir=shared_data)
    test = load_dataset("frey-face", "test", data_dir=shared_data)
    assert len(train) + len(test) == 1965 and len(test) == 196
    # The fixed split is a partition: together they are exactly the full set.
    rows = {r.tobytes() for r in np.concatenate([train.X, test.X])}
    assert rows == {r.tobytes() for r in full.X}


def test_digits_split_is_deterministic() -> None:
    a, b = load_dataset("digits", "train"), load_dataset("digits", "train")
    assert a.X.shape[1:] == (1, 8, 8) and np.array_equal(a.X, b.X) and a.X.max() == 1.0
    assert len(a) + len(load_dataset("digits", "test")) == 1797 and a.classes == [str(i) for i in range(10)]


def test_embedded_sample() -> None:
    from importlib import resources

    train, test = load_dataset("embedded", "train"), load_dataset("embedded", "test")
    assert train.X.shape == (5000, 1, 28, 28) and test.X.shape == (1000, 1, 28, 28)
    for ds in (train, test):
        assert ds.X.dtype == np.float32 and 0.0 <= ds.X.min() and ds.X.max() <= 1.0
        assert set(ds.y.tolist()) == set(range(10))
    assert np.bincount(train.y).tolist() == [500] * 10
    size = (resources.files("vaekit.data") / "mnist_sample.npz").stat().st_size  # type: ignore[attr-defined]
    assert size < 1.5e6


def test_embedded_matches_real_mnist(shared_data: Path) -> None:
    from importlib import resources

    with np.load(resources.files("vaekit.data") / "mnist_sample.npz") as z:
        idx, x = z["idx_test"], z["x_test"]
    real = read_idx(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz")
    assert np.array_equal(real[idx], x)


def test_unknown_source_lists_names() -> None:
    with pytest.raises(DataError, match="mnist, fashion-mnist"):
        load_dataset("cifar10")


def test_limit_subset_and_binarize() -> None:
    ds = load_dataset("embedded", "test", limit=10)
    assert len(ds) == 10 and ds.shape == (1, 28, 28) and ds.n_features == 784
    sub = ds.subset(np.array([0, 2]))
    assert isinstance(sub, Dataset) and len(sub) == 2 and sub.y.tolist() == ds.y[[0, 2]].tolist()
    b1, b2 = binarize(ds.X, 0), binarize(ds.X, 0)
    assert np.array_equal(b1, b2) and set(np.unique(b1).tolist()) <= {0.0, 1.0}
    assert abs(b1.mean() - ds.X.mean()) < 0.02  # E[Bernoulli(p)] = p
    with pytest.raises(DataError, match="limit"):
        load_dataset("embedded", limit=0)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        binarize(ds.X * 2, 0)


# ------------------------------------------------------------------------------ user files


def _csv(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_string_label_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,b,kind\n1,2,cat\n3,4.5,dog\n5,6,cat\n")
    ds = load_dataset(str(path), "all", label_column="kind")
    assert ds.X.tolist() == [[1, 2], [3, 4.5], [5, 6]] and ds.X.dtype == np.float32
    assert ds.classes == ["cat", "dog"] and ds.y.tolist() == [0, 1, 0] and ds.name == "t"


def test_csv_with_integer_labels_keeps_them(tmp_path: Path) -> None:
    ds = load_dataset(str(_csv(tmp_path, "x,label\n0.5,3\n0.1,1\n")), "all", label_column="label")
    assert ds.y.tolist() == [3, 1] and ds.classes is None


def test_csv_non_numeric_cell_names_row_and_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,b\n1,2\n3,oops\n")
    with pytest.raises(DataError, match=r"'oops' in column 'b' at row 1 \(line 3\)"):
        load_dataset(str(path), "all")


@pytest.mark.parametrize("text, line", [("a,b\n1,2\n3\n5,6\n", 3), ("a,b\n1,2\n3,4,5\n", 3), ("a,b\n1,2,9\n3,4\n", 2)])
def test_csv_ragged_rows(tmp_path: Path, text: str, line: int) -> None:
    with pytest.raises(DataError, match=f"line {line} has"):
        load_dataset(str(_csv(tmp_path, text)), "all")


def test_csv_nan_and_inf(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"2 NaN/Inf value\(s\), first at row 1, column 'a'.*impute"):
        load_dataset(str(_csv(tmp_path, "a,b\n1,2\nnan,3\n4,inf\n")), "all")


def test_csv_header_required_and_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="header"):
        load_dataset(str(_csv(tmp_path, "1,2\n3,4\n")), "all")
    with pytest.raises(DataError, match="no data rows"):
        load_dataset(str(_csv(tmp_path, "a,b\n", "e.csv")), "all")
    with pytest.raises(DataError, match="empty"):
        load_dataset(str(_csv(tmp_path, "", "z.csv")), "all")
    with pytest.raises(DataError, match="no column named 'nope'"):
        load_dataset(str(_csv(tmp_path, "a,b\n1,2\n", "l.csv")), "all", label_column="nope")


def test_npy_npz_parquet(tmp_path: Path) -> None:
    X = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
    y = np.arange(50) % 2
    np.save(tmp_path / "x.npy", X)
    np.savez(tmp_path / "xy.npz", X=X, y=y)
    np.savez(tmp_path / "single.npz", features=X)
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "y": np.where(y, "yes", "no")}).to_parquet(tmp_path / "t.parquet")
    assert np.array_equal(load_dataset(str(tmp_path / "x.npy"), "all").X, X)
    npz = load_dataset(str(tmp_path / "xy.npz"), "all")
    assert np.array_equal(npz.X, X) and npz.y.tolist() == y.tolist()
    assert np.array_equal(load_dataset(str(tmp_path / "single.npz"), "all").X, X)
    pq = load_dataset(str(tmp_path / "t.parquet"), "all", label_column="y")
    assert np.array_equal(pq.X, X) and pq.classes == ["no", "yes"] and pq.y.tolist() == y.tolist()
    # The fixed 90/10 split, in file order.
    train, test = load_dataset(str(tmp_path / "x.npy")), load_dataset(str(tmp_path / "x.npy"), "test")
    assert len(train) == 45 and len(test) == 5


def test_user_array_checks(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="unpickling"):
        load_dataset(str(tmp_path / "obj.npy"), "all")
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(DataError, match="first at row 0, column 1"):
        load_dataset(str(tmp_path / "nan.npy"), "all")
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    with pytest.raises(DataError, match="no examples"):
        load_dataset(str(tmp_path / "empty.npy"), "all")
    with pytest.raises(DataError, match="not found"):
        load_dataset(str(tmp_path / "missing.csv"))


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".npy"])
def test_iter_table_chunks_matches_full_load(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(103, 4)).astype(np.float32)
    labels = rng.choice(["a", "b", "c"], size=103)
    df = pd.DataFrame(X, columns=list("pqrs")).assign(id=np.arange(103) + 1000, label=labels)
    path = tmp_path / f"t{suffix}"
    kw: dict = {"label_column": "label", "id_column": "id"}
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".parquet":
        df.to_parquet(path)
    else:
        np.save(path, X)
        kw = {}
    chunks = list(iter_table_chunks(path, chunk_rows=10, **kw))
    assert [len(c[0]) for c in chunks] == [10] * 10 + [3]
    full = load_dataset(str(path), "all", label_column=kw.get("label_column"))
    # load_dataset has no id column, so there the ids are the last feature; compare the rest.
    assert np.array_equal(np.concatenate([c[0] for c in chunks]), full.X[:, :4])
    np.testing.assert_allclose(full.X[:, :4], X, rtol=1e-6)
    if kw:
        assert np.array_equal(np.concatenate([c[1] for c in chunks]), full.y)
        assert np.concatenate([c[2] for c in chunks]).tolist() == list(range(1000, 1103))
        assert [full.classes[i] for i in full.y] == labels.tolist()


def test_iter_table_chunks_reports_bad_row_in_later_chunk(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i}" for i in range(25))
    path = _csv(tmp_path, "a,b\n" + rows + "\n1,x\n")
    with pytest.raises(DataError, match="at row 25"):
        list(iter_table_chunks(path, chunk_rows=10))
