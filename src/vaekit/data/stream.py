"""A folder of images too large for memory, decoded on demand.

:class:`StreamedImages` stands where an image array would: ``len``, ``shape``, ``ndim`` and
``dtype`` answer without decoding, and indexing decodes just the images asked for (an int gives one
``(C, H, W)`` array, a slice or index array a stacked ``(n, C, H, W)`` float32 batch, the same
values the in-memory path produces). Training does not index it one batch at a time itself:
:func:`vaekit.train.fit` hands it to a ``torch.utils.data.DataLoader`` whose worker processes
decode the next batches while the current one trains (:meth:`StreamedImages.batch`).

:func:`load_dataset` streams a folder when its decoded float32 pixels would take more than
:data:`STREAM_SHARE` of the memory available (``stream=None``), or when asked (``stream=True``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError
from .images import checked_images, decode_image

__all__ = ["StreamedImages", "is_streamed", "stream_image_folder", "available_memory", "STREAM_SHARE"]

# Decoded training data above this share of the available memory is streamed: training also needs
# room for the model, the validation split and a copy or two made on the way.
STREAM_SHARE = 0.4


class StreamedImages:
    """Image files of one size and channel count, decoded when indexed (see the module docstring)."""

    dtype = np.dtype(np.float32)
    ndim = 4

    def __init__(self, files: Sequence[Path], shape: tuple[int, int, int], channels: int, image_size: int | None,
                 strict: bool = False):
        self.files = tuple(files)
        self.example_shape = tuple(shape)
        self.channels, self.image_size, self.strict = channels, image_size, strict

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.files), *self.example_shape)

    @property
    def nbytes(self) -> int:
        """What the decoded float32 images would take in memory."""
        return int(np.prod(self.shape, dtype=np.int64)) * 4

    def subset(self, idx) -> StreamedImages:
        """The files at ``idx`` (a slice, indices or a boolean mask), still streamed."""
        picked = np.arange(len(self.files))[idx]
        return StreamedImages([self.files[i] for i in np.atleast_1d(picked)], self.example_shape, self.channels,
                              self.image_size, self.strict)

    def decode(self, i: int) -> np.ndarray:
        """Image ``i`` as float32 ``(C, H, W)`` in [0, 1]; OSError/ValueError if Pillow cannot decode it."""
        arr = decode_image(self.files[i], self.channels, self.image_size)
        arr = arr.astype(np.float32) / np.float32(255.0) if arr.dtype == np.uint8 else arr.astype(np.float32)
        if arr.shape != self.example_shape:
            raise ValueError(f"decoded to shape {arr.shape}, not {self.example_shape}")
        return arr

    def batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Decode ``indices``: ``(X, kept)``, the images and the positions in ``indices`` they came from.

        A file that passed the header check but fails to decode (a truncated JPEG) is dropped from
        the batch with one warning, or raises :class:`DataError` when ``strict``; ``kept`` lets the
        caller drop its label too.
        """
        out, kept = [], []
        for pos, i in enumerate(indices):
            try:
                out.append(self.decode(int(i)))
                kept.append(pos)
            except (OSError, ValueError, SyntaxError) as e:
                why = f"{self.files[int(i)]}: not a readable image ({type(e).__name__}: {e})"
                if self.strict:
                    raise DataError(f"{why}; remove it, or drop --strict to skip such files") from None
                warnings.warn(f"skipping {why}", stacklevel=2)
        X = np.stack(out) if out else np.empty((0, *self.example_shape), np.float32)
        return X, np.asarray(kept, dtype=np.int64)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.decode(int(key) % len(self))
        wanted = np.arange(len(self.files))[key].reshape(-1)
        X, _ = self.batch(wanted)
        if len(X) != len(wanted):  # outside training a dropped image would misalign labels
            raise DataError("an image failed to decode while reading a slice of a streamed folder; "
                            "remove the file (the warning above names it)")
        return X

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        X = self[:]
        return X if dtype is None else X.astype(dtype)

    def __repr__(self) -> str:
        return f"StreamedImages({len(self)} images of shape {self.example_shape})"


def is_streamed(X) -> bool:
    """Whether X is a :class:`StreamedImages` (decoded on demand) rather than an array in memory."""
    return isinstance(X, StreamedImages)


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux MemAvailable; else the physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: never stream unless asked


def stream_image_folder(root, *, image_size: int | None = None, channels: int | None = None,
                        strict: bool = False) -> tuple[StreamedImages, np.ndarray | None, list[str] | None]:
    """Like :func:`read_image_folder` but nothing is decoded: ``(StreamedImages, y, classes)``.

    Every header is read once (size, mode, readable), so a folder of mixed sizes without
    ``image_size``, or an unreadable file under ``strict``, fails here, before training starts.
    """
    folder, keep, channels, n_bad = checked_images(root, image_size=image_size, channels=channels, strict=strict)
    if n_bad:
        warnings.warn(f"{folder.root}: skipped {n_bad} unreadable file(s) of {len(folder.files)}", stacklevel=2)
    files = [folder.files[i] for i in keep]
    first = decode_image(files[0], channels, image_size)  # the shape every image is brought to
    stream = StreamedImages(files, first.shape, channels, image_size, strict)
    y = None if folder.labels is None else folder.labels[keep]
    return stream, y, folder.classes
