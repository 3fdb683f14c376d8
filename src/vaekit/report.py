"""The run report: one self-contained HTML page for a run folder, written to teach.

Figures come first, in the order a course explains a VAE (training, encoder and decoder, the
generative model, the tightness of the bound), each with two caption lines: what it shows with the
formula behind it, and what to look for. Then the metrics of evaluate.py on the test split, then
the configuration, folded away. Images are embedded as base64 PNGs, so the page can be mailed or
opened from disk with nothing beside it.

:func:`build_comparison` writes one page for several runs: a rate-distortion view, reconstructions
side by side and a table of their numbers.
"""

from __future__ import annotations

import base64
import html
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError, VaekitError
from .options import applicable
from .registry import POSTERIORS

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
# Test examples the report scores: the whole test split of MNIST, Fashion-MNIST and the smaller sets, a
# bounded sample of a larger one (sprites' test split is 73 728 images; a --limit sample covers every factor).
REPORT_TEST_LIMIT = 10000
# A dataset with ground-truth factors is a generated grid of 64 x 64 images (sprites): the report scores, probes
# and draws a seeded sample of this many of each split (each of sprites' 32 positions about 60 times), the
# disentanglement scores included. 10 000 convolutional passes of every metric took 5 minutes and 4 GB.
REPORT_FACTORS_N = 2000
REPORT_GAP_N = 200  # test examples of the bound-against-k figure: ~13% of the work of the k=100 IW estimate
REPORT_GAP_K = 64  # its largest k (1, 2, 4, ... 64 from one draw of 64 samples per example)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#444;max-width:60em}figcaption span{display:block;margin:.2em 0}
h3{font-size:1.05em;margin-top:1.6em}p.intro{color:#333}p.meta{color:#666;font-size:.85em}nav{margin:1em 0;font-size:.95em}
p.explore{background:#f3f7ff;border-left:3px solid #4a7bd0;padding:.5em .8em}details summary{cursor:pointer;color:#335}
.note{color:#8a5a00}code{background:#f4f4f4;padding:0 .2em}
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _table(rows: list[tuple[str, ...]], head: tuple[str, ...], numbers: bool = True) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f'<td class="num">{html.escape(c)}</td>' if (i == 1 and numbers) else f"<td>{html.escape(c)}</td>"
                                    for i, c in enumerate(r)) + "</tr>")
    return "\n".join(out) + "</table>"


def metrics_rows(r: dict) -> list[tuple[str, str, str]]:
    """The metrics of :func:`vaekit.evaluate.evaluate` as (name, value, unit and how) rows."""
    rows = [("examples", str(r["n"]), "test split"), ("binarization", "", r["binarization"])]
    if "elbo" in r:
        rows += [
            ("ELBO", f"{r['elbo']:.3f}", "nats per example (one z draw each)"),
            ("E_q[log p(x|z)]", f"{r['log_likelihood']:.3f}", "nats per example"),
            ("KL(q(z|x) || p(z))", f"{r['kl']:.3f}", "nats per example" + (", Monte-Carlo: log q(z|x) − log p(z) at the draws"
                                                                         if r.get("kl_estimate") == "monte-carlo" else "")),
            ("importance-weighted log p(x)", f"{r['iw_log_likelihood']:.3f}",
             f"nats per example, k={r['iw_k']} samples on {r['iw_n']} examples"),
            ("test NLL (-IW log p(x))", f"{r['iw_nll']:.3f}", f"nats per example, k={r['iw_k']}"),
        ]
    through = "the posterior mean" if "elbo" in r else "the encoder"  # an autoencoder has no posterior
    rows.append(("reconstruction MSE", f"{r['mse']:.5f}", f"per value ({r['sse']:.3f} summed per example), through {through}"))
    if "bce" in r:
        rows.append(("reconstruction BCE", f"{r['bce']:.3f}", "nats per example"))
    if "active_units" in r:
        rows.append(("active units", f"{r['active_units']} / {r['latent_dim']}", "Cov_x(E_q[z_j]) > 0.01 (Burda et al. 2015)"))
    if "kl_per_dim" in r:
        rows.append(("KL per dimension", "", ", ".join(f"z{j}: {v:.2f}" for j, v in enumerate(r["kl_per_dim"])) + " nats"))
    if "psnr" in r:
        rows.append(("PSNR", f"{r['psnr']:.2f} dB", "10 log10(1 / MSE), pixels in [0, 1]"))
    if "perplexity" in r:
        rows.append(("codebook perplexity", f"{r['perplexity']:.1f}", f"of {r['codebook_size']} entries: exp of the entropy of their "
                     "use over every cell of the test codes (the number of entries if all were used evenly)"))
        rows.append(("codebook usage", f"{100 * r['usage']:.1f} %", "of the entries chosen by at least one cell"))
    if "prior_nll" in r:
        rows.append(("code prior NLL", f"{r['prior_nll']:.3f}", "nats per example: −log p(k) of each index grid under the prior "
                     "trained on the grids (the second stage)"))
    if "nll_bound" in r:
        rows.append(("NLL bound", f"{r['nll_bound']:.3f}", "nats per example: reconstruction + prior NLL ≥ −log p(x), comparable "
                     "with a VAE's test NLL"))
    if "probe_logreg_accuracy" in r:
        rows.append(("linear probe accuracy", f"{100 * r['probe_logreg_accuracy']:.2f} %",
                     f"logistic regression on codes, fitted on {r['probe_n_train']} training examples"))
        rows.append(("k-NN accuracy", f"{100 * r['probe_knn_accuracy']:.2f} %", "5 nearest neighbours on standardized codes"))
    return rows


@dataclass
class _Figure:
    """One figure of the page: where it goes, its two caption lines, and how to draw it."""

    section: str
    heading: str
    what: str  # what it shows and the formula behind it
    look: str  # what to look for in it
    build: Callable[[], object]  # zero-argument builder of a matplotlib Figure


# The page reads top to bottom as an explanation: how training went, what the encoder and decoder
# do, what the generative model learned, and how close the ELBO is to log p(x).
SECTIONS = {
    "training": ("1. Training", "What the optimizer minimized, epoch by epoch."),
    "code": ("2. Encoder and decoder", "What an example becomes in the code z, and what comes back out of it."),
    "generative": ("3. The generative model", "Decoding z that no example was encoded to: what the model learned "
                   "about the data as a whole."),
    "bound": ("4. How tight is the bound", "The ELBO the model was trained on is a lower bound on log p(x); how far below it is."),
}


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _figures(est, run: Path, test, metrics: dict | None, classes, gap: dict | None) -> list[_Figure]:
    """Every figure that applies to the model, in reading order."""
    from . import plots

    images = plots.is_image_shape(est.input_shape_)
    figs = _training_figures(est, run)
    figs += _code_figures(est, test, classes, images)
    figs += _generative_figures(est, metrics, classes, images)
    # A discrete code's numbers are codebook entries laid end to end: sweeping one of them over a range
    # decodes vectors no cell can hold, so a VQ-VAE's code is explored cell by cell (vaekit explore's grid).
    if images and test is not None and not est.family.discrete_codes:
        figs.append(_traversal_figure(est, test, metrics))
    if images and test is not None and test.y is not None and not est.is_conditional:
        figs += _interpolation_figures(est, test, classes)
    if gap is not None:
        figs.append(_gap_figure(gap, metrics))
    return figs


def _training_figures(est, run: Path) -> list[_Figure]:
    """The training curves and, against N(0, I), the KL of each latent unit over the epochs."""
    from . import plots

    has_density = est.family.has_density
    std_prior = est.model_.config.prior_component.standard_normal  # an autoencoder's (no prior) reads False
    figs: list[_Figure] = []
    rows = plots.read_metrics(run / "metrics.csv") if (run / "metrics.csv").exists() else []
    if rows:
        unit = est.loss_unit
        if has_density:
            what = ("Each term of the objective per epoch, training batches (solid) and the held-out validation split (dashed): "
                    "loss = −ELBO = −E_q[log p(x|z)] + β·KL(q(z|x) ‖ p(z)), nats per example.")
        else:
            what = (f"The autoencoder's objective per epoch, training (solid) and validation (dashed), in {unit}: the reconstruction "
                    "error of x against g(f(x))" + (" plus the sparsity penalty." if getattr(est, "sparsity", None) else "."))
        figs.append(_Figure("training", "Training curves", what,
                            "Validation rising while training falls is over-fitting; a loss still falling at the last epoch means more "
                            "epochs would help" + ("; a KL that sinks towards 0 while the reconstruction stays poor is posterior collapse."
                                                   if has_density else "."),
                            lambda: plots.curves_figure(rows, unit=unit)))
        if std_prior and any(k.startswith("val_kl_dim_") for k in rows[0]):
            figs.append(_Figure(
                "training", "KL per latent dimension",
                "KL(q(z_j|x) ‖ N(0, 1)) for each latent dimension j, averaged over the validation split after each epoch"
                + (f" (= {formula})" if (formula := POSTERIORS[est.posterior].kl_formula) else "")
                + "; the dimensions add up to the KL term of the ELBO.",
                "A unit switches on when its KL leaves 0: from then on it carries information about x. Units that stay at 0 have "
                "collapsed to the prior and the decoder ignores them; most VAEs use fewer units than they are given.",
                lambda: plots.kl_per_dimension_figure(rows)))
    return figs


def _code_figures(est, test, classes, images: bool) -> list[_Figure]:
    """Reconstructions of test images, and the test codes coloured by class."""
    from . import plots

    has_density = est.family.has_density
    figs: list[_Figure] = []
    if images and test is not None:
        if getattr(est, "noise", None):
            what = (f"Clean test images, the same corrupted by {est.noise} noise (level {est.noise_level}), and what the denoising "
                    "autoencoder makes of them: g(f(x̃)), trained to return the clean x from the corrupted x̃.")
            look = "The denoised row should recover the clean digit and drop the noise; a copy of the noise means the code is too large."
        elif est.family.discrete_codes:
            rows, cols = est.model_.config.grid
            what = (f"Test images x (top) and their reconstructions (bottom) through the quantized code: the encoder's {rows} × {cols} "
                    f"grid of vectors z_e, each replaced by the nearest of the K = {est.model_.config.codebook_size} codebook entries "
                    "(z_q = e_k, k = argmin ‖z_e − e_k‖), then decoded. Nearest-entry search has no gradient; training hands the "
                    "decoder's gradient for z_q to z_e unchanged (the straight-through estimator), and a commitment term "
                    "β‖z_e − sg(e_k)‖² keeps z_e near its entry.")
            look = ("Detail lost in every image says the grid is too coarse or the codebook too small; check the codebook's "
                    "perplexity under Numbers: one that collapsed onto a few entries builds every image from the same pieces.")
        else:
            what = ("Test images x (top) and their reconstructions (bottom): the decoder's mean E[x|z] at the posterior mean "
                    "z = μ(x)." if has_density else "Test images x (top) and their reconstructions g(f(x)) through the code (bottom).")
            look = (_sentence(plots.likelihood(est).blur) + ". " if has_density else
                    "An autoencoder's code is a point, with no noise added, so its reconstructions are usually sharper than a VAE's. ")
            look += "Detail lost in every image says the code is too small" + (" or its KL too costly." if has_density else ".")
        figs.append(_Figure("code", "Reconstructions", what, look, lambda: plots.reconstructions_figure(est, test.X, test.y)))
    if test is not None and test.y is not None:
        d = est.model_.config.code_dim
        prior = plots.prior_symbol(est)
        proj = "" if d <= 2 else f" (the first two principal components of the {d}-D codes)"
        if has_density:
            what = (f"Posterior means μ(x) of test examples{proj}, coloured by class. Together they trace the aggregate posterior "
                    f"q(z) = (1/N) Σₙ q(z|xₙ), which the KL term pulls towards the prior {prior}.")
            look = ("Classes that separate without ever seeing a label mean the code captured them. Empty regions inside the cloud are "
                    "'holes': the prior samples there but no example maps there, so decoded samples from a hole look like no class.")
        else:
            what = f"The codes f(x) of test examples{proj}, coloured by class."
            look = ("Nothing asks an autoencoder's codes to fill a region or to have a scale: expect gaps between classes and an "
                    "arbitrary spread, which is why an autoencoder cannot generate by decoding random z.")
        figs.append(_Figure("code", "Latent space", what, look,
                            lambda: plots.latent_figure(est, test.X, test.y, classes=classes)))
    return figs


_PRIOR_NAMES = {"pixelcnn": "gated PixelCNN", "transformer": "causal transformer"}


def _prior_kind(est) -> str:
    """The kind of a VQ-VAE's trained code prior (vaekit.codeprior), as its config says."""
    return (est.model_.config.code_prior or {}).get("kind", "")


def _generative_figures(est, metrics: dict | None, classes, images: bool) -> list[_Figure]:
    """A VAE's samples from the prior, and the manifold grid or latent traversal where the prior is N(0, I)."""
    from . import plots

    if not (images and est.can_sample):
        return []
    if est.family.discrete_codes:
        return [_Figure("generative", "Samples from the code prior",
                        f"Index grids k drawn cell by cell from the prior over grids (the second stage, a "
                        f"{_PRIOR_NAMES.get(_prior_kind(est), 'model')} trained on the grids of the training images), each decoded "
                        "through its codebook entries.",
                        "Samples that look like no class while the reconstructions are sharp mean the code prior has not yet "
                        "learned which grids occur; train it longer (vaekit train-prior --epochs).",
                        lambda: plots.samples_figure(est, classes=classes))]
    cond = est.is_conditional
    cfg = est.model_.config
    prior = plots.prior_symbol(est)
    figs: list[_Figure] = []
    if plots.likelihood(est).sequential_mean:
        what = f"z ~ {prior}, then each pixel drawn in turn from P(x_d = 1 | x_<d, z): the generative model run forwards."
    else:
        what = (f"E[x|z] for z drawn from the prior {prior}: the generative model p(x) = ∫ p(x|z) p(z) dz run forwards, "
                "no training image involved" + ("; one row per class c, decoded with p(x|z, c)." if cond else "."))
    figs.append(_Figure("generative", "Samples from the prior", what,
                        "Samples much worse than the reconstructions mean the aggregate posterior does not fill the prior (holes). "
                        + _sentence(plots.likelihood(est).blur) + ".",
                        lambda: plots.samples_figure(est, classes=classes)))
    d = cfg.latent_dim
    if d >= 2 and cfg.prior_component.standard_normal:  # the grid walks N(0, I) quantiles
        dims = (0, 1)
        if d > 2 and metrics and "kl_per_dim" in metrics:
            dims = tuple(int(j) for j in np.argsort(metrics["kl_per_dim"])[::-1][:2])  # the two most used
        label = 0 if cond else None
        if d == 2:
            heading, what = "Learned manifold", ("E[x|z] on a grid of z whose coordinates are the N(0, 1) quantiles 0.05 … 0.95, so "
                                                 "equal areas of the prior get equal space (Kingma & Welling 2014, fig. 4)")
        else:
            heading, what = "Latent traversal", (f"E[x|z] on a grid over z{dims[0]} and z{dims[1]} (the two dimensions with most KL) "
                                                 f"at the N(0, 1) quantiles 0.05 … 0.95, the other {d - 2} held at 0")
        figs.append(_Figure("generative", heading, what + (", class 0." if cond else "."),
                            "Neighbouring cells should morph smoothly from one shape into the next; a cell that looks like nothing "
                            "marks a part of the prior that few examples are encoded to.",
                            lambda: plots.manifold_figure(est, dims=dims, label=label)))
    return figs


def _traversal_figure(est, test, metrics: dict | None) -> _Figure:
    """One latent dimension per row, most KL first, swept with the others at one test code's posterior mean."""
    from . import plots

    has_density = est.family.has_density
    std = est.model_.config.prior_component.standard_normal
    sweep = ("over [−3, 3], the N(0, 1) prior's quantiles 0.0013 … 0.9987" if std else
             "over its mean ± 3 standard deviations across test codes (the prior is not N(0, I), so its quantiles are not ±3)")
    order = ("ordered by the KL each carries (nats, beside its name): the information about x it holds" if has_density else
             "in index order (an autoencoder has no KL to order them by)")
    kl = metrics.get("kl_per_dim") if metrics else None
    return _Figure(
        "generative" if has_density else "code", "Latent traversal, one dimension per row",
        f"E[x|z] with one latent dimension z_j swept {sweep} and the others held at the "
        f"{'posterior mean μ(x)' if has_density else 'code f(x)'} of one test image; rows {order}, at most "
        f"{plots.TRAVERSAL_MAX_DIMS} (where the prior has no per-dimension KL, index order, as the figure says).",
        "In a disentangled code each row changes one thing (position, size, rotation or shape) and nothing else; a row that "
        "changes several at once is an entangled dimension, and a row that does not change is a unit the decoder ignores "
        "(KL near 0). Compare with the disentanglement scores under Numbers when the data have known factors.",
        lambda: plots.traversal_figure(est, test.X, test.y, kl_per_dim=kl))


def _interpolation_figures(est, test, classes) -> list[_Figure]:
    """The line between two class-mean codes, and latent arithmetic across classes."""
    from . import plots

    figs: list[_Figure] = []
    present = np.unique(test.y)
    if len(present) >= 2:
        a, b = (1, 7) if {1, 7} <= set(present.tolist()) else (int(present[0]), int(present[1]))
        figs.append(_Figure(
            "generative" if est.family.has_density else "code", "Interpolation and latent arithmetic",
            f"Top: decoded points on the line z = (1 − t)·m_{a} + t·m_{b} between the mean codes of classes {a} and {b}. "
            "Bottom: latent arithmetic z(x) − m_class(x) + m_k, each example re-rendered as every class k.",
            "A smooth morph says the line stays where the decoder was trained; a blot half-way says it crosses a hole. The "
            "arithmetic rows keep the slant and thickness of x when style and class sit in separate directions of the code.",
            lambda: plots.interpolation_figure(est, test.X, test.y, a=a, b=b, classes=classes)))
    return figs


def _gap_figure(gap: dict, metrics: dict | None = None) -> _Figure:
    """The ELBO against the importance-weighted log p(x), and the bound against k."""
    from . import plots

    # The figure scores fewer examples than the table (it needs k draws for each k up to its
    # largest): say so, or the page shows two ELBO / log p(x) pairs with no reason.
    table = ""
    if metrics and "iw_k" in metrics:
        table = (f" It scores the first {gap['n']} test examples with k up to {gap['k'][-1]} to keep the page fast, so its ELBO and "
                 f"log p(x) differ a little from those of the Numbers table (the ELBO there on {metrics['n']} examples, log p(x) with "
                 f"k={metrics['iw_k']} on {metrics['iw_n']}); "
                 "both are estimates of the same quantities.")
    return _Figure(
        "bound", "ELBO, log p(x) and the gap",
        f"Left: E_q[log p(x|z)], −KL and their sum, the ELBO, beside the importance-weighted estimate of log p(x) on {gap['n']} test "
        "examples; log p(x) − ELBO = KL(q(z|x) ‖ p(z|x)), the gap. Right: L_k = E[log (1/k) Σᵢ p(x, zᵢ)/q(zᵢ|x)] against k "
        "(Burda et al. 2015): L_1 is the ELBO and L_k rises towards log p(x)." + table,
        "A wide gap means q(z|x) fits the true posterior p(z|x) poorly; a curve still rising at the largest k means log p(x) is "
        "higher still. Compare models by log p(x) (a large k: vaekit evaluate --k 5000), not by their ELBO.",
        lambda: plots.bound_gap_figure(gap))


def _splits(meta: dict, test, train, probe_limit: int | None, notes: list[str], *, want=("test", "train"), cache: dict | None = None):
    """The run's test and train splits (those not given and wanted), noting in ``notes`` any that cannot be read.

    ``cache``: splits already loaded, keyed by where they come from, so that a comparison of runs on
    one dataset reads it once.
    """
    from .data import load_run_dataset

    source = meta.get("dataset") or "embedded"
    out = {"test": test, "train": train}
    for split in want:
        if out[split] is not None:
            continue
        limit = probe_limit if split == "train" else REPORT_TEST_LIMIT
        key = (source, meta.get("data_dir"), meta.get("label_column"), split, limit)
        try:
            if cache is None or key not in cache:
                ds = load_run_dataset(meta, split, limit=limit)
                if cache is not None:
                    cache[key] = ds
            out[split] = ds if cache is None else cache[key]
        except VaekitError as e:
            notes.append(f"the {split} split of {source} could not be read ({e}); figures and metrics that need it are left out")
    return out["test"], out["train"]


def _load_run(run: Path, *, test=None, train=None, k: int, iw_limit: int | None, probe_limit: int | None,
              probes: bool = True, datasets: dict | None = None, progress: bool = False):
    """The run's config, estimator, test split, notes, metrics on the test split, and class names.

    ``probes``: load the train split and fit the probes; ``datasets``: a cache for :func:`_splits`.
    """
    from .evaluate import evaluate
    from .modelfile import read_config
    from .runfolder import load

    cfg = read_config(run)
    est = load(run)
    meta = cfg.get("run", {})
    if iw_limit == -1:  # the default: bounded by what the model's decoder costs
        iw_limit = report_iw_limit(cfg["model"].get("architecture", "mlp"))
    notes: list[str] = []
    test, train = _splits(meta, test, train, probe_limit, notes, want=("test", "train") if probes else ("test",), cache=datasets)
    if test is not None and test.factors is not None and len(test) > REPORT_FACTORS_N:
        notes.append(f"{test.name} is a generated grid with ground-truth factors: the report scores and draws a seeded sample of "
                     f"{REPORT_FACTORS_N} of its {len(test)} test examples, and probes on as many training examples, to stay fast")
    test, train = _factor_sample(test), _factor_sample(train)
    classes = meta.get("classes") or (test.classes if test is not None else None)
    metrics = None
    if test is not None:
        try:
            cond_y = test.y if est.is_conditional else None
            if est.is_conditional and test.y is None:
                raise VaekitError("a conditional model needs labelled test data")
            ytr = None if train is None else train.y
            Xtr = None if train is None else train.X[:probe_limit]
            metrics = evaluate(est, test.X, test.y if test.y is not None else cond_y, X_train=Xtr,
                               y_train=None if ytr is None else ytr[:probe_limit], k=k, iw_limit=iw_limit, progress=progress)
        except VaekitError as e:
            notes.append(f"metrics could not be computed: {e}")
    return cfg, est, test, notes, metrics, classes


def _factor_sample(ds):
    """A seeded sample of :data:`REPORT_FACTORS_N` examples of a dataset with factors (kept in its order); others unchanged."""
    if ds is None or ds.factors is None or len(ds) <= REPORT_FACTORS_N:
        return ds
    return ds.subset(np.sort(np.random.default_rng(0).choice(len(ds), REPORT_FACTORS_N, replace=False)))


def bound_curve(est, X: np.ndarray, y: np.ndarray | None = None, *, n: int = REPORT_GAP_N, k_max: int = REPORT_GAP_K,
                seed: int = 0) -> dict:
    """:func:`vaekit.evaluate.bound_against_k` on the first ``n`` examples of X, scored as
    :func:`vaekit.evaluate.evaluate` scores them (the same binarization). Nats per example."""
    import torch

    from .evaluate import binarize_for_eval, bound_against_k

    Xb, _ = binarize_for_eval(est, np.asarray(X)[:n])
    Xt = torch.from_numpy(est.prepare_X(Xb)).to(est.device_)
    yt = None
    if est.is_conditional:
        yt = torch.from_numpy(np.asarray(y, dtype=np.int64)[:n]).to(est.device_)
    return bound_against_k(est.model_, Xt, yt, k_max=k_max, seed=seed)


def _head(title: str) -> list[str]:
    return [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
            f"<style>{_CSS}</style></head><body>"]


def _figure_html(fig: _Figure, png: bytes | None, error: str | None = None) -> str:
    slug = "fig-" + "".join(c if c.isalnum() else "-" for c in fig.heading.lower())
    if png is None:
        return f'<h3 id="{slug}">{html.escape(fig.heading)}</h3><p class="note">Not drawn: {html.escape(error or "")}</p>'
    return (f'<h3 id="{slug}">{html.escape(fig.heading)}</h3><figure>{_img(png, fig.heading)}'
            f'<figcaption><span class="what">{html.escape(fig.what)}</span>'
            f'<span class="look"><b>Look for:</b> {html.escape(fig.look)}</span></figcaption></figure>')


def _draw(figs: list[_Figure]) -> list[tuple[_Figure, bytes | None, str | None]]:
    from . import plots

    out = []
    for f in figs:
        try:
            out.append((f, plots.figure_png(f.build()), None))
        except VaekitError as e:
            out.append((f, None, str(e)))
    return out


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


def build_report(run: str | Path, out: str | Path | None = None, *, k: int = REPORT_K, iw_limit: int | None = -1,
                 probe_limit: int | None = REPORT_PROBE_LIMIT, test=None, train=None,
                 shown_as: str | Path | None = None, progress: bool = False) -> Path:
    """Write the HTML report of the run folder ``run`` (to ``run/report.html`` unless ``out``).

    The page explains the run top to bottom: figures first, grouped as training, encoder and
    decoder, the generative model and the tightness of the bound, each with a caption that says
    what it shows, the formula behind it and what to look for; then the metrics; then the
    configuration (collapsed, only the options that apply to the model).

    ``shown_as``: the run's name on the page, when the report is written before the folder gets
    its final name (``vaekit train`` writes into a staging folder and renames it at the end).

    ``test`` / ``train``: Datasets to use instead of loading the run's dataset (the test split is
    scored; the train split fits the probes). Metrics use ``k`` importance samples on the first
    ``iw_limit`` test examples (-1: :func:`report_iw_limit` of the model), which the page states.
    ``progress``: a bar for the importance-weighted estimate, the slow part (on a terminal, the
    CLI's choice). Returns the path written.
    """
    run = Path(run)
    cfg, est, test, notes, metrics, classes = _load_run(run, test=test, train=train, k=k, iw_limit=iw_limit,
                                                        probe_limit=probe_limit, progress=progress)
    gap = _bound_or_note(est, test, metrics, notes)
    scores = _disentanglement_or_note(est, test, notes)
    shown = Path(shown_as) if shown_as is not None else run
    parts = _report_opening(est, shown, cfg.get("run", {}))
    parts += _figure_sections(_draw(_figures(est, run, test, metrics, classes, gap)), notes)
    parts += _numbers_section(metrics, test, shown, k, scores)
    parts += _config_section(cfg, est)
    parts.append("</body></html>\n")
    return _write(parts, Path(out) if out is not None else run / REPORT_FILE)


def _bound_or_note(est, test, metrics: dict | None, notes: list[str]) -> dict | None:
    """The bound against k (:func:`bound_curve`) for a model scored with importance weights; a note when it fails."""
    if not (metrics and "iw_k" in metrics):
        return None
    try:
        return bound_curve(est, test.X, test.y)
    except VaekitError as e:
        notes.append(f"the bound against k could not be computed: {e}")
        return None


def _report_opening(est, shown: Path, meta: dict) -> list[str]:
    """The page's head, title, provenance line, and the two paragraphs that say how to read it and explore it."""
    name = html.escape(str(shown))
    parts = _head(f"vaekit report: {shown.name}")
    parts.append(f"<h1>vaekit run report: {html.escape(shown.name)}</h1>")
    parts.append(f"<p class=\"meta\">Written {time.strftime('%Y-%m-%d %H:%M')} from <code>{name}</code>. "
                 f"Command: <code>{html.escape(meta.get('command', 'unknown'))}</code></p>")
    parts.append(f"<p class=\"intro\">This page explains a trained {est.family.long_title} from top to bottom. Each figure has two "
                 "lines under it: what it shows, with the formula behind it, and what to look for. The numbers follow the figures; "
                 "the full configuration is folded away at the end.</p>")
    parts.append(f"<p class=\"explore\">See it move: <code>vaekit explore {name}</code> opens this model in the browser, "
                 "where you can hover over the codes, drag a point through the latent space and watch the decoded image change.</p>")
    return parts


def _figure_sections(drawn: list, notes: list[str]) -> list[str]:
    """The contents line, the notes, and one section of :data:`SECTIONS` for each that has a drawn figure."""
    sections = [(key, title, intro, [d for d in drawn if d[0].section == key]) for key, (title, intro) in SECTIONS.items()]
    sections = [s for s in sections if s[3]]
    toc = [f'<a href="#sec-{key}">{html.escape(title)}</a>' for key, title, _, _ in sections]
    toc += ['<a href="#sec-numbers">Numbers</a>', '<a href="#sec-config">Configuration</a>']
    parts = [f'<nav>Contents: {" &middot; ".join(toc)}</nav>']
    parts += [f'<p class="note">Note: {html.escape(n)}</p>' for n in notes]
    for key, title, intro, here in sections:
        parts.append(f'<section id="sec-{key}"><h2>{html.escape(title)}</h2><p class="intro">{html.escape(intro)}</p>')
        parts += [_figure_html(*d) for d in here]
        parts.append("</section>")
    return parts


def _disentanglement_or_note(est, test, notes: list[str]) -> dict | None:
    """The disentanglement scores of the test codes (the report's sample, :data:`REPORT_FACTORS_N`) where the test
    data have ground-truth factors; a note when they cannot be computed."""
    from .disentanglement import score_model

    if test is None or test.factors is None:
        return None
    try:
        return score_model(est, test.X, test.factors, test.y, seed=0)
    except VaekitError as e:
        notes.append(f"the disentanglement scores could not be computed: {e}")
        return None


def _disentanglement_html(scores: dict, test, shown: Path) -> list[str]:
    """The disentanglement table with what each score measures and what to look for."""
    from .disentanglement import MEASURES, score_text

    rows = [(key, score_text(scores[key]), what) for key, what in MEASURES.items()]
    names = ", ".join(test.factor_names or [])
    return [f'<h3 id="disentanglement">Disentanglement</h3><p>How well single code dimensions line up with the ground-truth '
            f"factors of {html.escape(test.name)} ({html.escape(names)}): the posterior means of a seeded sample of "
            f"<b>{scores['n']}</b> test examples scored against their factors, each score in [0, 1], higher more disentangled "
            "(± is the spread over 5 draws of the classifier scores). <b>Look for:</b> MIG and DCI disentanglement reward one "
            "factor per dimension; informativeness says how much the code knows at all, so a high informativeness with a low "
            "MIG is a code that holds the factors but mixes them. For the full protocol on 10 000 examples run "
            f"<code>vaekit evaluate {html.escape(str(shown))} --disentanglement</code>.</p>",
            _table(rows, ("score", "value", "what it measures"))]


def _numbers_section(metrics: dict | None, test, shown: Path, k: int, disentanglement: dict | None = None) -> list[str]:
    """The metrics on the test split, with the scope of the importance-weighted estimate and how to get a publishable one;
    then the disentanglement scores where the data have factors."""
    parts = ['<section id="sec-numbers"><h2>Numbers</h2>']
    if metrics:
        name = html.escape(str(shown))
        parts.append(f"<p>On the test split of <b>{html.escape(test.name)}</b>. The importance-weighted numbers use "
                     f"<b>k={metrics.get('iw_k', k)}</b> samples on {_iw_scope([(shown.name, metrics)])} to keep the "
                     f"report fast; for a number to set beside published ones run <code>vaekit evaluate {name} --k 5000</code>.</p>"
                     if "iw_k" in metrics else f"<p>On the test split of <b>{html.escape(test.name)}</b>. " + _no_elbo(metrics) + "</p>")
        parts.append(_table(metrics_rows(metrics), ("metric", "value", "unit / how")))
    else:
        parts.append("<p>No metrics (no test data).</p>")
    if disentanglement is not None:
        parts += _disentanglement_html(disentanglement, test, shown)
    parts.append("</section>")
    return parts


def _no_elbo(metrics: dict) -> str:
    """Why a model without a density has no ELBO row, and what it has instead."""
    if "perplexity" not in metrics:
        return "An autoencoder has no ELBO or likelihood; reconstruction error and probes only."
    return ("A VQ-VAE is trained in two stages: first the encoder, codebook and decoder (with a uniform prior over the entries, "
            "which adds a constant), then a prior over the grids of entry indices the encoder produces, which is what makes "
            "sampling possible. " + ("With that prior, reconstruction + prior NLL bounds −log p(x)." if "prior_nll" in metrics else
                                     "This run has no prior yet: <code>vaekit train-prior RUN</code> trains one."))


def _config_section(cfg: dict, est) -> list[str]:
    """The options that apply to the model and the run's data, folded away."""
    rows = config_rows(cfg, est)
    return [f'<section id="sec-config"><h2>Configuration</h2><details><summary>The {len(rows)} settings that apply to this '
            "model (click to open; every option is in config.json)</summary>"
            f"{_table(rows, ('setting', 'value', 'meaning'), numbers=False)}</details></section>"]


def _write(parts: list[str], path: Path) -> Path:
    from .atomicfiles import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return path


def _loss_in_nats(est) -> bool:
    """Whether the model's loss is a negative log-likelihood in nats (as its estimator's ``loss_unit`` says), so
    that an autoencoder's reconstruction term sits on the same axis as a VAE's distortion."""
    return est.loss_unit == "nats per example"


def _rd_point(name: str, est, metrics: dict) -> tuple[dict | None, str | None]:
    """A run's place on the rate-distortion plane, or None and the reason it has none."""
    if "kl" in metrics and "log_likelihood" in metrics:
        return {"name": name, "rate": metrics["kl"], "distortion": -metrics["log_likelihood"]}, None
    if _loss_in_nats(est):
        # Its reconstruction term is -log p(x|z) of a Bernoulli decoder at the code: a distortion in
        # nats like a VAE's, but with no KL: a point code has no rate this plane can measure.
        return {"name": name, "rate": None, "distortion": metrics["reconstruction"]}, None
    return None, (f"{name} is {est.family.article} {est.family.title} whose loss is measured in {est.loss_unit}: its distortion is not in "
                  "nats, so it is listed in the table but not drawn")


def build_comparison(runs: list[str | Path], out: str | Path, *, k: int = REPORT_K, iw_limit: int | None = -1) -> Path:
    """Write one HTML page comparing several run folders (e.g. an autoencoder, a VAE and a beta-VAE).

    Each run is scored on its own test split (no probes): a rate-distortion figure (KL against
    -E_q[log p(x|z)], nats per example; an autoencoder, which has no KL, is a horizontal line at its
    distortion), reconstructions of the same test images by every run, and a table of the
    numbers, with a link to each run's own report. Returns the path written.
    """

    if len(runs) < 2:
        raise ConfigError(f"a comparison needs at least two run folders, got {len(runs)}; for one run use `vaekit report RUN`")
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"the comparison page is HTML; name the output FILE.html, not {out.name}")
    names = [Path(r).name or str(r) for r in runs]
    if len(set(names)) < len(names):
        names = [str(r) for r in runs]
    loaded, notes = _load_runs(names, runs, k=k, iw_limit=iw_limit)
    scored = [x for x in loaded if x[5] is not None]
    notes += _scale_notes(scored)
    figs = _comparison_figures(scored, notes)
    drawn = _draw(figs)

    parts = _head("vaekit comparison: " + ", ".join(names))
    parts.append(f"<h1>vaekit comparison of {len(runs)} runs</h1>")
    parts.append(f"<p class=\"meta\">Written {time.strftime('%Y-%m-%d %H:%M')}. Runs: "
                 + ", ".join(f"<code>{html.escape(str(r))}</code>" for r in runs) + "</p>")
    parts.append("<p class=\"intro\">Several models of the same data, side by side. Each figure says what it shows, with its "
                 "formula, and what to look for; the numbers and a link to each run's own report follow.</p>")
    parts.append("<p class=\"explore\">See one move: <code>vaekit explore RUN</code> opens a run in the browser, where you can "
                 "drag a point through its latent space and watch the decoded image change.</p>")
    for n in notes:
        parts.append(f'<p class="note">Note: {html.escape(n)}</p>')
    parts.append('<section id="sec-compare"><h2>Figures</h2>')
    parts += [_figure_html(*d) for d in drawn]
    parts.append("</section>")

    table = _comparison_table(loaded, out)
    parts.append('<section id="sec-numbers"><h2>Numbers</h2><p>Per test example, in nats unless marked; each run on its own test '
                 f"split. The importance-weighted log p(x) uses k={k} samples on {_iw_scope([(x[0], x[5]) for x in scored])} "
                 "to stay fast; run <code>vaekit evaluate RUN --k 5000</code> for numbers to publish.</p>"
                 + "\n".join(table) + "</table></section>")
    parts.append("</body></html>\n")
    return _write(parts, out)


def _load_runs(names: list[str], runs: list, *, k: int, iw_limit: int | None) -> tuple[list[tuple], list[str]]:
    """(name, folder, config, estimator, test split, metrics) of each run, scored without probes, and the notes
    their loading left; runs on one dataset read it once."""
    datasets: dict = {}
    loaded = []
    notes: list[str] = []
    for name, run in zip(names, runs):
        cfg, est, test, run_notes, metrics, _ = _load_run(Path(run), k=k, iw_limit=iw_limit, probe_limit=None, probes=False,
                                                          datasets=datasets)
        notes += [f"{name}: {n}" for n in run_notes]
        loaded.append((name, Path(run), cfg, est, test, metrics))
    return loaded, notes


def _scale_notes(scored: list[tuple]) -> list[str]:
    """Why the scored runs' numbers may not be on one scale: different test sets, or different binarizations."""
    notes = []
    if len({x[4].name for x in scored}) > 1:
        notes.append("these runs were scored on different test sets (" + ", ".join(sorted({x[4].name for x in scored}))
                     + "); their numbers are not on one scale")
    if len({x[5]["binarization"].split(" ")[0] for x in scored}) > 1:
        notes.append("the runs score different binarizations of the test images (see the table); log-likelihoods of binary and "
                     "gray-level data are not comparable")
    return notes


def _iw_scope(runs: list[tuple[str, dict]]) -> str:
    """Which test examples the importance-weighted numbers of (name, metrics) pairs use, as they were scored."""
    used = [(name, m["iw_n"], m["n"]) for name, m in runs if "iw_n" in m]
    if not used:
        return "the test examples"
    if all(n_iw == n for _, n_iw, n in used):
        return "all the test examples"
    if len({n_iw for _, n_iw, _ in used}) == 1:
        return f"the first {used[0][1]} test examples"
    return "the first " + ", ".join(f"{n_iw} ({html.escape(name)})" for name, n_iw, _ in used) + " test examples"


def _comparison_figures(scored: list, notes: list[str]) -> list[_Figure]:
    """The rate-distortion figure and the side-by-side reconstructions; adds to ``notes`` what they leave out."""
    from . import plots

    points, left_out = [], []
    for name, _, cfg, est, _, metrics in scored:
        beta = cfg["params"].get("beta", 1.0)
        label = f"{name} (β = {beta:g})" if est.family.has_density else name  # β sets where a run lands
        p, why = _rd_point(label, est, metrics)
        (points.append(p) if p else left_out.append(why))
    liks = {x[3].likelihood for x in scored if _rd_point(x[0], x[3], x[5])[0]}
    if len(liks) > 1:
        notes.append(f"the drawn runs use different decoder likelihoods ({', '.join(sorted(liks))}); nats of a density and of a "
                     "discrete distribution are not on one scale")
    notes += left_out

    figs = []
    if points:
        figs.append(_Figure(
            "compare", "Rate against distortion",
            "Each VAE is a point: rate R = KL(q(z|x) ‖ p(z)), the nats the code carries about x, against distortion "
            "D = −E_q[log p(x|z)], the nats lost in reconstruction, per test example. Grey diagonals are lines of equal "
            "ELBO = −(D + R) (Alemi et al. 2018).",
            "Down and to the left is better. A β-VAE minimizes D + β·R, so β > 1 moves a run up and to the left (less "
            "rate, more distortion) and β < 1 the other way; a point at R near 0 is posterior collapse. An autoencoder has no KL "
            "(its code is a point, not a distribution), so it is drawn as a dotted line at its distortion: a rate-free reference.",
            lambda: plots.rate_distortion_figure(points)))
    shared = [x for x in scored if x[4] is not None]
    if len(shared) >= 2 and len({x[4].name for x in shared}) == 1:
        if all(plots.is_image_shape(x[3].input_shape_) for x in shared):
            test = shared[0][4]
            figs.append(_Figure(
                "compare", "Reconstructions side by side",
                "The same test images x (top row) and each run's reconstruction E[x|z] at its code z = μ(x) (one row per run).",
                "A small rate (KL) forces a VAE to keep only what most images share: strokes get thicker and rarer shapes turn "
                "into common ones; an autoencoder keeps more detail but cannot generate.",
                lambda: plots.reconstructions_compare_figure([x[3] for x in shared], [x[0] for x in shared], test.X, test.y)))
    return figs


def _comparison_table(loaded: list, out: Path) -> list[str]:
    """The comparison's table of numbers: HTML rows (the table opened, not closed), one per run, each linking its report."""
    head = ("run", "model", "decoder", "beta", "latent dim", "ELBO", "E_q[log p(x|z)] or -reconstruction", "KL (rate)",
            "IW log p(x)", "active units", "MSE per value", "binarization", "report")
    rows = []
    for name, run, cfg, est, _, m in loaded:
        has_density = est.family.has_density
        report = run / REPORT_FILE
        link = (f'<a href="{html.escape(Path(os.path.relpath(report.resolve(), out.resolve().parent)).as_posix())}">report</a>'
                if report.exists() else "")
        if m is None:
            rows.append([html.escape(name), "", "", "", "", "", "", "", "", "", "", "not scored", link])
            continue
        rec = m["log_likelihood"] if has_density else (-m["reconstruction"] if _loss_in_nats(est) else None)
        rows.append([
            html.escape(name), est.family.title, html.escape(est.likelihood),
            f"{cfg['params'].get('beta', 1.0):g}" if has_density else "", str(m["latent_dim"]),
            f"{m['elbo']:.2f}" if has_density else "", "" if rec is None else f"{rec:.2f}",
            f"{m['kl']:.2f}" if has_density else "none", f"{m['iw_log_likelihood']:.2f}" if has_density else "",
            f"{m['active_units']} / {m['latent_dim']}" if "active_units" in m else "", f"{m['mse']:.5f}",
            html.escape(m["binarization"].split(" (")[0]), link])
    table = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    table += ["<tr>" + "".join(f'<td class="num">{c}</td>' if 5 <= i <= 10 else f"<td>{c}</td>" for i, c in enumerate(r)) + "</tr>"
              for r in rows]
    return table
