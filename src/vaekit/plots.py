"""Figures as PNG files, drawn with matplotlib's Agg backend (no display needed).

Each function takes arrays (not models) where it can, so that it can be used on anything, and
writes its file atomically.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .io import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def as_images(X: np.ndarray, image_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """X reshaped to (N, H, W) or (N, H, W, 3) and clipped to [0, 1] for display."""
    X = np.asarray(X, dtype=np.float32)
    if image_shape is not None:
        X = X.reshape(len(X), *image_shape)
    if X.ndim == 2:  # flat vectors: show square images when the length allows it
        side = int(round(math.sqrt(X.shape[1])))
        if side * side != X.shape[1]:
            raise ValueError(f"cannot show vectors of length {X.shape[1]} as images; they are not square")
        X = X.reshape(len(X), side, side)
    if X.ndim == 4:  # (N, C, H, W)
        X = X[:, 0] if X.shape[1] == 1 else np.moveaxis(X[:, :3], 1, -1)
    return np.clip(X, 0.0, 1.0)


def tile(images: np.ndarray, ncol: int, pad: int = 1) -> np.ndarray:
    """A grid of (N, H, W[, 3]) images, row-major, with ``pad`` pixels of white between them."""
    n, h, w = images.shape[:3]
    nrow = math.ceil(n / ncol)
    shape = (nrow * (h + pad) + pad, ncol * (w + pad) + pad) + images.shape[3:]
    canvas = np.ones(shape, dtype=np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    return canvas


def save_image_grid(path: str | Path, images: np.ndarray, ncol: int, *, title: str | None = None,
                    row_labels: list[str] | None = None, image_shape: tuple[int, ...] | None = None,
                    invert: bool = False) -> Path:
    """Save images as a grid PNG, with an optional title and a label at the left of each row.

    Pixels are drawn as stored (0 black, 1 white) unless ``invert`` is set.
    """
    plt = _pyplot()
    imgs = as_images(images, image_shape)
    if invert:
        imgs = 1.0 - imgs
    canvas = tile(imgs, ncol)
    h, w = canvas.shape[:2]
    scale = max(2.0, 6.0 / max(1, w / 60))  # keep small digits legible
    fig_w = min(16.0, max(3.0, w / 60 * scale * 0.6))
    fig_h = fig_w * h / w + (0.5 if title else 0.1)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    if row_labels:
        cell_h = imgs.shape[1] + 1
        ax.set_yticks([1 + cell_h * i + imgs.shape[1] / 2 for i in range(len(row_labels))])
        ax.set_yticklabels(row_labels)
        ax.tick_params(left=False)
    else:
        ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
