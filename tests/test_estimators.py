"""The scikit-learn style estimators: the estimator contract, input checks, reproducibility and
the conditional VAE's behaviour on real digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from vaekit.data import load_dataset
from vaekit.errors import ConfigError, DataError, VaekitError
from vaekit.estimators import VAE, Autoencoder, ConditionalVAE, ConvVAE, DenoisingAutoencoder, SparseAutoencoder

TINY = dict(hidden=(16,), epochs=1, batch_size=32, device="cpu")


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("embedded", "train", limit=2000)
    return d.X.reshape(len(d.X), -1), d.y


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    return rng.random((120, 10), dtype=np.float32)


# -- the scikit-learn contract -----------------------------------------------------------------


@pytest.mark.parametrize("cls", [VAE, Autoencoder])
def test_clone_and_params_round_trip(cls):
    est = cls(latent_dim=3, hidden=(7, 5), lr=0.01, seed=4)
    params = est.get_params()
    assert params["latent_dim"] == 3 and params["hidden"] == (7, 5) and params["seed"] == 4
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    assert est.set_params(latent_dim=9, epochs=2) is est
    assert est.get_params()["latent_dim"] == 9 and est.get_params()["epochs"] == 2
    assert cls(**est.get_params()).get_params() == est.get_params()
    with pytest.raises(ValueError):
        est.set_params(not_a_param=1)


def test_presets_store_their_choices_as_params():
    assert SparseAutoencoder("kl").get_params()["sparsity"] == "kl"
    assert DenoisingAutoencoder("gaussian", 0.2).get_params()["noise"] == "gaussian"
    assert ConvVAE().get_params()["architecture"] == "conv"
    assert ConditionalVAE().get_params()["conditional"] is True
    assert clone(ConditionalVAE(latent_dim=2)).get_params()["conditional"] is True


def test_init_does_no_work_and_fitted_state_ends_in_underscore(table):
    est = VAE(latent_dim=2, **TINY)
    assert not hasattr(est, "model_")
    with pytest.raises(ConfigError, match="not fitted"):
        est.encode(table)
    assert est.fit(table) is est
    for attr in ("model_", "history_", "input_shape_", "n_features_in_"):
        assert hasattr(est, attr)
    assert est.input_shape_ == (10,) and est.n_features_in_ == 10
    np.testing.assert_array_equal(est.transform(table), est.encode(table))


def test_clone_of_a_fitted_model_is_unfitted(table):
    est = Autoencoder(latent_dim=2, **TINY).fit(table)
    assert not hasattr(clone(est), "model_")


def test_vae_in_a_pipeline_before_logistic_regression(digits):
    X, y = digits
    pipe = Pipeline([("vae", VAE(latent_dim=8, hidden=(64,), epochs=3, batch_size=50, lr=3e-3, device="cpu")),
                     ("clf", LogisticRegression(max_iter=300))])
    pipe.fit(X[:1000], y[:1000])
    acc = pipe.score(X[1000:1500], y[1000:1500])
    # 10 classes: chance is ~0.1; measured about 0.5 after this short run (a code that carries identity)
    assert acc > 0.35, acc
    assert pipe.named_steps["vae"].transform(X[:5]).shape == (5, 8)


# -- reproducibility ----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: VAE(latent_dim=3, posterior="student-t", **TINY),
                                  lambda: DenoisingAutoencoder("salt-and-pepper", latent_dim=3, **TINY)])
def test_two_fits_with_the_same_seed_give_identical_weights(make, table):
    a, b = make().fit(table), make().fit(table)
    sa, sb = a.model_.state_dict(), b.model_.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert a.history_[-1]["train_loss"] == b.history_[-1]["train_loss"]
    c = make().set_params(seed=1).fit(table)
    assert not torch.equal(c.model_.state_dict()["encoder.net.0.weight"], sa["encoder.net.0.weight"])


# -- input checks -------------------------------------------------------------------------------


def test_bernoulli_refuses_data_outside_unit_interval(table):
    with pytest.raises(DataError, match=r"\[0, 255\].*divide pixels by 255"):
        VAE(**TINY).fit(np.round(table * 255))
    with pytest.raises(DataError, match="continuous-bernoulli"):
        VAE(likelihood="continuous-bernoulli", **TINY).fit(table - 0.5)
    VAE(likelihood="gaussian", latent_dim=2, **TINY).fit(table * 255)  # fine for a Gaussian


@pytest.mark.parametrize("bad, match", [
    (np.array([1.0, 2.0]), "2-D"),
    (np.zeros((0, 4)), "empty"),
    (np.array([[0.1, np.nan], [0.2, 0.3]]), "NaN"),
    ([["a", "b"]], "numeric"),
])
def test_bad_arrays_give_data_errors(bad, match):
    with pytest.raises(DataError, match=match):
        Autoencoder(**TINY).fit(bad)


def test_fitted_model_refuses_other_shapes(table):
    est = VAE(latent_dim=2, **TINY).fit(table)
    with pytest.raises(DataError, match=r"\(10,\)"):
        est.encode(table[:, :5])
    with pytest.raises(DataError, match="codes"):
        est.decode(np.zeros((3, 5)))
    with pytest.raises(ConfigError, match="at least 1"):
        est.sample(0)
    with pytest.raises(ConfigError, match="conditional"):
        est.sample(3, label=1)


def test_standardize_needs_gaussian_and_round_trips_units(table):
    with pytest.raises(ConfigError, match="gaussian"):
        VAE(standardize=True, **TINY).fit(table)
    X = table * 100 + 50
    est = VAE(standardize=True, likelihood="gaussian", latent_dim=2, **TINY).fit(X)
    np.testing.assert_allclose(est.scaler_mean_, X.mean(0), rtol=1e-5)
    # decoded values come back in the data's units, not standardized ones
    assert abs(est.reconstruct(X).mean() - X.mean()) < 10


def test_batch_larger_than_data_is_a_config_error(table):
    with pytest.raises(ConfigError, match="batch_size 500 is larger"):
        VAE(**{**TINY, "batch_size": 500}).fit(table)


def test_errors_are_value_errors():
    # callers that catch ValueError (scikit-learn's convention) catch vaekit's errors too
    assert issubclass(DataError, ValueError) and issubclass(ConfigError, VaekitError)


# -- the conditional VAE --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cvae(digits):
    X, y = digits
    # A 2-d code leaves no room to carry the digit's identity in z, so the decoder must take it from
    # the label (with 8 or more dimensions a short run still draws class from z: rows look alike).
    return ConditionalVAE(latent_dim=2, hidden=(128,), epochs=4, batch_size=64, lr=3e-3, device="cpu").fit(X, y)


def test_cvae_samples_look_like_their_class(cvae, digits):
    X, y = digits
    means = np.stack([X[y == k].mean(0) for k in range(10)])
    share = []
    for k in range(10):
        s = cvae.sample(20, label=k, seed=k)
        assert s.shape == (20, 784) and s.min() >= 0 and s.max() <= 1
        d = ((s[:, None, :] - means[None]) ** 2).sum(-1)  # (20, 10) distances to each class mean
        share.append((d.argmin(1) == k).mean())
    # chance is 0.1 per class; measured: 8 of 10 classes at 0.5 or more, mean share about 0.7
    assert sum(v >= 0.5 for v in share) >= 6, share
    assert np.mean(share) > 0.5, share


def test_cvae_needs_labels(cvae, digits):
    X, _ = digits
    assert cvae.n_classes_ == 10
    with pytest.raises(ConfigError, match="label=K"):
        cvae.sample(4)
    with pytest.raises(ConfigError, match="0..9"):
        cvae.sample(4, label=10)
    with pytest.raises(DataError, match="labels"):
        cvae.encode(X[:4])
    with pytest.raises(DataError, match="labels"):
        ConditionalVAE(**TINY).fit(X[:100])
    with pytest.raises(DataError, match="class indices"):
        ConditionalVAE(**TINY).fit(X[:3], np.array(["a", "b", "a"]))
    np.testing.assert_array_equal(cvae.sample(3, label=7, seed=1), cvae.sample(3, label=7, seed=1))
    assert not np.array_equal(cvae.sample(3, label=7, seed=1), cvae.sample(3, label=1, seed=1))
