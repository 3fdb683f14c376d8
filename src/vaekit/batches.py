"""Training batches from a folder of images streamed from disk (see :mod:`vaekit.data.stream`).

In memory, a training step indexes one tensor. A streamed folder is decoded instead by worker
processes of a ``torch.utils.data.DataLoader``, several batches ahead of the step that needs them,
so that decoding (Pillow, one core per worker) overlaps the forward and backward passes rather
than leaving the cores idle in turn. The order of the batches is the epoch's permutation, the same
one the in-memory path uses, so a streamed run trains on exactly the examples, in exactly the order,
that the in-memory run would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from .data.stream import StreamedImages
from .errors import DataError

__all__ = ["StreamBatches", "default_workers"]

PREFETCH = 4  # batches each worker decodes ahead


def default_workers() -> int:
    """Decoding processes: one per core, at most 4 (beyond that the training step is the bottleneck)."""
    return max(1, min(4, os.cpu_count() or 1))


class _Decode(Dataset):
    """Indexed by a whole batch of indices: returns (images, kept positions), decoded in a worker."""

    def __init__(self, stream: StreamedImages):
        self.stream = stream

    def __len__(self) -> int:
        return len(self.stream)

    def __getitem__(self, indices):
        return self.stream.batch(indices)


class _Order(Sampler):
    """Yields the batches (lists of indices) of the current epoch; set by StreamBatches.epoch."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class StreamBatches:
    """The batches of one training run over a :class:`StreamedImages`, decoded ahead by workers.

    ``workers`` 0 decodes in the training process itself (no overlap; for debugging). The worker
    processes live for the whole run (``persistent_workers``), not one epoch.
    """

    def __init__(self, stream: StreamedImages, workers: int | None = None):
        self.order = _Order()
        self.workers = default_workers() if workers is None else int(workers)
        # fork is cheap and the default on Linux, but not safe once CUDA is initialized.
        ctx = "spawn" if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        self.loader = DataLoader(_Decode(stream), sampler=self.order, batch_size=None, num_workers=self.workers,
                                 prefetch_factor=PREFETCH if self.workers else None, persistent_workers=self.workers > 0,
                                 multiprocessing_context=ctx if self.workers else None,
                                 # Its own generator: each epoch's iterator draws a worker seed, which
                                 # must not move the global stream that dynamic binarization draws from.
                                 generator=torch.Generator().manual_seed(0))

    def epoch(self, batches: list[Tensor]) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(x, kept)`` for each batch of indices in ``batches``, in order.

        ``kept`` holds the positions within the batch that decoded (all of them, unless a file
        turned out unreadable and was skipped with a warning).
        """
        self.order.batches = [b.tolist() for b in batches]
        try:
            yield from self.loader
        except DataError as e:  # re-raised from a worker with its traceback folded into the message
            found = re.findall(r"DataError: (.+)", str(e))
            raise DataError(found[-1] if found else str(e).strip().splitlines()[-1]) from None

    def close(self) -> None:
        """Stop the worker processes."""
        self.loader = None
