"""`vaekit explore`'s page in a real browser: headless Chromium driven by selenium, against the
server in this process. Drag on the plane, hover and click a dot, move a slider, interpolate
between two picked examples; the decoded image must follow, at most one decode in flight, and no
console errors. The last test takes the screenshot the README shows (written to
$VAEKIT_EXPLORE_SCREENSHOT when set; $VAEKIT_EXPLORE_RUN serves another run folder, e.g.
runs/mnist2d, for that picture).

Needs the Debian packages `chromium` and `chromium-driver` and the Python package `selenium`;
skips with the reason when any is missing.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vaekit.explore import Explorer, ExploreServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
WIDTH, HEIGHT = 1420, 1185

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def explorer(explore_run):
    if os.environ.get("VAEKIT_EXPLORE_RUN"):
        return Explorer.from_run(os.environ["VAEKIT_EXPLORE_RUN"])
    est, test, run = explore_run
    return Explorer(est, test, name=run.name, classes=test.classes)


@pytest.fixture(scope="module")
def page_url(explorer):
    server = ExploreServer(explorer, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(page_url):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    if not CHROMIUM or not DRIVER:
        pytest.skip("headless Chromium not found: apt-get install chromium chromium-driver")
    from headless import start_chromium

    driver = start_chromium(webdriver, CHROMIUM, DRIVER, ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                                          "--hide-scrollbars"))
    # The viewport, not the window, is what the screenshot shows: size the window so the viewport is WIDTH x HEIGHT.
    driver.set_window_size(WIDTH, HEIGHT)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight];")
    driver.set_window_size(2 * WIDTH - inner[0], 2 * HEIGHT - inner[1])
    driver.get(page_url)
    wait_for(driver, "return document.body.dataset.ready === '1'", "the page to start")
    yield driver
    driver.quit()


def wait_for(driver, script: str, what: str, timeout: float = 30.0):
    end = time.time() + timeout
    while time.time() < end:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.05)
    status = driver.execute_script("return document.getElementById('status').textContent")
    raise AssertionError(f"timed out waiting for {what} (page status: {status!r})")


def settle(driver) -> None:
    """Wait until no decode is in flight or waiting."""
    wait_for(driver, "const s = window.vaekitExplore.stats; return s.inflight === 0 && s.decodedZ !== null", "the decodes to finish")
    time.sleep(0.1)
    wait_for(driver, "return window.vaekitExplore.stats.inflight === 0", "the last decode")


def canvas_pixels(driver, element_id: str) -> np.ndarray:
    url = driver.execute_script(f"return document.getElementById('{element_id}').toDataURL('image/png');")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("L"), dtype=np.float64) / 255.0


def decoded_image(driver, shape: tuple[int, int], element_id: str = "decoded") -> np.ndarray:
    """The decoded canvas read back at the centre of each data pixel (it is drawn scaled, unsmoothed)."""
    c = canvas_pixels(driver, element_id)
    h, w = shape
    s = min(c.shape[0] / h, c.shape[1] / w)
    oy, ox = (c.shape[0] - h * s) / 2, (c.shape[1] - w * s) / 2
    rows = (oy + (np.arange(h) + 0.5) * s).astype(int)
    cols = (ox + (np.arange(w) + 0.5) * s).astype(int)
    return c[np.ix_(rows, cols)]


def dot_offset(driver, i: int) -> tuple[int, int]:
    """Example i's dot on the plane, as an offset from the canvas centre (selenium's origin)."""
    x, y = driver.execute_script(
        f"const S = window.vaekitExplore.S, c = S.codes[{i}]; return toPx(c[S.dimX], c[S.dimY]);")
    return round(x - 280), round(y - 280)


def state(driver, expr: str):
    return driver.execute_script(f"const S = window.vaekitExplore.S, stats = window.vaekitExplore.stats; return {expr};")


def test_the_page_starts_with_the_plane_the_decoded_image_and_an_example(browser, explorer):
    assert browser.title == f"vaekit explore: {explorer.name}"
    plane = canvas_pixels(browser, "plane")
    assert (plane < 0.9).mean() > 0.01  # dots and axes were drawn
    settle(browser)
    assert decoded_image(browser, explorer.image_shape).max() > 0.2  # a digit, not a black square
    legend = browser.find_element("id", "legend").text.split()
    assert legend == [explorer.classes[k] for k in np.unique(explorer.y)]
    numbers = browser.find_element("id", "ex-numbers").text
    assert "ELBO" in numbers and "log p(x)" in numbers and "nats" in numbers
    assert len(browser.find_elements("css selector", "#sliders input[type=range]")) == explorer.code_dim


def test_dragging_on_the_plane_decodes_the_point_under_the_pointer(browser, explorer):
    from selenium.webdriver import ActionChains

    settle(browser)
    before = decoded_image(browser, explorer.image_shape)
    sent_before = state(browser, "stats.decodes")
    plane = browser.find_element("id", "plane")
    actions = ActionChains(browser, duration=10).move_to_element_with_offset(plane, -150, 120).click_and_hold()
    for _ in range(25):  # a quick drag: many pointer moves, far more than decodes can keep up with
        actions.move_by_offset(9, -8)
    actions.release().perform()
    settle(browser)
    after = decoded_image(browser, explorer.image_shape)
    assert np.abs(after - before).max() > 0.1, "the decoded image did not change when the pointer moved"
    assert state(browser, "stats.maxInflight") == 1  # requests never piled up
    assert state(browser, "stats.decodes") > sent_before
    z = np.array(state(browser, "S.z"), dtype=np.float32)
    # The last point was sent when the previous decode returned, and the canvas shows E[x|z] for it.
    np.testing.assert_allclose(state(browser, "stats.decodedZ"), z, atol=1e-9)
    expect = explorer.decode(np.round(z, 4)[None])[0].reshape(explorer.image_shape)
    np.testing.assert_allclose(after, expect, atol=2 / 255)
    # and z is where the pointer was let go: 225 px right and 200 px up of where it pressed
    zx, zy = state(browser, "toZ(280 - 150 + 225, 280 + 120 - 200)")
    assert state(browser, "[S.z[S.dimX], S.z[S.dimY]]") == pytest.approx([zx, zy], abs=0.05)


def test_hovering_a_dot_shows_that_example_and_clicking_selects_it(browser, explorer):
    from selenium.webdriver import ActionChains

    i = 7
    dx, dy = dot_offset(browser, i)
    plane = browser.find_element("id", "plane")
    ActionChains(browser).move_to_element_with_offset(plane, dx, dy).perform()
    tip = wait_for(browser, "const t = document.getElementById('tooltip'); return !t.hidden && t.textContent", "the hover tooltip")
    shown = int(tip.split("·")[0].strip().lstrip("#"))
    np.testing.assert_allclose(explorer.codes[shown], explorer.codes[i], atol=0.05)  # that dot, or one on top of it
    assert explorer.classes[explorer.y[shown]] in tip
    ActionChains(browser).click().perform()
    wait_for(browser, f"return window.vaekitExplore.S.example && window.vaekitExplore.S.example.index === {shown}", "the example to load")
    assert browser.find_element("id", "example-index").get_attribute("value") == str(shown)
    settle(browser)


def test_the_prior_button_decodes_a_code_drawn_from_p_z(browser, explorer):
    settle(browser)
    drawn = state(browser, "window.vaekitExplore.stats.decodes")
    browser.find_element("id", "prior-sample").click()
    wait_for(browser, f"return window.vaekitExplore.stats.decodes > {drawn}", "the prior draw's decode")
    settle(browser)
    z = np.array(state(browser, "S.z"))
    np.testing.assert_allclose(state(browser, "stats.decodedZ"), z)
    np.testing.assert_allclose(z, explorer.prior_samples(1, seed=1)[0], atol=1e-9)  # the page's first draw: seed 1
    expect = explorer.decode(z[None].astype(np.float32))[0].reshape(explorer.image_shape)
    np.testing.assert_allclose(decoded_image(browser, explorer.image_shape), expect, atol=1 / 255)


def test_a_slider_moves_one_latent_dimension(browser, explorer):
    from selenium.webdriver.common.keys import Keys

    settle(browser)
    before_img = decoded_image(browser, explorer.image_shape)
    z0 = np.array(state(browser, "S.z"))
    slider = browser.find_elements("css selector", "#sliders input[type=range]")[0]
    j = int(slider.get_attribute("data-dim"))
    assert j == explorer.facts.order[0]  # the first slider is the dimension with the most KL
    slider.send_keys(Keys.ARROW_RIGHT * 60)
    settle(browser)
    z1 = np.array(state(browser, "S.z"))
    step = (explorer.facts.hi[j] - explorer.facts.lo[j]) / 400
    assert z1[j] - z0[j] == pytest.approx(min(60 * step, explorer.facts.hi[j] - z0[j]), rel=0.05)
    others = [k for k in range(explorer.code_dim) if k != j]
    np.testing.assert_allclose(z1[others], z0[others])
    assert np.abs(decoded_image(browser, explorer.image_shape) - before_img).max() > 0.05


def test_picking_two_examples_gives_an_interpolation_strip(browser, explorer):
    from selenium.webdriver.support.ui import Select

    old = browser.find_element("id", "interp-strip").get_attribute("src")
    for end, index in (("a", 3), ("b", 12)):
        Select(browser.find_element("id", f"{end}-kind")).select_by_value("example")
        box = browser.find_element("id", f"{end}-index")
        box.clear()
        box.send_keys(str(index))
    steps = browser.find_element("id", "steps")
    steps.clear()
    steps.send_keys("8")
    browser.find_element("id", "interpolate").click()
    wait_for(browser, f"const i = document.getElementById('interp-strip'); return i.src !== {old!r} && i.complete && i.naturalWidth > 0",
             "the interpolation strip")
    w, h = browser.execute_script("const i = document.getElementById('interp-strip'); return [i.naturalWidth, i.naturalHeight];")
    ih, iw = explorer.image_shape[:2]
    assert (w, h) == (8 * (iw + 1) - 1, ih)
    src = browser.find_element("id", "interp-strip").get_attribute("src")
    strip = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("L"), dtype=np.float64) / 255
    ends = explorer.decode(np.stack([explorer.codes[3], explorer.codes[12]]))
    np.testing.assert_allclose(strip[:, :iw], ends[0].reshape(explorer.image_shape), atol=1 / 255)
    np.testing.assert_allclose(strip[:, -iw:], ends[1].reshape(explorer.image_shape), atol=1 / 255)


def test_two_tabs_decode_at_once(browser, explorer, page_url):
    from selenium.webdriver import ActionChains

    first = browser.current_window_handle
    browser.switch_to.new_window("tab")
    try:
        browser.get(page_url)
        wait_for(browser, "return document.body.dataset.ready === '1'", "the second tab")
        second = browser.current_window_handle
        # Both tabs ask for decodes together: one by script in the first, one by dragging in the second.
        browser.switch_to.window(first)
        browser.execute_script("const S = window.vaekitExplore.S; S.z = S.z.map(() => -1.5); requestDecode();")
        browser.switch_to.window(second)
        ActionChains(browser).move_to_element_with_offset(browser.find_element("id", "plane"), 150, -150).click().perform()
        for handle in (second, first):
            browser.switch_to.window(handle)
            settle(browser)
            z = np.array(state(browser, "stats.decodedZ"), dtype=np.float32)
            expect = explorer.decode(np.round(z, 4)[None])[0].reshape(explorer.image_shape)
            np.testing.assert_allclose(decoded_image(browser, explorer.image_shape), expect, atol=2 / 255)
        assert not [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    finally:
        browser.switch_to.window(second)
        browser.close()
        browser.switch_to.window(first)


def test_a_drawn_digit_puts_its_posterior_on_the_plane_where_the_encoder_says(browser, explorer, tmp_path):
    """Draw a seven with the pointer: the pixels the page sends are the drawing scaled and centred as
    MNIST's digits were, the answer is the encoder's posterior of exactly those pixels, and the plane
    draws it there (ellipses of 1 and 2 sd, the samples, the decoded mean), with the prior's circles
    and the interpolation path. A screenshot of it goes to $VAEKIT_DRAW_SCREENSHOT when set."""
    import torch
    from selenium.webdriver import ActionChains
    from selenium.webdriver.support.ui import Select

    from vaekit.explore.limits import DRAW_SAMPLES

    if explorer.class_means:  # the path: class mean 1 -> class mean 7, 6 steps
        for end, k in (("a", "1"), ("b", "7")):
            Select(browser.find_element("id", f"{end}-kind")).select_by_value("class")
            Select(browser.find_element("id", f"{end}-class")).select_by_value(k)
    steps = browser.find_element("id", "steps")
    steps.clear()
    steps.send_keys("6")
    browser.find_element("id", "interpolate").click()
    wait_for(browser, "const p = window.vaekitExplore.S.path; return p && p.steps === 6", "the interpolation path")

    canvas = browser.find_element("id", "draw")
    assert canvas.is_displayed()
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", canvas)
    actions = ActionChains(browser, duration=10).move_to_element_with_offset(canvas, -60, -70).click_and_hold()
    for _ in range(12):  # the bar of a seven, left to right
        actions.move_by_offset(10, 0)
    for _ in range(14):  # and its stem, down to the left
        actions.move_by_offset(-5, 11)
    actions.release().perform()
    wait_for(browser, "const D = window.vaekitExplore.D; return D.result && !D.pending && !D.busy", "the drawing's posterior")
    assert state(browser, "stats.encodes") >= 1

    # What was sent is the drawing as it stands, scaled and centred like an MNIST digit.
    sent = np.array(state(browser, "window.vaekitExplore.D.sent"), dtype=np.float64)
    np.testing.assert_array_equal(sent, state(browser, "window.vaekitExplore.drawingPixels()"))
    img = sent.reshape(explorer.image_shape)
    assert img.min() >= 0 and img.max() > 0.9  # white ink on black
    rows, cols = np.nonzero(img > 0.1)
    assert 18 <= max(np.ptp(rows), np.ptp(cols)) + 1 <= 22  # the ink's box: 20 pixels on its longer side
    h, w = img.shape
    com = ((np.arange(h) + 0.5) @ img.sum(1) / img.sum(), (np.arange(w) + 0.5) @ img.sum(0) / img.sum())
    assert com == pytest.approx((h / 2, w / 2), abs=0.6)  # its centre of mass at the centre

    # The answer is the encoder's posterior of exactly those pixels.
    x = sent.astype(np.float32).reshape(1, *explorer.shape)
    mean = explorer.est.encode(x)[0]
    with torch.no_grad():
        std = explorer.model.inference(torch.from_numpy(explorer.est.prepare_X(x))).stddev[0].numpy()
    drawn = state(browser, "window.vaekitExplore.D.result")
    np.testing.assert_allclose(drawn["mean"], mean, atol=1e-5)
    np.testing.assert_allclose(drawn["std"], std, rtol=1e-4)

    # The plane draws it there: the ellipses' centre is the mean, their radii 1 and 2 sd, in the plane's pixels.
    dx, dy = state(browser, "[S.dimX, S.dimY]")
    lo, hi = explorer.facts.lo, explorer.facts.hi
    pw, ph = 560 - 44 - 12, 560 - 12 - 40  # the plane's plotting area inside its margins
    per_z = np.array([pw / (hi[dx] - lo[dx]), ph / (hi[dy] - lo[dy])])

    def px(z):
        return 44 + (z[dx] - lo[dx]) * per_z[0], 12 + (hi[dy] - z[dy]) * per_z[1]

    for k in (1, 2):
        e = browser.find_element("id", f"posterior-{k}sd")
        cx, cy, rx, ry = (float(e.get_attribute(a)) for a in ("cx", "cy", "rx", "ry"))
        assert (cx, cy) == pytest.approx(px(mean), abs=0.01)
        assert (rx, ry) == pytest.approx(k * std[[dx, dy]] * per_z, rel=1e-4)
    dots = browser.find_elements("css selector", "#drawn-posterior circle.posterior-sample")
    assert len(dots) == DRAW_SAMPLES
    got = [(float(c.get_attribute("cx")), float(c.get_attribute("cy"))) for c in dots]
    np.testing.assert_allclose(got, [px(z) for z in drawn["samples"]], atol=0.01)
    # ... on screen, over the plane canvas
    plane = browser.find_element("id", "plane").rect
    box = browser.find_element("id", "posterior-1sd").rect
    assert plane["x"] < box["x"] + box["width"] / 2 < plane["x"] + plane["width"]
    assert plane["y"] < box["y"] + box["height"] / 2 < plane["y"] + plane["height"]

    # Beside the canvas: the drawn input as sent, and the decoded mean E[x | z = mean].
    np.testing.assert_allclose(decoded_image(browser, explorer.image_shape, "draw-input"), img, atol=1 / 255)
    np.testing.assert_allclose(decoded_image(browser, explorer.image_shape, "draw-decoded"),
                               explorer.decode(np.asarray(drawn["mean"], np.float32)[None])[0].reshape(explorer.image_shape), atol=1 / 255)

    # The prior's circles at 1, 2, 3 sd around 0, and the interpolation path between the two ends.
    if explorer.caps.prior_contours:
        circles = browser.find_elements("css selector", "#prior-contours ellipse")
        assert [int(c.get_attribute("data-sd")) for c in circles] == [1, 2, 3]
        for r, c in zip((1, 2, 3), circles):
            assert float(c.get_attribute("cx")) == pytest.approx(px(np.zeros(explorer.code_dim))[0], abs=0.01)
            assert float(c.get_attribute("rx")) == pytest.approx(r * per_z[0], rel=1e-4)
    line = browser.find_elements("css selector", "#interp-path line")[-1]
    a, b = state(browser, "[S.path.a, S.path.b]")
    if explorer.class_means:
        np.testing.assert_allclose(a, explorer.class_means[1], atol=1e-4)
        np.testing.assert_allclose(b, explorer.class_means[7], atol=1e-4)
    assert [float(line.get_attribute(k)) for k in ("x1", "y1", "x2", "y2")] == pytest.approx([*px(a), *px(b)], abs=0.01)
    assert len(browser.find_elements("css selector", "#interp-path circle")) == 6
    caption = browser.find_element("id", "overlay-caption").text
    assert "±1 sd" in caption and "prior N(0, I)" in caption and "interpolation path" in caption

    browser.execute_script("window.scrollTo(0, 0);")
    time.sleep(0.2)
    out = Path(os.environ.get("VAEKIT_DRAW_SCREENSHOT") or tmp_path / "draw.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(out))
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors

    browser.find_element("id", "draw-clear").click()  # clear: the drawing and its posterior go
    assert state(browser, "window.vaekitExplore.D.result") is None
    assert not browser.find_elements("css selector", "#drawn-posterior *")
    assert state(browser, "window.vaekitExplore.drawingPixels()") is None


def test_too_many_interpolation_steps_are_clamped_in_the_box_and_said_and_the_strip_keeps_its_shape(browser, explorer):
    settle(browser)
    limit = browser.execute_script("return window.vaekitExplore.S.info.limits.max_steps")
    steps = browser.find_element("id", "steps")
    assert steps.get_attribute("max") == str(limit)
    old = browser.find_element("id", "interp-strip").get_attribute("src")
    steps.clear()
    steps.send_keys("100")
    browser.find_element("id", "interpolate").click()
    wait_for(browser, f"const i = document.getElementById('interp-strip'); return i.src !== {old!r} && i.complete && i.naturalWidth > 0",
             "the interpolation strip")
    assert steps.get_attribute("value") == str(limit)  # the box shows what the strip holds
    assert f"at most {limit}" in browser.find_element("id", "status").text
    w, h, cw, ch = browser.execute_script(
        "const i = document.getElementById('interp-strip'); return [i.naturalWidth, i.naturalHeight, i.clientWidth, i.clientHeight];")
    ih, iw = explorer.image_shape[:2]
    assert (w, h) == (limit * (iw + 1) - 1, ih)
    assert cw / ch == pytest.approx(w / h, rel=0.02)  # scaled, never squashed sideways: a long strip scrolls
    steps.clear()
    steps.send_keys("8")
    browser.find_element("id", "interpolate").click()
    wait_for(browser, "return document.getElementById('status').textContent === ''", "the note to clear")


def test_a_click_near_a_dot_picks_it(browser, explorer):
    from selenium.webdriver import ActionChains

    settle(browser)
    # A click 9 px to the right of the rightmost dot (every other dot is further away): that dot is
    # picked (it once took a click within 5 px).
    i = browser.execute_script("""
        const S = window.vaekitExplore.S, p = S.codes.map((c) => toPx(c[S.dimX], c[S.dimY]));
        let best = -1;
        p.forEach(([x, y], i) => { if (y > 20 && y < plane.height - 20 && (best < 0 || x > p[best][0])) best = i; });
        return p[best][0] + 9 < plane.width && best !== S.selected ? best : -1;""")
    assert i >= 0, "no dot to click beside"
    dx, dy = dot_offset(browser, i)
    ActionChains(browser).move_to_element_with_offset(browser.find_element("id", "plane"), dx + 9, dy).click().perform()
    wait_for(browser, f"return window.vaekitExplore.S.example && window.vaekitExplore.S.example.index === {i}", "the near dot to be picked")
    settle(browser)


def test_latent_arithmetic_claims_no_style_for_a_2d_code(browser, explorer):
    hint = browser.find_element("id", "arith-hint").get_attribute("textContent")
    assert "keeps the style" not in hint
    if explorer.code_dim <= 2:
        assert f"{explorer.code_dim}-D code" in hint and "expect other digits" in hint


def test_latent_arithmetic_names_x_and_the_class_each_image_was_moved_to(browser, explorer):
    settle(browser)
    if not explorer.class_means or len(explorer.class_means) < 2:
        pytest.skip("no class means: no latent arithmetic row")
    wait_for(browser, "return document.getElementById('arith-names').children.length > 0", "the arithmetic row's names")
    i, label = state(browser, "[S.selected, S.labels[S.selected]]")
    caption = browser.find_element("id", "arith-x-caption").get_attribute("textContent")
    # Once read "x: a 0"-like bare names; now x says which example it is and each image its class.
    assert f"x = example #{i}" in caption and f"label {explorer.classes[label]}" in caption
    names = [s.get_attribute("textContent") for s in browser.find_elements("css selector", "#arith-names span")]
    assert names == [f"as {explorer.classes[k]}" for k in sorted(explorer.class_means)]


def test_the_posterior_strip_stays_in_its_card_and_no_mark_reaches_its_numbers(browser, explorer):
    settle(browser)
    size = browser.get_window_size()
    try:
        # A window where the card is narrower than the strip's 420 px (it once ran past the card's edge).
        browser.set_window_size(size["width"] - (WIDTH - 1300), size["height"])
        wait_for(browser, "return window.innerWidth <= 1300", "the narrower window")
        # Means at the axis end and far beyond it (drawn as arrows), every row drawn as active.
        layout = browser.execute_script("""
            const S = window.vaekitExplore.S, ex = JSON.parse(JSON.stringify(S.example)), dims = S.info.dims;
            const far = [2.96, 50, -50, -2.96];
            S.info.order.forEach((j, r) => { ex.code[j] = far[r % 4]; if (ex.posterior_std) ex.posterior_std[j] = 0.08; });
            const was = dims.map((d) => d.active);
            dims.forEach((d) => { d.active = true; });
            drawPosterior(ex);
            dims.forEach((d, j) => { d.active = was[j]; });
            const c = document.getElementById('ex-posterior'), card = document.getElementById('example-panel');
            const cr = c.getBoundingClientRect(), kr = card.getBoundingClientRect();
            return {right: cr.right, width: cr.width, cardRight: kr.right - 14, ...Object.fromEntries(
                Object.entries(c.dataset).map(([k, v]) => [k, Number(v)]))};""")
        assert layout["right"] <= layout["cardRight"] + 0.5, layout  # inside the card's padding
        drawn = browser.execute_script("return document.getElementById('ex-posterior').width")
        assert layout["width"] == pytest.approx(drawn, abs=0.5)  # drawn to fit, not squeezed by the CSS
        url = browser.execute_script("return document.getElementById('ex-posterior').toDataURL('image/png');")
        rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"), dtype=np.int32)
        marks = (rgb[..., 2] - rgb[..., 0]) > 80  # the dots, bars and arrows (#1f77b4); text and grid are grey
        cols = np.nonzero(marks.any(axis=0))[0]
        assert cols.size and cols.min() >= layout["axisLeft"] - 9 and cols.max() <= layout["axisRight"] + 8
        assert cols.max() + 6 <= layout["textLeft"]  # a gap between the furthest arrow and the numbers
        ink = (rgb[:, layout["textLeft"]:] < 200).any(axis=2)  # and the numbers are there, in their column
        assert ink.sum() > 50
    finally:
        browser.set_window_size(size["width"], size["height"])
        wait_for(browser, f"return window.innerWidth === {WIDTH}", "the window back")
        browser.execute_script("drawPosterior(window.vaekitExplore.S.example);")


def test_the_prior_circles_labels_sit_at_their_top_right_over_everything_else(browser, explorer):
    settle(browser)
    if not explorer.caps.prior_contours:
        pytest.skip("no standard normal prior: no circles")
    layers = browser.execute_script(
        "return [...document.querySelector('#plane-overlay g[clip-path]').children].map((g) => g.id);")
    assert layers[-1] == "prior-labels" and {"prior-contours", "interp-path", "drawn-posterior"} <= set(layers[:-1])
    assert not browser.find_elements("css selector", "#prior-contours text")  # not under the path and the posterior
    circles = browser.find_elements("css selector", "#prior-contours ellipse")
    labels = browser.find_elements("css selector", "#prior-labels text")
    assert [t.get_attribute("textContent") for t in labels] == ["1 sd", "2 sd", "3 sd"]
    for c, t in zip(circles, labels):
        cx, cy, rx, ry = (float(c.get_attribute(k)) for k in ("cx", "cy", "rx", "ry"))
        x, y = float(t.get_attribute("x")), float(t.get_attribute("y"))
        assert x > cx + 0.7 * rx and y < cy - 0.7 * ry  # at the top right, just outside the circle
        assert t.get_attribute("stroke") == "#fff" and t.get_attribute("paint-order") == "stroke"  # on a white halo


def test_no_console_errors_and_a_screenshot(browser, explorer, tmp_path):
    from selenium.webdriver import ActionChains
    from selenium.webdriver.support.ui import Select

    # The README's picture: class means 1 -> 7 interpolated, an example selected, the pointer on the plane.
    if explorer.class_means:
        for end, k in (("a", "1"), ("b", "7")):
            Select(browser.find_element("id", f"{end}-kind")).select_by_value("class")
            Select(browser.find_element("id", f"{end}-class")).select_by_value(k)
        steps = browser.find_element("id", "steps")
        steps.clear()
        steps.send_keys("12")
        browser.find_element("id", "interpolate").click()
    box = browser.find_element("id", "example-index")
    box.clear()
    box.send_keys("4\n")
    wait_for(browser, "return window.vaekitExplore.S.example && window.vaekitExplore.S.example.index === 4", "example 4")
    plane = browser.find_element("id", "plane")
    ActionChains(browser).move_to_element_with_offset(plane, 60, -70).click_and_hold().move_by_offset(5, 5).release().perform()
    settle(browser)
    time.sleep(0.3)
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
    assert browser.find_element("id", "status").text == ""
    out = Path(os.environ.get("VAEKIT_EXPLORE_SCREENSHOT") or tmp_path / "explore.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(out))
    shot = np.asarray(Image.open(out).convert("L"))
    assert shot.shape[1] == WIDTH and shot.std() > 10  # a page, not a blank


def _other_model(kind: str, digits):
    import vaekit
    from vaekit.data import Dataset

    small = digits.subset(slice(0, 150))
    if kind == "conditional VAE":
        est = vaekit.ConditionalVAE(latent_dim=2, hidden=(32,), epochs=10, batch_size=50, n_classes=10, device="cpu").fit(small.X, small.y)
    elif kind == "autoencoder":
        est = vaekit.Autoencoder(latent_dim=4, hidden=(32,), epochs=10, batch_size=50, device="cpu").fit(small.X)
    elif kind == "1-D VAE":  # the plane is the diagonal z0 = z0
        est = vaekit.VAE(latent_dim=1, hidden=(32,), epochs=10, batch_size=50, device="cpu").fit(small.X)
    elif kind == "20-D VAE":
        est = vaekit.VAE(latent_dim=20, hidden=(32,), epochs=10, batch_size=50, device="cpu").fit(small.X)
    else:  # a table
        rng = np.random.default_rng(0)
        X = rng.normal(size=(150, 6)).astype(np.float32) * 3 + 10
        small = Dataset(X, (X[:, 0] > 10).astype(np.int64), "table")
        est = vaekit.VAE(latent_dim=2, hidden=(16,), likelihood="gaussian", standardize=True, epochs=10, batch_size=50, device="cpu").fit(X)
    return Explorer(est, small, name=kind)


@pytest.mark.parametrize("kind", ["conditional VAE", "autoencoder", "1-D VAE", "20-D VAE", "table"])
def test_every_kind_of_model_gets_a_working_page(browser, explore_run, kind):
    from selenium.webdriver import ActionChains

    ex = _other_model(kind, explore_run[1])
    server = ExploreServer(ex, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        browser.get(server.url)
        wait_for(browser, "return document.body.dataset.ready === '1'", f"the {kind} page to start")
        settle(browser)
        before = canvas_pixels(browser, "decoded")
        # a corner of the plane, away from the dots
        ActionChains(browser).move_to_element_with_offset(browser.find_element("id", "plane"), 245, -245).click().perform()
        settle(browser)
        assert np.abs(canvas_pixels(browser, "decoded") - before).max() > 0.02, "the decoded image or bars did not change"
        visible = lambda i: browser.find_element("id", i).is_displayed()  # noqa: E731
        assert visible("label-picker") == visible("all-labels") == (kind == "conditional VAE")
        assert visible("interp-panel") == (kind != "table")
        assert visible("plane-controls") == (kind in ("autoencoder", "20-D VAE"))  # axes to choose above 2-D
        numbers = browser.find_element("id", "ex-numbers").text
        assert ("ELBO" in numbers) == (kind != "autoencoder")
        assert visible("prior-sample") == (kind != "autoencoder")  # a prior to draw codes from
        if kind == "conditional VAE":
            img = wait_for(browser, "const i = document.getElementById('all-labels-strip'); return i.complete && i.naturalWidth", "the label strip")
            assert img == 10 * 29 - 1
        assert visible("draw-panel") == (kind != "table")  # a table has nothing to draw
        if kind != "table":  # a stroke: the drawing's posterior as each kind can show it
            draw = browser.find_element("id", "draw")
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", draw)
            ActionChains(browser).move_to_element_with_offset(draw, -40, -60).click_and_hold().move_by_offset(40, 120).release().perform()
            wait_for(browser, "const D = window.vaekitExplore.D; return D.result && !D.pending && !D.busy", "the drawing's posterior")
            sent = np.array(state(browser, "window.vaekitExplore.D.sent"), dtype=np.float32).reshape(1, *ex.shape)
            label = np.array([state(browser, "S.label")]) if kind == "conditional VAE" else None
            np.testing.assert_allclose(state(browser, "window.vaekitExplore.D.result.mean"), ex.est.encode(sent, label)[0], atol=1e-5)
            shown = lambda css: len(browser.find_elements("css selector", css))  # noqa: E731
            caption = browser.find_element("id", "overlay-caption").text
            if kind == "1-D VAE":  # no plane to draw on, only the decoded mean
                assert shown("#plane-overlay *") == 0
            elif kind == "autoencoder":  # a code, one point: no ellipse, no samples
                assert shown("#posterior-mean") == 1 and shown("#posterior-1sd") == 0 and shown(".posterior-sample") == 0
                assert "autoencoder" in caption and "prior" not in caption
            else:
                assert shown("#posterior-1sd") == shown("#posterior-2sd") == 1 and shown(".posterior-sample") == 16
                assert ("projected onto the plane's axes" in caption) == (kind == "20-D VAE")
        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert not errors, errors
        assert browser.find_element("id", "status").text == ""
    finally:
        server.shutdown()
        server.server_close()


# -- trust: what a run folder names is shown as text, and the page runs under its CSP ---------------

# Each payload, were it parsed as HTML, would run script that records itself in window.__pwned.
PAYLOADS = ['<img src=x onerror="(window.__pwned = window.__pwned || []).push(1)">',
            '</option><img src=x onerror="(window.__pwned = window.__pwned || []).push(2)">',
            '<svg onload="(window.__pwned = window.__pwned || []).push(3)">&amp;']
# Records every CSP violation before the page's own script runs (devtools' script is exempt from the CSP).
WATCH_CSP = ("window.__csp = []; document.addEventListener('securitypolicyviolation', "
             "(e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")


@pytest.fixture
def csp_watch(browser):
    token = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH_CSP})
    yield
    browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": token["identifier"]})
    browser.get_log("browser")  # drop what this test provoked, so later tests see only their own messages


def test_the_page_runs_under_its_csp_without_a_violation(browser, page_url, csp_watch):
    browser.get(page_url)
    wait_for(browser, "return document.body.dataset.ready === '1'", "the page to start")
    settle(browser)
    browser.find_element("id", "interpolate").click()  # the data: URLs of the strips
    wait_for(browser, "const i = document.getElementById('interp-strip'); return i.complete && i.naturalWidth > 0", "the strip")
    assert browser.execute_script("return window.__csp") == []
    logged = [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not logged, logged


def test_class_and_run_names_holding_html_are_shown_as_text_and_run_nothing(browser, explorer, tmp_path, csp_watch):
    names = [PAYLOADS[k % len(PAYLOADS)] + f" #{k}" for k in range(10)]
    crafted = Explorer(explorer.est, _ten_classes(explorer), name=PAYLOADS[0], classes=names)
    server = ExploreServer(crafted, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        browser.get(server.url)
        wait_for(browser, "return document.body.dataset.ready === '1'", "the page with crafted names to start")
        settle(browser)
        present = [names[k] for k in np.unique(crafted.y)]
        legend = browser.execute_script("return [...document.querySelectorAll('#legend span')].map((s) => s.textContent)")
        assert legend == present  # the raw strings, character for character
        options = browser.execute_script("return [...document.getElementById('a-class').options].map((o) => o.text)")
        assert options == present
        assert browser.execute_script("return document.getElementById('run-name').textContent") == PAYLOADS[0]
        assert browser.title == f"vaekit explore: {PAYLOADS[0]}"
        numbers = browser.find_element("id", "ex-numbers").text
        assert names[int(crafted.y[0])] in numbers  # the selected example's label row
        assert not browser.find_elements("css selector", "#legend img, #legend svg, select img, #ex-numbers img, header img")
        time.sleep(0.3)  # an <img src=x> would have failed to load by now
        assert browser.execute_script("return window.__pwned === undefined")
        assert browser.execute_script("return window.__csp") == []  # nothing was even tried
        # And the CSP is the second wall: markup that does reach the page runs no inline handler.
        browser.execute_script("document.body.insertAdjacentHTML('beforeend', arguments[0]);", PAYLOADS[0])
        wait_for(browser, "return window.__csp.length > 0", "the CSP to refuse the inline handler")
        assert browser.execute_script("return window.__pwned === undefined")
        assert any(v.startswith("script-src") for v in browser.execute_script("return window.__csp"))
    finally:
        server.shutdown()
        server.server_close()


def _ten_classes(explorer):
    """The explorer's data, labelled as they are (digits 0-9), for a model that has ten class names."""
    from vaekit.data import Dataset

    return Dataset(explorer.X, explorer.y, "digits")
