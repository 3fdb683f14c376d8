"""The report that teaches: KL per latent dimension logged each epoch, the bound against k, the
rate-distortion comparison of several runs, and captions and configuration on the page."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import torch

from vaekit.cli import main
from vaekit.errors import ConfigError
from vaekit.evaluate import bound_against_k, iw_log_likelihood
from vaekit.runfolder import load

COMMON = ["--limit", "500", "--epochs", "3", "--quiet", "--device", "cpu", "--hidden", "64", "--seed", "0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("teach")
    assert main(["train", "--out", str(root / "vae"), "--latent-dim", "4", *COMMON]) == 0  # writes report.html
    assert main(["train", "--out", str(root / "beta4"), "--latent-dim", "4", "--beta", "4", "--no-report", *COMMON]) == 0
    assert main(["train", "--out", str(root / "ae"), "--model", "ae", "--latent-dim", "4", "--no-report", *COMMON]) == 0
    return root


def _rows(run) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_kl_per_dimension_columns_add_up_to_the_logged_validation_kl(runs):
    rows = _rows(runs / "vae")
    cols = [k for k in rows[0] if k.startswith("val_kl_dim_")]
    assert cols == [f"val_kl_dim_{j}" for j in range(4)]
    for r in rows:
        parts = np.array([float(r[c]) for c in cols])
        assert (parts >= 0).all()  # a KL is never negative
        # The per-dimension KLs of a factorized posterior against N(0, I) sum to the ELBO's KL term.
        assert parts.sum() == pytest.approx(float(r["val_kl"]), rel=1e-5, abs=1e-5)
    log = (runs / "vae" / "train.log").read_text()
    assert "val loss" in log and "kl_dim" not in log  # a column for the report, not for the epoch line


def test_kl_per_dimension_is_logged_only_where_it_is_defined(runs):
    assert not any(k.startswith("val_kl_dim_") for k in _rows(runs / "ae")[0])  # an autoencoder has no KL


def _model_and_data(run, n=200):
    from vaekit.data import load_dataset

    est = load(run)
    X = load_dataset("embedded", "test").X[:n]
    return est.model_, torch.from_numpy(est.prepare_X(X))


def test_bound_against_k_rises_from_the_elbo_and_matches_independent_estimates(runs):
    model, X = _model_and_data(runs / "vae")
    r = bound_against_k(model, X, k_max=64, seed=0)
    b = np.array(r["bound"])
    assert r["k"] == [1, 2, 4, 8, 16, 32, 64] and r["n"] == len(X)
    assert np.all(np.diff(b) >= -1e-9)  # nested groups: never decreasing in k (Jensen)
    assert b[-1] > b[0]  # IW >= ELBO, strictly for a posterior that is not exact
    assert b[0] == pytest.approx(r["log_likelihood"] - r["kl"], abs=1e-9)  # L_1 is the ELBO of the same draws
    assert r["kl"] > 0
    # Against the evaluator's own estimator on fresh draws: agree within Monte-Carlo error.
    for k, mine in ((1, b[0]), (64, b[-1])):
        a = iw_log_likelihood(model, X, k=k, seed=11)
        c = iw_log_likelihood(model, X, k=k, seed=12)
        tol = 5 * float((a - c).std()) / np.sqrt(len(X)) + 1e-6  # 5 standard errors of a difference of two means
        assert abs(mine - float(a.mean())) < tol, (k, mine, float(a.mean()), tol)


def test_bound_against_k_refuses_what_it_cannot_compute(runs):
    model, X = _model_and_data(runs / "vae", n=10)
    with pytest.raises(ConfigError, match="power of two"):
        bound_against_k(model, X, k_max=100)
    ae, Xa = _model_and_data(runs / "ae", n=10)
    with pytest.raises(ConfigError, match="needs a VAE"):
        bound_against_k(ae, Xa)


def _figures(page: str) -> list[str]:
    return re.findall(r"<figure>.*?</figure>", page, flags=re.S)


def test_every_figure_has_a_two_line_caption_and_figures_come_first(runs):
    page = (runs / "vae" / "report.html").read_text()
    figs = _figures(page)
    headings = re.findall(r"<h3 [^>]*>([^<]+)</h3>", page)
    for name in ("Training curves", "KL per latent dimension", "Reconstructions", "Latent space", "Samples from the prior",
                 "Latent traversal", "ELBO, log p(x) and the gap"):
        assert name in headings
    assert len(figs) == len(headings)
    for f in figs:
        what = re.search(r'<span class="what">(.*?)</span>', f)
        look = re.search(r'<span class="look"><b>Look for:</b> (.*?)</span>', f)
        assert what and len(what.group(1)) > 40 and look and len(look.group(1)) > 40, f[-400:]
    assert page.index("<figure>") < page.index('id="sec-numbers"') < page.index("<details>")
    assert "<details open" not in page  # the configuration starts folded
    assert f"vaekit explore {runs / 'vae'}" in page


def test_compare_page_places_each_run_on_the_rate_distortion_plane(runs, tmp_path, capsys):
    out = tmp_path / "compare.html"
    args = [str(runs / n) for n in ("ae", "vae", "beta4")]
    assert main(["report", *args, "--out", str(out), "--k", "5", "--iw-limit", "50"]) == 0
    page = out.read_text()
    assert "Rate against distortion" in page and "Reconstructions side by side" in page
    assert len(_figures(page)) == 2 and page.count('<span class="look">') == 2
    for name in ("ae", "vae", "beta4"):
        assert f"<td>{name}</td>" in page
    assert "autoencoder" in page and "no KL" in page
    # Only the VAE run was trained with its report; the page links it by a path relative to itself.
    links = re.findall(r'<a href="([^"#]+)">report</a>', page)
    assert len(links) == 1 and (out.parent / links[0]).resolve() == (runs / "vae" / "report.html").resolve()


def test_rate_and_distortion_add_up_to_minus_the_elbo(runs):
    from vaekit.data import load_dataset
    from vaekit.evaluate import evaluate
    from vaekit.report import _rd_point

    X = load_dataset("embedded", "test").X[:100]
    for name in ("vae", "beta4"):
        est = load(runs / name)
        m = evaluate(est, X, k=2)
        p, why = _rd_point(name, est, m)
        assert why is None and p["rate"] > 0
        assert p["distortion"] + p["rate"] == pytest.approx(-m["elbo"], rel=1e-6)
    ae = load(runs / "ae")
    p, _ = _rd_point("ae", ae, evaluate(ae, X))
    assert p["rate"] is None and p["distortion"] > 0  # a Bernoulli autoencoder: a distortion in nats, no rate


def test_compare_bad_inputs_are_one_line_errors(runs, tmp_path, capsys):
    a, b = str(runs / "vae"), str(runs / "ae")
    assert main(["report", a, b]) == 2
    assert "pass --out compare.html" in capsys.readouterr().err
    assert main(["report", a, b, "--out", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert "FILE.html" in err and err.count("\n") == 1
    assert not (tmp_path / "c.png").exists()
    assert main(["report", a, str(tmp_path / "missing"), "--out", str(tmp_path / "c.html")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "c.html").exists()

