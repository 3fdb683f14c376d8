"""`vaekit plot` and `vaekit report` on tiny runs trained on the embedded MNIST sample."""

from __future__ import annotations

import numpy as np
import pytest

from vaekit.cli import main

KINDS = ["reconstructions", "samples", "manifold", "latent", "interpolate", "curves"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    common = ["--limit", "600", "--epochs", "2", "--quiet", "--no-report", "--device", "cpu"]
    assert main(["train", "--out", str(root / "vae2d"), "--latent-dim", "2", *common]) == 0
    assert main(["train", "--out", str(root / "ae"), "--model", "denoising-ae", "--latent-dim", "4", "--hidden", "32", *common]) == 0
    return root


@pytest.mark.parametrize("kind", KINDS)
def test_each_plot_kind_writes_a_png(runs, tmp_path, kind, capsys):
    out = tmp_path / f"{kind}.png"
    assert main(["plot", str(runs / "vae2d"), kind, "--out", str(out), "--limit", "300"]) == 0
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 2000
    assert "wrote" in capsys.readouterr().out


def test_manifold_traversal_and_tsne_options(runs, tmp_path):
    assert main(["plot", str(runs / "vae2d"), "manifold", "-n", "5", "--dims", "1,0", "--out", str(tmp_path / "m.png")]) == 0
    assert main(["plot", str(runs / "vae2d"), "latent", "--method", "tsne", "--limit", "120", "--out", str(tmp_path / "t.png")]) == 0


def test_denoising_autoencoder_reconstructions_and_latent(runs, tmp_path):
    for kind in ("reconstructions", "latent", "interpolate", "curves"):
        out = tmp_path / f"ae_{kind}.png"
        assert main(["plot", str(runs / "ae"), kind, "--out", str(out), "--limit", "300"]) == 0
        assert out.read_bytes()[:8] == PNG_MAGIC


def _one_line_error(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vaekit: error:") and "\n" not in err and needle in err, err


def test_errors_are_one_line_and_exit_2(runs, tmp_path, capsys):
    out = tmp_path / "x.png"
    _one_line_error(capsys, ["plot", str(runs / "ae"), "manifold", "--out", str(out)], "autoencoder")
    _one_line_error(capsys, ["plot", str(runs / "ae"), "samples", "--out", str(out)], "autoencoder")
    _one_line_error(capsys, ["plot", str(runs / "vae2d"), "manifold", "--dims", "0,5", "--out", str(out)], "--dims")
    _one_line_error(capsys, ["plot", str(runs / "vae2d"), "latent", "--out", str(tmp_path / "x.pdf")], "PNG")
    _one_line_error(capsys, ["plot", str(runs / "vae2d"), "interpolate", "--classes", "1,42", "--out", str(out)], "class 42")
    _one_line_error(capsys, ["plot", str(tmp_path / "nope"), "curves", "--out", str(out)], "does not exist")
    assert not out.exists()


def test_latent_without_labels_is_an_error(runs, tmp_path, capsys):
    X = np.random.default_rng(0).random((50, 784)).astype(np.float32)  # an .npy holds no labels
    data = tmp_path / "unlabelled.npy"
    np.save(data, X)
    out = tmp_path / "l.png"
    _one_line_error(capsys, ["plot", str(runs / "vae2d"), "latent", "--dataset", str(data), "--out", str(out)], "no labels")
    assert not out.exists()


def test_report_command_and_evaluate(runs, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(runs / "vae2d"), "--out", str(out), "--k", "5", "--iw-limit", "50"]) == 0
    page = out.read_text()
    assert page.count("<img ") >= 6 and "k=5" in page and "data:image/png;base64," in page
    # Figures come before the configuration, which lists only the options that apply to a plain VAE.
    config = page[page.index("<h2>Configuration</h2>"):]
    assert page.index("<img ") < page.index("<h2>Configuration</h2>") and "<img " not in config
    for name in ("latent_dim", "posterior", "lr", "beta"):
        assert f"<td>{name}</td>" in config
    for name in ("sparsity", "noise_level", "sigma", "ar_hidden", "n_pseudo_inputs", "student_df", "top_hidden", "momentum"):
        assert f"<td>{name}</td>" not in config
    capsys.readouterr()
    js = tmp_path / "e.json"
    assert main(["evaluate", str(runs / "vae2d"), "--k", "10", "--iw-limit", "50", "--probe-limit", "300", "--json", str(js)]) == 0
    text = capsys.readouterr().out
    for needle in ("ELBO", "nats/example", "k=10", "test NLL", "active units", "linear probe", "binarization"):
        assert needle in text
    assert '"iw_k": 10' in js.read_text()


def test_train_writes_the_report(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--latent-dim", "2", "--limit", "300", "--epochs", "1", "--quiet", "--device", "cpu"]) == 0
    page = (run / "report.html").read_text()
    assert "k=100" in page and "Learned manifold" in page
    # Written in the staging folder, but named after the run the user asked for.
    assert "partial" not in page and f"vaekit evaluate {run} --k 5000" in page


@pytest.mark.parametrize("shape, image", [((1, 28, 28), True), ((3, 32, 32), True), ((784,), True), ((64,), True),
                                          ((16,), False), ((10,), False), ((28, 28), False)])
def test_one_rule_says_which_examples_are_images(shape, image):
    # Figures, the report, TensorBoard grids and .png outputs all ask this one rule: a flat vector of
    # 4, 9 or 16 features is a table, not a picture.
    from vaekit.plots import is_image_shape

    assert is_image_shape(shape) is image


def test_captions_read_the_components(runs, monkeypatch):
    # The prior writes its own symbol into the captions, and the family its own words: no name compared.
    from vaekit import plots
    from vaekit.registry import PRIORS
    from vaekit.runfolder import load

    vae, ae = load(runs / "vae2d"), load(runs / "ae")
    assert plots.sample_caption(vae) == "E[x|z], z ~ N(0, I)"
    monkeypatch.setitem(PRIORS["normal"].flags, "symbol", "p₀(z)")
    assert plots.sample_caption(vae) == "E[x|z], z ~ p₀(z)"
    assert plots.prior_symbol(ae) == "p(z)"  # an autoencoder has no prior
    assert (vae.family.code_from, ae.family.code_from) == ("the posterior mean", "the encoder")
    assert plots.density_preset() == "vae"
