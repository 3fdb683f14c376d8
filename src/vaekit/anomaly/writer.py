"""The detector folder format and its writer (the reader, with its checks: persistence.py).

A folder holds detector.json (the parameters, the threshold, the preprocessor, the combined
score's term scales), detector.safetensors (the training scores, the Monte-Carlo noise, the codes)
and model/ (the wrapped estimator's model folder). Nothing is pickled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

FORMAT = "vaekit-detector"
# 3: method="combined" may add the input-space neighbour term (its saved reference rows); an
# earlier reader would misread such a folder's term list, so it is refused there by the version.
# 4: n_neighbors may be 'auto' and the parameters hold novelty (an earlier reader would refuse 'auto'
# as a damaged folder; the version says why instead).
FORMAT_VERSION = 4
CONFIG_FILE = "detector.json"
TENSORS_FILE = "detector.safetensors"
MODEL_DIR = "model"
# Fitted attributes saved as tensors: attribute -> key in detector.safetensors.
TENSOR_ATTRS = (("eps_", "eps"), ("cluster_centers_", "cluster_centers"), ("reference_codes_", "reference_codes"),
                ("reference_rows_", "reference_rows"))


def save_detector(det, path: str | Path) -> Path:
    """Write the fitted detector ``det`` into the folder ``path``: detector.json (parameters, threshold,
    the preprocessor, term scales), detector.safetensors (training and held-out scores, noise, codes), model/."""
    from safetensors.torch import save_file

    from .. import __version__
    from ..atomicfiles import atomic_path, write_json

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    det.estimator_.save(path / MODEL_DIR)
    tensors = {"decision_scores": torch.from_numpy(np.ascontiguousarray(det.decision_scores_, dtype=np.float64))}
    if getattr(det, "calibration_scores_", None) is not None:  # the novelty threshold's held-out scores (predict_proba's reference)
        tensors["calibration_scores"] = torch.from_numpy(np.ascontiguousarray(det.calibration_scores_, dtype=np.float64))
    for attr, key in TENSOR_ATTRS:
        if getattr(det, attr, None) is not None:
            tensors[key] = torch.from_numpy(np.ascontiguousarray(getattr(det, attr), dtype=np.float32))
    with atomic_path(path / TENSORS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    terms = None
    if getattr(det, "term_location_", None) is not None:
        terms = {"names": list(det._combined_terms), "location": det.term_location_.tolist(), "scale": det.term_scale_.tolist()}
    write_json(path / CONFIG_FILE, {
        "format": FORMAT, "format_version": FORMAT_VERSION, "vaekit_version": __version__,
        "detector": type(det).__name__, "params": _jsonable(det.get_params()), "threshold": det.threshold_,
        "preprocessor": det.preprocessor_.to_json(), "combined_terms": terms,
    })
    return path


def _jsonable(params: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}
