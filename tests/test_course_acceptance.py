"""Acceptance tests of the course's demonstrations (issue 13): each runs the README's or the
walkthroughs' command with its documented options, then measures the promise with a judge that
owes nothing to vaekit: a scikit-learn MLP classifier fitted on the 60 000 real MNIST training
images of ../shared/data (not on the 5 000-image embedded sample the models train on).

Thresholds and why:

- conditional VAE: samples asked for class k are judged k in >= 90 % of 100 draws, for every k
  (the issue's criterion).
- prior samples of the conv and MLP VAE: a sample "is a digit" when the judge gives one class
  p >= 0.9. Real MNIST test digits pass that in about 97 % of cases; the mean of p(x|z) is blurrier
  than a real digit, and blobs (the conv VAE before issue 13) passed in 16 %. We ask for 25 %, and
  for confident samples of at least 8 of the 10 classes, so that one easy shape cannot pass alone.
- reconstructions: judged as their original's digit in >= 90 % of 500 test images.
- denoising: test PSNR of the denoised images at least 2 dB above the noisy input's (clipped to
  [0, 1], which is already a denoiser), for each noise kind.
- sparse (the walkthrough's options): the KL penalty (beta = 10) holds the mean code activation
  within 0.03 of rho = 0.05; the L1 penalty (lambda = 0.2) shrinks the mean |code| at least 3-fold
  and adds at least 0.1 to the share of exact zeros, against the same ReLU code trained without the
  penalty, at a reconstruction cost (squared error per image) at most 40 % above it.
- class-mean interpolation and latent arithmetic: the judge reads the start class at t = 0, the end
  class at t = 1, changes its mind at most twice along the strip; latent arithmetic turns an example
  into the asked class in >= 50 % of (example, class) pairs (chance: 10 %; measured 67 % at 20-D).
- 2-D manifolds: the MNIST grid (20 x 20) has tiles of >= 8 classes judged with p >= 0.7 (two
  numbers blur the digits between regions: at p >= 0.9 seven classes pass, at 0.7 nine); the Frey
  Face grid's per-pixel standard deviation across tiles is >= 30 % of the real faces' (measured
  68 %: the faces change, not one face repeated).
- anomaly (one digit held out of training, walkthrough 1): mean ROC-AUC over the ten digits >= 0.70
  (measured 0.777; single digits range from 0.42 for a held-out 1, which is easy to redraw, to 0.95).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vaekit.cli import main

pytestmark = pytest.mark.slow

ANOMALY_MEAN_AUC_FLOOR = 0.70


@pytest.fixture(scope="session")
def judge(shared_data):
    """p(class | image) of an MLP fitted on real MNIST (scripts/digit_judge.py): images (N, ...) in [0, 1]."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from digit_judge import fit_judge

    from vaekit.data import load_dataset

    judge = fit_judge(shared_data / "mnist")
    test = load_dataset("mnist", "test", data_dir=shared_data / "mnist")
    acc = float((judge(test.X).argmax(1) == test.y).mean())
    assert acc > 0.96, f"the judge itself reads only {acc:.3f} of real test digits right"
    return judge


def _run(argv: list[str]) -> None:
    assert main(argv) == 0, f"vaekit {' '.join(argv)} failed"


def _report(name: str, **values) -> None:
    # Printed so that `pytest -s` shows every measured value beside its threshold.
    print(f"\n[acceptance] {name}: " + json.dumps(values))


@pytest.fixture(scope="module")
def embedded_test():
    from vaekit.data import load_dataset

    return load_dataset("embedded", "test")


# -- the conditional VAE: "draw me a 7" ---------------------------------------------------------


def test_cvae_draws_the_asked_digit(tmp_path, judge):
    run = tmp_path / "cvae"
    _run(["train", "--model", "cvae", "--epochs", "20", "--out", str(run), "--no-report", "--quiet"])  # the README's command
    _run(["sample", str(run), "-n", "16", "--label", "7", "--out", str(tmp_path / "sevens.png")])  # the README's command
    rates = []
    for k in range(10):
        out = tmp_path / f"s{k}.npy"
        _run(["sample", str(run), "-n", "100", "--label", str(k), "--out", str(out)])
        rates.append(float((judge(np.load(out)).argmax(1) == k).mean()))
    _report("cvae: share of samples of label k judged k", per_label=[round(r, 2) for r in rates])
    assert min(rates) >= 0.90, f"per-label rates {rates}"


# -- the MLP and conv VAE: samples and reconstructions -------------------------------------------


def _confident(est, judge) -> tuple[float, int]:
    """The share of 500 prior samples the judge gives one class with p >= 0.9, and how many classes those are."""
    p = judge(est.sample(500, seed=1))
    sure = p.max(1) >= 0.9
    return float(sure.mean()), len(np.unique(p.argmax(1)[sure]))


def _check_vae(est, judge, test, name: str) -> None:
    share, classes = _confident(est, judge)
    rec = judge(est.reconstruct(test.X[:500])).argmax(1) == test.y[:500]
    _report(name, confident_samples=round(share, 3), confident_classes=classes,
            reconstructions_judged_right=round(float(rec.mean()), 3))
    assert share >= 0.25
    assert classes >= 8
    assert rec.mean() >= 0.90


def test_conv_vae_readme_command_draws_digits(tmp_path, judge, embedded_test):
    import vaekit

    run = tmp_path / "conv"
    _run(["train", "--model", "conv-vae", "--epochs", "5", "--out", str(run), "--no-report", "--quiet"])
    _check_vae(vaekit.load(run), judge, embedded_test, "conv VAE (--model conv-vae --epochs 5)")


@pytest.fixture(scope="module")
def demo_vae(tmp_path_factory):
    """The MLP VAE of `make demo` (vaekit train --epochs 30)."""
    import vaekit

    run = tmp_path_factory.mktemp("demo") / "demo"
    _run(["train", "--epochs", "30", "--out", str(run), "--no-report", "--no-figures", "--quiet"])
    return vaekit.load(run)


def test_mlp_vae_demo_draws_digits(demo_vae, judge, embedded_test):
    _check_vae(demo_vae, judge, embedded_test, "MLP VAE (make demo: --epochs 30)")


def test_vq_vae_readme_commands_reconstruct_and_draw_digits(tmp_path, judge, embedded_test, demo_vae):
    """The README's two VQ-VAE lines (train, then train-prior and sample), judged: reconstructions right in
    >= 95 %, confident samples at least the demo MLP VAE's share, all ten classes among them, and a smaller
    reconstruction error than an MLP VAE trained for the same 10 epochs."""
    import vaekit

    run = tmp_path / "vq"
    _run(["train", "--model", "vq-vae", "--out", str(run), "--no-report", "--quiet"])  # the README's command (10 epochs)
    _run(["train-prior", str(run), "--quiet"])
    _run(["sample", str(run), "--out", str(tmp_path / "vq-samples.png")])
    _run(["train", "--epochs", "10", "--out", str(tmp_path / "vae10"), "--no-report", "--no-figures", "--quiet"])
    vq, vae10 = vaekit.load(run), vaekit.load(tmp_path / "vae10")
    X, y = embedded_test.X[:500], embedded_test.y[:500]
    rec = float((judge(vq.reconstruct(X)).argmax(1) == y).mean())
    (share, classes), (demo_share, _) = _confident(vq, judge), _confident(demo_vae, judge)
    mse = {name: float(np.mean((est.reconstruct(X).reshape(len(X), -1) - X.reshape(len(X), -1)) ** 2))
           for name, est in (("vq", vq), ("vae", vae10))}
    _report("VQ-VAE (--model vq-vae, then train-prior)", reconstructions_judged_right=round(rec, 3), confident_samples=round(share, 3),
            confident_classes=classes, demo_vae_confident_samples=round(demo_share, 3), mse=round(mse["vq"], 5),
            mlp_vae_10_epochs_mse=round(mse["vae"], 5))
    assert rec >= 0.95
    assert share >= demo_share
    assert classes == 10
    assert mse["vq"] < mse["vae"]


def test_class_mean_interpolation_and_arithmetic(demo_vae, judge, embedded_test):
    from vaekit.plots import class_mean_interpolation, latent_arithmetic

    X, y = embedded_test.X, embedded_test.y
    for a, b in [(1, 7), (3, 8), (0, 6)]:
        labels = judge(class_mean_interpolation(demo_vae, X, y, a=a, b=b, steps=10)).argmax(1)
        changes = int((labels[1:] != labels[:-1]).sum())
        _report(f"interpolation {a} -> {b}", judged=labels.tolist())
        assert labels[0] == a and labels[-1] == b and changes <= 2, labels
    picks = [int(np.flatnonzero(y == k)[0]) for k in range(10)]
    imgs = latent_arithmetic(demo_vae, X, y, picks)  # (10 examples, 10 classes, H, W)
    judged = judge(imgs.reshape(-1, *imgs.shape[2:])).argmax(1).reshape(10, 10)
    hit = float((judged == np.arange(10)[None, :]).mean())
    _report("latent arithmetic", share_judged_as_asked=round(hit, 3))
    assert hit >= 0.50


# -- 2-D manifolds --------------------------------------------------------------------------------


def test_mnist_2d_manifold_covers_the_digits(tmp_path, judge):
    import vaekit
    from vaekit.plots import manifold_images

    run = tmp_path / "mnist2d"
    _run(["train", "--latent-dim", "2", "--epochs", "20", "--out", str(run), "--no-report", "--no-figures", "--quiet"])
    _run(["plot", str(run), "manifold", "-n", "20", "--out", str(tmp_path / "m.png")])
    p = judge(manifold_images(vaekit.load(run), n=20))
    sure = p.max(1) >= 0.7
    classes = np.unique(p.argmax(1)[sure])
    _report("MNIST 2-D manifold", confident_tiles=round(float(sure.mean()), 3), classes=classes.tolist())
    assert len(classes) >= 8


def test_frey_face_2d_manifold_varies(tmp_path, shared_data):
    import vaekit
    from vaekit.data import load_dataset
    from vaekit.plots import manifold_images

    run = tmp_path / "frey2d"
    data = str(shared_data / "frey-face")
    _run(["train", "--dataset", "frey-face", "--data-dir", data, "--latent-dim", "2", "--hidden", "200",
          "--likelihood", "gaussian", "--learn-sigma", "--batch-size", "100", "--epochs", "100",
          "--out", str(run), "--no-report", "--no-figures", "--quiet"])
    _run(["plot", str(run), "manifold", "-n", "12", "--out", str(tmp_path / "f.png")])
    grid = manifold_images(vaekit.load(run), n=12)
    faces = load_dataset("frey-face", "train", data_dir=data).X
    ratio = float(grid.reshape(len(grid), -1).std(0).mean() / faces.reshape(len(faces), -1).std(0).mean())
    _report("Frey Face 2-D manifold", grid_std_over_data_std=round(ratio, 3))
    assert ratio >= 0.30


# -- denoising and sparse autoencoders -----------------------------------------------------------


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (peak 1): 10 log10(1 / MSE)."""
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


@pytest.mark.parametrize("noise,level", [("masking", "0.3"), ("gaussian", "0.3"), ("salt-and-pepper", "0.2")])
def test_denoising_autoencoder_removes_noise(tmp_path, noise, level, embedded_test):
    import vaekit

    run = tmp_path / noise
    _run(["train", "--model", "denoising-ae", "--noise", noise, "--noise-level", level, "--epochs", "10",
          "--out", str(run), "--no-report", "--no-figures", "--quiet"])
    est = vaekit.load(run)
    clean = embedded_test.X
    noisy = np.clip(est.corrupt(clean, seed=1), 0, 1)
    gain = _psnr(est.reconstruct(noisy), clean) - _psnr(noisy, clean)
    _report(f"denoising ({noise} {level})", psnr_noisy=round(_psnr(noisy, clean), 2),
            psnr_denoised=round(_psnr(est.reconstruct(noisy), clean), 2), gain_db=round(gain, 2))
    assert gain >= 2.0


def _codes(run):
    import vaekit
    from vaekit.data import load_dataset

    est = vaekit.load(run)
    test = load_dataset("embedded", "test")
    recon = est.reconstruct(test.X)
    return est.encode(test.X), float(((recon - test.X) ** 2).reshape(len(recon), -1).sum(1).mean())


def test_sparse_autoencoders(tmp_path):
    common = ["--epochs", "10", "--no-report", "--no-figures", "--quiet"]
    # The baseline is the same ReLU code with the penalty's weight at 0, so only the penalty differs.
    _run(["train", "--model", "sparse-ae", "--sparsity-weight", "0", "--out", str(tmp_path / "plain"), *common])
    _run(["train", "--model", "sparse-ae", "--sparsity-weight", "0.2", "--out", str(tmp_path / "l1"), *common])
    _run(["train", "--model", "sparse-ae", "--sparsity", "kl", "--sparsity-weight", "10", "--sparsity-target", "0.05",
          "--out", str(tmp_path / "kl"), *common])
    plain, plain_err = _codes(tmp_path / "plain")
    kl, _ = _codes(tmp_path / "kl")
    l1, l1_err = _codes(tmp_path / "l1")
    _report("sparse AE", kl_mean_activation=round(float(kl.mean()), 4), rho=0.05,
            mean_abs_plain=round(float(np.abs(plain).mean()), 3), mean_abs_l1=round(float(np.abs(l1).mean()), 3),
            zeros_plain=round(float((plain == 0).mean()), 3), zeros_l1=round(float((l1 == 0).mean()), 3),
            sse_plain=round(plain_err, 2), sse_l1=round(l1_err, 2))
    assert abs(float(kl.mean()) - 0.05) <= 0.03
    assert np.abs(l1).mean() * 3 <= np.abs(plain).mean()
    assert (l1 == 0).mean() >= (plain == 0).mean() + 0.1
    assert l1_err <= 1.4 * plain_err


# -- anomaly detection: one digit held out --------------------------------------------------------


def test_anomaly_held_out_digit():
    """Walkthrough 1: for each digit k, an autoencoder fitted on the other nine; k is the anomaly."""
    from sklearn.metrics import roc_auc_score

    from vaekit.anomaly import AutoencoderDetector
    from vaekit.data import load_dataset

    train, test = load_dataset("embedded", "train"), load_dataset("embedded", "test")
    Xtr, Xte = train.X.reshape(len(train.X), -1), test.X.reshape(len(test.X), -1)
    aucs = []
    for k in range(10):
        det = AutoencoderDetector(latent_dim=16, hidden=(256,), likelihood="bernoulli", scaling="none", n_steps=640,
                                  batch_size=128, device="cpu").fit(Xtr[train.y != k])
        aucs.append(float(roc_auc_score(test.y == k, det.decision_function(Xte))))
    _report("anomaly, one digit held out", roc_auc=[round(a, 3) for a in aucs], mean=round(float(np.mean(aucs)), 3))
    assert np.mean(aucs) >= ANOMALY_MEAN_AUC_FLOOR
