"""Train, measure and package the pretrained models of src/vaekit/pretrained/ (mnist-2d, mnist-cvae, frey-2d).

For each model, one at a time:

1. train it with `vaekit train` (the command below, recorded in its card), into runs/pretrained/NAME;
2. convert its weights to float16 and write src/vaekit/pretrained/NAME/{config.json, model.safetensors}
   (the config's machine-specific data path dropped; float32 is kept if float16 changes the pictures:
   decoded images of the two are compared pixel by pixel);
3. measure both with `vaekit evaluate` on the test split (ELBO, IW log p(x) at k = --k), and what the
   acceptance suite measures (scripts/digit_judge.py: a classifier fitted on real MNIST);
4. write CARD.md: the command, the metrics with the machine that measured them, the data and its
   licence, what the model is good for.

    .venv/bin/python scripts/make_pretrained.py                    # all three, ~15 min on 2 cores
    .venv/bin/python scripts/make_pretrained.py --only frey-2d     # one of them
    .venv/bin/python scripts/make_pretrained.py --skip-train       # re-measure runs/pretrained/* only

Needs the real data (mnist/ and frey-face/) in --data (default: ../shared/data beside the checkout,
or $VAEKIT_SHARED_DATA).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "src" / "vaekit" / "pretrained"
WORK = Path("runs") / "pretrained"  # relative to ROOT: the recorded commands name it so
DEFAULT_DATA = Path(os.environ.get("VAEKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
# float16 is kept when no decoded pixel (in [0, 1]) moves by more than this against float32:
# two grey levels of an 8-bit image, a change nobody sees.
MAX_PIXEL_CHANGE = 2 / 255
OUTPUT = ["--seed", "0", "--no-report", "--no-figures", "--quiet"]

MODELS = {
    "mnist-2d": {
        "summary": "a VAE with a 2-D code, trained on the 60 000 MNIST training digits: a map of the digits to explore",
        "data": "mnist",
        "train": ["--dataset", "mnist", "--data-dir", "{data}/mnist", "--latent-dim", "2", "--hidden", "400",
                  "--epochs", "40", "--max-minutes", "8"],
        "good_for": [
            "exploring a latent space you can see whole: `vaekit explore --pretrained mnist-2d` puts the test digits on "
            "the plane, and every point of the plane decodes to a digit;",
            "the 2-D manifold (`vaekit plot --pretrained mnist-2d manifold --out manifold.png`), samples, "
            "interpolation between digits;",
            "not for: sharp samples or a competitive log-likelihood. Two numbers cannot hold a digit's details; "
            "a 20-D code (`vaekit train --latent-dim 20`) reconstructs far better.",
        ],
        "use": ["vaekit explore --pretrained mnist-2d", "vaekit plot --pretrained mnist-2d manifold -n 20 --out manifold.png"],
    },
    "mnist-cvae": {
        "summary": "a conditional VAE (4-D code and the digit's label), trained on the 60 000 MNIST training digits: draws the digit you ask for",
        "data": "mnist",
        "train": ["--model", "cvae", "--dataset", "mnist", "--data-dir", "{data}/mnist", "--epochs", "30", "--max-minutes", "4"],
        "good_for": [
            "drawing a given digit: `vaekit sample --pretrained mnist-cvae --label 7` (the share of samples that an "
            "independent classifier reads as the asked digit is below);",
            "seeing what the code holds once the label is given: style (slant, thickness, width), the same for every digit "
            "(`vaekit plot --pretrained mnist-cvae samples --out samples.png`: one row per digit);",
            "not for: encoding or reconstructing without labels (a conditional model needs the digit's label).",
        ],
        "use": ["vaekit sample --pretrained mnist-cvae --label 7 -n 16 --out sevens.png"],
    },
    "frey-2d": {
        "summary": "a VAE with a 2-D code and a Gaussian decoder, trained on the Frey Face images: pose and expression on a plane",
        "data": "frey-face",
        "train": ["--dataset", "frey-face", "--data-dir", "{data}/frey-face", "--latent-dim", "2", "--hidden", "200",
                  "--likelihood", "gaussian", "--learn-sigma", "--batch-size", "100", "--epochs", "300", "--max-minutes", "3"],
        "good_for": [
            "the Frey Face manifold of Kingma & Welling (2014): `vaekit plot --pretrained frey-2d manifold -n 12 --out faces.png` "
            "shows the face turning and the expression changing across the plane;",
            "a continuous (Gaussian) decoder with a learned per-pixel sigma, beside the Bernoulli MNIST models;",
            "not for: faces other than this one person's, or anything needing its data without a download "
            "(the explorer and reconstructions read frey-face from --data-dir, the cache or a download).",
        ],
        "use": ["vaekit sample --pretrained frey-2d -n 16 --out faces.png",
                "vaekit explore --pretrained frey-2d --data-dir DATA/frey-face"],
    },
}

DATA_CARDS = {
    "mnist": (
        "MNIST (Yann LeCun, Corinna Cortes and Christopher J. C. Burges, http://yann.lecun.com/exdb/mnist/): the four "
        "original IDX files, checked by SHA-256. MNIST is commonly distributed under the Creative Commons "
        "Attribution-Share Alike 3.0 licence (CC BY-SA 3.0). These weights are derived from it and are shared under "
        "the same terms, with this attribution. The test digits that `--pretrained` commands read by default are "
        "vaekit's embedded sample (1000 MNIST test digits, src/vaekit/data/EMBEDDED.md), under the same licence."
    ),
    "frey-face": (
        "Frey Face: 1965 greyscale images (28 x 20) of Brendan Frey's face, from Sam Roweis' data page "
        "(https://cs.nyu.edu/~roweis/data.html, file frey_rawface.mat, SHA-256 "
        "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64). Credit: Brendan Frey; distributed by "
        "Sam Roweis. No licence is stated with the data; it is shared for research and teaching and widely used so "
        "(Kingma & Welling 2014 among others). These weights are derived from it and carry the same attribution; "
        "the images themselves are not in vaekit."
    ),
}


def vaekit_cmd(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "vaekit", *argv]


def run(argv: list[str]) -> float:
    """Run a vaekit command from the repository root; its wall time in seconds."""
    print("$ vaekit " + " ".join(argv), flush=True)
    t0 = time.monotonic()
    subprocess.run(vaekit_cmd(argv), cwd=ROOT, check=True)
    return time.monotonic() - t0


def machine() -> str:
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores (shared with other jobs), {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads")


def evaluate(run_dir: Path, data_args: list[str], k: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "metrics.json"
        run(["evaluate", str(run_dir), *data_args, "--k", str(k), "--no-probe", "--quiet", "--json", str(out)])
        return json.loads(out.read_text())


def to_fp16(run_dir: Path, dest: Path) -> None:
    """run_dir's model written into dest with float16 weights and no machine-specific data path."""
    from vaekit.atomicfiles import read_json
    from vaekit.modelfile import check_finite_tensors, read_weights, write_model

    state = {k: v.half() if v.is_floating_point() else v for k, v in read_weights(run_dir).items()}
    check_finite_tensors(state, dest)  # a weight beyond float16's range would be inf
    cfg = read_json(run_dir / "config.json")
    cfg = {k: v for k, v in cfg.items() if k not in ("format", "format_version")}
    cfg["run"] = {**cfg["run"], "data_dir": None}  # the training machine's folder means nothing elsewhere
    write_model(dest, cfg, {k: v.contiguous() for k, v in state.items()})


def keep_fp32(run_dir: Path, dest: Path) -> None:
    from vaekit.atomicfiles import read_json
    from vaekit.modelfile import read_weights, write_model

    cfg = read_json(run_dir / "config.json")
    cfg = {k: v for k, v in cfg.items() if k not in ("format", "format_version")}
    cfg["run"] = {**cfg["run"], "data_dir": None}
    write_model(dest, cfg, read_weights(run_dir))


def pixel_change(a, b, test_X, test_y) -> dict:
    """Largest and mean change of decoded pixels between two models: prior samples' means and test reconstructions."""
    d = a.model_.config.latent_dim
    Z = np.random.default_rng(0).standard_normal((500, d)).astype(np.float32)
    cond = getattr(a, "conditional", False)
    y = np.arange(500) % 10 if cond else None
    diffs = [np.abs(a.decode(Z, y) - b.decode(Z, y)).ravel(),
             np.abs(a.reconstruct(test_X, test_y if cond else None) - b.reconstruct(test_X, test_y if cond else None)).ravel()]
    diff = np.concatenate(diffs)
    return {"max": float(diff.max()), "mean": float(diff.mean())}


def judge_measures(name: str, est, test, judge, data: Path) -> dict:
    """What the acceptance suite measures for this kind of model (tests/test_course_acceptance.py)."""
    from vaekit.plots import manifold_images

    if name == "mnist-cvae":
        rates = [float((judge(est.sample(100, label=k, seed=0)).argmax(1) == k).mean()) for k in range(10)]
        return {"label_rates": rates}
    if name == "mnist-2d":
        p = judge(manifold_images(est, n=20))
        sure = p.max(1) >= 0.7
        rec = float((judge(est.reconstruct(test.X)).argmax(1) == test.y).mean())
        return {"manifold_classes": sorted(int(c) for c in np.unique(p.argmax(1)[sure])), "reconstructions_judged_right": rec}
    from vaekit.data import load_dataset

    grid = manifold_images(est, n=12)
    faces = load_dataset("frey-face", "train", data_dir=data / "frey-face").X
    return {"grid_std_over_data_std": float(grid.reshape(len(grid), -1).std(0).mean() / faces.reshape(len(faces), -1).std(0).mean())}


def fmt(v, digits=2) -> str:
    return f"{v:.{digits}f}"


def write_card(name: str, spec: dict, command: str, info: dict) -> str:
    m32, m16 = info["fp32"], info["fp16"]
    dtype = info["dtype"]
    rows = [("test ELBO (nats per example; higher is better)", "elbo"),
            (f"IW log p(x), k = {m16['iw_k']} (on {m16['iw_n']} test examples)", "iw_log_likelihood"),
            ("E_q[log p(x\\|z)]", "log_likelihood"), ("KL(q(z\\|x) \\|\\| p(z))", "kl")]  # "\|" is "|" in a Markdown table cell
    table = ["| measure | float32 (as trained) | " + dtype + " (as shipped) |", "|---|---|---|"]
    table += [f"| {label} | {fmt(m32[key])} | {fmt(m16[key])} |" for label, key in rows if key in m16]
    judge = info.get("judge", {})
    extra = []
    if "label_rates" in judge:
        extra.append("Samples of each label read as that digit by the acceptance suite's judge (scripts/digit_judge.py, an MLP "
                     "fitted on the 60 000 real MNIST training images), 100 samples per label, seed 0, as "
                     "`vaekit sample --pretrained mnist-cvae --label K -n 100`:")
        extra.append("")
        extra.append("| label | " + " | ".join(str(k) for k in range(10)) + " |")
        extra.append("|---|" + "---|" * 10)
        extra.append("| judged as asked | " + " | ".join(f"{r:.0%}" for r in judge["label_rates"]) + " |")
    if "manifold_classes" in judge:
        extra.append(f"The 20 x 20 manifold holds tiles read with p >= 0.7 as {len(judge['manifold_classes'])} of the 10 digits "
                     f"({', '.join(map(str, judge['manifold_classes']))}) by the acceptance suite's judge (scripts/digit_judge.py); "
                     f"the reconstructions of the 1000 embedded test digits are read as their original's digit in "
                     f"{judge['reconstructions_judged_right']:.1%} of cases.")
    if "grid_std_over_data_std" in judge:
        extra.append(f"The 12 x 12 manifold's per-pixel standard deviation across tiles is {judge['grid_std_over_data_std']:.0%} of "
                     "the real faces' (the faces change across the plane; the acceptance suite asks for at least 30 %).")
    change = info["pixel_change"]
    kept = ("float16 kept: no decoded pixel moved by more than two grey levels (2/255)" if dtype == "float16"
            else "float32 kept: float16 moved a decoded pixel by more than two grey levels (2/255)")
    use = "\n".join(f"    {line}" for line in spec["use"])
    good = "\n".join(f"- {line}" for line in spec["good_for"])
    return f"""# {name}

{spec['summary'][0].upper() + spec['summary'][1:]}.

    {use.strip()}

or in Python: `vaekit.load_pretrained("{name}")` gives the estimator (`.sample`, `.encode`, `.decode`, `.reconstruct`).

## How it was trained

    {command}

run from the repository root with the data in ../shared/data (the data's original files; see below).
It trained for {info['epochs']} epochs (the command took {info['train_seconds']:.0f} s; training stops at `--epochs` or after
the epoch in which `--max-minutes` runs out, whichever comes first);
scripts/make_pretrained.py then stored the weights in {dtype} ({info['bytes'] / 1e6:.2f} MB; float32 would be
{info['fp32_bytes'] / 1e6:.2f} MB). `vaekit.load` upcasts them to float32.

## Test metrics

    {info['evaluate']}

on the {info['test_name']} (test split, {m16['n']} examples), measured on {info['machine']}:

{chr(10).join(table)}

float16 against float32: the largest change of a decoded pixel (in [0, 1]) over 500 prior samples' means and the
test reconstructions is {change['max']:.2g} (mean {change['mean']:.1g}); {kept}.

{chr(10).join(extra)}

## Good for

{good}

## Data and licence

{DATA_CARDS[spec['data']]}
"""


def make(name: str, spec: dict, args, judge) -> None:
    from vaekit.data import load_dataset
    from vaekit.runfolder import load

    data_rel = os.path.relpath(args.data, ROOT)
    out = args.work / name
    train_argv = ["train", *[a.format(data=data_rel) for a in spec["train"]], *OUTPUT, *args.extra, "--out", str(out)]
    if args.skip_train:
        seconds = json.loads((ROOT / out / "train_seconds.json").read_text())["seconds"]
    else:
        shutil.rmtree(ROOT / out, ignore_errors=True)  # not --overwrite: the run records its command, which the card repeats
        seconds = run(train_argv)
        (ROOT / out / "train_seconds.json").write_text(json.dumps({"seconds": seconds}))
    import csv

    with open(ROOT / out / "metrics.csv") as f:
        epochs = len(list(csv.DictReader(f)))
    dest = args.dest / name
    to_fp16(ROOT / out, dest)
    src = load(ROOT / out)
    half = load(dest)
    test = (load_dataset("embedded", "test") if spec["data"] == "mnist"
            else load_dataset("frey-face", "test", data_dir=args.data / spec["data"]))
    change = pixel_change(src, half, test.X, test.y)
    dtype = "float16"
    if change["max"] > MAX_PIXEL_CHANGE:
        print(f"{name}: float16 moves a decoded pixel by {change['max']:.3g}; keeping float32", flush=True)
        keep_fp32(ROOT / out, dest)
        half, dtype = load(dest), "float32"
    data_args = ["--dataset", spec["data"], "--data-dir", f"{data_rel}/{spec['data']}"]
    fp32 = evaluate(out, data_args, args.k)
    fp16 = evaluate(dest, data_args, args.k)
    info = {
        "fp32": fp32, "fp16": fp16, "dtype": dtype, "pixel_change": change, "epochs": epochs, "train_seconds": seconds,
        "bytes": (dest / "model.safetensors").stat().st_size, "fp32_bytes": (ROOT / out / "model.safetensors").stat().st_size,
        "machine": machine(), "test_name": "MNIST test digits" if spec["data"] == "mnist" else "Frey Face images",
        "evaluate": f"vaekit evaluate {os.path.relpath(dest, ROOT)} {' '.join(data_args)} --k {args.k} --no-probe",
    }
    if judge is not None:
        info["judge"] = judge_measures(name, half, test, judge, args.data)
    # The metrics in the config too, for tests and tools: the embedded test digits' ELBO lets a test
    # check, without the real data, that the shipped weights still score what they scored here.
    from vaekit.atomicfiles import read_json, write_json
    from vaekit.evaluate import evaluate as evaluate_lib

    cfg = read_json(dest / "config.json")
    metrics = {"test_elbo": fp16["elbo"], "test_iw_log_likelihood": fp16["iw_log_likelihood"], "iw_k": fp16["iw_k"],
               "test_n": fp16["n"], "dtype": dtype}
    if spec["data"] == "mnist":
        emb = evaluate_lib(half, test.X, test.y, k=10, seed=0)
        metrics["embedded_test_elbo"] = emb["elbo"]
    if "judge" in info:
        metrics["judge"] = info["judge"]
    cfg["pretrained"] = {"name": name, "summary": spec["summary"], "command": "vaekit " + " ".join(train_argv),
                         "metrics": metrics, "machine": info["machine"]}
    write_json(dest / "config.json", cfg)
    card = write_card(name, spec, "vaekit " + " ".join(train_argv), info)
    (dest / "CARD.md").write_text(card, encoding="utf-8")
    print(f"{name}: ELBO {fp16['elbo']:.2f} (float32 {fp32['elbo']:.2f}), IW log p(x) {fp16['iw_log_likelihood']:.2f}, "
          f"{info['bytes'] / 1e6:.2f} MB, largest pixel change {change['max']:.2g}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding mnist/ and frey-face/")
    p.add_argument("--only", choices=list(MODELS), action="append", help="make only this model (repeatable)")
    p.add_argument("--k", type=int, default=100, help="importance samples of the IW log p(x)")
    p.add_argument("--skip-train", action="store_true", help="re-measure and re-package runs/pretrained/NAME without training")
    p.add_argument("--smoke", action="store_true",
                   help="check the script end to end in a minute: 1000 examples, one epoch, k = 5, into runs/pretrained-smoke/")
    args = p.parse_args()
    args.work, args.dest, args.extra = WORK, DEST, []
    if args.smoke:
        args.work = Path("runs") / "pretrained-smoke"
        args.dest, args.extra, args.k = ROOT / args.work / "package", ["--limit", "1000", "--epochs", "1"], 5
    args.data = args.data.resolve()
    if not (args.data / "mnist" / "t10k-images-idx3-ubyte.gz").exists():
        p.error(f"no MNIST files in {args.data / 'mnist'}; pass --data")
    sys.path.insert(0, str(ROOT / "scripts"))
    from digit_judge import fit_judge

    judge = fit_judge(args.data / "mnist", cache=ROOT / WORK / "judge.npz")  # one cache, smoke runs included
    for name in args.only or list(MODELS):
        make(name, MODELS[name], args, judge)
    total = sum(f.stat().st_size for f in args.dest.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
    print(f"{os.path.relpath(args.dest, ROOT)}/: {total / 1e6:.2f} MB in all", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
