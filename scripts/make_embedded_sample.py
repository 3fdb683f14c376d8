"""Build src/vaekit/data/mnist_sample.npz, the small real-MNIST sample that ships with vaekit.

Draws a class-balanced sample with a fixed seed: 500 images per digit from the MNIST training
files and 100 per digit from the test files, kept in MNIST order. Checks the source files'
SHA-256 first, so the sample is reproducible byte for byte from the same inputs.

    python scripts/make_embedded_sample.py [--data-dir ../shared/data/mnist] [--out PATH]

See src/vaekit/data/EMBEDDED.md for provenance and licence.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from vaekit.data.idx import read_idx  # noqa: E402
from vaekit.data.sources import SOURCES, sha256_file  # noqa: E402

SEED = 0
PER_CLASS = {"train": 500, "test": 100}


def balanced_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` indices of each class 0..9 drawn without replacement, sorted (MNIST order)."""
    picks = [rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(picks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "mnist")
    parser.add_argument("--out", type=Path, default=REPO / "src" / "vaekit" / "data" / "mnist_sample.npz")
    args = parser.parse_args()

    files = SOURCES["mnist"].files
    for remote in files.values():
        got = sha256_file(args.data_dir / remote.name)
        if got != remote.sha256:
            sys.exit(f"{remote.name}: sha256 {got} != expected {remote.sha256}; use the original MNIST files")
        print(f"ok  {remote.sha256}  {remote.name}")

    rng = np.random.default_rng(SEED)
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):  # this order is part of the recipe: it fixes the rng draws
        images = read_idx(args.data_dir / files[f"{split}_images"].name)
        labels = read_idx(args.data_dir / files[f"{split}_labels"].name)
        idx = balanced_indices(labels, PER_CLASS[split], rng)
        arrays[f"x_{split}"] = images[idx].astype(np.uint8)
        arrays[f"y_{split}"] = labels[idx].astype(np.uint8)
        arrays[f"idx_{split}"] = idx.astype(np.int32)  # positions in the source file, for provenance

    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, sha256 {sha256_file(args.out)})")
    for k, v in arrays.items():
        print(f"  {k}: {v.shape} {v.dtype}")


if __name__ == "__main__":
    main()
