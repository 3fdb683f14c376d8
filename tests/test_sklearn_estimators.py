"""scikit-learn's own estimator checks (sklearn.utils.estimator_checks) on every preset of the estimators.

VAE and Autoencoder themselves: tests/test_estimator_scores.py; the detectors: tests/test_anomaly.py.
Each check that cannot apply says why in ``expected_failures``: a convolutional model takes images and
a conditional one labels, which the checks' tables do not give.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from vaekit.estimators import ConditionalVAE, ConvVAE, DenoisingAutoencoder, SparseAutoencoder

# The checks' data are real-valued (mostly standard normal), hence the Gaussian likelihood; one epoch of a
# tiny net keeps the ~45 checks of each estimator fast. Batches of 4: most check tables have 10 to 30 rows.
TINY = dict(likelihood="gaussian", hidden=(4,), latent_dim=2, epochs=1, batch_size=4, device="cpu")

PRESETS = [
    SparseAutoencoder(**TINY),
    DenoisingAutoencoder(**TINY),
    ConditionalVAE(**TINY),
    ConvVAE(**TINY),
]

EVERY_ESTIMATOR = {  # as for VAE and Autoencoder (tests/test_estimator_scores.py)
    "check_n_features_in_after_fitting": "vaekit's DataError names the training shape (docs/bad-inputs.md), not sklearn's wording",
    "check_dtype_object": "non-numeric X raises vaekit's DataError (a ValueError, like every input error of vaekit.errors), not a TypeError",
    "check_fit2d_1sample": "one example with batch_size=4 is refused by a ConfigError that names batch_size, not with sklearn's '1 sample' wording",
}
# The checks that fit on their 2-D tables, or transform without y.
FITS = ("check_dict_unchanged check_dont_overwrite_parameters check_estimators_dtypes check_estimators_fit_returns_self "
        "check_estimators_nan_inf check_estimators_overwrite_params check_estimators_pickle check_f_contiguous_array_estimator "
        "check_fit2d_1feature check_fit2d_predict1d check_fit_check_is_fitted check_fit_idempotent check_fit_score_takes_y "
        "check_methods_sample_order_invariance check_methods_subset_invariance check_n_features_in check_n_features_in_after_fitting "
        "check_pipeline_consistency check_positive_only_tag_during_fit check_readonly_memmap_input check_transformer_data_not_an_array "
        "check_transformer_general check_transformer_preserve_dtypes").split()
TRANSFORMS_WITHOUT_LABELS = ("check_dict_unchanged check_estimators_dtypes check_estimators_pickle check_f_contiguous_array_estimator "
                             "check_fit_idempotent check_methods_sample_order_invariance check_methods_subset_invariance "
                             "check_transformer_data_not_an_array check_transformer_general check_transformer_preserve_dtypes").split()
IMAGES = "the convolutional model takes (C, H, W) images; this check's data is a 2-D table (a ConfigError says so)"
LABELS = "a conditional model needs the class labels y to encode as well as to fit; this check transforms without y"


def expected_failures(est) -> dict[str, str]:
    fails = dict(EVERY_ESTIMATOR)
    if est.architecture == "conv":
        fails.update(dict.fromkeys(FITS, IMAGES))
    if est.is_conditional:
        fails.update(dict.fromkeys(TRANSFORMS_WITHOUT_LABELS, LABELS))
    return fails


@parametrize_with_checks(PRESETS, expected_failed_checks=expected_failures)
def test_sklearn_checks(estimator, check):
    check(estimator)
