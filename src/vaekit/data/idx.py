"""Read and write IDX files, the format MNIST and Fashion-MNIST are distributed in.

Layout (http://yann.lecun.com/exdb/mnist/): two zero bytes, one dtype code byte, one byte with the
number of dimensions ``d``, then ``d`` big-endian uint32 sizes, then the values in C order,
big-endian. Files are usually gzip-compressed; we detect that from the gzip magic bytes rather
than the file name, so a gunzipped file that kept its ``.gz`` name still reads.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["read_idx", "write_idx"]

# IDX dtype codes -> big-endian numpy dtypes.
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in _DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


# A gzip stream may legitimately inflate to ~1000x its size (a file of zeros), but no real IDX file
# comes near that; an inflated size above this ratio (and above the floor, so that tiny files of
# zeros still read) is a corrupt header or a decompression bomb, refused before it is inflated.
MAX_GZIP_RATIO = 100
MIN_INFLATE_CAP = 64 << 20
_IDX_MAGIC_LEN = 4


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped if it is gzip; DataError if it is missing or corrupt.

    The inflated size is bounded before it is allocated: the IDX header (read first) says how many
    bytes follow, that size must be plausible for the compressed file, and inflating stops one byte
    past it, so neither a lying header nor a bomb behind a small header can exhaust memory.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            if head != _GZIP_MAGIC:
                return f.read()
            cap = max(MIN_INFLATE_CAP, MAX_GZIP_RATIO * os.fstat(f.fileno()).st_size)
            with gzip.GzipFile(fileobj=f) as gz:
                return _inflate_bounded(gz, path, cap)
    except FileNotFoundError:
        raise DataError(f"IDX file not found: {path}; check the path or pass --data-dir") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        # EOFError: the gzip stream ends early (a truncated download); BadGzipFile covers CRC and
        # length mismatches in the trailer.
        raise DataError(
            f"corrupt gzip in IDX file {path} ({e}); delete it and download it again"
        ) from None
    except MemoryError:
        raise DataError(f"{path}: not enough memory to read this IDX file") from None
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from None


def _inflate_bounded(gz: gzip.GzipFile, path: Path, cap: int) -> bytes:
    """The gzip stream's bytes, read no further than its IDX header says (+1 to detect extra bytes)."""
    head = gz.read(_IDX_MAGIC_LEN)
    if len(head) < _IDX_MAGIC_LEN or head[2] not in _DTYPES:
        return head + gz.read(MIN_INFLATE_CAP)  # not IDX: read_idx names the problem from these bytes
    dims = gz.read(4 * head[3])
    if len(dims) < 4 * head[3]:
        return head + dims
    shape = struct.unpack(f">{head[3]}I", dims)
    need = int(np.prod(shape, dtype=object)) * _DTYPES[head[2]].itemsize
    if need > cap:
        raise DataError(
            f"{path}: IDX header {shape} claims {need} bytes, more than {cap} for a {path.stat().st_size}-byte gzip "
            "file; the file is corrupt or a decompression bomb, download it again"
        )
    return head + dims + gz.read(need + 1)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a native-endian array.

    Returns an array whose shape is the header's dimensions and whose dtype is the header's
    (uint8 for MNIST images and labels). Raises :class:`DataError` for a bad magic number, an
    unknown dtype code, a payload that is shorter or longer than the header promises, or a
    corrupt gzip stream.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path} is not an IDX file: only {len(raw)} bytes; re-download it")
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0:
        raise DataError(
            f"{path} is not an IDX file: magic bytes {raw[:4].hex()} do not start with 0000; "
            "check that this is an MNIST-style IDX file"
        )
    if code not in _DTYPES:
        raise DataError(
            f"{path}: unknown IDX dtype code 0x{code:02x} (expected one of "
            f"{', '.join(f'0x{c:02x}' for c in _DTYPES)}); the file is corrupt or not IDX"
        )
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions; the file is corrupt")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{path}: IDX header is truncated ({len(raw)} bytes); re-download it")
    shape = struct.unpack(f">{ndim}I", raw[4:header_len])
    dtype = _DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header_len
    if got != expected:
        what = "truncated" if got < expected else "has extra bytes"
        raise DataError(
            f"{path}: IDX payload {what}: header {shape} needs {expected} bytes of {dtype.name}, "
            f"found {got}; re-download the file"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    # Native byte order so downstream torch.from_numpy works; copy also makes it writeable.
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip it when ``compress`` is True (default: name ends .gz).

    Returns the path written. Used by tests and for exporting data in MNIST's own format.
    """
    path = Path(path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise DataError(
            f"cannot write dtype {array.dtype} as IDX; convert to uint8, int8, int16, int32, "
            "float32 or float64 first"
        )
    if array.ndim == 0 or array.ndim > 255:
        raise DataError(f"cannot write a {array.ndim}-d array as IDX; need 1 to 255 dimensions")
    code = _CODES[native]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=_DTYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path
