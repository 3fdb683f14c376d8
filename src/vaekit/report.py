"""The run report: one self-contained HTML page for a run folder.

It holds the configuration, the metrics of evaluate.py on the test split, the training curves and
every figure of plots.py that applies to the model, each embedded as a base64 PNG, so the page can
be mailed or opened from disk with nothing beside it.
"""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path

import numpy as np

from .errors import VaekitError
from .options import applicable

REPORT_FILE = "report.html"
REPORT_K = 100  # importance samples in the report: fast; `vaekit evaluate --k 5000` gives the reportable number
REPORT_IW_LIMIT = 1000  # test examples that get the importance-weighted estimate in the report
# ... for the convolutional model. Its decoder costs about 80 times the MLP's on a CPU, and the
# estimate decodes k x examples images: k=100 on 1000 took 3 minutes on the embedded sample, four
# times its 5-epoch training (profiled: conv_transpose2d and upsampling in iw_log_likelihood).
REPORT_IW_LIMIT_CONV = 100


def report_iw_limit(architecture: str) -> int:
    """How many test examples the report's importance-weighted estimate uses for a model."""
    return REPORT_IW_LIMIT_CONV if architecture == "conv" else REPORT_IW_LIMIT
REPORT_PROBE_LIMIT = 10000  # training examples the probes are fitted on in the report

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}.note{color:#8a5a00}code{background:#f4f4f4;padding:0 .2em}
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _table(rows: list[tuple[str, ...]], head: tuple[str, ...]) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f'<td class="num">{html.escape(c)}</td>' if i == 1 else f"<td>{html.escape(c)}</td>"
                                    for i, c in enumerate(r)) + "</tr>")
    return "\n".join(out) + "</table>"


def metrics_rows(r: dict) -> list[tuple[str, str, str]]:
    """The metrics of :func:`vaekit.evaluate.evaluate` as (name, value, unit and how) rows."""
    rows = [("examples", str(r["n"]), "test split"), ("binarization", "", r["binarization"])]
    if "elbo" in r:
        rows += [
            ("ELBO", f"{r['elbo']:.3f}", "nats per example (one z draw each)"),
            ("E_q[log p(x|z)]", f"{r['log_likelihood']:.3f}", "nats per example"),
            ("KL(q(z|x) || p(z))", f"{r['kl']:.3f}", "nats per example"),
            ("importance-weighted log p(x)", f"{r['iw_log_likelihood']:.3f}",
             f"nats per example, k={r['iw_k']} samples on {r['iw_n']} examples"),
            ("test NLL (-IW log p(x))", f"{r['iw_nll']:.3f}", f"nats per example, k={r['iw_k']}"),
        ]
    rows.append(("reconstruction MSE", f"{r['mse']:.5f}", f"per value ({r['sse']:.3f} summed per example), through the posterior mean"))
    if "bce" in r:
        rows.append(("reconstruction BCE", f"{r['bce']:.3f}", "nats per example"))
    if "active_units" in r:
        rows.append(("active units", f"{r['active_units']} / {r['latent_dim']}", "Cov_x(E_q[z_j]) > 0.01 (Burda et al. 2015)"))
    if "kl_per_dim" in r:
        rows.append(("KL per dimension", "", ", ".join(f"z{j}: {v:.2f}" for j, v in enumerate(r["kl_per_dim"])) + " nats"))
    if "probe_logreg_accuracy" in r:
        rows.append(("linear probe accuracy", f"{100 * r['probe_logreg_accuracy']:.2f} %",
                     f"logistic regression on codes, fitted on {r['probe_n_train']} training examples"))
        rows.append(("k-NN accuracy", f"{100 * r['probe_knn_accuracy']:.2f} %", "5 nearest neighbours on standardized codes"))
    return rows


def config_rows(cfg: dict, est) -> list[tuple[str, str, str]]:
    """(setting, value, meaning) of the options that have an effect on this model, then the run's data."""
    params = cfg["params"]
    rows = [("estimator", str(cfg.get("estimator")), "input shape " + " x ".join(map(str, cfg["input_shape"])))]
    for opt in applicable(params, est.kind):
        if opt.name in params and opt.name != "verbose":
            value = params[opt.name]
            shown = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            rows.append((opt.name, shown, opt.help))
    run = cfg.get("run", {})
    rows += [(f"run.{key}", str(v), "") for key, v in run.items() if key != "command"]
    return rows


def _figures(est, run: Path, test, metrics: dict | None, classes) -> list[tuple[str, str, object]]:
    """(heading, caption, zero-argument builder of a Figure) for every figure that applies."""
    from . import plots
    from .models import has_density

    is_vae = has_density(est.model_)
    cond = bool(getattr(est, "conditional", False))
    figs = []
    if (run / "metrics.csv").exists():
        unit = est.loss_unit
        figs.append(("Training curves", f"train and validation, each term, in {unit}",
                     lambda: plots.curves_figure(plots.read_metrics(run / "metrics.csv"), unit=unit)))
    try:
        plots.require_images(est)
        images = True
    except VaekitError:
        images = False
    if images and test is not None:
        figs.append(("Reconstructions", "test examples through the code (posterior mean)",
                     lambda: plots.reconstructions_figure(est, test.X, test.y)))
    if images and is_vae:
        figs.append(("Samples from the prior", plots.sample_caption(est) + (", one row per class" if cond else ""),
                     lambda: plots.samples_figure(est, classes=classes)))
        d = est.model_.config.latent_dim
        if d >= 2 and est.model_.config.standard_normal_prior:  # the grid walks N(0, I) quantiles
            dims = (0, 1)
            if d > 2 and metrics and "kl_per_dim" in metrics:
                dims = tuple(int(j) for j in np.argsort(metrics["kl_per_dim"])[::-1][:2])  # the two most used
            label = 0 if cond else None
            cap = ("decoded grid of z at Normal quantiles 0.05 ... 0.95" if d == 2 else
                   f"traversal of z{dims[0]} and z{dims[1]} (the two dimensions with most KL), others at 0")
            figs.append(("Learned manifold" if d == 2 else "Latent traversal", cap + (", class 0" if cond else ""),
                         lambda: plots.manifold_figure(est, dims=dims, label=label)))
    if test is not None and test.y is not None:
        figs.append(("Latent space", "posterior means of test examples coloured by class",
                     lambda: plots.latent_figure(est, test.X, test.y, classes=classes)))
        present = np.unique(test.y)
        if images and not cond and len(present) >= 2:
            a, b = (1, 7) if {1, 7} <= set(present.tolist()) else (int(present[0]), int(present[1]))
            figs.append(("Interpolation and latent arithmetic", f"between the mean codes of classes {a} and {b}; "
                         "each example re-rendered as every class", lambda: plots.interpolation_figure(est, test.X, test.y, a=a, b=b,
                                                                                                       classes=classes)))
    return figs


def _splits(meta: dict, test, train, probe_limit: int | None, notes: list[str]):
    """The run's test and train splits (those not given), noting in ``notes`` any that cannot be read."""
    from .data import load_dataset

    source = meta.get("dataset") or "embedded"
    out = {"test": test, "train": train}
    for split in ("test", "train"):
        if out[split] is not None:
            continue
        try:
            out[split] = load_dataset(source, split, data_dir=meta.get("data_dir"), label_column=meta.get("label_column"),
                                      limit=probe_limit if split == "train" else None)
        except VaekitError as e:
            notes.append(f"the {split} split of {source} could not be read ({e}); figures and metrics that need it are left out")
    return out["test"], out["train"]


def build_report(run: str | Path, out: str | Path | None = None, *, k: int = REPORT_K, iw_limit: int | None = -1,
                 probe_limit: int | None = REPORT_PROBE_LIMIT, test=None, train=None,
                 shown_as: str | Path | None = None) -> Path:
    """Write the HTML report of the run folder ``run`` (to ``run/report.html`` unless ``out``).

    ``shown_as``: the run's name on the page, when the report is written before the folder gets
    its final name (``vaekit train`` writes into a staging folder and renames it at the end).

    ``test`` / ``train``: Datasets to use instead of loading the run's dataset (the test split is
    scored; the train split fits the probes). Metrics use ``k`` importance samples on the first
    ``iw_limit`` test examples (-1: :func:`report_iw_limit` of the model; None: all), which the
    page states. Returns the path written.
    """
    from . import plots
    from .evaluate import evaluate
    from .fileio import atomic_path
    from .io import load
    from .modelfile import read_config

    run = Path(run)
    cfg = read_config(run)
    est = load(run)
    meta = cfg.get("run", {})
    if iw_limit == -1:
        iw_limit = report_iw_limit(cfg["model"].get("architecture", "mlp"))
    notes: list[str] = []
    test, train = _splits(meta, test, train, probe_limit, notes)
    classes = meta.get("classes") or (test.classes if test is not None else None)
    metrics = None
    if test is not None:
        try:
            cond_y = test.y if getattr(est, "conditional", False) else None
            if getattr(est, "conditional", False) and test.y is None:
                raise VaekitError("a conditional model needs labelled test data")
            ytr = None if train is None else train.y
            Xtr = None if train is None else train.X[:probe_limit]
            metrics = evaluate(est, test.X, test.y if test.y is not None else cond_y, X_train=Xtr,
                               y_train=None if ytr is None else ytr[:probe_limit], k=k, iw_limit=iw_limit)
        except VaekitError as e:
            notes.append(f"metrics could not be computed: {e}")

    shown = Path(shown_as) if shown_as is not None else run
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>vaekit report: {html.escape(shown.name)}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>vaekit run report: {html.escape(shown.name)}</h1>",
             f"<p>Written {time.strftime('%Y-%m-%d %H:%M')} from <code>{html.escape(str(shown))}</code>. "
             f"Command: <code>{html.escape(meta.get('command', 'unknown'))}</code></p>"]
    for n in notes:
        parts.append(f'<p class="note">Note: {html.escape(n)}</p>')

    parts.append("<h2>Metrics</h2>")
    if metrics:
        parts.append(f"<p>On the test split of <b>{html.escape(test.name)}</b>. The importance-weighted numbers use "
                     f"<b>k={metrics.get('iw_k', k)}</b> samples on the first {metrics.get('iw_n', 0)} test examples to keep the "
                     f"report fast; for a number to set beside published ones run "
                     f"<code>vaekit evaluate {html.escape(str(shown))} --k 5000</code>.</p>"
                     if "iw_k" in metrics else f"<p>On the test split of <b>{html.escape(test.name)}</b>. "
                     "An autoencoder has no ELBO or likelihood; reconstruction error and probes only.</p>")
        parts.append(_table(metrics_rows(metrics), ("metric", "value", "unit / how")))
    else:
        parts.append("<p>No metrics (no test data).</p>")

    for heading, caption, build in _figures(est, run, test, metrics, classes):
        try:
            png = plots.figure_png(build())
        except VaekitError as e:
            parts.append(f'<h2>{html.escape(heading)}</h2><p class="note">Not drawn: {html.escape(str(e))}</p>')
            continue
        parts.append(f"<h2>{html.escape(heading)}</h2><figure>{_img(png, heading)}<figcaption>{html.escape(caption)}</figcaption></figure>")

    parts.append("<h2>Configuration</h2>")
    parts.append("<p>The options that apply to this model (every option is in config.json).</p>")
    parts.append(_table(config_rows(cfg, est), ("setting", "value", "meaning")))
    parts.append("</body></html>\n")
    path = Path(out) if out is not None else run / REPORT_FILE
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return path
