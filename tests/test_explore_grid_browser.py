"""The explorer's code grid in a real browser (headless Chromium, as test_explore_browser.py): click a
cell of a VQ-VAE example's grid, type another entry, and the decoded canvas becomes the model's
image of the edited grid; "undo all edits" brings the reconstruction back."""

from __future__ import annotations

import time

import numpy as np
import pytest
from test_explore_browser import browser, decoded_image, page_url, wait_for  # noqa: F401 -- fixtures used by name

from vaekit.data import load_dataset
from vaekit.estimators import VQVAE
from vaekit.explore import Explorer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def explorer():
    data = load_dataset("embedded", "train", limit=200)
    est = VQVAE(latent_dim=4, codebook_size=16, epochs=2, batch_size=32, val_fraction=0.0, seed=0).fit(data.X)
    return Explorer(est, data, name="vq", classes=data.classes, max_points=60)


def grid_cells(driver) -> np.ndarray:
    return np.array(driver.execute_script(
        "return [...document.querySelectorAll('#grid-cells tr')].map(r => [...r.cells].map(c => Number(c.textContent)));"))


def test_editing_a_cell_decodes_the_edited_grid(browser, explorer):  # noqa: F811 -- the imported fixture
    assert browser.execute_script("return document.getElementById('grid-panel').hidden") is False
    wait_for(browser, "return document.querySelectorAll('#grid-cells td').length === 49", "the grid of example 0")
    grid = grid_cells(browser)
    np.testing.assert_array_equal(grid, explorer.est.indices(explorer.X[:1])[0])
    recon = explorer.est.reconstruct(explorer.X[:1])[0, 0]
    wait_for(browser, "return document.getElementById('grid-changed').textContent.startsWith('0 of 49')", "the count of edits")

    def shows(image: np.ndarray, timeout: float = 20.0) -> bool:
        """Whether the decoded canvas comes to show ``image`` (to the PNG's rounding) within ``timeout`` seconds."""
        end = time.time() + timeout
        while time.time() < end:
            if np.abs(decoded_image(browser, (28, 28), "grid-decoded") - image).max() <= 1.5 / 255:
                return True
            time.sleep(0.05)
        return False

    assert shows(recon), "the unedited grid decodes to the example's reconstruction"

    new = int((grid[3, 3] + 5) % 16)
    browser.execute_script("document.querySelector('#grid-cells td[data-row=\"3\"][data-col=\"3\"]').click();")
    entry = browser.find_element("id", "grid-entry")
    assert entry.is_enabled() and entry.get_attribute("value") == str(grid[3, 3])
    entry.clear()
    entry.send_keys(str(new))
    wait_for(browser, f"return document.querySelector('#grid-cells td[data-row=\"3\"][data-col=\"3\"]').textContent === '{new}'",
             "the cell to show the new entry")
    edited = grid.copy()
    edited[3, 3] = new
    want = explorer.est.decode_indices(edited[None])[0, 0]
    wait_for(browser, "return document.getElementById('grid-changed').textContent.startsWith('1 of 49')", "one edit counted")
    assert shows(want), "the canvas shows the edited grid's image"
    assert "edited" in browser.execute_script("return document.querySelector('#grid-cells td[data-row=\"3\"][data-col=\"3\"]').className")

    browser.find_element("id", "grid-reset").click()
    wait_for(browser, "return document.getElementById('grid-changed').textContent.startsWith('0 of 49')", "the edits undone")
    assert shows(recon)
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
