"""Honest numbers for a trained model: ELBO, importance-weighted log-likelihood, reconstruction
error, active units, KL per latent dimension and the quality of the codes as features.

Two layers:

- functions on a torch module and tensors (:func:`elbo`, :func:`iw_log_likelihood`,
  :func:`kl_per_dimension`) that need only the model contract of models.py
  (``inference`` / ``log_likelihood`` / ``prior`` / ``loss``);
- :func:`evaluate` on a fitted estimator and NumPy arrays, which runs all that applies to the model
  and returns a JSON-ready dict; :func:`format_results` turns it into the lines ``vaekit evaluate``
  prints.

Every log-likelihood-like number is in nats per example, averaged over the whole split.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from .errors import ConfigError, DataError
from .metrics import DEFAULT_K, evaluate_loss, iw_log_likelihood, kl_per_dimension
from .objectives import importance_weights
from .registry import LIKELIHOODS

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. (2015), section 5.2
EVAL_BINARIZE_SEED = 0

__all__ = [
    "elbo", "loss_terms", "iw_log_likelihood", "bound_against_k", "reconstruction_error", "active_units", "latent_variances",
    "kl_per_dimension", "probe_accuracy", "binarize_for_eval", "evaluate", "format_results",
]


# -- on a torch module --------------------------------------------------------------------------


@torch.no_grad()
def elbo(model: nn.Module, X: Tensor, y: Tensor | None = None, *, batch_size: int = 1024, seed: int = 0) -> dict[str, float]:
    """The ELBO over all of X with its two terms, in nats per example (one z draw per example).

    Returns ``{"elbo", "log_likelihood", "kl"}`` where ``log_likelihood`` is E_q[log p(x|z)] and
    ``elbo = log_likelihood - kl`` (<= 0 for discrete data). Seeded, so a call is repeatable.
    """
    if not model.family.has_density:
        raise ConfigError("the ELBO needs a VAE; an autoencoder has no posterior or prior (use reconstruction_error)")
    terms = loss_terms(model, X, y, batch_size=batch_size, seed=seed)
    return {k: terms[k] for k in ("elbo", "log_likelihood", "kl")}


@torch.no_grad()
def loss_terms(model: nn.Module, X: Tensor, y: Tensor | None = None, *, batch_size: int = 1024, seed: int = 0) -> dict[str, float]:
    """The model's own training objective over all of X: ``loss`` and its named terms, per example.

    Seeded (a VAE's loss draws z), so a call is repeatable; units as in the model's ``loss``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return evaluate_loss(model, X, y, batch_size=batch_size)


@torch.no_grad()
def bound_against_k(model: nn.Module, X: Tensor, y: Tensor | None = None, *, k_max: int = 128,
                    batch_size: int = 50, seed: int = 0) -> dict:
    """The ELBO's two terms and the importance-weighted bound L_k for k = 1, 2, 4, ..., ``k_max``.

    L_k = E[log (1/k) sum_i p(x, z_i) / q(z_i|x)], z_i ~ q(z|x) (Burda et al. 2015, eq. 8); L_1 is
    the ELBO and L_k rises towards log p(x) as k grows. One draw of ``k_max`` samples per example
    serves every k: L_k is the mean over the k_max / k disjoint groups of k samples, an unbiased
    estimate of L_k. Groups are nested (each group of 2k is two groups of k), so by Jensen's
    inequality the estimates never decrease with k, example by example.

    Returns a dict with ``k`` (list), ``bound`` (mean L_k per k), ``gap_se`` (the standard error
    over examples of L_k - L_1), ``log_likelihood`` (E_q[log p(x|z)]) and ``kl`` (E_q[log q(z|x) - log p(z)],
    the Monte-Carlo KL of the same draws, so ``log_likelihood - kl == bound[0]``), and ``n``; all in
    nats per example. ``k_max`` must be a power of two.
    """
    if not model.family.has_density:
        raise ConfigError("the importance-weighted bound needs a VAE; an autoencoder has no posterior or prior")
    if k_max < 1 or k_max & (k_max - 1):
        raise ConfigError(f"k_max must be a power of two (1, 2, 4, ...), got {k_max}")
    if len(X) == 0:
        raise DataError("the bound against k needs at least one example")
    ks = [2**i for i in range(k_max.bit_length())]
    was_training = model.training
    model.eval()
    bounds, log_liks, kls = [], [], []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(0, len(X), batch_size):
            xb = X[i : i + batch_size]
            cb = None if y is None else y[i : i + batch_size]
            w = importance_weights(model, xb, cb, k_max, dtype=torch.float64)  # (k_max, B) each
            per_k = [(torch.logsumexp(w.log_w.view(k_max // k, k, -1), 1) - math.log(k)).mean(0) for k in ks]
            bounds.append(torch.stack(per_k, 1).cpu())  # (B, len(ks))
            log_liks.append(w.log_likelihood.mean(0).cpu())
            kls.append(-w.log_ratio.mean(0).cpu())
    model.train(was_training)
    b = torch.cat(bounds)
    gap = b - b[:, :1]  # per example, so that the spread of log p(x) across examples does not swamp it
    se = gap.std(0) / math.sqrt(len(b)) if len(b) > 1 else torch.zeros(len(ks), dtype=torch.float64)
    return {"k": ks, "bound": b.mean(0).tolist(), "gap_se": se.tolist(),
            "log_likelihood": float(torch.cat(log_liks).mean()), "kl": float(torch.cat(kls).mean()), "n": int(len(b))}


# -- on arrays ----------------------------------------------------------------------------------


def latent_variances(codes: np.ndarray) -> np.ndarray:
    """Cov_x(E_q[z_j | x]) for each dimension j: the variance over examples of the posterior means."""
    codes = np.asarray(codes, dtype=np.float64)
    return codes.var(0)


def active_units(codes: np.ndarray, threshold: float = ACTIVE_UNIT_THRESHOLD) -> np.ndarray:
    """Which latent dimensions are active: Cov_x(E_q[z_j|x]) > ``threshold`` (Burda et al. 2015).

    ``codes`` are posterior means, shape (N, latent_dim). Returns a boolean array (latent_dim,).
    """
    return latent_variances(codes) > threshold


def reconstruction_error(X: np.ndarray, X_hat: np.ndarray, *, binary: bool | None = None) -> dict[str, float]:
    """Reconstruction error of ``X_hat`` (e.g. ``est.reconstruct(X)``) against X, averaged over examples.

    ``mse``: squared error per value (mean over examples and features); ``sse``: squared error per
    example (summed over features); ``bce`` (when X is binary, or ``binary=True``): binary
    cross-entropy in nats per example, with X_hat read as pixel probabilities.
    """
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    X_hat = np.asarray(X_hat, dtype=np.float64).reshape(len(X_hat), -1)
    if X.shape != X_hat.shape:
        raise DataError(f"reconstructions have shape {X_hat.shape} but the data {X.shape}; pass est.reconstruct(X)")
    sq = (X - X_hat) ** 2
    out = {"mse": float(sq.mean()), "sse": float(sq.sum(1).mean())}
    if binary is None:
        binary = bool(np.isin(X, (0.0, 1.0)).all())
    if binary:
        # Clamped like torch's binary_cross_entropy, so a saturated pixel costs at most 100 nats.
        p = np.clip(X_hat, 0.0, 1.0)
        with np.errstate(divide="ignore"):
            log_p, log_1mp = np.maximum(np.log(p), -100.0), np.maximum(np.log1p(-p), -100.0)
        out["bce"] = float(-(X * log_p + (1 - X) * log_1mp).sum(1).mean())
    return out


def probe_accuracy(Z_train: np.ndarray, y_train: np.ndarray, Z_test: np.ndarray, y_test: np.ndarray,
                   *, n_neighbors: int = 5, seed: int = 0) -> dict[str, float]:
    """Test accuracy of a logistic-regression probe and a k-NN classifier fitted on training codes.

    Codes are standardized (fitted on the training codes) before both classifiers, so that a few
    dimensions of large variance do not dominate the distances.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y_train)) < 2:
        raise DataError("a probe needs at least two classes in the training labels")
    logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=min(n_neighbors, len(Z_train))))
    return {
        "probe_logreg_accuracy": float(logreg.fit(Z_train, y_train).score(Z_test, y_test)),
        "probe_knn_accuracy": float(knn.fit(Z_train, y_train).score(Z_test, y_test)),
    }


def binarize_for_eval(est, X: np.ndarray, seed: int = EVAL_BINARIZE_SEED) -> tuple[np.ndarray, str]:
    """The data a model should be scored on, and a sentence that says which binarization was used.

    A model trained with ``binarize='dynamic'`` or ``'static'`` saw binary images, so its likelihood
    is scored on a binary test set: one static Bernoulli draw of each pixel with a fixed seed (the
    convention of Burda et al. 2015). Data that are already binary are left alone.
    """
    from .data import binarize

    mode = getattr(est, "binarize", "none") or "none"
    if np.isin(X, (0.0, 1.0)).all():
        return X, "none (the data are already binary)"
    if mode == "none":
        return X, "none (gray levels as given; the model was trained without binarization)"
    return binarize(X, seed), f"static Bernoulli draw of each pixel, seed {seed} (the model was trained with binarize={mode!r})"


# -- everything at once -------------------------------------------------------------------------


def evaluate(est, X: np.ndarray, y: np.ndarray | None = None, *, X_train: np.ndarray | None = None,
             y_train: np.ndarray | None = None, k: int = DEFAULT_K, iw_limit: int | None = None,
             binarize: bool = True, seed: int = 0, batch_size: int = 100, progress=False) -> dict:
    """All the metrics that apply to a fitted estimator, on the examples X (labels y if any).

    VAE: ELBO and its terms, importance-weighted log-likelihood with ``k`` samples (on the first
    ``iw_limit`` examples if given), KL per dimension and active units. Every model: reconstruction
    error through the posterior mean (the code), and, when ``y`` and ``X_train``/``y_train`` are
    given, the logistic-regression and k-NN probe accuracies on the codes.
    ``binarize``: score a model trained on binarized data on a static binarization of X (see
    :func:`binarize_for_eval`). ``progress``: for the importance-weighted estimate, a bar (True) or a
    function of (done, total), as in :func:`vaekit.metrics.iw_log_likelihood`. Returns a JSON-ready dict;
    log-likelihoods in nats per example.
    """
    est.check_fitted()
    conditional = est.is_conditional
    is_vae = est.model_.family.has_density
    results: dict = {"n": int(len(X)), "model": est.family.json_name,
                     "latent_dim": int(est.model_.config.code_dim), "likelihood": est.likelihood}
    if binarize:
        X, results["binarization"] = binarize_for_eval(est, X)
    else:
        results["binarization"] = "none (switched off)"
    cond = y if conditional else None
    codes = est.encode(X, cond)
    recon = est.reconstruct(X, cond)
    results.update(reconstruction_error(X, recon))
    Xt = torch.from_numpy(est.prepare_X(X)).to(est.device_)
    yt = None if cond is None else torch.from_numpy(np.asarray(cond, dtype=np.int64)).to(est.device_)
    # The training objective on this split (VAE: loss = -ELBO with its two terms; autoencoder: its
    # reconstruction loss and any sparsity penalty), so test and training numbers can be compared.
    results.update(loss_terms(est.model_, Xt, yt, seed=seed))
    if is_vae:
        # A location-scale posterior against N(0, I) has a closed-form KL (vaekit.distributions registers
        # one); a flow posterior or a mixture prior has none, and the KL is log q(z|x) - log p(z) at the draws.
        cfg = est.model_.config
        results["kl_estimate"] = "closed form" if cfg.prior_component.standard_normal and cfg.posterior_component.location_scale \
            else "monte-carlo"
        n_iw = len(Xt) if iw_limit is None else min(iw_limit, len(Xt))
        iw = iw_log_likelihood(est.model_, Xt[:n_iw], None if yt is None else yt[:n_iw], k=k, batch_size=batch_size, seed=seed,
                                progress=progress)
        results.update({"iw_log_likelihood": float(iw.mean()), "iw_nll": float(-iw.mean()), "iw_k": int(k), "iw_n": int(n_iw)})
        if est.model_.config.prior_component.standard_normal and est.model_.config.posterior_component.location_scale:
            # Per-dimension KLs add up to the ELBO's KL only against a factorized N(0, I) prior (and a flow's are unknown).
            kl_dims = kl_per_dimension(est.model_, Xt, yt, seed=seed)
            results["kl_per_dim"] = [float(v) for v in kl_dims]
        var = latent_variances(codes)
        results["latent_variance"] = [float(v) for v in var]
        results["active_units"] = int((var > ACTIVE_UNIT_THRESHOLD).sum())
    if est.family.discrete_codes:
        results.update(_codebook_results(est, X, results["mse"]))
    if y is not None and X_train is not None and y_train is not None:
        ytr = np.asarray(y_train)
        Xtr = X_train
        if binarize and results["binarization"].startswith("static"):
            Xtr, _ = binarize_for_eval(est, X_train, seed + 1)
        codes_train = est.encode(Xtr, ytr if conditional else None)
        results.update(probe_accuracy(codes_train, ytr, codes, np.asarray(y), seed=seed))
        results["probe_n_train"] = int(len(Xtr))
    return results


def _codebook_results(est, X: np.ndarray, mse: float) -> dict:
    """A VQ-VAE's use of its codebook on X (perplexity, share of entries used) and the reconstruction's
    PSNR, 10 log10(1 / MSE) in dB for pixels in [0, 1]."""
    out = est.codebook_usage(X)
    out["psnr"] = float(10 * np.log10(1.0 / mse)) if mse > 0 else float("inf")
    if est.can_sample:  # a prior over the index grid was trained (vaekit train-prior)
        out["prior_nll"] = float(est.prior_nll(X).mean())
        if LIKELIHOODS[est.likelihood].discrete:
            out["nll_bound"] = float(-est.log_likelihood_bound(X).mean())
    return out


def format_results(r: dict) -> list[str]:
    """The lines ``vaekit evaluate`` prints: every number with its unit."""
    lines = [f"  binarization       {r['binarization']}"]
    unit = "nats/example" if "elbo" in r else f"{LIKELIHOODS[r['likelihood']].loss_unit}/example"
    lines.append(f"  training loss      {r['loss']:12.4f} {unit}  (the model's own objective" + (", = -ELBO)" if "elbo" in r else ")"))
    for name in ("reconstruction", "sparsity", "commitment"):
        if name in r:
            lines.append(f"    {name:<16} {r[name]:12.4f} {unit}")
    if "elbo" in r:
        lines += [
            f"  ELBO               {r['elbo']:12.4f} nats/example  (one z draw per example)",
            f"    E_q[log p(x|z)]  {r['log_likelihood']:12.4f} nats/example",
            f"    KL(q(z|x)||p(z)) {r['kl']:12.4f} nats/example" + ("  (Monte-Carlo: log q(z|x) - log p(z) at the draws)"
                                                                       if r.get("kl_estimate") == "monte-carlo" else ""),
            f"  IW log p(x)        {r['iw_log_likelihood']:12.4f} nats/example  (k={r['iw_k']} importance samples, {r['iw_n']} examples)",
            f"  test NLL           {r['iw_nll']:12.4f} nats/example  (= -IW log p(x); compare with published NLLs only on binarized data)",
        ]
    lines.append(f"  reconstruction MSE {r['mse']:12.6f} per value  ({r['sse']:.4f} summed over features per example)")
    if "bce" in r:
        lines.append(f"  reconstruction BCE {r['bce']:12.4f} nats/example")
    if "psnr" in r:
        lines.append(f"  PSNR               {r['psnr']:12.2f} dB  (10 log10(1 / MSE), pixels in [0, 1])")
    if "perplexity" in r:
        lines.append(f"  codebook perplexity{r['perplexity']:12.2f}  of {r['codebook_size']} entries (exp of the entropy of their use; "
                     f"{r['codebook_size']} when all are used evenly)")
        lines.append(f"  codebook usage     {r['usage']:12.1%}  of the entries chosen by at least one cell of these codes")
    if "prior_nll" in r:
        lines.append(f"  prior NLL          {r['prior_nll']:12.4f} nats/example  (-log p(k) of each image's index grid under the code prior)")
    if "nll_bound" in r:
        lines.append(f"  NLL bound          {r['nll_bound']:12.4f} nats/example  (reconstruction + prior NLL: -log p(x) is at most this)")
    if "active_units" in r:
        lines.append(f"  active units       {r['active_units']:>7d} of {r['latent_dim']}  (Cov_x(E_q[z_j]) > {ACTIVE_UNIT_THRESHOLD})")
    if "kl_per_dim" in r:
        kl = ", ".join(f"{v:.2f}" for v in r["kl_per_dim"])
        lines.append(f"  KL per dimension   [{kl}] nats")
    if "probe_logreg_accuracy" in r:
        lines.append(f"  linear probe       {100 * r['probe_logreg_accuracy']:11.2f} %  "
                     f"(logistic regression on codes, fitted on {r['probe_n_train']} training examples)")
        lines.append(f"  k-NN probe         {100 * r['probe_knn_accuracy']:11.2f} %  (5 nearest neighbours on codes)")
    return lines
