"""Every parameter of the anomaly detectors, declared once.

:data:`DETECTOR_OPTIONS` is a table of :class:`vaekit.options.Option` s whose ``kinds`` are the
detector classes' names. From it derive both detectors' ``__init__`` (``vaekit.options.make_init``:
names, order and defaults, so scikit-learn's ``get_params`` / ``clone`` and the saved
detector.json see them), their validation (:func:`check_detector_params`) and the
``vaekit detect fit`` flags with their help and defaults (``vaekit.cli.detect``). ``target``
says where a value goes: ``"estimator"``, unchanged to the wrapped vaekit estimator;
``"detector"``, read by the detector itself.

Which model family a detector wraps is a ``vaekit.registry.FAMILIES`` entry (:data:`WRAPS`), and
the choices follow from it: the density scores need ``family.has_density``, the likelihoods
are those of the family whose log-density is a sum over the table's columns (``column_sum``,
which ``explain`` splits up). Standard library only, so that ``vaekit --help`` stays fast.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..options import ACTIVATIONS, Option, check_params, defaults, options_for
from ..registry import LIKELIHOODS, family_of_estimator

KINDS = ("VAEDetector", "AutoencoderDetector")
# The model family each detector trains: the FAMILIES entry of its estimator class.
WRAPS = {"VAEDetector": family_of_estimator("VAE"), "AutoencoderDetector": family_of_estimator("Autoencoder")}
DENSITY_KINDS = tuple(k for k in KINDS if WRAPS[k].has_density)

METHODS = ("combined", "elbo", "likelihood", "reconstruction", "latent", "knn")
# The scores that are a (bound on the) log-density: a model without one cannot give them.
DENSITY_METHODS = ("elbo", "likelihood")
PROBA_METHODS = ("linear", "unify", "conformal")
# The terms a combined score can add: those computed from the network and the saved reference sets
# alone ("latent" needs k-means centres that only method="latent" fits), and "knn_input", the
# distance to the nearest training rows in the scaled input space, a term of "combined" only.
COMBINABLE = ("elbo", "likelihood", "reconstruction", "knn", "knn_input")
# The terms method="combined" adds, each as a robust z-score of its training values, keyed by (the
# family has a density, novelty). Chosen by leave-one-group-out over the tables listed in
# docs/anomaly.md, each protocol on its own (bench/anomaly_terms.py, then bench/anomaly_select.py):
# outlier detection (novelty=False: the training rows may hold anomalies) on the unsupervised protocol,
# novelty detection (training rows known to be normal) on the normal-only one.
COMBINED_TERMS = {(True, False): ("likelihood", "knn_input"), (True, True): ("elbo", "knn_input"),
                  (False, False): ("knn", "knn_input"), (False, True): ("reconstruction", "knn_input")}
# Outlier detection: the share of training rows, those with the highest first-pass score, that the
# neighbour terms' reference set is not drawn from (the first pass: FIRST_PASS_TERMS over a reference
# drawn from all rows). Anomalies in the training rows would otherwise be each other's neighbours.
REFERENCE_TRIM = {True: 0.4, False: 0.2}
FIRST_PASS_TERMS = {True: ("elbo", "knn", "knn_input"), False: ("reconstruction", "knn", "knn_input")}
SCALINGS = ("robust", "standard", "none")


def methods_for(kind: str) -> tuple[str, ...]:
    """The score methods a detector class offers: the density scores only on a family with a density."""
    return METHODS if WRAPS[kind].has_density else tuple(m for m in METHODS if m not in DENSITY_METHODS)


def column_sum_likelihoods(kind: str) -> tuple[str, ...]:
    """The likelihoods a detector class takes: its family's, those whose log-density sums over columns."""
    return LIKELIHOODS.names(WRAPS[kind].name, column_sum=True)


def combined_terms_for(family, novelty: bool = False) -> tuple[str, ...]:
    """The terms a new fit of ``method="combined"`` adds for a model family (a registry entry)."""
    return COMBINED_TERMS[bool(family.has_density), bool(novelty)]


def resolved_neighbors(n_neighbors, novelty: bool) -> int:
    """``n_neighbors`` with 'auto' resolved: 5 for novelty detection, 10 otherwise (see docs/anomaly.md)."""
    return (5 if novelty else 10) if n_neighbors == "auto" else int(n_neighbors)


class DetectorOption(Option):
    """An :class:`Option` with the detectors' extra value kinds.

    ``type='columns'``: column names or positions, or None (the preprocessor checks them against
    the data at fit). ``extra['auto']``: the string 'auto' is also allowed (resolved at fit from the
    table's size). ``extra['error']``: the message of a bad value, formatted with ``name``,
    ``value``, ``type`` (its type's name), ``kind`` and ``choices``.
    """

    def expectation(self, kind: str) -> str:
        if self.type == "columns":
            return "a list of column names or positions" + (", 'auto'" if self.extra.get("auto") else "") + " or None"
        text = super().expectation(kind)
        return "'auto' or " + text if self.extra.get("auto") else text

    def check(self, value, kind: str):
        if self.type == "columns" or (self.extra.get("auto") and isinstance(value, str) and value == "auto"):
            return value
        try:
            return super().check(value, kind)
        except ConfigError:
            if "error" not in self.extra:
                raise
            choices = ", ".join(repr(c) for c in self.choices_for(kind) or ())
            raise ConfigError(self.extra["error"].format(name=self.name, value=value, type=type(value).__name__, kind=kind,
                                                         choices=choices)) from None


_AUTO_INT = {"auto": True}
_DET, _EST = "detector", "estimator"

# The signature order (VAEDetector's; AutoencoderDetector's leaves out the VAE-only options).
# ``help`` is the command line's; ``flag=None``: no `vaekit detect fit` flag.
DETECTOR_OPTIONS: tuple[DetectorOption, ...] = (
    DetectorOption("method", "str", "combined", "anomaly score",
                   kinds=KINDS, target=_DET, choices={k: methods_for(k) for k in KINDS}, flag="--method",
                   extra={"aliases": ("--score",), "error": "unknown score method {value!r}; choose one of {choices}"}),
    DetectorOption("contamination", "float", 0.01, "expected share of anomalies in the training data, the threshold a quantile of the training "
                   "scores (with --fit-on normal: the share of new normal rows to flag at most, the threshold set on held-out rows)",
                   kinds=KINDS, target=_DET, low=0, high=0.5, low_open=True,
                   extra={"error": "contamination (the share of rows to flag) must be in (0, 0.5], got {value!r}; e.g. 0.01"}),
    DetectorOption("threshold", "float", None, "explicit score threshold (overrides --contamination)", kinds=KINDS, target=_DET, nullable=True,
                   extra={"error": "threshold must be a finite number (a decision_function value), got {value!r}"}),
    DetectorOption("latent_dim", "int", "auto", "size of the code z (auto: half the columns, 2 to 8)", kinds=KINDS, target=_DET, low=1,
                   extra=_AUTO_INT),
    DetectorOption("hidden", "sizes", (64,), "hidden layer sizes, e.g. 64 or 128,64", kinds=KINDS, target=_EST, metavar="SIZES"),
    DetectorOption("activation", "str", "relu", "hidden activation", kinds=KINDS, target=_EST, choices=ACTIVATIONS, flag=None),
    DetectorOption("likelihood", "str", "gaussian", "decoder distribution p(x|z)", kinds=KINDS, target=_EST, flag=None,
                   choices={k: column_sum_likelihoods(k) for k in KINDS},
                   extra={"error": "likelihood {value!r} is not available for {kind}; choose one of {choices}"}),
    DetectorOption("scaling", "str", "robust", "per-column scaling of the numeric features (robust: median, max(std, IQR/1.349), "
                   "compressed tails)", kinds=KINDS, target=_DET, choices=SCALINGS,
                   extra={"error": "unknown scaling {value!r}; choose one of {choices}"}),
    DetectorOption("categorical", "columns", None, "comma-separated columns to one-hot encode (unseen categories score as all-zero)",
                   kinds=KINDS, target=_DET, nullable=True, metavar="A,B"),
    DetectorOption("impute", "bool", False, "fill NaN/Inf with the training medians instead of failing", kinds=KINDS, target=_DET),
    DetectorOption("id_columns", "columns", "auto", "columns left out of the features", kinds=KINDS, target=_DET, nullable=True, flag=None,
                   extra={"auto": True}),
    DetectorOption("keep_columns", "columns", None, "use COL as a feature even though it looks ID-like (repeatable). ID-like columns are "
                   "left out with a warning: at least 20 rows and a different value in every row, holding text, or integers that rise or "
                   "fall row by row, or integers under an identifier's name (id, tx_id, customerId, uuid, key, index)",
                   kinds=KINDS, target=_DET, nullable=True, flag="--keep-column", metavar="COL", extra={"action": "append"}),
    DetectorOption("n_clusters", "int", 8, "k-means centres of the training codes (--method latent)", kinds=KINDS, target=_DET, low=1),
    DetectorOption("n_neighbors", "int", "auto", "neighbours among the saved training codes (knn) and rows (knn_input, a term of "
                   "combined); auto: 10, or 5 for training rows known to be normal (--fit-on normal)",
                   kinds=KINDS, target=_DET, low=1, flag="--n-neighbors",
                   extra=_AUTO_INT),
    DetectorOption("novelty", "bool", False, "the training rows are known to be normal (novelty detection); --fit-on normal sets it",
                   kinds=KINDS, target=_DET, flag=None),
    DetectorOption("n_score_samples", "int", 8, "z draws of the Monte-Carlo scores", kinds=DENSITY_KINDS, target=_DET, low=1, flag=None),
    DetectorOption("beta", "float", 1.0, "weight of the KL term in training", kinds=DENSITY_KINDS, target=_EST, low=0, flag=None),
    DetectorOption("learn_sigma", "bool", True, "learn a per-feature decoder sigma", kinds=DENSITY_KINDS, target=_EST, flag=None),
    DetectorOption("proba", "str", "linear", "how predict_proba maps scores to [0, 1]", kinds=KINDS, target=_DET, choices=PROBA_METHODS,
                   flag=None, extra={"error": "unknown proba method {value!r}; choose one of {choices}"}),
    DetectorOption("n_steps", "int", "auto", "optimization steps (auto: 1500 whatever the table's size)", kinds=KINDS, target=_DET, low=1,
                   flag="--steps", extra=_AUTO_INT),
    DetectorOption("batch_size", "int", "auto", "rows per training step (auto: 128, up to 1024 for large tables)", kinds=KINDS, target=_DET,
                   low=1, extra=_AUTO_INT),
    DetectorOption("lr", "float", 1e-3, "learning rate (Adam)", kinds=KINDS, target=_EST, low=0, low_open=True),
    DetectorOption("weight_decay", "float", 0.0, "Adam's weight decay", kinds=KINDS, target=_EST, low=0, flag=None),
    DetectorOption("seed", "int", 0, "random seed (a CPU run is reproducible)", kinds=KINDS, target=_DET),
    DetectorOption("random_state", "int", None, "the seed under scikit-learn's and PyOD's name", kinds=KINDS, target=_DET, nullable=True,
                   flag=None, extra={"error": "random_state must be an integer seed (a RandomState object cannot be saved), got {type}"}),
    DetectorOption("device", "str", "cpu", "cpu, cuda or auto", kinds=KINDS, target=_EST),
    DetectorOption("verbose", "bool", False, "print one line per epoch to stderr", kinds=KINDS, target=_EST, flag=None),
)
BY_NAME = {o.name: o for o in DETECTOR_OPTIONS}


def detector_options(kind: str, target: str | None = None) -> tuple[DetectorOption, ...]:
    """The options of one detector class, in signature order (optionally one target's)."""
    return options_for(kind, target, table=DETECTOR_OPTIONS)


def check_detector_params(params: dict, kind: str) -> dict:
    """Each parameter against its declaration, then the rules between them; returns them normalized.

    A ConfigError with one line naming the bad parameter (scikit-learn's rule: called at fit and
    when a folder is loaded, never in ``__init__``).
    """
    method = params.get("method")
    if isinstance(method, str) and method in DENSITY_METHODS and method not in methods_for(kind):
        raise ConfigError(f"score method {method!r} needs a VAE (a density model); use VAEDetector or one of {', '.join(methods_for(kind))}")
    checked = dict(params)
    if params.get("threshold") is not None:
        checked.pop("contamination", None)  # an explicit threshold makes contamination unused
    out = check_params(checked, kind, table=DETECTOR_OPTIONS)
    p = {**defaults(kind, table=DETECTOR_OPTIONS), **out}  # the rules read a parameter not given at its default
    if p["scaling"] != "none" and p["likelihood"] != "gaussian":
        # Scaled data is not in [0, 1], where a Bernoulli's data must lie.
        raise ConfigError(f"scaling={p['scaling']!r} needs likelihood='gaussian' (scaled data is not in [0, 1]); "
                          "pass scaling='none' for [0, 1] data")
    if p["novelty"] is True and p["n_neighbors"] == 1:
        # Every training row is one of the reference rows, so its nearest neighbour is itself: its
        # neighbour terms would all be 0, and so would their scale.
        raise ConfigError("n_neighbors=1 with novelty=True scores every training row 0 (each is its own nearest neighbour); "
                          "use n_neighbors >= 2 or 'auto' (5)")
    rs, seed = p["random_state"], p["seed"]
    if rs is not None and seed != 0 and int(rs) != int(seed):
        raise ConfigError(f"seed={seed} and random_state={rs} disagree; they are two names for one seed, pass one of them")
    return out
