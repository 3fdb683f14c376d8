"""Anomaly detectors with the scikit-learn / PyOD interface, built on vaekit's autoencoders.

    >>> from vaekit.anomaly import VAEDetector, load_detector
    >>> det = VAEDetector(contamination=0.01).fit(X_train)   # rows mostly normal; no labels
    >>> det.decision_function(X_new)      # higher = more anomalous
    >>> det.predict(X_new)                # 1 = anomaly, 0 = normal (PyOD's convention)
    >>> det.explain(X_new)                # each feature's share of the reconstruction term
    >>> det.save("detectors/cards"); same = load_detector("detectors/cards")

A detector is a fitted :class:`~vaekit.anomaly.table.TablePreprocessor` (columns, one-hot
categories, imputation, robust scaling: JSON), a :class:`vaekit.estimators.VAE` or
:class:`~vaekit.estimators.Autoencoder` trained on its output, and a score (``method``), higher =
more anomalous:

- ``'combined'`` (the default): the model's view of a row (a VAE's importance-weighted likelihood,
  or with ``novelty=True`` its negative ELBO; an autoencoder's distance to the nearest training
  codes, or its reconstruction error) plus the distance to the nearest training rows in the scaled
  input, each first put on the scale of its training scores (median and interquartile range). The
  model's term finds rows unlike what it learned; the neighbour term finds rows in sparse pockets
  between dense groups, which a global density misses. Without ``novelty`` the neighbours are
  drawn from the training rows a first pass finds least anomalous (docs/anomaly.md).
- ``'elbo'``: ``-(E_q[log p(x|z)] - KL(q(z|x) || p(z)))``, nats per row;
- ``'likelihood'``: ``-log (1/K) sum_k p(x, z_k) / q(z_k|x)`` (Burda et al. 2016, eq. 8), nats;
- ``'reconstruction'``: ``||x - decode(encode(x))||^2`` in scaled units, through the posterior mean;
- ``'latent'``: distance from the code to the nearest of ``n_clusters`` k-means centres;
- ``'knn'``: mean distance from the code to its ``n_neighbors`` nearest training codes.

The Monte-Carlo scores draw their standard noise ``eps`` once at fit time (seeded) and reuse it for
every row (common random numbers); the neighbour scores use a fixed, saved set of training codes.
A row's score therefore depends on that row only, never on the batch, chunk or process it is
scored in: in-memory, streamed and cluster scoring agree and a saved detector scores the same after
loading.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and IDEs follow; at run time __getattr__ imports each name on first use
    from .detectors import AutoencoderDetector, VAEDetector
    from .detectors import _standard_draws as _standard_draws  # the name 0.1.0 notebooks imported
    from .engines import score_partition
    from .options import METHODS
    from .persistence import load_detector
    from .scores import detection_metrics
    from .scoring import NONFINITE_SCORE, NonFiniteScoreWarning
    from .table import NotNumericError
    from .writer import save_detector

# Public name -> its module, imported on first use: `vaekit detect --help` reads the detectors'
# option table (vaekit.anomaly.options) without paying for torch.
_EXPORTS = {
    "VAEDetector": "detectors", "AutoencoderDetector": "detectors", "METHODS": "options", "NONFINITE_SCORE": "scoring",
    "NonFiniteScoreWarning": "scoring", "_standard_draws": "detectors", "save_detector": "writer", "load_detector": "persistence",
    "score_partition": "engines", "detection_metrics": "scores", "NotNumericError": "table",
}
_SUBMODULES = ("base", "detectors", "engines", "explain", "options", "persistence", "scores", "scoring", "table", "writer")

__all__ = ["VAEDetector", "AutoencoderDetector", "load_detector", "save_detector", "score_partition",
           "detection_metrics", "NotNumericError", "METHODS", "NONFINITE_SCORE", "NonFiniteScoreWarning"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))
