"""``/info``: everything static about the model and the data that the page lays itself out with."""

from __future__ import annotations

import numpy as np

from .limits import ELBO_SAMPLES, IW_K, MAX_CODES, MAX_STEPS


def build_info(ex) -> dict:
    """The JSON of ``/info`` for an :class:`~vaekit.explore.explorer.Explorer`.

    ``capabilities`` (see :class:`~vaekit.explore.capabilities.Capabilities`) is what the page
    branches on; ``model`` describes the model for its summary line; ``dims`` holds each latent
    dimension's KL (nats), variance, activity and range.
    """
    cfg, caps, facts = ex.model.config, ex.caps, ex.facts
    return {
        "name": ex.name, "command": ex.command,
        "capabilities": caps.to_json(),
        "model": {
            "family": ex.model.family.name, "architecture": cfg.architecture, "likelihood": ex.est.likelihood,
            "hidden": list(cfg.hidden), "latent_dim": int(cfg.latent_dim), "code_dim": ex.code_dim,
            "conditional": caps.conditional, "n_classes": ex.n_classes,
        },
        "data": _data(ex),
        "classes": ex.classes,
        "dims": facts.dims_json(), "order": facts.order, "plane": facts.plane(),
        "ordered_by": "kl" if facts.kl is not None else "variance",
        "class_means": {str(k): [round(float(v), 5) for v in m] for k, m in facts.class_means.items()},
        "iw_k": IW_K if caps.density else None, "elbo_samples": ELBO_SAMPLES if caps.density else None,
        "limits": {"max_codes": MAX_CODES, "max_steps": MAX_STEPS},
        # A discrete-code family's grid: rows x cols cells, each one of codebook_size entries (vaekit.vq).
        "code_grid": ({"rows": int(cfg.grid[0]), "cols": int(cfg.grid[1]), "codebook_size": int(cfg.codebook_size)}
                      if caps.code_grid else None),
    }


def _data(ex) -> dict:
    scaler_mean = getattr(ex.est, "scaler_mean_", None)  # fitted only where the estimator standardizes
    return {
        "name": ex.data_name, "split": ex.split, "n": len(ex.X), "shape": list(ex.shape),
        "kind": "image" if ex.image_shape else "table", "image_shape": None if not ex.image_shape else list(ex.image_shape),
        "labelled": ex.y is not None, "binarization": ex.binarization, "feature_names": ex.feature_names,
        # Tables: the bars show standardized values, (x - mean) / scale, so features compare.
        "scaler": None if scaler_mean is None else {
            "mean": np.asarray(scaler_mean).reshape(-1).tolist(), "scale": np.asarray(ex.est.scaler_scale_).reshape(-1).tolist()},
    }
