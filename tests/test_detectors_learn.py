"""A detector that did not learn cannot pass (issue 26, item 4).

PyOD shipped a deep detector whose backward pass was commented out for years: its scores still
varied and still ranked far-out rows high, because an untrained network's outputs grow with its
inputs. So a ranking check alone passes an untrained detector, and this file checks three things
for every detector and every score method it accepts (read from the detector's family, so a new
method is tested without editing this file):

1. training lowered the loss (the fitted estimator's ``history_``, first epochs against last);
2. the scores are not nearly constant;
3. the scores rank planted anomalies above held-out normal rows (ROC-AUC).

The sabotage tests then train with the optimizer's step disabled, with the gradients zeroed, and
with the backward pass removed, and require the same check to report the failure, so it cannot
pass vacuously.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch.optim.optimizer import register_optimizer_step_pre_hook

from vaekit import train
from vaekit.anomaly.detectors import DETECTORS
from vaekit.anomaly.options import METHODS, methods_for

N_TRAIN, N_TEST, N_ANOMALIES, N_FEATURES = 300, 200, 20, 6
# 300 rows in batches of 128: 3 steps an epoch, so 100 epochs of history. ~0.3 s a fit.
N_STEPS = 300
# The least drop of the training loss, relative to its size, that counts as learning. Measured at
# seed 0: the VAE's loss falls by 24 to 33 %, the autoencoder's by 97 %; with a no-op optimizer
# the change is under 0.2 % (the ELBO's sampling noise and the batch order).
MIN_DROP = 0.05
# The least spread (standard deviation over mean magnitude) of scores that are not "nearly
# constant". Measured: at least 0.077 (the VAE's 'likelihood' on the pocket case).
MIN_SPREAD = 0.02
# The ROC-AUC a score must beat on each case.
MIN_AUC = {"shifted": 0.9, "pocket": 0.9}
# Where a score cannot see a kind of anomaly by construction, a lower bar (None: no bar; the loss
# and the spread are still checked). A method not named here must meet MIN_AUC.
BLIND_SPOTS = {
    # A code-space score sees the row after the encoder has mapped it toward the plane the normal
    # rows lie on, so a row moved off that plane moves less in code space (VAE: 0.867, 0.918).
    ("shifted", "latent"): 0.8, ("shifted", "knn"): 0.8,
    # A global density or decoder spans the empty gap between two clusters; the neighbour terms
    # are what find rows there (the vaekit.anomaly docstring). Measured 0.43 to 0.89.
    ("pocket", "elbo"): None, ("pocket", "likelihood"): None, ("pocket", "reconstruction"): None,
}
# A fixed plane, the same for every case and seed: the structure the networks can learn.
PLANE = np.random.default_rng(99).normal(size=(2, N_FEATURES))


def shifted_rows(rng: np.random.Generator, n: int, n_anomalies: int) -> np.ndarray:
    """Rows near a 2-D plane (Gaussian factors through PLANE, plus noise); the last ``n_anomalies``
    then moved 5 units along two features, off the plane."""
    X = rng.normal(size=(n + n_anomalies, 2)) @ PLANE + 0.2 * rng.normal(size=(n + n_anomalies, N_FEATURES))
    X[n:, :2] += rng.choice([-5.0, 5.0], size=(n_anomalies, 2))
    return X


def pocket_rows(rng: np.random.Generator, n: int, n_anomalies: int) -> np.ndarray:
    """Two tight clusters at -3 and +3 on every feature; the last ``n_anomalies`` in the empty middle."""
    side = rng.choice([-3.0, 3.0], size=(n, 1))
    return np.r_[side + 0.5 * rng.normal(size=(n, N_FEATURES)), 0.5 * rng.normal(size=(n_anomalies, N_FEATURES))]


CASES = {"shifted": shifted_rows, "pocket": pocket_rows}


def table(case: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training rows, test rows, test labels with 1 = anomaly). The detector trains on normal rows
    only: planted anomalies in training would be each other's neighbours, and this file asks
    whether the detector learned, not how it copes with contamination."""
    rng = np.random.default_rng(seed)
    make = CASES[case]
    X_train, X_test = make(rng, N_TRAIN, 0), make(rng, N_TEST, N_ANOMALIES)
    return X_train.astype(np.float32), X_test.astype(np.float32), np.r_[np.zeros(N_TEST), np.ones(N_ANOMALIES)]


def loss_failures(losses: list[float]) -> list[str]:
    """Why this per-epoch training loss shows no learning ([] when it does): the mean of the first
    tenth of the epochs must exceed the last tenth's by MIN_DROP of the loss's size."""
    if len(losses) < 4:
        return [f"only {len(losses)} epochs in the history; too few to tell whether training lowered the loss"]
    k = max(1, len(losses) // 10)
    early, late = float(np.mean(losses[:k])), float(np.mean(losses[-k:]))
    need = MIN_DROP * max(abs(early), abs(late), 1.0)
    if not early - late >= need:  # also a NaN
        return [f"training did not lower the loss: {early:.4g} over the first {k} epochs, {late:.4g} over the last {k} "
                f"(a drop of {early - late:.3g}; learning drops it by at least {need:.3g})"]
    return []


def score_failures(scores: np.ndarray, labels: np.ndarray, min_auc: float | None) -> list[str]:
    """Why these scores look unlearned ([] when they do not): non-finite, nearly constant, or
    ranking the anomalies (label 1) no better than ``min_auc``."""
    if not np.isfinite(scores).all():
        return [f"{int((~np.isfinite(scores)).sum())} scores are NaN/Inf"]
    out = []
    spread = float(np.std(scores) / (np.mean(np.abs(scores)) + 1e-12))
    if spread < MIN_SPREAD:
        out.append(f"scores are nearly constant: standard deviation / mean magnitude {spread:.2g} < {MIN_SPREAD}")
    if min_auc is not None:
        auc = roc_auc_score(labels, scores)
        if not auc > min_auc:
            out.append(f"scores rank the planted anomalies at ROC-AUC {auc:.3f}, not above {min_auc}")
    return out


def learning_failures(det, X_test: np.ndarray, labels: np.ndarray, min_auc: float | None) -> list[str]:
    """Everything that says the fitted detector ``det`` did not learn; [] when nothing does."""
    losses = [row["train_loss"] for row in det.estimator_.history_]
    return loss_failures(losses) + score_failures(det.decision_function(X_test), labels, min_auc)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Networks this small gain nothing from threads, and on a busy machine a second thread waits
    for a core at every operation (the file's 50 fits took 130 s with two threads, 23 s with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Every method, and 'combined' also as a novelty detector (novelty=True: other terms, another reference set).
COMBOS = [pytest.param(cls, method, id=f"{name}-{method}") for name, cls in DETECTORS.items() for method in methods_for(name)]
COMBOS += [pytest.param(cls, "combined+novelty", id=f"{name}-combined+novelty") for name, cls in DETECTORS.items()]


def fit_and_check(cls, method: str, case: str) -> list[str]:
    X_train, X_test, labels = table(case)
    det = cls(method=method.split("+")[0], novelty=method.endswith("+novelty"), n_steps=N_STEPS, seed=0).fit(X_train)
    return learning_failures(det, X_test, labels, BLIND_SPOTS.get((case, method), MIN_AUC[case]))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("cls, method", COMBOS)
def test_every_detector_and_method_learns(cls, method, case):
    assert fit_and_check(cls, method, case) == []


# -- the check bites: the same check on broken training --------------------------------------------

@contextmanager
def step_disabled():
    """Whatever optimizer training builds, its step does nothing."""
    real = train.make_optimizer

    def make(*args, **kwargs):
        opt = real(*args, **kwargs)
        opt.step = lambda *a, **k: None
        return opt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train, "make_optimizer", make)
        yield


@contextmanager
def gradients_zeroed():
    """Every gradient is zero when the optimizer steps (Adam then moves nothing)."""
    def zero(opt, args, kwargs):
        for group in opt.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.zero_()

    handle = register_optimizer_step_pre_hook(zero)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def backward_removed():
    """PyOD's bug: the loss is computed and never backpropagated."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.Tensor, "backward", lambda self, *a, **k: None)
        yield


@pytest.mark.parametrize("sabotage", [step_disabled, gradients_zeroed, backward_removed], ids=lambda f: f.__name__)
@pytest.mark.parametrize("cls, method", COMBOS)
def test_the_check_fails_when_training_is_broken(cls, method, sabotage):
    with sabotage():
        failures = fit_and_check(cls, method, "shifted")
    assert any(f.startswith("training did not lower the loss") for f in failures), failures


def test_the_score_check_fails_on_constant_or_random_scores():
    labels = np.r_[np.zeros(N_TEST), np.ones(N_ANOMALIES)]
    rng = np.random.default_rng(0)
    assert score_failures(labels + 10.0, labels, 0.9) == []
    constant = score_failures(10.0 + 1e-3 * labels, labels, 0.9)
    assert len(constant) == 1 and constant[0].startswith("scores are nearly constant"), constant
    random = score_failures(rng.normal(size=len(labels)), labels, 0.9)
    assert len(random) == 1 and "ROC-AUC" in random[0], random
    assert score_failures(np.r_[labels[:-1], np.nan], labels, 0.9) == ["1 scores are NaN/Inf"]
    assert {method for _, method in BLIND_SPOTS} <= set(METHODS), "a blind spot names a method that no longer exists"
    assert loss_failures([5.0, 4.0]) != [] and loss_failures([5.0] * 20) != [] and loss_failures([5.0] * 10 + [4.0] * 10) == []
