"""Transposed convolutions on CPU: torch's own against two exact rewrites as ordinary convolutions (not adopted: slower).

    PYTHONPATH=src python bench/conv_transpose_speed.py [--threads 1] [--json bench/conv_transpose_speed.json]

For each transposed convolution in vaekit's decoders (the strided 64 x 64 decoder of the sprites
runs, the pooled 28 x 28 one of the MNIST conv VAE, the VQ-VAE's) at batch 64: milliseconds for a
forward and a backward pass, torch's ``nn.ConvTranspose2d`` and the rewrites side by side, in one run.
Then one whole training step (forward, backward, Adam) of the sprites VAE with each, and the
float32 rate of a 2048 x 2048 matrix product, so that machines can be compared by ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from vaekit.nets import StridedConvDecoder, StridedConvEncoder

# Output phase a (row or column parity) of a stride-2, 4x4, padding-1 transposed convolution reads
# input offsets -1, 0, +1 through these kernel taps; 4 marks an offset the phase does not read (a zero).
_PHASE_TAPS = ((3, 1, 4), (4, 2, 0))


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d``, same weights and same function, computed as an ordinary convolution.

    Two shapes are rewritten exactly; any other falls back to torch's own:

    - stride 1, kernel k, padding p: a convolution with the kernel flipped and its channel axes
      swapped, padding k - 1 - p;
    - stride 2, kernel 4, padding 1 (the strided decoder): output row 2m + a reads input rows
      m - 1 .. m + 1 through taps ``_PHASE_TAPS[a]`` (likewise columns), so one 3 x 3 convolution to
      4 C_out maps, one per phase (the taps a phase does not read are zero), followed by
      ``pixel_shuffle(2)``.

    The hope was oneDNN's convolution kernels; measured, it is slower than torch's transposed
    convolution at every stride-2 shape (0.4-0.7x on a 2-core AMD EPYC), so vaekit keeps torch's.
    """

    def _plain(self) -> bool:
        return (self.groups == 1 and self.dilation == (1, 1) and self.output_padding == (0, 0) and self.padding_mode == "zeros"
                and self.weight.dim() == 4)

    def _phase_weight(self) -> Tensor:
        """(4 C_out, C_in, 3, 3): the stride-2 kernel (C_in, C_out, 4, 4) split into its four output phases."""
        taps = torch.tensor(_PHASE_TAPS, device=self.weight.device)
        w = nn.functional.pad(self.weight, (0, 1, 0, 1))[:, :, taps][..., taps]  # (C_in, C_out, a, 3, b, 3)
        c_in, c_out = self.weight.shape[:2]
        return w.permute(1, 2, 4, 0, 3, 5).reshape(4 * c_out, c_in, 3, 3)

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if output_size is None and self._plain():
            k, p = self.kernel_size, self.padding
            if self.stride == (1, 1) and k[0] - 1 - p[0] >= 0 and k[1] - 1 - p[1] >= 0:
                w = self.weight.flip(2, 3).transpose(0, 1)
                return nn.functional.conv2d(x, w, self.bias, padding=(k[0] - 1 - p[0], k[1] - 1 - p[1]))
            if self.stride == (2, 2) and k == (4, 4) and p == (1, 1):
                bias = None if self.bias is None else self.bias.repeat_interleave(4)
                return nn.functional.pixel_shuffle(nn.functional.conv2d(x, self._phase_weight(), bias, padding=1), 2)
        return super().forward(x, output_size)


LAYERS = {  # name: (C_in, C_out, kernel, stride, padding, input side)
    "strided 64x64: 64->64, 4->8": (64, 64, 4, 2, 1, 4),
    "strided 64x64: 64->32, 8->16": (64, 32, 4, 2, 1, 8),
    "strided 64x64: 32->32, 16->32": (32, 32, 4, 2, 1, 16),
    "strided 64x64: 32->1, 32->64": (32, 1, 4, 2, 1, 32),
    "pooled 28x28: 32->16, 7x7": (32, 32, 3, 1, 1, 7),
    "pooled 28x28: 16->1, 28x28": (16, 1, 3, 1, 1, 28),
    "vq 28x28: 64->32, 7->14": (64, 32, 4, 2, 1, 7),
}
BATCH = 64


def timed(fn, repeats: int) -> float:
    """Median milliseconds of fn() over ``repeats`` calls after two warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


class FourPhases(ConvTranspose2d):
    """The stride-2 rewrite as four 2 x 2 convolutions, one per output phase (no zero taps), interleaved:
    the alternative to one 3 x 3 convolution over 4 C_out maps, timed beside it."""

    def forward(self, x, output_size=None):
        if self.stride != (2, 2):
            return super().forward(x, output_size)
        xp = nn.functional.pad(x, (1, 1, 1, 1))
        h, w = x.shape[-2:]
        taps = ((3, 1), (2, 0))
        outs = []
        for a in (0, 1):
            for b in (0, 1):
                k = self.weight[:, :, list(taps[a])][:, :, :, list(taps[b])].transpose(0, 1)
                outs.append(nn.functional.conv2d(xp[:, :, a : a + h + 1, b : b + w + 1], k, self.bias))
        y = torch.stack(outs, 2).flatten(1, 2)
        return nn.functional.pixel_shuffle(y, 2)


def layer_ms(cls, spec, repeats: int) -> float:
    c_in, c_out, k, s, p, side = spec
    torch.manual_seed(0)
    layer = cls(c_in, c_out, k, stride=s, padding=p)
    x = torch.randn(BATCH, c_in, side, side, requires_grad=True)
    if cls is not nn.ConvTranspose2d:  # the same function, checked before it is timed
        ref = nn.functional.conv_transpose2d(x, layer.weight, layer.bias, stride=s, padding=p)
        torch.testing.assert_close(layer(x), ref, rtol=1e-4, atol=1e-4)
    return timed(lambda: layer(x).sum().backward(), repeats)


def step_ms(fast: bool, repeats: int) -> float:
    """One Bernoulli VAE step on 64 x 64 binary images, batch 64, with torch's transposed convolutions or the 3 x 3 rewrite."""
    torch.manual_seed(0)
    enc, dec = StridedConvEncoder((1, 64, 64), 20), StridedConvDecoder(10, (1, 64, 64))
    if fast:  # the same decoder, its transposed convolutions (same weights) computed by the rewrite
        for i, m in enumerate(dec.body):
            if isinstance(m, nn.ConvTranspose2d):
                rewrite = ConvTranspose2d(m.in_channels, m.out_channels, 4, stride=2, padding=1)
                rewrite.load_state_dict(m.state_dict())
                dec.body[i] = rewrite
        assert sum(isinstance(m, ConvTranspose2d) for m in dec.body) == 4
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], 1e-3)
    x = (torch.rand(BATCH, 1, 64, 64) < 0.1).float()

    def step():
        mu, log_var = enc(x).chunk(2, -1)
        z = mu + torch.randn_like(mu) * (0.5 * log_var).exp()
        loss = nn.functional.binary_cross_entropy_with_logits(dec(z), x, reduction="sum") / BATCH
        opt.zero_grad()
        loss.backward()
        opt.step()

    return timed(step, repeats)


def matmul_gflops() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return 2 * 2048**3 / timed(lambda: a @ b, 10) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), load {os.getloadavg()[0]:.1f}; "
          f"2048x2048 float32 matmul: {matmul_gflops():.0f} GFLOP/s")
    rows = {}
    print(f"{'layer (batch 64), forward + backward':40s} {'torch ms':>9s} {'3x3 ms':>9s} {'ratio':>6s} {'4 phases ms':>11s}")
    for name, spec in LAYERS.items():
        ref, ours = layer_ms(nn.ConvTranspose2d, spec, args.repeats), layer_ms(ConvTranspose2d, spec, args.repeats)
        phases = layer_ms(FourPhases, spec, args.repeats) if spec[3] == 2 else float("nan")
        rows[name] = {"torch_ms": ref, "rewrite_3x3_ms": ours, "four_phases_ms": None if math.isnan(phases) else phases}
        print(f"{name:40s} {ref:9.2f} {ours:9.2f} {ref / ours:5.2f}x {phases:11.2f}")
    ref, ours = step_ms(False, args.repeats), step_ms(True, args.repeats)
    rows["sprites VAE training step"] = {"torch_ms": ref, "rewrite_3x3_ms": ours}
    print(f"{'sprites VAE training step':40s} {ref:9.2f} {ours:9.2f} {ref / ours:5.2f}x")
    if args.json:
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "unknown")
        args.json.write_text(json.dumps({"cpu": cpu, "torch": torch.__version__, "threads": args.threads, "matmul_gflops": matmul_gflops(),
                                         "load": os.getloadavg()[0], "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
