"""The run report in a real browser: headless Chromium loads report.html from disk; no console
errors, and every embedded image decodes to a non-zero size.

Needs the Debian packages `chromium` and `chromium-driver` and the Python package `selenium`;
skips with the reason when any is missing.
"""

from __future__ import annotations

import shutil

import pytest

from vaekit.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    if not CHROMIUM or not DRIVER:
        pytest.skip("headless Chromium not found: apt-get install chromium chromium-driver")
    from headless import start_chromium

    driver = start_chromium(webdriver, CHROMIUM, DRIVER, ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = tmp_path_factory.mktemp("report") / "run"
    # vaekit train writes report.html itself (k=100 importance samples).
    assert main(["train", "--out", str(run), "--latent-dim", "2", "--limit", "400", "--epochs", "1", "--quiet", "--device", "cpu"]) == 0
    return run / "report.html"


def test_report_renders_in_chromium_without_console_errors(browser, report):
    browser.get(report.resolve().as_uri())
    imgs = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);")
    # curves, KL per dimension, reconstructions, latent, samples, manifold, interpolation, bound and gap
    assert len(imgs) >= 8, imgs
    for alt, complete, w, h in imgs:
        assert complete and w > 0 and h > 0, f"image {alt!r} did not render ({w}x{h})"
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
    assert "vaekit run report" in browser.title or "vaekit report" in browser.title
    assert f"vaekit explore {report.parent}" in browser.find_element("tag name", "body").text  # how to explore it live


def test_a_broken_image_would_be_caught(browser, report, tmp_path):
    # The check above can fail: a page whose image data are damaged reports naturalWidth 0.
    page = report.read_text().replace("data:image/png;base64,iVBOR", "data:image/png;base64,AAAA", 1)
    bad = tmp_path / "bad.html"
    bad.write_text(page)
    browser.get(bad.resolve().as_uri())
    widths = browser.execute_script("return Array.from(document.images).map(i => i.naturalWidth);")
    assert 0 in widths


def test_every_figure_in_the_browser_has_both_caption_lines(browser, report):
    browser.get(report.resolve().as_uri())
    captions = browser.execute_script(
        "return Array.from(document.querySelectorAll('figure')).map(f => {"
        " const c = f.querySelector('figcaption'); const w = c && c.querySelector('.what'); const l = c && c.querySelector('.look');"
        " return [f.querySelector('img').alt, w ? w.innerText : '', l ? l.innerText : '', c ? c.getBoundingClientRect().height : 0]; });")
    assert len(captions) >= 8
    for alt, what, look, height in captions:
        assert len(what) > 40 and look.startswith("Look for:") and len(look) > 50 and height > 0, (alt, what, look)
    # Figures first, numbers next, the configuration last and folded (its table takes no room until opened).
    order = browser.execute_script(
        "const y = s => document.querySelector(s).getBoundingClientRect().top + window.scrollY;"
        "return [y('figure'), y('#sec-numbers'), y('#sec-config'), document.querySelector('details').open,"
        " document.querySelector('details').getBoundingClientRect().height, window.scrollY];")
    assert order[0] < order[1] < order[2], order
    assert order[3] is False and order[4] < 60, order
    assert "vaekit explore" in browser.find_element("css selector", "p.explore").text


@pytest.fixture(scope="module")
def compare_page(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    common = ["--latent-dim", "2", "--limit", "400", "--epochs", "1", "--quiet", "--device", "cpu", "--no-report"]
    for name, extra in (("ae", ["--model", "ae"]), ("vae", []), ("beta4", ["--beta", "4"])):
        assert main(["train", "--out", str(root / name), *extra, *common]) == 0
    out = root / "compare.html"
    assert main(["report", *(str(root / n) for n in ("ae", "vae", "beta4")), "--out", str(out), "--k", "5", "--iw-limit", "100"]) == 0
    return out


def test_compare_page_renders_in_chromium_without_console_errors(browser, compare_page):
    browser.get_log("browser")  # drop what earlier pages logged (the broken-image check logs an error on purpose)
    browser.get(compare_page.resolve().as_uri())
    imgs = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);")
    assert [i[0] for i in imgs] == ["Rate against distortion", "Reconstructions side by side"]
    for alt, complete, w, h in imgs:
        assert complete and w > 0 and h > 0, f"image {alt!r} did not render ({w}x{h})"
    assert not [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('#sec-numbers tr')).slice(1).map(r => r.cells[0].innerText + ' ' + r.cells[1].innerText);")
    assert rows == ["ae autoencoder", "vae VAE", "beta4 VAE"]
