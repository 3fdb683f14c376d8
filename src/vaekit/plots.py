"""Figures as PNG files, drawn with matplotlib's Agg backend (no display needed).

Two layers. Drawing helpers take arrays (``save_image_grid``, ``image_grid_figure``,
``curves_figure``). The lecture's figures take a fitted estimator and data and return a matplotlib
Figure: ``reconstructions_figure``, ``samples_figure``, ``manifold_figure``, ``latent_figure``,
``interpolation_figure``, ``traversal_figure``; from numbers: ``curves_figure``, ``kl_per_dimension_figure`` (from the
``val_kl_dim_j`` columns of metrics.csv), ``bound_gap_figure`` (ELBO, log p(x) and the bound against
k) and ``rate_distortion_figure`` (several runs). ``save_figure(fig, path)`` writes one atomically and
``figure_png(fig)`` gives its bytes (the HTML report embeds those). Pixels are drawn as stored: 0
black, 1 white.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .atomicfiles import atomic_path
from .errors import ConfigError
from .registry import LIKELIHOODS, PRESETS, Component, family_of


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def as_images(X: np.ndarray, image_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """X reshaped to (N, H, W) or (N, H, W, 3) and clipped to [0, 1] for display."""
    X = np.asarray(X, dtype=np.float32)
    if image_shape is not None:
        X = X.reshape(len(X), *image_shape)
    if X.ndim == 2:  # flat vectors: show square images when the length allows it
        side = int(round(math.sqrt(X.shape[1])))
        if side * side != X.shape[1]:
            raise ValueError(f"cannot show vectors of length {X.shape[1]} as images; they are not square")
        X = X.reshape(len(X), side, side)
    if X.ndim == 4:  # (N, C, H, W)
        X = X[:, 0] if X.shape[1] == 1 else np.moveaxis(X[:, :3], 1, -1)
    return np.clip(X, 0.0, 1.0)


def tile(images: np.ndarray, ncol: int, pad: int = 1) -> np.ndarray:
    """A grid of (N, H, W[, 3]) images, row-major, with ``pad`` pixels of white between them."""
    n, h, w = images.shape[:3]
    nrow = math.ceil(n / ncol)
    shape = (nrow * (h + pad) + pad, ncol * (w + pad) + pad) + images.shape[3:]
    canvas = np.ones(shape, dtype=np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    return canvas


CELL_INCHES = 0.42  # on-page size of one 28-pixel image: digits stay legible, grids fit a screen
MAX_WIDTH_INCHES = 15.0


def _grid_size(nrow: int, ncol: int, h: int, w: int) -> tuple[float, float]:
    cell = min(CELL_INCHES * max(h, w) / 28 * 1.2, MAX_WIDTH_INCHES / max(1, ncol))
    return ncol * cell * w / max(h, w), nrow * cell * h / max(h, w)


def _draw_grid(ax, imgs: np.ndarray, ncol: int, *, title: str | None = None, row_labels=None, col_labels=None,
               xlabel: str | None = None, ylabel: str | None = None) -> None:
    """Tile (N, H, W[, 3]) images into ``ax`` with labels centred on rows and columns."""
    h, w = imgs.shape[1:3]
    ax.imshow(tile(imgs, ncol), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([1 + (w + 1) * j + w / 2 - 0.5 for j in range(len(col_labels))] if col_labels else [])
    if col_labels:
        ax.set_xticklabels(col_labels, fontsize=8)
    ax.set_yticks([1 + (h + 1) * i + h / 2 - 0.5 for i in range(len(row_labels))] if row_labels else [])
    if row_labels:
        ax.set_yticklabels(row_labels, fontsize=8)
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=9)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=9)


def image_grid_figure(images: np.ndarray, ncol: int, *, title: str | None = None, row_labels=None, col_labels=None,
                      image_shape: tuple[int, ...] | None = None, invert: bool = False, xlabel: str | None = None,
                      ylabel: str | None = None):
    """A Figure of images in a grid (row-major), sized so that each image stays legible."""
    plt = _pyplot()
    imgs = as_images(images, image_shape)
    if invert:
        imgs = 1.0 - imgs
    nrow = math.ceil(len(imgs) / ncol)
    w_in, h_in = _grid_size(nrow, ncol, *imgs.shape[1:3])
    left = 0.9 if (row_labels or ylabel) else 0.15
    bottom = 0.5 if (col_labels or xlabel) else 0.1
    top = 0.45 if title else 0.1
    # A narrow grid (Frey Face, few columns) still gets room for its title: widen the page, centre the grid.
    content = w_in + left + 0.15
    fig_w = max(content, 0.085 * len(title) + 0.4) if title else content
    fig_h = h_in + bottom + top
    fig = plt.figure(figsize=(fig_w, fig_h))
    x0 = (left + (fig_w - content) / 2) / fig_w
    ax = fig.add_axes((x0, bottom / fig_h, w_in / fig_w, h_in / fig_h))
    _draw_grid(ax, imgs, ncol, row_labels=row_labels, col_labels=col_labels, xlabel=xlabel, ylabel=ylabel)
    if title:  # centred on the page, not on the grid, so row labels cannot push it off the edge
        fig.text(0.5, 1 - 0.25 / fig_h, title, ha="center", va="center", fontsize=10)
    return fig


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Write a Figure as PNG atomically (temp file + rename) and close it."""
    plt = _pyplot()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return path


def figure_png(fig, dpi: int = 100) -> bytes:
    """A Figure's PNG bytes (for embedding in HTML); closes the figure."""
    import io

    plt = _pyplot()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buf.getvalue()


def save_image_grid(path: str | Path, images: np.ndarray, ncol: int, *, title: str | None = None,
                    row_labels: list[str] | None = None, image_shape: tuple[int, ...] | None = None,
                    invert: bool = False) -> Path:
    """Save images as a grid PNG, with an optional title and a label at the left of each row.

    Pixels are drawn as stored (0 black, 1 white) unless ``invert`` is set.
    """
    fig = image_grid_figure(images, ncol, title=title, row_labels=row_labels, image_shape=image_shape, invert=invert)
    return save_figure(fig, path)


# -- the lecture's figures, from a fitted estimator --------------------------------------------


MIN_IMAGE_SIDE = 8  # a flat vector shorter than 8 x 8 (4, 9, ... 49 features) is a table, not a picture


def is_image_shape(shape) -> bool:
    """Whether examples of this per-example shape are images: the one rule every figure, grid and page asks.

    (C, H, W) arrays are images; a flat vector is one when its length is the square of a side of at
    least :data:`MIN_IMAGE_SIDE` pixels (a flattened 28 x 28 digit), since short square tables are not.
    """
    shape = tuple(shape)
    if len(shape) == 3:
        return True
    if len(shape) != 1:
        return False
    side = math.isqrt(shape[0])
    return side * side == shape[0] and side >= MIN_IMAGE_SIDE


def require_images(est) -> tuple[int, ...]:
    """The per-example shape of a model whose examples are images, or a ConfigError saying they are not."""
    shape = tuple(est.input_shape_)
    if is_image_shape(shape):
        return shape
    raise ConfigError(f"this model's examples (shape {shape}) are not images, so they cannot be drawn; "
                      "use `vaekit encode` / `vaekit reconstruct --out FILE.npy` for tables")


def _require_vae(est, what: str) -> None:
    if not est.family.has_density:
        raise ConfigError(f"the {what} needs a VAE's prior p(z); {est.family.article} {est.family.title}'s code has none "
                          f"(train with --model {density_preset()})")


def density_preset() -> str:
    """The first ``--model`` whose family has a prior to sample from (for messages that say what to train)."""
    return next(p.name for p in PRESETS if family_of(p.name).has_density)


def likelihood(est) -> Component:
    """The registered decoder likelihood p(x|z) of ``est``: its flags say how to draw and caption its output."""
    return LIKELIHOODS[est.likelihood]


def prior_symbol(est) -> str:
    """How captions write the model's p(z): the prior's own symbol (N(0, I)), else p(z) (an autoencoder: no prior)."""
    return est.model_.config.prior_component.symbol or "p(z)"


def sample_caption(est) -> str:
    """What a drawn sample shows: E[x|z] for z from the prior, or, for an autoregressive decoder
    (no closed-form mean), each pixel's probability given the pixels drawn before it."""
    if likelihood(est).sequential_mean:
        return f"P(x_d = 1 | x_<d, z) along one draw, z ~ {prior_symbol(est)}"
    return f"E[x|z], z ~ {prior_symbol(est)}"


def _class_names(classes, n: int) -> list[str]:
    return [str(c) for c in classes] if classes and len(classes) >= n else [str(k) for k in range(n)]


def pick_examples(n_total: int, n: int, y: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Indices of the ``n`` examples a figure shows: with labels, one of each class in turn (a
    folder or file sorted by class would otherwise show one class only); without, a seeded random
    choice in file order. All of them when ``n`` covers them."""
    if n >= n_total:
        return np.arange(n_total)
    rng = np.random.default_rng(seed)
    if y is None:
        return np.sort(rng.choice(n_total, n, replace=False))
    y = np.asarray(y)
    per_class = [rng.permutation(np.flatnonzero(y == k)) for k in np.unique(y)]
    order = [p[i] for i in range(max(map(len, per_class))) for p in per_class if i < len(p)]
    return np.asarray(order[:n])


def reconstructions_figure(est, X: np.ndarray, y: np.ndarray | None = None, *, n: int = 10, seed: int = 0):
    """Originals in the top row, reconstructions (through the posterior mean) below.

    The ``n`` examples are spread over the classes when ``y`` is given, else drawn at random
    (:func:`pick_examples`, seeded).

    A denoising autoencoder shows three rows: clean, corrupted (its own noise, seeded), denoised.
    """
    shape = require_images(est)
    idx = pick_examples(len(X), n, y, seed)
    X = np.asarray(X)[idx]
    c = np.asarray(y)[idx] if y is not None and est.is_conditional else None
    if getattr(est, "noise", None):
        noisy = est.corrupt(X, seed=seed)
        denoised = est.reconstruct(np.clip(noisy, 0, 1) if likelihood(est).needs_unit_interval else noisy, c)
        rows, labels = [X, noisy, denoised], ["clean", "corrupted", "denoised"]
        title = f"denoising: {est.noise} noise, level {est.noise_level}"
    else:
        rows, labels = [X, est.reconstruct(X, c)], ["original", "reconstruction"]
        title = f"originals (top) and reconstructions through {est.family.code_from} (bottom)"
    imgs = np.concatenate([as_images(r, shape) for r in rows])
    return image_grid_figure(imgs, len(X), title=title, row_labels=labels)


def samples_figure(est, *, n: int = 64, ncol: int = 8, seed: int = 0, classes=None):
    """Samples E[x|z], z ~ p(z); a conditional model gets one row per class (``ncol`` each)."""
    shape = require_images(est)
    if est.family.discrete_codes:  # a VQ-VAE draws from the prior over its index grid, once one is trained
        if not est.can_sample:
            raise ConfigError("the samples figure needs a prior to draw from; this VQ-VAE has none yet: train one with "
                              "`vaekit train-prior RUN`")
        return image_grid_figure(as_images(est.sample(n, seed=seed), shape), ncol,
                                 title="samples: index grids k ~ the code prior p(k), decoded")
    _require_vae(est, "samples figure")
    if est.is_conditional:
        k = est.n_classes_
        ncol = max(ncol, 10)
        imgs = np.concatenate([est.sample(ncol, label=c, seed=seed + c) for c in range(k)])
        return image_grid_figure(as_images(imgs, shape), ncol, title=f"samples p(x|z, c), z ~ {prior_symbol(est)}, one row per class",
                                 row_labels=_class_names(classes, k))
    imgs = est.sample(n, seed=seed)
    return image_grid_figure(as_images(imgs, shape), ncol, title=f"samples from the prior: {sample_caption(est)}")


def manifold_images(est, *, n: int = 15, dims: tuple[int, int] = (0, 1), label: int | None = None) -> np.ndarray:
    """The images of :func:`manifold_figure`, row by row from the top: shape (n * n, H, W) or (n * n, H, W, C).

    z_i runs along a row and z_j down the rows (largest at the top) over the Normal quantiles
    0.05 ... 0.95; the other dimensions are held at 0.
    """
    from scipy.stats import norm

    shape = require_images(est)
    d = est.model_.config.latent_dim
    i, j = (int(v) for v in dims)
    grid = norm.ppf(np.linspace(0.05, 0.95, n))
    Z = np.zeros((n * n, d), dtype=np.float32)
    for r, zj in enumerate(grid[::-1]):  # top row = largest z_j
        Z[r * n : (r + 1) * n, i] = grid
        Z[r * n : (r + 1) * n, j] = zj
    return as_images(est.decode(Z, est.class_labels(label, len(Z))), shape)


def manifold_figure(est, *, n: int = 15, dims: tuple[int, int] = (0, 1), label: int | None = None):
    """The learned manifold (Kingma & Welling 2014, fig. 4): decode z on an n x n grid.

    Grid points sit at the Normal quantiles 0.05 ... 0.95 of each axis (scipy.stats.norm.ppf), so
    equal areas of the prior get equal space. With more than two latent dimensions, the two in
    ``dims`` are traversed and the others held at the prior mean 0. The second dimension grows
    upwards, as on a plot.
    """
    from scipy.stats import norm

    require_images(est)
    _require_vae(est, "manifold figure")
    if not est.model_.config.prior_component.standard_normal:
        raise ConfigError("the manifold grid walks the quantiles of an N(0, I) prior, and this model's prior is learned or has two "
                          "layers; use `vaekit plot samples` or `vaekit plot latent` instead")
    d = est.model_.config.latent_dim
    if d < 2:
        raise ConfigError("the manifold figure needs at least 2 latent dimensions; this model has 1")
    i, j = (int(v) for v in dims)
    if i == j or not (0 <= i < d and 0 <= j < d):
        raise ConfigError(f"dims (--dims) must be two different latent dimensions in 0..{d - 1}, got {i},{j}")
    if n < 2:
        raise ConfigError(f"the manifold grid needs at least 2 points per axis, got {n}")
    grid = norm.ppf(np.linspace(0.05, 0.95, n))
    imgs = manifold_images(est, n=n, dims=(i, j), label=label)
    every = max(1, n // 6)
    cols = [f"{v:.2f}" if k % every == 0 else "" for k, v in enumerate(grid)]
    rows = [f"{v:.2f}" if k % every == 0 else "" for k, v in enumerate(grid[::-1])]
    what = "learned manifold" if d == 2 else f"traversal of z{i} and z{j} (other {d - 2} dimensions at 0)"
    return image_grid_figure(imgs, n, title=f"{what}: z at Normal quantiles 0.05 ... 0.95", col_labels=cols,
                             row_labels=rows, xlabel=f"z{i}", ylabel=f"z{j}")


TRAVERSAL_RANGE = 3.0  # a standard-normal prior's z_j is swept over [-3, 3]: its quantiles 0.0013 ... 0.9987
TRAVERSAL_MAX_DIMS = 10  # rows drawn: the dimensions with most KL first
TRAVERSAL_CODES = 1000  # test examples whose codes order the dimensions (KL) or set the sweep (no N(0, I) prior)


def traversal_order(est, X: np.ndarray, y: np.ndarray | None = None, kl_per_dim=None) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """(dimensions most KL first, their KL in nats or None, a note when they are in index order instead).

    ``kl_per_dim``: the KL of each dimension when already measured (``evaluate``'s ``kl_per_dim``);
    else it is measured on ``X`` (:func:`vaekit.metrics.kl_per_dimension`), against the prior's own
    marginals. A prior that refuses per-dimension KL (two stochastic layers) and an autoencoder (no
    prior) keep the index order, and the note says why.
    """
    d = est.model_.config.code_dim
    if kl_per_dim is None and est.family.has_density:
        import torch

        from .metrics import kl_per_dimension

        c = None if y is None or not est.is_conditional else torch.from_numpy(np.asarray(y, dtype=np.int64)).to(est.device_)
        try:
            kl_per_dim = kl_per_dimension(est.model_, torch.from_numpy(est.prepare_X(X)).to(est.device_), c).numpy()
        except ConfigError as e:
            return np.arange(d), None, f"in index order: {e}"
    if kl_per_dim is None:
        return np.arange(d), None, f"in index order: {est.family.article} {est.family.title} has no prior to measure KL against"
    kl = np.asarray(kl_per_dim, dtype=np.float64)
    return np.argsort(-kl, kind="stable"), kl, None


def traversal_values(est, codes: np.ndarray, steps: int) -> tuple[np.ndarray, str]:
    """The values each dimension is swept over, shape (code_dim, steps), and how they were chosen.

    A standard-normal prior: [-3, 3] for every dimension (the N(0, 1) quantiles 0.0013 ... 0.9987).
    Any other prior, or none: mean ± 3 sd of that dimension over ``codes`` (the aggregate
    posterior's spread), since the prior's scale is not N(0, 1) or there is no prior.
    """
    t = np.linspace(-TRAVERSAL_RANGE, TRAVERSAL_RANGE, steps)
    if est.model_.config.prior_component.standard_normal:
        return np.tile(t, (est.model_.config.code_dim, 1)), "over [−3, 3] (N(0, 1) quantiles 0.0013 … 0.9987)"
    codes = np.asarray(codes, dtype=np.float64)
    return codes.mean(0)[:, None] + codes.std(0)[:, None] * t, "over mean ± 3 sd of the test codes (no N(0, I) prior)"


def traversal_figure(est, X: np.ndarray, y: np.ndarray | None = None, *, kl_per_dim=None, steps: int = 11,
                     max_dims: int = TRAVERSAL_MAX_DIMS, seed: int = 0):
    """Latent traversal: one row per latent dimension (most KL first, at most ``max_dims``), E[x|z] with
    that dimension swept over :func:`traversal_values` and the others at the posterior mean μ(x) of one
    test example (seeded choice). A dimension that carries one factor changes one thing along its row.
    """
    shape = require_images(est)
    if steps < 2:
        raise ConfigError(f"a traversal needs at least 2 steps, got {steps}")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(X), min(len(X), TRAVERSAL_CODES), replace=False))
    Xs = X[pick] if hasattr(X, "shape") else np.asarray(X)[pick]  # a streamed X renders only the picked images
    ys = None if y is None else np.asarray(y)[pick]
    cond = ys if est.is_conditional else None
    codes = est.encode(Xs, cond)
    order, kl, _ = traversal_order(est, Xs, cond, kl_per_dim)
    values, how = traversal_values(est, codes, steps)
    base_i = int(rng.integers(len(codes)))
    rows = order[:max_dims]
    Z = np.repeat(codes[base_i][None], len(rows) * steps, axis=0).astype(np.float32)
    for r, j in enumerate(rows):
        Z[r * steps : (r + 1) * steps, j] = values[j]
    c = None if cond is None else np.full(len(Z), int(cond[base_i]), dtype=np.int64)
    imgs = as_images(est.decode(Z, c), shape)
    labels = [f"z{j}" + ("" if kl is None else f" ({kl[j]:.2f})") for j in rows]
    d = len(order)
    shown = f"the {len(rows)} of {d} dimensions with most KL (nats)" if kl is not None and len(rows) < d else (
        "dimensions by KL (nats), most first" if kl is not None else "in index order (no KL per dimension)")
    cols = [f"{v:.1f}" for v in np.linspace(-TRAVERSAL_RANGE, TRAVERSAL_RANGE, steps)]
    xlabel = "z_j" if est.model_.config.prior_component.standard_normal else "t in z_j = mean_j + t · sd_j"
    return image_grid_figure(imgs, steps, title=f"latent traversal: z_j swept {how}, the others at μ(x) of one test image",
                             row_labels=labels, col_labels=cols, xlabel=xlabel, ylabel=f"rows: {shown}")


def latent_figure(est, X: np.ndarray, y: np.ndarray, *, classes=None, method: str = "pca", max_points: int = 5000,
                  seed: int = 0):
    """Posterior means coloured by label: directly for a 2-D latent, else PCA or t-SNE to 2-D."""
    plt = _pyplot()
    if y is None:
        raise ConfigError("the latent scatter colours points by label, but this dataset has no labels; "
                          "pass a labelled --dataset (or --label-column for a table)")
    if method not in ("pca", "tsne"):
        raise ConfigError(f"unknown projection {method!r}; choose pca or tsne")
    X, y = np.asarray(X), np.asarray(y)
    if len(X) > max_points:
        keep = np.random.default_rng(seed).choice(len(X), max_points, replace=False)
        X, y = X[keep], y[keep]
    Z = est.encode(X, y if est.is_conditional else None)
    codes = est.family.codes  # posterior means, or an autoencoder's codes: points, not means
    if Z.shape[1] == 2:
        P, axes = Z, ("z0", "z1")
        how = codes
    elif Z.shape[1] == 1:
        P, axes, how = np.c_[Z[:, 0], np.random.default_rng(seed).uniform(-0.5, 0.5, len(Z))], ("z0", "jitter"), codes
    elif method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(2, random_state=seed).fit(Z)
        P = pca.transform(Z)
        ev = pca.explained_variance_ratio_
        axes, how = (f"PC1 ({100 * ev[0]:.0f}% of variance)", f"PC2 ({100 * ev[1]:.0f}%)"), f"PCA of {Z.shape[1]}-D {codes}"
    else:
        from sklearn.manifold import TSNE

        P = TSNE(2, random_state=seed, init="pca", perplexity=min(30.0, max(2.0, len(Z) / 4 - 1))).fit_transform(Z)
        axes, how = ("t-SNE 1", "t-SNE 2"), f"t-SNE of {Z.shape[1]}-D {codes}"
    labels = np.unique(y)
    names = _class_names(classes, int(labels.max()) + 1)
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(7.5, 6))
    for k, lab in enumerate(labels):
        m = y == lab
        ax.scatter(P[m, 0], P[m, 1], s=4, alpha=0.6, color=cmap(k % cmap.N), label=names[lab], rasterized=True)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(f"{how}, {len(Z)} examples, coloured by class", fontsize=10)
    if Z.shape[1] == 2:
        ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=4, frameon=False, fontsize=8, title="class")
    fig.tight_layout()
    return fig


def _class_means(est, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    Z = est.encode(X)
    return Z, {int(k): Z[y == k].mean(0) for k in np.unique(y)}


def class_mean_interpolation(est, X: np.ndarray, y: np.ndarray, *, a: int, b: int, steps: int = 10) -> np.ndarray:
    """Decoded points (1 - t) mean_a + t mean_b for t = 0 ... 1 in ``steps`` steps, where mean_k is
    the mean code of the examples of class k: images of shape (steps, H, W[, C])."""
    _, means = _class_means(est, np.asarray(X), np.asarray(y))
    t = np.linspace(0, 1, steps)[:, None]
    line = (1 - t) * means[a] + t * means[b]
    return as_images(est.decode(line.astype(np.float32)), require_images(est))


def latent_arithmetic(est, X: np.ndarray, y: np.ndarray, picks: list[int]) -> np.ndarray:
    """For each example X[p], p in ``picks``: decode z(x) - mean(class of x) + mean(class k) for every
    class k present in y, in class order. Returns images of shape (len(picks), n_classes, H, W[, C])."""
    X, y = np.asarray(X), np.asarray(y)
    Z, means = _class_means(est, X, y)
    shape = require_images(est)
    out = []
    for p in picks:
        shifted = np.stack([Z[p] - means[int(y[p])] + means[k] for k in sorted(means)]).astype(np.float32)
        out.append(as_images(est.decode(shifted), shape))
    return np.stack(out)


def interpolation_figure(est, X: np.ndarray, y: np.ndarray, *, a: int = 1, b: int = 7, steps: int = 10,
                         n_examples: int = 4, classes=None):
    """Top: decoded points on the line between the mean codes of classes a and b (the lecture's
    "manipulating digits"). Bottom: latent arithmetic z(x) - mean(class of x) + mean(class k) for a
    few examples x and every class k, which keeps the style of x and changes its class.
    """
    plt = _pyplot()
    shape = require_images(est)
    if y is None:
        raise ConfigError("interpolating between class means needs labels; pass labels y (or a labelled --dataset)")
    if est.is_conditional:
        raise ConfigError("a conditional model takes the class as an input, so class means of z are not its classes; "
                          "use `vaekit plot ... samples` or `manifold --label K` instead")
    X, y = np.asarray(X), np.asarray(y)
    present = np.unique(y)
    for cl in (a, b):
        if cl not in present:
            raise ConfigError(f"class {cl} has no examples in this data; choose classes (--classes) from {present.min()}..{present.max()}")
    if steps < 2:
        raise ConfigError(f"an interpolation needs at least 2 steps, got {steps}")
    names = _class_names(classes, int(present.max()) + 1)
    top = class_mean_interpolation(est, X, y, a=a, b=b, steps=steps)
    t = np.linspace(0, 1, steps)[:, None]
    # One example of each of the first classes, re-rendered as every class.
    picks = [int(np.flatnonzero(y == k)[0]) for k in present[:n_examples]]
    swapped = latent_arithmetic(est, X, y, picks)
    rows = []
    for p, row in zip(picks, swapped):
        rows += [as_images(X[p : p + 1], shape), row]
    bottom = np.concatenate(rows)
    h, w = top.shape[1:3]
    w1, h1 = _grid_size(1, steps, h, w)
    w2, h2 = _grid_size(len(picks), len(present) + 1, h, w)
    W = max(w1, w2) + 1.3
    fig = plt.figure(figsize=(W, h1 + h2 + 1.9))
    gs = fig.add_gridspec(2, 1, height_ratios=[h1 + 0.5, h2 + 0.9], hspace=0.45, left=1.0 / W, right=0.98, top=0.9, bottom=0.12)
    _draw_grid(fig.add_subplot(gs[0]), top, steps, title=f"from the mean code of class {names[a]} to that of class {names[b]}",
               col_labels=[f"{v:.2f}" for v in t[:, 0]], xlabel="t in (1 - t) mean_a + t mean_b")
    _draw_grid(fig.add_subplot(gs[1]), bottom, len(present) + 1,
               title="latent arithmetic: z(x) - mean(class of x) + mean(class k)",
               col_labels=["x"] + [names[int(k)] for k in present], row_labels=[f"x: a {names[int(y[p])]}" for p in picks],
               xlabel="k")
    return fig


def _epoch_axis(ax, epochs) -> None:
    """Whole epochs on the x axis, with room either side (a single epoch included)."""
    from matplotlib.ticker import MaxNLocator

    epochs = sorted(float(e) for e in epochs)
    if len(epochs) <= 12:
        ax.set_xticks(epochs)
        ax.set_xticklabels([f"{e:g}" for e in epochs])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)


def curves_figure(rows: list[dict], *, unit: str = "nats per example"):
    """Training curves: one panel per logged term, train and validation against the epoch."""
    plt = _pyplot()

    if not rows:
        raise ConfigError("metrics.csv has no epochs yet; train for at least one epoch")
    terms = [k[len("train_"):] for k in rows[0] if k.startswith("train_")]
    if any(r.get("val_iw_nll") for r in rows):  # logged every --val-nll-every epochs, validation only
        terms.append("iw_nll")
    epochs = [float(r["epoch"]) for r in rows]
    ncols = min(4, len(terms))
    nrows = math.ceil(len(terms) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows), squeeze=False)
    for ax, term in zip(axes.flat, terms):
        for split, style, color in (("train", "-o", "C0"), ("val", "--s", "C1")):
            vals = [r.get(f"{split}_{term}") for r in rows]
            pts = [(e, float(v)) for e, v in zip(epochs, vals) if v not in (None, "")]
            if pts:
                ax.plot(*zip(*pts), style, ms=3, color=color, label="validation" if split == "val" else "train")
        ax.set_title(term.replace("_", " "), fontsize=10)
        ax.set_xlabel("epoch")
        _epoch_axis(ax, epochs)
        ax.set_ylabel(unit, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(terms):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a run's metrics.csv as dicts of strings (empty list when it has no rows)."""
    import csv

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} not found; training curves need the metrics.csv that `vaekit train` writes")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def kl_dims_from_metrics(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, KL) from metrics.csv rows: KL has shape (epochs, latent_dim), nats per example.

    Reads the ``val_kl_dim_j`` columns that training logs for a VAE with an N(0, I) prior.
    """
    cols = sorted((k for k in (rows[0] if rows else {}) if k.startswith("val_kl_dim_")), key=lambda k: int(k.rsplit("_", 1)[1]))
    kept = [r for r in rows if cols and r.get(cols[0]) not in (None, "")]
    if not kept:
        raise ConfigError("metrics.csv has no KL per latent dimension (val_kl_dim_0, ...); it is logged for a VAE with the "
                          "N(0, I) prior and a validation split (--val-fraction > 0)")
    return np.array([float(r["epoch"]) for r in kept]), np.array([[float(r[c]) for c in cols] for r in kept])


def kl_per_dimension_figure(rows: list[dict], *, max_lines: int = 12):
    """KL(q(z_j|x) || N(0, 1)) of each latent dimension j against the epoch, on the validation split.

    Up to ``max_lines`` dimensions: one line each. More: a heat map (dimensions sorted by their last
    KL, most used at the top), so that a 100-dimensional code stays readable.
    """
    plt = _pyplot()

    epochs, kl = kl_dims_from_metrics(rows)
    d = kl.shape[1]
    order = np.argsort(kl[-1])[::-1]
    if d <= max_lines:
        fig, ax = plt.subplots(figsize=(7.5, 3.8))
        cmap = plt.get_cmap("tab10" if d <= 10 else "tab20")
        for rank, j in enumerate(order):
            ax.plot(epochs, kl[:, j], "-o", ms=3, color=cmap(rank % cmap.N), label=f"z{j}")
        ax.set_xlabel("epoch")
        _epoch_axis(ax, epochs)
        ax.set_ylabel("KL, nats per example")
        ax.axhline(0, color="0.6", lw=0.8)
        ax.grid(alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8, title="dimension")
        ax.set_title(f"KL per latent dimension (validation split); total at the last epoch {kl[-1].sum():.2f} nats", fontsize=10)
    else:
        fig, ax = plt.subplots(figsize=(8.5, max(4.0, min(6.5, 2.0 + 0.08 * d))))
        extent = (epochs[0] - 0.5, epochs[-1] + 0.5, d - 0.5, -0.5)
        im = ax.imshow(kl[:, order].T, aspect="auto", cmap="viridis", interpolation="nearest", extent=extent, vmin=0)
        step = max(1, d // 20)
        ax.set_yticks(range(0, d, step))
        ax.set_yticklabels([f"z{order[r]}" for r in range(0, d, step)], fontsize=7)
        ax.set_xlabel("epoch")
        ax.set_ylabel("latent dimension (most used at the top)")
        fig.colorbar(im, ax=ax, label="KL, nats per example")
        _epoch_axis(ax, epochs)
        ax.set_title(f"KL per latent dimension (validation split), {d} dimensions sorted by their last KL; "
                     f"total {kl[-1].sum():.2f} nats", fontsize=10)
    fig.tight_layout()
    return fig


def bound_gap_figure(r: dict):
    """Left: a waterfall from E_q[log p(x|z)] down by the KL to the ELBO, and up by the gap to the
    importance-weighted log p(x). Right: the bound L_k against k (log axis). ``r`` is the dict of
    :func:`vaekit.evaluate.bound_against_k`; nats per example.
    """
    plt = _pyplot()
    ks, bound = np.array(r["k"]), np.array(r["bound"])
    rec, elbo, iw = r["log_likelihood"], bound[0], bound[-1]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [1.1, 1]})
    # Floating bars: each step of log p(x) = E_q[log p(x|z)] - KL + gap is drawn where it happens.
    steps = [("E_q[log p(x|z)]", rec, rec, "C0"), ("− KL", rec, elbo, "C3"), ("= ELBO", elbo, elbo, "C2"),
             ("+ gap", elbo, iw, "C1"), (f"= IW log p(x)\n(k = {ks[-1]})", iw, iw, "C1")]
    lo, hi = min(rec, elbo, iw), max(rec, elbo, iw)
    span = max(hi - lo, 1e-6)
    for x, (_, a, b, color) in enumerate(steps):
        if a == b:  # a level: a thick tick
            ax.hlines(a, x - 0.32, x + 0.32, colors=color, lw=3)
            ax.text(x, a + 0.03 * span, f"{a:.2f}", ha="center", va="bottom", fontsize=8)
        else:
            ax.bar(x, b - a, bottom=a, width=0.5, color=color, alpha=0.8)
            ax.text(x, max(a, b) + 0.03 * span, f"{b - a:+.2f}", ha="center", va="bottom", fontsize=8)
        if x + 1 < len(steps):
            ax.plot([x + 0.32, x + 0.68], [b, b], ":", color="0.4", lw=0.8)
    ax.set_xticks(range(len(steps)))
    ax.set_xticklabels([s[0] for s in steps], fontsize=8)
    ax.set_xlim(-0.6, len(steps) - 0.4)
    ax.set_ylim(lo - 0.15 * span, hi + 0.2 * span)
    ax.set_ylabel("nats per example")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"from the ELBO's terms to log p(x), {r['n']} test examples", fontsize=10)
    se = np.asarray(r.get("gap_se", np.zeros(len(ks))))
    bx.errorbar(ks, bound, yerr=se, fmt="-o", color="C1", ms=4, capsize=2,
                label="L_k, importance-weighted bound\n(± standard error of L_k − ELBO)")
    bx.axhline(elbo, color="C2", ls="--", lw=1, label="ELBO = L_1")
    bx.fill_between(ks, elbo, bound, color="C1", alpha=0.15, lw=0, label="gap L_k − ELBO")
    bx.set_xscale("log", base=2)
    bx.set_xticks(ks)
    bx.set_xticklabels([str(k) for k in ks], fontsize=8)
    bx.set_xlabel("k, importance samples per example")
    bx.set_ylabel("nats per example")
    bx.grid(alpha=0.3)
    bx.legend(fontsize=8, loc="upper left")  # the curve rises from the lower left: keep it clear
    bx.set_title(f"the bound against k: gap {iw - elbo:.2f} nats at k = {ks[-1]}", fontsize=10)
    fig.tight_layout()
    return fig


def rate_distortion_figure(points: list[dict]):
    """Rate R = KL(q(z|x) || p(z)) against distortion D = -E_q[log p(x|z)], nats per example.

    ``points``: dicts with ``name``, ``distortion`` and ``rate`` (None for a model without a KL, an
    autoencoder: drawn as a horizontal line at its distortion, labelled at the right). Dashed
    diagonals are lines of equal ELBO = -(D + R) (Alemi et al. 2018, "Fixing a broken ELBO").
    """
    plt = _pyplot()
    if not points:
        raise ConfigError("the rate-distortion figure needs at least one run whose reconstruction term is in nats")
    fig, ax = plt.subplots(figsize=(8, 5.2))
    vae = [p for p in points if p.get("rate") is not None]
    ae = [p for p in points if p.get("rate") is None]
    rates = [p["rate"] for p in vae] or [0.0]
    dists = [p["distortion"] for p in points]
    r_hi = max(rates) * 1.25 + 1.0
    d_lo, d_hi = min(dists), max(dists)
    pad = 0.12 * (d_hi - d_lo) + 2.0
    y0, y1 = max(0.0, d_lo - pad), d_hi + pad
    ax.set_xlim(0, r_hi)
    ax.set_ylim(y0, y1)
    # Lines of equal ELBO, D + R = c, labelled where they enter the plot (left or top edge).
    for c in np.linspace(y0, y1 + r_hi, 7)[1:-1]:
        ax.plot([0, r_hi], [c, c - r_hi], ls="--", color="0.75", lw=0.8, zorder=0)
        r0 = max(0.0, c - y1)
        # Inside the axes: a label above a line that enters at the top edge would sit on the title.
        top = r0 > 0
        ax.annotate(f"ELBO = {-c:.0f}", xy=(r0, c - r0), xytext=(4, -3 if top else 2), textcoords="offset points", fontsize=7,
                    color="0.45", ha="left", va="top" if top else "bottom", rotation=0)
    for i, p in enumerate(vae):
        ax.plot(p["rate"], p["distortion"], "o", ms=8, color=f"C{i % 10}", zorder=3)
        ax.annotate(p["name"], (p["rate"], p["distortion"]), textcoords="offset points", xytext=(6, 6), fontsize=8)
    for p in ae:
        ax.axhline(p["distortion"], color="0.25", ls=":", lw=1.2)
        ax.annotate(f"{p['name']} (autoencoder: no KL, rate undefined)", xy=(r_hi, p["distortion"]), xytext=(-4, 4),
                    textcoords="offset points", ha="right", fontsize=8, color="0.25")
    ax.set_xlabel("rate R = KL(q(z|x) ‖ p(z)), nats per example")
    ax.set_ylabel("distortion D = −E_q[log p(x|z)], nats per example")
    ax.set_title("rate against distortion, test split (down and to the left is better)", fontsize=10)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    return fig


def reconstructions_compare_figure(ests: list, names: list[str], X: np.ndarray, y: np.ndarray | None = None, *, n: int = 10):
    """The same ``n`` examples (top row) and each model's reconstruction below, one row per model."""
    shape = require_images(ests[0])
    X = np.asarray(X)[:n]
    rows = [as_images(X, shape)]
    for est in ests:
        c = np.asarray(y)[:n] if y is not None and est.is_conditional else None
        rows.append(as_images(est.reconstruct(X, c), shape))
    return image_grid_figure(np.concatenate(rows), len(X), title="originals (top) and each run's reconstruction",
                             row_labels=["original", *names])
