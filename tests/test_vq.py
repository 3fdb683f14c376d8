"""The VQ-VAE family (vaekit.vq): quantization, the straight-through gradient, the codebook's moving
averages and restarts worked by hand, a codebook that does not collapse on real digits, resume to the
same numbers, and every command either working or refusing in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.checkpoint import Checkpointer, read_checkpoint
from vaekit.cli import main
from vaekit.data import load_dataset
from vaekit.errors import ConfigError, DataError
from vaekit.estimators import VQVAE
from vaekit.models import build_model, config_from_params
from vaekit.train import TrainConfig, fit
from vaekit.vq import DEAD_SHARE, Codebook


def _images(n: int = 96, side: int = 8, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, 1, side, side)) > 0.5).astype(np.float32)


def _model(**params):
    torch.manual_seed(0)
    return build_model(config_from_params("vq", input_shape=(1, 8, 8), **{"latent_dim": 3, "codebook_size": 5, **params}))


# -- quantization and its gradient ---------------------------------------------------------------


def test_each_vector_goes_to_its_nearest_entry_and_the_code_is_made_of_entries():
    book = Codebook(4, 2, decay=0.9).eval()
    book.embedding.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]))
    rows = torch.tensor([[0.1, -0.2], [0.9, 0.2], [0.2, 0.7], [3.0, 2.9], [0.6, 0.1]])
    q, idx = book(rows)
    assert idx.tolist() == [0, 1, 2, 3, 1]  # brute force: argmin of the squared distances
    assert torch.equal(q, book.embedding[idx])


def test_the_nearest_entry_is_right_far_from_the_origin_and_does_not_depend_on_the_batch():
    # Rows near 1000 on one axis, entries 0.01 and 0.02 away: |a|^2 - 2 a.b + |b|^2 in float32 rounds at ~0.06,
    # more than the squared distances it must tell apart (1e-4 and 4e-4); the differences do not.
    book = Codebook(3, 2, decay=0.9).eval()
    book.embedding.copy_(torch.tensor([[1000.02, 0.0], [1000.01, 0.0], [0.0, 0.0]]))
    rows = torch.tensor([[1000.0, 0.0], [1000.03, 0.0], [1000.0099, 0.0]] * 50)
    expected = torch.tensor([1, 0, 1] * 50)
    assert torch.equal(book.nearest(rows), expected)
    assert torch.equal(torch.cat([book.nearest(rows[i : i + 1]) for i in range(len(rows))]), expected)  # one row at a time


def test_the_straight_through_gradient_reaches_the_encoder_and_the_entries_get_none():
    model = _model().train()
    out = model.loss(torch.from_numpy(_images(16)))
    out.loss.backward()
    enc = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None for g in enc) and sum(float(g.abs().sum()) for g in enc) > 0
    assert not any(b.requires_grad for b in model.codebook.buffers())  # moved by moving averages only
    assert set(out.terms) == {"reconstruction", "commitment", "perplexity", "usage"}
    assert out.terms["reconstruction"].shape == (16,) and out.terms["perplexity"].dim() == 0


def test_the_commitment_term_is_beta_times_the_squared_distance_to_the_chosen_entries():
    model = _model(commitment=0.7).eval()
    x = torch.from_numpy(_images(6))
    z_e = model.encode_continuous(x)
    z_q = model.encode(x).view_as(z_e)
    expected = 0.7 * (z_e - z_q).pow(2).flatten(1).sum(-1)
    torch.testing.assert_close(model.loss(x).terms["commitment"], expected)


# -- the codebook's moving averages, by hand --------------------------------------------------------


def test_one_moving_average_step_matches_the_formula():
    d = 0.8
    book = Codebook(3, 2, decay=d, eps=0.0)
    book.counts.copy_(torch.tensor([2.0, 1.0, 1.0]))
    book.sums.copy_(torch.tensor([[2.0, 2.0], [0.0, 1.0], [3.0, 0.0]]))
    rows = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0]])
    book.update(rows, torch.tensor([0, 0, 1]))
    counts = torch.tensor([d * 2 + (1 - d) * 2, d * 1 + (1 - d) * 1, d * 1])
    sums = torch.tensor([[d * 2 + (1 - d) * 4, d * 2 + (1 - d) * 2], [d * 0, d * 1 + (1 - d) * 4], [d * 3, 0.0]])
    torch.testing.assert_close(book.counts, counts)
    torch.testing.assert_close(book.sums, sums)
    torch.testing.assert_close(book.embedding, sums / counts.unsqueeze(1))  # eps = 0: no smoothing


def test_an_entry_nobody_chooses_is_restarted_at_a_vector_of_the_batch():
    book = Codebook(3, 2, decay=0.5, eps=0.0)
    book.counts.copy_(torch.tensor([10.0, 10.0, 10.0 * DEAD_SHARE / 2]))  # entry 2 far below its share
    book.sums.copy_(torch.tensor([[10.0, 0.0], [0.0, 10.0], [0.0, 0.0]]))
    rows = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.1, 1.0]])
    torch.manual_seed(0)
    book.update(rows, torch.tensor([0, 1, 0, 1]))
    assert any(torch.equal(book.embedding[2], r) for r in rows)
    # its statistics moved with it, so the next average step starts from the new place
    torch.testing.assert_close(book.sums[2] / book.counts[2], book.embedding[2])


def test_after_the_first_step_the_codebook_lies_on_the_data():
    book = Codebook(4, 2, decay=0.99)
    rows = torch.randn(50, 2) + 7.0
    idx = book.nearest(rows)
    assert idx.eq(0).all()  # the entries start at zero, all equally near: the first one takes every output
    torch.manual_seed(1)
    book.update(rows, idx)
    # the mean of the outputs that chose it, up to the counts' Laplace smoothing (eps 1e-5 over counts of 0.5)
    torch.testing.assert_close(book.embedding[0], rows.mean(0), rtol=1e-4, atol=0)
    assert all(any(torch.equal(e, r) for r in rows) for e in book.embedding[1:])  # the rest restarted on outputs


# -- training ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    tr, te = load_dataset("embedded", "train"), load_dataset("embedded", "test")
    return tr.X[:1500], te.X[:300]


@pytest.fixture(scope="module")
def fitted(digits):
    return VQVAE(epochs=3, seed=0).fit(digits[0])


def test_training_lowers_the_loss_and_the_codebook_does_not_collapse(fitted, digits):
    rows = fitted.history_
    assert rows[-1]["train_reconstruction"] < 0.7 * rows[0]["train_reconstruction"]
    use = fitted.codebook_usage(digits[1])
    # A collapsed codebook has perplexity near 1 and a handful of entries in use; measured 7.0 and 50 % of the
    # default 32 after these 3 short epochs (the bench's full MNIST runs reach 22 and 100 %).
    assert use["perplexity"] > 4 and use["usage"] > 0.3 and use["codebook_size"] == 32


def test_index_grids_decode_to_the_reconstructions_and_edits_change_the_image(fitted, digits):
    X = digits[1][:20]
    idx = fitted.indices(X)
    assert idx.shape == (20, 7, 7) and idx.dtype == np.int64 and 0 <= idx.min() and idx.max() < 128
    np.testing.assert_array_equal(fitted.decode_indices(idx), fitted.reconstruct(X))
    assert fitted.encode_continuous(X).shape == (20, 16, 7, 7)
    edited = idx.copy()
    edited[:, 2:5, 2:5] = (edited[:, 2:5, 2:5] + 1) % 128
    assert np.abs(fitted.decode_indices(edited) - fitted.reconstruct(X)).max() > 0.05


def test_bad_index_grids_and_tables_are_refused_in_one_line(fitted):
    with pytest.raises(DataError, match=r"0\.\.31, got 32\.\.32"):
        fitted.decode_indices(np.full((1, 7, 7), 32))
    with pytest.raises(DataError, match=r"\(N, 7, 7\)"):
        fitted.decode_indices(np.zeros((1, 6, 7), dtype=np.int64))
    with pytest.raises(ConfigError, match="images of shape"):
        VQVAE(epochs=1).fit(np.random.default_rng(0).random((40, 6)).astype(np.float32))
    with pytest.raises(ConfigError, match="divisible by 4"):
        VQVAE(epochs=1).fit(_images(40, side=6))


def test_bf16_autocast_trains_with_the_codebook_kept_in_float32():
    est = VQVAE(epochs=1, batch_size=16, precision="bf16", seed=0).fit(_images(48))
    assert est.model_.codebook.embedding.dtype == torch.float32 and np.isfinite(est.history_[-1]["train_loss"])


def test_a_run_stopped_inside_an_epoch_resumes_to_the_same_codebook(tmp_path):
    X = torch.from_numpy(_images(100))

    def run(resume=None, checkpointer=None, max_steps=25):
        model = _model()
        cfg = TrainConfig(epochs=3, batch_size=10, val_fraction=0.0, device="cpu", max_steps=max_steps, seed=0)
        fit(model, X, cfg=cfg, checkpointer=checkpointer, resume=resume, quiet=True)
        return model

    ref = run()
    run(max_steps=15, checkpointer=Checkpointer(tmp_path))
    resumed = run(resume=read_checkpoint(tmp_path))
    for name, a in ref.state_dict().items():
        assert torch.equal(a, resumed.state_dict()[name]), name


# -- the command line -----------------------------------------------------------------------------


def test_the_commands_work_on_a_vq_vae_or_refuse_in_one_line(tmp_path, capsys):
    run = tmp_path / "vq"
    assert main(["train", "--model", "vq-vae", "--limit", "600", "--epochs", "1", "--no-report", "--quiet", "--out", str(run)]) == 0
    assert main(["encode", str(run), "--limit", "50", "--out", str(tmp_path / "z.npz")]) == 0
    with np.load(tmp_path / "z.npz", allow_pickle=False) as z:
        assert z["z"].shape == (50, 16 * 49) and z["indices"].shape == (50, 7, 7) and z["z_e"].shape == (50, 16, 7, 7)
    assert main(["evaluate", str(run), "--limit", "100", "--no-probe", "--json", str(tmp_path / "e.json")]) == 0
    r = json.loads((tmp_path / "e.json").read_text())
    assert r["model"] == "vq_vae" and {"mse", "psnr", "perplexity", "usage", "commitment"} <= set(r)
    np.testing.assert_allclose(r["psnr"], 10 * np.log10(1 / r["mse"]))
    assert main(["reconstruct", str(run), "--out", str(tmp_path / "r.png")]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--out", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "VQ-VAE" in err[0] and "prior" in err[0]
    assert not (tmp_path / "s.png").exists()
    assert main(["train", "--model", "vq-vae", "--hidden", "64", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


# -- the second stage: a prior over the index grid (vaekit.codeprior) -------------------------------


def _grid_prior(kind: str, k: int = 3, grid: tuple[int, int] = (1, 3)):
    from vaekit.codeprior import build_grid_prior, check_prior_spec

    sizes = {"width": 8, "layers": 1, "heads": 2} if kind == "transformer" else {"width": 8, "layers": 2, "kernel": 3}
    torch.manual_seed(0)
    prior = build_grid_prior(check_prior_spec({"kind": kind, **sizes}), k, grid).double().eval()
    with torch.no_grad():
        for p in prior.parameters():
            p.normal_(0.0, 0.5)  # away from the near-uniform start, so that a wrong normalization shows
    return prior


KINDS = pytest.mark.parametrize("kind", ["pixelcnn", "transformer"])


@KINDS
@pytest.mark.parametrize("grid", [(1, 3), (2, 2)])
def test_the_grid_prior_is_a_distribution_over_all_grids(kind, grid):
    import itertools

    prior = _grid_prior(kind, 3, grid)
    grids = torch.tensor(list(itertools.product(range(3), repeat=grid[0] * grid[1])))
    with torch.no_grad():
        p = prior.log_prob(grids).exp()
    assert p.min() > 0 and float(p.max()) < 0.99
    torch.testing.assert_close(p.sum(), torch.tensor(1.0, dtype=torch.float64))


@KINDS
def test_the_grid_prior_is_causal_in_raster_order(kind):
    # Changing cell j may change the logits of the cells after it, never of cell j or those before it (3 x 3 grid).
    prior = _grid_prior(kind, 4, (3, 3))
    base = torch.randint(4, (1, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = prior.logits(base)
        for j in range(9):
            other = base.clone()
            other[0, j] = (other[0, j] + 1) % 4
            out = prior.logits(other)
            torch.testing.assert_close(out[:, : j + 1], ref[:, : j + 1])
            if j < 8:
                assert not torch.allclose(out[:, j + 1 :], ref[:, j + 1 :])  # and some later cell does see it


@KINDS
def test_the_grid_priors_draws_follow_it(kind):
    prior = _grid_prior(kind, 2, (1, 2))
    draws = prior.sample(4000, torch.Generator().manual_seed(0))
    grids = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    with torch.no_grad():
        p = prior.log_prob(grids).exp()
    freq = torch.stack([(draws == g).all(1).double().mean() for g in grids])
    assert (freq - p).abs().max() < 4 * (p * (1 - p) / 4000).sqrt().max()  # four standard errors


def test_a_prior_spec_without_a_kind_is_the_transformer_older_files_hold_and_bad_specs_are_refused():
    from vaekit.codeprior import GridPrior, build_grid_prior, check_prior_spec

    old = check_prior_spec({"width": 64, "layers": 2, "heads": 4})
    assert old == {"kind": "transformer", "width": 64, "layers": 2, "heads": 4}
    assert isinstance(build_grid_prior(old, 8, (7, 7)), GridPrior)
    assert check_prior_spec({"kind": "pixelcnn"}) == {"kind": "pixelcnn", "width": 32, "layers": 6, "kernel": 3}
    for bad, words in [({"kind": "rnn"}, "unknown code prior kind"), ({"kind": "pixelcnn", "heads": 2}, "takes no option heads"),
                       ({"kind": "pixelcnn", "kernel": 4}, "odd kernel"), ({"kind": "transformer", "width": 10}, "divisible by heads"),
                       ({"kind": "pixelcnn", "width": "32"}, "whole numbers"), ({"kind": "pixelcnn", "layers": 2.5}, "whole numbers")]:
        with pytest.raises(ConfigError, match=words):
            check_prior_spec(bad)


def test_fit_prior_learns_samples_and_round_trips(fitted, digits, tmp_path):
    import copy

    import vaekit

    est = copy.deepcopy(fitted).fit_prior(digits[0][:600], epochs=2, seed=0)
    rows = est.prior_history_
    assert rows[-1]["prior_train_nll"] < rows[0]["prior_train_nll"] and np.isfinite(rows[-1]["prior_val_nll"])
    X = digits[1][:30]
    np.testing.assert_array_equal(est.reconstruct(X), fitted.reconstruct(X))  # the VQ-VAE is kept as it was
    nll = est.prior_nll(X)
    assert nll.shape == (30,) and (nll > 0).all() and nll.mean() < 49 * np.log(32)  # below the uniform prior's
    np.testing.assert_allclose(est.log_likelihood_bound(X), est.score_samples(X) - nll)
    s = est.sample(5, seed=3)
    assert s.shape == (5, 1, 28, 28) and 0 <= s.min() and s.max() <= 1
    loaded = vaekit.load(est.save(tmp_path / "run"))
    np.testing.assert_array_equal(loaded.sample(5, seed=3), s)
    np.testing.assert_array_equal(loaded.prior_nll(X), nll)
    with pytest.raises(ConfigError, match="train-prior"):
        fitted.sample(2)


def test_a_run_saved_with_a_transformer_prior_before_kinds_existed_still_loads(fitted, digits, tmp_path):
    import copy

    import vaekit

    est = copy.deepcopy(fitted).fit_prior(digits[0][:200], epochs=1, kind="transformer", seed=0)
    saved = Path(est.save(tmp_path / "run"))
    cfg_file = saved / "config.json" if saved.is_dir() else saved.with_suffix(".json")
    cfg = json.loads(cfg_file.read_text())
    assert cfg["model"]["code_prior"].pop("kind") == "transformer"  # as files written before the PixelCNN read
    cfg_file.write_text(json.dumps(cfg))
    loaded = vaekit.load(saved)
    assert type(loaded.model_.code_prior).__name__ == "GridPrior"
    X = digits[1][:20]
    np.testing.assert_array_equal(loaded.prior_nll(X), est.prior_nll(X))


def test_train_prior_makes_a_run_sampleable_and_keeps_its_record(tmp_path, capsys):
    run = tmp_path / "vq"
    assert main(["train", "--model", "vq-vae", "--limit", "400", "--epochs", "1", "--no-report", "--quiet", "--out", str(run)]) == 0
    before = json.loads((run / "config.json").read_text())
    assert main(["train-prior", str(run), "--limit", "300", "--epochs", "1", "--width", "16", "--quiet"]) == 0
    after = json.loads((run / "config.json").read_text())
    assert after["run"] == before["run"] and after["model"]["code_prior"] == {"kind": "pixelcnn", "width": 16, "layers": 6, "kernel": 3}
    assert len(after["prior"]["history"]) == 1 and "train-prior" in (run / "train.log").read_text()
    weights = (run / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["train-prior", str(run), "--kind", "transformer", "--width", "10", "--heads", "4", "--quiet"]) == 2  # heads must divide width
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "divisible by heads" in err[0]
    assert main(["train-prior", str(run), "--heads", "4", "--quiet"]) == 2  # the PixelCNN has no heads
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "takes no option heads" in err[0]
    from vaekit.atomicfiles import lock_folder

    with lock_folder(run):  # another writer holds the folder: refused, nothing written
        assert main(["train-prior", str(run), "--quiet"]) == 2
    assert "another vaekit process" in capsys.readouterr().err
    assert (run / "model.safetensors").read_bytes() == weights and json.loads((run / "config.json").read_text()) == after
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (4, 1, 28, 28)
    assert main(["evaluate", str(run), "--limit", "50", "--no-probe", "--json", str(tmp_path / "e.json")]) == 0
    r = json.loads((tmp_path / "e.json").read_text())
    np.testing.assert_allclose(r["nll_bound"], r["reconstruction"] + r["prior_nll"], rtol=1e-3)
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    for said in ("straight-through", "codebook perplexity", "two stages", "code prior NLL", "NLL bound", "Samples from the code prior"):
        assert said in page, said
    assert "Latent traversal" not in page  # one number of a quantized grid swept over a range is no code the model makes
    vae = tmp_path / "vae"
    assert main(["train", "--limit", "200", "--epochs", "1", "--no-report", "--no-figures", "--quiet", "--out", str(vae)]) == 0
    capsys.readouterr()
    assert main(["train-prior", str(vae)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "VQ-VAE" in err[0]
