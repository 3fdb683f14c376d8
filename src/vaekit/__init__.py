"""vaekit: autoencoders and variational autoencoders on PyTorch.

    >>> import vaekit
    >>> model = vaekit.VAE(latent_dim=2, epochs=5).fit(X)      # X: (N, D) array in [0, 1]
    >>> Z = model.encode(X); x_new = model.sample(16)
    >>> model.save("runs/my-vae"); same = vaekit.load("runs/my-vae")
    >>> sevens = vaekit.load_pretrained("mnist-cvae").sample(16, label=7)   # models shipped with vaekit

Names are imported lazily so that ``vaekit --help`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "VAE": "estimators",
    "Autoencoder": "estimators",
    "SparseAutoencoder": "estimators",
    "DenoisingAutoencoder": "estimators",
    "ConvVAE": "estimators",
    "ConditionalVAE": "estimators",
    "VQVAE": "estimators",
    "load": "runfolder",
    "load_encoder": "runfolder",
    "load_decoder": "runfolder",
    "load_pretrained": "pretrained",
    "load_dataset": "data",
    "disentanglement_scores": "disentanglement",
    "VAEDetector": "anomaly",
    "AutoencoderDetector": "anomaly",
    "load_detector": "anomaly",
    "VaekitError": "errors",
    "DataError": "errors",
    "ConfigError": "errors",
    "ModelFileError": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vaekit' has no attribute {name!r}")


def __dir__():
    return __all__
