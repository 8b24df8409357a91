"""The headless Chromium the screenshot scripts drive (selenium with Debian's ``chromium`` and
``chromium-driver``, which scripts/install-system-deps.sh installs)."""

from __future__ import annotations

import shutil
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def chromium_driver(window: str, *flags: str) -> webdriver.Chrome:
    """A headless Chromium with a ``window`` of "width,height" pixels; exits with one error
    line where chromium or chromedriver is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        sys.exit("error: needs chromium and chromedriver on PATH "
                 "(scripts/install-system-deps.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={window}", *flags):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path), options=options)
