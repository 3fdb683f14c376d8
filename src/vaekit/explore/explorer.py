"""What the explorer page shows of one trained model and a sample of its data.

:class:`Explorer` holds a fitted estimator, up to a few thousand examples and their codes, and
answers the questions the page (and anyone scripting the HTTP API) asks, in typed Python: the
codes and labels, E[x|z] for codes, the numbers of one example, an interpolation strip, a
drawing's posterior. It knows nothing of HTTP: ``routes.py`` parses requests into these calls,
and :class:`RequestError` is how a bad request is told apart from a bug.

Around it: ``capabilities.py`` (what the page can show of this model, from its components),
``model_calls.py`` (the model through its contract, under one lock), ``latent.py`` (each latent
dimension's facts), ``grid.py`` (a VQ-VAE's code grid), ``info.py`` (``/info``), ``images.py`` (PNGs) and ``loading.py`` (run folders).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from . import loading
from .capabilities import capabilities_of
from .errors import RequestError
from .grid import CodeGrid
from .images import image_shape, strip_png
from .info import build_info
from .latent import latent_facts
from .limits import DRAW_SAMPLES, MAX_POINTS
from .model_calls import ModelCalls

__all__ = ["Explorer", "RequestError"]


class Explorer:
    """The state behind ``vaekit explore``: a fitted estimator, examples, codes, per-dimension facts.

    ``est``: a fitted :class:`vaekit.VAE` or :class:`vaekit.Autoencoder`. ``data``: a
    :class:`vaekit.data.Dataset` (its first ``max_points`` examples are used). ``name``: what the
    page calls the run. ``classes``: names of the label values, when known. ``split``: which split
    of the data these are, for the page's summary line. ``caps``: what the page can show of the
    model (:class:`~vaekit.explore.capabilities.Capabilities`).
    """

    def __init__(self, est, data, *, name: str = "model", classes: list[str] | None = None,
                 max_points: int = MAX_POINTS, command: str | None = None, feature_names: list[str] | None = None,
                 split: str | None = None):
        from ..evaluate import binarize_for_eval

        est.check_fitted()
        self.est, self.model = est, est.model_
        self.name, self.command, self.data_name, self.split = name, command, data.name, split
        self.caps = capabilities_of(est)
        self.calls = ModelCalls(est, self.caps)
        self.n_classes = int(est.n_classes_) if self.caps.conditional else 0
        self.code_dim = int(self.model.config.code_dim)
        X = np.asarray(data.X[:max_points], dtype=np.float32)
        y = None if data.y is None else np.asarray(data.y[:max_points], dtype=np.int64)
        if self.caps.conditional and y is None:
            raise DataError(f"this is a conditional model, which needs labels, but {data.name} has none; "
                            "pass a labelled --dataset (--label-column for a table)")
        self.X, self.y = X, y
        self.shape = tuple(int(s) for s in est.input_shape_)
        self.image_shape = image_shape(self.shape)
        self.feature_names = None if self.image_shape else (list(feature_names) if feature_names else [f"x{j}" for j in range(self.shape[0])])
        self.codes = self.calls.encode(X, y)
        self.classes = _class_names(classes, y, self.n_classes)
        # A model trained on binarized images is scored on a fixed binarization (as `vaekit evaluate` does).
        self._X_scored, self.binarization = binarize_for_eval(est, X)
        kl = self.calls.kl_per_dimension(self._X_scored, y) if self.caps.kl_per_dimension else None
        # Class means of the codes: interpolation and latent arithmetic as the course shows them.
        # A conditional model takes the class as an input, so the mean code of a class means nothing there.
        self.facts = latent_facts(self.codes, y, kl, has_prior=self.caps.density, class_means=not self.caps.conditional)
        self.grid = CodeGrid(self)  # a VQ-VAE's grid of codebook entries (refuses, in one line, for any other model)

    @classmethod
    def from_run(cls, run: str | Path, *, dataset: str | None = None, data_dir: str | None = None, split: str = "test",
                 label_column: str | None = None, limit: int | None = None) -> Explorer:
        """An explorer over a run folder (``vaekit train`` or ``model.save``) and the data it was trained on.

        A folder written by ``vaekit detect fit`` is explored on the table ``dataset`` (.csv or
        .parquet), through the detector's preprocessing. ``dataset`` / ``data_dir`` / ``label_column``
        override what the run's config.json records; ``limit`` is the number of examples put on the
        plane (default :data:`~vaekit.explore.limits.MAX_POINTS`).
        """
        est, data, options = loading.from_run(run, dataset=dataset, data_dir=data_dir, split=split,
                                              label_column=label_column, limit=limit)
        return cls(est, data, **options)

    # -- shorthands for what the routes and tests read ------------------------------------------
    @property
    def class_means(self) -> dict[int, np.ndarray]:
        return self.facts.class_means

    def info(self) -> dict:
        """Everything static about the model and the data that the page lays itself out with (see :mod:`.info`)."""
        return build_info(self)

    def codes_json(self) -> dict:
        """The codes (posterior means) of the examples and their labels."""
        return {"codes": np.round(self.codes.astype(np.float64), 5).tolist(),
                "labels": None if self.y is None else self.y.tolist()}

    # -- what the page asks ---------------------------------------------------------------------
    def decode(self, Z: np.ndarray, label: int | None = None) -> np.ndarray:
        """E[x|z] for codes Z of shape (N, code_dim), in data units, shaped (N, *example shape)."""
        return self.calls.decode(Z, label)

    def example(self, i: int) -> dict:
        """What the model does to example i: its code, posterior spread, loss terms and log p(x).

        With a density: ``elbo``, ``log_likelihood`` (E_q[log p(x|z)]) and ``kl`` averaged over
        :data:`ELBO_SAMPLES` draws of z, and ``iw_log_likelihood`` with :data:`IW_K` importance
        samples, all in nats; ``posterior_std`` per dimension (None where the family has no finite
        standard deviation). Without (an autoencoder): its training loss terms (nats, or squared
        error for a Gaussian/MSE one, see ``unit``). Tables also get the values and their reconstruction.
        """
        x = self.X[i : i + 1]
        y = None if self.y is None else self.y[i : i + 1]
        c = y if self.caps.conditional else None
        out: dict = {"index": i, "label": None if y is None else int(y[0]), "code": [float(v) for v in self.codes[i]],
                     "binarization": self.binarization}
        numbers, recon = self.calls.numbers(x, self._X_scored[i : i + 1], c, seed=i)  # seeded: the same example, the same numbers
        out.update(numbers)
        out["mse"] = float(((recon - x) ** 2).mean())
        if not self.image_shape:
            out["x"] = [float(v) for v in x.reshape(-1)]
            out["reconstruction"] = [float(v) for v in recon.reshape(-1)]
        return out

    def encode_drawing(self, x: np.ndarray, label: int | None = None) -> dict:
        """The posterior q(z|x) of one image x (shape (1, *example shape)), as the plane draws it.

        ``mean``: the code, as :meth:`vaekit.VAE.encode` gives it (the dots on the plane are these);
        with a posterior spread: ``std`` per dimension (``None`` where the posterior family has no
        finite standard deviation) and ``samples``, :data:`DRAW_SAMPLES` draws z ~ q(z|x) (seeded, so
        the same drawing always shows the same samples). An autoencoder's code is one point: no std, no samples.
        """
        c = None if label is None else np.array([label], dtype=np.int64)
        code = self.calls.encode(x, c)[0]
        out: dict = {"mean": [float(v) for v in code], "std": None, "samples": [], "posterior": None}
        if self.caps.posterior_spread:
            out["posterior"] = self.model.config.posterior["name"]
            out.update(self.calls.posterior(x, c, DRAW_SAMPLES))
        return out

    def prior_samples(self, n: int, seed: int = 0) -> np.ndarray:
        """n codes drawn from the prior p(z) (the same ``seed``, the same codes), shape (n, code_dim)."""
        if not self.caps.prior_samples:
            raise RequestError(f"this {self.caps.title} has no prior p(z) to draw codes from; pick a point on the plane instead")
        return self.calls.prior_samples(n, seed)

    # -- images ----------------------------------------------------------------------------------
    def require_images(self) -> None:
        if not self.image_shape:
            raise RequestError(f"this model's data are a table ({self.shape[0]} features), not images; ask /decode.json for the values")

    def image_png(self, i: int) -> bytes:
        """Example i as stored, as a PNG."""
        self.require_images()
        return strip_png(self.X[i : i + 1], self.shape)

    def decode_png(self, Z: np.ndarray, label: int | None = None, *, every_label: bool = False) -> bytes:
        """E[x|z] as a PNG: one image per code side by side; ``every_label``: one code under every label."""
        self.require_images()
        if every_label:
            if len(Z) != 1:
                raise RequestError("label=all decodes one code under every label; give one code, not several")
            return strip_png(np.concatenate([self.decode(Z, k) for k in range(self.n_classes)]), self.shape)
        return strip_png(self.decode(Z, label), self.shape)

    def interpolation_png(self, a: np.ndarray, b: np.ndarray, steps: int, label: int | None = None) -> bytes:
        """The decoded codes on the straight line from a to b, (1 - t) a + t b for t = 0, 1/(steps-1), ..., 1, as a strip."""
        self.require_images()
        t = np.linspace(0.0, 1.0, steps)[:, None]
        return strip_png(self.decode(((1 - t) * a[None] + t * b[None]).astype(np.float32), label), self.shape)


def _class_names(classes: list[str] | None, y: np.ndarray | None, n_classes: int) -> list[str]:
    """A name per label value (the model's classes and those present in y): the given names where they cover them, else numbers."""
    present = [] if y is None else sorted(int(k) for k in np.unique(y))
    n_names = max([n_classes, (present[-1] + 1) if present else 0])
    return [str(c) for c in classes][:n_names] if classes and len(classes) >= n_names else [str(k) for k in range(n_names)]
