"""Detector folders: reading them (formats 1, written by 0.1.0, to writer.FORMAT_VERSION, every file
checked before use; nothing is unpickled) and, from :mod:`~vaekit.anomaly.writer`, writing them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..errors import ModelFileError
from .detectors import DETECTORS, _BaseDetector
from .options import COMBINABLE, DENSITY_METHODS
from .table import TablePreprocessor
from .writer import CONFIG_FILE, FORMAT, FORMAT_VERSION, MODEL_DIR, TENSORS_FILE, save_detector  # noqa: F401 - save and load in one place


def load_detector(path: str | Path, device: str = "cpu") -> _BaseDetector:
    """A detector saved by :func:`save_detector` (this version or 0.1.0); nothing is unpickled.

    Every file is checked; a damaged or foreign folder raises :class:`ModelFileError` with one line.
    """
    from ..atomicfiles import read_json
    from ..runfolder import load

    path = Path(path)
    where = path / CONFIG_FILE
    if not where.is_file():
        raise ModelFileError(f"{path} is not a vaekit detector folder (no {CONFIG_FILE}); write one with `vaekit detect fit --out {path}`")
    cfg = read_json(where)
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise ModelFileError(f"{where} is not a vaekit detector config (no \"format\": \"{FORMAT}\")")
    version = cfg.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ModelFileError(f"{where} has format version {version!r}; this vaekit reads 1 to {FORMAT_VERSION}")
    cls = DETECTORS.get(cfg.get("detector"))
    if cls is None:
        raise ModelFileError(f"{where}: unknown detector {cfg.get('detector')!r}; expected one of {', '.join(DETECTORS)}")
    det = cls()
    try:
        _restore_params(det, cfg, version, device)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFileError(f"{where} is damaged or hand-edited ({type(e).__name__}: {e}); "
                             "fit the detector again (vaekit detect fit) to replace it") from None
    det.estimator_ = load(path / MODEL_DIR, device=device)
    _restore_tensors(det, _read_tensors(path / TENSORS_FILE), path, version)
    n_model, n_pre = det.estimator_.n_features_in_, det.preprocessor_.n_outputs
    if n_model != n_pre:
        raise ModelFileError(f"{path}: the model takes {n_model} inputs but the columns in {CONFIG_FILE} make {n_pre}; "
                             "the files are from different detectors")
    det.labels_ = (det.decision_scores_ > det.threshold_).astype(np.int64)
    return det


def _restore_params(det: _BaseDetector, cfg: dict, version: int, device: str) -> None:
    params = dict(cfg["params"])
    if version == 1:
        # 0.1.0 detectors standardized inside the estimator (its saved scaler still does) and
        # trained for a number of epochs: the preprocessor only selects, imputes and one-hot encodes.
        params["scaling"] = "standard" if params.pop("standardize", True) else "none"
        params.pop("epochs", None)
    known = det.get_params()
    det.set_params(**{k: (tuple(v) if k == "hidden" else v) for k, v in params.items() if k in known})
    det.set_params(device=device)
    det.check_params()
    det.threshold_ = float(cfg["threshold"])
    if not math.isfinite(det.threshold_):
        raise ValueError(f"threshold {det.threshold_} is not finite")
    det.preprocessor_ = TablePreprocessor.from_json(cfg["preprocessor"] if version > 1 else _v1_preprocessor(cfg, det))
    terms = cfg.get("combined_terms")
    if det.method == "combined":
        names = tuple(terms["names"])
        allowed = [t for t in COMBINABLE if det.family.has_density or t not in DENSITY_METHODS]
        if not names or any(n not in allowed for n in names) or len(set(names)) != len(names):
            raise ValueError(f"combined_terms names {list(names)}; each must be one of {allowed}, once")
        det.combined_terms_ = names
        det.term_location_ = np.asarray(terms["location"], dtype=np.float64).reshape(len(names))
        det.term_scale_ = np.asarray(terms["scale"], dtype=np.float64).reshape(len(names))
        if not (np.isfinite(det.term_location_).all() and (det.term_scale_ > 0).all()):
            raise ValueError("combined_terms must hold finite locations and positive scales")


def _v1_preprocessor(cfg: dict, det: _BaseDetector) -> dict:
    """The preprocessor JSON equivalent to a 0.1.0 detector.json (imputation medians come from its tensors)."""
    return {"categorical": det.categorical, "impute": bool(det.impute), "scaling": "none",
            "feature_names": cfg.get("feature_names"), "numeric_columns": list(cfg["numeric_columns"]),
            "categories": cfg.get("categories") or {}, "impute_values": [0.0] * len(cfg["numeric_columns"]) if det.impute else None,
            "center": None, "scale": None}


def _restore_tensors(det: _BaseDetector, tensors: dict, path: Path, version: int) -> None:
    latent = det.estimator_.model_.config.latent_dim
    det.decision_scores_ = _expect(tensors, "decision_scores", lambda s: len(s) == 1 and s[0] > 0, path).numpy().astype(np.float64)
    if "calibration_scores" in tensors:  # written from this version on, for novelty detectors that held rows out
        det.calibration_scores_ = _expect(tensors, "calibration_scores", lambda s: len(s) == 1 and s[0] > 0, path).numpy().astype(np.float64)
    density = det.family.has_density
    needs = {"eps": density and det.method in ("combined", *DENSITY_METHODS),
             "cluster_centers": det.method == "latent", "reference_codes": det.method in ("knn", "combined"),
             "reference_rows": det.method == "combined" and "knn_input" in det._combined_terms}
    if (needs["eps"] or "eps" in tensors) and density:
        det.eps_ = _expect(tensors, "eps", lambda s: s == (int(det.n_score_samples), latent), path).numpy()
    if needs["cluster_centers"]:
        det.cluster_centers_ = _expect(tensors, "cluster_centers", lambda s: len(s) == 2 and s[1] == latent, path).numpy()
    if needs["reference_codes"] or "reference_codes" in tensors:
        det.reference_codes_ = _expect(tensors, "reference_codes", lambda s: len(s) == 2 and s[0] > 0 and s[1] == latent, path).numpy()
    if needs["reference_rows"] or "reference_rows" in tensors:
        n_in = det.preprocessor_.n_outputs
        det.reference_rows_ = _expect(tensors, "reference_rows", lambda s: len(s) == 2 and s[0] > 0 and s[1] == n_in, path).numpy()
    if version == 1 and det.impute:
        n = len(det.preprocessor_.numeric_columns_)
        det.preprocessor_.impute_values_ = _expect(tensors, "impute_values", lambda s: s == (n,), path).numpy().astype(np.float64).tolist()


def _read_tensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not file.is_file():
        raise ModelFileError(f"{file} not found; the detector folder is incomplete")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{file} is not a readable safetensors file ({e}); vaekit never loads pickles, so re-save the detector") from None


def _expect(tensors: dict, key: str, shape_ok, path: Path) -> torch.Tensor:
    t = tensors.get(key)
    if t is None:
        raise ModelFileError(f"{path / TENSORS_FILE} lacks the tensor {key!r}; the detector folder is damaged")
    if not shape_ok(tuple(t.shape)) or not torch.isfinite(t).all():
        raise ModelFileError(f"{path / TENSORS_FILE}: tensor {key!r} has shape {tuple(t.shape)} or non-finite values that do not fit this detector")
    return t


