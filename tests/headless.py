"""Starting headless Chromium under chromedriver for the browser tests (the report, the explorer)."""

from __future__ import annotations

import time


def start_chromium(webdriver, chromium: str, driver: str, flags: tuple[str, ...]):
    """A Chrome WebDriver on ``chromium`` with ``flags`` and the browser console captured.

    A second try when Chromium dies while starting ("session not created: DevToolsActivePort file
    doesn't exist"): on a loaded machine its start-up can fail once and succeed at once after. What
    the tests check begins after the session exists, so a retry hides nothing they test; a browser
    that cannot start twice still fails the fixture.
    """
    from selenium.common.exceptions import SessionNotCreatedException
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in flags:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return webdriver.Chrome(service=Service(driver), options=opts)
    except SessionNotCreatedException:
        time.sleep(2.0)
        return webdriver.Chrome(service=Service(driver), options=opts)
