"""The page at ``/`` in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``),
``/docs`` from bundled assets, and the typed request body in the OpenAPI schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")

from leafiqa.deploy.scorer import Scorer  # noqa: E402
from leafiqa.deploy.service import create_app  # noqa: E402
from leafiqa.teachers.mock_server import ServerThread  # noqa: E402
from tests.conftest import make_image  # noqa: E402


@pytest.fixture(scope="module")
def served(model_file: Path) -> Iterator[str]:
    with ServerThread(create_app(model_file, runtime="torch")) as server:
        yield server.url


def wait_for(driver, css: str, text_test=lambda text: bool(text), timeout: float = 30.0):  # noqa: ANN001, ANN201
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d):  # noqa: ANN001, ANN202
        elements = d.find_elements(By.CSS_SELECTOR, css)
        return elements if elements and all(text_test(e.text) for e in elements) else False

    return WebDriverWait(driver, timeout).until(found)


def test_page_scores_an_uploaded_image_in_chromium(browser, served: str, model_file: Path,
                                                   tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    image = make_image(tmp_path / "upload.jpg", seed=3)
    browser.get(served + "/")
    model_line = wait_for(browser, "#model", lambda t: "higher is better" in t)[0].text
    assert "0.5 to 4.5" in model_line  # the test model's MOS range
    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(image))
    shown = wait_for(browser, ".card .score")[0].text
    expected = Scorer(model_file, runtime="torch")(image)
    assert float(shown) == pytest.approx(expected, abs=0.006)
    assert "upload.jpg" in browser.find_element(By.CSS_SELECTOR, ".card .name").text
    assert browser.find_element(By.CSS_SELECTOR, ".card .bar > div").get_attribute("style")
    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:4] == b"\x89PNG"


def test_page_shows_the_error_for_a_non_image(browser, served: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"not an image")
    browser.get(served + "/")
    wait_for(browser, "#model", lambda t: "higher is better" in t)
    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(bad))
    message = wait_for(browser, "#status.error, .card .error")[0].text
    assert "notes.jpg" in message


def test_docs_render_offline_in_chromium(browser, served: str) -> None:
    browser.get(served + "/docs")
    operations = wait_for(browser, ".opblock-summary-path", timeout=30)
    assert "/score" in [o.text.strip() for o in operations]


def test_docs_use_bundled_assets_and_schema_has_a_request_body(served: str) -> None:
    html = httpx.get(served + "/docs").text
    assert "cdn." not in html and "/docs-assets/swagger-ui-bundle.js" in html
    assert httpx.get(served + "/docs-assets/swagger-ui-bundle.js").status_code == 200
    schema = httpx.get(served + "/openapi.json").json()
    body = schema["paths"]["/score"]["post"]["requestBody"]["content"]
    files = body["multipart/form-data"]["schema"]["properties"]["files"]
    assert files["items"]["format"] == "binary"
    assert body["application/json"]["schema"]["$ref"].endswith("/ScoreRequest")
    assert schema["components"]["schemas"]["ScoreRequest"]["properties"]["images"]["type"] \
        == "array"
    page = httpx.get(served + "/")
    assert page.status_code == 200 and "<input id=\"files\"" in page.text
    assert "http" not in page.text.split("<script>")[1]  # self-contained: nothing fetched
