"""Screenshot of the rating page (``leaf rate serve``) into docs/rate.png, as a rater sees it
after pressing Start: a study of a few images (clive-dev's by default) served on 127.0.0.1 and
opened in headless Chromium.

    PYTHONPATH=src python scripts/rating_screenshot.py [--images ../shared/data/clive-dev/images]
        [--out docs/rate.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from headless import chromium_driver

from leafiqa.labelling.service import create_rating_app
from leafiqa.labelling.study import Study, StudySettings, read_image_list
from leafiqa.testing.mock_teacher import ServerThread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path,
                        default=Path("../shared/data/clive-dev/images"))
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("docs/rate.png"))
    args = parser.parse_args()

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    listed = read_image_list(args.images)[: args.count]
    with tempfile.TemporaryDirectory() as folder:
        study = Study.create(Path(folder) / "study", listed,
                             StudySettings(title="Photo quality — round 1", repeats=1))
        (_, token), = study.add_raters(1)
        with (chromium_driver("1000,900") as driver,
              ServerThread(create_rating_app(study.folder)) as server):
            wait = WebDriverWait(driver, 30)
            driver.get(f"{server.url}/r/{token}")
            wait.until(ready.element_to_be_clickable((By.ID, "start"))).click()
            wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, "#acr button")))
            driver.find_element(By.CSS_SELECTOR, "#acr button[data-value='4']").click()
            wait.until(lambda d: d.find_element(By.ID, "progress")
                       .get_attribute("data-done") == "1")
            wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, "#acr button")))
            from selenium.webdriver.common.action_chains import ActionChains

            ActionChains(driver).move_to_element(driver.find_element(By.ID, "title")
                                                 ).perform()  # no button under the mouse
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
