"""A folder of the user's own images (PNG, JPEG, ...) as a :class:`~vaekit.data.Dataset`.

Conventions follow torchvision's ImageFolder, which most users already know:

- the folder is searched recursively for files with an image suffix (:data:`IMAGE_SUFFIXES`);
- when every image lies in a direct subfolder of the root and there are at least two such
  subfolders, each subfolder is a class and its name the class name (classes sorted by name, so
  the mapping is the same on every machine); otherwise the images have no labels;
- every image is brought to one size and one number of channels: ``image_size=N`` resizes the
  shorter side to N and crops the centre N x N; without it all images must already share one size.
  ``channels`` is 1 (grey) or 3 (RGB); by default 1 when every file is grey, else 3.

Files that Pillow cannot decode (a corrupt JPEG, a text file named .png) or that are larger than
:data:`MAX_IMAGE_PIXELS` (a decompression bomb: a small file that claims 30000 x 30000 pixels) are
skipped with one warning line each, or rejected when ``strict=True``. Decoding runs in worker processes for large
folders, so that a 2-core machine decodes on both cores.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["IMAGE_SUFFIXES", "ImageFolder", "scan_image_folder", "checked_images", "read_image_folder", "decode_image"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_DEEP_MODES = {"I", "I;16", "I;16B", "I;16L", "F"}
_GREY_MODES = {"1", "L", "LA"} | _DEEP_MODES
# Below this many files a process pool costs more to start than it saves.
_POOL_MIN_FILES = 2000
# The largest image vaekit decodes (8192 x 8192): far above what a VAE trains on, far below the
# gigabytes a crafted file of a few kilobytes can claim. Checked from the header, before decoding.
MAX_IMAGE_PIXELS = 1 << 26


class ImageTooLarge(ValueError):
    """An image whose header claims more pixels than :data:`MAX_IMAGE_PIXELS`."""


@dataclass(frozen=True)
class ImageFolder:
    """What a scan of a folder found: the image files in a fixed order, their labels, the classes."""

    root: Path
    files: tuple[Path, ...]
    labels: np.ndarray | None  # int64 class index per file, or None when the folder has no classes
    classes: list[str] | None


def scan_image_folder(root: str | os.PathLike) -> ImageFolder:
    """List the images under ``root`` (recursively, sorted) and infer class labels from subfolders.

    Raises :class:`DataError` when ``root`` is not a folder or holds no image file.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}; check the path")
    files = sorted(
        (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not files:
        raise DataError(
            f"{root} is a folder with no image files (looked for {', '.join(IMAGE_SUFFIXES)} in it and its "
            "subfolders); pass a folder of images, or the path of a .npy, .npz, .csv or .parquet file"
        )
    parts = [p.relative_to(root).parts for p in files]
    top = sorted({q[0] for q in parts if len(q) > 1})
    # ImageFolder's convention: one subfolder per class, and no loose images beside them.
    if len(top) >= 2 and all(len(q) > 1 for q in parts):
        index = {name: i for i, name in enumerate(top)}
        labels = np.array([index[q[0]] for q in parts], dtype=np.int64)
        return ImageFolder(root, tuple(files), labels, top)
    return ImageFolder(root, tuple(files), None, None)


def decode_image(path: Path, channels: int | None, image_size: int | None) -> np.ndarray:
    """One image as uint8 ``(C, H, W)`` (or float32 in [0, 1] for 16-bit and float images).

    ``channels`` None keeps the file's (1 for grey modes, else 3). ``image_size`` resizes the
    shorter side to that many pixels (Lanczos) and crops the centre square.
    Raises OSError/ValueError from Pillow for a file it cannot decode.
    """
    with _open_image(path) as im:
        im.load()
        c = channels or (1 if _is_grey(im) else 3)
        # 16-bit and float grey images keep their depth; everything else becomes 8-bit L or RGB.
        deep = c == 1 and im.mode in _DEEP_MODES
        scale = 1.0
        if deep:
            scale = 65535.0 if im.mode.startswith("I") else 1.0
            im = (im if im.mode == "F" else im.convert("I")).convert("F")
        else:
            im = im.convert("L" if c == 1 else "RGB")
        if image_size is not None:
            im = _resize_crop(im, image_size)
        arr = np.asarray(im)
    if deep:
        return np.clip(arr.astype(np.float32) / np.float32(scale), 0, 1)[None]
    return arr[None].copy() if c == 1 else arr.transpose(2, 0, 1).copy()


@contextlib.contextmanager
def _open_image(path: Path) -> Iterator:
    """Pillow's image of ``path``, refused with :class:`ImageTooLarge` when its header claims too many pixels.

    Pillow's own guard warns (DecompressionBombWarning) from 89 megapixels and raises only from
    twice that; both, and our lower limit, become the one ValueError that callers skip or report.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLarge(f"too many pixels to decode safely ({e})") from None
    with im:
        w, h = im.size
        if w * h > MAX_IMAGE_PIXELS:
            raise ImageTooLarge(f"{w} x {h} pixels, more than the {MAX_IMAGE_PIXELS} vaekit decodes")
        yield im


def _is_grey(im) -> bool:
    return im.mode in _GREY_MODES or (im.mode == "P" and _palette_is_grey(im))


def _palette_is_grey(im) -> bool:
    pal = im.getpalette() or []
    rgb = np.asarray(pal[: (len(pal) // 3) * 3]).reshape(-1, 3)
    return bool(len(rgb) and np.all(rgb[:, 0] == rgb[:, 1]) and np.all(rgb[:, 1] == rgb[:, 2]))


def _resize_crop(im, size: int):
    from PIL import Image

    w, h = im.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((nw, nh), Image.Resampling.LANCZOS)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


def _probe(path: Path) -> tuple[tuple[int, int], bool] | str:
    """(width, height), is_grey from the file's header; an error string when Pillow cannot read it."""
    try:
        with _open_image(path) as im:
            return im.size, _is_grey(im)
    except (OSError, ValueError, SyntaxError) as e:  # Pillow's UnidentifiedImageError is an OSError
        return f"{type(e).__name__}: {e}"


def _decode_chunk(args: tuple[Sequence[Path], int, int | None]) -> list[np.ndarray | str]:
    files, channels, size = args
    out: list[np.ndarray | str] = []
    for f in files:
        try:
            out.append(decode_image(f, channels, size))
        except (OSError, ValueError, SyntaxError) as e:
            out.append(f"{type(e).__name__}: {e}")
    return out


def read_image_folder(
    root: str | os.PathLike,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    strict: bool = False,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Decode every image under ``root``: ``(X, y, classes)`` with X ``(N, C, H, W)``.

    X is uint8 for 8-bit images (the caller scales it to [0, 1]) and float32 in [0, 1] for 16-bit
    grey ones. ``y``/``classes`` follow the subfolder convention of :func:`scan_image_folder`.
    ``strict``: a file Pillow cannot read is an error instead of a skipped file with a warning.
    ``workers``: decoding processes (default: the CPU count for folders of 2000+ images, else 1).
    Raises :class:`DataError` for a missing or empty folder, mixed sizes without ``image_size``,
    a bad ``image_size``/``channels``, or (strict) an unreadable file.
    """
    folder, keep, channels, n_bad = checked_images(root, image_size=image_size, channels=channels, strict=strict)
    files = [folder.files[i] for i in keep]
    decoded = _decode_all(files, channels, image_size, workers)
    late_bad = {keep[j]: d for j, d in enumerate(decoded) if isinstance(d, str)}
    _report_bad(folder, late_bad, strict)
    good = [j for j, d in enumerate(decoded) if not isinstance(d, str)]
    if not good:
        raise DataError(f"{folder.root}: none of its {len(folder.files)} image files could be decoded; check the files")
    arrays = [decoded[j] for j in good]
    if any(a.dtype != np.uint8 for a in arrays):
        arrays = [a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a for a in arrays]
    X = np.stack(arrays)
    y = None if folder.labels is None else folder.labels[[keep[j] for j in good]]
    _warn_skipped(folder, n_bad + len(late_bad))
    return X, y, folder.classes


def checked_images(root: str | os.PathLike, *, image_size: int | None = None, channels: int | None = None,
                   strict: bool = False) -> tuple[ImageFolder, list[int], int, int]:
    """Scan ``root`` and read every file's header: ``(folder, readable indices, channels, skipped count)``.

    What both the in-memory path and the stream need before decoding: unreadable files reported
    (or, ``strict``, an error), the common size checked, the channels chosen.
    """
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer))
                                   or image_size < 1):
        raise DataError(f"image_size must be a positive whole number of pixels, got {image_size!r}")
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    folder = scan_image_folder(root)
    probes = [_probe(f) for f in folder.files]
    bad = {i: p for i, p in enumerate(probes) if isinstance(p, str)}
    keep = [i for i in range(len(probes)) if i not in bad]
    _report_bad(folder, bad, strict)
    if not keep:
        raise DataError(f"{folder.root}: none of its {len(folder.files)} image files could be read; check the files")
    sizes = {probes[i][0] for i in keep}
    if image_size is None and len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:4]) + (" ..." if len(sizes) > 4 else "")
        raise DataError(
            f"{folder.root}: images have {len(sizes)} different sizes ({shown}); "
            "pass image_size (--image-size N) to resize and centre-crop them to N x N"
        )
    if channels is None:
        channels = 1 if all(probes[i][1] for i in keep) else 3
    return folder, keep, channels, len(bad)


def _warn_skipped(folder: ImageFolder, n_bad: int) -> None:
    if n_bad:
        warnings.warn(f"{folder.root}: skipped {n_bad} unreadable file(s) of {len(folder.files)}", stacklevel=3)


def _report_bad(folder: ImageFolder, bad: dict[int, str], strict: bool) -> None:
    for i, why in bad.items():
        where = folder.files[i]
        if strict:
            raise DataError(f"{where}: not a readable image ({why}); remove it, or drop --strict to skip such files")
        warnings.warn(f"skipping {where}: not a readable image ({why})", stacklevel=3)


def _decode_all(files: list[Path], channels: int, size: int | None, workers: int | None) -> list[np.ndarray | str]:
    n_workers = workers if workers is not None else (os.cpu_count() or 1 if len(files) >= _POOL_MIN_FILES else 1)
    if n_workers <= 1:
        return _decode_chunk((files, channels, size))
    chunk = max(64, len(files) // (8 * n_workers))
    jobs = [(files[i : i + chunk], channels, size) for i in range(0, len(files), chunk)]
    with ProcessPoolExecutor(n_workers) as pool:
        return [d for part in pool.map(_decode_chunk, jobs) for d in part]
