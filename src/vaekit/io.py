"""The old name of :mod:`vaekit.runfolder`, kept so that ``from vaekit.io import load`` (vaekit 0.1.0's
documented path) still works; it warns once. New code: ``vaekit.load`` or ``vaekit.runfolder``."""

from __future__ import annotations

import warnings

from .runfolder import Decoder, Encoder, load, load_decoder, load_encoder

__all__ = ["Decoder", "Encoder", "load", "load_decoder", "load_encoder"]

warnings.warn("vaekit.io is now vaekit.runfolder; import load, load_encoder and load_decoder from vaekit (or vaekit.runfolder)",
              DeprecationWarning, stacklevel=2)
