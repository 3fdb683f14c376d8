"""What the user reads on screen says what happened: the report's captions and numbers, the rate-distortion
figure's labels, train's refusals of flags for the other models, --help defaults as they are typed, and
progress from a long `vaekit evaluate` where stderr is not a terminal."""

from __future__ import annotations

import re

import pytest

from vaekit.cli import main
from vaekit.registry import PRESETS

COMMON = ["--limit", "300", "--epochs", "1", "--quiet", "--device", "cpu", "--hidden", "32", "--latent-dim", "2", "--seed", "0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("screen")
    assert main(["train", "--out", str(root / "vae"), *COMMON]) == 0  # with its report
    assert main(["train", "--out", str(root / "ae"), "--model", "ae", *COMMON]) == 0
    return root


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_comparison_says_which_test_examples_the_iw_numbers_use(runs, tmp_path):
    out = tmp_path / "compare.html"
    # The default --iw-limit (each model's own limit) used to print as "the first -1 test examples".
    assert main(["report", str(runs / "ae"), str(runs / "vae"), "--out", str(out), "--k", "3"]) == 0
    page = _text(out.read_text())
    assert "-1" not in page.split("Numbers", 1)[1][:300]
    assert re.search(r"k=3 samples on (all the test examples|the first \d+ test examples) to stay fast", page), page
    assert main(["report", str(runs / "ae"), str(runs / "vae"), "--out", str(out), "--k", "3", "--iw-limit", "40"]) == 0
    assert "k=3 samples on the first 40 test examples" in _text(out.read_text())


def test_the_gap_figure_says_why_its_numbers_differ_from_the_table(runs):
    page = _text((runs / "vae" / "report.html").read_text())
    caption = page[page.index("Left: E_q[log p(x|z)]"):]
    assert re.search(r"It scores the first \d+ test examples with k up to \d+ .* differ a little from those of the Numbers table", caption)


def test_an_autoencoder_report_does_not_speak_of_a_posterior_mean(runs, tmp_path):
    out = tmp_path / "ae.html"
    assert main(["report", str(runs / "ae"), "--out", str(out)]) == 0
    page = _text(out.read_text())
    assert "through the encoder" in page and "posterior mean" not in page
    assert "through the posterior mean" in _text((runs / "vae" / "report.html").read_text())


def test_elbo_labels_of_the_rate_distortion_figure_stay_inside_the_axes():
    import matplotlib

    matplotlib.use("Agg")
    from vaekit import plots

    points = [{"name": "vae", "rate": 25.0, "distortion": 90.0}, {"name": "beta4", "rate": 10.0, "distortion": 110.0},
              {"name": "ae", "rate": None, "distortion": 80.0}]
    fig = plots.rate_distortion_figure(points)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    ax = fig.axes[0]
    box, title = ax.get_window_extent(r), ax.title.get_window_extent(r)
    labels = [t for t in ax.texts if t.get_text().startswith("ELBO = ")]
    assert len(labels) >= 4
    for t in labels:  # labels of lines entering at the top edge were drawn above it, over the title
        b = t.get_window_extent(r)
        assert b.y1 <= box.y1 + 0.5 and not b.overlaps(title), t.get_text()


@pytest.mark.parametrize("flag", [["--noise", "gaussian"], ["--sparsity", "l1"], ["--noise-level", "0.2"]])
def test_an_autoencoder_flag_on_a_vae_names_the_autoencoder_models(flag, tmp_path, capsys):
    assert main(["train", *flag, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"{flag[0]} does not apply to --model vae" in err and "--model ae, sparse-ae, denoising-ae" in err
    assert "choose a VAE model" not in err and err.count("\n") == 1


def test_a_vae_flag_on_an_autoencoder_names_the_vae_models(tmp_path, capsys):
    assert main(["train", "--model", "ae", "--beta", "2", "--out", str(tmp_path / "r")]) == 2
    vae_presets = ", ".join(p.name for p in PRESETS if p.families == ("vae",))
    assert f"the VAE models (--model {vae_presets})" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "says"), [
    (["--model", "denoising-ae", "--sparsity-weight", "0.1"], "--sparsity-weight has no effect on --model denoising-ae"),
    (["--model", "sparse-ae", "--noise-level", "0.1"], "--noise-level has no effect on --model sparse-ae"),
    (["--model", "sparse-ae", "--sparsity-target", "0.1"], "--sparsity-target has no effect with --sparsity l1"),
])
def test_an_autoencoder_knob_without_its_feature_is_refused(argv, says, tmp_path, capsys):
    # It used to warn and train anyway: the knob of the other autoencoder model means the wrong --model.
    assert main(["train", *argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_an_autoencoder_knob_with_its_feature_is_taken(tmp_path):
    from vaekit.cli import build_parser, make_estimator

    args = build_parser().parse_args(["train", "--out", "r", "--model", "denoising-ae", "--sparsity", "l1", "--sparsity-weight", "0.1"])
    assert make_estimator(args).get_params()["sparsity_weight"] == 0.1


def _help(*argv: str, capsys) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return re.sub(r"\s+", " ", capsys.readouterr().out)


def test_help_shows_defaults_as_they_are_typed(capsys):
    plot = _help("plot", capsys=capsys)
    assert "(default: 0,1)" in plot and "(0, 1)" not in plot
    assert re.search(r"--seed SEED random seed \(default: 0\)", _help("sample", capsys=capsys))


def test_evaluate_prints_progress_lines_where_stderr_is_not_a_terminal(runs, monkeypatch, capsys):
    from vaekit.cli import common

    monkeypatch.setattr(common, "PROGRESS_EVERY", 0.0)  # a line after every batch instead of every 5 s
    argv = ["evaluate", str(runs / "vae"), "--k", "3", "--iw-limit", "250", "--no-probe"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.startswith("evaluating")]
    assert lines[0].startswith("evaluating (IW log p(x), k=3): 100/250 examples, ") and lines[0].endswith(" s")
    assert lines[-1].startswith("evaluating (IW log p(x), k=3): 250/250 examples")
    assert "IW log p(x)" in out  # the results still go to stdout
    assert main([*argv, "--quiet"]) == 0
    assert "evaluating" not in capsys.readouterr().err


def test_progress_lines_come_every_few_seconds():
    import io

    from vaekit.cli.common import ProgressLines

    t = [0.0]
    buf = io.StringIO()
    p = ProgressLines("evaluating", every=5.0, stream=buf, clock=lambda: t[0])
    for done, now in ((100, 1.0), (200, 4.9), (300, 5.2), (400, 7.0), (500, 10.3), (600, 11.0)):
        t[0] = now
        p(done, 600)
    assert buf.getvalue().splitlines() == ["evaluating: 300/600 examples, 5 s", "evaluating: 500/600 examples, 10 s",
                                           "evaluating: 600/600 examples, 11 s"]
