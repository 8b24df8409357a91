#!/usr/bin/env python
"""The README's screenshot of a ``leaf bench`` report: the top of ``report.html`` from a bench
folder, rendered in headless Chromium once every embedded plot has decoded.

    python scripts/report_screenshot.py runs/report-clive-grid/bench [--out docs/report.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from headless import chromium_driver
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
    with chromium_driver(args.size, "--hide-scrollbars") as driver:
        driver.get(page.resolve().as_uri())
        WebDriverWait(driver, 30).until(lambda d: all(
            d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
            for i in d.find_elements(By.TAG_NAME, "img")))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
    print(f"wrote {args.out} from {page}")


if __name__ == "__main__":
    main()
