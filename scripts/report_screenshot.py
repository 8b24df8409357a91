#!/usr/bin/env python
"""The README's screenshot of a ``leaf bench`` report: the top of ``report.html`` from a bench
folder, rendered in headless Chromium once every embedded plot has decoded.

    python scripts/report_screenshot.py runs/report-clive-grid/bench [--out docs/report.png]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", type=Path, help="a bench folder holding report.html")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    parser.add_argument("--size", default="1200,1900", help="window width,height in pixels")
    args = parser.parse_args()
    page = args.bench / "report.html"
    if not page.is_file():
        sys.exit(f"error: {page}: no report.html (run `leaf bench CONFIG` first)")
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        sys.exit("error: needs chromium and chromedriver on PATH "
                 "(scripts/install-system-deps.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 f"--window-size={args.size}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(page.resolve().as_uri())
        WebDriverWait(driver, 30).until(lambda d: all(
            d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
            for i in d.find_elements(By.TAG_NAME, "img")))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
    finally:
        driver.quit()
    print(f"wrote {args.out} from {page}")


if __name__ == "__main__":
    main()
