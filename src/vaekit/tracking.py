"""Experiment tracking: every epoch of a fit written to TensorBoard.

:class:`TensorBoardTracker` is an ``on_epoch`` callback for :meth:`vaekit.VAE.fit` (and
``vaekit train --tensorboard DIR``). Per epoch it writes each loss term of the training and
validation rows (in nats per example, under ``train/`` and ``val/``), the learning rate, the epoch's
seconds, and, for a VAE, the KL of each latent dimension to its prior marginal (``kl_dim/j``, nats:
the validation split's, as training logs it, else measured on ``X_val``; skipped, with a text note
under ``notes/kl_dim``, for a prior without per-dimension marginals, such as two stochastic
layers). Every ``image_every`` epochs, and at the last, it adds a grid of samples from the prior and of validation reconstructions (originals above
reconstructions) for image data.

TensorBoard is an optional extra: ``pip install vaekit[tensorboard]``.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .errors import ConfigError

__all__ = ["TensorBoardTracker", "require_tensorboard"]


def require_tensorboard():
    """torch's SummaryWriter class; a one-line ConfigError when the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "writing TensorBoard logs needs the tensorboard package; install it with: pip install 'vaekit[tensorboard]'"
        ) from None
    return SummaryWriter


class TensorBoardTracker:
    """Writes a fit's epochs to an event file in ``log_dir`` (see the module docstring).

    ``est``: the estimator being fitted (read at each epoch, so it may be fitted after this is made).
    ``X_val``/``y_val``: a few validation examples for the KL per dimension and the reconstruction
    grid (at most ``max_examples`` are used). ``image_every``: epochs between image grids; 0 for none.
    """

    def __init__(self, log_dir: str | os.PathLike, est, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
                 *, image_every: int = 5, n_images: int = 16, max_examples: int = 1000, epochs: int | None = None):
        if isinstance(image_every, bool) or not isinstance(image_every, int) or image_every < 0:
            raise ConfigError(f"image_every must be a whole number of epochs >= 0, got {image_every!r}")
        self.writer = require_tensorboard()(log_dir=str(log_dir))
        self.est = est
        self.X_val = None if X_val is None else np.asarray(X_val)[:max_examples]
        self.y_val = None if y_val is None else np.asarray(y_val)[:max_examples]
        self.image_every = image_every
        self.n_images = n_images
        self.epochs = epochs
        self.kl_skipped: str | None = None  # why the KL per dimension is not logged, once a prior refused it

    def __call__(self, row: dict) -> None:
        if "step" in row:  # a --log-every row (vaekit.train): its terms against the optimizer step, no images
            for key, value in row.items():
                if key not in ("epoch", "step") and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"step/{key.removeprefix('train_')}", value, int(row["step"]))
            return
        epoch = int(row["epoch"])
        kl_logged = False
        for key, value in row.items():
            if key == "epoch" or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            if key.startswith("val_kl_dim_"):  # training logs KL per dimension on the validation split
                self.writer.add_scalar(f"kl_dim/{key[len('val_kl_dim_'):]}", value, epoch)
                kl_logged = True
                continue
            split, _, term = key.partition("_")
            tag = f"{split}/{term}" if split in ("train", "val") and term else key
            self.writer.add_scalar(tag, value, epoch)
        if not kl_logged and self.X_val is not None and self.kl_skipped is None and self.est.family.has_density:
            # No validation split (or a learned prior): measure it on the examples given here.
            try:
                kl = self.est.kl_per_dimension(self.X_val, self.y_val)
            except ConfigError as refusal:  # a prior without per-dimension marginals (two layers): no figure
                self.kl_skipped = str(refusal)
                self.writer.add_text("notes/kl_dim", f"KL per dimension not logged: {refusal}", epoch)
            else:
                for j, v in enumerate(kl):
                    self.writer.add_scalar(f"kl_dim/{j}", float(v), epoch)
        last = self.epochs is not None and epoch == self.epochs
        if self.image_every and (epoch % self.image_every == 0 or last or epoch == 1):
            self._images(epoch)
        self.writer.flush()

    def _images(self, epoch: int) -> None:
        from .plots import as_images, is_image_shape, tile

        shape = getattr(self.est, "input_shape_", None)
        if shape is None or not is_image_shape(shape):  # tables have no picture
            return
        ncol = int(math.ceil(math.sqrt(self.n_images)))
        if self.est.family.has_density:  # an autoencoder has no prior to draw from
            if self.est.is_conditional:  # one row per class, so that a conditional model shows what its label does
                n_classes = self.est.n_classes_
                per = max(1, self.n_images // n_classes)
                samples = np.concatenate([self.est.sample(per, label=k, seed=epoch) for k in range(n_classes)])
                ncol = per
            else:
                samples = self.est.sample(self.n_images, seed=epoch)
            self.writer.add_image("samples", _hwc(tile(as_images(samples), ncol)), epoch, dataformats="HWC")
        if self.X_val is not None:
            x = self.X_val[: self.n_images]
            y = None if self.y_val is None else self.y_val[: self.n_images]
            recon = self.est.reconstruct(x, y)
            grid = tile(as_images(np.concatenate([x, recon])), len(x))
            self.writer.add_image("reconstructions", _hwc(grid), epoch, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


def _hwc(img: np.ndarray) -> np.ndarray:
    return img[..., None] if img.ndim == 2 else img
