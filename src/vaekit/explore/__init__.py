"""``vaekit explore``: a live latent-space explorer for a trained model, in the browser.

    >>> from vaekit.explore import Explorer, ExploreServer, serve
    >>> serve(ExploreServer(Explorer.from_run("runs/mnist2d"), port=8765))   # http://127.0.0.1:8765/

``explorer.py`` computes what the page shows from typed arguments (no HTTP), with
``capabilities.py`` (what can be shown of this model, from its family and components),
``model_calls.py`` (the model through its contract), ``latent.py``, ``info.py``, ``images.py`` and
``loading.py``; ``routes.py`` parses each request's query into those arguments, and ``server.py``
serves the routes and the page's files in ``static/`` (plain JavaScript on a canvas, nothing
fetched from elsewhere); the command is ``vaekit/cli/explore.py``. The HTTP API, which the page uses and scripts may call:

- ``GET /info``: the model, the data and each latent dimension (KL, variance, active, range), JSON;
- ``GET /codes``: the codes (posterior means) and labels of the examples on the plane, JSON;
- ``GET /example?i=K``: example K's code, posterior std, ELBO terms and IW log p(x) in nats, JSON;
- ``GET /image?i=K``: example K as a PNG;
- ``GET /decode?z=z1,...,zd[;z1,...][&label=K|all]``: E[x|z] as a PNG (several codes side by side);
- ``GET /decode.json?z=...[&label=K]``: E[x|z] as numbers (tables);
- ``GET /interpolate?a=I|class:K&b=J|class:K&steps=N[&label=K]``: a strip of decoded images.
- ``GET /encode.json?x=v1,...,vn[&label=K]``: the posterior q(z|x) of a drawn image (grey values in
  [0, 1]): its mean, std, samples and the URL of its decoded mean, JSON.
- ``GET /sample.json?n=N&seed=S``: N codes drawn from the prior p(z) (a model with a density), JSON.
- ``GET /grid.json?i=K``: a VQ-VAE's example K as its grid of codebook entries, JSON;
- ``GET /decode-grid?g=i1,...,in``: an index grid (row by row) decoded, as a PNG.

A bad request gets status 400 and one line that names the problem and the fix (``{"error": ...}``
from the JSON routes, plain text from the others). What the server trusts, its CSP and its
connection limits: ``server.py`` and ``connections.py``.
"""

from __future__ import annotations

import importlib

# Imported lazily, as in vaekit/__init__.py: registering the command must not import torch.
_EXPORTS = {"Explorer": "explorer", "RequestError": "errors", "ExploreServer": "server", "serve": "server"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'vaekit.explore' has no attribute {name!r}")
