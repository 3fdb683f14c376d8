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

- ``'combined'`` (the default): the negative ELBO (an autoencoder: the reconstruction error) plus
  the distance to the nearest training codes, each first put on the scale of its training scores
  (median and interquartile range). The density term finds rows far from everything; the
  neighbour term finds rows in sparse pockets between dense groups, which a global density misses.
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

from .detectors import (
           METHODS,
           NONFINITE_SCORE,
           AutoencoderDetector,
           NonFiniteScoreWarning,
           VAEDetector,
           _standard_draws,  # noqa: F401 - the name 0.1.0's notebooks imported
           save_detector,
)
from .engines import score_partition
from .persistence import load_detector
from .scores import detection_metrics
from .table import NotNumericError

__all__ = ["VAEDetector", "AutoencoderDetector", "load_detector", "save_detector", "score_partition",
           "detection_metrics", "NotNumericError", "METHODS", "NONFINITE_SCORE", "NonFiniteScoreWarning"]
