"""Fast checks of what issue 13 changed: how a conditional model sees its label, the per-model
training defaults of the CLI, the report's cost bound for conv models, the figure helpers that the
acceptance tests judge, and the walkthrough runner's block extraction."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vaekit
from vaekit.cli import build_parser, make_estimator
from vaekit.errors import ConfigError
from vaekit.models import VAEConfig, build_model, config_from_dict
from vaekit.plots import class_mean_interpolation, latent_arithmetic, manifold_images
from vaekit.report import REPORT_IW_LIMIT, report_iw_limit

ROOT = Path(__file__).resolve().parents[1]


def test_label_enters_both_networks_at_label_scale():
    cfg = VAEConfig(latent_dim=2, hidden=(8,), n_classes=3)
    assert cfg.label_scale == 30.0
    seen = []
    model = build_model(cfg)
    model.decoder.register_forward_pre_hook(lambda m, args: seen.append(args[1]))
    model.encoder.register_forward_pre_hook(lambda m, args: seen.append(args[1]))
    model.loss(torch.rand(4, 784), torch.tensor([0, 1, 2, 1]))
    for c in seen:  # encoder and decoder: 30 at the class, 0 elsewhere
        assert torch.equal(c, 30.0 * torch.nn.functional.one_hot(c.argmax(-1), 3).float())
        assert c.argmax(-1).tolist()[:4] == [0, 1, 2, 1]


def test_conditional_configs_saved_before_label_scale_load_with_a_bare_one_hot():
    old = VAEConfig(n_classes=10).to_dict()
    del old["label_scale"]
    assert config_from_dict(old).label_scale == 1.0
    assert config_from_dict(VAEConfig(n_classes=10).to_dict()).label_scale == 30.0
    with pytest.raises(ConfigError, match="label_scale"):
        VAEConfig(n_classes=10, label_scale=0.0)


def test_label_scale_is_an_option_from_flag_to_saved_model(tmp_path, capsys):
    from vaekit.cli import main

    est = _est(["--model", "cvae", "--label-scale", "5"])
    assert est.label_scale == 5.0
    X = np.random.default_rng(0).random((20, 784)).astype(np.float32)
    y = np.arange(20) % 4
    est.set_params(hidden=(8,), latent_dim=2, epochs=1, batch_size=10, val_fraction=0.0, verbose=False, device="cpu").fit(X, y)
    assert est.model_.config.label_scale == 5.0
    est.save(tmp_path / "m")
    assert vaekit.load(tmp_path / "m").model_.config.label_scale == 5.0
    with pytest.raises(ConfigError, match="label_scale"):
        vaekit.VAE(conditional=True, label_scale=0.0).check_params()
    assert main(["train", "--model", "cvae", "--label-scale", "-1", "--dataset", "embedded", "--out", str(tmp_path / "bad")]) == 2
    assert "--label-scale" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_a_format_1_conditional_model_keeps_its_bare_one_hot():
    from vaekit.modelfile import read_config

    fixture = ROOT / "tests" / "fixtures" / "v1" / "cvae"
    assert config_from_dict(read_config(fixture)["model"]).label_scale == 1.0
    assert vaekit.load(fixture).model_.config.label_scale == 1.0


def _est(argv):
    return make_estimator(build_parser().parse_args(["train", "--out", "x", *argv]))


def test_per_model_training_defaults_and_explicit_options_win():
    conv, cvae, vae, ae = _est(["--model", "conv-vae"]), _est(["--model", "cvae"]), _est([]), _est(["--model", "ae"])
    assert (conv.batch_size, conv.lr, conv.latent_dim) == (32, 2e-3, 100)
    assert (cvae.batch_size, cvae.lr, cvae.latent_dim) == (128, 1e-3, 4)
    assert (vae.batch_size, vae.lr, vae.latent_dim) == (128, 1e-3, 20)
    assert (ae.batch_size, ae.lr) == (64, 3e-3)
    given = _est(["--model", "conv-vae", "--batch-size", "100", "--lr", "5e-4", "--latent-dim", "8"])
    assert (given.batch_size, given.lr, given.latent_dim) == (100, 5e-4, 8)
    assert vaekit.ConditionalVAE().latent_dim == 4 and vaekit.ConvVAE().batch_size == 32


def test_report_bounds_the_importance_weighted_cost_of_conv_models():
    assert report_iw_limit("mlp") == REPORT_IW_LIMIT
    assert report_iw_limit("conv") < REPORT_IW_LIMIT


@pytest.fixture(scope="module")
def tiny_vae():
    from vaekit.data import load_dataset

    data = load_dataset("embedded", "train", limit=300)
    return vaekit.VAE(latent_dim=2, hidden=(32,), epochs=1, device="cpu").fit(data.X), data


def test_manifold_images_walk_the_quantile_grid(tiny_vae):
    from scipy.stats import norm

    est, _ = tiny_vae
    imgs = manifold_images(est, n=3)
    assert imgs.shape == (9, 28, 28)
    q = norm.ppf([0.05, 0.5, 0.95]).astype(np.float32)
    # Top-left tile: z0 smallest, z1 largest (the second axis grows upwards).
    np.testing.assert_allclose(imgs[0], est.decode(np.array([[q[0], q[2]]], np.float32))[0, 0], atol=1e-6)
    np.testing.assert_allclose(imgs[8], est.decode(np.array([[q[2], q[0]]], np.float32))[0, 0], atol=1e-6)


def test_interpolation_ends_at_the_class_means_and_arithmetic_keeps_the_own_class(tiny_vae):
    est, data = tiny_vae
    X, y = data.X, data.y
    Z = est.encode(X)
    strip = class_mean_interpolation(est, X, y, a=1, b=7, steps=5)
    assert strip.shape == (5, 28, 28)
    np.testing.assert_allclose(strip[0], est.decode(Z[y == 1].mean(0, keepdims=True))[0, 0], atol=1e-5)
    np.testing.assert_allclose(strip[-1], est.decode(Z[y == 7].mean(0, keepdims=True))[0, 0], atol=1e-5)
    p = int(np.flatnonzero(y == 3)[0])
    arith = latent_arithmetic(est, X, y, [p])
    assert arith.shape == (1, len(np.unique(y)), 28, 28)
    # Asking an example for its own class gives back its own code's decoding.
    np.testing.assert_allclose(arith[0, 3], est.decode(Z[p : p + 1])[0, 0], atol=1e-5)


def _runner():
    spec = importlib.util.spec_from_file_location("run_tutorials", ROOT / "scripts" / "run_tutorials.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_tutorial_runner_runs_bash_and_python_blocks_only(tmp_path):
    md = tmp_path / "01-x.md"
    md.write_text("text\n```bash\necho hi\n```\n```text\nnot run\n```\n```python\nprint(1)\n```\n")
    blocks = _runner().blocks(md)
    assert [(b.lang, b.line, b.code) for b in blocks] == [("bash", 2, "echo hi\n"), ("python", 8, "print(1)\n")]
    md.write_text("```bash\necho never closed\n")
    with pytest.raises(SystemExit, match="never closed"):
        _runner().blocks(md)


def test_every_walkthrough_has_blocks_and_its_figures_are_committed():
    runner = _runner()
    files = sorted((ROOT / "docs" / "tutorials").glob("[0-9][0-9]-*.md"))
    assert [f.name[:2] for f in files] == ["01", "02", "03", "04", "05", "06", "07"]
    for f in files:
        assert runner.blocks(f), f"{f.name} has no runnable block"
        text = f.read_text()
        assert "TO-FILL" not in text, f"{f.name} still has a placeholder"
        for ref in re.findall(r"\]\((figures/[^)]+\.png)\)", text):
            assert (f.parent / ref).exists(), f"{f.name} shows {ref}, which is not committed"
