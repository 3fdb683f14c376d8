"""The convolutional VAE on images of any size that pools evenly, grey or RGB, its depth chosen from
the size; every 0.1.0 conv model keeps the course's two stages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vaekit
from vaekit.errors import ConfigError
from vaekit.models import config_from_dict, config_from_params
from vaekit.nets import ConvDecoder, ConvEncoder, StridedConvDecoder, StridedConvEncoder, conv_depth_for, conv_net_for


@pytest.mark.parametrize("h, w, depth", [(28, 28, 2), (28, 20, 2), (16, 16, 2), (36, 36, 2), (32, 32, 3), (48, 48, 3),
                                         (64, 64, 4), (128, 128, 5), (256, 256, 5), (64, 32, 3)])
def test_depth_leaves_a_grid_of_at_least_four_whole_cells(h, w, depth) -> None:
    assert conv_depth_for(h, w) == depth
    f = 2**depth
    assert h % f == 0 and w % f == 0 and min(h, w) // f >= 4


def test_depth_two_is_the_course_network() -> None:
    enc, dec = ConvEncoder((1, 28, 28), 40), ConvDecoder(20, (1, 28, 28))
    assert [tuple(p.shape) for p in enc.parameters()] == [(16, 1, 3, 3), (16,), (32, 16, 3, 3), (32,), (40, 32 * 7 * 7), (40,)]
    assert [tuple(p.shape) for p in dec.body.parameters()] == [(32, 32, 3, 3), (32,), (32, 16, 3, 3), (16,), (16, 1, 3, 3), (1,)]


@pytest.mark.parametrize("shape", [(3, 64, 64), (1, 32, 32), (3, 28, 20)])
def test_shapes_round_trip(shape) -> None:
    depth = conv_depth_for(*shape[1:])
    enc, dec = ConvEncoder(shape, 10, depth=depth), ConvDecoder(5, shape, depth=depth)
    x = torch.rand(2, *shape)
    assert enc(x).shape == (2, 10)
    assert dec(torch.randn(4, 2, 5)).shape == (4, 2, *shape)  # leading sample axes pass through


@pytest.mark.slow
def test_rgb_conv_vae_fits_saves_and_loads(tmp_path) -> None:
    rng = np.random.default_rng(0)
    # Colour blobs: each image one colour, so that the channels carry what the model must learn.
    colours = rng.random((64, 3, 1, 1)).astype(np.float32)
    X = np.clip(colours * np.ones((1, 1, 32, 32), np.float32) + 0.05 * rng.standard_normal((64, 3, 32, 32)), 0, 1)
    X = X.astype(np.float32)
    est = vaekit.ConvVAE(latent_dim=4, epochs=10, batch_size=8, lr=3e-3, val_fraction=0.0, likelihood="gaussian", sigma=0.1, seed=0).fit(X)
    assert est.model_.config.conv_depth == 3
    assert est.reconstruct(X[:5]).shape == (5, 3, 32, 32) and est.sample(3).shape == (3, 3, 32, 32)
    # The reconstructions keep each image's colour better than the mean colour does.
    err = ((est.reconstruct(X) - X) ** 2).mean()
    assert err < ((X.mean(0, keepdims=True) - X) ** 2).mean()
    est.save(tmp_path / "m")
    again = vaekit.load(tmp_path / "m")
    np.testing.assert_array_equal(again.reconstruct(X[:5]), est.reconstruct(X[:5]))


def test_sizes_that_do_not_pool_evenly_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"divisible by 4, got 30x30.*--image-size"):
        vaekit.ConvVAE(epochs=1).fit(np.zeros((10, 1, 30, 30), np.float32))


@pytest.mark.parametrize("h, w, net", [(64, 64, "strided"), (128, 128, "strided"), (80, 64, "strided"), (28, 28, "pooled"),
                                       (32, 32, "pooled"), (48, 48, "pooled"), (64, 72, "pooled"), (256, 40, "pooled")])
def test_the_papers_strided_net_from_64_pixels_a_side(h, w, net) -> None:
    assert conv_net_for(h, w) == net


def test_strided_net_is_the_papers_network() -> None:
    """Higgins et al. (2017) / disentanglement_lib: 4x4 stride-2 convolutions of 32, 32, 64, 64 maps, dense 256."""
    enc, dec = StridedConvEncoder((1, 64, 64), 20), StridedConvDecoder(10, (1, 64, 64))
    assert [tuple(p.shape) for p in enc.parameters() if p.ndim > 1] == [
        (32, 1, 4, 4), (32, 32, 4, 4), (64, 32, 4, 4), (64, 64, 4, 4), (256, 64 * 4 * 4), (20, 256)]
    assert [tuple(p.shape) for p in dec.parameters() if p.ndim > 1] == [
        (256, 10), (64 * 4 * 4, 256), (64, 64, 4, 4), (64, 32, 4, 4), (32, 32, 4, 4), (32, 1, 4, 4)]
    x = torch.rand(3, 1, 64, 64)
    assert enc(x).shape == (3, 20)
    assert dec(torch.randn(5, 3, 10)).shape == (5, 3, 1, 64, 64)  # leading sample axes pass through


def test_strided_net_takes_a_condition_and_rgb() -> None:
    enc, dec = StridedConvEncoder((3, 64, 96), 8, cond_dim=4), StridedConvDecoder(4, (3, 64, 96), cond_dim=4)
    c = torch.eye(4)[[0, 1]]
    assert enc(torch.rand(2, 3, 64, 96), c).shape == (2, 8)
    z = torch.randn(2, 4)
    out = dec(z, c)
    assert out.shape == (2, 3, 64, 96)
    assert not torch.equal(out, dec(z, c.flip(0)))  # the label reaches the output


def test_new_64px_models_are_strided_and_saved_files_keep_their_net() -> None:
    cfg = config_from_params("vae", (1, 64, 64), architecture="conv", latent_dim=10)
    assert cfg.conv_net == "strided" and config_from_dict(cfg.to_dict()).conv_net == "strided"
    saved = {k: v for k, v in cfg.to_dict().items() if k != "conv_net"}  # a file written before the strided net existed
    assert config_from_dict(saved).conv_net == "pooled"
    assert config_from_params("vae", (1, 28, 28), architecture="conv").conv_net == "pooled"
    with pytest.raises(ConfigError, match="unknown conv_net 'dilated'"):
        config_from_dict({**cfg.to_dict(), "conv_net": "dilated"})
