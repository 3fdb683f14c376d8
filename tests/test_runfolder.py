"""Model folders: save/load round trips, halves of a model, and damaged folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

import vaekit
from vaekit.atomicfiles import atomic_path
from vaekit.errors import ModelFileError
from vaekit.estimators import VAE, Autoencoder, ConditionalVAE, ConvVAE
from vaekit.modelfile import CONFIG_FILE, WEIGHTS_FILE, read_config

TINY = dict(hidden=(16,), epochs=1, batch_size=20, device="cpu")
RNG = np.random.default_rng(0)
TABLE = RNG.random((60, 12), dtype=np.float32)
IMAGES = RNG.random((60, 2, 8, 12), dtype=np.float32)
LABELS = RNG.integers(0, 3, 60)

CASES = {
    "vae": (lambda: VAE(latent_dim=3, posterior="laplace", **TINY), TABLE, None),
    "ae": (lambda: Autoencoder(latent_dim=3, sparsity="kl", **TINY), TABLE, None),
    "conv-vae": (lambda: ConvVAE(latent_dim=3, **TINY), IMAGES, None),
    "cvae": (lambda: ConditionalVAE(latent_dim=3, **TINY), TABLE, LABELS),
    "standardized-gaussian": (lambda: VAE(latent_dim=3, likelihood="gaussian", learn_sigma=True, standardize=True, **TINY),
                              TABLE * 40 - 7, None),
}


@pytest.fixture(scope="module", params=list(CASES))
def fitted(request, tmp_path_factory):
    make, X, y = CASES[request.param]
    est = make().fit(X, y)
    path = tmp_path_factory.mktemp(request.param) / "model"
    assert est.save(path) == path
    return request.param, est, X, y, path


def test_round_trip_gives_identical_outputs(fitted):
    name, est, X, y, path = fitted
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]  # no temp files left
    again = vaekit.load(path)
    # JSON has no tuples: hidden=(16,) comes back as [16], which every consumer reads the same
    norm = lambda p: {**p, "hidden": list(np.atleast_1d(p["hidden"]))}  # noqa: E731
    assert type(again) is type(est) and norm(again.get_params()) == norm(est.get_params())
    Z = est.encode(X, y)
    np.testing.assert_array_equal(again.encode(X, y), Z)
    np.testing.assert_array_equal(again.decode(Z, y), est.decode(Z, y))
    np.testing.assert_array_equal(again.reconstruct(X, y), est.reconstruct(X, y))
    if hasattr(est, "sample"):
        label = 1 if name == "cvae" else None
        np.testing.assert_array_equal(again.sample(5, label=label, seed=3), est.sample(5, label=label, seed=3))
        assert not np.array_equal(again.sample(5, label=label, seed=3), again.sample(5, label=label, seed=4))
    if name == "standardized-gaussian":
        np.testing.assert_array_equal(again.scaler_mean_, est.scaler_mean_)
        np.testing.assert_array_equal(again.scaler_scale_, est.scaler_scale_)
    # a loaded model can be saved again and still loads
    again.save(path.parent / "again")
    np.testing.assert_array_equal(vaekit.load(path.parent / "again").encode(X, y), Z)


def test_halves_load_on_their_own(fitted):
    name, est, X, y, path = fitted
    enc_dir, dec_dir = path.parent / "enc", path.parent / "dec"
    est.save(enc_dir, part="encoder")
    est.save(dec_dir, part="decoder")
    assert read_config(enc_dir)["part"] == "encoder"
    enc, dec = vaekit.load_encoder(enc_dir), vaekit.load_decoder(dec_dir)
    Z = est.encode(X, y)
    np.testing.assert_array_equal(enc.encode(X, y), Z)
    np.testing.assert_array_equal(enc.transform(X, y), Z)
    np.testing.assert_array_equal(dec.decode(Z, y), est.decode(Z, y))
    # a full folder gives either half too
    np.testing.assert_array_equal(vaekit.load_encoder(path).encode(X, y), Z)
    np.testing.assert_array_equal(vaekit.load_decoder(path).decode(Z, y), est.decode(Z, y))
    with pytest.raises(ModelFileError, match="only an encoder"):
        vaekit.load_decoder(enc_dir)
    with pytest.raises(ModelFileError, match="only a decoder"):
        vaekit.load_encoder(dec_dir)
    # an encoder file holds no decoder weights
    from safetensors.torch import load_file

    assert not any(k.startswith("decoder.") for k in load_file(str(enc_dir / WEIGHTS_FILE)))
    if name in ("vae", "conv-vae"):
        np.testing.assert_array_equal(dec.sample(4, seed=2), est.sample(4, seed=2))


@pytest.fixture(scope="module")
def saved_vae(tmp_path_factory):
    est = VAE(latent_dim=3, **TINY).fit(TABLE)
    path = tmp_path_factory.mktemp("vae") / "model"
    est.save(path)
    return est, path


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_weights_of_another_model_are_refused(saved_vae, tmp_path):
    _, path = saved_vae
    other = VAE(latent_dim=5, **TINY).fit(TABLE)  # same layer names, other shapes
    other.save(tmp_path / "other")
    bad = _copy(path, tmp_path / "bad")
    (bad / WEIGHTS_FILE).write_bytes((tmp_path / "other" / WEIGHTS_FILE).read_bytes())
    with pytest.raises(ModelFileError, match="shape"):
        vaekit.load(bad)
    deeper = VAE(latent_dim=3, **{**TINY, "hidden": (16, 8)}).fit(TABLE)  # layers the config lacks
    deeper.save(tmp_path / "deeper")
    (bad / WEIGHTS_FILE).write_bytes((tmp_path / "deeper" / WEIGHTS_FILE).read_bytes())
    with pytest.raises(ModelFileError, match="does not match"):
        vaekit.load(bad)


@pytest.mark.parametrize("damage, match", [
    (lambda p: (p / CONFIG_FILE).unlink(), "not found"),
    (lambda p: (p / CONFIG_FILE).write_text("{not json"), "not valid JSON"),
    (lambda p: (p / CONFIG_FILE).write_bytes(b"\xff\xfe\x00garbage"), "not valid JSON"),
    (lambda p: (p / CONFIG_FILE).write_text("[1, 2]"), "not a vaekit model config"),
    (lambda p: (p / CONFIG_FILE).write_text(json.dumps({"format": "vaekit-model", "format_version": 1})), "lacks the field"),
    (lambda p: (p / WEIGHTS_FILE).unlink(), "not found"),
    (lambda p: (p / WEIGHTS_FILE).write_bytes(b"\x00" * 40), "safetensors"),
    (lambda p: (p / WEIGHTS_FILE).write_bytes((p / WEIGHTS_FILE).read_bytes()[:100]), "safetensors"),
])
def test_damaged_folders_give_model_file_errors(saved_vae, tmp_path, damage, match):
    _, path = saved_vae
    bad = _copy(path, tmp_path / "bad")
    damage(bad)
    with pytest.raises(ModelFileError, match=match):
        vaekit.load(bad)


def _edit_config(path, fn):
    cfg = json.loads((path / CONFIG_FILE).read_text())
    fn(cfg)
    (path / CONFIG_FILE).write_text(json.dumps(cfg))


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.update(format_version=99), "newer vaekit"),
    (lambda c: c.update(estimator="Pickle"), "unknown estimator"),
    (lambda c: c["model"].update(latent_dim=0), "invalid model section"),
    (lambda c: c["model"].update(wings=2), "invalid model section"),
    (lambda c: c["model"].update(latent_dim=4), "shape"),
])
def test_configs_that_do_not_fit_are_refused(saved_vae, tmp_path, edit, match):
    _, path = saved_vae
    bad = _copy(path, tmp_path / "bad")
    _edit_config(bad, edit)
    with pytest.raises(ModelFileError, match=match):
        vaekit.load(bad)


def test_missing_folder_or_a_file_instead(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        vaekit.load(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelFileError, match="is a file"):
        vaekit.load(tmp_path / "file")


def test_unknown_part_is_refused(saved_vae, tmp_path):
    est, _ = saved_vae
    with pytest.raises(vaekit.ConfigError, match="part"):
        est.save(tmp_path / "x", part="middle")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]


# -- the one load path: sizes checked before the model is built for real -------------------------


def test_a_build_over_the_budget_gives_the_same_model_and_shapes(saved_vae):
    """sized_build under a budget too small for any tensor: shapes only, then one real build that
    draws the same initial weights (the global generator is left as one build leaves it)."""
    import torch

    from vaekit import runfolder
    from vaekit.models import build_model

    est, _ = saved_vae
    config = est.model_.config
    torch.manual_seed(0)
    model, shapes = runfolder.sized_build(config)
    real = model.state_dict()
    after_one = torch.get_rng_state()
    torch.manual_seed(0)
    spilled, spilled_shapes = runfolder.sized_build(config, budget=0)
    assert spilled is None and spilled_shapes == shapes == {k: tuple(v.shape) for k, v in real.items()}
    rebuilt = build_model(config).state_dict()
    assert torch.equal(torch.get_rng_state(), after_one)
    assert all(torch.equal(rebuilt[k], real[k]) for k in real)


def test_a_config_far_larger_than_its_weights_is_refused_before_it_is_allocated(saved_vae, tmp_path):
    """A layer of 2**20 x 2**20 (4 TB of float32) reaches the check as a shape only."""
    _, path = saved_vae
    bad = _copy(path, tmp_path / "bad")
    _edit_config(bad, lambda c: c["model"].update(hidden=[1 << 20, 1 << 20]))
    with pytest.raises(ModelFileError, match="does not match its config"):
        vaekit.load(bad)


def test_reading_a_config_imports_no_torch_and_loading_no_dynamo(saved_vae):
    """Quick commands pay for neither: config.json is checked without torch, and the sizes are
    checked without the meta device's kernels (which import torch._dynamo, seconds)."""
    import subprocess
    import sys

    _, path = saved_vae
    code = ("import sys; from vaekit.modelfile import read_config; read_config(sys.argv[1]); assert 'torch' not in sys.modules; "
            "import vaekit.runfolder; vaekit.runfolder.load(sys.argv[1]); assert 'torch._dynamo' not in sys.modules")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)


def test_a_failed_save_leaves_the_old_pair_and_no_temporary_file(saved_vae, tmp_path, monkeypatch):
    from vaekit import modelfile

    est, path = saved_vae
    folder = _copy(path, tmp_path / "again")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(modelfile, "save_tensors", full_disk)
    with pytest.raises(OSError):
        est.save(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_vamp_prior_decoder_folder_samples_as_the_full_model_does(tmp_path):
    """The VampPrior's p(z) runs the encoder over its pseudo-inputs, so a decoder saved alone keeps
    the encoder's weights (a prior flag, needs_encoder): its samples are the full model's."""
    X = np.random.default_rng(0).random((60, 16)).astype(np.float32)
    est = VAE(latent_dim=2, prior="vamp", n_pseudo_inputs=3, **TINY).fit(X)
    dec = vaekit.load_decoder(est.save(tmp_path / "dec", part="decoder"))
    np.testing.assert_array_equal(dec.sample(5, seed=1), est.sample(5, seed=1))


def test_a_vamp_prior_decoder_saved_without_its_encoder_refuses_to_sample(tmp_path):
    """A decoder folder written before the prior said it needs the encoder: it decodes, and refuses to sample."""
    from safetensors.numpy import load_file, save_file

    X = np.random.default_rng(0).random((60, 16)).astype(np.float32)
    est = VAE(latent_dim=2, prior="vamp", n_pseudo_inputs=3, **TINY).fit(X)
    folder = est.save(tmp_path / "dec", part="decoder")
    weights = load_file(folder / WEIGHTS_FILE)
    save_file({k: v for k, v in weights.items() if not k.startswith("encoder.")}, folder / WEIGHTS_FILE)
    dec = vaekit.load_decoder(folder)
    Z = np.zeros((2, 2), np.float32)
    np.testing.assert_array_equal(dec.decode(Z), est.decode(Z))
    with pytest.raises(ModelFileError, match="lacks the encoder"):
        dec.sample(2)


def test_the_old_module_name_still_loads_and_says_where_it_moved():
    import importlib
    import sys

    sys.modules.pop("vaekit.io", None)
    with pytest.warns(DeprecationWarning, match="vaekit.runfolder"):
        old = importlib.import_module("vaekit.io")
    assert old.load is vaekit.load and old.load_decoder is vaekit.load_decoder
