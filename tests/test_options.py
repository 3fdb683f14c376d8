"""One declaration per option (vaekit.options): the estimators, the validation and the CLI derive from it."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.base import clone

from vaekit.cli import build_parser, main, make_estimator
from vaekit.errors import ConfigError
from vaekit.estimators import VAE, Autoencoder
from vaekit.options import BY_NAME, OPTIONS, applicable, options_for, to_flags
from vaekit.train import TrainConfig


@pytest.mark.parametrize("cls, kind", [(VAE, "vae"), (Autoencoder, "ae")])
def test_estimator_signature_is_the_declaration(cls, kind):
    sig = inspect.signature(cls.__init__)
    declared = options_for(kind)
    assert list(sig.parameters)[1:] == [o.name for o in declared]
    est = cls()
    assert est.get_params() == {o.name: o.default_for(kind) for o in declared}
    twin = clone(cls(latent_dim=3, hidden=(7, 5), lr=0.01))
    assert twin.get_params()["hidden"] == (7, 5) and twin.latent_dim == 3


def test_every_training_option_is_a_train_config_field():
    fields = set(TrainConfig.__dataclass_fields__)
    assert fields == {o.name for o in OPTIONS if o.target == "train"}
    assert TrainConfig().val_nll_examples == 1000


@pytest.mark.parametrize("params, message", [
    ({"latent_dim": 0}, "latent_dim must be an integer >= 1, got 0"),
    ({"lr": 0.0}, "lr must be a number > 0, got 0.0"),
    ({"likelihood": "poisson"}, "likelihood must be one of bernoulli, continuous-bernoulli, gaussian, autoregressive-bernoulli"),
    ({"val_fraction": 1.0}, "val_fraction must be a number in [0, 1)"),
    ({"hidden": "8,x"}, "sizes must be integers"),
    ({"val_nll_examples": 0}, "val_nll_examples must be an integer >= 1"),
    ({"epochs": 2.5}, "epochs must be an integer"),
    ({"likelihood": "autoregressive-bernoulli", "ar_dropout": 1.0}, "ar_dropout must be a number in [0, 1)"),
])
def test_fit_checks_each_parameter_and_names_it(params, message):
    X = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    with pytest.raises(ConfigError) as e:
        VAE(**{"epochs": 1, **params}).fit(X)
    assert message in str(e.value)


def test_autoencoder_likelihoods_are_its_own():
    with pytest.raises(ConfigError, match="likelihood must be one of bernoulli, gaussian"):
        Autoencoder(likelihood="continuous-bernoulli").check_params()


def test_cli_flags_defaults_and_choices_come_from_the_declaration():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    actions = {a.dest: a for a in train._actions}
    for opt in OPTIONS:
        if opt.cli_flag is None:
            assert opt.name not in actions
            continue
        action = actions[opt.name]
        assert opt.cli_flag in action.option_strings and action.default is None
        assert action.choices == opt.all_choices() if opt.choices is not None else action.choices is None
        assert opt.help in action.help
    assert "--mc-samples" in actions["n_samples"].option_strings


def test_vars_of_the_arguments_map_onto_the_estimator():
    args = build_parser().parse_args(["train", "--out", "r", "--val-nll-every", "2", "--val-nll-examples", "50",
                                      "--mc-samples", "3", "--pseudo-inputs", "7", "--prior", "vamp", "--lr", "0.01"])
    est = make_estimator(args)
    p = est.get_params()
    assert (p["val_nll_every"], p["val_nll_examples"], p["n_samples"], p["n_pseudo_inputs"], p["prior"], p["lr"]) == (2, 50, 3, 7, "vamp", 0.01)
    assert est._train_config().val_nll_examples == 50


def test_an_option_of_the_other_family_is_refused_with_its_flag(capsys):
    assert main(["train", "--out", "r", "--model", "ae", "--beta", "2"]) == 2
    assert "--beta does not apply to --model ae" in capsys.readouterr().err


def test_a_flag_that_does_not_apply_to_the_configured_model_is_named_as_ignored(capsys):
    def warnings_for(*argv):
        make_estimator(build_parser().parse_args(["train", "--out", "r", *argv]))
        return [line for line in capsys.readouterr().err.splitlines() if "warning" in line]

    got = warnings_for("--pseudo-inputs", "10", "--sigma", "0.5")
    assert len(got) == 2 and {line.split()[2] for line in got} == {"--pseudo-inputs", "--sigma"}
    assert all("has no effect on this model" in line and line.endswith("it is ignored") for line in got)
    assert warnings_for("--prior", "vamp", "--pseudo-inputs", "10", "--likelihood", "gaussian", "--sigma", "0.5") == []
    assert "--label-scale has no effect" in warnings_for("--label-scale", "5")[0]
    assert warnings_for("--model", "cvae", "--label-scale", "5") == []
    assert warnings_for("--pseudo-inputs", "10", "--quiet") == []  # --quiet: nothing but errors


def test_the_cli_reports_flags_where_the_library_names_parameters(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--val-nll-k", "0"]) == 2
    err = capsys.readouterr().err
    assert "--val-nll-k must be an integer >= 1, got 0" in err and not (tmp_path / "r").exists()
    assert to_flags("n_pseudo_inputs=0 and top_latent_dim must be >= 0; the prior is normal") == \
        "--pseudo-inputs 0 and --top-latent-dim must be >= 0; the prior is normal"
    assert to_flags("use prior='normal' or conditional=False, likelihood='gaussian' or architecture='mlp'") == \
        "use --prior normal or --model vae, --likelihood gaussian or --model vae"
    assert to_flags("learn_sigma=True needs likelihood='gaussian'") == "--learn-sigma needs --likelihood gaussian"


def test_applicable_options_follow_the_model():
    plain = {o: v for o, v in VAE().get_params().items()}
    names = {o.name for o in applicable(plain, "vae")}
    assert "sigma" not in names and "n_pseudo_inputs" not in names and "student_df" not in names
    assert "sparsity" not in names and "latent_dim" in names
    vamp = {o.name for o in applicable({**plain, "prior": "vamp", "likelihood": "gaussian"}, "vae")}
    assert {"n_pseudo_inputs", "sigma", "learn_sigma"} <= vamp
    assert BY_NAME["sparsity_target"].when({"sparsity": "kl"}) and not BY_NAME["sparsity_target"].when({"sparsity": "l1"})


def test_lr_final_is_one_declaration_that_reaches_the_run(tmp_path):
    import csv

    run = tmp_path / "r"
    assert main(["train", "--dataset", "embedded", "--limit", "100", "--epochs", "2", "--batch-size", "50", "--hidden", "8",
                 "--latent-dim", "2", "--val-fraction", "0", "--lr-schedule", "cosine", "--lr-final", "0.5", "--quiet",
                 "--no-figures", "--no-report", "--device", "cpu", "--out", str(run)]) == 0
    import json

    assert json.loads((run / "config.json").read_text())["params"]["lr_final"] == 0.5
    assert list(csv.DictReader(open(run / "metrics.csv")))  # trained
    with pytest.raises(ConfigError, match="lr_final must be a number in"):
        VAE(lr_final=2.0).check_params()
