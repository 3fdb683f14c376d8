"""A prior over a VQ-VAE's grid of codebook indices, so that the two-stage model can be sampled and scored.

A VQ-VAE is trained with a uniform prior over the entries (it has no effect on the encoder); to draw
new images, a second model learns which index grids the encoder produces. Here that is a small
causal transformer over the grid read in raster order: p(k) = Π_i p(k_i | k_1 .. k_{i-1}), each
factor a softmax over the K entries, so log p(k) is exact and in nats. Sampling draws the cells one
after another. A gated PixelCNN (the paper's choice) would also do; a transformer with a causal mask
is the smaller piece of code and on grids of 7 x 7 (MNIST) to 16 x 16 (sprites) cells its cost does
not matter.

With the VQ-VAE's deterministic encoder, q(z|x) puts all its mass on the grid k(x), so the ELBO reads
log p(x) >= log p(x | z_q(k(x))) + log p(k(x)): the reconstruction term plus the prior's
log-probability, a bound in nats comparable with a VAE's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError

DEFAULTS = {"width": 64, "layers": 2, "heads": 4}


def check_prior_spec(spec: dict) -> dict:
    """A prior spec as saved in the model config: ``{"width": w, "layers": l, "heads": h}``, checked."""
    unknown = sorted(set(spec) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"the code prior takes no option {', '.join(unknown)}; it takes {', '.join(DEFAULTS)}")
    out = {k: int(spec.get(k, v)) for k, v in DEFAULTS.items()}
    if min(out.values()) < 1 or out["width"] % out["heads"]:
        raise ConfigError(f"the code prior needs positive sizes with width divisible by heads, got {out}")
    return out


class GridPrior(nn.Module):
    """A causal transformer over ``n_cells`` indices in 0..``n_codes``-1 (see the module docstring)."""

    def __init__(self, n_codes: int, n_cells: int, width: int = 64, layers: int = 2, heads: int = 4):
        super().__init__()
        self.n_codes, self.n_cells = n_codes, n_cells
        self.tokens = nn.Embedding(n_codes + 1, width)  # the extra token starts every grid
        self.position = nn.Parameter(0.02 * torch.randn(n_cells, width))
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(width, n_codes)
        self.register_buffer("causal", torch.triu(torch.full((n_cells, n_cells), -math.inf), diagonal=1), persistent=False)

    def logits(self, idx: Tensor) -> Tensor:
        """(B, m, K) logits of cell i given cells < i, for the first m cells of ``idx`` (B, m)."""
        m = idx.shape[1]
        start = torch.full_like(idx[:, :1], self.n_codes)
        h = self.tokens(torch.cat([start, idx[:, :-1]], 1)) + self.position[:m]
        return self.head(self.body(h, mask=self.causal[:m, :m]))

    def log_prob(self, idx: Tensor) -> Tensor:
        """log p(k) in nats of each grid ``idx`` (B, n_cells): shape (B,)."""
        return -F.cross_entropy(self.logits(idx).transpose(1, 2), idx, reduction="none").sum(1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` grids (n, n_cells) drawn cell by cell."""
        dev = self.position.device
        idx = torch.zeros(n, 0, dtype=torch.long, device=dev)
        for _ in range(self.n_cells):
            probs = F.softmax(self.logits(torch.cat([idx, idx.new_zeros(n, 1)], 1))[:, -1].double(), -1)
            idx = torch.cat([idx, torch.multinomial(probs, 1, generator=generator)], 1)
        return idx


def fit_grid_prior(prior: GridPrior, grids: Tensor, *, epochs: int, batch_size: int = 64, lr: float = 1e-3,
                   max_minutes: float = 0.0, val_grids: Tensor | None = None, seed: int = 0,
                   log: Callable[[str], None] | None = None) -> list[dict]:
    """Train ``prior`` by maximum likelihood on index grids (N, n_cells); returns one row per epoch with
    the mean NLL in nats per grid (train, and validation when ``val_grids`` is given)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(prior.parameters(), lr=lr)
    rows: list[dict] = []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        prior.train()
        perm = torch.randperm(len(grids), generator=gen)
        total, seen, stopped = 0.0, 0, False
        for i in range(0, len(grids), batch_size):
            batch = grids[perm[i : i + batch_size]]
            nll = -prior.log_prob(batch).mean()
            opt.zero_grad()
            nll.backward()
            opt.step()
            total += float(nll.detach()) * len(batch)
            seen += len(batch)
            if max_minutes and time.perf_counter() - start > 60 * max_minutes:
                stopped = True
                break
        row = {"epoch": epoch, "seconds": time.perf_counter() - start, "prior_train_nll": total / seen}
        if val_grids is not None and len(val_grids):
            row["prior_val_nll"] = float(grid_nll(prior, val_grids).mean())
        rows.append(row)
        if log is not None:
            val = f"  val NLL {row['prior_val_nll']:.3f}" if "prior_val_nll" in row else ""
            log(f"prior epoch {epoch}/{epochs}  train NLL {row['prior_train_nll']:.3f}{val}  [nats/image]  {row['seconds']:.1f}s")
        if stopped:
            if log is not None:
                log(f"stopping in prior epoch {epoch}: the --max-minutes budget of {max_minutes:g} min is spent")
            break
    prior.eval()
    return rows


@torch.no_grad()
def grid_nll(prior: GridPrior, grids: Tensor, batch_size: int = 512) -> Tensor:
    """-log p(k) in nats of each grid (N, n_cells), in eval mode: shape (N,)."""
    was = prior.training
    prior.eval()
    out = torch.cat([-prior.log_prob(grids[i : i + batch_size]) for i in range(0, len(grids), batch_size)])
    prior.train(was)
    return out
