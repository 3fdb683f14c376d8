"""Config files for `vaekit train`: TOML in, flags on the command line win, a run's config.json re-runs
it bit for bit, `vaekit config show` prints what `--config` reads, presets are shipped TOML files."""

from __future__ import annotations

import pytest
import tomllib

from vaekit.cli import build_parser, expand_preset, main, presets
from vaekit.cli.config import preset_names, read_preset, to_toml
from vaekit.registry import PRESETS

FAST = ["--no-report", "--no-figures", "--quiet", "--limit", "600", "--batch-size", "100"]


def _args(argv):
    return build_parser().parse_args(expand_preset(argv))


def test_file_values_become_options_and_typed_flags_win(tmp_path) -> None:
    f = tmp_path / "a.toml"
    f.write_text('model = "cvae"\nlatent_dim = 3\nhidden = [64, 32]\n[optimization]\nlr = 0.01\nseed = 7\nstandardize = false\n')
    args = _args(["train", "--config", str(f), "--out", "r", "--seed", "9"])
    assert args.model == "cvae" and args.latent_dim == 3 and args.hidden == [64, 32] and args.lr == 0.01
    assert args.seed == 9  # typed after the file: wins
    args = _args(["train", "--seed", "9", "--config", str(f), "--out", "r"])
    assert args.seed == 9  # typed anywhere, the command line wins over the file


@pytest.mark.parametrize("text, message", [
    ("epocs = 2\n", r"unknown option 'epocs'; did you mean 'epochs'\?"),
    ("epochs = 'many'\n", r"--epochs: invalid int value"),
    ("quiet = 1\n", r"quiet must be true or false"),
    ("epochs = true\n", r"epochs takes a value, not true"),
    ("resume = 'runs/x'\n", r"'resume' cannot be set in a config file"),
    ("hidden = ['a']\n", r"hidden must be a list of whole numbers"),
    ("latent_dim = \n", r"not valid TOML"),
    ("model = 'gan'\n", r"--model: 'gan' is not one of"),
])
def test_bad_config_files_are_one_line_errors(tmp_path, capsys, text, message) -> None:
    import re

    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(SystemExit) as e:  # argparse's own checks exit through OneLineParser
        rc = main(["train", "--config", str(f), "--out", str(tmp_path / "r")])
        raise SystemExit(rc)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "r").exists()


def test_missing_config_file_is_one_line(tmp_path, capsys) -> None:
    assert main(["train", "--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "r")]) == 2
    expect = f"vaekit: error: config file not found: {tmp_path / 'nope.toml'}; pass a .toml file or a run's config.json"
    assert capsys.readouterr().err.strip() == expect


def test_config_show_round_trips_to_the_same_weights(tmp_path, capsys) -> None:
    run1, run2, run3 = (tmp_path / f"r{i}" for i in (1, 2, 3))
    assert main(["train", "--latent-dim", "2", "--hidden", "32", "--epochs", "2", "--seed", "4", "--posterior", "laplace",
                 *FAST, "--out", str(run1)]) == 0
    capsys.readouterr()
    assert main(["config", "show", str(run1)]) == 0
    shown = capsys.readouterr().out
    table = tomllib.loads(shown)
    assert table["latent_dim"] == 2 and table["hidden"] == [32] and table["posterior"] == "laplace" and table["seed"] == 4
    assert "student_df" not in table  # applies only to a Student-t posterior
    (tmp_path / "run.toml").write_text(shown)
    # --limit is a data option of the command, not of the model: it is given again.
    assert main(["train", "--config", str(tmp_path / "run.toml"), *FAST, "--out", str(run2)]) == 0
    assert main(["train", "--config", str(run1 / "config.json"), *FAST, "--out", str(run3)]) == 0
    w1 = (run1 / "model.safetensors").read_bytes()
    assert (run2 / "model.safetensors").read_bytes() == w1  # a CPU run is reproducible bit for bit
    assert (run3 / "model.safetensors").read_bytes() == w1


def test_presets_are_shipped_toml_files_and_listed(capsys) -> None:
    assert set(preset_names()) >= {"mnist-nll", "mnist-best"}
    table = read_preset("mnist-best")
    assert table["likelihood"] == "autoregressive-bernoulli" and table["lr_schedule"] == "cosine"
    args = _args(["train", "--preset", "mnist-best", "--max-minutes", "5", "--out", "r"])
    assert args.likelihood == "autoregressive-bernoulli" and args.max_minutes == 5.0
    assert presets()["mnist-nll"][:2] == ["--dataset", "mnist"]
    assert main(["train", "--preset", "list"]) == 0
    out = capsys.readouterr().out
    assert "mnist-best:" in out and 'likelihood = "autoregressive-bernoulli"' in out


def test_unknown_preset_names_the_presets(capsys) -> None:
    assert main(["train", "--preset", "mnist-bset", "--out", "r"]) == 2
    err = capsys.readouterr().err
    assert "no preset named 'mnist-bset'" in err and "did you mean mnist-best?" in err


def test_to_toml_is_read_back_by_tomllib() -> None:
    opts = {"a": "x \"q\" \\ y", "b": 1e-3, "c": [1, 2], "d": True, "e": float("inf"), "f": 0}
    assert tomllib.loads(to_toml(opts, "header\nline two")) == opts


def test_argument_errors_are_one_line_with_a_suggestion(capsys) -> None:
    for argv, expect in [
        (["train", "--epocs", "2"], "vaekit train: error: unknown option --epocs; did you mean --epochs?"),
        (["train", "--model", "gan"], f"vaekit train: error: --model: 'gan' is not one of {', '.join(PRESETS.names())}"),
        (["train", "--model", "cvea"], "did you mean cvae?"),
        (["evaluate", "runs/x", "--kk", "5"], "vaekit evaluate: error: unknown option --kk; did you mean --k?"),
    ]:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and expect in err, err
        assert "usage:" not in err


def test_larochelle_preset_validates_on_the_valid_split(tmp_path, shared_data) -> None:
    # The preset's val_split is a data option read from TOML like any flag; the run then validates
    # on Larochelle's 10 000 validation images, not on a share of its 50 000 training ones.
    args = _args(["train", "--preset", "binarized-mnist-best", "--out", "r"])
    assert (args.dataset, args.val_split, args.binarize, args.prior, args.early_stopping) == ("binarized-mnist", "valid", "none", "vamp", 10)
    run = tmp_path / "laro"
    argv = ["train", "--dataset", "binarized-mnist", "--binarize", "none", "--data-dir", str(shared_data), "--val-split", "valid",
            "--latent-dim", "2", "--hidden", "16", "--epochs", "2", "--early-stopping", "1", *FAST, "--out", str(run)]
    assert main(argv) == 0
    log = (run / "train.log").read_text()
    assert "validation: split 'valid' of binarized-mnist, 10000 examples" in log and "600 examples" in log
    import csv
    import json

    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert len(rows) >= 1 and all(r["val_loss"] for r in rows)
    assert json.loads((run / "config.json").read_text())["run"]["val_split"] == "valid"
