"""The public API used as users use it, checked by mypy (``make typecheck``), never run by pytest.

Each deliberate misuse at the bottom carries a ``# type: ignore[code]``; with ``warn_unused_ignores``
mypy fails when one of them stops being an error, so this check cannot pass by seeing only ``Any``.
"""

from __future__ import annotations

import numpy as np

import vaekit
import vaekit.anomaly
from vaekit.estimators import VAE, Autoencoder
from vaekit.train import TrainConfig

X = np.random.default_rng(0).random((64, 8), dtype=np.float32)
y = np.arange(64) % 2

vae: VAE = vaekit.VAE(latent_dim=2, epochs=1).fit(X)
Z: np.ndarray = vae.transform(X)
samples: np.ndarray = vae.sample(4, seed=1)
elbo: float = vae.score(X)
seed: int = vae.seed

ae: Autoencoder = vaekit.Autoencoder(hidden=(16, 8), latent_dim=3, likelihood="gaussian", standardize=True).fit(X)
codes: np.ndarray = ae.fit_transform(X)
back: np.ndarray = ae.inverse_transform(codes)
sparse: Autoencoder = vaekit.SparseAutoencoder(sparsity_weight=1e-2)
denoising: Autoencoder = vaekit.DenoisingAutoencoder(noise_level=0.2)
kl_sparse: Autoencoder = vaekit.SparseAutoencoder("kl", epochs=2)  # 0.1.0's positional form

images = X.reshape(64, 1, 2, 4)
conv: VAE = vaekit.ConvVAE(epochs=1).fit(images)
cvae: VAE = vaekit.ConditionalVAE(epochs=1, n_classes=2).fit(X, y)
sevens: np.ndarray = cvae.sample(4, label=1)

det = vaekit.anomaly.VAEDetector(contamination=0.05).fit(X)
anomalous: np.ndarray = det.predict(X)
scores: np.ndarray = det.decision_function(X)

vae.save("runs/typecheck")
loaded = vaekit.load("runs/typecheck")
encoder = vaekit.load_encoder("runs/typecheck")
decoder = vaekit.load_decoder("runs/typecheck")
detector = vaekit.load_detector("detectors/typecheck")

cfg = TrainConfig(epochs=3, lr=1e-2)
epochs: int = cfg.epochs

# -- deliberate misuses: each must stay an error --------------------------------------------------
vaekit.VAE(latnt_dim=2)  # type: ignore[call-arg]
vaekit.Autoencoder(prior="vamp")  # type: ignore[call-arg]
vaekit.VAE(epochs="10")  # type: ignore[arg-type]
TrainConfig(epoch=3)  # type: ignore[call-arg]
not_a_float: str = vae.score(X)  # type: ignore[assignment]
vae.sample("4")  # type: ignore[arg-type]
vaekit.ConvVAE(epochs="1")  # type: ignore[arg-type]
vaekit.SparseAutoencoder(prior="vamp")  # type: ignore[call-arg]
vaekit.ConditionalVAE("4")  # type: ignore[arg-type]
vaekit.anomaly.VAEDetector(contamnation=0.05)  # type: ignore[call-arg]
