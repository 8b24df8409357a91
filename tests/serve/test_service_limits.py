"""The service's limits (issue 20, item 7): a connection that never finishes its headers is
answered 408 and closed; a JSON body nested deeper than a parser follows is a 400, not a 500.
Servers listen on, and are contacted at, 127.0.0.1 only."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")

import uvicorn  # noqa: E402
from fastapi import HTTPException  # noqa: E402

from leafiqa.serve.service import create_app, parse_json_images  # noqa: E402

DEEP = 200_000


@pytest.fixture(scope="module")
def service(model_file: Path):
    from leafiqa.serve.service import server_config

    app = create_app(model_file, runtime="torch", max_request_bytes=4 * DEEP)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(server_config(app, "127.0.0.1", port, header_timeout=1.0,
                                          log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def test_headers_that_never_finish_get_a_408_and_the_connection_closes(service: int) -> None:
    with socket.create_connection(("127.0.0.1", service), timeout=10) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        started = time.monotonic()
        answer = connection.recv(4096)
        while chunk := connection.recv(4096):  # b"" once the server has closed it
            answer += chunk
        waited = time.monotonic() - started
    assert b" 408 " in answer.split(b"\r\n")[0], answer
    assert waited < 8


def test_a_silent_connection_is_closed_too(service: int) -> None:
    with socket.create_connection(("127.0.0.1", service), timeout=10) as connection:
        assert connection.recv(4096) == b""  # closed (without an answer to no request)


def test_requests_in_time_are_served_and_kept_alive(service: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{service}", timeout=30) as client:
        for _ in range(3):
            assert client.get("/health").json() == {"status": "ok"}
            time.sleep(0.4)  # within the keep-alive and header deadlines


def test_json_nested_too_deep_is_a_400() -> None:
    with pytest.raises(HTTPException) as raised:
        parse_json_images(b'{"images": ' + b"[" * DEEP + b"]" * DEEP + b"}", 1 << 20, 16)
    assert raised.value.status_code == 400 and "nested too deep" in raised.value.detail


def test_the_service_answers_deep_json_with_a_400(service: int) -> None:
    body = b'{"images": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    response = httpx.post(f"http://127.0.0.1:{service}/score", content=body, timeout=60,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert "nested too deep" in response.json()["detail"]
