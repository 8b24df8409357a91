"""A bounded loopback load test of `leaf serve` with one hostile client (issue 13).

    python benchmarks/load_test_serve.py [MODEL] [--clients 16] [--requests 6] [--seconds 120]

Starts the real `leaf serve` on 127.0.0.1 (a free port; nothing else is contacted), then runs
``--clients`` clients at once: one hostile (decompression bombs, bodies over the size limit
with and without Content-Length, a stalled body that must time out) and the rest good (each
``--requests`` requests of 1–4 photos). A poller times GET /health every 50 ms throughout.
Prints /health latency (median, p95, max), the good clients' errors, the hostile client's
status codes and the scoring throughput. Bounded in count and in time (``--seconds``).
Without MODEL a model file with a random head on the real Lite0 backbone is written (the
scores mean nothing; the service does the same work).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def photos(folder: Path, count: int = 24) -> list[bytes]:
    """Real photos from ../shared when present, else synthetic 500×500 JPEGs."""
    for name in ("clive-dev", "agiqa3k"):
        found = sorted((SHARED / name / "images").glob("*.[jJ][pP]*[gG]"))[:count]
        if found:
            return [path.read_bytes() for path in found]
    from tests.conftest import make_image

    return [make_image(folder / f"p{i}.jpg", seed=i, size=500).read_bytes()
            for i in range(count)]


def default_model(folder: Path) -> Path:
    from tests.conftest import write_model_file

    return write_model_file(folder / "model.safetensors", [224, 512])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=4, help="per good client")
    parser.add_argument("--seconds", type=float, default=240.0, help="hard time bound")
    parser.add_argument("--runtime", default="auto")
    args = parser.parse_args()
    from tests.hostile import bomb_png

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model = args.model or default_model(folder)
        images = photos(folder)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        server = subprocess.Popen(
            [sys.executable, "-c", "from leafiqa.cli import app; app()", "serve", str(model),
             "--host", "127.0.0.1", "--port", str(port), "--runtime", args.runtime,
             "--max-upload-mb", "2", "--read-timeout", "3"], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        try:
            run(url, images, bomb_png(), args, server)
        finally:
            server.terminate()
            server.wait(timeout=30)


def wait_ready(url: str, server: subprocess.Popen, limit: float = 120.0) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"leaf serve exited: {server.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("leaf serve did not start")


def poll(url: str, deadline: float, stop: Any, answers: Any) -> None:
    """GET /health every 50 ms until told to stop; sends back (latencies in ms, errors)."""
    latencies: list[float] = []
    errors: list[str] = []
    with httpx.Client(timeout=10) as client:
        while not stop.is_set() and time.time() < deadline:
            start = time.perf_counter()
            try:
                if client.get(f"{url}/health").status_code != 200:
                    errors.append("status")
            except httpx.HTTPError as error:
                errors.append(type(error).__name__)
            latencies.append((time.perf_counter() - start) * 1000)
            time.sleep(0.05)
    answers.put((latencies, errors))


def run(url: str, images: list[bytes], bomb: bytes, args: argparse.Namespace,
        server: subprocess.Popen) -> None:
    wait_ready(url, server)
    deadline = time.time() + args.seconds
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    answers = context.Queue()

    unfinished: list[int] = []

    def good(index: int) -> tuple[int, int, list[str]]:
        errors: list[str] = []
        scored = 0
        with httpx.Client(timeout=120) as client:
            for k in range(args.requests):
                if time.time() > deadline:
                    unfinished.append(args.requests - k)
                    break
                count = 1 + (index + k) % 4
                files = [("files", (f"c{index}-{k}-{j}.jpg",
                                    images[(index * 7 + k * 3 + j) % len(images)], "image/jpeg"))
                         for j in range(count)]
                try:
                    response = client.post(f"{url}/score", files=files)
                except httpx.HTTPError as error:
                    errors.append(type(error).__name__)
                    continue
                scores = response.json().get("scores", []) if response.status_code == 200 else []
                if response.status_code != 200 or None in scores or len(scores) != count:
                    errors.append(f"HTTP {response.status_code}")
                scored += len([s for s in scores if s is not None])
        return index, scored, errors

    def hostile() -> list[str]:
        outcomes: list[str] = []
        with httpx.Client(timeout=60) as client:
            for _ in range(4):
                attempts = [
                    lambda: client.post(f"{url}/score", files=[
                        ("files", ("bomb.png", bomb, "image/png"))] * 4),
                    lambda: client.post(f"{url}/score", content=iter([b"0" * (1 << 20)] * 64),
                                        headers={"content-type": "application/json"}),
                    lambda: client.post(f"{url}/score", content=b"0" * (12 << 20),
                                        headers={"content-type": "application/json"}),
                ]
                for attempt in attempts:
                    try:
                        outcomes.append(str(attempt().status_code))
                    except httpx.HTTPError as error:  # the server may close an oversized body
                        outcomes.append(type(error).__name__)
            host, port = url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=30) as connection:
                connection.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                   b"application/json\r\nContent-Length: 9000\r\n\r\n{")
                reply = connection.recv(4096).split(b"\r\n")[0].decode(errors="replace")
                outcomes.append(reply.split(" ")[1] if " " in reply else reply)
        return outcomes

    # its own process: the clients' threads must not delay the probe (their GIL, not the server)
    poller = context.Process(target=poll, args=(url, deadline, stop, answers))
    poller.start()
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
        bad = pool.submit(hostile)
        results = list(pool.map(good, range(args.clients - 1)))
        bad_outcomes = bad.result()
    elapsed = time.perf_counter() - start
    stop.set()
    health_ms, health_errors = answers.get(timeout=60)
    poller.join()

    scored = sum(s for _, s, _ in results)
    errors = [e for _, _, errs in results for e in errs]
    ordered = sorted(health_ms)
    p95 = ordered[int(0.95 * (len(ordered) - 1))] if ordered else float("nan")
    print(f"clients: {args.clients - 1} good × {args.requests} requests (1–4 images) + 1 hostile;"
          f" {elapsed:.1f} s; runtime {args.runtime}; {os.cpu_count()} CPUs")
    print(f"good clients: {scored} images scored ({scored / elapsed:.1f} img/s), "
          f"{len(errors)} errors {sorted(set(errors))}, {sum(unfinished)} requests not sent "
          "(time bound)")
    print(f"hostile client outcomes: {bad_outcomes}")
    slow = [round(ms) for ms in health_ms if ms >= 100]
    print(f"/health probes ≥ 100 ms: {slow[:20]}")
    print(f"/health: {len(ordered)} probes, median {statistics.median(ordered):.1f} ms, "
          f"p95 {p95:.1f} ms, max {max(ordered):.1f} ms, errors {health_errors}")
    verdict = not errors and not health_errors and max(ordered) < 200
    print("PASS" if verdict else "FAIL", "(good clients error-free, /health always < 200 ms)")


if __name__ == "__main__":
    main()
