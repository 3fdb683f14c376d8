"""Encoder and decoder networks: plain MLPs, the course's convolutional pair and the disentanglement papers' strided one.

Every network takes an optional condition ``c`` (a one-hot label, shape ``(B, n_classes)``) that is
concatenated to its input (MLP) or to its dense layer (conv), which is all a conditional VAE needs.
Networks output unconstrained numbers; what they mean (mu and log sigma^2, logits, Gaussian means)
is the job of distributions.py.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .errors import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "elu": nn.ELU, "gelu": nn.GELU, "softplus": nn.Softplus}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}") from None


def mlp(sizes: list[int], act: str) -> nn.Sequential:
    """Linear layers of the given sizes with ``act`` between them and nothing after the last."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation(act))
    return nn.Sequential(*layers)


def _with_condition(h: Tensor, c: Tensor | None) -> Tensor:
    return h if c is None else torch.cat([h, c.to(h.dtype)], dim=-1)


class MLPEncoder(nn.Module):
    """x (any shape per example) -> flatten -> [concat c] -> MLP -> ``out_dim`` numbers."""

    def __init__(self, input_shape: tuple[int, ...], hidden: list[int], out_dim: int, act: str = "relu", cond_dim: int = 0):
        super().__init__()
        self.net = mlp([math.prod(input_shape) + cond_dim, *hidden, out_dim], act)

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        return self.net(_with_condition(x.flatten(1), c))


class MLPDecoder(nn.Module):
    """z -> [concat c] -> MLP -> one number per data dimension, reshaped to ``output_shape``."""

    def __init__(self, latent_dim: int, hidden: list[int], output_shape: tuple[int, ...], act: str = "relu", cond_dim: int = 0):
        super().__init__()
        self.output_shape = tuple(output_shape)
        self.net = mlp([latent_dim + cond_dim, *hidden, math.prod(output_shape)], act)

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        out = self.net(_with_condition(z, c))
        return out.view(*out.shape[:-1], *self.output_shape)


# The course's pair pools twice (28 x 28 -> 7 x 7); larger images pool more, so that the dense
# layer sees a grid of 4-7 cells a side instead of a quarter of the image (a 64 x 64 RGB image would
# otherwise give a 32 x 16 x 16 = 8192-wide dense layer). Channels double at each stage.
MIN_CONV_DEPTH, MAX_CONV_DEPTH, MIN_GRID = 2, 5, 4


def conv_depth_for(height: int, width: int) -> int:
    """Pooling stages for an image of this size: the most (2 to 5) that leave whole grid cells, at
    least 4 a side; 2 for MNIST's 28 x 28 (the course's network) and Frey Face's 28 x 20."""
    d = MIN_CONV_DEPTH
    while d < MAX_CONV_DEPTH:
        f = 2 ** (d + 1)
        if height % f or width % f or min(height, width) // f < MIN_GRID:
            break
        d += 1
    return d


def conv_channels(depth: int) -> list[int]:
    """Feature maps per stage: 16, 32, 64, ... (the course's 16, 32 at depth 2)."""
    return [16 * 2**i for i in range(depth)]


def check_conv_shape(input_shape: tuple[int, ...], depth: int = MIN_CONV_DEPTH) -> tuple[int, int, int]:
    """(C, H, W) of images the conv nets can take: each of ``depth`` stages halves H and W."""
    if len(input_shape) != 3:
        raise ConfigError(
            f"the convolutional model needs images of shape (channels, height, width), got per-example shape {tuple(input_shape)}; "
            "use --model vae for tables"
        )
    c, h, w = input_shape
    f = 2**depth
    if h % f or w % f or h < f or w < f:
        raise ConfigError(
            f"the convolutional model needs height and width divisible by {f}, got {h}x{w}; "
            "pad or crop the images (--image-size for a folder), or use --model vae"
        )
    return c, h, w


class ConvEncoder(nn.Module):
    """[Conv(3x3, same) -> MaxPool 2] x depth (16, 32, ... maps) -> Flatten -> Dense(out_dim).

    At depth 2 this is the course's Conv(16) -> Pool -> Conv(32) -> Pool -> Dense.
    """

    def __init__(self, input_shape: tuple[int, ...], out_dim: int, act: str = "relu", cond_dim: int = 0,
                 depth: int = MIN_CONV_DEPTH):
        super().__init__()
        c, h, w = check_conv_shape(input_shape, depth)
        chans = conv_channels(depth)
        layers: list[nn.Module] = []
        for c_in, c_out in zip([c, *chans[:-1]], chans):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), activation(act), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers, nn.Flatten())
        f = 2**depth
        self.head = nn.Linear(chans[-1] * (h // f) * (w // f) + cond_dim, out_dim)

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        return self.head(_with_condition(self.features(x), c))


class ConvDecoder(nn.Module):
    """Dense -> reshape to (maps, H/2^depth, W/2^depth) -> [ConvT(3x3) -> Up 2] x depth -> ConvT(C).

    At depth 2 this is the course's Dense -> ConvT(32) -> Up -> ConvT(16) -> Up -> ConvT(C).
    """

    def __init__(self, latent_dim: int, output_shape: tuple[int, ...], act: str = "relu", cond_dim: int = 0,
                 depth: int = MIN_CONV_DEPTH):
        super().__init__()
        c, h, w = check_conv_shape(output_shape, depth)
        chans = conv_channels(depth)
        f = 2**depth
        self.grid = (chans[-1], h // f, w // f)
        self.head = nn.Sequential(nn.Linear(latent_dim + cond_dim, math.prod(self.grid)), activation(act))
        layers: list[nn.Module] = []
        outs = list(reversed(chans))  # 32, 16 at depth 2: each stage halves the maps as it doubles the size
        for c_in, c_out in zip([outs[0], *outs[:-1]], outs):
            layers += [nn.ConvTranspose2d(c_in, c_out, 3, padding=1), activation(act), nn.Upsample(scale_factor=2)]
        self.body = nn.Sequential(*layers, nn.ConvTranspose2d(chans[0], c, 3, padding=1))

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        h = self.head(_with_condition(z, c))
        lead = h.shape[:-1]
        out = self.body(h.reshape(-1, *self.grid))
        return out.view(*lead, *out.shape[1:])


# The disentanglement papers' network for 64 x 64 images (Higgins et al. 2017, Kim & Mnih 2018, Chen
# et al. 2018, as disentanglement_lib's conv_encoder / deconv_decoder): four 4x4 convolutions of stride 2
# (32, 32, 64, 64 maps) to a 4 x 4 grid, a dense layer of 256, then the code; the decoder mirrors it.
# Striding instead of 3x3 convolutions at full size followed by pooling is much cheaper on a CPU: the
# disentanglement bench's 10-minute runs on sprites (bench/disentanglement_headline.py, one thread each)
# take about 3 700 steps with it, against about 1 800 with the pooled net. Used for images at least 64
# pixels a side, divisible by 16.
STRIDED_CHANNELS, STRIDED_DENSE, STRIDED_MIN_SIDE = (32, 32, 64, 64), 256, 64


def conv_net_for(height: int, width: int) -> str:
    """'strided' (the papers' 4x4 stride-2 net) for images of 64 pixels a side or more that halve
    evenly four times; 'pooled' (the course's 3x3 convolutions and pooling) otherwise."""
    f = 2 ** len(STRIDED_CHANNELS)
    return "strided" if min(height, width) >= STRIDED_MIN_SIDE and height % f == 0 and width % f == 0 else "pooled"


class StridedConvEncoder(nn.Module):
    """[Conv(4x4, stride 2)] x 4 (32, 32, 64, 64 maps) -> Flatten -> Dense(256) -> Dense(out_dim)."""

    def __init__(self, input_shape: tuple[int, ...], out_dim: int, act: str = "relu", cond_dim: int = 0):
        super().__init__()
        c, h, w = check_conv_shape(input_shape, len(STRIDED_CHANNELS))
        layers: list[nn.Module] = []
        for c_in, c_out in zip([c, *STRIDED_CHANNELS[:-1]], STRIDED_CHANNELS):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), activation(act)]
        self.features = nn.Sequential(*layers, nn.Flatten())
        f = 2 ** len(STRIDED_CHANNELS)
        self.dense = nn.Sequential(nn.Linear(STRIDED_CHANNELS[-1] * (h // f) * (w // f) + cond_dim, STRIDED_DENSE), activation(act))
        self.head = nn.Linear(STRIDED_DENSE, out_dim)

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        return self.head(self.dense(_with_condition(self.features(x), c)))


class StridedConvDecoder(nn.Module):
    """Dense(256) -> Dense -> reshape to (64, H/16, W/16) -> [ConvT(4x4, stride 2)] x 4 (64, 32, 32, C maps)."""

    def __init__(self, latent_dim: int, output_shape: tuple[int, ...], act: str = "relu", cond_dim: int = 0):
        super().__init__()
        c, h, w = check_conv_shape(output_shape, len(STRIDED_CHANNELS))
        f = 2 ** len(STRIDED_CHANNELS)
        self.grid = (STRIDED_CHANNELS[-1], h // f, w // f)
        self.head = nn.Sequential(nn.Linear(latent_dim + cond_dim, STRIDED_DENSE), activation(act),
                                  nn.Linear(STRIDED_DENSE, math.prod(self.grid)), activation(act))
        outs = [*reversed(STRIDED_CHANNELS[:-1]), c]  # 64, 32, 32, C
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip([STRIDED_CHANNELS[-1], *outs[:-1]], outs)):
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
            if i < len(outs) - 1:
                layers.append(activation(act))
        self.body = nn.Sequential(*layers)

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        h = self.head(_with_condition(z, c))
        lead = h.shape[:-1]
        out = self.body(h.reshape(-1, *self.grid))
        return out.view(*lead, *out.shape[1:])
