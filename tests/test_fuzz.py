"""Property-based tests: random and mutated bytes fed to the IDX, .npy and CSV readers either load
correct data or raise vaekit's own DataError; never another exception, never a hang."""

from __future__ import annotations

import gzip
import io
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaekit.data import load_dataset, read_idx
from vaekit.errors import DataError

FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_idx(rows: int = 3, h: int = 4, w: int = 5) -> bytes:
    data = np.arange(rows * h * w, dtype=np.uint8).tobytes()
    return struct.pack(">HBBIII", 0, 0x08, 3, rows, h, w) + data


def _mutate(base: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    b = bytearray(base)
    for pos, val in edits:
        if b:
            b[pos % len(b)] = val
    return bytes(b[:cut] if cut is not None else b)


@FUZZ
@given(st.binary(max_size=300))
def test_idx_reader_random_bytes(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("idx") / "x.idx"
    path.write_bytes(blob)
    try:
        arr = read_idx(path)
    except DataError:
        return
    # If it loaded, the header must have described exactly these bytes.
    assert isinstance(arr, np.ndarray)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6), st.none() | st.integers(0, 80),
       st.booleans())
def test_idx_reader_mutated_valid_file(tmp_path_factory, edits, cut, gz):
    raw = _mutate(_valid_idx(), edits, cut)
    blob = gzip.compress(raw) if gz else raw
    if gz and edits:  # also corrupt the compressed stream itself
        blob = _mutate(blob, edits[:2], None)
    path = tmp_path_factory.mktemp("idx") / ("x.idx.gz" if gz else "x.idx")
    path.write_bytes(blob)
    try:
        arr = read_idx(path)
    except DataError:
        return
    assert arr.size == int(np.prod(arr.shape))
    if not edits and cut is None:
        assert arr.shape == (3, 4, 5)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6), st.none() | st.integers(0, 300))
def test_npy_reader_mutated(tmp_path_factory, edits, cut):
    buf = io.BytesIO()
    np.save(buf, np.arange(24, dtype=np.float32).reshape(6, 4) / 24)
    path = tmp_path_factory.mktemp("npy") / "x.npy"
    path.write_bytes(_mutate(buf.getvalue(), edits, cut))
    try:
        ds = load_dataset(str(path), "all")
    except DataError:
        return
    assert ds.X.dtype == np.float32 and np.isfinite(ds.X).all() and len(ds.X) > 0


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("0123456789.,-e\nabcnaNinf \"")), max_size=200))
def test_csv_reader_random_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("csv") / "x.csv"
    path.write_text("a,b,c\n" + text)
    try:
        ds = load_dataset(str(path), "all")
    except DataError:
        return
    assert ds.X.shape[1] == 3 and np.isfinite(ds.X).all()


def test_a_pickled_npy_is_refused(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError):
        load_dataset(str(path), "all")


# -- saved model folders, detector folders and checkpoints -------------------------------------------
#
# Real folders written by today's code, mutated at random (seeded): bytes flipped in the JSON and in
# the safetensors header, files truncated, JSON values swapped for extreme or wrong-typed ones, keys
# deleted. Each load either gives the original's numbers or a vaekit error (one line at the command
# line); never another exception, never more than a set memory. A flipped byte inside a tensor's
# data is a valid file with other numbers (the format has no checksum): it must load or be refused
# (NaN/Inf), never crash.

import copy  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

from vaekit.errors import VaekitError  # noqa: E402

N_MUTATIONS = 40  # per kind of folder; the whole fuzz runs in well under a minute
MAX_GROWTH_MB = 300
EXTREMES = [10**9, 10**30, -1, 0, 2.5, 1e308, True, False, None, "x", "", [], {}, [[[]]], [10**9, 10**9], {"kind": "x"}]

_X = np.random.default_rng(0).random((64, 6)).astype(np.float32)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """A model folder, a detector folder and a checkpoint written by today's code, with their numbers."""
    import pandas as pd
    import torch

    from vaekit import VAE
    from vaekit.anomaly import VAEDetector
    from vaekit.checkpoint import Checkpointer

    root = tmp_path_factory.mktemp("originals")
    est = VAE(latent_dim=2, hidden=(8,), epochs=1, batch_size=32, likelihood="gaussian", standardize=True).fit(_X)
    est.save(root / "model")
    table = pd.DataFrame(_X, columns=[f"f{i}" for i in range(6)])
    det = VAEDetector(hidden=(8,), n_steps=20, n_score_samples=2).fit(table)
    det.save(root / "detector")
    model = est.model_
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.loss(torch.from_numpy(est.prepare_X(_X))).loss.backward()
    opt.step()  # the optimizer has moments to save
    Checkpointer(root / "ckpt").save(model, opt, epoch=2, step=0, history=[{"epoch": 1, "seconds": 0.1, "train_loss": 1.0}], sums={})
    return {"root": root, "model": est.encode(_X), "detector": det.decision_function(table), "table": table,
            "checkpoint": {k: v.clone() for k, v in model.state_dict().items()}}


def _json_leaves(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield path + (k,)
            yield from _json_leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield path + (i,)
            yield from _json_leaves(v, path + (i,))


def _mutate_json(file: Path, rng: random.Random) -> str:
    cfg = json.loads(file.read_text())
    path = rng.choice(list(_json_leaves(cfg)))
    parent = cfg
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and rng.random() < 0.3:
        del parent[path[-1]]
        what = f"deleted {path}"
    else:
        parent[path[-1]] = copy.deepcopy(rng.choice(EXTREMES))
        what = f"{path} = {parent[path[-1]]!r}"
    file.write_text(json.dumps(cfg))
    return what


def _flip(file: Path, rng: random.Random, region: str) -> str:
    data = bytearray(file.read_bytes())
    if region == "header" and file.suffix == ".safetensors":
        end = 8 + int.from_bytes(data[:8], "little")
        lo, hi = 0, min(end, len(data))
    elif region == "data" and file.suffix == ".safetensors":
        lo, hi = 8 + int.from_bytes(data[:8], "little"), len(data)
    else:
        lo, hi = 0, len(data)
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(lo, hi)] = rng.randrange(256)
    file.write_bytes(bytes(data))
    return f"flipped bytes in the {region} of {file.name}"


def _mutation(folder: Path, rng: random.Random) -> tuple[str, bool]:
    """Mutate one file of ``folder`` (or the file itself); returns (what, whether the numbers may change)."""
    files = sorted(p for p in ([folder] if folder.is_file() else folder.rglob("*")) if p.is_file())
    file = rng.choice(files)
    kinds = ["header", "header", "data", "truncate"] if file.suffix == ".safetensors" else ["json", "json", "all", "truncate"]
    kind = rng.choice(kinds)
    if kind == "json":
        return _mutate_json(file, rng), True
    if kind == "truncate":
        size = file.stat().st_size
        file.write_bytes(file.read_bytes()[: rng.randrange(size)])
        return f"truncated {file.name}", False
    # A flipped byte in JSON may leave valid JSON with another value; in a tensor's data, other numbers.
    return _flip(file, rng, kind), kind in ("data", "all")


OUTCOMES: dict[str, int] = {}


def _check_outcome(load, expected, may_change: bool, what: str) -> None:
    """Load: a vaekit error, or numbers identical to the original's (finite ones where the mutation may change them)."""
    try:
        got = load()
    except VaekitError:
        OUTCOMES["refused"] = OUTCOMES.get("refused", 0) + 1
        return
    except Exception as e:  # noqa: BLE001 -- the point of the test: nothing else may escape
        pytest.fail(f"{what}: {type(e).__name__}: {e}")
    same = got.shape == expected.shape and np.array_equal(got, expected)
    OUTCOMES["identical" if same else "changed"] = OUTCOMES.get("identical" if same else "changed", 0) + 1
    if not same:
        assert may_change, f"{what}: loaded with other numbers"
        assert np.isfinite(got).all(), f"{what}: loaded and gave non-finite numbers"


def _numbers(kind: str, folder: Path | None, originals: dict) -> np.ndarray:
    """What a loaded ``folder`` computes (None: the original's numbers): codes, scores or checkpoint weights."""
    import torch

    from vaekit.anomaly import load_detector
    from vaekit.checkpoint import read_checkpoint
    from vaekit.runfolder import load

    if folder is None:
        if kind == "checkpoint":
            return torch.cat([v.reshape(-1) for v in originals["checkpoint"].values()]).numpy()
        return originals[kind]
    if kind == "model":
        return load(folder).encode(_X)
    if kind == "detector":
        return load_detector(folder).decision_function(originals["table"])
    return torch.cat([v.reshape(-1) for v in read_checkpoint(folder)["model"].values()]).numpy()


@pytest.mark.parametrize("kind", ["model", "detector", "checkpoint"])
def test_mutated_saved_folders_load_identically_or_fail_with_a_vaekit_error(kind, originals, tmp_path):
    source = originals["root"] / ("ckpt/checkpoint.safetensors" if kind == "checkpoint" else kind)
    start = _peak_mb()
    rng = random.Random(f"vaekit-fuzz-{kind}")
    for i in range(N_MUTATIONS):
        target = tmp_path / f"{i}" / source.name
        target.parent.mkdir()
        (shutil.copy if source.is_file() else shutil.copytree)(source, target)
        what, may_change = _mutation(target, rng)
        _check_outcome(lambda t=target: _numbers(kind, t, originals), _numbers(kind, None, originals), may_change, what)
        shutil.rmtree(target.parent)
    assert _peak_mb() - start < MAX_GROWTH_MB


def test_mutated_model_folders_give_one_line_at_the_command_line(originals, tmp_path, capsys):
    """The same mutations through `vaekit encode`: exit 0 or one line and exit 2, never a traceback."""
    from vaekit.cli import main

    np.save(tmp_path / "x.npy", _X)
    rng = random.Random("vaekit-fuzz-cli")
    for i in range(N_MUTATIONS // 4):
        target = tmp_path / f"m{i}"
        shutil.copytree(originals["root"] / "model", target)
        what, _ = _mutation(target, rng)
        rc = main(["encode", str(target), "--dataset", str(tmp_path / "x.npy"), "--out", str(tmp_path / f"z{i}.npy")])
        err = capsys.readouterr().err.strip()
        assert rc in (0, 2), what
        if rc == 2:
            assert len(err.splitlines()) == 1 and err.startswith("vaekit: error: "), (what, err)


@pytest.mark.parametrize("kind", ["model", "detector", "checkpoint"])
def test_a_nan_weight_is_refused_naming_the_tensor(kind, originals, tmp_path):
    """NaN/Inf weights fail closed everywhere: a model folder, the model inside a detector, a checkpoint."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from vaekit.errors import ModelFileError

    source = originals["root"] / ("ckpt" if kind == "checkpoint" else kind)
    shutil.copytree(source, tmp_path / kind)
    file = next(p for p in (tmp_path / kind).rglob("*.safetensors") if p.name in ("model.safetensors", "checkpoint.safetensors"))
    state = load_file(str(file))
    with safe_open(str(file), framework="pt") as f:
        metadata = f.metadata()
    name = next(k for k in sorted(state) if "weight" in k)
    state[name].view(-1)[0] = float("inf")
    save_file(state, str(file), metadata=metadata)
    with pytest.raises(ModelFileError, match=f"tensor {name} holds NaN or Inf"):
        _numbers(kind, tmp_path / kind / ("checkpoint.safetensors" if kind == "checkpoint" else ""), originals)
