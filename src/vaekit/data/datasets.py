"""The :class:`Dataset` every model and command takes, and :func:`load_dataset` that makes one.

Images are float32 ``(N, C, H, W)`` in [0, 1]; tables are float32 ``(N, D)`` of raw values.
Sources are named datasets (see :data:`NAMED_SOURCES`) or a path to the user's own
.npy/.npz/.csv/.parquet file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DataError
from .idx import read_idx
from .images import read_image_folder
from .sources import fetch
from .sprites import DSPRITES_FILE, FACTOR_NAMES, N_SPRITES, SHAPES, SpriteImages, cover_order, factor_classes, read_dsprites_file
from .stream import STREAM_SHARE, StreamedImages, available_memory, stream_image_folder
from .tables import (
    check_finite,
    encode_labels,
    label_classes,
    load_npy,
    read_table,
    require_file,
    to_float32,
)

__all__ = ["Dataset", "load_dataset", "load_run_dataset", "binarize", "NAMED_SOURCES", "DIGIT_CLASSES", "FASHION_CLASSES"]

DIGIT_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # fmt: skip
EMBEDDED_FILE = "mnist_sample.npz"

# name -> splits it accepts. Sources without an official split get a fixed 90/10 train/test one.
NAMED_SOURCES: dict[str, tuple[str, ...]] = {
    "mnist": ("train", "test", "all"),
    "fashion-mnist": ("train", "test", "all"),
    "binarized-mnist": ("train", "valid", "test", "all"),
    "frey-face": ("train", "test", "all"),
    "digits": ("train", "test", "all"),
    "embedded": ("train", "test", "all"),
    "sprites": ("train", "test", "all"),
}
USER_SUFFIXES = (".npy", ".npz", ".csv", ".parquet")
_TEST_FRACTION = 0.1
_SPLIT_SEED = 0


@dataclass
class Dataset:
    """Examples ``X`` (float32, ``(N, *shape)``), optional labels ``y`` (int64 ``(N,)``), a name.

    ``classes[k]`` names class index ``k`` of ``y`` where known (digits, Fashion names, or the
    string labels of a user file). For a folder of images streamed from disk, ``X`` is a
    :class:`~vaekit.data.stream.StreamedImages`, which indexes like the array it stands for.
    ``factors`` (int64 ``(N, K)``) are the ground-truth generative factors' classes where the
    data has them (sprites: shape, scale, orientation, pos_x, pos_y, named by ``factor_names``).
    """

    X: np.ndarray
    y: np.ndarray | None
    name: str
    classes: list[str] | None = None
    factors: np.ndarray | None = None
    factor_names: list[str] | None = None

    def __post_init__(self) -> None:
        if self.y is not None and len(self.y) != len(self.X):
            raise DataError(f"dataset {self.name!r}: {len(self.X)} examples but {len(self.y)} labels; they must match")
        if self.factors is not None and (self.factors.ndim != 2 or len(self.factors) != len(self.X)):
            raise DataError(f"dataset {self.name!r}: factors of shape {self.factors.shape} do not match {len(self.X)} examples; "
                            "need one row of factor classes per example")

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(1, 28, 28)`` or ``(D,)``."""
        return tuple(self.X.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.X.ndim == 4

    @property
    def n_features(self) -> int:
        """Number of values per example (``C*H*W`` for images)."""
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.X)

    def subset(self, idx: np.ndarray | slice | list[int]) -> Dataset:
        """The examples at ``idx`` (indices, a boolean mask or a slice), same name and classes."""
        X = self.X.subset(idx) if isinstance(self.X, StreamedImages) else self.X[idx]  # a stream stays one
        return Dataset(X, None if self.y is None else self.y[idx], self.name, self.classes,
                       None if self.factors is None else self.factors[idx], self.factor_names)


def binarize(X: np.ndarray, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Static binarization: each value becomes 1 with probability equal to it (float32 0/1).

    This is the stochastic binarization of Salakhutdinov & Murray (2008), drawn once so the
    dataset stays fixed. ``X`` must lie in [0, 1]; ``rng`` is a Generator or a seed.
    """
    X = np.asarray(X)
    if X.size and (np.nanmin(X) < 0 or np.nanmax(X) > 1):
        raise DataError(
            f"binarize needs values in [0, 1] (pixel probabilities), got range "
            f"[{np.nanmin(X):g}, {np.nanmax(X):g}]; scale the data first"
        )
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return (rng.random(X.shape, dtype=np.float32) < X).astype(np.float32)


# ------------------------------------------------------------------------------ splitting


def _fixed_split(n: int, split: str) -> np.ndarray:
    """Indices of a deterministic 90/10 train/test partition (seed 0), in file order; all for 'all'."""
    if split == "all":
        return np.arange(n)
    perm = np.random.default_rng(_SPLIT_SEED).permutation(n)
    n_test = int(round(n * _TEST_FRACTION))
    part = perm[:n_test] if split == "test" else perm[n_test:]
    return np.sort(part)


# ------------------------------------------------------------------------------ named sources

Loaded = tuple[np.ndarray, np.ndarray | None, list[str] | None]  # X, y, classes


def _idx_pair(name: str, split: str, data_dir, download: bool) -> tuple[np.ndarray, np.ndarray]:
    parts = ("train", "test") if split == "all" else (split,)
    xs, ys = [], []
    for part in parts:
        images = read_idx(fetch(name, f"{part}_images", data_dir=data_dir, download=download))
        labels = read_idx(fetch(name, f"{part}_labels", data_dir=data_dir, download=download))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{name} {part} files do not match: images {images.shape}, labels {labels.shape}; "
                "re-download them"
            )
        xs.append(images)
        ys.append(labels)
    return np.concatenate(xs)[:, None], np.concatenate(ys).astype(np.int64)


def _loadmat(path: Path, key: str) -> np.ndarray:
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as e:  # scipy raises a zoo of types (ValueError, MatReadError, OSError)
        raise DataError(f"{path}: not a readable MATLAB file ({e}); re-download it") from None
    if key not in mat:
        keys = [k for k in mat if not k.startswith("__")]
        raise DataError(f"{path}: no variable {key!r} (found {keys}); is this the right file?")
    return np.asarray(mat[key])


def _load_named(source: str, split: str, data_dir, download: bool) -> Loaded:
    if source in ("mnist", "fashion-mnist"):
        X, y = _idx_pair(source, split, data_dir, download)
        return X, y, DIGIT_CLASSES if source == "mnist" else FASHION_CLASSES
    if source == "binarized-mnist":
        parts = ("train", "valid", "test") if split == "all" else (split,)
        X = np.concatenate([_loadmat(fetch(source, p, data_dir=data_dir, download=download), "X") for p in parts])
        # Stored as 0/1 uint8; as float32 these are already the [0, 1] pixels, not /255.
        return X.reshape(-1, 1, 28, 28).astype(np.float32), None, None
    if source == "frey-face":
        ff = _loadmat(fetch(source, "faces", data_dir=data_dir, download=download), "ff")
        X = ff.T.reshape(-1, 1, 28, 20)  # columns are images of 28 rows x 20 columns, row-major
        return X[_fixed_split(len(X), split)], None, None
    if source == "digits":
        from sklearn.datasets import load_digits  # ships with scikit-learn; no download

        d = load_digits()
        idx = _fixed_split(len(d.images), split)
        X = (d.images[idx, None] / 16.0).astype(np.float32)  # 4-bit pixel counts, 0..16
        return X, d.target[idx].astype(np.int64), DIGIT_CLASSES
    if source == "embedded":
        return _load_embedded(split)
    raise AssertionError(source)


def _load_embedded(split: str) -> Loaded:
    ref = resources.files("vaekit.data") / EMBEDDED_FILE
    if not ref.is_file():
        raise DataError(f"the embedded MNIST sample {EMBEDDED_FILE} is missing from the vaekit install; reinstall vaekit")
    with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as z:
        parts = ("train", "test") if split == "all" else (split,)
        X = np.concatenate([z[f"x_{p}"] for p in parts])[:, None]
        y = np.concatenate([z[f"y_{p}"] for p in parts]).astype(np.int64)
    return X, y, DIGIT_CLASSES


# Sprites are rendered on demand; a split is held in memory as float32 up to this size (the test
# split, 73 728 images, is 1.2 GB) and streamed beyond it (the training split would be 10.9 GB).
SPRITES_IN_MEMORY_BYTES = 2 << 30


def _find_dsprites(data_dir) -> Path | None:
    """The published dSprites file in ``data_dir`` or env VAEKIT_DATA_DIR (directly or under sprites/), if there."""
    for folder in (data_dir, os.environ.get("VAEKIT_DATA_DIR")):
        if folder:
            for candidate in (Path(folder).expanduser() / DSPRITES_FILE, Path(folder).expanduser() / "sprites" / DSPRITES_FILE):
                if candidate.is_file():
                    return candidate
    return None


def _load_sprites(split: str, data_dir, limit: int | None, stream: bool | None, *, label_column, folder_only) -> Dataset:
    """The sprites split: a seeded tenth of the grid for test (:func:`_fixed_split`), the rest for train.

    ``limit`` keeps a seeded sample whose first examples cover every factor value
    (:func:`~vaekit.data.sprites.cover_order`), in grid order. Labels ``y`` are the shape.
    """
    if split not in NAMED_SOURCES["sprites"]:
        raise DataError(f"sprites has no split {split!r}; choose one of {', '.join(NAMED_SOURCES['sprites'])}")
    if label_column is not None or folder_only != (None, None, False):
        raise DataError("label_column, image_size, channels and strict do not apply to sprites (64 x 64, one channel, "
                        "labelled by shape, the factors in Dataset.factors); drop them")
    idx = _fixed_split(N_SPRITES, split)
    if limit is not None:
        idx = np.sort(cover_order(idx, seed=_SPLIT_SEED)[:limit])
    real = _find_dsprites(data_dir)
    if real is not None:
        packed, factors = read_dsprites_file(real, idx)
        X = SpriteImages(idx, packed)
    else:
        X, factors = SpriteImages(idx), factor_classes(idx)
    if stream is False or (stream is None and X.nbytes <= SPRITES_IN_MEMORY_BYTES):
        X = X[:]
    return Dataset(X=X, y=factors[:, 0].copy(), name="sprites", classes=list(SHAPES), factors=factors,
                   factor_names=list(FACTOR_NAMES))


# ------------------------------------------------------------------------------ user files


def _npz_arrays(path: Path, label_column: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    with z:
        keys = list(z.keys())
        x_key = next((k for k in ("X", "x", "data") if k in keys), keys[0] if len(keys) == 1 else None)
        if x_key is None:
            raise DataError(f"{path}: cannot tell which array is the data among {keys}; name it 'X' (and labels 'y')")
        y_key = label_column or next((k for k in ("y", "labels") if k in keys), None)
        if label_column is not None and label_column not in keys:
            raise DataError(f"{path}: no array named {label_column!r} for the labels; arrays are {keys}")
        try:
            return z[x_key], (z[y_key] if y_key else None)
        except ValueError as e:
            raise DataError(f"{path}: cannot load without unpickling ({e}); save numeric arrays with np.savez") from None


def _as_examples(arr: np.ndarray, where: str) -> np.ndarray:
    """A user array as float32 examples: 1-d -> (N, 1), 3-d -> (N, 1, H, W) images, 2-d/4-d kept."""
    if arr.ndim == 0 or arr.size == 0:
        raise DataError(f"{where}: array of shape {arr.shape} has no examples; need at least one row")
    if arr.ndim > 4:
        raise DataError(f"{where}: array of shape {arr.shape} has {arr.ndim} dims; use (N, D) tables or (N, C, H, W) images")
    X = to_float32(arr, where)
    if X.ndim == 1:
        X = X[:, None]
    elif X.ndim == 3:
        X = X[:, None]
    check_finite(X, where)
    return X


def _load_user_file(path: Path, split: str, label_column: str | None) -> Loaded:
    suffix = path.suffix.lower()
    if split not in ("train", "test", "all"):
        raise DataError(f"split {split!r} is not valid for a file; choose train, test or all")
    require_file(path)
    if suffix in (".csv", ".parquet"):
        _check_width(path, _table_width(path))
        X, y, classes = read_table(path, label_column)
    else:
        if suffix == ".npy":
            if label_column is not None:
                raise DataError(f"{path}: a .npy file holds one array, so label_column (--label-column) cannot apply; use .npz with X and y")
            arr, labels = load_npy(path), None
        else:
            arr, labels = _npz_arrays(path, label_column)
        X = _as_examples(arr, str(path))
        if X.ndim == 2:
            _check_width(path, X.shape[1])
        classes = None
        if labels is not None:
            labels = labels.reshape(-1) if labels.ndim > 1 and labels.size == len(labels) else labels
            if labels.ndim != 1 or len(labels) != len(X):
                raise DataError(f"{path}: labels of shape {labels.shape} do not match {len(X)} examples; need shape ({len(X)},)")
            classes = label_classes(labels)
            labels = encode_labels(labels, classes, str(path))
        y = labels
    idx = _fixed_split(len(X), split)
    return X[idx], (None if y is None else y[idx]), classes


# A table is modelled with a dense first layer of (columns x hidden) weights: a million columns
# would be gigabytes of parameters and optimizer state. Wider tables are refused before they are read.
MAX_TABLE_COLUMNS = 100_000
_MAX_HEADER_BYTES = 16 << 20


def _table_width(path: Path) -> int | None:
    """The number of columns in a CSV's header or a Parquet file's schema, without reading the rows
    (None when it cannot be told; the full read then reports the problem)."""
    import csv

    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return len(pq.read_schema(path).names)
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            line = f.readline(_MAX_HEADER_BYTES)
        if len(line) >= _MAX_HEADER_BYTES and not line.endswith("\n"):
            return MAX_TABLE_COLUMNS + 1  # a header line of 16 MB has more columns than any table we model
        return len(next(csv.reader([line]), []))
    except Exception:  # noqa: BLE001 -- pyarrow and csv raise many types; read_table reports them properly
        return None


def _check_width(path: Path, columns: int | None) -> None:
    if columns is not None and columns > MAX_TABLE_COLUMNS:
        raise DataError(f"{path} has {columns} columns, more than the {MAX_TABLE_COLUMNS} vaekit models a table with; "
                        "keep only the feature columns you need")


# ------------------------------------------------------------------------------ entry point


def load_dataset(
    source: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    label_column: str | None = None,
    limit: int | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    strict: bool = False,
    stream: bool | None = None,
) -> Dataset:
    """Load a named dataset, a user file or a folder of images as a :class:`Dataset`.

    ``source``: one of :data:`NAMED_SOURCES`, a path to a .npy, .npz, .csv or .parquet file, or a
    folder of images (PNG, JPEG, ...; one subfolder per class gives labels, see
    :mod:`vaekit.data.images`).
    ``split``: 'train', 'test' or 'all' ('valid' too for binarized-mnist). MNIST and Fashion use
    their official split ('all' = train + test); sources without one (frey-face, digits, user
    files) use a fixed 90/10 partition (``np.random.default_rng(0).permutation``), kept in file order.
    ``data_dir``: folder holding the named dataset's files (skips the cache and downloads).
    ``label_column``: for tables, the column with class labels (strings are mapped to indices and
    their names put in ``classes``); for .npz, the name of the label array.
    ``limit``: keep only the first ``limit`` examples of the split (sprites: a seeded sample that covers every factor).
    ``image_size``, ``channels``, ``strict``: for image folders only: resize and centre-crop every
    image to ``image_size`` squared; 1 (grey) or 3 (RGB) channels; fail on an unreadable file
    instead of skipping it with a warning. ``stream``: decode the folder's images on demand instead
    of all at once (:class:`vaekit.data.stream.StreamedImages` stands in for ``X``); None (the
    default) streams only when the decoded split would not fit in the memory available (sprites: beyond 2 GiB).
    Raises :class:`DataError` for unknown sources or splits, missing files and bad data.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise DataError(f"limit must be a positive whole number of examples, got {limit!r}")
    if source == "sprites":  # rendered (vaekit.data.sprites), not read from files: its own loader checks what applies
        return _load_sprites(split, data_dir, limit, stream, label_column=label_column, folder_only=(image_size, channels, strict))
    is_folder = source not in NAMED_SOURCES and Path(source).expanduser().is_dir()
    if (image_size is not None or channels is not None or strict or stream) and not is_folder:
        raise DataError(f"image_size, channels, strict and stream apply to folders of images, not to {source!r}")
    if source in NAMED_SOURCES:
        if split not in NAMED_SOURCES[source]:
            raise DataError(f"{source} has no split {split!r}; choose one of {', '.join(NAMED_SOURCES[source])}")
        if label_column is not None:
            raise DataError(f"label_column (--label-column) applies to user files, not to the named dataset {source!r}")
        X, y, classes = _load_named(source, split, data_dir, download)
        name = source
    elif is_folder:
        if split not in ("train", "test", "all"):
            raise DataError(f"split {split!r} is not valid for an image folder; choose train, test or all")
        if label_column is not None:
            raise DataError("label_column applies to tables; a folder of images takes its labels from its class "
                            "subfolders")
        name = Path(source).expanduser().resolve().name
        if stream or (stream is None and _too_big_for_memory(source, split, image_size, channels, limit)):
            X, y, classes = stream_image_folder(source, image_size=image_size, channels=channels, strict=strict)
            idx = _fixed_split(len(X), split)[:limit]
            if len(idx) == 0:
                raise DataError(f"{source} split {split!r} has no examples; pick another split or a larger folder")
            return Dataset(X=X.subset(idx), y=None if y is None else y[idx], name=name, classes=classes)
        X, y, classes = read_image_folder(source, image_size=image_size, channels=channels, strict=strict)
        idx = _fixed_split(len(X), split)
        X, y = X[idx], (None if y is None else y[idx])
    else:
        path = Path(source).expanduser()
        if path.suffix.lower() not in USER_SUFFIXES:
            raise DataError(
                f"unknown data source {source!r}; use one of {', '.join(NAMED_SOURCES)} "
                f"or a path to a {', '.join(USER_SUFFIXES)} file or a folder of images"
            )
        X, y, classes = _load_user_file(path, split, label_column)
        name = path.stem
    if limit is not None:
        X, y = X[:limit], (None if y is None else y[:limit])
    if len(X) == 0:
        raise DataError(f"{source} split {split!r} has no examples; pick another split or a larger file")
    if X.dtype == np.uint8:
        X = X.astype(np.float32) / np.float32(255.0)  # 8-bit pixels -> [0, 1]
    X = np.ascontiguousarray(X, dtype=np.float32)
    return Dataset(X=X, y=y, name=name, classes=classes)


def _too_big_for_memory(source, split: str, image_size: int | None, channels: int | None, limit: int | None) -> bool:
    """Whether a folder's split, decoded to float32, would exceed STREAM_SHARE of the available memory.

    Estimated from the file count and the first file's header, before anything is decoded (a full
    header scan happens anyway on either path, once).
    """
    from .images import _probe, scan_image_folder

    folder = scan_image_folder(source)
    n = len(_fixed_split(len(folder.files), split)[:limit])
    for f in folder.files[:20]:  # the first readable header gives the size
        probe = _probe(f)
        if not isinstance(probe, str):
            (w, h), grey = probe
            side = (image_size, image_size) if image_size else (h, w)
            c = channels or (1 if grey else 3)
            return n * c * side[0] * side[1] * 4 > STREAM_SHARE * available_memory()
    return False  # unreadable headers: the in-memory path reports them


def load_run_dataset(meta: dict, split: str = "test", *, source: str | None = None, data_dir=None, label_column: str | None = None,
                     limit: int | None = None, image_size: int | None = None, channels: int | None = None,
                     strict: bool = False, stream: bool | None = None) -> Dataset:
    """The data a run was trained on, read the way its model needs it.

    ``meta`` is the ``"run"`` section of the run's config.json (dataset, data_dir, label_column,
    image_size, channels as ``vaekit train`` recorded them; empty for a model saved from Python).
    ``source`` and the other arguments override it; a folder of images is brought to the size and
    channels the model was trained on unless they are given.
    """
    given = source is not None
    if not isinstance(meta, dict):
        raise DataError(f"the run's config.json has a \"run\" section that is not a JSON object ({meta!r:.40}); pass --dataset")
    source = source or meta.get("dataset") or "embedded"
    if not given:
        _check_run_source(source, meta)
        data_dir = data_dir or meta.get("data_dir")
        label_column = label_column or meta.get("label_column")
    if source not in NAMED_SOURCES and Path(str(source)).expanduser().is_dir():
        image_size = image_size or meta.get("image_size")
        channels = channels or meta.get("channels")
    return load_dataset(source, split, data_dir=data_dir, label_column=label_column, limit=limit,
                        image_size=image_size, channels=channels, strict=strict, stream=stream)


# A run folder is untrusted input: its recorded data path is followed only when it is what a run
# can have been trained on. The walk of a folder stops early, so "dataset": "/" is refused at once
# rather than walking the whole file system.
MAX_RUN_FOLDER_ENTRIES = 1_000_000
_MAX_OTHER_ENTRIES = 1000


def _check_run_source(source, meta: dict) -> None:
    """DataError unless the run's recorded dataset is a named source, a data file, or a folder of images."""
    hint = "pass --dataset to say which data to use"
    for key in ("dataset", "data_dir", "label_column"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise DataError(f"the run's config.json records {key} {meta[key]!r}, which is not a name or a path; {hint}")
    if source in NAMED_SOURCES:
        return
    path = Path(source).expanduser()
    if path.is_file() and path.suffix.lower() in USER_SUFFIXES:
        return
    if not path.is_dir():
        what = "does not exist here" if not path.exists() else "is not a .npy, .npz, .csv or .parquet file nor a folder"
        raise DataError(f"the run was trained on {source}, which {what}; {hint}")
    _check_image_folder(path, hint)


def _check_image_folder(root: Path, hint: str) -> None:
    """Walk ``root`` (no symlinks followed) and stop as soon as it is plainly not a folder of images."""
    from .images import IMAGE_SUFFIXES

    images = others = 0
    stack = [root]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                        others += 1
                    elif Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                        images += 1
                    else:
                        others += 1
                    if images + others > MAX_RUN_FOLDER_ENTRIES or (others > _MAX_OTHER_ENTRIES and others > images):
                        raise DataError(f"the run was trained on {root}, which is not a folder of images of a size "
                                        f"vaekit would have trained on; {hint}")
        except PermissionError:
            others += 1
