"""The headless Chromium the screenshot scripts drive (selenium with Debian's ``chromium`` and
``chromium-driver``, which scripts/install-system-deps.sh installs)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


@contextmanager
def chromium_driver(window: str, *flags: str) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a ``window`` of "width,height" pixels, its profile and temporary
    files in a folder of its own that is removed with it (nothing left in /tmp); exits with one
    error line where chromium or chromedriver is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        sys.exit("error: needs chromium and chromedriver on PATH "
                 "(scripts/install-system-deps.sh)")
    with tempfile.TemporaryDirectory(prefix="leaf-chromium-") as scratch:
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", f"--window-size={window}",
                     f"--user-data-dir={scratch}/profile", *flags):
            options.add_argument(flag)
        service = Service(driver_path, env={**os.environ, "TMPDIR": scratch})
        driver = webdriver.Chrome(service=service, options=options)
        try:
            yield driver
        finally:
            driver.quit()
