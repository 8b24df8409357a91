"""The page at ``/`` in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``),
``/docs`` from bundled assets, and the typed request body in the OpenAPI schema."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

pytest.importorskip("fastapi")

from leafiqa.model.scorer import Scorer  # noqa: E402
from leafiqa.serve.service import create_app  # noqa: E402
from leafiqa.testing.mock_teacher import ServerThread  # noqa: E402
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


def open_page(browser, url: str) -> str:  # noqa: ANN001
    browser.get(url + "/")
    return wait_for(browser, "#model", lambda t: "higher is better" in t)[0].text


def test_page_scores_an_uploaded_image_in_chromium(browser, served: str, model_file: Path,
                                                   tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    image = make_image(tmp_path / "upload.jpg", seed=3)
    model_line = open_page(browser, served)
    assert "0.5 to 4.5" in model_line  # the test model's MOS range
    browser.find_element(By.CSS_SELECTOR, "input#files").send_keys(str(image))
    shown = wait_for(browser, "tr.row[data-state=scored] .score")[0].text
    expected = Scorer(model_file, runtime="torch")(image)
    assert float(shown) == pytest.approx(expected, abs=0.006)
    assert "upload.jpg" in browser.find_element(By.CSS_SELECTOR, "tr.row .name").text
    assert browser.find_element(By.CSS_SELECTOR, "tr.row .bar > div").get_attribute("style")
    assert browser.find_element(By.ID, "status").text == "1 of 1 scored · 0 failed"
    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:4] == b"\x89PNG"


def test_page_shows_the_error_for_a_non_image(browser, served: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"not an image")
    open_page(browser, served)
    browser.find_element(By.CSS_SELECTOR, "input#files").send_keys(str(bad))
    message = wait_for(browser, "tr.row[data-state=failed] .error")[0].text
    assert "notes.jpg" in message
    assert browser.find_element(By.ID, "status").text == "0 of 1 scored · 1 failed"


def test_page_takes_70_files_in_order_and_downloads_a_csv_of_70_rows(
        browser, served: str, model_file: Path, tmp_path: Path) -> None:
    """More files than one request may carry (64): the page sends them in batches, shows a
    row per file in the order given with a running count, and the CSV it downloads has them
    all, the failed one included."""
    from selenium.webdriver.common.by import By

    folder = tmp_path / "folder"
    paths = [make_image(folder / f"photo_{i:02d}.jpg", seed=i, size=64) for i in range(69)]
    broken = folder / "photo_35_broken.jpg"
    broken.write_bytes(b"not an image")
    paths.insert(35, broken)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior",
                            {"behavior": "allow", "downloadPath": str(downloads)})
    open_page(browser, served)
    browser.find_element(By.CSS_SELECTOR, "input#files").send_keys(
        "\n".join(str(p) for p in paths))
    wait_for(browser, "#status", lambda t: t == "69 of 70 scored · 1 failed", timeout=120)
    rows = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr.row")
    assert [r.find_element(By.CSS_SELECTOR, ".name").text for r in rows] == [p.name for p in paths]
    assert [r.get_attribute("data-state") for r in rows].count("failed") == 1
    assert rows[35].get_attribute("data-state") == "failed"
    browser.find_element(By.ID, "download").click()
    csv = downloads / "leaf-scores.csv"
    for _ in range(100):
        if csv.is_file() and not list(downloads.glob("*.crdownload")):
            break
        time.sleep(0.1)
    table = pd.read_csv(csv)
    assert list(table["file"]) == [p.name for p in paths]
    assert table["score"].notna().sum() == 69 and "photo_35_broken.jpg" in table["error"][35]
    expected = Scorer(model_file, runtime="torch").score_paths(paths[:3])
    assert table["score"][:3].to_numpy() == pytest.approx(expected, abs=1e-3)


DROP_IMAGES = """
const [count, done] = [arguments[0], arguments[arguments.length - 1]];
const transfer = new DataTransfer();
const canvas = document.createElement("canvas");
canvas.width = canvas.height = 48;
const context = canvas.getContext("2d");
(async () => {
  for (let i = 0; i < count; i++) {
    context.fillStyle = `hsl(${i * 5}, 70%, ${20 + i % 60}%)`;
    context.fillRect(0, 0, 48, 48);
    context.fillStyle = "#fff";
    context.fillRect(i % 40, 8, 6, 30);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    transfer.items.add(new File([blob], `drop_${String(i).padStart(2, "0")}.png`,
                                { type: "image/png" }));
  }
  const drop = document.getElementById("drop");
  drop.dispatchEvent(new DragEvent("dragenter", { dataTransfer: transfer, bubbles: true }));
  drop.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
  done(transfer.files.length);
})();
"""


def test_page_takes_70_images_dropped_on_it(browser, served: str) -> None:
    """The drag-and-drop path: 70 images dropped at once on the drop zone."""
    from selenium.webdriver.common.by import By

    open_page(browser, served)
    browser.set_script_timeout(60)
    assert browser.execute_async_script(DROP_IMAGES, 70) == 70
    wait_for(browser, "#status", lambda t: t == "70 of 70 scored · 0 failed", timeout=120)
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "tr.row .name")]
    assert names == [f"drop_{i:02d}.png" for i in range(70)]


def test_page_takes_a_folder_with_its_subfolders(browser, served: str, tmp_path: Path) -> None:
    """"choose a folder…": every image under it, in path order; other files are left out."""
    from selenium.webdriver.common.by import By

    folder = tmp_path / "shoot"
    for name in ("b.jpg", "a.jpg", "day2/c.jpg"):
        make_image(folder / name, seed=len(name), size=48)
    (folder / "notes.txt").write_text("not an image")
    open_page(browser, served)
    browser.find_element(By.ID, "folder-input").send_keys(str(folder))
    wait_for(browser, "#status", lambda t: t == "3 of 3 scored · 0 failed", timeout=60)
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "tr.row .name")]
    assert names == ["shoot/a.jpg", "shoot/b.jpg", "shoot/day2/c.jpg"]


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


CARD = {
    "name": "leaf-test", "title": "toy photos", "domain": "toy photos only",
    "licence": "Non-commercial (S-Lab License 1.0; licences/LICENSE-Q-Bench).",
    "training_data": "toy set, split_1 (see ../shared/data/toy/splits.csv:split_1)",
    "teacher": "qbench:/home/alice/private/internlm.json",
    "test": {"split": "split_1 test", "srcc": 0.7697, "plcc": 0.7956, "rmse": 12.0663, "n": 108},
}


@pytest.fixture(scope="module")
def carded_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from tests.conftest import write_model_file

    model = write_model_file(tmp_path_factory.mktemp("carded") / "m.safetensors", [64])
    with safe_open(str(model), framework="pt") as handle:
        metadata = handle.metadata()
    metadata["card"] = json.dumps(CARD)
    save_file(load_file(str(model)), str(model), metadata=metadata)
    return model


def test_model_text_is_served_unmangled_but_absolute_paths_are_not(carded_model: Path) -> None:
    with ServerThread(create_app(carded_model, runtime="torch")) as server:
        card = httpx.get(server.url + "/model").json()["card"]
    assert card["licence"] == CARD["licence"]
    assert card["training_data"] == CARD["training_data"]
    assert card["teacher"] == "qbench:internlm.json"


def test_page_shows_the_card_licence_and_test_figures(browser, carded_model: Path) -> None:
    from selenium.webdriver.common.by import By

    with ServerThread(create_app(carded_model, runtime="torch")) as server:
        model_line = open_page(browser, server.url)
        facts = {e.get_attribute("data-field"): e.text
                 for e in browser.find_elements(By.CSS_SELECTOR, "#facts > div")}
        browser.find_element(By.CSS_SELECTOR, "#card summary").click()
        card_text = browser.find_element(By.ID, "card-fields").text
    assert model_line.startswith("leaf-test — toy photos")
    assert facts["licence"] == "licence: " + CARD["licence"]
    assert facts["domain"] == "domain: toy photos only"
    assert facts["test"] == ("test figures: SRCC 0.770 · PLCC 0.796 · RMSE 12.066 "
                             "(split_1 test, 108 images)")
    assert "../shared/data/toy/splits.csv:split_1" in card_text  # every field, generically
