"""What a saved-format fixture is checked against: the numbers its model gave when it was written
(tests/fixtures/*/expected.json), recomputed from the folder as this version loads it."""

from __future__ import annotations

import numpy as np
import torch

from vaekit.data import load_dataset
from vaekit.evaluate import iw_log_likelihood


def sums(a: np.ndarray) -> np.ndarray:
    """One number per example: a reconstruction's or sample's pixel sum."""
    return a.reshape(len(a), -1).sum(1)


def check_numbers(est, want: dict) -> None:
    """Codes, reconstructions, IW log-likelihood and samples of four embedded test images, as recorded."""
    X = load_dataset("embedded", "test", limit=4).X
    np.testing.assert_allclose(est.encode(X), want["encode"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sums(est.reconstruct(X)), want["reconstruct"], rtol=1e-5, atol=1e-5)
    got = iw_log_likelihood(est.model_, torch.from_numpy(X), None, k=7, seed=3).numpy()
    np.testing.assert_allclose(got, want["iw_log_likelihood"], rtol=1e-5)
    np.testing.assert_allclose(sums(est.sample(2, seed=4)), want["sample"], rtol=1e-5, atol=1e-5)
