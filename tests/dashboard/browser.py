"""A real headless browser for the page tests: Debian's chromium driven by Selenium (nothing downloaded).

`chromium()` skips the test with the reason when the browser, its driver or selenium is missing
(install: `apt-get install chromium chromium-driver`; scripts/_setup.sh does it for the dev extras).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1800",
)


@contextlib.contextmanager
def chromium() -> Iterator:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver")
    if not Path(CHROMIUM).exists() or driver_path is None:
        pytest.skip("chromium / chromium-driver are not installed (apt-get install chromium chromium-driver)")
    with tempfile.TemporaryDirectory(prefix="paris-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        try:
            driver.set_page_load_timeout(30)
            yield driver
        finally:
            driver.quit()


def csp_violations(driver) -> list[str]:
    """Console messages about the Content-Security-Policy (the page itself must cause none)."""
    return [m["message"] for m in driver.get_log("browser") if "Content Security Policy" in m["message"]]


def image_loaded(driver, css: str) -> bool:
    return bool(
        driver.execute_script(
            "const i = document.querySelector(arguments[0]); return !!i && i.complete && i.naturalWidth > 0;", css
        )
    )


def screenshot(driver, path: Path) -> Path:
    """A full-page screenshot (the window grown to the page's height first)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(900, int(height) + 40), 6000))
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path
