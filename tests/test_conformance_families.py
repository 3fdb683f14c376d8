"""The conformance suite one level up: every registered model family and preset (vaekit.registry).

tests/test_conformance.py runs property tests on every likelihood x posterior x prior of the VAE;
this file runs the family-level contract on every entry of ``FAMILIES`` and ``PRESETS``, so that a
newly registered family (or preset) is checked without editing the suite: it binds a config, a
module and an estimator; its per-family defaults are declared; its estimator fits, encodes,
decodes, scores and survives a save / load round trip with identical numbers; a density family's
models give the same log-likelihood bound through the estimator and through the model contract;
each preset builds its family's estimator and is recovered from a saved run's options.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vaekit
from vaekit.anomaly import AutoencoderDetector, VAEDetector
from vaekit.cli import build_parser
from vaekit.cli.config import _model_choice
from vaekit.cli.train import make_estimator
from vaekit.errors import ConfigError
from vaekit.models import DensityModel
from vaekit.options import FAMILY_DEFAULT, OPTIONS, options_for
from vaekit.registry import FAMILIES, LIKELIHOODS, PRESETS, PRIORS
from vaekit.runfolder import load

FAMILY_PARAMS = [pytest.param(f, id=f.name) for f in FAMILIES]
PRESET_PARAMS = [pytest.param(p, id=p.name) for p in PRESETS]
# Small and fast; each family reads the ones it declares.
TINY = {"latent_dim": 2, "hidden": (8,), "epochs": 2, "batch_size": 16}


def _data(n: int = 64, d: int = 6) -> np.ndarray:
    return np.random.default_rng(0).random((n, d)).astype(np.float32)


def _data_for(family, n: int = 64) -> np.ndarray:
    """Rows of a table, or 8 x 8 one-channel images for a family that takes only images (``needs_images``)."""
    return _data(n, 64).reshape(n, 1, 8, 8) if family.needs_images else _data(n)


def _fit(family, **extra):
    taken = {o.name for o in options_for(family.name)}
    est = family.parts["estimator"](**{k: v for k, v in {**TINY, **extra}.items() if k in taken})
    return est.fit(_data_for(family))


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_a_family_binds_a_config_a_module_and_an_estimator(family):
    assert family.impl is not None and {"config", "estimator"} <= set(family.parts)
    for part in (family.impl, *family.parts.values()):
        assert part.family is family  # every part points back at its entry
    assert family.estimator == family.parts["estimator"].__name__
    for opt in OPTIONS:
        if opt.default is FAMILY_DEFAULT and family.name in opt.kinds:
            assert opt.name in family.defaults, f"{family.name} declares no default for {opt.name}"
    assert isinstance(family.title, str) and family.title and family.plural and family.article in ("a", "an")


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_a_density_family_implements_the_density_contract(family):
    est = _fit(family)
    assert isinstance(est.model_, DensityModel) == bool(family.has_density)
    assert est.model_.family is family and est.family is family


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_fit_encode_decode_score_and_a_round_trip_keep_every_number(family, tmp_path):
    est = _fit(family)
    X = _data_for(family, 20)
    codes, recon, scores = est.transform(X), est.reconstruct(X), est.score_samples(X)
    assert codes.shape == (20, est.model_.config.code_dim) and recon.shape == X.shape and scores.shape == (20,)
    assert np.isfinite(scores).all() and np.ptp(scores) > 0  # a score that does not vary says nothing
    loaded = load(est.save(tmp_path / "run"))
    assert loaded.family is family
    np.testing.assert_array_equal(loaded.transform(X), codes)
    np.testing.assert_array_equal(loaded.reconstruct(X), recon)
    np.testing.assert_array_equal(loaded.score_samples(X), scores)


@pytest.mark.parametrize("family", [p for p in FAMILY_PARAMS if p.values[0].has_density])
def test_a_density_familys_bound_is_the_same_through_the_estimator_and_the_contract(family):
    """log p(x) by importance sampling, through the estimator and through the contract's three
    distributions (q, p(z), log p(x|z)) with independent draws: equal to Monte-Carlo error."""
    est, k = _fit(family), 4000
    X = _data(10)
    via_estimator = est.score_samples(X, k=k)
    model = est.model_
    torch.manual_seed(3)
    with torch.no_grad():
        x = torch.as_tensor(est.prepare_X(X))
        q = model.inference(x)
        z = q.sample((k,))
        log_w = model.log_likelihood(z, x) + model.prior().log_prob(z) - q.log_prob(z)
        via_contract = (log_w.logsumexp(0) - np.log(k)).double().numpy()
    np.testing.assert_allclose(via_estimator, via_contract, atol=0.02)


@pytest.mark.parametrize("detector", [VAEDetector, AutoencoderDetector], ids=lambda d: d.__name__)
def test_each_detector_scores_with_a_model_of_a_registered_family(detector):
    det = detector(n_steps=30, random_state=0).fit(_data(80))
    assert det.estimator_.family in list(FAMILIES)
    s = det.decision_function(_data(10))
    assert s.shape == (10,) and np.isfinite(s).all() and np.ptp(s) > 0


@pytest.mark.parametrize("preset", PRESET_PARAMS)
def test_a_preset_builds_its_familys_estimator_and_is_recovered_from_a_saved_run(preset):
    family = FAMILIES[preset.families[0]]
    args = build_parser().parse_args(["train", "--model", preset.name, "--out", "x"])
    est = make_estimator(args)
    assert isinstance(est, family.parts["estimator"])
    params = est.get_params()
    assert all(params[k] == v for k, v in preset.params.items())
    est.check_params()
    assert _model_choice({"estimator": family.estimator, "params": params}) == preset.name
    assert not preset.needs or preset.needs in preset.params


@pytest.mark.parametrize("factory, preset", [(vaekit.ConvVAE, "conv-vae"), (vaekit.ConditionalVAE, "cvae"),
                                             (vaekit.SparseAutoencoder, "sparse-ae"), (vaekit.DenoisingAutoencoder, "denoising-ae")])
def test_the_python_presets_are_the_registered_ones(factory, preset):
    from_cli = make_estimator(build_parser().parse_args(["train", "--model", preset, "--out", "x"])).get_params()
    assert {**factory().get_params(), "verbose": False} == from_cli


# -- consumers of the components: each registered component either works in them or is refused ---
# with a ConfigError. These would have caught a per-dimension KL that ignored the prior, a tracker
# that crashed on a prior without per-dimension marginals, and detectors that took any likelihood.


def _prior_params(prior) -> dict:
    """Estimator parameters that select ``prior``: by --prior when it is a choice, else by its own options
    (--top-latent-dim) over the --prior choice that two stochastic layers turn into it."""
    small = {"top_latent_dim": 1, "top_hidden": (4,), "n_pseudo_inputs": 3}
    opts = {o: small[o] for o in prior.options.values()}
    return {"prior": prior.name if prior.choice else next(p.name for p in PRIORS if p.two_layer == prior.name), **opts}


@pytest.mark.parametrize("prior", [pytest.param(p, id=p.name) for p in PRIORS])
def test_every_prior_gives_its_per_dimension_kl_or_refuses_and_the_tracker_copes(prior, tmp_path):
    est = _fit(FAMILIES["vae"], **_prior_params(prior))  # the family the priors belong to
    assert est.model_.config.prior_component is prior
    X = _data(30)
    try:
        kl = est.kl_per_dimension(X)
    except ConfigError:
        kl = None
    else:
        assert kl.shape == (est.model_.config.code_dim,) and (kl > -0.05).all()
    pytest.importorskip("tensorboard")
    from vaekit.tracking import TensorBoardTracker

    tracker = TensorBoardTracker(tmp_path / "tb", est, X, image_every=0)
    tracker({"epoch": 1, "train_loss": 1.0})  # an epoch without a validation split's KL: the tracker measures it
    tracker.close()
    assert (tracker.kl_skipped is None) == (kl is not None)


@pytest.mark.parametrize("detector", [VAEDetector, AutoencoderDetector], ids=lambda d: d.__name__)
@pytest.mark.parametrize("lik", [pytest.param(c, id=c.name) for c in LIKELIHOODS])
def test_every_likelihood_is_scored_and_explained_by_a_detector_or_refused(detector, lik):
    # Data in [0, 1] left unscaled, so that a likelihood that needs the unit interval meets no other rule first.
    scaling = {"scaling": "none"} if lik.needs_unit_interval else {}
    det = detector(likelihood=lik.name, n_steps=20, hidden=(4,), latent_dim=2, random_state=0, **scaling)
    X = _data(60, 3)
    try:
        det.check_params()
    except ConfigError as refusal:
        assert "likelihood" in str(refusal)
        with pytest.raises(ConfigError, match="likelihood"):
            det.fit(X)
        return
    det.fit(X)
    assert np.isfinite(det.decision_function(X[:5])).all()
    shares = det.explain(X[:5])
    assert np.asarray(shares).shape[0] == 5


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_under_bf16_autocast_every_familys_loss_and_terms_are_float32(family):
    """``--precision bf16`` runs the networks in bfloat16; each family's losses must still be summed in float32
    (tests/test_conformance.py checks the VAE's components and objectives one by one)."""
    model = _fit(family).model_.train()
    x = torch.as_tensor(_data_for(family, 8))
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.loss(x)
    assert out.loss.dtype == torch.float32, family.name
    assert {name: t.dtype for name, t in out.terms.items()} == dict.fromkeys(out.terms, torch.float32), family.name
