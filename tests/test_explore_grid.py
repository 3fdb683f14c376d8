"""`vaekit explore` on a VQ-VAE: the code grid of an example as the encoder chose it, an edited grid
decoded to exactly the image the model gives for it, and bad grids refused in one line."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from test_explore import get, serving, zq

from vaekit.data import load_dataset
from vaekit.estimators import VAE, VQVAE
from vaekit.explore import Explorer, RequestError


def png(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)), dtype=np.float64) / 255.0


@pytest.fixture(scope="module")
def vq():
    data = load_dataset("embedded", "train", limit=200)
    est = VQVAE(latent_dim=4, codebook_size=16, epochs=2, batch_size=32, val_fraction=0.0, seed=0).fit(data.X)
    return Explorer(est, data, name="vq", classes=data.classes, max_points=60)


@pytest.fixture(scope="module")
def url(vq):
    with serving(vq) as u:
        yield u


def test_info_declares_the_grid_its_size_and_its_codebook(vq, url):
    info = json.loads(get(url + "/info")[2])
    assert info["capabilities"]["code_grid"] is True and info["capabilities"]["density"] is False
    assert info["code_grid"] == {"rows": 7, "cols": 7, "codebook_size": 16}  # 28 x 28 images, two stride-2 stages


def test_grid_json_is_the_examples_nearest_entries_and_decodes_to_its_reconstruction(vq, url):
    i = 3
    out = json.loads(get(url + f"/grid.json?i={i}")[2])
    grid = np.array(out["grid"])
    np.testing.assert_array_equal(grid, vq.est.indices(vq.X[i : i + 1])[0])
    status, ctype, body = get(url + out["decoded_url"])
    assert status == 200 and ctype == "image/png"
    # the unedited grid is the example's quantized code: its image is the reconstruction
    np.testing.assert_allclose(png(body), vq.est.reconstruct(vq.X[i : i + 1])[0, 0], atol=0.5 / 255 + 1e-6)


def test_an_edited_cell_changes_the_image_where_that_cell_decodes(vq, url):
    grid = np.array(json.loads(get(url + "/grid.json?i=0")[2])["grid"])
    edited = grid.copy()
    edited[3, 3] = (grid[3, 3] + 1 + np.argmax(np.bincount(grid.ravel(), minlength=16)[1:])) % 16  # another entry
    assert edited[3, 3] != grid[3, 3]
    body = get(url + "/decode-grid?g=" + ",".join(str(v) for v in edited.ravel()))[2]
    want = vq.est.decode_indices(edited[None])[0, 0]
    np.testing.assert_allclose(png(body), want, atol=0.5 / 255 + 1e-6)
    before = vq.est.decode_indices(grid[None])[0, 0]
    assert np.abs(want - before).max() > 1e-3  # the edit reaches the image
    # A cell's entry reaches the pixels under it first: the change is largest around the edited cell (pixels 12-16).
    change = np.abs(want - before)
    assert change[10:18, 10:18].mean() > change.mean()


@pytest.mark.parametrize("query, says", [
    ("", "give the grid: g= with 49"),
    ("g=" + ",".join(["0"] * 48), "has 49 cells (7 x 7), got 48"),
    ("g=" + ",".join(["0"] * 48 + ["16"]), "cell 49 is '16'; give a codebook entry, a whole number from 0 to 15"),
    ("g=" + ",".join(["0"] * 48 + ["-1"]), "cell 49 is '-1'"),
    ("g=" + ",".join(["0"] * 48 + ["1.0"]), "cell 49 is '1.0'"),
    ("g=" + ",".join(["0"] * 48 + ["\u0663"]), "cell 49"),  # an Arabic-Indic digit is not an ASCII whole number
    ("g=" + ",".join(["0"] * 48 + ["99999999999999999999"]), "cell 49"),
])
def test_decode_grid_refuses_bad_grids_with_one_line(url, query, says):
    status, ctype, body = get(url + "/decode-grid?" + query.replace("\u0663", "%D9%A3"))
    text = body.decode()
    assert status == 400 and ctype.startswith("text/plain"), (status, text)
    assert says in text and text.count("\n") == 1, text


def test_grid_json_refuses_a_missing_example_in_json(url):
    status, ctype, body = get(url + "/grid.json?i=999")
    assert status == 400 and ctype == "application/json"
    assert "is not an example" in json.loads(body)["error"]


def test_a_vector_code_has_no_grid():
    data = load_dataset("embedded", "train", limit=64)
    est = VAE(latent_dim=2, epochs=1, batch_size=32, val_fraction=0.0, seed=0).fit(data.X)
    ex = Explorer(est, data, max_points=64)
    assert ex.info()["code_grid"] is None and ex.caps.code_grid is False
    with pytest.raises(RequestError, match="only a VQ-VAE has one"):
        ex.grid.of_example(0)
    with serving(ex) as u:
        status, _, body = get(u + "/decode-grid?g=0")
        assert status == 400 and b"not a grid of codebook entries" in body
        assert get(u + "/decode?z=" + zq([0.0, 0.0]))[0] == 200  # its own route still answers
