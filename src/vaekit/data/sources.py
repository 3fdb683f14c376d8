"""Where the named datasets' files come from, and how they are found or downloaded.

A file is looked up in this order (:func:`fetch`):

1. ``data_dir`` if the caller gave one (``--data-dir``): the file must be there, either directly or
   in a ``<dataset>/`` subfolder, and is trusted without a checksum (the user chose it);
2. the folder in env ``VAEKIT_DATA_DIR``, same layout;
3. the cache, ``$VAEKIT_CACHE_DIR/<dataset>/`` (default ``~/.cache/vaekit``);
4. a download from the mirrors, in order, unless ``download=False`` or env ``VAEKIT_OFFLINE=1``.

Downloads go to a temporary file in the cache folder, are checked against the SHA-256 below, and
only then renamed into place with :func:`os.replace` (atomic), so an interrupted or corrupted
download never leaves a file that a later run would trust. Only https URLs are fetched (plain http
only from this machine itself, a local mirror), and no file may exceed :data:`MAX_DOWNLOAD_BYTES`:
a hostile mirror or a man in the middle can neither fill the disk nor be trusted by accident.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import DataError

__all__ = ["RemoteFile", "DatasetSource", "SOURCES", "cache_dir", "fetch", "download_file", "sha256_file"]

_CHUNK = 1 << 20  # bytes per read while downloading and hashing
_TIMEOUT_S = 60.0
# The largest dataset file is binarized MNIST's training set (~40 MB); nothing legitimate is larger.
MAX_DOWNLOAD_BYTES = 256 << 20
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its local name, its SHA-256, and its name on the mirror if different."""

    name: str
    sha256: str
    remote_name: str | None = None

    @property
    def url_name(self) -> str:
        return self.remote_name or self.name


@dataclass(frozen=True)
class DatasetSource:
    """A named dataset's files (by role, e.g. ``"train_images"``) and its mirror base URLs."""

    name: str
    files: dict[str, RemoteFile]
    mirrors: tuple[str, ...]
    contents: str  # one line, for error messages: what the files are


# Checksums are those in shared/data/SHA256SUMS; see shared/data/SOURCES.md for provenance.
SOURCES: dict[str, DatasetSource] = {
    "mnist": DatasetSource(
        name="mnist",
        files={
            "train_images": RemoteFile("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            "train_labels": RemoteFile("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            "test_images": RemoteFile("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            "test_labels": RemoteFile("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        },
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",),
        contents="the MNIST IDX gzip files (LeCun, Cortes & Burges)",
    ),
    "fashion-mnist": DatasetSource(
        name="fashion-mnist",
        files={
            "train_images": RemoteFile("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
            "train_labels": RemoteFile("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
            "test_images": RemoteFile("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
            "test_labels": RemoteFile("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
        },
        # Zalando's S3 bucket over https (its website endpoint speaks only http), then the repository.
        mirrors=("https://s3.eu-central-1.amazonaws.com/fashion-mnist/",
                 "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
        contents="the Fashion-MNIST IDX gzip files (Zalando Research)",
    ),
    "frey-face": DatasetSource(
        name="frey-face",
        files={
            "faces": RemoteFile("frey_rawface.mat", "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64"),
        },
        mirrors=("https://cs.nyu.edu/~roweis/data/",),
        contents="frey_rawface.mat from Sam Roweis' data page (variable 'ff', 560 x 1965 uint8)",
    ),
    # Larochelle & Murray's fixed binarization. The copies with these checksums are MATLAB v5 files
    # that the ARM-gradient repository stores under a misleading .amat name; Larochelle's own
    # text .amat files hold the same pixels but different bytes, so they are not a mirror here.
    "binarized-mnist": DatasetSource(
        name="binarized-mnist",
        files={
            split: RemoteFile(f"binarized_mnist_{split}.mat", sha, remote_name=f"binarized_mnist_{split}.amat")
            for split, sha in {
                "train": "79a0312c7389d855cfc97e3812de3998417c5829d8a51543b56a90a91252ae7e",
                "valid": "7436afc856959075c7787025bb8a4ba2b520b9230ee39667c66aa7dd2819dd68",
                "test": "5bc30222e1e7896cbccd1e1db6b28540cc1230f4d2d5473841a5f6cc54be8d38",
            }.items()
        },
        mirrors=("https://raw.githubusercontent.com/mingzhang-yin/ARM-gradient/9b5f74da4e4009c5556e8d7a87c88c8e291c253d/",),
        contents="binarized_mnist_{train,valid,test}.mat (MATLAB v5, variable 'X', N x 784 uint8 in {0,1})",
    ),
}


def cache_dir() -> Path:
    """The download cache root: env ``VAEKIT_CACHE_DIR``, else ``~/.cache/vaekit``."""
    return Path(os.environ.get("VAEKIT_CACHE_DIR") or Path.home() / ".cache" / "vaekit").expanduser()


def _offline() -> bool:
    return os.environ.get("VAEKIT_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _source(dataset: str) -> DatasetSource:
    try:
        return SOURCES[dataset]
    except KeyError:
        raise DataError(f"no downloadable dataset named {dataset!r}; choose one of {', '.join(SOURCES)}") from None


def _in_dir(folder: Path, dataset: str, name: str) -> Path | None:
    """``folder/name`` or ``folder/<dataset>/name``, whichever exists first."""
    for candidate in (folder / name, folder / dataset / name):
        if candidate.is_file():
            return candidate
    return None


def _mirror_urls(src: DatasetSource, mirrors: list[str] | tuple[str, ...] | str | None) -> list[str]:
    """Base URLs to try: the argument, else env VAEKIT_MIRROR (comma-separated), else the defaults.

    ``{dataset}`` in a base URL is replaced by the dataset name, so one VAEKIT_MIRROR can serve all.
    """
    if mirrors is None:
        env = os.environ.get("VAEKIT_MIRROR", "").strip()
        mirrors = [m for m in env.split(",") if m.strip()] if env else list(src.mirrors)
    elif isinstance(mirrors, str):
        mirrors = [mirrors]
    bases = [m.strip().replace("{dataset}", src.name) for m in mirrors]
    return [b if b.endswith("/") else b + "/" for b in bases]


def fetch(
    dataset: str,
    role: str,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    mirrors: list[str] | tuple[str, ...] | str | None = None,
) -> Path:
    """Path to one file of a named dataset, downloading it into the cache if needed.

    ``role`` is a key of ``SOURCES[dataset].files`` (e.g. ``"train_images"``). See the module
    docstring for the lookup order. Raises :class:`DataError` when the file is not in ``data_dir``,
    or is nowhere and downloading is off or fails.
    """
    src = _source(dataset)
    try:
        remote = src.files[role]
    except KeyError:
        raise DataError(f"dataset {dataset!r} has no file {role!r}; known: {', '.join(src.files)}") from None

    if data_dir is not None:
        found = _in_dir(Path(data_dir).expanduser(), dataset, remote.name)
        if found is None:
            raise DataError(
                f"{remote.name} not found in --data-dir {data_dir} (nor in {Path(data_dir) / dataset}); "
                f"it should hold {src.contents}"
            )
        return found

    env_dir = os.environ.get("VAEKIT_DATA_DIR")
    if env_dir and (found := _in_dir(Path(env_dir).expanduser(), dataset, remote.name)):
        return found

    cached = cache_dir() / dataset / remote.name
    if cached.is_file():
        return cached  # verified when it was downloaded, and only ever written atomically

    if not download or _offline():
        why = "VAEKIT_OFFLINE=1 is set" if _offline() else "downloading is turned off"
        raise DataError(
            f"{dataset} file {remote.name} is not in the cache {cached.parent} and {why}; "
            f"pass --data-dir pointing at {src.contents}"
        )
    urls = [base + remote.url_name for base in _mirror_urls(src, mirrors)]
    return download_file(urls, cached, remote.sha256)


def _check_url(url: str) -> None:
    """ValueError unless ``url`` is https, or http to this machine (a local mirror, never the network)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return
    raise ValueError(f"refused: only https URLs are downloaded (got {parts.scheme or 'no'} scheme)")


def _download_one(url: str, tmp: Path, desc: str) -> str:
    """Stream ``url`` into ``tmp``; return its SHA-256. Raises OSError/URLError/ValueError on failure."""
    _check_url(url)
    h = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp, open(tmp, "wb") as out:
        _check_url(resp.geturl() if hasattr(resp, "geturl") else url)  # a redirect may not downgrade to http
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > MAX_DOWNLOAD_BYTES:
            raise OSError(f"the server offers {total} bytes, more than the {MAX_DOWNLOAD_BYTES} cap")
        done = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not sys.stderr.isatty()) as bar:
            while block := resp.read(_CHUNK):
                out.write(block)
                h.update(block)
                done += len(block)
                bar.update(len(block))
                if done > MAX_DOWNLOAD_BYTES:
                    raise OSError(f"stopped after {done} bytes, more than the {MAX_DOWNLOAD_BYTES} cap")
        if total is not None and done != total:
            raise OSError(f"connection closed after {done} of {total} bytes")
    return h.hexdigest()


def download_file(urls: list[str], dest: str | os.PathLike, sha256: str) -> Path:
    """Download the first URL that yields a file with checksum ``sha256`` to ``dest``, atomically.

    Tries each URL in order. Each attempt writes to a temporary file beside ``dest`` that is
    removed on any failure; only a verified file is renamed to ``dest``. Returns ``dest``.
    Raises :class:`DataError` listing every URL tried and why it failed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            got = _download_one(url, tmp, dest.name)
            if got != sha256:
                failures.append(f"{url}: checksum {got[:12]}... != expected {sha256[:12]}...")
                continue
            os.replace(tmp, dest)
            return dest
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
            # HTTPException: e.g. IncompleteRead when the server hangs up mid-file;
            # ValueError: a malformed URL (e.g. a bad VAEKIT_MIRROR).
            failures.append(f"{url}: {getattr(e, 'reason', None) or e}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError(
        f"could not download {dest.name} ({'; '.join(failures) or 'no mirror URLs'}); "
        "check the network or VAEKIT_MIRROR, or download the file yourself and pass --data-dir"
    )
