"""The latent traversal figure: one dimension per row, most KL first, swept over [-3, 3] for an
N(0, I) prior (else mean ± 3 sd of the codes), the others at one test code's posterior mean."""

from __future__ import annotations

import numpy as np
import pytest

from vaekit import load, plots
from vaekit.cli import main
from vaekit.data import load_dataset

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("trav") / "vae"
    assert main(["train", "--out", str(out), "--latent-dim", "4", "--hidden", "64", "--limit", "300", "--epochs", "2",
                 "--quiet", "--no-report", "--device", "cpu"]) == 0
    return out


def test_plot_traversal_writes_a_png(run, tmp_path, capsys):
    out = tmp_path / "t.png"
    assert main(["plot", str(run), "traversal", "--out", str(out), "--limit", "200", "--steps", "7"]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert "wrote traversal figure" in capsys.readouterr().out


def test_rows_sweep_one_dimension_each_ordered_by_kl(run, monkeypatch):
    est = load(run)
    X = load_dataset("embedded", "test", limit=100).X
    kl = [0.5, 3.0, 0.0, 1.5]
    seen = {}
    decode = est.decode

    def spy(Z, y=None):
        seen["Z"] = np.array(Z)
        return decode(Z, y)

    monkeypatch.setattr(est, "decode", spy)
    plots.figure_png(plots.traversal_figure(est, X, kl_per_dim=kl, steps=5))
    Z = seen["Z"].reshape(4, 5, 4)  # rows x steps x dims
    codes = est.encode(X)
    base = Z[0, 0].copy()
    base[1] = Z[1, 0, 1]  # row 0 sweeps z1, so its base value comes from another row
    assert any(np.allclose(base, c, atol=1e-6) for c in codes)  # the others sit at a test code's mean
    for row, j in enumerate([1, 3, 0, 2]):  # most KL first
        np.testing.assert_allclose(Z[row, :, j], np.linspace(-3, 3, 5), atol=1e-6)
        others = np.delete(Z[row], j, axis=1)
        assert np.allclose(others, others[0])


def test_order_and_values_for_a_prior_without_per_dimension_kl():
    from vaekit import VAE

    X = load_dataset("embedded", "train", limit=120).X
    est = VAE(latent_dim=3, top_latent_dim=2, hidden=[32], epochs=1, batch_size=32, device="cpu").fit(X)
    order, kl, note = plots.traversal_order(est, X)
    # The code is z1 and z2 (3 + 2 dimensions), as decode takes it; p(z1_j) is an integral over z2, so no KL per dimension.
    assert list(order) == [0, 1, 2, 3, 4] and kl is None and note.startswith("in index order")
    codes = est.encode(X)
    values, how = plots.traversal_values(est, codes, 7)
    np.testing.assert_allclose(values[:, 0], codes.mean(0) - 3 * codes.std(0), rtol=1e-5, atol=1e-6)
    assert "mean ± 3 sd" in how
    assert plots.figure_png(plots.traversal_figure(est, X, steps=3))[:8] == PNG_MAGIC


def test_order_of_a_standard_normal_prior_follows_measured_kl(run):
    est = load(run)
    X = load_dataset("embedded", "test", limit=100).X
    order, kl, note = plots.traversal_order(est, X)
    assert note is None and list(order) == list(np.argsort(-kl, kind="stable"))
    values, how = plots.traversal_values(est, est.encode(X), 7)
    np.testing.assert_allclose(values, np.tile(np.linspace(-3, 3, 7), (4, 1)))
