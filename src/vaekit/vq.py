"""The VQ-VAE family (van den Oord et al. 2017): an image's code is a grid of entries of a learned codebook.

The encoder maps an image (C, H, W) to a grid of vectors z_e, D = ``latent_dim`` numbers in each of
the (H/4) x (W/4) cells (two stride-2 convolutions: 7 x 7 for MNIST, 16 x 16 for 64 x 64 sprites).
Each vector is replaced by its nearest entry e_k of a codebook of K = ``codebook_size`` entries
(quantization), and the decoder sees the grid of entries z_q. Three things make that trainable:

- **straight-through gradient**: nearest-neighbour search has no gradient, so the decoder's gradient
  with respect to z_q is handed to z_e unchanged (z_q = z_e + sg(e_k - z_e));
- **commitment loss** β ‖z_e − sg(e_k)‖² (β = ``commitment``, 0.25 as in the paper): keeps the
  encoder's outputs near the entries they chose, so they do not drift away faster than the entries follow;
- **codebook updates by exponential moving average** (the paper's appendix A.1): each entry is the
  running mean of the encoder outputs assigned to it (counts and sums decayed by ``ema_decay``), with
  no gradient and no learning rate of its own.

An entry that no output chooses any more is dead weight, and a codebook whose entries die one by one
collapses (the problem users of VQ libraries raise most often). Here an entry whose moving-average
count falls below :data:`DEAD_SHARE` of the average entry's is restarted at a randomly chosen
encoder output of the current batch. The entries start at zero, so at the first step every output
chooses entry 0, which becomes their mean, and every other entry is restarted: the codebook starts on the data.

Trained across processes (torchrun), each rank sees its slice of every batch: the codebook's counts
and sums are summed over the ranks before the moving-average step, and a restarted entry is drawn
from the whole batch (every rank's encoder outputs, the draw made on rank 0), so every rank holds
the same codebook, the one a single process would build from the whole batch.

The loss per example is the reconstruction term (an autoencoder's: nats for a Bernoulli decoder,
squared error for a Gaussian one) plus the commitment term; logged beside them, per batch, the
codebook's **perplexity** exp(−Σ_k p_k log p_k) over the share p_k of the grid's cells that chose
entry k (K when all are used evenly, 1 when one entry takes everything) and its **usage**, the share
of entries chosen at least once. The model has no density of its own: that needs a prior over the
index grid, trained as a second stage (vaekit.codeprior; ``code_prior`` in the config once it is).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .codeprior import build_grid_prior, check_prior_spec, grid_nll
from .distributions import full_precision
from .errors import ConfigError
from .models import LABEL_SCALE, NoDensityConfig
from .nets import activation
from .objectives import LossOutput
from .registry import FAMILIES, LIKELIHOODS

# An entry is dead when its moving-average count (cells that chose it per step, smoothed) is below
# this share of the average entry's: relative, so that it means the same at any batch size and
# codebook size, and during the first steps, while every count is still growing from zero. A dead
# entry is moved to a random encoder output of the batch at every step until cells choose it.
DEAD_SHARE = 0.03
DOWNSAMPLING = 4  # two stride-2 convolutions: the code grid is (H/4, W/4)
CHANNELS = (32, 64)  # feature maps of the two stages (the paper's MNIST-sized networks use 32-256)


@FAMILIES.implements("vq", role="config")
@dataclass
class VQConfig(NoDensityConfig):
    """What rebuilds a VQ-VAE's modules; saved as JSON beside the weights.

    ``latent_dim``: the size D of each code vector and codebook entry; ``codebook_size``: K entries;
    ``commitment``: β; ``ema_decay``: the codebook's moving-average decay; ``likelihood``:
    'bernoulli' (cross-entropy on logits, data in [0, 1]) or 'gaussian' (squared error).
    """

    family: ClassVar
    architecture: ClassVar[str] = "conv"  # what the consumers that describe a model read (not saved: always conv)
    hidden: ClassVar[tuple[int, ...]] = CHANNELS  # the feature maps of the two stages
    input_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 16
    activation: str = "relu"
    likelihood: str = "bernoulli"
    codebook_size: int = 32  # measured: bench/vq_codebook.py (docs/results.md)
    commitment: float = 0.25
    ema_decay: float = 0.99
    n_classes: int = 0  # not conditional; kept so that the shared code reading configs finds it
    label_scale: float = LABEL_SCALE
    code_prior: dict | None = None  # the prior over the index grid once one is trained (vaekit.codeprior); None before

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of the code grid."""
        return self.input_shape[1] // DOWNSAMPLING, self.input_shape[2] // DOWNSAMPLING

    @property
    def code_dim(self) -> int:
        """Numbers in one example's code: D per grid cell."""
        return self.latent_dim * math.prod(self.grid)

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)
        if len(self.input_shape) != 3:
            raise ConfigError(f"a VQ-VAE needs images of shape (channels, height, width), got per-example shape {self.input_shape}; "
                              "for a table use --model ae or --model vae")
        c, h, w = self.input_shape
        if h % DOWNSAMPLING or w % DOWNSAMPLING:
            raise ConfigError(f"a VQ-VAE needs height and width divisible by {DOWNSAMPLING}, got {h}x{w}; "
                              "pad or crop the images (--image-size for a folder)")
        if int(self.latent_dim) < 1 or int(self.codebook_size) < 2:
            raise ConfigError(f"a VQ-VAE needs latent_dim >= 1 and codebook_size >= 2, got {self.latent_dim} and {self.codebook_size}")
        if not 0 < float(self.ema_decay) < 1:
            raise ConfigError(f"ema_decay must lie in (0, 1), got {self.ema_decay}")
        if float(self.commitment) < 0:
            raise ConfigError(f"commitment must be >= 0, got {self.commitment}")
        if self.likelihood not in LIKELIHOODS.names(self.kind):
            raise ConfigError(f"likelihood {self.likelihood!r} is not available for a VQ-VAE; "
                              f"choose one of {', '.join(LIKELIHOODS.names(self.kind))}")
        if self.n_classes:
            raise ConfigError("a VQ-VAE is not conditional; leave out the labels")
        if self.code_prior is not None:
            self.code_prior = check_prior_spec(self.code_prior)

    def to_dict(self) -> dict:
        return {"name": self.kind, **dataclasses.asdict(self)}

    @classmethod
    def from_params(cls, input_shape: tuple[int, ...], n_classes: int, net: dict, params: dict) -> VQConfig:
        """The config of flat estimator parameters (see vaekit.models.config_from_params)."""
        keep = ("latent_dim", "activation")
        return cls(input_shape=input_shape, n_classes=n_classes, likelihood=params.get("likelihood", "bernoulli"),
                   codebook_size=int(params.get("codebook_size", 32)), commitment=float(params.get("commitment", 0.25)),
                   ema_decay=float(params.get("ema_decay", 0.99)), **{k: net[k] for k in keep if k in net})


def _process_group_size() -> int:
    """Processes sharing each batch: torch.distributed's world size when a process group is up, else 1."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _restart_rows(flat: Tensor, n: int, group: int) -> Tensor:
    """``n`` encoder outputs drawn at random from the whole batch for restarted entries.

    Across processes the batch is every rank's rows in rank order (the ranks hold equal slices),
    and rank 0's draw is broadcast, so the ranks restart alike, as one process would from the batch.
    """
    if group == 1:
        return flat[torch.randint(len(flat), (n,), device=flat.device)]
    import torch.distributed as dist

    parts = [torch.empty_like(flat) for _ in range(group)]
    dist.all_gather(parts, flat.contiguous())
    pool = torch.cat(parts)
    pick = torch.randint(len(pool), (n,), device=flat.device)
    dist.broadcast(pick, 0)
    return pool[pick]


class Codebook(nn.Module):
    """K entries of dimension D, each the moving average of the encoder outputs assigned to it.

    Buffers, not parameters: the optimizer never sees them; ``embedding`` (K, D) is what quantization
    reads, ``counts`` (K,) and ``sums`` (K, D) the decayed statistics it is recomputed from.
    """

    def __init__(self, size: int, dim: int, decay: float, eps: float = 1e-5):
        super().__init__()
        self.decay, self.eps = decay, eps
        self.register_buffer("embedding", torch.zeros(size, dim))
        self.register_buffer("counts", torch.zeros(size))  # all dead: the first training batch restarts every entry
        self.register_buffer("sums", torch.zeros(size, dim))

    def nearest(self, flat: Tensor) -> Tensor:
        """Index of the nearest entry (squared Euclidean distance) of each row of ``flat`` (N, D)."""
        # From the differences themselves, not |a|^2 - 2 a.b + |b|^2: that shortcut cancels catastrophically for
        # vectors far from the origin and near their entries (the cases a choice hinges on), and a matrix
        # product's rounding depends on the batch's shape and the CPU, so an image's indices would depend on
        # what it was encoded beside. In full precision, bf16 training or not.
        with torch.autocast(flat.device.type, enabled=False):
            d = torch.cdist(flat, self.embedding, compute_mode="donot_use_mm_for_euclid_dist")
        return d.argmin(1)

    @torch.no_grad()
    def update(self, flat: Tensor, idx: Tensor) -> None:
        """One moving-average step from the rows ``flat`` (N, D) assigned to entries ``idx``, then restarts."""
        k = self.embedding.shape[0]
        counts = torch.bincount(idx, minlength=k).to(flat.dtype)
        sums = torch.zeros_like(self.sums).index_add_(0, idx, flat)
        group = _process_group_size()
        if group > 1:  # the batch is split over the ranks: its statistics are their sum
            import torch.distributed as dist

            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.counts.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.sums.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        # Laplace smoothing of the counts (the paper's reference code), so an entry about to die is not divided by ~0.
        n = self.counts.sum()
        smoothed = (self.counts + self.eps) / (n + k * self.eps) * n
        self.embedding.copy_(self.sums / smoothed.clamp_min(self.eps).unsqueeze(1))
        dead = self.counts < DEAD_SHARE * self.counts.mean()
        if dead.any():
            rows = _restart_rows(flat, int(dead.sum()), group)
            self.embedding[dead] = rows
            self.sums[dead] = rows * self.counts[dead].unsqueeze(1)  # the statistics agree with the new place

    def forward(self, flat: Tensor) -> tuple[Tensor, Tensor]:
        """(entries, indices) of the rows ``flat`` (N, D); in training mode the codebook also takes its step."""
        flat = flat.detach().to(self.embedding.dtype)  # under bf16 autocast the encoder's output is bf16, the statistics float32
        idx = self.nearest(flat)
        q = self.embedding[idx]  # the entries as they were when chosen (indexing copies), then the step
        if self.training:
            self.update(flat, idx)
        return q, idx


class _Residual(nn.Module):
    def __init__(self, ch: int, act: str):
        super().__init__()
        self.body = nn.Sequential(activation(act), nn.Conv2d(ch, ch, 3, padding=1), activation(act), nn.Conv2d(ch, ch, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


@FAMILIES.implements("vq")
class VQVAE(nn.Module):
    """Encoder -> grid of D-vectors -> nearest codebook entries -> decoder (see the module docstring).

    The shared contract (``encode``, ``decode``, ``loss``) speaks in flat codes of ``code_dim`` numbers:
    ``encode`` gives the quantized grid z_q flattened, ``decode`` takes any such vector (an edited or
    interpolated grid need not consist of entries). :meth:`indices` and :meth:`encode_continuous` give the
    index grid and the pre-quantization vectors z_e.
    """

    def __init__(self, config: VQConfig):
        super().__init__()
        self.config = config
        c = config.input_shape[0]
        c1, c2 = CHANNELS
        act, d = config.activation, config.latent_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(c, c1, 4, stride=2, padding=1), activation(act), nn.Conv2d(c1, c2, 4, stride=2, padding=1),
            _Residual(c2, act), activation(act), nn.Conv2d(c2, d, 1))
        self.codebook = Codebook(config.codebook_size, d, config.ema_decay)
        self.decoder = nn.Sequential(
            nn.Conv2d(d, c2, 3, padding=1), _Residual(c2, act), activation(act),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), activation(act), nn.ConvTranspose2d(c1, c, 4, stride=2, padding=1))
        spec = config.code_prior
        self.code_prior = None if spec is None else build_grid_prior(spec, config.codebook_size, config.grid)

    # -- the grid ------------------------------------------------------------------------------
    def encode_continuous(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """z_e, the encoder's output before quantization: (B, D, rows, columns); float32 under bf16 autocast."""
        return full_precision(self.encoder(x))

    def _quantize(self, z_e: Tensor) -> tuple[Tensor, Tensor]:
        """(z_q as (B, D, rows, cols), indices as (B, rows, cols)) of the grid z_e."""
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
        q, idx = self.codebook(flat)
        return q.view(b, h, w, d).permute(0, 3, 1, 2), idx.view(b, h, w)

    def indices(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """The index grid (B, rows, columns) of codebook entries that x is coded as."""
        return self._quantize(self.encode_continuous(x))[1]

    def grid_of(self, idx: Tensor) -> Tensor:
        """The flat code (B, code_dim) of an index grid (B, rows, columns): what :meth:`decode` takes."""
        return self.codebook.embedding[idx.long()].permute(0, 3, 1, 2).flatten(1)

    # -- the shared contract -------------------------------------------------------------------
    def encode(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """z_q flattened: (B, code_dim), the grid's entries in (D, rows, columns) order."""
        return self._quantize(self.encode_continuous(x))[0].flatten(1)

    def _decode_params(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        rows, cols = self.config.grid
        return full_precision(self.decoder(z.reshape(-1, self.config.latent_dim, rows, cols)))

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        out = self._decode_params(z, c)
        return torch.sigmoid(out) if LIKELIHOODS[self.config.likelihood].needs_unit_interval else out

    def reconstruction_error(self, x: Tensor, params: Tensor) -> Tensor:
        """Per-example reconstruction loss from decoder outputs: nats (bernoulli) or squared error (gaussian)."""
        if LIKELIHOODS[self.config.likelihood].needs_unit_interval:
            return F.binary_cross_entropy_with_logits(params, x, reduction="none").flatten(1).sum(-1)
        return (params - x).pow(2).flatten(1).sum(-1)

    def loss(self, x: Tensor, c: Tensor | None = None, **_: object) -> LossOutput:
        z_e = self.encode_continuous(x)
        z_q, idx = self._quantize(z_e)
        commitment = (z_e - z_q.detach()).pow(2).flatten(1).sum(-1)
        z_st = z_e + (z_q - z_e).detach()  # straight-through: the decoder's gradient reaches z_e unchanged
        rec = self.reconstruction_error(x, full_precision(self.decoder(z_st)))
        share = torch.bincount(idx.flatten(), minlength=self.config.codebook_size).to(x.dtype) / idx.numel()
        perplexity = torch.exp(-(share * share.clamp_min(1e-12).log()).sum())
        usage = (share > 0).to(x.dtype).mean()
        terms = {"reconstruction": rec, "commitment": self.config.commitment * commitment,
                 "perplexity": perplexity.detach(), "usage": usage.detach()}
        unit = LIKELIHOODS[self.config.likelihood].loss_unit + "/example"
        return LossOutput(rec.mean() + self.config.commitment * commitment.mean(), terms, unit)

    def forward(self, x: Tensor, c: Tensor | None = None, **kwargs) -> LossOutput:
        return self.loss(x, c, **kwargs)

    # -- the second stage: a prior over the grid -------------------------------------------------
    def _prior(self) -> nn.Module:
        if self.code_prior is None:
            raise ConfigError("this VQ-VAE has no prior over its code grid yet; train one with `vaekit train-prior RUN` "
                              "(Python: est.fit_prior(X))")
        return self.code_prior

    def prior_nll(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """-log p(k(x)) in nats of each image's index grid under the code prior: shape (B,)."""
        return grid_nll(self._prior(), self.indices(x).flatten(1))

    @torch.no_grad()
    def sample(self, n: int, c: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n images E[x|z_q(k)], k drawn from the code prior cell by cell."""
        rows, cols = self.config.grid
        return self.decode(self.grid_of(self._prior().sample(n, generator).view(n, rows, cols)))
