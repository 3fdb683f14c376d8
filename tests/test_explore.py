"""`vaekit explore`: the explorer's numbers, its HTTP API (every endpoint, the bad inputs), and the
command (binds 127.0.0.1 by default, stops on SIGINT/SIGTERM without a traceback).

The page itself is driven in a real browser in test_explore_browser.py.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch
from PIL import Image

import vaekit
from vaekit.cli import main
from vaekit.data import Dataset
from vaekit.evaluate import active_units
from vaekit.explore import Explorer, ExploreServer, RequestError
from vaekit.explore.png import encode_png
from vaekit.explore.routes import parse_codes


@contextlib.contextmanager
def serving(explorer: Explorer, **limits):
    with serving_server(explorer, **limits) as server:
        yield server.url.rstrip("/")


@contextlib.contextmanager
def serving_server(explorer, **limits):
    server = ExploreServer(explorer, "127.0.0.1", 0, **limits)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def get(url: str, headers: dict | None = None) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def png_array(body: bytes) -> np.ndarray:
    assert body[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(body)), dtype=np.float64) / 255.0


def zq(z) -> str:
    return ",".join(repr(float(v)) for v in z)


@pytest.fixture(scope="module")
def vae(explore_run):
    est, test, _ = explore_run
    return Explorer(est, test, name="vae2d", classes=test.classes)


@pytest.fixture(scope="module")
def url(vae):
    with serving(vae) as u:
        yield u


# -- the PNG encoder ------------------------------------------------------------------------------


def test_png_round_trips_grayscale_and_colour():
    rng = np.random.default_rng(0)
    gray = rng.random((7, 5))
    colour = rng.random((3, 4, 3))
    assert np.abs(png_array(encode_png(gray)) - gray).max() <= 0.5 / 255 + 1e-9
    assert np.abs(png_array(encode_png(colour)) - colour).max() <= 0.5 / 255 + 1e-9
    assert png_array(encode_png(np.array([[-1.0, 2.0]]))).tolist() == [[0.0, 1.0]]  # clipped to [0, 1]
    with pytest.raises(ValueError, match="image"):
        encode_png(np.zeros((2, 2, 2)))


# -- what the explorer computes -----------------------------------------------------------------


def test_info_orders_dimensions_by_kl_and_their_kl_adds_up_to_the_elbo_term(vae, url):
    status, ctype, body = get(url + "/info")
    assert status == 200 and ctype == "application/json"
    info = json.loads(body)
    caps = info["capabilities"]
    assert caps["density"] and caps["posterior_spread"] and caps["prior_contours"] and caps["title"] == "VAE"
    assert info["model"]["code_dim"] == 2 and info["plane"] == [0, 1]
    kl = [d["kl"] for d in info["dims"]]
    assert info["order"] == sorted(range(2), key=lambda j: -kl[j]) and info["ordered_by"] == "kl"
    # KL(q || N(0, I)) factorizes, so the per-dimension KLs add up to the ELBO's KL term, averaged over x.
    Xt = torch.from_numpy(vae.est.prepare_X(vae.X))
    with torch.no_grad():
        kl_term = vae.model.loss(Xt).terms["kl"].mean().item()
    assert sum(kl) == pytest.approx(kl_term, rel=1e-4)
    for d in info["dims"]:
        assert d["lo"] <= -3 and d["hi"] >= 3  # a VAE's plane covers the prior's bulk
    assert set(info["class_means"]) == {str(k) for k in np.unique(vae.y)}


def test_codes_are_the_encoders_posterior_means(vae, url):
    body = json.loads(get(url + "/codes")[2])
    codes = np.array(body["codes"])
    assert codes.shape == (len(vae.X), 2)
    np.testing.assert_allclose(codes, vae.est.encode(vae.X), atol=1e-4)
    assert body["labels"] == vae.y.tolist()


def test_decode_png_is_the_models_mean_image(vae, url):
    z = np.array([[0.3, -1.2]], dtype=np.float32)
    status, ctype, body = get(url + "/decode?z=" + zq(z[0]))
    assert status == 200 and ctype == "image/png"
    np.testing.assert_allclose(png_array(body), vae.est.decode(z)[0, 0], atol=0.5 / 255 + 1e-6)
    # several codes: side by side, one white pixel apart
    two = np.array([[0.0, 0.0], [2.0, 2.0]], dtype=np.float32)
    img = png_array(get(url + "/decode?z=" + zq(two[0]) + ";" + zq(two[1]))[2])
    assert img.shape == (28, 57)
    expect = vae.est.decode(two)[:, 0]
    np.testing.assert_allclose(img[:, :28], expect[0], atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(img[:, 29:], expect[1], atol=0.5 / 255 + 1e-6)
    assert (img[:, 28] == 1.0).all()


def test_decode_json_gives_the_values(vae, url):
    z = [1.5, 0.25]
    body = json.loads(get(url + "/decode.json?z=" + zq(z))[2])
    np.testing.assert_allclose(np.array(body["x"][0]), vae.est.decode(np.array([z], np.float32)).reshape(-1), atol=1e-6)


@pytest.mark.parametrize("query, says", [
    ("z=1", "has 2 values, got 1"),
    ("z=1,2,3", "has 2 values, got 3"),
    ("z=", "give a code"),
    ("", "give a code"),
    ("z=1,abc", "is not a number"),
    ("z=1,nan", "NaN and infinite"),
    ("z=inf,0", "NaN and infinite"),
    ("z=-Infinity,0", "NaN and infinite"),
    ("z=1e999,0", "NaN and infinite"),
    ("z=1e39,0", "NaN and infinite"),  # beyond float32: it would decode as inf
    ("z=0,0&label=3", "applies only to a conditional model"),
    ("z=" + ";".join(["0,0"] * 65), "at most 64 codes"),
])
def test_decode_refuses_bad_codes_with_one_line(url, query, says):
    status, ctype, body = get(url + "/decode?" + query)
    text = body.decode()
    assert status == 400 and ctype.startswith("text/plain"), (status, text)
    assert says in text and text.count("\n") == 1, text


def test_example_numbers_obey_the_elbo_identities(vae, url):
    i = 5
    ex = json.loads(get(url + f"/example?i={i}")[2])
    assert ex["index"] == i and ex["label"] == int(vae.y[i])
    np.testing.assert_allclose(ex["code"], vae.est.encode(vae.X[i : i + 1])[0], atol=1e-6)
    assert ex["elbo"] == pytest.approx(ex["log_likelihood"] - ex["kl"], abs=1e-3)
    assert ex["kl"] > 0 and ex["log_likelihood"] < 0
    # The importance-weighted estimate with k = 1000 is a tighter bound than the ELBO (Burda et al. 2015).
    assert ex["iw_log_likelihood"] > ex["elbo"]
    assert len(ex["posterior_std"]) == 2 and all(0 < s < 2 for s in ex["posterior_std"])
    assert ex == json.loads(get(url + f"/example?i={i}")[2])  # seeded: the same example, the same numbers
    # the reconstruction the page shows is decode(encode(x))
    rec = png_array(get(url + ex["reconstruction_url"])[2])
    np.testing.assert_allclose(rec, vae.est.reconstruct(vae.X[i : i + 1])[0, 0], atol=1 / 255)
    np.testing.assert_allclose(png_array(get(url + ex["image_url"])[2]), vae.X[i, 0], atol=0.5 / 255 + 1e-6)


@pytest.mark.parametrize("path", ["/example?i=-1", "/example?i=100000", "/example?i=abc", "/example", "/image?i=1.5", "/image?i=300"])
def test_example_and_image_refuse_unknown_indices(url, path):
    status, _, body = get(url + path)
    assert status == 400 and "is not an example; give an index 0..299" in body.decode()


def test_interpolation_strip_runs_from_a_to_b(vae, url):
    means = {k: vae.codes[vae.y == k].mean(0) for k in np.unique(vae.y)}
    img = png_array(get(url + "/interpolate?a=class:1&b=4&steps=5")[2])
    assert img.shape == (28, 5 * 29 - 1)
    line = vae.est.decode(np.stack([means[1] + t * (vae.codes[4] - means[1]) for t in np.linspace(0, 1, 5)]).astype(np.float32))[:, 0]
    for s in range(5):
        np.testing.assert_allclose(img[:, 29 * s : 29 * s + 28], line[s], atol=1 / 255)


@pytest.mark.parametrize("query, says", [
    ("a=class:99&b=1", "no examples of that class"),
    ("a=1&b=99999", "is not an example"),
    ("b=1", "is not an example"),
    ("a=1&b=2&steps=1", "from 2 to 32"),
    ("a=1&b=2&steps=100", "from 2 to 32"),
    ("a=1&b=2&steps=x", "from 2 to 32"),
    ("a=class:x&b=2", "no examples of that class"),
])
def test_interpolate_refuses_bad_ends(url, query, says):
    status, _, body = get(url + "/interpolate?" + query)
    assert status == 400 and says in body.decode(), body


# -- a drawing of one's own: /encode.json -------------------------------------------------------


def pixels_query(x: np.ndarray) -> str:
    return "x=" + ",".join(repr(float(v)) for v in np.asarray(x).reshape(-1))


def test_encode_json_gives_the_encoders_posterior_of_the_pixels(vae, url):
    from vaekit.explore.limits import DRAW_SAMPLES

    x = vae.X[5:6]  # a known image: the plane's example 5, sent as numbers
    status, ctype, body = get(url + "/encode.json?" + pixels_query(x))
    assert status == 200 and ctype == "application/json", body
    out = json.loads(body)
    np.testing.assert_allclose(out["mean"], vae.est.encode(x)[0], atol=1e-6)
    np.testing.assert_allclose(out["mean"], vae.codes[5], atol=1e-6)  # where its dot is on the plane
    Xt = torch.from_numpy(vae.est.prepare_X(x))
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        q = vae.model.inference(Xt)
        np.testing.assert_allclose(out["std"], q.stddev[0].numpy(), rtol=1e-5)
        torch.manual_seed(0)  # the server seeds its draws, so a drawing always shows the same samples
        np.testing.assert_allclose(out["samples"], q.sample((DRAW_SAMPLES,))[:, 0].numpy(), rtol=1e-5, atol=1e-6)
    assert out["posterior"] == "normal"
    # the decoded mean: the URL the page loads is E[x|z = mean]
    img = png_array(get(url + out["decoded_url"])[2])
    np.testing.assert_allclose(img, vae.decode(np.array([out["mean"]], np.float32))[0, 0], atol=0.5 / 255 + 1e-6)
    # a drawing sent with few decimals, as the page sends it, is encoded as those exact pixels
    drawn = np.round(x, 3)
    short = "x=" + ",".join(f"{v:.3f}".rstrip("0").rstrip(".") for v in drawn.reshape(-1))  # 0, 0.25, 1
    again = json.loads(get(url + "/encode.json?" + short)[2])
    np.testing.assert_allclose(again["mean"], vae.est.encode(drawn.astype(np.float32))[0], atol=1e-6)


@pytest.mark.parametrize("query, says", [
    ("", "give the drawing: x= with 784 comma-separated grey values"),
    ("x=", "give the drawing"),
    ("x=" + ",".join(["0"] * 783), "has 784 values (28 x 28), got 783"),
    ("x=" + ",".join(["0"] * 785), "got 785"),
    ("x=" + ",".join(["0"] * 783) + ",1.5", "pixel 784 is '1.5'; give grey values from 0 (black) to 1 (white)"),
    ("x=0.5," + ",".join(["0"] * 783).replace("0", "-0.1", 1), "pixel 2 is '-0.1'"),
    ("x=nan," + ",".join(["0"] * 783), "pixel 1 is 'nan'"),
    ("x=inf," + ",".join(["0"] * 783), "pixel 1 is 'inf'"),
    ("x=1e999," + ",".join(["0"] * 783), "pixel 1 is '1e999'"),
    ("x=1_0," + ",".join(["0"] * 783), "pixel 1 is '1_0'"),
    ("x=%200.5," + ",".join(["0"] * 783), "pixel 1 is ' 0.5'"),
    ("x=," + ",".join(["0"] * 783), "pixel 1 is ''"),
    ("x=" + ",".join(["0"] * 784) + "&label=3", "label=3 applies only to a conditional model"),
])
def test_encode_json_refuses_bad_drawings_with_one_line_of_json(url, query, says):
    status, ctype, body = get(url + "/encode.json?" + query)
    assert status == 400 and ctype == "application/json", body
    assert body.count(b"\n") == 1 and says in json.loads(body)["error"], body


@pytest.mark.parametrize("path", ["/nope", "/../../etc/passwd", "/static/../explorer.py", "/app.js/../../../setup.py", "/%2e%2e/pyproject.toml"])
def test_only_its_own_routes_and_files_are_served(url, path):
    status, _, body = get(url + path)
    assert status == 404 and b"no such page" in body


def test_the_page_and_its_assets_are_served_and_reference_nothing_outside(url):
    page = get(url + "/")[2].decode()
    assert '<script src="/app.js">' in page and 'href="/app.css"' in page
    for path in ("/", "/app.js", "/app.css"):
        status, _, body = get(url + path)
        assert status == 200
        # offline: no script, style or font from anywhere else
        assert not re.search(rb"(src|href)=[\"']?(https?:)?//", body) and b"@import" not in body and b"url(http" not in body


def test_a_request_for_another_host_name_is_refused(url):
    # DNS rebinding: a page on evil.example resolving its name to 127.0.0.1 must not read the model.
    assert get(url + "/info", {"Host": "evil.example:80"})[0] == 403
    assert get(url + "/info", {"Host": "localhost:1234"})[0] == 200


def test_several_clients_at_once_get_the_right_images(vae, url):
    zs = np.random.default_rng(1).normal(size=(24, 2)).astype(np.float32)
    expect = vae.est.decode(zs)[:, 0]
    results: dict[int, np.ndarray] = {}

    def fetch(i: int) -> None:
        results[i] = png_array(get(url + "/decode?z=" + zq(zs[i]))[2])

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(len(zs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(len(zs)))
    for i in range(len(zs)):
        np.testing.assert_allclose(results[i], expect[i], atol=0.5 / 255 + 1e-6)


def test_sample_json_draws_codes_from_the_models_prior(vae, url):
    body = json.loads(get(url + "/sample.json?n=64&seed=3")[2])
    z = np.array(body["z"])
    assert z.shape == (64, 2) and body == json.loads(get(url + "/sample.json?n=64&seed=3")[2])  # seeded
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        np.testing.assert_allclose(z, vae.model.prior().sample((64,)).double().numpy(), atol=1e-12)
    assert np.array(json.loads(get(url + "/sample.json")[2])["z"]).shape == (1, 2)
    for query, says in (("n=0", "n='0': give a whole number from 1 to 64"), ("n=65", "from 1 to 64"), ("seed=-1", "seed='-1'"),
                        ("n=x", "n='x'")):
        status, ctype, body = get(url + "/sample.json?" + query)
        assert status == 400 and ctype == "application/json" and says in json.loads(body)["error"], body


# -- other kinds of models ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_digits(explore_run):
    return explore_run[1].subset(slice(0, 120))


def test_an_autoencoder_gets_the_page_without_the_prior(small_digits):
    est = vaekit.Autoencoder(latent_dim=3, hidden=(64,), epochs=1, batch_size=32, device="cpu").fit(small_digits.X)
    ex = Explorer(est, small_digits)
    info = ex.info()
    caps = info["capabilities"]
    assert not (caps["density"] or caps["posterior_spread"] or caps["prior_contours"]) and caps["prior"] is None
    assert caps["title"] == "autoencoder" and info["ordered_by"] == "variance"
    assert caps["decoded_note"] == ""  # the likelihood's caption speaks of a distribution's mean
    assert all(d["kl"] is None and d["active"] is None for d in info["dims"])
    var = [d["variance"] for d in info["dims"]]
    assert [var[j] for j in info["order"]] == sorted(var, reverse=True)
    assert info["iw_k"] is None
    one = ex.example(0)
    assert "elbo" not in one and "posterior_std" not in one
    assert one["reconstruction"] > 0 and one["unit"] == "nats"
    with serving(ex) as u:
        status, _, body = get(u + "/sample.json")
        assert status == 400 and "this autoencoder has no prior p(z)" in json.loads(body)["error"]
        assert get(u + "/decode?z=0,0,0")[0] == 200
        assert get(u + "/interpolate?a=0&b=1&steps=3")[0] == 200


def test_a_conditional_model_decodes_one_code_under_every_label(small_digits):
    est = vaekit.ConditionalVAE(latent_dim=2, hidden=(64,), epochs=1, n_classes=10, batch_size=32, device="cpu").fit(small_digits.X, small_digits.y)
    ex = Explorer(est, small_digits)
    assert ex.info()["capabilities"]["conditional"] and ex.info()["class_means"] == {}
    z = np.array([[0.5, -0.5]], dtype=np.float32)
    with serving(ex) as u:
        img = png_array(get(u + "/decode?z=0.5,-0.5&label=all")[2])
        assert img.shape == (28, 10 * 29 - 1)
        for k in (0, 3, 9):
            np.testing.assert_allclose(img[:, 29 * k : 29 * k + 28], est.decode(z, np.array([k]))[0, 0], atol=0.5 / 255 + 1e-6)
        np.testing.assert_allclose(png_array(get(u + "/decode?z=0.5,-0.5&label=3")[2]), est.decode(z, np.array([3]))[0, 0], atol=0.5 / 255 + 1e-6)
        for query, says in (("", "this model is conditional: add label=K"), ("&label=10", "unknown label '10'"),
                            ("&label=-1", "unknown label"), ("&label=seven", "unknown label")):
            status, _, body = get(u + "/decode?z=0.5,-0.5" + query)
            assert status == 400 and says in body.decode(), body
        assert b"label=all decodes one code" in get(u + "/decode?z=0,0;1,1&label=all")[2]
        assert b"no class means here" in get(u + "/interpolate?a=class:1&b=2&label=0")[2]
        assert get(u + "/interpolate?a=0&b=2&label=4")[0] == 200
        # a drawing is encoded under the label it is drawn as: q(z|x, y)
        x = small_digits.X[:1]
        drawn = json.loads(get(u + "/encode.json?x=" + ",".join(repr(float(v)) for v in x.reshape(-1)) + "&label=4")[2])
        np.testing.assert_allclose(drawn["mean"], est.encode(x, np.array([4]))[0], atol=1e-6)
        assert drawn["decoded_url"].endswith("&label=4") and get(u + drawn["decoded_url"])[0] == 200
        assert b"this model is conditional: add label=K" in get(u + "/encode.json?x=" + ",".join(["0"] * 784))[2]


def test_a_table_model_gets_values_not_images():
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(200, 5)) * [1, 10, 100, 0.1, 1] + [0, 5, -50, 1, 2]).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    table = Dataset(X, y, "table")
    est = vaekit.VAE(latent_dim=2, hidden=(16,), likelihood="gaussian", standardize=True, epochs=2, device="cpu").fit(X)
    ex = Explorer(est, table)
    info = ex.info()
    assert info["data"]["kind"] == "table" and info["data"]["image_shape"] is None
    np.testing.assert_allclose(info["data"]["scaler"]["mean"], X.mean(0), rtol=1e-5, atol=1e-4)
    one = ex.example(3)
    np.testing.assert_allclose(one["x"], X[3], rtol=1e-6)
    np.testing.assert_allclose(one["reconstruction"], est.reconstruct(X[3:4])[0], rtol=1e-5, atol=1e-5)
    with serving(ex) as u:
        body = json.loads(get(u + "/decode.json?z=0.1,0.2")[2])
        np.testing.assert_allclose(body["x"][0], est.decode(np.array([[0.1, 0.2]], np.float32))[0], rtol=1e-5, atol=1e-4)
        status, _, text = get(u + "/decode?z=0.1,0.2")
        assert status == 400 and b"not images; ask /decode.json" in text
        assert get(u + "/image?i=0")[0] == 400
        status, _, text = get(u + "/encode.json?x=0,0,0,0,0")
        assert status == 400 and b"encodes a drawn image, but this model's data are a table" in text


def test_an_anomaly_detectors_network_is_explored_on_its_preprocessed_table(tmp_path):
    import pandas as pd

    from vaekit.anomaly import VAEDetector

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"amount": rng.normal(50, 10, 150), "hour": rng.integers(0, 24, 150).astype(float),
                       "shop": rng.choice(["a", "b", "c"], 150)})
    det = VAEDetector(latent_dim=2, hidden=(16,), n_steps=40, categorical=["shop"]).fit(df)
    det.save(tmp_path / "det")
    csv = tmp_path / "t.csv"
    df.assign(fraud=(df.amount > 65).astype(int)).to_csv(csv, index=False)
    ex = Explorer.from_run(tmp_path / "det", dataset=str(csv), label_column="fraud", limit=100)
    info = ex.info()
    assert info["data"]["feature_names"] == ["amount", "hour", "shop=a", "shop=b", "shop=c"]
    assert info["data"]["kind"] == "table" and info["classes"] == ["normal", "anomaly"]
    np.testing.assert_allclose(ex.codes, det.estimator_.encode(det.preprocessor_.transform(df.head(100))), atol=1e-6)
    assert ex.y.tolist() == (df.amount.head(100) > 65).astype(int).tolist()
    one = ex.example(0)
    assert one["x"][2:] == [float(df.shop[0] == k) for k in "abc"]  # the one-hot columns the network sees
    with pytest.raises(vaekit.DataError, match="does not record its data; pass the table with --dataset"):
        Explorer.from_run(tmp_path / "det")
    with pytest.raises(vaekit.DataError, match="no column named 'label'"):
        Explorer.from_run(tmp_path / "det", dataset=str(csv), label_column="label")


def test_a_20d_model_puts_its_two_most_used_dimensions_on_the_plane(explore_run):
    _, test, _ = explore_run
    small = test.subset(slice(0, 200))
    est = vaekit.VAE(latent_dim=20, hidden=(64,), epochs=2, device="cpu").fit(small.X)
    ex = Explorer(est, small)
    info = ex.info()
    kl = np.array([d["kl"] for d in info["dims"]])
    assert info["plane"] == list(np.argsort(-kl)[:2]) and len(info["order"]) == 20
    assert [d["active"] for d in info["dims"]] == active_units(ex.codes).tolist()
    with pytest.raises(RequestError, match="has 20 values, got 2"):
        parse_codes("0,0", ex.code_dim)


@pytest.mark.parametrize("params, expect", [
    # A prior other than N(0, I): a density to show, but no circles or band, and its title in the caption.
    ({"prior": "vamp", "n_pseudo_inputs": 5}, {"density": True, "prior_contours": False, "kl_per_dimension": False, "prior": "the VampPrior"}),
    # A likelihood whose mean has no closed form: the page says what its decoded images are.
    ({"likelihood": "autoregressive-bernoulli", "ar_hidden": 8},
     {"density": True, "prior_contours": True, "decoded": "the pixel probabilities along one draw from p(x|z)"}),
])
def test_capabilities_come_from_the_models_components(small_digits, params, expect):
    from vaekit.registry import LIKELIHOODS

    est = vaekit.VAE(latent_dim=2, hidden=(16,), epochs=1, batch_size=32, device="cpu", **params).fit(small_digits.X[:64])
    ex = Explorer(est, small_digits.subset(slice(0, 64)))
    caps = ex.info()["capabilities"]
    assert {k: caps[k] for k in expect} == expect
    assert caps["decoded_note"] == LIKELIHOODS[est.likelihood].blur
    assert (ex.info()["ordered_by"] == "kl") == caps["kl_per_dimension"]
    assert len(ex.example(0)["posterior_std"]) == 2 and "elbo" in ex.example(0)


# -- the command -----------------------------------------------------------------------------------


def test_explore_refuses_bad_inputs_with_one_line(explore_run, tmp_path, capsys):
    _, _, run = explore_run
    assert main(["explore", str(tmp_path / "nothing"), "--no-browser", "--port", "0"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["explore", str(run), "--host", "999.1.1.1", "--no-browser", "--port", "0"]) == 2
    assert "cannot listen on 999.1.1.1:0" in capsys.readouterr().err
    explore_run[0].save(tmp_path / "enc", part="encoder")
    assert main(["explore", str(tmp_path / "enc"), "--no-browser", "--port", "0"]) == 2
    assert "holds only the encoder of a model; explore needs both halves" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["explore", str(run), "--port", "70000"])
    assert e.value.code == 2 and "a port lies in 0..65535" in capsys.readouterr().err
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        assert main(["explore", str(run), "--port", str(busy.getsockname()[1]), "--no-browser"]) == 2
        err = capsys.readouterr().err
        assert "is in use; pass another --port" in err and err.count("\n") == 1
    finally:
        busy.close()
    assert main(["explore", str(run), "--dataset", "digits", "--no-browser", "--port", "0"]) == 2
    assert "was trained on examples of shape (1, 28, 28) but digits has (1, 8, 8)" in capsys.readouterr().err


def _listening_address(port: int) -> str | None:
    """The local address a TCP port listens on, read from /proc/net/tcp (Linux), as 'a.b.c.d'."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, p = local.split(":")
        if int(p, 16) == port and state == "0A":  # 0A: LISTEN
            return ".".join(str(int(addr[i : i + 2], 16)) for i in (6, 4, 2, 0))
    return None


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_command_binds_localhost_and_stops_cleanly_on_a_signal(explore_run, sig):
    _, _, run = explore_run
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "vaekit", "explore", str(run), "--port", "0", "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = re.search(r"at (http://127\.0\.0\.1:(\d+)/)", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(m.group(2))
        assert get(m.group(1) + "info")[0] == 200
        if Path("/proc/net/tcp").exists():
            assert _listening_address(port) == "127.0.0.1"
        time.sleep(0.2)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and err.strip() == "", err
    assert "stopped" in out
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


# -- trust: names from a run folder are data, every answer is guarded, connections are bounded ------

XSS = '<img src=x onerror="document.title=\'pwned\'">'


def response(url: str, path: str, method: str = "GET", raw: bytes | None = None) -> tuple[int, dict, bytes]:
    """(status, headers with lower-case names, body) of one request; ``raw`` sends those bytes as the request."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    if raw is not None:
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(raw)
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_a_class_name_holding_html_is_served_only_as_json_data(explore_run, tmp_path):
    # The names come from the run folder's config.json, as `vaekit train` records a CSV's labels or an image folder's subfolders.
    _, _, run = explore_run
    crafted = tmp_path / "crafted"
    shutil.copytree(run, crafted)
    cfg = json.loads((crafted / "config.json").read_text())
    names = [XSS, "</option><script>alert(1)</script>", "a & b"] + [str(k) for k in range(3, 10)]
    cfg["run"] = {**cfg.get("run", {}), "classes": names}
    (crafted / "config.json").write_text(json.dumps(cfg))
    ex = Explorer.from_run(crafted, limit=300)
    assert ex.classes == names
    with serving(ex) as u:
        status, headers, body = response(u, "/info")
        assert status == 200 and headers["content-type"] == "application/json" and headers["x-content-type-options"] == "nosniff"
        assert json.loads(body)["classes"] == names  # the exact strings, as data
        assert b"<" not in body and b">" not in body and b"&" not in body  # escaped: no byte of it reads as markup
        for path in ("/", "/app.js", "/app.css"):  # the page's own files hold no name
            assert b"onerror" not in response(u, path)[2]
        # a name echoed in an error is data too: JSON escaped, or plain text the browser may not sniff
        status, headers, body = response(u, "/example?i=" + urllib.parse.quote(XSS))
        assert status == 400 and headers["content-type"] == "application/json" and b"<" not in body
        assert XSS[:20] in json.loads(body)["error"]  # the message quotes the first 20 characters
        status, headers, body = response(u, "/" + urllib.parse.quote(XSS))
        assert status == 404 and headers["content-type"].startswith("text/plain") and headers["x-content-type-options"] == "nosniff"


def test_the_page_has_no_inline_script_or_style_for_the_csp_to_allow(url):
    page = response(url, "/")[2].decode()
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/app.js">']
    assert not re.search(r"\son\w+\s*=", page) and " style=" not in page and "javascript:" not in page
    script = response(url, "/app.js")[2].decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink


@pytest.mark.parametrize("path, method, raw, status", [
    ("/", "GET", None, 200),
    ("/app.js", "GET", None, 200),
    ("/app.css", "GET", None, 200),
    ("/info", "GET", None, 200),
    ("/codes", "GET", None, 200),
    ("/example?i=1", "GET", None, 200),
    ("/image?i=1", "GET", None, 200),
    ("/decode?z=0,0", "GET", None, 200),
    ("/decode.json?z=0,0", "GET", None, 200),
    ("/interpolate?a=1&b=2&steps=3", "GET", None, 200),
    ("/decode?z=x", "GET", None, 400),
    ("/decode.json?z=x", "GET", None, 400),
    ("/nope", "GET", None, 404),
    ("/info", "POST", None, 501),
    ("", "", b"GET /a b HTTP/1.1\r\n\r\n", 400),  # http.server's own refusal: a malformed request line
    ("", "", b"GET /info HTTP/1.1\r\nHost: evil.example\r\n\r\n", 403),
])
def test_every_answer_carries_the_csp_and_nosniff(url, path, method, raw, status):
    got, headers, body = response(url, path, method, raw)
    assert got == status, body
    csp = {d.split()[0]: d.split()[1:] for d in headers["content-security-policy"].split("; ")}
    assert csp["script-src"] == ["'self'"] and csp["default-src"] == ["'none'"]  # no inline script, nothing from elsewhere
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in headers["content-security-policy"] and "'unsafe-eval'" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    if status != 200:
        assert body.count(b"\n") == 1, body  # one line, not http.server's HTML error page


@pytest.fixture(scope="module")
def table_explorer():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 6)).astype(np.float32) * 3 + 10
    est = vaekit.VAE(latent_dim=2, hidden=(16,), likelihood="gaussian", standardize=True, epochs=2, batch_size=50, seed=0,
                     device="cpu").fit(X)
    return Explorer(est, Dataset(X, None, "table"))


@pytest.mark.parametrize("z, says", [
    ("3.4e38,3.4e38", "decodes to infinite or NaN"),  # finite, but the decoder's float32 arithmetic overflows
    ("0,0;3.4e38,3.4e38", "decodes to infinite or NaN"),  # one such code among several
    ("3.5e38,0", "NaN and infinite values cannot be decoded"),  # beyond float32
    ("1e999,0", "NaN and infinite values cannot be decoded"),
    ("nan,0", "NaN and infinite values cannot be decoded"),
    ("-inf,0", "NaN and infinite values cannot be decoded"),
])
def test_extreme_codes_get_a_400_with_one_line_of_json(table_explorer, z, says):
    with serving(table_explorer) as u:
        status, headers, body = response(u, "/decode.json?z=" + z)
        assert status == 400 and headers["content-type"] == "application/json", body
        assert body.count(b"\n") == 1 and says in json.loads(body)["error"], body
        assert response(u, "/decode.json?z=1e5,-1e5")[0] == 200  # large but decodable: the numbers, and the server still answers


def test_an_idle_connection_is_closed_after_the_timeout(vae):
    with serving(vae, idle_timeout=0.5) as u:
        for request in (b"", b"GET /info HTTP/1.1\r\n"):  # nothing at all, or a request never finished
            with socket.create_connection((urlsplit(u).hostname, urlsplit(u).port), timeout=10) as sock:
                sock.sendall(request)
                start = time.monotonic()
                assert sock.recv(100) == b""  # closed by the server, without an answer
                assert 0.4 < time.monotonic() - start < 5
        # a kept-alive connection is closed once it has been idle as long
        conn = http.client.HTTPConnection(urlsplit(u).hostname, urlsplit(u).port, timeout=10)
        conn.request("GET", "/info")
        assert conn.getresponse().read()
        start = time.monotonic()
        assert conn.sock.recv(100) == b""
        assert 0.4 < time.monotonic() - start < 5
        conn.close()


def test_many_idle_connections_do_not_keep_a_request_waiting(vae):
    threads_before = threading.active_count()
    socks = []
    with serving_server(vae, idle_timeout=60, max_connections=32) as server:
        u = server.url
        try:
            for k in range(300):  # idle sockets, every other one a slowloris with half a request
                socks.append(socket.create_connection(("127.0.0.1", server.server_port), timeout=10))
                if k % 2:
                    socks[-1].sendall(b"GET /info HTTP/1.1\r\nHost: 127")
            time.sleep(0.3)
            start = time.monotonic()
            status, _, body = get(u + "info")
            took = time.monotonic() - start
            assert status == 200 and json.loads(body)["model"]["code_dim"] == 2
            assert took < 2.0, f"a request behind 300 idle sockets took {took:.2f} s"
            assert len(server.connections) <= 32
            assert threading.active_count() - threads_before <= 32 + 2  # one thread per admitted connection, plus the server's
        finally:
            for sock in socks:
                sock.close()


class _Slow:
    """A stand-in explorer whose /info waits until released: connections that stay busy."""

    def __init__(self):
        self.release = threading.Event()

    def info(self):
        self.release.wait(10)
        return {"ok": True}


def test_when_every_connection_is_busy_a_new_one_gets_503_at_once():
    slow = _Slow()
    with serving(slow, max_connections=2) as u:
        waiting = [threading.Thread(target=get, args=(u + "/info",)) for _ in range(2)]
        for t in waiting:
            t.start()
        time.sleep(0.3)
        start = time.monotonic()
        status, headers, body = response(u, "/app.js")
        assert status == 503 and time.monotonic() - start < 3
        assert headers["x-content-type-options"] == "nosniff" and "content-security-policy" in headers and headers["retry-after"] == "1"
        assert body.count(b"\n") == 1 and b"retry" in body
        slow.release.set()
        for t in waiting:
            t.join()
        assert response(u, "/app.js")[0] == 200  # places freed


_FD_LIMITED_SERVER = """
import resource, sys
from vaekit.explore.server import ExploreServer
resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
server = ExploreServer(None, "127.0.0.1", 0, idle_timeout=60, max_connections=int(sys.argv[1]))
print(server.server_port, flush=True)
server.serve_forever(poll_interval=0.05)
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads a process's CPU time from /proc (Linux)")
@pytest.mark.parametrize("cap", [64, 1000])  # the default, and a cap above the 256 file descriptors: accept() hits EMFILE
def test_with_256_file_descriptors_300_idle_sockets_neither_starve_nor_spin_the_server(cap):
    proc = subprocess.Popen([sys.executable, "-c", _FD_LIMITED_SERVER, str(cap)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    socks = []
    try:
        port = int(proc.stdout.readline())
        for _ in range(300):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        time.sleep(1.0)  # let it take them in (and, for the high cap, run out of descriptors)
        start = time.monotonic()
        status, _, _ = get(f"http://127.0.0.1:{port}/app.js")
        took = time.monotonic() - start
        assert status == 200 and took < 3.0, f"took {took:.2f} s"
        cpu, wall = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(1.0)
        used = (_cpu_seconds(proc.pid) - cpu) / (time.monotonic() - wall)
        assert used < 0.3, f"the idle server used {used:.0%} of a CPU"  # it spun at 97 % before
    finally:
        for sock in socks:
            sock.close()
        proc.kill()
        proc.wait()
