"""The rating page in real headless Chromium: two raters at once (one answering at random) whose
export keeps only the honest one, and a server killed with SIGKILL mid-study that restarts with
every acknowledged rating."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sureal", reason="rating export needs sureal (pip install 'leaf-iqa[rate]')")

from leafiqa.labelling.screening import estimate, votes_from_study, write_labels  # noqa: E402
from leafiqa.labelling.service import create_rating_app  # noqa: E402
from leafiqa.labelling.study import Study  # noqa: E402
from leafiqa.testing.mock_teacher import ServerThread, free_port  # noqa: E402
from tests.conftest import headless_chromium  # noqa: E402
from tests.labelling.conftest import make_study  # noqa: E402

IMAGES = 12
GOLD = {"gold_a.jpg": 5.0, "gold_b.jpg": 1.0, "gold_c.jpg": 5.0, "gold_d.jpg": 1.0}


def honest_level(name: str) -> int:
    """What a careful rater answers: img0 (sharp) … img11 (blurred) from 5 down to 1."""
    if name in GOLD:
        return int(GOLD[name])
    return 5 - (int(name[3:].split(".")[0]) * 5) // IMAGES


@pytest.fixture
def second_browser(browser) -> Iterator[object]:  # noqa: ANN001 - a second, independent rater
    yield from headless_chromium()


def done_count(driver) -> int:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    return int(driver.find_element(By.ID, "progress").get_attribute("data-done") or 0)


def rate_through_page(driver, url: str, study: Study, rater_id: int,  # noqa: ANN001
                      answer: Callable[[str], int], steps: int | None = None) -> list[int]:
    """Open the rater's link, press Start/Continue, and answer ``steps`` images (all by
    default) by clicking the ACR buttons; returns the values acknowledged by the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30)
    driver.get(url)
    wait.until(ready.element_to_be_clickable((By.ID, "start"))).click()
    total = next(r.total for r in study.raters() if r.id == rater_id)
    given = []
    while done_count(driver) < total and (steps is None or len(given) < steps):
        step = done_count(driver)
        name = study.image(study.step(rater_id, step).image_id).name
        value = answer(name)
        button = wait.until(ready.element_to_be_clickable(
            (By.CSS_SELECTOR, f"#acr button[data-value='{value}']")))
        button.click()
        wait.until(lambda d, s=step: done_count(d) > s)  # the server acknowledged it
        given.append(value)
    return given


def test_two_raters_at_once_and_the_export_screens_out_the_random_one(
        browser, second_browser, tmp_path: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    study = make_study(tmp_path, images=IMAGES, gold=GOLD, repeats=3)
    (honest, honest_token), (careless, careless_token) = study.add_raters(2)
    rng = np.random.default_rng(0)
    results: dict[str, list[int]] = {}
    failures: list[BaseException] = []
    with ServerThread(create_rating_app(study.folder)) as server:
        def run(name: str, driver, token: str, rater_id: int, answer) -> None:  # noqa: ANN001
            try:
                results[name] = rate_through_page(driver, f"{server.url}/r/{token}", study,
                                                  rater_id, answer)
            except BaseException as error:  # noqa: BLE001 - reported below
                failures.append(error)

        threads = [threading.Thread(target=run, args=("honest", browser, honest_token,
                                                       honest.id, honest_level)),
                   threading.Thread(target=run, args=("careless", second_browser,
                                                      careless_token, careless.id,
                                                      lambda _: int(rng.integers(1, 6))))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not failures, failures
        assert "Thank you" in browser.find_element(By.ID, "finished").text
    assert {r.label: r.done for r in study.raters()} == {"rater1": honest.total,
                                                         "rater2": careless.total}
    result = estimate(votes_from_study(study), study.settings)
    checks = {c.rater: c for c in result.checks}
    assert checks["rater1"].kept
    assert not checks["rater2"].kept, checks["rater2"]
    out = tmp_path / "labels.csv"
    assert write_labels(study, out, result) == IMAGES
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    for name, mos, _, n, se in rows:
        # one kept rater: no second vote to tell its error by
        assert float(mos) == honest_level(Path(name).name) and n == "1" and se == ""


def start_server(study: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "leafiqa", "rate", "serve", str(study), "--host", "127.0.0.1",
         "--port", str(port), "--rate-limit", "1000", "--burst", "1000"],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"rating server did not start: {process.stderr.read().decode()[-2000:]}")


def test_a_server_killed_mid_study_keeps_every_acknowledged_rating(
        browser, tmp_path: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    study = make_study(tmp_path, images=60, repeats=2)
    (page_rater, page_token), (api_rater, api_token) = study.add_raters(2)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(study.folder, port)
    acknowledged: list[int] = []
    stop = threading.Event()

    def hammer() -> None:  # a second rater sending as fast as the server answers
        with httpx.Client(timeout=5) as client:
            step = 0
            while not stop.is_set() and step < api_rater.total:
                try:
                    reply = client.post(f"{url}/api/r/{api_token}/rating",
                                        json={"step": step, "value": 1 + step % 5})
                except httpx.HTTPError:
                    return  # the server is gone
                if reply.status_code == 200:
                    acknowledged.append(step)
                    step += 1

    try:
        clicked = rate_through_page(browser, f"{url}/r/{page_token}", study, page_rater.id,
                                    lambda name: 3, steps=4)
        worker = threading.Thread(target=hammer)
        worker.start()
        while len(acknowledged) < 5 and worker.is_alive():
            time.sleep(0.002)
        server.send_signal(signal.SIGKILL)  # mid-stream: the hammer is still sending
        server.wait(timeout=10)
        worker.join(timeout=30)
        stop.set()
        assert done_count(browser) == 4 and clicked == [3, 3, 3, 3]
        stored = {(r.rater_id, r.position): r.value for r in study.ratings()}
        assert [stored[(page_rater.id, k)] for k in range(4)] == [3.0] * 4
        assert all((api_rater.id, step) in stored for step in acknowledged)
        api_stored = sorted(p for r, p in stored if r == api_rater.id)
        # at most one rating can be stored whose reply the kill swallowed
        assert api_stored[: len(acknowledged)] == acknowledged
        assert len(api_stored) <= len(acknowledged) + 1 and len(acknowledged) >= 5
        assert len(acknowledged) < api_rater.total  # the kill came while it was sending

        server = start_server(study.folder, port)
        browser.get(f"{url}/r/{page_token}")
        start = WebDriverWait(browser, 30).until(ready.element_to_be_clickable((By.ID, "start")))
        assert "4 of" in start.text  # resumes where the rater was
        rate_through_page(browser, f"{url}/r/{page_token}", study, page_rater.id,
                          lambda name: 2, steps=1)
        assert done_count(browser) == 5
        assert "/image/5?" in browser.find_element(By.ID, "photo").get_attribute("src")
    finally:
        stop.set()
        server.kill()
        server.wait(timeout=10)


def test_the_admin_page_shows_hostile_image_names_as_text(browser, tmp_path: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from leafiqa.labelling.study import StudySettings, read_image_list
    from tests.conftest import make_image

    hostile = "<img src=x onerror=document.title='pwned'>.jpg"
    make_image(tmp_path / "photos" / hostile, seed=1)
    make_image(tmp_path / "photos" / "plain.jpg", seed=2)
    study = Study.create(tmp_path / "study", read_image_list(tmp_path / "photos"),
                         StudySettings(title="<script>document.title='pwned'</script>"))
    key = study.set_admin_key()
    (rater, token), = study.add_raters(1)
    with ServerThread(create_rating_app(study.folder)) as server:
        browser.get(f"{server.url}/admin")
        browser.find_element(By.ID, "key").send_keys(key)
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        cells = WebDriverWait(browser, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#images td"))
        assert hostile in [cell.text for cell in cells]
        assert "rater1" in browser.find_element(By.ID, "raters").text
        assert browser.title != "pwned" and not browser.find_elements(By.CSS_SELECTOR,
                                                                      "#images img")
        browser.get(f"{server.url}/r/{token}")  # the study's title on the rater's page
        WebDriverWait(browser, 30).until(
            lambda d: "<script>" in d.find_element(By.ID, "title").text)
        assert browser.title != "pwned"
        browser.execute_script("sessionStorage.clear()")


def test_a_slider_study_is_rated_with_the_slider(browser, tmp_path: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    study = make_study(tmp_path, images=2, scale="slider", repeats=0)
    (rater, token), = study.add_raters(1)
    with ServerThread(create_rating_app(study.folder)) as server:
        wait = WebDriverWait(browser, 30)
        browser.get(f"{server.url}/r/{token}")
        wait.until(ready.element_to_be_clickable((By.ID, "start"))).click()
        submit = wait.until(ready.element_to_be_clickable((By.ID, "submit-slider")))
        assert not browser.find_element(By.ID, "acr").is_displayed()
        browser.execute_script("document.getElementById('slider').value = '73'")
        submit.click()
        wait.until(lambda d: done_count(d) == 1)
    assert [r.value for r in study.ratings()] == [73.0]
