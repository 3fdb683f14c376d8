# What `import vaekit` offers, for type checkers and IDEs: __init__.py imports these names lazily
# (so that `vaekit --help` does not import torch), which a type checker cannot follow.
# <generated signature exports: scripts/sync_signatures.py writes this block from vaekit._EXPORTS>
from .anomaly import AutoencoderDetector as AutoencoderDetector
from .anomaly import VAEDetector as VAEDetector
from .anomaly import load_detector as load_detector
from .data import load_dataset as load_dataset
from .disentanglement import disentanglement_scores as disentanglement_scores
from .errors import ConfigError as ConfigError
from .errors import DataError as DataError
from .errors import ModelFileError as ModelFileError
from .errors import VaekitError as VaekitError
from .estimators import VAE as VAE
from .estimators import VQVAE as VQVAE
from .estimators import Autoencoder as Autoencoder
from .estimators import ConditionalVAE as ConditionalVAE
from .estimators import ConvVAE as ConvVAE
from .estimators import DenoisingAutoencoder as DenoisingAutoencoder
from .estimators import SparseAutoencoder as SparseAutoencoder
from .pretrained import load_pretrained as load_pretrained
from .runfolder import load as load
from .runfolder import load_decoder as load_decoder
from .runfolder import load_encoder as load_encoder

__version__: str
# </generated signature exports>
