#!/usr/bin/env python
"""The README's screenshot of the page ``leaf serve`` shows: the packaged ``leaf-agiqa3k``
model (its card's licence and test figures at the top) scoring six AGIQA-3K images, lowest to
highest MOS, uploaded in headless Chromium.

    python scripts/page_screenshot.py [--out docs/page.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from headless import chromium_driver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from leafiqa.serve.service import create_app
from leafiqa.testing.mock_teacher import ServerThread

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "page.png")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/agiqa3k")
    args = parser.parse_args()
    frame = pd.read_csv(args.data / "data.csv").sort_values("mos_quality")
    picks = frame.iloc[[20 + (len(frame) - 40) * k // 5 for k in range(6)]]
    images = [str(args.data / "images" / name) for name in picks["name"]]
    with (ServerThread(create_app("leaf-agiqa3k", runtime="torch")) as server,
          chromium_driver("960,900") as driver):
        driver.get(server.url + "/")
        WebDriverWait(driver, 30).until(
            lambda d: "higher is better" in d.find_element(By.ID, "model").text)
        driver.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys("\n".join(images))
        WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(
            By.CSS_SELECTOR, "tr.row[data-state=scored]")) == len(images))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
