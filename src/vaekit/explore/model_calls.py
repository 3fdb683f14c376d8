"""The explorer's calls into a fitted model, through its contract only, one call at a time.

The estimator's ``encode``, ``decode``, ``reconstruct`` and ``prepare_X``, the model's ``inference``
(q(z|x) as a torch Distribution) and ``loss`` (named terms), and the library's
``iw_log_likelihood`` / ``kl_per_dimension`` over them: nothing here reaches into a model's
networks or its prior module. One lock serializes the calls, so several browser tabs (threads)
can share one model.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch

from .capabilities import Capabilities
from .errors import RequestError
from .limits import ELBO_SAMPLES, IW_K


class ModelCalls:
    """A fitted estimator's model, called under one lock; ``caps`` says which questions it can answer."""

    def __init__(self, est, caps: Capabilities):
        self.est = est
        self.model = est.model_
        self.caps = caps
        self._lock = threading.Lock()

    def locked(self, fn, *args, **kwargs):
        with self._lock, torch.no_grad():
            return fn(*args, **kwargs)

    def tensors(self, X: np.ndarray, y: np.ndarray | None):
        """X prepared as the model sees it, and the labels where the model takes them, on its device."""
        Xt = torch.from_numpy(self.est.prepare_X(X)).to(self.est.device_)
        yt = None if (y is None or not self.caps.conditional) else torch.from_numpy(y).to(self.est.device_)
        return Xt, yt

    def encode(self, X: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        """The codes (posterior means) of examples X, (N, code_dim)."""
        return self.locked(self.est.encode, X, y if self.caps.conditional else None)

    def decode(self, Z: np.ndarray, label: int | None = None) -> np.ndarray:
        """E[x|z] for codes Z of shape (N, code_dim), in data units, shaped (N, *example shape)."""
        y = None if label is None else np.full(len(Z), label, dtype=np.int64)
        X = self.locked(self.est.decode, np.asarray(Z, dtype=np.float32), y)
        if not np.isfinite(X).all():
            # A finite but huge code (3.4e38) can overflow the decoder's float32 arithmetic. Its image or
            # values would be garbage (NaN as black pixels, or no JSON at all), so it is a bad request.
            # Where the decoder only saturates (a Bernoulli's pixels at 0 or 1), the answer stands.
            raise RequestError("this code decodes to infinite or NaN values (it lies far beyond the codes the model was trained on); "
                               "give values within each dimension's range in /info (dims: lo, hi)")
        return X

    def indices(self, X: np.ndarray) -> np.ndarray:
        """The codebook entry of each cell of each example's code grid (a discrete-code family), (N, rows, cols)."""
        return self.locked(self.est.indices, X)

    def decode_indices(self, G: np.ndarray) -> np.ndarray:
        """The images that index grids G (N, rows, cols) decode to, in data units, (N, *example shape)."""
        return self.locked(self.est.decode_indices, G)

    def kl_per_dimension(self, X: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        """Mean KL(q(z_j|x) || p(z_j)) over examples X for each dimension j, in nats."""
        from ..evaluate import kl_per_dimension

        return self.locked(kl_per_dimension, self.model, *self.tensors(X, y))

    def numbers(self, x: np.ndarray, x_scored: np.ndarray, c: np.ndarray | None, seed: int) -> tuple[dict, np.ndarray]:
        """One example's loss terms (see :meth:`Explorer.example`) and its reconstruction decode(encode(x)).

        ``x_scored``: x as the model is scored on it (binarized where it was trained on binary images);
        ``seed``: the Monte-Carlo numbers' seed, so that one example always shows the same numbers.
        """
        from ..evaluate import iw_log_likelihood

        Xt, yt = self.tensors(x_scored, c)
        out: dict = {}
        with self._lock, torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model.eval()
            if self.caps.density:
                out["posterior_std"] = posterior_std(self.model.inference(Xt, yt))
                terms = self.model.loss(Xt, yt, n_samples=ELBO_SAMPLES).terms
                out.update({k: float(terms[k][0]) for k in ("elbo", "log_likelihood", "kl")})
                out["iw_log_likelihood"] = float(iw_log_likelihood(self.model, Xt, yt, k=IW_K, seed=seed)[0])
                out["unit"] = "nats"
            else:
                result = self.model.loss(Xt, yt)
                out.update({k: float(v.reshape(-1)[0]) for k, v in result.terms.items()})
                out["unit"] = "nats" if result.unit.startswith("nats") else "squared error"
            recon = self.est.reconstruct(x, c)
        return out, recon

    def prior_samples(self, n: int, seed: int) -> np.ndarray:
        """n codes z ~ p(z), drawn from the model's own prior distribution (``model.prior()``) with ``seed``, (n, code_dim)."""
        with self._lock, torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model.eval()
            return self.model.prior().sample((n,)).double().cpu().numpy()

    def posterior(self, x: np.ndarray, c: np.ndarray | None, n_samples: int) -> dict:
        """q(z|x) of one example: ``std`` per dimension and ``samples``, ``n_samples`` draws z ~ q(z|x) (seeded).

        Either is None / empty where the posterior cannot give it (no finite or closed-form spread).
        """
        Xt, yt = self.tensors(x, c)
        out: dict = {"std": None, "samples": []}
        with self._lock, torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.model.eval()
            q = self.model.inference(Xt, yt)
            out["std"] = posterior_std(q)
            try:
                z = q.sample((n_samples,))[:, 0].double().cpu().numpy()
                out["samples"] = [[float(v) for v in row] for row in z if np.isfinite(row).all()]
            except (NotImplementedError, AttributeError):
                pass
        return out


def posterior_std(q) -> list[float | None] | None:
    """The standard deviation of the first example's q(z|x) per dimension (None where infinite); None without a closed form."""
    try:
        std = q.stddev[0].double().cpu().numpy()
    except (NotImplementedError, AttributeError):  # e.g. two stochastic layers: no closed-form spread
        return None
    return [float(v) if math.isfinite(v) else None for v in std]
