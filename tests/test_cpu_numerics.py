"""Scores on other CPUs, emulated on this one: the kernels for AVX2 and for plain SSE4.2 are
selected with ATEN_CPU_CAPABILITY (PyTorch's own kernels), MKL_ENABLE_INSTRUCTIONS (MKL's BLAS)
and ONEDNN_MAX_CPU_ISA (oneDNN), so one machine runs the code paths an older CPU would.

What docs/anomaly.md promises and this checks: on each instruction set a row's score is
bit-identical whatever its batch, order or chunk; between instruction sets the score terms agree
to one float32 step, and in practice are identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vaekit.anomaly import VAEDetector

ISAS = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "sse4.2": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}

SCORE = """
import json, sys
import numpy as np, torch
from vaekit.anomaly import load_detector
det = load_detector(sys.argv[1]); X = np.load(sys.argv[2])
names = ("elbo", "likelihood", "reconstruction", "knn")
terms = det.score_terms(X)
order = np.random.default_rng(1).permutation(len(X))
again = {
    "chunks of 37": np.concatenate([det.decision_function(X[i : i + 37]) for i in range(0, len(X), 37)]),
    "shuffled": det.decision_function(X[order])[np.argsort(order)],
    "one row": np.array([det.decision_function(X[i : i + 1])[0] for i in range(0, 100)]),
}
full = terms["score"].to_numpy()
same = {k: bool(np.array_equal(v, full[: len(v)])) for k, v in again.items()}
np.savez(sys.argv[3], **{n: terms[n].to_numpy() for n in names})
print(json.dumps({"isa": torch.backends.cpu.get_cpu_capability(), "same": same}))
"""


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    d = tmp_path_factory.mktemp("isa")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 7)).astype(np.float32) * rng.uniform(0.1, 10, 7).astype(np.float32)
    VAEDetector(n_steps=300).fit(X).save(d / "det")
    Q = np.vstack([X[:700], rng.normal(size=(500, 7)).astype(np.float32) * 30])  # normal and far-off rows
    np.save(d / "Q.npy", Q)
    out = {}
    for isa, env in ISAS.items():
        res = subprocess.run([sys.executable, "-c", SCORE, str(d / "det"), str(d / "Q.npy"), str(d / f"{isa}.npz")],
                             env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        out[isa] = (json.loads(res.stdout.strip().splitlines()[-1]), dict(np.load(d / f"{isa}.npz")))
    return out


@pytest.mark.parametrize("isa", list(ISAS))
def test_a_rows_score_is_bit_identical_whatever_its_batch_on_each_instruction_set(scored, isa):
    info, _ = scored[isa]
    assert info["same"] == {"chunks of 37": True, "shuffled": True, "one row": True}, info


def test_the_emulated_instruction_sets_are_really_different(scored):
    # Otherwise the comparison below would compare a kernel with itself.
    assert scored["avx2"][0]["isa"] == "AVX2" and scored["sse4.2"][0]["isa"] == "DEFAULT"


@pytest.mark.parametrize("isa", ["avx2", "sse4.2"])
def test_score_terms_agree_across_instruction_sets_to_one_float32_step(scored, isa):
    _, native = scored["native"]
    _, other = scored[isa]
    for name, want in native.items():
        got = other[name]
        np.testing.assert_array_max_ulp(got.astype(np.float32), want.astype(np.float32), maxulp=1)
        assert np.mean(got == want) >= 0.999, name
