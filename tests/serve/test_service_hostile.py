"""The scoring service against hostile clients (issue 13, item 3): per-file results, streamed
size limits (chunked too), read timeouts, bombs, API keys, no local paths, readable errors —
and a small loopback load test checking correctness (timing is benchmarks/load_test_serve.py's
job)."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import threading
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi")

from fastapi import HTTPException  # noqa: E402

from leafiqa.serve.service import create_app, parse_json_images, public, readable  # noqa: E402
from leafiqa.testing.mock_teacher import ServerThread  # noqa: E402
from tests.hostile import bomb_png  # noqa: E402

LIMIT = 200_000


@pytest.fixture(scope="module")
def service(model_file: Path):
    app = create_app(model_file, runtime="torch", max_upload_bytes=LIMIT, max_batch=8,
                     max_request_bytes=3 * LIMIT, read_timeout=1.0)
    with ServerThread(app) as server:
        yield server.url


def jpeg(folder: Path, index: int) -> tuple[str, bytes, str]:
    path = folder / f"image_{index:02d}.jpg"
    return (path.name, path.read_bytes(), "image/jpeg")


def test_one_bad_image_fails_only_itself(service: str, image_folder: Path) -> None:
    files = [("files", jpeg(image_folder, 0)), ("files", ("bomb.png", bomb_png(), "image/png")),
             ("files", ("notes.txt", b"hello", "text/plain")), ("files", jpeg(image_folder, 1))]
    response = httpx.post(f"{service}/score", files=files, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["names"] == ["image_00.jpg", "bomb.png", "notes.txt", "image_01.jpg"]
    assert body["scores"][0] is not None and body["scores"][3] is not None
    assert body["scores"][1] is None and "too many pixels" in body["results"][1]["error"]
    assert body["scores"][2] is None and "notes.txt: not an image" in body["results"][2]["error"]
    assert "BytesIO" not in response.text and " at 0x" not in response.text


def test_chunked_and_declared_bodies_over_the_limit(service: str) -> None:
    def chunks():  # no Content-Length: the limit must hold while streaming
        for _ in range(100):
            yield b"\x00" * 65536

    response = httpx.post(f"{service}/score", content=chunks(), timeout=30,
                          headers={"content-type": "application/json"})
    assert response.status_code == 413
    big = httpx.post(f"{service}/score", content=b"0" * (3 * LIMIT + 10), timeout=30,
                     headers={"content-type": "application/json"})
    assert big.status_code == 413
    too_big_file = [("files", ("big.jpg", b"\xff\xd8" + b"0" * (LIMIT + 1), "image/jpeg"))]
    assert httpx.post(f"{service}/score", files=too_big_file, timeout=30).status_code == 413


def test_a_stalled_body_times_out(service: str) -> None:
    host, port = service.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                           b"\r\nContent-Length: 5000\r\n\r\n{\"images\": [")
        answer = connection.recv(4096)
    assert b" 408 " in answer.split(b"\r\n")[0]


def test_model_metadata_has_no_local_paths(tmp_path: Path) -> None:
    from tests.conftest import write_model_file

    model = write_model_file(tmp_path / "m.safetensors", [64])
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(model), framework="pt") as handle:
        metadata = handle.metadata()
    metadata["teacher_ids"] = json.dumps(["qbench:/home/alice/private/internlm.json", "cues"])
    metadata["notes"] = json.dumps({"data": "/home/alice/private/data.csv", "labels": 20})
    save_file(load_file(str(model)), str(model), metadata=metadata)
    app = create_app(model, runtime="torch")
    with ServerThread(app) as server:
        text = httpx.get(f"{server.url}/model").text
    assert "/home/alice" not in text and "private" not in text
    assert "qbench:internlm.json" in text and "data.csv" in text


def test_api_key_is_required_when_configured(model_file: Path, image_folder: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAF_SERVE_API_KEY", "serve-key-123456")
    app = create_app(model_file, runtime="torch")
    files = [("files", jpeg(image_folder, 2))]
    with ServerThread(app) as server:
        assert httpx.get(f"{server.url}/health").status_code == 200
        assert httpx.get(f"{server.url}/model").status_code == 401
        assert httpx.post(f"{server.url}/score", files=files).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.post(f"{server.url}/score", files=files, headers=wrong).status_code == 401
        good = {"Authorization": "Bearer serve-key-123456"}
        assert httpx.post(f"{server.url}/score", files=files, headers=good,
                          timeout=60).status_code == 200
        assert httpx.get(f"{server.url}/model", headers={"X-API-Key": "serve-key-123456"}
                         ).status_code == 200


def test_small_load_with_a_hostile_client(service: str, image_folder: Path) -> None:
    """6 good clients, 1 sending bombs and oversized chunked bodies, /health polled: every good
    request is answered correctly and /health always answers."""
    stop = threading.Event()
    health: list[int] = []

    def poll() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                health.append(client.get(f"{service}/health").status_code)

    def good(index: int) -> list[int]:
        with httpx.Client(timeout=60) as client:
            return [client.post(f"{service}/score",
                                files=[("files", jpeg(image_folder, (index + k) % 12))]
                                ).status_code for k in range(3)]

    def hostile() -> list[int]:
        statuses = []
        with httpx.Client(timeout=60) as client:
            for _ in range(3):
                statuses.append(client.post(f"{service}/score", files=[
                    ("files", ("bomb.png", bomb_png(), "image/png"))]).status_code)
                statuses.append(client.post(f"{service}/score", content=iter(
                    [b"0" * 65536] * 20), headers={"content-type": "application/json"}
                ).status_code)
        return statuses

    poller = threading.Thread(target=poll)
    poller.start()
    with concurrent.futures.ThreadPoolExecutor(7) as pool:
        bad = pool.submit(hostile)
        results = list(pool.map(good, range(6)))
        bad_statuses = bad.result()
    stop.set()
    poller.join()
    assert all(status == 200 for statuses in results for status in statuses)
    assert set(bad_statuses) <= {413, 415} and 413 in bad_statuses
    assert health and set(health) == {200}


json_bodies = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(["images", "x"]), c,
                                                        max_size=2), max_leaves=10)


@given(st.one_of(json_bodies.map(lambda v: json.dumps(v).encode()), st.binary(max_size=64)))
@settings(max_examples=300, deadline=None)
def test_json_request_parsing_never_crashes(body: bytes) -> None:
    try:
        uploads = parse_json_images(body, 1000, 8)
    except HTTPException as error:
        assert error.status_code in (400, 413)
    else:
        assert all(u.error is None or u.error.startswith(u.name) for u in uploads)


@given(st.text(max_size=80))
@settings(max_examples=200, deadline=None)
def test_client_messages_hide_memory_addresses_and_paths(text: str) -> None:
    message = readable(f"cannot identify <_io.BytesIO object at 0x7f00aa> {text} /srv/a/b.png")
    assert "0x7f00aa" not in message and "/srv/a" not in message
    assert public({"x": ["qbench:/srv/data/x.json"]}) == {"x": ["qbench:x.json"]}
