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
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
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
    assert len(imgs) >= 6, imgs  # curves, reconstructions, samples, manifold, latent, interpolation
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
