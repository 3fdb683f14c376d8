"""The pretrained models shipped in src/vaekit/pretrained/ (scripts/make_pretrained.py writes them):
they load (float16 weights upcast to float32, checked like any model file), their cards carry the
training command, the test metrics and the data's licence, the shipped weights still score what the
card says, and the CLI takes --pretrained NAME wherever it takes a run folder. None of this needs
the real data except the judge of the conditional model's sevens (slow, skipped without it).
"""

from __future__ import annotations

import json
import re
import sys
import threading
import urllib.request
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
import torch

import vaekit
from vaekit.cli import main
from vaekit.errors import ConfigError
from vaekit.pretrained import HERE, NAMES, pretrained_path, summary

ROOT = Path(__file__).resolve().parents[1]


def _config(name: str) -> dict:
    return json.loads((pretrained_path(name) / "config.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_each_pretrained_model_loads_in_float32_from_float16_weights(name):
    from safetensors import safe_open

    with safe_open(str(pretrained_path(name) / "model.safetensors"), framework="pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes == {"F16"}, dtypes  # shipped small
    est = vaekit.load_pretrained(name)
    params = list(est.model_.parameters())
    assert params and all(p.dtype == torch.float32 and bool(torch.isfinite(p).all()) for p in params)
    x = est.sample(8, label=3 if getattr(est, "conditional", False) else None, seed=0)
    assert x.shape == (8, *est.input_shape_) and x.dtype == np.float32 and np.isfinite(x).all()
    assert est.input_shape_ == ((1, 28, 20) if name == "frey-2d" else (1, 28, 28))


@pytest.mark.parametrize("name", NAMES)
def test_each_card_gives_the_command_the_metrics_and_the_licence(name):
    card = (pretrained_path(name) / "CARD.md").read_text(encoding="utf-8")
    cfg = _config(name)
    meta = cfg["pretrained"]
    assert card.startswith(f"# {name}\n")
    assert meta["command"].startswith("vaekit train ") and meta["command"] in card and meta["command"] == cfg["run"]["command"]
    assert "--max-minutes" in meta["command"] and "--out runs/pretrained/" + name in meta["command"]
    m = meta["metrics"]
    assert f"{m['test_elbo']:.2f}" in card and f"{m['test_iw_log_likelihood']:.2f}" in card
    assert f"k = {m['iw_k']}" in card and "measured on" in card
    assert cfg["run"]["data_dir"] is None  # no path of the training machine
    if name.startswith("mnist"):
        assert "LeCun" in card and "CC BY-SA 3.0" in card
    else:
        assert "Brendan Frey" in card and "Roweis" in card and "licence" in card.lower()
    assert summary(name) and summary(name) == card.splitlines()[2]


@pytest.mark.parametrize("name", ["mnist-2d", "mnist-cvae"])
def test_shipped_weights_score_what_the_card_says(name):
    """The float16 weights, upcast, give the ELBO on the embedded MNIST test digits that the script measured."""
    from vaekit.data import load_dataset
    from vaekit.evaluate import evaluate

    est = vaekit.load_pretrained(name)
    test = load_dataset("embedded", "test")
    r = evaluate(est, test.X, test.y, k=10, seed=0)
    m = _config(name)["pretrained"]["metrics"]
    assert np.isfinite(r["elbo"]) and -250 < r["elbo"] < -60, r["elbo"]
    assert abs(r["elbo"] - m["embedded_test_elbo"]) < 1.0, (r["elbo"], m["embedded_test_elbo"])
    # The 1000 embedded digits are a sample of the 10 000 the card's test ELBO is measured on.
    assert abs(r["elbo"] - m["test_elbo"]) < 10, (r["elbo"], m["test_elbo"])
    assert r["iw_log_likelihood"] >= r["elbo"] - 1.0


def test_frey_decoder_gives_faces_in_range():
    est = vaekit.load_pretrained("frey-2d")
    faces = est.decode(np.zeros((1, 2), np.float32))
    assert faces.shape == (1, 1, 28, 20) and 0.1 < float(faces.mean()) < 0.9


def test_load_pretrained_refuses_an_unknown_name():
    with pytest.raises(ConfigError, match=r"no pretrained model named 'mnist'; the pretrained models are mnist-2d, mnist-cvae, frey-2d"):
        vaekit.load_pretrained("mnist")


def test_pretrained_list_prints_each_name_with_its_card_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sample", "--pretrained", "list"])  # before --out is asked for
    assert e.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    for name, line in zip(NAMES, lines):
        assert line.split()[0] == name and line.endswith(summary(name))
    assert len(lines) == len(NAMES) + 1


@pytest.mark.parametrize("command", [["sample", "--out", "x.png"], ["explore"], ["reconstruct", "--out", "x.png"],
                                     ["encode", "--out", "z.npz"], ["plot", "manifold", "--out", "m.png"], ["evaluate"]])
def test_an_unknown_name_is_one_line_with_the_names(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command, "--pretrained", "mnist2d"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert "no pretrained model named 'mnist2d'; the pretrained models are mnist-2d, mnist-cvae, frey-2d; did you mean mnist-2d?" in err


def test_run_folder_and_pretrained_exclude_each_other(tmp_path, capsys):
    assert main(["sample", str(tmp_path), "--pretrained", "mnist-2d", "--out", str(tmp_path / "s.png")]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["sample", "--out", str(tmp_path / "s.png")]) == 2
    assert "give a RUN_DIR" in capsys.readouterr().err


def test_pretrained_commands_work_without_the_data(tmp_path, capsys):
    """The MNIST models read the embedded test digits by default (conftest sets VAEKIT_OFFLINE: no download)."""
    assert main(["sample", "--pretrained", "mnist-2d", "-n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0
    assert main(["sample", "--pretrained", "frey-2d", "-n", "4", "--out", str(tmp_path / "f.npy")]) == 0
    assert np.load(tmp_path / "f.npy").shape == (4, 1, 28, 20)
    assert main(["reconstruct", "--pretrained", "mnist-cvae", "--out", str(tmp_path / "r.npy")]) == 0
    assert main(["encode", "--pretrained", "mnist-2d", "--out", str(tmp_path / "z.npz")]) == 0
    with np.load(tmp_path / "z.npz") as z:
        assert z["z"].shape == (1000, 2) and len(z["y"]) == 1000
    assert main(["plot", "--pretrained", "mnist-2d", "manifold", "-n", "5", "--out", str(tmp_path / "m.png")]) == 0


def test_explore_serves_the_pretrained_mnist_2d(monkeypatch):
    import vaekit.explore as explore

    seen = {}

    def serve_once(server, *, open_browser=True, say=print):
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            with urllib.request.urlopen(server.url + "info", timeout=30) as r:
                seen["info"] = (r.status, json.loads(r.read()))
            with urllib.request.urlopen(server.url + "codes", timeout=30) as r:
                seen["codes"] = (r.status, json.loads(r.read()))
        finally:
            server.shutdown()
            server.server_close()

    monkeypatch.setattr(explore, "serve", serve_once)
    assert main(["explore", "--pretrained", "mnist-2d", "--port", "0", "--no-browser"]) == 0
    assert seen["info"][0] == 200 and seen["codes"][0] == 200
    codes = seen["codes"][1]
    assert len(codes["codes"]) == len(codes["labels"]) == 1000 and len(codes["codes"][0]) == 2  # the embedded test digits
    assert "mnist-2d" in json.dumps(seen["info"][1])


def test_the_package_data_ships_every_pretrained_file():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["vaekit"]
    files = [f.relative_to(HERE.parent).as_posix() for f in HERE.rglob("*") if f.is_file() and "__pycache__" not in f.parts]
    for name in NAMES:
        for part in ("config.json", "model.safetensors", "CARD.md"):
            assert f"pretrained/{name}/{part}" in files
    unshipped = [f for f in files if not f.endswith(".py") and not any(fnmatch(f, p) for p in patterns)]
    assert not unshipped, unshipped


def test_readme_states_the_size_of_the_pretrained_models():
    total = sum(f.stat().st_size for f in HERE.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
    assert total < 5e6  # "a few MB"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sizes = [float(s) for s in re.findall(r"src/vaekit/pretrained/[^\n]*?([\d.]+) MB", readme)]
    assert sizes and abs(sizes[0] - total / 1e6) < 0.1, (sizes, total)
    for name in NAMES:
        assert f"--pretrained {name}" in readme


# -- the conditional model draws the digit it is asked for (the acceptance suite's judge) ----------


@pytest.fixture(scope="module")
def judge(shared_data, tmp_path_factory):
    """p(class | image) of the MLP that tests/test_course_acceptance.py fits on the real MNIST training images."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from digit_judge import fit_judge

    from vaekit.data import load_dataset

    judge = fit_judge(shared_data / "mnist")
    test = load_dataset("mnist", "test", data_dir=shared_data / "mnist")
    assert float((judge(test.X).argmax(1) == test.y).mean()) > 0.96
    return judge


@pytest.mark.slow
def test_pretrained_cvae_draws_sevens(tmp_path, judge):
    out = tmp_path / "sevens.npy"
    assert main(["sample", "--pretrained", "mnist-cvae", "--label", "7", "-n", "100", "--out", str(out)]) == 0
    share = float((judge(np.load(out)).argmax(1) == 7).mean())
    print(f"\n[acceptance] pretrained mnist-cvae: share of 100 samples of label 7 judged 7: {share:.2f}")
    assert share >= 0.90
