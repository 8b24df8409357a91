"""The rating service facing strangers, end to end: the real ``leaf rate serve`` on 127.0.0.1
(a free port) against a 10 MB body from an unknown token, files that are not the study's
images, an export aimed at the study itself, and logs read for tokens and keys (issue 32)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")

from leafiqa.labelling.study import Study  # noqa: E402
from leafiqa.testing.mock_teacher import free_port  # noqa: E402
from tests.cli.test_bad_inputs import assert_user_error, invoke  # noqa: E402
from tests.conftest import REPO, make_image  # noqa: E402

TEN_MB = 10 << 20


class Served:
    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log = port, log
        self.url = f"http://127.0.0.1:{port}"

    def logged(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def rate_serve(study: Path, *options: str) -> Iterator[Served]:
    """``leaf rate serve STUDY`` in its own process, its output (uvicorn's access log and
    LEAF's messages) kept in a file; stopped with SIGTERM at the end."""
    port = free_port()
    log = study.parent / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "leafiqa", "rate", "serve", str(study), "--host",
             "127.0.0.1", "--port", str(port), *options],
            env={**os.environ, "PYTHONPATH": str(REPO / "src")}, stdout=sink, stderr=sink)
    served = Served(port, log)
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{served.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"rating server did not start: {served.logged()[-2000:]}")
            time.sleep(0.2)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def make_photos(folder: Path, count: int = 6) -> Path:
    for k in range(count):
        make_image(folder / f"p{k}.jpg", seed=k, blur=k * 0.5)
    return folder


def create_study(tmp_path: Path, count: int = 6, *options: str) -> tuple[Path, list[str], str]:
    """A study of ``count`` photos made with the CLI: its folder, rater tokens and admin key."""
    photos = make_photos(tmp_path / "photos", count)
    result = invoke("rate", "create", tmp_path / "study", "--images", photos, *options)
    assert result.exit_code == 0, result.output
    tokens = re.findall(r"/r/([\w-]+)", result.output)
    key = re.search(r"key: ([\w-]+)", result.output)
    assert tokens and key
    return tmp_path / "study", tokens, key.group(1)


def request_head(path: str, *headers: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + "".join(f"{header}\r\n" for header in headers) + "\r\n").encode()


def answer(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """The server's answer on ``sock`` (the status line and headers at least), or b"" when
    none came within ``timeout`` seconds."""
    sock.settimeout(timeout)
    received = b""
    try:
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    except (TimeoutError, OSError):
        pass
    return received


def send_until_refused(sock: socket.socket, total: int, chunked: bool = False) -> int:
    """Send up to ``total`` body bytes; returns how many went before the server stopped
    taking them (it closes the connection once it has answered)."""
    sent = 0
    piece = b"[1," * 21845  # 64 KiB of a JSON array
    try:
        while sent < total:
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
    except OSError:
        pass
    return sent


def test_a_10_mb_body_from_an_unknown_token_freezes_nothing(tmp_path: Path) -> None:
    study, (token, _), _ = create_study(tmp_path)
    with rate_serve(study) as server:
        # declared 10 MB: refused from the headers; /health answers while the body is due
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(request_head("/api/r/unknown-token/rating", f"Content-Length: {TEN_MB}"))
        assert httpx.get(f"{server.url}/health", timeout=5).json() == {"status": "ok"}
        head = answer(sock)
        assert head.startswith(b"HTTP/1.1 413"), head  # before a byte of the body was sent
        assert b"connection: close" in head.lower()
        assert send_until_refused(sock, TEN_MB) < TEN_MB  # the server does not take the rest
        sock.close()

        # chunked 10 MB (no length to refuse on): the unknown token is refused first
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(request_head("/api/r/unknown-token/rating", "Transfer-Encoding: chunked"))
        head = answer(sock)
        assert head.startswith(b"HTTP/1.1 404") and b"connection: close" in head.lower(), head
        sock.close()

        # a rater's own link streaming 10 MB: cut off at the 1 KiB limit, not read to its end
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(request_head(f"/api/r/{token}/rating", "Transfer-Encoding: chunked"))
        sock.sendall(b"800\r\n" + b"[1," * 682 + b"[1\r\n")  # 2 KiB, over the limit
        head = answer(sock)
        assert head.startswith(b"HTTP/1.1 413"), head
        sock.close()

        # the whole 10 MB sent as fast as the client can: /health still answers at once,
        # and the body is not echoed
        def flood() -> None:
            with socket.create_connection(("127.0.0.1", server.port)) as flooder:
                flooder.sendall(request_head("/api/r/unknown-token/rating",
                                             f"Content-Length: {TEN_MB}"))
                send_until_refused(flooder, TEN_MB)
                answered.append(answer(flooder, timeout=10))

        answered: list[bytes] = []
        flooders = [threading.Thread(target=flood) for _ in range(3)]
        for thread in flooders:
            thread.start()
        health = [httpx.get(f"{server.url}/health", timeout=5).status_code for _ in range(5)]
        for thread in flooders:
            thread.join(timeout=60)
        assert health == [200] * 5
        assert all(b"[1," not in reply for reply in answered)
        rated = httpx.post(f"{server.url}/api/r/{token}/rating", json={"step": 0, "value": 4},
                           timeout=5)
        assert rated.status_code == 200  # an honest rater is not held up
    assert [r.value for r in Study(study).ratings()] == [4.0]


def test_a_study_serves_its_images_and_nothing_else(tmp_path: Path) -> None:
    secret = tmp_path / "etc" / "passwd"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    photos = make_photos(tmp_path / "photos", 4)
    (photos / "list.csv").write_text(f"name\np0.jpg\n{secret}\n")
    assert_user_error(invoke("rate", "create", tmp_path / "s1", "--images", photos / "list.csv"),
                      "1 entry outside", "passwd", "--allow-root")
    (tmp_path / "truth.csv").write_text("name,mos\np0.jpg,3\n")
    (photos / "list.csv").write_text("name\np0.jpg\n../truth.csv\n")
    assert_user_error(invoke("rate", "create", tmp_path / "s1", "--images", photos / "list.csv"),
                      "1 entry outside", "../truth.csv")
    (photos / "evil.jpg").symlink_to(secret)
    assert_user_error(invoke("rate", "create", tmp_path / "s1", "--images", photos),
                      "1 entry outside", "evil.jpg")
    (photos / "list.csv").write_text(f"name\np0.jpg\n{secret}\n")
    assert_user_error(invoke("rate", "create", tmp_path / "s1", "--images", photos / "list.csv",
                             "--allow-root", secret.parent), "not images", "passwd")
    assert not (tmp_path / "s1").exists()
    (photos / "evil.jpg").unlink()
    (photos / "list.csv").unlink()

    study, (token, _), _ = create_study(tmp_path / "ok", 4, "--repeats", "0")
    opened = Study(study)
    (rater, *_) = opened.raters()
    with rate_serve(study) as server:
        first = httpx.get(f"{server.url}/api/r/{token}/image/0")
        assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
        path = opened.image(opened.step(rater.id, 0).image_id).path
        assert first.content == path.read_bytes()
        path.unlink()
        path.symlink_to(secret)  # swapped for a link after creation
        for _ in range(3):
            gone = httpx.get(f"{server.url}/api/r/{token}/image/0")
            assert gone.status_code == 410 and b"root:" not in gone.content
        logged = server.logged()
    warnings = [line for line in logged.splitlines() if "is not served" in line]
    assert len(warnings) == 1, logged  # once, not once per request


def test_an_export_aimed_at_the_study_changes_nothing(tmp_path: Path) -> None:
    pytest.importorskip("sureal")
    study, tokens, _ = create_study(tmp_path, 6, "--raters", "2", "--repeats", "0")
    with rate_serve(study) as server:
        for token in tokens:
            for step in range(6):
                assert httpx.post(f"{server.url}/api/r/{token}/rating",
                                  json={"step": step, "value": 1 + step % 5}).status_code == 200
        before = sorted((r.rater_id, r.position, r.value) for r in Study(study).ratings())
        for out, says in ((study / "study.sqlite", "is the study's database"),
                          (study / "labels.csv", "inside the study folder"),
                          (tmp_path / "photos" / "p0.jpg", "is the study's image 'p0.jpg'"),
                          (tmp_path / "photos", "is a folder")):
            assert_user_error(invoke("ratings", "export", study, "--out", out), "--out", says)
        assert sorted(p.name for p in study.iterdir() if not p.name.startswith(
            "study.sqlite")) == []
        assert not list(tmp_path.glob("**/*.partial"))
        status = invoke("rate", "status", study)
        assert status.exit_code == 0 and "rater1: 6/6" in status.output
        assert httpx.get(f"{server.url}/api/r/{tokens[0]}").json()["done"] == 6
    assert sorted((r.rater_id, r.position, r.value) for r in Study(study).ratings()) == before


def test_tokens_and_the_admin_key_stay_out_of_the_logs(tmp_path: Path) -> None:
    study, (token, other), key = create_study(tmp_path, 3)
    with rate_serve(study) as server:
        url = server.url
        assert httpx.get(f"{url}/r/{token}").status_code == 200
        assert httpx.get(f"{url}/api/r/{token}").status_code == 200
        assert httpx.get(f"{url}/api/r/{token}/image/0").status_code == 200
        assert httpx.post(f"{url}/api/r/{token}/rating",
                          json={"step": 0, "value": 3}).status_code == 200
        assert httpx.get(f"{url}/api/r/{other}?again={other}").status_code == 200
        assert httpx.get(f"{url}/api/admin/progress",
                         headers={"X-Admin-Key": key}).status_code == 200
        assert httpx.get(f"{url}/api/admin/progress",
                         headers={"X-Admin-Key": key[:-1]}).status_code == 403
        time.sleep(0.5)
        logged = server.logged()
    assert '"GET /api/r/[redacted] HTTP/1.1" 200' in logged  # the access log is kept
    assert '"POST /api/r/[redacted]/rating HTTP/1.1" 200' in logged
    assert '"GET /api/r/[redacted]?[redacted] HTTP/1.1" 200' in logged
    for secret in (token, other, key, key[:-1]):
        assert secret not in logged


def test_simulated_raters_wait_out_the_rate_limit(tmp_path: Path) -> None:
    study, tokens, _ = create_study(tmp_path, 20, "--raters", "1", "--repeats", "2")
    truth = tmp_path / "truth.csv"
    truth.write_text("name,mos\n" + "".join(f"p{k}.jpg,{k % 5 + 1}\n" for k in range(20)))
    with rate_serve(study, "--rate-limit", "5", "--burst", "5") as server:
        done = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "simulate_raters.py"), str(study),
             f"{server.url}/r/{tokens[0]}", "--truth", str(truth), "--mos-range", "1", "5"],
            env={**os.environ, "PYTHONPATH": str(REPO / "src")}, capture_output=True,
            text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "rater1: 22 ratings" in done.stdout
        assert '429' in server.logged()  # the limit was met, and waited out
    assert len(Study(study).ratings()) == 22
