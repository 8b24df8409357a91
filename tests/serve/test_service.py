from __future__ import annotations

import base64
import concurrent.futures
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")

from leafiqa.serve.service import create_app  # noqa: E402
from leafiqa.testing.mock_teacher import ServerThread  # noqa: E402


@pytest.fixture(scope="module")
def service(model_file: Path):
    app = create_app(model_file, runtime="torch", max_upload_bytes=200_000, max_batch=8)
    with ServerThread(app) as server:
        yield server.url, app


def test_health_and_model(service) -> None:
    url, _ = service
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    model = httpx.get(f"{url}/model").json()
    assert model["input_size"] == 96 and model["calibration"]["kind"] == "logistic4"
    assert model["mos_range"] == [0.5, 4.5]


def test_score_multipart_and_json(service, image_folder: Path) -> None:
    url, _ = service
    files = [("files", (p.name, p.read_bytes(), "image/jpeg"))
             for p in sorted(image_folder.glob("*.jpg"))[:3]]
    multipart = httpx.post(f"{url}/score", files=files, timeout=60).json()
    assert multipart["names"] == ["image_00.jpg", "image_01.jpg", "image_02.jpg"]
    encoded = [base64.b64encode(p.read_bytes()).decode()
               for p in sorted(image_folder.glob("*.jpg"))[:3]]
    as_json = httpx.post(f"{url}/score", json={"images": encoded}, timeout=60).json()
    assert as_json["scores"] == pytest.approx(multipart["scores"], abs=1e-4)


def test_non_image_and_oversized_uploads_are_4xx(service, tmp_path: Path) -> None:
    url, _ = service
    response = httpx.post(f"{url}/score", files={"files": ("notes.txt", b"hello", "text/plain")})
    assert response.status_code == 415 and "notes.txt" in response.json()["detail"]
    big = b"\xff\xd8" + b"0" * 300_000
    response = httpx.post(f"{url}/score", files={"files": ("big.jpg", big, "image/jpeg")})
    assert response.status_code == 413
    assert httpx.post(f"{url}/score", json={"images": ["@@@"]}).status_code == 400
    assert httpx.post(f"{url}/score", content=b"x",
                      headers={"content-type": "text/plain"}).status_code == 415


def test_concurrent_requests_are_micro_batched(service, image_folder: Path) -> None:
    url, app = service
    payload = (image_folder / "image_05.jpg").read_bytes()
    before = app.state.batcher.batches

    def one(_: int) -> float:
        return httpx.post(f"{url}/score", files={"files": ("a.jpg", payload, "image/jpeg")},
                          timeout=60).json()["scores"][0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        scores = list(pool.map(one, range(16)))
    assert max(scores) - min(scores) < 1e-4
    assert app.state.batcher.batches - before < 16  # several requests shared a forward pass


def test_pyramid_model_is_served_with_its_sizes(pyramid_model_file: Path,
                                                 image_folder: Path) -> None:
    from leafiqa.model.scorer import Scorer

    app = create_app(pyramid_model_file, runtime="torch", max_batch=8)
    paths = sorted(image_folder.glob("*.jpg"))[:3]
    with ServerThread(app) as server:
        assert httpx.get(f"{server.url}/model").json()["input_size"] == [64, 96]
        files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]
        served = httpx.post(f"{server.url}/score", files=files, timeout=60).json()["scores"]
    local = Scorer(pyramid_model_file, runtime="torch").score_paths(paths)
    assert served == pytest.approx(list(local), abs=1e-4)
