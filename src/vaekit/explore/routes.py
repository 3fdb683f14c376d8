"""The HTTP API's routes: each parses its query string into typed arguments and asks the Explorer.

Parsing is strict and every refusal is a :class:`~vaekit.explore.errors.RequestError` with one
line naming the problem and the fix; the :class:`~vaekit.explore.explorer.Explorer` itself takes
only Python values. ``server.py`` serves :data:`ROUTES`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np

from .errors import RequestError
from .explorer import Explorer
from .limits import MAX_CODES, MAX_STEPS

PNG, JSON = "image/png", "application/json"
Query = dict[str, list[str]]  # as urllib.parse.parse_qs gives it

# A plain decimal number: digits with an optional point and exponent; no sign, no "nan", "inf" or "1_0".
_DECIMAL = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def one(query: Query, name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


# -- parsing ----------------------------------------------------------------------------------------
def parse_codes(text: str | None, code_dim: int) -> np.ndarray:
    """Codes from ``z1,z2,...`` (several separated by ``;``): shape (N, code_dim), finite, or a RequestError."""
    if text is None or not text.strip():
        raise RequestError(f"give a code: z= with {code_dim} comma-separated numbers, e.g. z={','.join(['0'] * code_dim)}")
    rows = text.split(";")
    if len(rows) > MAX_CODES:
        raise RequestError(f"at most {MAX_CODES} codes per request, got {len(rows)}; split the request")
    out = np.empty((len(rows), code_dim), dtype=np.float32)
    for r, row in enumerate(rows):
        parts = row.split(",")
        if len(parts) != code_dim:
            raise RequestError(f"a code of this model has {code_dim} values, got {len(parts)} in {row[:60]!r}; give z1,...,z{code_dim}")
        for j, part in enumerate(parts):
            try:
                v = float(part)
            except ValueError:
                raise RequestError(f"z value {j + 1} is not a number: {part[:30]!r}; give decimal numbers like 0.5 or -1.2e-1") from None
            if not math.isfinite(v) or abs(v) > 3.4e38:
                raise RequestError(f"z value {j + 1} is {part[:30]!r}; NaN and infinite values cannot be decoded, give finite numbers")
            out[r, j] = v
    return out


def parse_label(text: str | None, n_classes: int, *, conditional: bool, allow_all: bool = False) -> int | str | None:
    """A class label for a conditional model (``"all"`` where allowed), None otherwise; or a RequestError."""
    if text is None or text == "":
        if conditional:
            also = " or label=all" if allow_all else ""
            raise RequestError(f"this model is conditional: add label=K with K in 0..{n_classes - 1}{also}")
        return None
    if not conditional:
        raise RequestError(f"label={text[:20]} applies only to a conditional model; this one has no label input, drop label=")
    if allow_all and text == "all":
        return "all"
    try:
        k = int(text)
    except ValueError:
        k = -1
    if not 0 <= k < n_classes:
        raise RequestError(f"unknown label {text[:20]!r}; this model's labels are 0..{n_classes - 1}" + (" or all" if allow_all else ""))
    return k


def parse_index(text: str | None, n: int, what: str = "i") -> int:
    """An example index 0..n-1, or a RequestError."""
    try:
        i = int(text) if text is not None else -1
    except ValueError:
        i = -1
    if not 0 <= i < n:
        raise RequestError(f"{what}={str(text)[:20]!r} is not an example; give an index 0..{n - 1}")
    return i


def parse_count(text: str | None, what: str, lo: int, hi: int, default: int) -> int:
    """A whole number ``what`` from lo to hi (``default`` when absent), or a RequestError."""
    try:
        v = int(text) if text is not None else default
    except ValueError:
        v = lo - 1
    if not lo <= v <= hi:
        raise RequestError(f"{what}={str(text)[:20]!r}: give a whole number from {lo} to {hi}")
    return v


def parse_steps(text: str | None) -> int:
    """The number of images in an interpolation strip, 2..MAX_STEPS (default 10), or a RequestError."""
    try:
        s = int(text) if text is not None else 10
    except ValueError:
        s = -1
    if not 2 <= s <= MAX_STEPS:
        raise RequestError(f"steps={str(text)[:20]!r}: give a whole number of images from 2 to {MAX_STEPS}")
    return s


def parse_pixels(text: str | None, shape: tuple[int, ...], image_shape: tuple[int, ...] | None) -> np.ndarray:
    """A drawn image from ``x=v1,v2,...``: one grey value in [0, 1] per value of an example, row by row.

    Strict: exactly as many values as an example has (H x W, times 3 for colour, in the
    model's own layout), each a plain decimal number (``0``, ``0.5``, ``1``, ``2e-3``) from 0 to 1.
    Returns shape (1, *shape), float32; anything else is a RequestError.
    """
    if not image_shape:
        raise RequestError(f"/encode.json encodes a drawn image, but this model's data are a table ({shape[0]} features)")
    n = math.prod(shape)
    what = " x ".join(str(s) for s in image_shape)
    parts = _exactly(text, n, f"give the drawing: x= with {n} comma-separated grey values from 0 (black) to 1 (white), "
                              f"a {what} image row by row", f"an image of this model has {n} values ({what})", f"x=v1,...,v{n}")
    out = np.empty(n, dtype=np.float32)
    for j, part in enumerate(parts):
        v = float(part) if _DECIMAL.fullmatch(part) else math.nan
        if not 0.0 <= v <= 1.0:  # also NaN: not a plain decimal number
            raise RequestError(f"pixel {j + 1} is {part[:30]!r}; give grey values from 0 (black) to 1 (white) as plain decimal numbers like 0.5")
        out[j] = v
    return out.reshape(1, *shape)


def _exactly(text: str | None, n: int, missing: str, has: str, form: str) -> list[str]:
    """The ``n`` comma-separated parts of a query value, or a RequestError: ``missing`` when there is none, else
    ``has``, the count given and the ``form`` to give."""
    if text is None or not text.strip():
        raise RequestError(missing)
    parts = text.split(",")
    if len(parts) != n:
        raise RequestError(f"{has}, got {len(parts)}; give {form}")
    return parts


def parse_grid(text: str | None, rows: int, cols: int, codebook_size: int) -> np.ndarray:
    """An index grid from ``g=i1,i2,...`` (row by row): exactly rows x cols whole numbers in 0..K-1, or a RequestError."""
    n = rows * cols
    parts = _exactly(text, n, f"give the grid: g= with {n} comma-separated codebook entries (0..{codebook_size - 1}), "
                              f"{rows} rows of {cols}, row by row", f"this model's code grid has {n} cells ({rows} x {cols})", f"g=i1,...,i{n}")
    out = np.empty(n, dtype=np.int64)
    for j, part in enumerate(parts):
        v = int(part) if part.isascii() and part.isdigit() and len(part) <= 9 else -1
        if not 0 <= v < codebook_size:
            raise RequestError(f"cell {j + 1} is {part[:30]!r}; give a codebook entry, a whole number from 0 to {codebook_size - 1}")
        out[j] = v
    return out.reshape(rows, cols)


# -- the explorer's arguments from a query ------------------------------------------------------------
def _codes(ex: Explorer, q: Query) -> np.ndarray:
    return parse_codes(one(q, "z"), ex.code_dim)


def _label(ex: Explorer, q: Query, *, allow_all: bool = False) -> int | str | None:
    return parse_label(one(q, "label"), ex.n_classes, conditional=ex.caps.conditional, allow_all=allow_all)


def _index(ex: Explorer, q: Query, what: str = "i") -> int:
    return parse_index(one(q, what), len(ex.X), what)


def _endpoint(ex: Explorer, q: Query, what: str) -> np.ndarray:
    """The code of an interpolation end: an example index ``17`` or a class mean ``class:3``."""
    text = one(q, what)
    if text is None or not text.startswith("class:"):
        return ex.codes[_index(ex, q, what)]
    if not ex.class_means:
        why = "a conditional model's classes are an input, not a region of z" if ex.caps.conditional else "the data have no labels"
        raise RequestError(f"{what}={text[:20]}: no class means here ({why}); give an example index instead")
    try:
        k = int(text[6:])
    except ValueError:
        k = -1
    if k not in ex.class_means:
        raise RequestError(f"{what}={text[:20]}: no examples of that class; choose class:K with K in {sorted(ex.class_means)}")
    return ex.class_means[k]


def _decode_url(code, label: int | None) -> str:
    return "/decode?z=" + ",".join(repr(float(v)) for v in code) + ("" if label is None else f"&label={label}")


# -- the routes -------------------------------------------------------------------------------------
def _decode(ex: Explorer, q: Query):
    Z, label = _codes(ex, q), _label(ex, q, allow_all=True)
    return PNG, ex.decode_png(Z, None if label == "all" else label, every_label=label == "all")


def _decode_json(ex: Explorer, q: Query):
    Z = _codes(ex, q)
    X = ex.decode(Z, _label(ex, q))
    return JSON, {"x": X.reshape(len(X), -1).tolist()}


def _interpolate(ex: Explorer, q: Query):
    a, b = _endpoint(ex, q, "a"), _endpoint(ex, q, "b")
    steps = parse_steps(one(q, "steps"))
    return PNG, ex.interpolation_png(a, b, steps, _label(ex, q))


def _example(ex: Explorer, q: Query):
    out = ex.example(_index(ex, q))
    if ex.image_shape:
        out["reconstruction_url"] = _decode_url(out["code"], out["label"] if ex.caps.conditional else None)
        out["image_url"] = f"/image?i={out['index']}"
    return JSON, out


def _sample_json(ex: Explorer, q: Query):
    """Codes z ~ p(z): ``n=`` of them (default 1), ``seed=`` (default 0) picks the draw."""
    n = parse_count(one(q, "n"), "n", 1, MAX_CODES, 1)
    seed = parse_count(one(q, "seed"), "seed", 0, 2**31 - 1, 0)
    return JSON, {"z": ex.prior_samples(n, seed).tolist()}


def _encode_json(ex: Explorer, q: Query):
    """A drawing's posterior: ``x=`` grey values in [0, 1] (``label=K`` for a conditional model)."""
    x = parse_pixels(one(q, "x"), ex.shape, ex.image_shape)
    label = _label(ex, q)
    out = ex.encode_drawing(x, label)
    out["decoded_url"] = _decode_url(out["mean"], label)
    return JSON, out


def _grid_json(ex: Explorer, q: Query):
    """Example ``i``'s code grid: the codebook entry of each cell, row by row, and the URL of its decoded image."""
    i = _index(ex, q)
    grid = ex.grid.of_example(i)
    return JSON, {"index": i, "grid": grid, "decoded_url": "/decode-grid?g=" + ",".join(str(v) for r in grid for v in r)}


def _decode_grid(ex: Explorer, q: Query):
    rows, cols, k = ex.grid.size()
    return PNG, ex.grid.png(parse_grid(one(q, "g"), rows, cols, k))


# path -> handler(explorer, query) -> (content type, bytes or a JSON-ready object)
ROUTES: dict[str, Callable] = {
    "/info": lambda ex, q: (JSON, ex.info()),
    "/codes": lambda ex, q: (JSON, ex.codes_json()),
    "/example": _example,
    "/image": lambda ex, q: (PNG, ex.image_png(_index(ex, q))),
    "/decode": _decode,
    "/decode.json": _decode_json,
    "/interpolate": _interpolate,
    "/encode.json": _encode_json,
    "/sample.json": _sample_json,
    "/grid.json": _grid_json,
    "/decode-grid": _decode_grid,
}

# Routes that answer JSON also answer their errors in JSON, {"error": "one line"}, so a script reads both alike.
JSON_ROUTES = {"/info", "/codes", "/example", "/decode.json", "/encode.json", "/sample.json", "/grid.json"}
