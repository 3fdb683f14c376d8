"""Encoder and decoder networks: plain MLPs and the course's convolutional pair.

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


def check_conv_shape(input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The conv nets pool twice by 2, so images must be (C, H, W) with H and W divisible by 4."""
    if len(input_shape) != 3:
        raise ConfigError(
            f"the convolutional model needs images of shape (channels, height, width), got per-example shape {tuple(input_shape)}; "
            "use --model vae for tables"
        )
    c, h, w = input_shape
    if h % 4 or w % 4 or h < 4 or w < 4:
        raise ConfigError(
            f"the convolutional model needs height and width divisible by 4, got {h}x{w}; pad or crop the images, or use --model vae"
        )
    return c, h, w


class ConvEncoder(nn.Module):
    """Conv(16, 3x3, same) -> MaxPool 2 -> Conv(32, 3x3) -> MaxPool 2 -> Flatten -> Dense(out_dim)."""

    def __init__(self, input_shape: tuple[int, ...], out_dim: int, act: str = "relu", cond_dim: int = 0):
        super().__init__()
        c, h, w = check_conv_shape(input_shape)
        self.features = nn.Sequential(
            nn.Conv2d(c, 16, 3, padding=1), activation(act), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), activation(act), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.head = nn.Linear(32 * (h // 4) * (w // 4) + cond_dim, out_dim)

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        return self.head(_with_condition(self.features(x), c))


class ConvDecoder(nn.Module):
    """Dense(32*(H/4)*(W/4)) -> reshape -> ConvT(32) -> Up 2 -> ConvT(16) -> Up 2 -> ConvT(C)."""

    def __init__(self, latent_dim: int, output_shape: tuple[int, ...], act: str = "relu", cond_dim: int = 0):
        super().__init__()
        c, h, w = check_conv_shape(output_shape)
        self.grid = (32, h // 4, w // 4)
        self.head = nn.Sequential(nn.Linear(latent_dim + cond_dim, math.prod(self.grid)), activation(act))
        self.body = nn.Sequential(
            nn.ConvTranspose2d(32, 32, 3, padding=1), activation(act), nn.Upsample(scale_factor=2),
            nn.ConvTranspose2d(32, 16, 3, padding=1), activation(act), nn.Upsample(scale_factor=2),
            nn.ConvTranspose2d(16, c, 3, padding=1),
        )

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        h = self.head(_with_condition(z, c))
        lead = h.shape[:-1]
        out = self.body(h.reshape(-1, *self.grid))
        return out.view(*lead, *out.shape[1:])
