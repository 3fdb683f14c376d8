"""Epoch time of a folder of images: in memory, streamed with decoding in the training process, and
streamed with worker processes decoding ahead (the default), side by side in one run.

    python bench/stream_speed.py [--images 6000] [--epochs 2] [--threads 2] [--data-dir ../shared/data]

The folder is written once into a temporary directory from real Fashion-MNIST training images, as
PNG files in one subfolder per class. Each row trains the same VAE (784-400-20, batch 128, seed 0)
for ``--epochs`` epochs and reports the median epoch time; the load column is the time to decode the
folder up front (in memory) or to read its headers (streamed). The streamed rows must give the same final loss as the in-memory
row (same examples, same order, same values).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def write_folder(root: Path, data_dir: str, n: int) -> Path:
    from PIL import Image

    from vaekit.data.idx import read_idx

    X = read_idx(Path(data_dir) / "fashion-mnist" / "train-images-idx3-ubyte.gz")[:n]
    y = read_idx(Path(data_dir) / "fashion-mnist" / "train-labels-idx1-ubyte.gz")[:n]
    for i, (img, label) in enumerate(zip(X, y)):
        d = root / f"class{label}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:06d}.png")
    return root


def run(X, workers: int | None, epochs: int) -> tuple[float, float]:
    """(median epoch seconds, last training loss) of one fit."""
    import vaekit.train as train_mod
    from vaekit import VAE

    real = train_mod.StreamBatches
    train_mod.StreamBatches = lambda stream: real(stream, workers=workers)  # the row's decoding set-up
    try:
        est = VAE(latent_dim=20, hidden=(400,), epochs=epochs, batch_size=128, seed=0, val_fraction=0.0).fit(X)
    finally:
        train_mod.StreamBatches = real
    return statistics.median(r["seconds"] for r in est.history_), est.history_[-1]["train_loss"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--images", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from vaekit.batches import default_workers
    from vaekit.data import load_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = write_folder(Path(tmp) / "fashion", args.data_dir, args.images)
        print(f"{args.images} PNG images, {args.epochs} epochs, {args.threads} torch threads, "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"{'row':<44}{'load s':>8}{'epoch s':>9}{'x memory':>10}{'last loss':>11}")
        t = time.perf_counter()
        mem = load_dataset(str(root), "all", stream=False)
        load = time.perf_counter() - t
        base, loss = run(mem.X, None, args.epochs)
        print(f"{'in memory (decoded up front)':<44}{load:>8.1f}{base:>9.2f}{1.0:>10.2f}{loss:>11.3f}")
        t = time.perf_counter()
        st = load_dataset(str(root), "all", stream=True)  # reads every header, decodes nothing
        scan = time.perf_counter() - t
        for workers, label in ((0, "streamed, decoded in the training process"),
                               (default_workers(), f"streamed, {default_workers()} worker processes (default)")):
            secs, loss_s = run(st.X, workers, args.epochs)
            print(f"{label:<44}{scan:>8.1f}{secs:>9.2f}{secs / base:>10.2f}{loss_s:>11.3f}")
            assert np.isclose(loss_s, loss, rtol=0, atol=1e-4), (loss_s, loss)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
