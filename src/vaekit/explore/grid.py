"""A discrete-code model's grid of codebook entries (a VQ-VAE, vaekit.vq): an example's grid, and an
edited grid decoded, for the page's *Code grid* panel (``/grid.json``, ``/decode-grid``)."""

from __future__ import annotations

import numpy as np

from .errors import RequestError
from .images import strip_png


class CodeGrid:
    """The code grid of the examples an :class:`~vaekit.explore.explorer.Explorer` holds."""

    def __init__(self, explorer):  # noqa: D107 -- reads the explorer's model, calls and examples
        self.ex = explorer

    def size(self) -> tuple[int, int, int]:
        """(rows, cols, codebook size) of the grid, or a RequestError for a model whose code is a vector."""
        caps = self.ex.caps
        if not caps.code_grid:
            raise RequestError(f"this {caps.title}'s code is a vector, not a grid of codebook entries (only a VQ-VAE has one); "
                               "use /decode with z= instead")
        cfg = self.ex.model.config
        return int(cfg.grid[0]), int(cfg.grid[1]), int(cfg.codebook_size)

    def of_example(self, i: int) -> list[list[int]]:
        """The codebook entry of each cell of example i's grid, row by row."""
        self.size()
        return self.ex.calls.indices(self.ex.X[i : i + 1])[0].tolist()

    def png(self, grid: np.ndarray) -> bytes:
        """The image an index grid (rows, cols) decodes to, as a PNG: an example's grid with cells edited."""
        self.size()
        return strip_png(self.ex.calls.decode_indices(grid[None]), self.ex.shape)
