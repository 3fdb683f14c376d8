"""What the page can show of a model, read from its family and its components, never from their names.

The page (``static/app.js``) lays itself out from :class:`Capabilities` alone: it shows ELBO terms
where the family has a density, ellipses and samples where the encoder gives a distribution, the
prior's circles and band where p(z) is N(0, I), the decoder's caption its likelihood declares, and an
editable grid of codebook entries where the family's codes are discrete.
A new family, prior or likelihood that declares its flags in :mod:`vaekit.registry` is shown
right without an edit here or in the page.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..registry import LIKELIHOODS


@dataclass(frozen=True)
class Capabilities:
    """One model's capabilities as the page uses them (``/info``'s ``capabilities``)."""

    title: str  # the family's name in prose: "VAE", "autoencoder"
    conditional: bool  # takes a class label: the label picker, one code decoded under every label
    density: bool  # a prior and a likelihood: per-example ELBO terms and IW log p(x), in nats
    prior_samples: bool  # codes drawn from p(z), decoded: the generative model run forwards
    posterior_spread: bool  # q(z|x) is a distribution: its std bars, the drawing's ellipses and samples
    prior_contours: bool  # p(z) = N(0, I): its 1, 2, 3 sd circles on the plane and its ±2 band per dimension
    kl_per_dimension: bool  # KL(q(z_j|x) || p(z_j)) per dimension exists in closed form: dimensions ordered by it
    prior: str | None  # p(z) as captions name it; None without a prior
    decoded: str  # what a decoded image is: E[x|z], or the probabilities along one draw where the mean has no closed form
    decoded_note: str  # what to look for in a decoded image (the likelihood's caption); "" when there is none
    code_grid: bool  # the code is a grid of codebook entries (a VQ-VAE): the grid of an example, its cells editable

    def to_json(self) -> dict:
        return asdict(self)


def capabilities_of(est) -> Capabilities:
    """The capabilities of a fitted estimator's model, from ``model.family``, its prior and its likelihood components."""
    model = est.model_
    family, prior = model.family, model.config.prior_component
    likelihood = LIKELIHOODS[est.likelihood]
    return Capabilities(
        title=family.title,
        conditional=bool(est.is_conditional),
        density=bool(family.has_density),
        prior_samples=bool(family.has_density),
        posterior_spread=bool(family.has_density),
        prior_contours=bool(prior.standard_normal),
        kl_per_dimension=bool(prior.standard_normal and model.config.posterior_component.location_scale),  # a flow's are unknown
        prior=(prior.title or prior.name) if family.has_density else None,
        decoded="the pixel probabilities along one draw from p(x|z)" if likelihood.sequential_mean else "E[x|z]",
        # A likelihood's caption speaks of p(x|z)'s mean: an autoencoder's decoder is fitted as one but draws no
        # distribution, so its point reconstructions get none (as the report's captions do).
        decoded_note=(likelihood.blur or "") if family.has_density else "",
        code_grid=bool(family.discrete_codes),
    )
