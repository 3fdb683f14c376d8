"""User tables and arrays: CSV, Parquet and .npy read in chunks, with one set of checks.

:func:`iter_table_chunks` streams a file in blocks of rows so that scoring a file larger than
memory stays flat in memory; :func:`read_table` is the same stream gathered into one array, so a
full load and a streamed load can never disagree about what a file contains or which rows are bad.

Checks, each a :class:`DataError` that says where and what to do: a header row is required
(CSV); every feature cell must be numeric (the row and column of the first bad cell are named);
rows must all have the header's number of fields; no NaN or Inf anywhere (the count and first
location are named); at least one row and one feature column. A column name that is not in the
file is named with the near miss (``did you mean 'fraud'?``, see :func:`column_hint`).

The delimiter of a CSV is sniffed (:func:`sniff_delimiter`): a file whose header has no comma but
splits on ``;``, a tab or ``|`` is read with that delimiter, with a one-line note.
"""

from __future__ import annotations

import csv
import difflib
import functools
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["iter_table_chunks", "read_table", "check_finite", "encode_labels", "to_float32", "TABLE_SUFFIXES",
           "column_hint", "sniff_delimiter"]

TABLE_SUFFIXES = (".csv", ".parquet", ".npy")


# ---------------------------------------------------------------- checks shared with datasets.py


def require_file(path: Path) -> None:
    """A DataError unless ``path`` is an existing regular file."""
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a data file; pass the path of a .npy, .npz, .csv or .parquet file "
                        "(a folder of images is read by load_dataset / --dataset)")
    if not path.is_file():
        raise DataError(f"data file not found: {path}; check the path")


_FIX_NONFINITE = "clean or impute the data before training"


def check_finite(X: np.ndarray, where: str, row_offset: int = 0, columns: list | None = None, fix: str = _FIX_NONFINITE) -> None:
    """Raise DataError if ``X`` holds NaN or Inf, naming the count and the first (row, column).

    ``row_offset`` is added to row numbers (for chunks); ``columns`` names the columns of a 2-d X;
    ``fix`` is the advice that ends the message.
    """
    bad = ~np.isfinite(X)
    if not bad.any():
        return
    first = np.unravel_index(int(np.argmax(bad.reshape(-1))), X.shape)
    row, rest = int(first[0]) + row_offset, tuple(int(i) for i in first[1:])
    col = rest[0] if len(rest) == 1 else rest
    if columns is not None and len(rest) == 1:
        col = repr(columns[rest[0]])
    raise DataError(
        f"{where}: {int(bad.sum())} NaN/Inf value(s), first at row {row}, column {col} "
        f"(value {X[first]}); {fix}"
    )


def to_float(arr: np.ndarray, where: str, dtype=np.float32) -> np.ndarray:
    """:func:`to_float32`, then ``dtype``: float64 keeps values beyond float32's range (1e39) finite."""
    if dtype == np.float32 or arr.dtype == np.uint8:
        return to_float32(arr, where).astype(dtype, copy=False)
    to_float32(arr[:0], where)  # the dtype check alone
    return arr.astype(dtype, copy=False)


def to_float32(arr: np.ndarray, where: str) -> np.ndarray:
    """An array as float32: uint8 is taken as 8-bit pixels and scaled to [0, 1], others kept raw."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if arr.dtype.kind not in "biuf":
        raise DataError(
            f"{where}: array has dtype {arr.dtype}, not numbers; save numeric features "
            "(e.g. np.save(path, X.astype('float32')))"
        )
    return arr.astype(np.float32, copy=False)


def _is_whole(values: np.ndarray) -> bool:
    if values.dtype.kind in "biu":
        return True
    if values.dtype.kind == "f":
        return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))
    return False


def label_classes(values: np.ndarray) -> list[str] | None:
    """Class names for label values, or None where the labels are already indices (ints >= 0).

    Anything else (strings, negative or fractional numbers) is mapped to the sorted unique values.
    """
    if _is_whole(values) and (values.size == 0 or values.min() >= 0):
        return None
    return [str(v) for v in np.unique(values.astype(str) if values.dtype.kind not in "biuf" else values)]


def encode_labels(values: np.ndarray, classes: list[str] | None, where: str, row_offset: int = 0) -> np.ndarray:
    """Labels as int64 class indices; ``classes`` from :func:`label_classes` over the whole file."""
    values = np.asarray(values)
    if values.dtype.kind == "O":
        missing = pd.isna(values)
        if missing.any():
            row = int(np.argmax(missing)) + row_offset
            raise DataError(f"{where}: {int(missing.sum())} missing label(s), first at row {row}; fill or drop those rows")
    elif values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        row = int(np.argmax(~np.isfinite(values))) + row_offset
        raise DataError(f"{where}: missing or non-finite label at row {row}; fill or drop those rows")
    if classes is None:
        return values.astype(np.int64)
    lookup = {name: i for i, name in enumerate(classes)}
    keys = values.astype(str) if values.dtype.kind not in "biuf" else values
    try:
        return np.fromiter((lookup[str(k)] for k in keys), dtype=np.int64, count=len(keys))
    except KeyError as e:
        raise DataError(f"{where}: label {e.args[0]!r} was not seen when the classes were listed; the file changed while reading") from None


# ---------------------------------------------------------------- column names and delimiters


def column_hint(name: str, columns) -> str:
    """The end of a "no column named ..." message: the near miss, else the columns (at most 20 shown).

    A name that differs only in case is suggested first (``Fraud`` -> ``'fraud'``), then the
    closest name by :func:`difflib.get_close_matches`.
    """
    names = [str(c) for c in columns]
    same_case = [c for c in names if c.lower() == str(name).lower()]
    near = same_case or difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
    if not near:
        lowered = {c.lower(): c for c in names}
        near = [lowered[m] for m in difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.6)]
    if near:
        return f"; did you mean {near[0]!r}?"
    shown = ", ".join(repr(c) for c in names[:20])
    more = f", ... ({len(names)} columns in all)" if len(names) > 20 else ""
    return f"; columns are {shown}{more}"


_SNIFF_BYTES = 16384
_DELIMITERS = ";\t|"


def sniff_delimiter(path: str | os.PathLike) -> str:
    """The delimiter of a CSV file: ``,`` unless its header has no comma and splits on ``;``, a tab or ``|``.

    csv.Sniffer looks at the first 16 KB among ``; \\t |``; a header with a comma always means a
    comma-separated file, so a comma CSV is never re-read another way. The first time a file is
    found to use another delimiter, a one-line warning says so.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return ","
    return _sniff(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _sniff(path: str, mtime_ns: int, size: int) -> str:
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            sample = f.read(_SNIFF_BYTES)
    except OSError:
        return ","
    header = sample.split("\n", 1)[0]
    if "," in header or not any(d in header for d in _DELIMITERS):
        return ","
    if "\n" in sample[:-1]:
        sample = sample[: sample.rindex("\n")]  # whole lines only
    try:
        found = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        found = max(_DELIMITERS, key=header.count)
    if found not in header:
        return ","
    names = {";": "semicolon", "\t": "tab", "|": "pipe"}
    warnings.warn(f"{path} is {names[found]}-separated (no comma in its header); reading it with {found!r} as the delimiter",
                  stacklevel=2)
    return found


# ---------------------------------------------------------------- CSV and Parquet as DataFrames


def _first_ragged_row(path: Path) -> tuple[int, int, int] | None:
    """(line number, fields found, fields expected) of the first row unlike the header, or None."""
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter=sniff_delimiter(path))
        header = next(reader, None)
        if header is None:
            return None
        for row in reader:
            if row and len(row) != len(header):  # pandas skips blank lines, so do we
                return reader.line_num, len(row), len(header)
    return None


def _ragged_error(path: Path) -> DataError | None:
    found = _first_ragged_row(path)
    if found is None:
        return None
    line, got, want = found
    return DataError(
        f"{path}: line {line} has {got} fields but the header has {want}; fix that row (ragged rows "
        "usually mean an unquoted comma or a missing value)"
    )


@contextmanager
def _parser_warnings_as_errors() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        yield


def _csv_frames(path: Path, chunk_rows: int, usecols: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """Chunks of a CSV as DataFrames; ragged rows and parser errors become DataError."""
    try:
        # index_col=False stops pandas from quietly using column 0 as an index when a row has an
        # extra field; it then warns and drops data instead, which we make an error. The warning
        # filter is set around each read, never across a yield, so it cannot leak to the caller.
        with _parser_warnings_as_errors():
            reader = pd.read_csv(path, chunksize=chunk_rows, index_col=False, usecols=usecols, sep=sniff_delimiter(path))
        with reader:
            while True:
                with _parser_warnings_as_errors():
                    chunk = next(reader, None)
                if chunk is None:
                    return
                yield chunk
    except (pd.errors.ParserError, pd.errors.ParserWarning) as e:
        raise (_ragged_error(path) or DataError(f"{path}: cannot parse CSV ({e}); check the file's format")) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; it needs a header row and at least one data row") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e}); save the CSV as UTF-8") from None
    except ValueError as e:
        if usecols is not None and "Usecols" in str(e):
            raise DataError(f"{path}: no column named {usecols[0]!r}{_csv_column_hint(path, usecols[0])}") from None
        raise


def _csv_column_hint(path: Path, name: str) -> str:
    try:
        return column_hint(name, pd.read_csv(path, nrows=0, sep=sniff_delimiter(path)).columns)
    except Exception:  # noqa: BLE001 - the hint is a courtesy; the error stands without it
        return "; check the column name"


def _parquet_frames(path: Path, chunk_rows: int, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        if columns is not None and (missing := [c for c in columns if c not in names]):
            raise DataError(f"{path}: no column named {missing[0]!r}{column_hint(missing[0], names)}")
        if pf.metadata.num_rows == 0:
            yield pd.DataFrame(columns=names if columns is None else columns)
            return
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=columns):
            yield batch.to_pandas()
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: cannot read Parquet ({e}); check that the file is complete") from None


def table_frames(path: Path, chunk_rows: int, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    if path.suffix.lower() == ".csv":
        return _csv_frames(path, chunk_rows, columns)
    return _parquet_frames(path, chunk_rows, columns)


def _check_header(path: Path, columns: pd.Index) -> None:
    def numeric(name: object) -> bool:
        try:
            float(str(name))
            return True
        except ValueError:
            return False

    if path.suffix.lower() == ".csv" and len(columns) and all(numeric(c) for c in columns):
        raise DataError(
            f"{path}: the first row ({', '.join(map(str, columns[:5]))}...) looks like data, not a header; "
            "add a header row with column names"
        )


def _features(df: pd.DataFrame, path: Path, row_offset: int, dtype=np.float32) -> np.ndarray:
    """A DataFrame of feature columns as ``dtype``, or DataError naming the first non-numeric cell."""
    for name in df.columns:
        col = df[name]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            continue
        coerced = pd.to_numeric(col, errors="coerce")
        bad = coerced.isna().to_numpy() & col.notna().to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            line = f" (line {row_offset + i + 2})" if path.suffix.lower() == ".csv" else ""
            raise DataError(
                f"{path}: non-numeric value {col.iloc[i]!r} in column {name!r} at row {row_offset + i}{line}; "
                f"features must be numbers (drop or encode that column, or pass it as --label-column){_separator_hint(col.iloc[i])}"
            )
        df[name] = coerced
    return df.to_numpy(dtype=dtype)


def _separator_hint(value: object) -> str:
    """Advice for a bad cell that holds a whole line of another delimiter, or a decimal comma."""
    text = str(value)
    for sep, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
        if sep in text:
            return (f"; the cell holds {name}s, so the file looks {name}-separated: give it a header without commas "
                    "(the delimiter is then detected) or save it as comma-separated")
    if "," in text and text.replace(",", "", 1).lstrip("+-").isdigit():
        return "; it looks like a decimal comma: save the numbers with a decimal point"
    return ""


def _label_plan(path: Path, label_column: str) -> list[str] | None:
    """A pass over the label column only, so that every chunk maps labels to the same indices."""
    values = [df[label_column].to_numpy() for df in table_frames(path, 1 << 18, [label_column])]
    allv = np.concatenate(values) if values else np.array([], dtype=np.int64)
    if allv.dtype.kind == "O":
        missing = pd.isna(allv)
        if missing.any():
            raise DataError(
                f"{path}: {int(missing.sum())} missing label(s) in column {label_column!r}, first at row "
                f"{int(np.argmax(missing))}; fill or drop those rows"
            )
        allv = allv.astype(str)
    return label_classes(allv)


# ---------------------------------------------------------------- public


def iter_table_chunks(
    path: str | os.PathLike,
    chunk_rows: int = 65536,
    label_column: str | None = None,
    id_column: str | None = None,
    *,
    dtype=np.float32,
    nonfinite: str | None = _FIX_NONFINITE,
    drop_columns: tuple[str, ...] | list[str] = (),
) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """Stream a CSV, Parquet or .npy file as ``(X, y, ids)`` chunks of up to ``chunk_rows`` rows.

    ``X`` is float32 ``(n, D)`` of raw values (a .npy of uint8 is scaled to [0, 1], as
    :func:`~vaekit.data.load_dataset` does); ``y`` is int64 class indices from ``label_column`` or
    None; ``ids`` is the ``id_column`` values (any dtype) or None. Memory stays flat in file size:
    CSV is read with pandas' ``chunksize``, Parquet batch by batch, .npy through a memory map.
    String labels are listed in a first pass over the label column, so indices agree across chunks.
    Raises :class:`DataError` for the problems listed in the module docstring.

    ``dtype=np.float64`` keeps values beyond float32's range as they are (an anomaly detector
    clips them itself); ``nonfinite`` is the advice of the NaN/Inf error, or None to let NaN and
    Inf through (for a caller that imputes them). ``drop_columns`` are left out of ``X`` unread
    (an ID column of text, a column a detector does not use).
    """
    path = Path(path).expanduser()
    if chunk_rows < 1:
        raise DataError(f"chunk_rows must be at least 1, got {chunk_rows}")
    require_file(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if label_column is not None or id_column is not None:
            raise DataError(f"{path}: a .npy file has no named columns, so label/id columns cannot be used; use CSV or Parquet")
        yield from _npy_chunks(path, chunk_rows, dtype, nonfinite)
        return
    if suffix not in (".csv", ".parquet"):
        raise DataError(f"cannot stream {path}: unsupported type {suffix!r}; use .csv, .parquet or .npy")

    classes = _label_plan(path, label_column) if label_column is not None else None
    yield from _table_chunks(path, chunk_rows, label_column, id_column, classes, dtype, nonfinite, tuple(drop_columns))


def _table_chunks(
    path: Path, chunk_rows: int, label_column: str | None, id_column: str | None, classes: list[str] | None,
    dtype=np.float32, nonfinite: str | None = _FIX_NONFINITE, drop_columns: tuple[str, ...] = (),
) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]:
    suffix = path.suffix.lower()
    offset, seen_any = 0, False
    for df in table_frames(path, chunk_rows):
        if not seen_any:
            _check_header(path, df.columns)
            for col in (label_column, id_column):
                if col is not None and col not in df.columns:
                    raise DataError(f"{path}: no column named {col!r}{column_hint(col, df.columns)}")
        y = encode_labels(df.pop(label_column).to_numpy(), classes, str(path), offset) if label_column else None
        ids = df.pop(id_column).to_numpy() if id_column else None
        if drop_columns:
            df = df.drop(columns=[c for c in drop_columns if c in df.columns])
        if df.shape[1] == 0:
            raise DataError(f"{path}: no feature columns left after removing label/id columns")
        X = _features(df, path, offset, dtype)
        if not np.isfinite(X).all() and suffix == ".csv":
            # A short row shows up as NaN in pandas; say "ragged" when that is the real cause.
            if (err := _ragged_error(path)) is not None:
                raise err
        if nonfinite is not None:
            check_finite(X, str(path), offset, list(df.columns), nonfinite)
        if len(X):
            seen_any = True
            yield X, y, ids
        offset += len(X)
    if not seen_any:
        raise DataError(f"{path} has no data rows; it needs at least one row below the header")


def _npy_chunks(path: Path, chunk_rows: int, dtype=np.float32, nonfinite: str | None = _FIX_NONFINITE) -> Iterator[tuple[np.ndarray, None, None]]:
    arr = load_npy(path, mmap=True)
    for start in range(0, len(arr), chunk_rows):
        X = to_float(np.asarray(arr[start : start + chunk_rows]), str(path), dtype)
        X = X.reshape(len(X), -1) if X.ndim == 1 else X
        if nonfinite is not None:
            check_finite(X, str(path), start, fix=nonfinite)
        yield X, None, None


def load_npy(path: Path, mmap: bool = False) -> np.ndarray:
    """np.load without pickle; an empty array or a scalar is DataError."""
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as e:
        # allow_pickle=False refuses object arrays, which could run code when loaded.
        raise DataError(f"{path}: cannot load without unpickling ({e}); save a numeric array with np.save") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy file ({e})") from None
    except Exception as e:  # noqa: BLE001 - a damaged header makes numpy's parser raise almost anything
        raise DataError(f"{path}: damaged .npy header ({type(e).__name__}: {e}); re-save the array with np.save") from None
    if arr.ndim == 0 or arr.shape[0] == 0 or arr.size == 0:
        raise DataError(f"{path}: array of shape {arr.shape} has no examples; need at least one row")
    return arr


def read_table(
    path: str | os.PathLike, label_column: str | None = None
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """A whole CSV or Parquet file as ``(X float32 (N, D), y int64 (N,) or None, classes or None)``.

    The same stream and checks as :func:`iter_table_chunks`, gathered.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise DataError(f"read_table reads .csv or .parquet, not {path}")
    require_file(path)
    classes = _label_plan(path, label_column) if label_column is not None else None
    Xs, ys = [], []
    for X, y, _ in _table_chunks(path, 65536, label_column, None, classes):
        Xs.append(X)
        ys.append(y)
    y_all = np.concatenate(ys) if label_column is not None else None
    return np.concatenate(Xs), y_all, classes
