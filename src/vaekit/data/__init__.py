"""Data for vaekit: named datasets (MNIST, Fashion-MNIST, binarized MNIST, Frey Face, digits, an
embedded MNIST sample), user tables and arrays, and the IDX format.

    >>> from vaekit.data import load_dataset
    >>> ds = load_dataset("embedded", "test")      # ships with vaekit, no download
    >>> ds.X.shape, ds.X.dtype                      # ((1000, 1, 28, 28), dtype('float32'))
"""

from .datasets import (
    DIGIT_CLASSES,
    FASHION_CLASSES,
    NAMED_SOURCES,
    Dataset,
    binarize,
    load_dataset,
    load_run_dataset,
)
from .idx import read_idx, write_idx
from .sources import SOURCES, cache_dir, download_file, fetch, sha256_file
from .tables import iter_table_chunks, read_table

__all__ = [
    "Dataset",
    "load_dataset",
    "load_run_dataset",
    "binarize",
    "NAMED_SOURCES",
    "DIGIT_CLASSES",
    "FASHION_CLASSES",
    "read_idx",
    "write_idx",
    "SOURCES",
    "cache_dir",
    "fetch",
    "download_file",
    "sha256_file",
    "iter_table_chunks",
    "read_table",
]
