"""A prior over a VQ-VAE's grid of codebook indices, so that the two-stage model can be sampled and scored.

A VQ-VAE is trained with a uniform prior over the entries (it has no effect on the encoder); to draw
new images, a second model learns which index grids the encoder produces: p(k) = Π_i p(k_i | k_<i)
over the grid read in raster order, each factor a softmax over the K entries, so log p(k) is exact
and in nats. Sampling draws the cells one after another. Two such models are here:

- ``pixelcnn`` (the default): a gated PixelCNN (van den Oord et al. 2016), the VQ-VAE paper's choice;
- ``transformer``: a small causal transformer.

At equal training minutes on the same grids the PixelCNN's test NLL was lower, by 10 nats on MNIST's
7 x 7 grids (89.8 against 100.2) and by 51 on the sprites' 16 x 16 (78.3 against 129.0), and it drew
16 x 16 grids in half the time (bench/code_prior_choice.py, docs/results.md). Files saved before the
PixelCNN existed hold a transformer and say no ``kind``; they load as one.

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

DEFAULTS = {"pixelcnn": {"width": 32, "layers": 6, "kernel": 3}, "transformer": {"width": 64, "layers": 2, "heads": 4}}


def check_prior_spec(spec: dict) -> dict:
    """A prior spec as saved in the model config, ``{"kind": ..., <its sizes>}``, checked and completed.

    No ``kind`` reads as a transformer: the files written before the PixelCNN held one."""
    kind = spec.get("kind", "transformer")
    if kind not in DEFAULTS:
        raise ConfigError(f"unknown code prior kind {kind!r}; choose one of {', '.join(DEFAULTS)}")
    sizes = DEFAULTS[kind]
    unknown = sorted(set(spec) - set(sizes) - {"kind"})
    if unknown:
        raise ConfigError(f"the {kind} code prior takes no option {', '.join(unknown)}; it takes {', '.join(sizes)}")
    given = {k: spec.get(k, v) for k, v in sizes.items()}
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in given.values()):  # a saved file may say anything
        raise ConfigError(f"the {kind} code prior's sizes must be whole numbers, got {given}")
    out = dict(given)
    if min(out.values()) < 1 or out.get("heads") and out["width"] % out["heads"] or out.get("kernel", 1) % 2 == 0:
        raise ConfigError(f"the {kind} code prior needs positive sizes, width divisible by heads and an odd kernel, got {out}")
    return {"kind": kind, **out}


def build_grid_prior(spec: dict, n_codes: int, grid: tuple[int, int]) -> nn.Module:
    """The prior a checked spec describes, for grids of ``grid`` cells with ``n_codes`` entries."""
    sizes = {k: v for k, v in spec.items() if k != "kind"}
    if spec["kind"] == "pixelcnn":
        return GatedPixelCNN(n_codes, grid, **sizes)
    return GridPrior(n_codes, grid[0] * grid[1], **sizes)


class _GatedLayer(nn.Module):
    """One layer of both stacks: the vertical one sees the rows above, the horizontal one the cells to the
    left in the row; the first layer's kernels leave out the cell's own row / column, so no cell sees itself."""

    def __init__(self, dim: int, kernel: int, first: bool):
        super().__init__()
        p = kernel // 2
        self.first = first
        self.v = nn.Conv2d(dim, 2 * dim, (p + 1, kernel), padding=(p, p))
        self.h = nn.Conv2d(dim, 2 * dim, (1, p + 1), padding=(0, p))
        self.v2h = nn.Conv2d(2 * dim, 2 * dim, 1)
        self.h_out = nn.Conv2d(dim, dim, 1)
        vmask, hmask = torch.ones_like(self.v.weight), torch.ones_like(self.h.weight)
        if first:
            vmask[:, :, -1] = 0
            hmask[:, :, :, -1] = 0
        self.register_buffer("vmask", vmask, persistent=False)
        self.register_buffer("hmask", hmask, persistent=False)

    @staticmethod
    def _gate(x: Tensor) -> Tensor:
        a, b = x.chunk(2, 1)
        return torch.tanh(a) * torch.sigmoid(b)

    def forward(self, xv: Tensor, xh: Tensor) -> tuple[Tensor, Tensor]:
        H, W = xv.shape[-2:]
        # Padding on both sides then keeping the first H rows (W columns) makes the kernels look up / left only.
        hv = F.conv2d(xv, self.v.weight * self.vmask, self.v.bias, padding=self.v.padding)[:, :, :H]
        hh = F.conv2d(xh, self.h.weight * self.hmask, self.h.bias, padding=self.h.padding)[:, :, :, :W]
        out = self.h_out(self._gate(self.v2h(hv) + hh))
        return self._gate(hv), out if self.first else out + xh


class GatedPixelCNN(nn.Module):
    """A gated PixelCNN over a (rows, cols) grid of indices in 0..``n_codes``-1 (see the module docstring)."""

    def __init__(self, n_codes: int, grid: tuple[int, int], width: int = 32, layers: int = 6, kernel: int = 3):
        super().__init__()
        self.n_codes, self.grid, self.n_cells = n_codes, (int(grid[0]), int(grid[1])), int(grid[0]) * int(grid[1])
        self.embed = nn.Embedding(n_codes, width)
        self.layers = nn.ModuleList(_GatedLayer(width, kernel, i == 0) for i in range(layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(width, 4 * width, 1), nn.ReLU(), nn.Conv2d(4 * width, n_codes, 1))

    def logits(self, idx: Tensor) -> Tensor:
        """(B, n_cells, K) logits of each cell given the cells before it in raster order, for grids ``idx`` (B, n_cells)."""
        x = self.embed(idx.view(-1, *self.grid)).permute(0, 3, 1, 2)
        xv = xh = x
        for layer in self.layers:
            xv, xh = layer(xv, xh)
        return self.head(xh).flatten(2).transpose(1, 2)

    def log_prob(self, idx: Tensor) -> Tensor:
        """log p(k) in nats of each grid ``idx`` (B, n_cells): shape (B,)."""
        return -F.cross_entropy(self.logits(idx).transpose(1, 2), idx, reduction="none").sum(1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` grids (n, n_cells) drawn cell by cell."""
        idx = torch.zeros(n, self.n_cells, dtype=torch.long, device=self.embed.weight.device)
        for i in range(self.n_cells):
            probs = F.softmax(self.logits(idx)[:, i].double(), -1)
            idx[:, i] = torch.multinomial(probs, 1, generator=generator)[:, 0]
        return idx


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


def fit_grid_prior(prior: nn.Module, grids: Tensor, *, epochs: int, batch_size: int = 64, lr: float = 1e-3,
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
def grid_nll(prior: nn.Module, grids: Tensor, batch_size: int = 512) -> Tensor:
    """-log p(k) in nats of each grid (N, n_cells), in eval mode: shape (N,)."""
    was = prior.training
    prior.eval()
    out = torch.cat([-prior.log_prob(grids[i : i + batch_size]) for i in range(0, len(grids), batch_size)])
    prior.train(was)
    return out
