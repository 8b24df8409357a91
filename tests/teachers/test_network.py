"""Secrets and the network (issue 20, items 4 and 7): every endpoint checked before any
request, credentials in URLs and encoded echoes of the key redacted, a total deadline per
request, a sane Retry-After, answers nested too deep. Everything here talks to 127.0.0.1 or
to an in-process transport; a refused host is never contacted (a transport that fails the
test if it is called stands in for it)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from leafiqa.data import read_folder
from leafiqa.errors import ConfigError
from leafiqa.judgments.jsonl import export_store
from leafiqa.judgments.runner import teach
from leafiqa.judgments.store import JudgmentStore
from leafiqa.redact import redact
from leafiqa.teachers.endpoints import EndpointPool
from leafiqa.teachers.openai import OpenAITeacher, TeacherSettings

SECRET = "tok-5a4b3c2d1e0f99887766"


def never_called(url: str) -> httpx.AsyncBaseTransport:
    raise AssertionError(f"a connection to {url} was attempted")


def test_every_url_is_checked_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the first --url was checked; EndpointPool sent Authorization to all of them."""
    monkeypatch.setenv("LEAF_TEACHER_API_KEY", SECRET)
    urls = ["http://127.0.0.1:9/v1", "https://example.org/v1", "http://10.1.2.3:8000/v1"]
    pool = EndpointPool(urls, transport_factory=never_called)
    with pytest.raises(ConfigError, match=r"'http://10\.1\.2\.3:8000/v1': refusing to send the "
                                          r"API key .* plain http"):
        OpenAITeacher(TeacherSettings(url=urls[0]), transport=pool)
    # without a key, or with loopback/https endpoints only, the pool is fine
    OpenAITeacher(TeacherSettings(url=urls[0]),
                  transport=EndpointPool(urls[:2], transport_factory=never_called))
    monkeypatch.delenv("LEAF_TEACHER_API_KEY")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    OpenAITeacher(TeacherSettings(url=urls[0]), transport=pool)


def test_the_cli_refuses_a_plain_http_endpoint_before_any_request(
        image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from leafiqa.cli import app

    monkeypatch.setenv("LEAF_TEACHER_API_KEY", SECRET)
    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request",
                        lambda *a, **k: never_called("any"))
    result = CliRunner().invoke(app, [
        "teach", "--data", str(image_folder), "--teacher", "openai", "--model", "m",
        "--url", "http://127.0.0.1:9/v1", "--url", "http://10.1.2.3/v1", "--pairs-per-image",
        "0", "--store", str(tmp_path / "s.sqlite"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "refusing to send the API key" in result.output and SECRET not in result.output
    assert not (tmp_path / "s.sqlite").exists() or not JudgmentStore(
        tmp_path / "s.sqlite").count("point_judgments", status="failed")


def test_url_credentials_never_go_over_plain_http_to_another_host() -> None:
    for url in ("http://alice:pa55-word-1@10.1.2.3/v1", "http://only-a-token-123@10.1.2.3/v1"):
        with pytest.raises(ConfigError, match="credentials written in the URL") as caught:
            OpenAITeacher(TeacherSettings(url=url))
        assert "pa55-word-1" not in str(caught.value) and "only-a-token" not in str(caught.value)
    OpenAITeacher(TeacherSettings(url="https://alice:pa55-word-1@example.org/v1"))
    OpenAITeacher(TeacherSettings(url="http://alice:pa55-word-1@127.0.0.1:9/v1"))


def echoing(status: int = 401) -> httpx.MockTransport:
    """A server that echoes what it was sent: the URL, the headers, the key encoded."""
    def handler(request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        body = {"error": {
            "url": str(request.url), "auth": auth, "auth_b64": base64.b64encode(
                auth.encode()).decode(),
            "key_urlencoded": quote(SECRET, safe=""), "key_b64": base64.b64encode(
                SECRET.encode()).decode(), "key_b64url": base64.urlsafe_b64encode(
                SECRET.encode()).decode().rstrip("=")}}
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handler)


def test_credentials_and_encoded_echoes_are_redacted_everywhere(
        image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("LEAF_TEACHER_API_KEY", SECRET)
    password = "hunter2-secret-pw"
    teacher = OpenAITeacher(TeacherSettings(url=f"http://alice:{password}@127.0.0.1:9/v1",
                                            model="m", max_retries=0, fallback_samples=1),
                            transport=echoing())
    manifest = read_folder(image_folder)
    store = JudgmentStore(tmp_path / "s.sqlite")
    with caplog.at_level("DEBUG"):
        report = teach(teacher, manifest.subset(manifest.items[:2]), store, progress=False)
    assert report.points_failed == 2
    written = export_store(store, tmp_path / "export.csv")
    texts = [json.dumps(store.table("point_judgments")[1]), caplog.text, *report.errors,
             report.summary(), *(path.read_text() for path in written)]
    basic = base64.b64encode(f"alice:{password}".encode()).decode()
    for leaked in (SECRET, password, quote(SECRET, safe=""), basic,
                   base64.b64encode(SECRET.encode()).decode(),
                   base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
                   base64.b64encode(f"Bearer {SECRET}".encode()).decode(),
                   base64.b64encode(f"Basic {basic}".encode()).decode()):
        assert all(leaked not in text for text in texts), leaked
    assert "[redacted]" in texts[0]


def test_redact_covers_url_credentials_and_encodings() -> None:
    assert redact("GET http://bob:pw12345678@host:80/v1 failed") == \
        "GET http://[redacted]@host:80/v1 failed"
    assert redact("see https://sometoken@h/") == "see https://[redacted]@h/"
    echoed = base64.b64encode(b"Bearer " + SECRET.encode()).decode()
    assert SECRET[:10] not in redact(f"{quote(SECRET)} {echoed}", (SECRET,))
    assert echoed not in redact(f"x{echoed}x", (SECRET,))


def test_an_endpoint_line_shows_no_credentials() -> None:
    pool = EndpointPool(["http://alice:pw-98765432@127.0.0.1:9/v1"],
                        transport_factory=never_called)
    line = pool.stats()[0].line()
    assert "pw-98765432" not in line and "127.0.0.1:9/v1" in line


@pytest.mark.parametrize(("header", "expected"), [
    ("nan", None), ("inf", None), ("-inf", None), ("-5", None), ("garbage", None),
    ("", None), ("1e999", None), ("3", 3.0), ("0", 0.0), ("1e9", 30.0),
])
def test_retry_after_is_sane(header: str, expected: float | None) -> None:
    """``Retry-After: nan`` retried five times in a second; huge values are clamped."""
    teacher = OpenAITeacher(TeacherSettings(url="http://127.0.0.1:9/v1", backoff_base=0.5,
                                            backoff_max=30.0))
    response = httpx.Response(503, headers={"retry-after": header})
    delays = [teacher._delay(0, response) for _ in range(20)]
    if expected is None:  # the usual backoff: base × [0.5, 1.5)
        assert all(0.25 <= delay < 0.75 for delay in delays), delays
    else:
        assert delays == [expected] * 20


def test_retry_after_as_an_http_date() -> None:
    from email.utils import formatdate

    from leafiqa.teachers.openai import retry_after_seconds

    assert 5 <= retry_after_seconds(formatdate(time.time() + 10, usegmt=True), 60) <= 10
    assert retry_after_seconds(formatdate(time.time() + 10**6, usegmt=True), 60) == 60
    assert retry_after_seconds(formatdate(time.time() - 100, usegmt=True), 60) == 0


class DripServer:
    """A server on 127.0.0.1 that answers one byte every ``interval`` seconds."""

    def __init__(self, interval: float = 0.2, length: int = 60) -> None:
        self.interval, self.length = interval, length
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(connection,), daemon=True).start()

    def _drip(self, connection: socket.socket) -> None:
        with connection:
            connection.recv(1 << 20)
            body = b" " * self.length
            head = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                    + str(len(body)).encode() + b"\r\n\r\n")
            try:
                connection.sendall(head)
                for byte in body:
                    if self.stop.is_set():
                        return
                    connection.sendall(bytes([byte]))
                    time.sleep(self.interval)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def test_a_dripping_server_is_cut_off_at_the_deadline(image_folder: Path) -> None:
    """One byte every 0.2 s kept a request alive under --timeout 1 (a per-read timeout)."""
    server = DripServer()
    try:
        teacher = OpenAITeacher(TeacherSettings(url=server.url, model="m", timeout=1.0,
                                                max_retries=0, fallback_samples=1))
        manifest = read_folder(image_folder)
        store = JudgmentStore()
        start = time.monotonic()
        report = teach(teacher, manifest.subset(manifest.items[:1]), store, progress=False)
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert report.points_failed == 1
    assert elapsed < 6.0  # the drip alone lasts 12 s
    (_, _, error), = store.failures()
    assert "no complete answer within 1 s" in error


def test_an_answer_nested_too_deep_is_a_stored_failure(image_folder: Path) -> None:
    depth = 200_000
    nested = "[" * depth + "]" * depth

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=nested.encode(),
                              headers={"content-type": "application/json"})

    teacher = OpenAITeacher(TeacherSettings(url="http://127.0.0.1:9/v1", model="m",
                                            max_retries=0, fallback_samples=1),
                            transport=httpx.MockTransport(handler))
    manifest = read_folder(image_folder)
    store = JudgmentStore()
    report = teach(teacher, manifest.subset(manifest.items[:1]), store, progress=False)
    assert report.points_failed == 1
    (_, _, error), = store.failures()
    assert "nested too deep" in error
