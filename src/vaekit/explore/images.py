"""Examples as pictures: which shapes are images, and the PNGs the page shows (one image or a strip)."""

from __future__ import annotations

import math

import numpy as np

from .png import encode_png


def image_shape(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """(H, W) or (H, W, 3) when examples of this shape are images, else None (a table).

    (C, H, W) arrays are images; a flat vector is one when its length is a square of at least
    8 x 8 (a flattened 28 x 28 digit), since short square tables (4 or 9 features) are not pictures.
    """
    if len(shape) == 3:
        c, h, w = shape
        return (h, w) if c == 1 else (h, w, 3)
    if len(shape) == 1:
        side = math.isqrt(shape[0])
        if side * side == shape[0] and side >= 8:
            return (side, side)
    return None


def strip_png(X: np.ndarray, shape: tuple[int, ...]) -> bytes:
    """Examples X (N, *shape) in data units as one PNG: the images side by side with a one-pixel white gap."""
    from ..plots import as_images, tile

    imgs = as_images(np.asarray(X).reshape(len(X), *shape))
    return encode_png(imgs[0] if len(imgs) == 1 else tile(imgs, len(imgs), pad=1)[1:-1, 1:-1])
