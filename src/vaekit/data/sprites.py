"""Sprites: the dSprites factor grid (Matthey et al. 2017), rendered by vaekit itself, no download.

Five factors, each image a pure function of its place in the grid (row-major in this order, the
last factor fastest, as in the published file):

============ ===== ==================================================================
factor       size  values
============ ===== ==================================================================
shape        3     square, ellipse, heart
scale        6     ``linspace(0.5, 1, 6)``
orientation  40    ``2π k / 40``, k = 0..39 (counter-clockwise)
pos_x        32    the shape's centre at x = 16..47 pixels from the left edge
pos_y        32    the shape's centre at y = 16..47 pixels from the top edge
============ ===== ==================================================================

3 x 6 x 40 x 32 x 32 = 737 280 binary 64 x 64 images. A shape is drawn once per (shape, scale,
orientation) into a 33 x 33 patch, centred on the corner between its pixels 15 and 16 (so an
unrotated square's edges fall on pixel edges: 20 x 20 pixels at scale 1), with 4 x 4 samples per
pixel (a pixel is on when at least half of its samples are inside the shape), and translated by
whole pixels, so moving a sprite never changes its pixels, only where they are. At scale 1 the square's side is 20 pixels and its rotated
diagonal (28.3 pixels) still fits the patch, so every sprite lies wholly inside the frame, as the
published layout keeps them.

:class:`SpriteImages` stands where the image array would (it is a
:class:`~vaekit.data.stream.StreamedImages`, so training decodes it in worker processes):
indexing renders just the images asked for. A real ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``
found in the data folder is read instead (:func:`read_dsprites_file`): only its ``imgs`` and
``latents_classes`` arrays, never the pickled ``metadata``, its images kept bit-packed
(512 bytes each) and unpacked when indexed.

How close to the published set (docs/images/sprites-contact-sheet.png shows the generated shapes;
no copy of the published file was at hand to set beside them): the grid, its order and the factor
classes are the published ones, so a model or metric sees the same structure. The drawings are
vaekit's own: the square's side runs from 10 to 20 pixels, the ellipse is 2:1, the heart is the
classic implicit curve; the published sprites are of similar size and style but not pixel-identical.
The published orientations are 40 values over [0, 2π] inclusive (its README), so its first and last
orientation coincide; here they are 2πk/40, 40 distinct angles. Symmetry leaves orientation
partly unidentifiable in both (a square repeats every π/2, an ellipse every π).
"""

from __future__ import annotations

import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import DataError
from .stream import StreamedImages

__all__ = ["FACTOR_NAMES", "FACTOR_SIZES", "SHAPES", "N_SPRITES", "DSPRITES_FILE", "SpriteImages", "factor_classes",
           "factor_values", "render", "read_dsprites_file", "cover_order"]

FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPES = ["square", "ellipse", "heart"]
N_SPRITES = int(np.prod(FACTOR_SIZES))  # 737 280
SIDE = 64
DSPRITES_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"

_PATCH = 33  # the sprite's box, pixels
_CENTRE = 16.0  # where the shape's centre lies in the patch: a pixel corner
_HALF_SIDE = 10.0  # pixels from the centre to the square's edge at scale 1
_SUPERSAMPLE = 4
_ELLIPSE_AXES = (1.0, 0.5)  # semi-axes in units of the square's half side


def factor_classes(indices) -> np.ndarray:
    """The factor classes (int64 ``(n, 5)``: shape, scale, orientation, pos_x, pos_y) of grid indices."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= N_SPRITES):
        raise DataError(f"sprite indices must lie in [0, {N_SPRITES}), got range [{idx.min()}, {idx.max()}]")
    return np.stack(np.unravel_index(idx, FACTOR_SIZES), axis=1).astype(np.int64)


def factor_values(classes: np.ndarray) -> np.ndarray:
    """The factors' values (float64 ``(n, 5)``): shape 1..3 as dSprites numbers them, scale in [0.5, 1],
    orientation in radians, positions in [0, 1]."""
    c = np.asarray(classes, dtype=np.int64)
    return np.stack([c[:, 0] + 1.0, 0.5 + 0.1 * c[:, 1], 2 * np.pi * c[:, 2] / FACTOR_SIZES[2],
                     c[:, 3] / (FACTOR_SIZES[3] - 1), c[:, 4] / (FACTOR_SIZES[4] - 1)], axis=1)


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether the points (u, v) (units of the square's half side, v up) lie inside the unrotated shape."""
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) <= 1.0
    if shape == 1:
        a, b = _ELLIPSE_AXES
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    # The classic heart curve (x² + y² - 1)³ = x² y³, brought to the box [-1, 1]² and centred on it
    # (its extent is |x| <= 1.1394, -1 <= y <= 1.2361, found numerically).
    x, y = u * 1.1394, (v * 1.11805 + 0.11805)
    return (x * x + y * y - 1.0) ** 3 - x * x * y**3 <= 0.0


@lru_cache(maxsize=1)
def _patches() -> np.ndarray:
    """Every (shape, scale, orientation) sprite as a bool ``(3, 6, 40, 33, 33)`` patch, centred."""
    k = _SUPERSAMPLE
    offs = (np.arange(_PATCH * k) + 0.5) / k - _CENTRE  # sample positions relative to the centre, pixels
    col, row = np.meshgrid(offs, offs)
    x, y = col, -row  # y up, so a positive angle turns counter-clockwise on screen
    out = np.zeros((*FACTOR_SIZES[:3], _PATCH, _PATCH), dtype=bool)
    for o in range(FACTOR_SIZES[2]):
        t = 2 * np.pi * o / FACTOR_SIZES[2]
        ur, vr = np.cos(t) * x + np.sin(t) * y, -np.sin(t) * x + np.cos(t) * y  # rotate the frame back by t
        for s in range(FACTOR_SIZES[1]):
            r = _HALF_SIDE * (0.5 + 0.1 * s)
            for shape in range(FACTOR_SIZES[0]):
                hit = _inside(shape, ur / r, vr / r).reshape(_PATCH, k, _PATCH, k)
                out[shape, s, o] = hit.mean(axis=(1, 3)) >= 0.5
    return out


def render(indices) -> np.ndarray:
    """The images at grid ``indices``: float32 ``(n, 1, 64, 64)`` of 0 and 1."""
    c = factor_classes(indices)
    n = len(c)
    out = np.zeros((n, 1, SIDE, SIDE), dtype=np.float32)
    if n == 0:
        return out
    span = np.arange(_PATCH)
    rows = (c[:, 4, None] + span)[:, :, None]  # pos_y k puts the patch's top row at row k
    cols = (c[:, 3, None] + span)[:, None, :]
    out[np.arange(n)[:, None, None], 0, rows, cols] = _patches()[c[:, 0], c[:, 1], c[:, 2]]
    return out


class SpriteImages(StreamedImages):
    """Sprites at grid indices, rendered (or unpacked from a real file's bits) when indexed.

    Stands where a float32 ``(n, 1, 64, 64)`` array would; ``packed`` (uint8 ``(n, 512)``, from
    :func:`read_dsprites_file`) holds the real file's images for these indices when one was read.
    """

    example_shape = (1, SIDE, SIDE)
    strict = True

    def __init__(self, indices, packed: np.ndarray | None = None):  # noqa: D107 -- no files to keep
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        self.packed = packed
        if packed is not None and packed.shape != (len(self.indices), SIDE * SIDE // 8):
            raise DataError(f"packed sprite images of shape {packed.shape} do not match {len(self.indices)} indices")

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.indices), *self.example_shape)

    def subset(self, idx) -> SpriteImages:
        picked = np.arange(len(self.indices))[idx]
        return SpriteImages(self.indices[picked], None if self.packed is None else self.packed[picked])

    def decode(self, i: int) -> np.ndarray:
        return self._images(np.array([i]))[0]

    def _images(self, positions: np.ndarray) -> np.ndarray:
        if self.packed is None:
            return render(self.indices[positions])
        bits = np.unpackbits(self.packed[positions], axis=1)
        return bits.reshape(-1, *self.example_shape).astype(np.float32)

    def batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        positions = np.asarray(indices, dtype=np.int64).reshape(-1)
        return self._images(positions), np.arange(len(positions), dtype=np.int64)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.decode(int(key) % len(self))
        return self._images(np.arange(len(self.indices))[key].reshape(-1))

    def __repr__(self) -> str:
        source = "the real dSprites file" if self.packed is not None else "rendered on demand"
        return f"SpriteImages({len(self)} sprites, {source})"


def cover_order(indices: np.ndarray, seed: int = 0) -> np.ndarray:
    """``indices`` in a seeded random order whose first examples cover every value of every factor.

    The covering examples (40 to 113 of them, one per factor value at most) are picked greedily from a
    seeded permutation, so any prefix of 113 or more (``--limit N``) shows the model every shape,
    scale, orientation and position; the rest of the order is that permutation.
    """
    order = np.random.default_rng(seed).permutation(np.asarray(indices, dtype=np.int64))
    classes = factor_classes(order)
    missing = [np.ones(size, dtype=bool) for size in FACTOR_SIZES]
    first = []
    for pos in range(len(order)):  # greedy: take an example when it shows some value not yet seen
        row = classes[pos]
        if any(missing[f][row[f]] for f in range(len(FACTOR_SIZES))):
            first.append(pos)
            for f in range(len(FACTOR_SIZES)):
                missing[f][row[f]] = False
            if not any(m.any() for m in missing):
                break
    rest = np.ones(len(order), dtype=bool)
    rest[first] = False
    return np.concatenate([order[first], order[rest]])


# ------------------------------------------------------------------------------ the published file

_READ_ROWS = 8192  # rows decompressed at a time: 32 MiB of uint8 images


def _npy_member(z: zipfile.ZipFile, name: str, path: Path):
    """An open stream positioned at the data of ``name``.npy in the archive, and its (shape, dtype)."""
    try:
        f = z.open(f"{name}.npy")
    except KeyError:
        raise DataError(f"{path}: no array {name!r}; is this the dSprites file {DSPRITES_FILE}?") from None
    version = np.lib.format.read_magic(f)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read_header is None:
        f.close()
        raise DataError(f"{path}: array {name!r} is in .npy format {version}, which vaekit does not read; re-download the file")
    shape, fortran, dtype = read_header(f)
    if fortran or dtype.hasobject:
        f.close()
        raise DataError(f"{path}: array {name!r} is stored in an unexpected form ({dtype}, fortran={fortran}); "
                        "re-download the dSprites file")
    return f, shape, dtype


def read_dsprites_file(path, indices) -> tuple[np.ndarray, np.ndarray]:
    """The published file's images at grid ``indices`` (bit-packed uint8 ``(n, 512)``) and factor classes.

    Reads the archive's ``imgs`` in chunks of :data:`_READ_ROWS` rows (never the 3 GB array) and its
    ``latents_classes`` with ``allow_pickle=False``; the pickled ``metadata`` is never opened.
    The color column of ``latents_classes`` (always 0) is dropped, leaving the five factors.
    ``indices`` must be sorted. Raises :class:`DataError` for a file of another layout.
    """
    path = Path(path)
    wanted = np.asarray(indices, dtype=np.int64)
    try:
        with np.load(path, allow_pickle=False) as z:
            latents = z["latents_classes"] if "latents_classes" in z.files else None
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e}); re-download {DSPRITES_FILE}") from None
    if latents is None or latents.shape != (N_SPRITES, 6):
        got = None if latents is None else latents.shape
        raise DataError(f"{path}: latents_classes has shape {got}, not ({N_SPRITES}, 6); is this {DSPRITES_FILE}?")
    classes = latents[wanted, 1:].astype(np.int64)
    if not np.array_equal(classes, factor_classes(wanted)):
        raise DataError(f"{path}: its images are not in the dSprites grid order (color, shape, scale, orientation, x, y); "
                        f"use the published {DSPRITES_FILE}")
    packed = np.empty((len(wanted), SIDE * SIDE // 8), dtype=np.uint8)
    with zipfile.ZipFile(path) as z:
        f, shape, dtype = _npy_member(z, "imgs", path)
        with f:
            if tuple(shape) != (N_SPRITES, SIDE, SIDE) or dtype.itemsize != 1:
                raise DataError(f"{path}: imgs is {dtype} {shape}, not uint8 ({N_SPRITES}, 64, 64); is this {DSPRITES_FILE}?")
            for start in range(0, N_SPRITES, _READ_ROWS):
                if len(wanted) == 0 or start > wanted[-1]:
                    break  # the rows after the last one wanted are never decompressed
                stop = min(start + _READ_ROWS, N_SPRITES)
                lo, hi = np.searchsorted(wanted, [start, stop])
                raw = f.read((stop - start) * SIDE * SIDE)
                if len(raw) != (stop - start) * SIDE * SIDE:
                    raise DataError(f"{path}: imgs ends early (row {start}); the file is truncated, re-download it")
                if hi > lo:
                    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, SIDE * SIDE)[wanted[lo:hi] - start]
                    packed[lo:hi] = np.packbits(rows != 0, axis=1)
    return packed, classes
