"""What the explorer page shows of one trained model and a sample of its data.

:class:`Explorer` holds a fitted estimator, up to a few thousand examples and their codes, and
answers the questions the page (and anyone scripting the HTTP API) asks: the codes and labels,
E[x|z] for a code typed or pointed at, the numbers of one example, an interpolation strip. It
knows nothing of HTTP: the server in ``server.py`` parses requests into these calls, and
:class:`RequestError` is how a bad request is told apart from a bug.

It works through the estimator's public contract (``encode``, ``decode``, ``reconstruct``) and the
functions of :mod:`vaekit.evaluate`; model calls are serialized by one lock, so several browser
tabs (threads) can use one model.
"""

from __future__ import annotations

import math
import re
import threading
from pathlib import Path

import numpy as np
import torch

from ..anomaly.detectors import CONFIG_FILE as DETECTOR_CONFIG  # what marks a folder written by `vaekit detect fit`
from ..errors import DataError, VaekitError
from .limits import DRAW_SAMPLES, ELBO_SAMPLES, IW_K, MAX_CODES, MAX_POINTS, MAX_STEPS, VAE_RANGE
from .png import encode_png


class RequestError(VaekitError):
    """A bad request to the explorer (HTTP 400), with a one-line message naming the problem and the fix."""


class Explorer:
    """The state behind ``vaekit explore``: a fitted estimator, examples, codes, per-dimension facts.

    ``est``: a fitted :class:`vaekit.VAE` or :class:`vaekit.Autoencoder`. ``data``: a
    :class:`vaekit.data.Dataset` (its first ``max_points`` examples are used). ``name``: what the
    page calls the run. ``classes``: names of the label values, when known. ``split``: which split
    of the data these are, for the page's summary line.
    """

    def __init__(self, est, data, *, name: str = "model", classes: list[str] | None = None,
                 max_points: int = MAX_POINTS, command: str | None = None, feature_names: list[str] | None = None,
                 split: str | None = None):
        from ..evaluate import active_units, binarize_for_eval, kl_per_dimension, latent_variances

        est.check_fitted()
        self.est = est
        self.model = est.model_
        self.name = name
        self.command = command
        self.is_vae = self.model.family.has_density
        self.conditional = bool(getattr(est, "conditional", False))
        self.n_classes = int(getattr(est, "n_classes_", 0)) if self.conditional else 0
        self.code_dim = int(self.model.config.code_dim)
        self.data_name = data.name
        self.split = split
        X = np.asarray(data.X[:max_points], dtype=np.float32)
        y = None if data.y is None else np.asarray(data.y[:max_points], dtype=np.int64)
        if self.conditional and y is None:
            raise DataError(f"this is a conditional model, which needs labels, but {data.name} has none; "
                            "pass a labelled --dataset (--label-column for a table)")
        self.X, self.y = X, y
        self.shape = tuple(int(s) for s in est.input_shape_)
        self.image_shape = _image_shape(self.shape)
        self.feature_names = None if self.image_shape else (list(feature_names) if feature_names else [f"x{j}" for j in range(self.shape[0])])
        self._lock = threading.Lock()
        self.codes = self._locked(est.encode, X, y if self.conditional else None)
        present = [] if y is None else sorted(int(k) for k in np.unique(y))
        n_names = max([self.n_classes, (present[-1] + 1) if present else 0])
        self.classes = [str(c) for c in classes][:n_names] if classes and len(classes) >= n_names else [str(k) for k in range(n_names)]
        # A model trained on binarized images is scored on a fixed binarization (as `vaekit evaluate` does).
        self._X_scored, self.binarization = binarize_for_eval(est, X)
        self.variance = latent_variances(self.codes)
        self.kl = None
        if self.is_vae and self.model.config.prior_component.standard_normal:
            Xt, yt = self._tensors(self._X_scored, y)
            self.kl = self._locked(kl_per_dimension, self.model, Xt, yt)
        self.active = active_units(self.codes) if self.is_vae else None
        # Dimensions in order of use: KL where the prior factorizes, else the variance of the codes.
        key = self.kl if self.kl is not None else self.variance
        self.order = [int(j) for j in np.argsort(-np.asarray(key), kind="stable")]
        lo, hi = np.percentile(self.codes, 0.5, axis=0), np.percentile(self.codes, 99.5, axis=0)
        margin = 0.1 * np.maximum(hi - lo, 1e-3)
        lo, hi = lo - margin, hi + margin
        if self.is_vae:
            lo, hi = np.minimum(lo, -VAE_RANGE), np.maximum(hi, VAE_RANGE)
        self.lo, self.hi = lo.astype(np.float64), hi.astype(np.float64)
        # Class means of the codes: interpolation and latent arithmetic as the course shows them.
        # A conditional model takes the class as an input, so the mean code of a class means nothing there.
        self.class_means = {}
        if y is not None and not self.conditional:
            self.class_means = {k: self.codes[y == k].mean(0) for k in present}

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def from_run(cls, run: str | Path, *, dataset: str | None = None, data_dir: str | None = None, split: str = "test",
                 label_column: str | None = None, limit: int | None = None) -> Explorer:
        """An explorer over a run folder (``vaekit train`` or ``model.save``) and the data it was trained on.

        ``dataset`` / ``data_dir`` / ``label_column`` override what the run's config.json records;
        ``limit`` is the number of examples put on the plane (default :data:`MAX_POINTS`).
        """
        from ..data import load_run_dataset
        from ..io import load
        from ..modelfile import read_config

        run = Path(run)
        if (run / DETECTOR_CONFIG).is_file():
            return cls._from_detector(run, dataset, label_column, limit)
        cfg = read_config(run)
        if cfg["part"] != "all":
            raise VaekitError(f"{run} holds only the {cfg['part']} of a model; explore needs both halves (save with part='all')")
        est = load(run)
        meta = cfg.get("run", {})
        data = load_run_dataset(meta, split, source=dataset, data_dir=data_dir, label_column=label_column, limit=limit or MAX_POINTS)
        if tuple(data.shape) != tuple(est.input_shape_):
            raise DataError(f"{run} was trained on examples of shape {tuple(est.input_shape_)} but {data.name} has {data.shape}; "
                            "pass the training data with --dataset (and --data-dir)")
        classes = meta.get("classes") or data.classes
        return cls(est, data, name=run.name or str(run), classes=classes, max_points=limit or MAX_POINTS,
                   command=meta.get("command"), split=split)

    @classmethod
    def _from_detector(cls, path: Path, dataset: str | None, label_column: str | None, limit: int | None) -> Explorer:
        """An explorer over an anomaly detector's network, on the first rows of the table ``dataset``.

        The rows go through the detector's own preprocessing (one-hot categories, imputation), so
        the plane shows what its network sees; ``label_column`` (e.g. 0/1 anomaly labels) colours them.
        """
        import pandas as pd

        from ..anomaly import load_detector
        from ..data import Dataset

        det = load_detector(path)
        if dataset is None:
            raise DataError(f"{path} is an anomaly detector, which does not record its data; pass the table with --dataset FILE.csv")
        file = Path(dataset).expanduser()
        if file.suffix.lower() not in (".csv", ".parquet") or not file.is_file():
            raise DataError(f"--dataset {dataset}: a detector is explored on a .csv or .parquet file that exists; check the path")
        n = limit or MAX_POINTS
        df = pd.read_csv(file, nrows=n) if file.suffix.lower() == ".csv" else pd.read_parquet(file).head(n)
        y = None
        if label_column is not None:
            if label_column not in df.columns:
                raise DataError(f"{file}: no column named {label_column!r}; columns are {[str(c) for c in df.columns][:20]}")
            y = pd.to_numeric(df.pop(label_column), errors="coerce").to_numpy()
            if not np.isfinite(y).all() or (y != np.round(y)).any() or (y < 0).any():
                raise DataError(f"{file}: --label-column {label_column} must hold class numbers 0, 1, ... (e.g. 1 = anomaly)")
            y = y.astype(np.int64)
        # The detector's preprocessing: the matrix its network was trained on (its estimator scales further itself).
        X = det.preprocessor_.transform(df, who=type(det).__name__)
        names = [str(c) for c in det.preprocessor_.numeric_columns_]
        for col, levels in (getattr(det, "categories_", None) or {}).items():
            names += [f"{col}={level}" for level in levels]
        return cls(det.estimator_, Dataset(X, y, file.name), name=path.name or str(path), max_points=n,
                   classes=["normal", "anomaly"] if y is not None and y.max() <= 1 else None, feature_names=names)

    # -- model calls ---------------------------------------------------------------------------
    def _locked(self, fn, *args, **kwargs):
        with self._lock, torch.no_grad():
            return fn(*args, **kwargs)

    def _tensors(self, X: np.ndarray, y: np.ndarray | None):
        Xt = torch.from_numpy(self.est.prepare_X(X)).to(self.est.device_)
        yt = None if (y is None or not self.conditional) else torch.from_numpy(y).to(self.est.device_)
        return Xt, yt

    def decode(self, Z: np.ndarray, label: int | None = None) -> np.ndarray:
        """E[x|z] for codes Z of shape (N, code_dim), in data units, shaped (N, *example shape)."""
        y = None if label is None else np.full(len(Z), label, dtype=np.int64)
        X = self._locked(self.est.decode, np.asarray(Z, dtype=np.float32), y)
        if not np.isfinite(X).all():
            # A finite but huge code (3.4e38) can overflow the decoder's float32 arithmetic. Its image or
            # values would be garbage (NaN as black pixels, or no JSON at all), so it is a bad request.
            # Where the decoder only saturates (a Bernoulli's pixels at 0 or 1), the answer stands.
            raise RequestError("this code decodes to infinite or NaN values (it lies far beyond the codes the model was trained on); "
                               "give values within each dimension's range in /info (dims: lo, hi)")
        return X

    # -- parsing requests ----------------------------------------------------------------------
    def parse_codes(self, text: str | None) -> np.ndarray:
        """Codes from ``z1,z2,...`` (several separated by ``;``): shape (N, code_dim), finite, or a RequestError."""
        if text is None or not text.strip():
            raise RequestError(f"give a code: z= with {self.code_dim} comma-separated numbers, e.g. z={','.join(['0'] * self.code_dim)}")
        rows = text.split(";")
        if len(rows) > MAX_CODES:
            raise RequestError(f"at most {MAX_CODES} codes per request, got {len(rows)}; split the request")
        out = np.empty((len(rows), self.code_dim), dtype=np.float32)
        for r, row in enumerate(rows):
            parts = row.split(",")
            if len(parts) != self.code_dim:
                raise RequestError(f"a code of this model has {self.code_dim} values, got {len(parts)} in {row[:60]!r}; give z1,...,z{self.code_dim}")
            for j, part in enumerate(parts):
                try:
                    v = float(part)
                except ValueError:
                    raise RequestError(f"z value {j + 1} is not a number: {part[:30]!r}; give decimal numbers like 0.5 or -1.2e-1") from None
                if not math.isfinite(v) or abs(v) > 3.4e38:
                    raise RequestError(f"z value {j + 1} is {part[:30]!r}; NaN and infinite values cannot be decoded, give finite numbers")
                out[r, j] = v
        return out

    def parse_label(self, text: str | None, *, allow_all: bool = False) -> int | str | None:
        """A class label for a conditional model (``all`` where allowed), None otherwise; or a RequestError."""
        if text is None or text == "":
            if self.conditional:
                also = " or label=all" if allow_all else ""
                raise RequestError(f"this model is conditional: add label=K with K in 0..{self.n_classes - 1}{also}")
            return None
        if not self.conditional:
            raise RequestError(f"label={text[:20]} applies only to a conditional model; this one has no label input, drop label=")
        if allow_all and text == "all":
            return "all"
        try:
            k = int(text)
        except ValueError:
            k = -1
        if not 0 <= k < self.n_classes:
            raise RequestError(f"unknown label {text[:20]!r}; this model's labels are 0..{self.n_classes - 1}" + (" or all" if allow_all else ""))
        return k

    def parse_index(self, text: str | None, what: str = "i") -> int:
        """An example index 0..N-1, or a RequestError."""
        try:
            i = int(text) if text is not None else -1
        except ValueError:
            i = -1
        if not 0 <= i < len(self.X):
            raise RequestError(f"{what}={str(text)[:20]!r} is not an example; give an index 0..{len(self.X) - 1}")
        return i

    def parse_endpoint(self, text: str | None, what: str) -> np.ndarray:
        """The code of an interpolation end: an example index ``17`` or a class mean ``class:3``."""
        if text is not None and text.startswith("class:"):
            if not self.class_means:
                why = "a conditional model's classes are an input, not a region of z" if self.conditional else "the data have no labels"
                raise RequestError(f"{what}={text[:20]}: no class means here ({why}); give an example index instead")
            try:
                k = int(text[6:])
            except ValueError:
                k = -1
            if k not in self.class_means:
                raise RequestError(f"{what}={text[:20]}: no examples of that class; choose class:K with K in {sorted(self.class_means)}")
            return self.class_means[k]
        return self.codes[self.parse_index(text, what)]

    # -- what the page asks ---------------------------------------------------------------------
    def info(self) -> dict:
        """Everything static about the model and the data that the page lays itself out with."""
        cfg = self.model.config
        dims = []
        for j in range(self.code_dim):
            dims.append({
                "index": j, "kl": None if self.kl is None else float(self.kl[j]), "variance": float(self.variance[j]),
                "active": None if self.active is None else bool(self.active[j]), "lo": float(self.lo[j]), "hi": float(self.hi[j]),
            })
        return {
            "name": self.name, "command": self.command,
            "model": {
                "kind": "vae" if self.is_vae else "autoencoder", "architecture": cfg.architecture, "likelihood": self.est.likelihood,
                "hidden": list(cfg.hidden), "latent_dim": int(cfg.latent_dim), "code_dim": self.code_dim,
                "conditional": self.conditional, "n_classes": self.n_classes, "prior": self.est.prior if self.is_vae else None,
                "standard_normal_prior": bool(self.is_vae and cfg.prior_component.standard_normal),
            },
            "data": {
                "name": self.data_name, "split": self.split, "n": len(self.X), "shape": list(self.shape),
                "kind": "image" if self.image_shape else "table", "image_shape": None if not self.image_shape else list(self.image_shape),
                "labelled": self.y is not None, "binarization": self.binarization, "feature_names": self.feature_names,
                # Tables: the bars show standardized values, (x - mean) / scale, so features compare.
                "scaler": None if getattr(self.est, "scaler_mean_", None) is None else {
                    "mean": self.est.scaler_mean_.reshape(-1).tolist(), "scale": self.est.scaler_scale_.reshape(-1).tolist()},
            },
            "classes": self.classes,
            # A 2-D model's plane is z itself (z0 across, z1 up); above 2-D, the two most used dimensions.
            "dims": dims, "order": self.order, "plane": [0, 1] if self.code_dim == 2 else self.order[:2] if self.code_dim > 2 else [0],
            "ordered_by": "kl" if self.kl is not None else "variance",
            "class_means": {str(k): [round(float(v), 5) for v in m] for k, m in self.class_means.items()},
            "iw_k": IW_K if self.is_vae else None, "elbo_samples": ELBO_SAMPLES if self.is_vae else None,
            "limits": {"max_codes": MAX_CODES, "max_steps": MAX_STEPS},
        }

    def codes_json(self) -> dict:
        """The codes (posterior means) of the examples and their labels."""
        return {"codes": np.round(self.codes.astype(np.float64), 5).tolist(),
                "labels": None if self.y is None else self.y.tolist()}

    def example(self, i: int) -> dict:
        """What the model does to example i: its code, posterior spread, loss terms and log p(x).

        VAE: ``elbo``, ``log_likelihood`` (E_q[log p(x|z)]) and ``kl`` averaged over
        :data:`ELBO_SAMPLES` draws of z, and ``iw_log_likelihood`` with :data:`IW_K` importance
        samples, all in nats; ``posterior_std`` per dimension (None where the family has no finite
        standard deviation). Autoencoder: its training loss terms (nats, or squared error for a
        Gaussian/MSE one, see ``unit``). Tables also get the values and their reconstruction.
        """
        from ..evaluate import iw_log_likelihood

        x = self.X[i : i + 1]
        y = None if self.y is None else self.y[i : i + 1]
        c = y if self.conditional else None
        out: dict = {"index": i, "label": None if y is None else int(y[0]), "code": [float(v) for v in self.codes[i]],
                     "binarization": self.binarization}
        Xt, yt = self._tensors(self._X_scored[i : i + 1], c)
        with self._lock, torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(i)  # the same example always shows the same Monte-Carlo numbers
            self.model.eval()
            if self.is_vae:
                q = self.model.inference(Xt, yt)
                try:
                    std = q.stddev[0].double().cpu().numpy()
                    out["posterior_std"] = [float(v) if math.isfinite(v) else None for v in std]
                except (NotImplementedError, AttributeError):  # e.g. two stochastic layers: no closed-form spread
                    out["posterior_std"] = None
                terms = self.model.loss(Xt, yt, n_samples=ELBO_SAMPLES).terms
                out.update({k: float(terms[k][0]) for k in ("elbo", "log_likelihood", "kl")})
                out["iw_log_likelihood"] = float(iw_log_likelihood(self.model, Xt, yt, k=IW_K, seed=i)[0])
                out["unit"] = "nats"
            else:
                result = self.model.loss(Xt, yt)
                out.update({k: float(v.reshape(-1)[0]) for k, v in result.terms.items()})
                out["unit"] = "nats" if result.unit.startswith("nats") else "squared error"
            recon = self.est.reconstruct(x, c)
        out["mse"] = float(((recon - x) ** 2).mean())
        if not self.image_shape:
            out["x"] = [float(v) for v in x.reshape(-1)]
            out["reconstruction"] = [float(v) for v in recon.reshape(-1)]
        return out

    # -- images ----------------------------------------------------------------------------------
    def _images(self, X: np.ndarray) -> np.ndarray:
        from ..plots import as_images

        return as_images(np.asarray(X).reshape(len(X), *self.shape))

    def require_images(self) -> None:
        if not self.image_shape:
            raise RequestError(f"this model's data are a table ({self.shape[0]} features), not images; ask /decode.json for the values")

    def image_png(self, i: int) -> bytes:
        """Example i as stored, as a PNG."""
        self.require_images()
        return encode_png(self._images(self.X[i : i + 1])[0])

    def strip_png(self, X: np.ndarray) -> bytes:
        """Images side by side with a one-pixel white gap, as one PNG."""
        from ..plots import tile

        imgs = self._images(X)
        return encode_png(imgs[0] if len(imgs) == 1 else tile(imgs, len(imgs), pad=1)[1:-1, 1:-1])

    def decode_png(self, Z: np.ndarray, label: int | str | None = None) -> bytes:
        """E[x|z] as a PNG: one image per code side by side; ``label='all'``: one code under every label."""
        self.require_images()
        if label == "all":
            if len(Z) != 1:
                raise RequestError("label=all decodes one code under every label; give one code, not several")
            X = np.concatenate([self.decode(Z, k) for k in range(self.n_classes)])
        else:
            X = self.decode(Z, label)
        return self.strip_png(X)

    def interpolate(self, a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
        """Codes on the straight line from a to b: (1 - t) a + t b for t = 0, 1/(steps-1), ..., 1."""
        t = np.linspace(0.0, 1.0, steps)[:, None]
        return ((1 - t) * a[None] + t * b[None]).astype(np.float32)

    def parse_steps(self, text: str | None) -> int:
        try:
            s = int(text) if text is not None else 10
        except ValueError:
            s = -1
        if not 2 <= s <= MAX_STEPS:
            raise RequestError(f"steps={str(text)[:20]!r}: give a whole number of images from 2 to {MAX_STEPS}")
        return s


    # -- a drawing of one's own ------------------------------------------------------------------
    def parse_pixels(self, text: str | None) -> np.ndarray:
        """A drawn image from ``x=v1,v2,...``: one grey value in [0, 1] per value of an example, row by row.

        Strict: exactly as many values as an example has (H x W, times 3 for colour, in the
        model's own layout), each a plain decimal number (``0``, ``0.5``, ``1``, ``2e-3``) from 0 to 1.
        Returns shape (1, *example shape), float32; anything else is a RequestError.
        """
        if not self.image_shape:
            raise RequestError(f"/encode.json encodes a drawn image, but this model's data are a table ({self.shape[0]} features)")
        n = math.prod(self.shape)
        what = " x ".join(str(s) for s in self.image_shape)
        if text is None or not text.strip():
            raise RequestError(f"give the drawing: x= with {n} comma-separated grey values from 0 (black) to 1 (white), "
                               f"a {what} image row by row")
        parts = text.split(",")
        if len(parts) != n:
            raise RequestError(f"an image of this model has {n} values ({what}), got {len(parts)}; give x=v1,...,v{n}")
        out = np.empty(n, dtype=np.float32)
        for j, part in enumerate(parts):
            v = float(part) if _DECIMAL.fullmatch(part) else math.nan
            if not 0.0 <= v <= 1.0:  # also NaN: not a plain decimal number
                raise RequestError(f"pixel {j + 1} is {part[:30]!r}; give grey values from 0 (black) to 1 (white) as plain decimal numbers like 0.5")
            out[j] = v
        return out.reshape(1, *self.shape)

    def encode_drawing(self, x: np.ndarray, label: int | None = None) -> dict:
        """The posterior q(z|x) of one image x (shape (1, *example shape)), as the plane draws it.

        ``mean``: the code, as :meth:`vaekit.VAE.encode` gives it (the dots on the plane are these);
        VAE: ``std`` per dimension (``None`` where the posterior family has no finite standard
        deviation) and ``samples``, :data:`DRAW_SAMPLES` draws z ~ q(z|x) (seeded, so the same
        drawing always shows the same samples). An autoencoder's code is one point: no std, no samples.
        """
        c = None if label is None else np.array([label], dtype=np.int64)
        code = self._locked(self.est.encode, x, c)[0]
        out: dict = {"mean": [float(v) for v in code], "std": None, "samples": [],
                     "posterior": self.model.config.posterior["family"] if self.is_vae else None}
        if not self.is_vae:
            return out
        Xt, yt = self._tensors(x, c)
        with self._lock, torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.model.eval()
            q = self.model.inference(Xt, yt)
            try:
                std = q.stddev[0].double().cpu().numpy()
                out["std"] = [float(v) if math.isfinite(v) else None for v in std]
            except (NotImplementedError, AttributeError):  # e.g. two stochastic layers: no closed-form spread
                pass
            try:
                z = q.sample((DRAW_SAMPLES,))[:, 0].double().cpu().numpy()
                out["samples"] = [[float(v) for v in row] for row in z if np.isfinite(row).all()]
            except (NotImplementedError, AttributeError):
                pass
        return out


def _image_shape(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """(H, W) or (H, W, 3) when examples of this shape are images, else None (a table).

    (C, H, W) arrays are images; a flat vector is one when its length is a square of at least
    8 x 8 (a flattened 28 x 28 digit), since short square tables (4 or 9 features) are not pictures.
    """
    if len(shape) == 3:
        c, h, w = shape
        return (h, w) if c == 1 else (h, w, 3)
    if len(shape) == 1:
        side = math.isqrt(shape[0])
        if side * side == shape[0] and side >= 8:
            return (side, side)
    return None


# A plain decimal number: digits with an optional point and exponent; no sign, no "nan", "inf" or "1_0".
_DECIMAL = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
