"""A bounded loopback load test of `leaf rate serve` with an abusive client (issue 32).

    python benchmarks/load_test_rating.py [--raters 50] [--seconds 60] [--think 0.5 1.5]

Makes a study of 60 photos (clive-dev's from ../shared when present, else synthetic) with
``--raters`` links and starts the real `leaf rate serve` on 127.0.0.1 (a free port; nothing else
is contacted) with its default limits. Then, all at once and for ``--seconds``:

- every rater loads their state and rates image after image: GET the image, think
  ``--think`` seconds (uniform), POST the rating; a 429 is waited out as Retry-After says;
- an abusive client sends, ``--abuse`` times in all, oversized bodies (10 MB declared from an
  unknown token and really sent, 10 MB chunked on a rater's link, 64 KiB declared) and bad
  tokens and admin keys;
- /health is polled every 50 ms (samples taken while a 10 MB body is in flight are also
  shown apart) and the server's RSS read every second.

Half-way the server is killed with SIGKILL and started again on the same study; the raters
carry on from where the server says they are. At the end every acknowledged rating is looked
up in the study. Prints the latency of acknowledged ratings (p50/p95/p99), of /health, the
RSS over time, the abusive client's answers, and how many acknowledged ratings were lost.
Bounded in count and in time: it stops by itself."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
TEN_MB = 10 << 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def photo_folder(folder: Path, count: int = 60) -> tuple[Path, str]:
    """``count`` photos copied into ``folder``: clive-dev's when present, else synthetic."""
    folder.mkdir(parents=True)
    found = sorted((SHARED / "clive-dev" / "images").glob("*.[jJ][pP]*[gG]"))[:count]
    if len(found) == count:
        for path in found:
            shutil.copyfile(path, folder / path.name)
        return folder, "clive-dev photos"
    from tests.conftest import make_image

    for k in range(count):
        make_image(folder / f"p{k:03d}.jpg", seed=k, blur=k * 0.05, size=500)
    return folder, "synthetic 500×500 JPEGs"


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return (f"p50 {at(0.50):.1f} ms, p95 {at(0.95):.1f} ms, p99 {at(0.99):.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms (n={len(ordered)})")


class Server:
    """`leaf rate serve` in its own process (started again after a kill on the same port)."""

    def __init__(self, study: Path, port: int, log: Path) -> None:
        self.study, self.port, self.log = study, port, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "leafiqa", "rate", "serve", str(self.study), "--host",
                 "127.0.0.1", "--port", str(self.port)],
                env={**os.environ, "PYTHONPATH": str(REPO / "src")}, stdout=sink, stderr=sink)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit(f"the server did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def rss_mb(self) -> float | None:
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()  # type: ignore[union-attr]
        except OSError:
            return None
        line = next((line for line in status.splitlines() if line.startswith("VmRSS:")), None)
        return int(line.split()[1]) / 1024 if line else None


@dataclass
class Results:
    rating_latency: list[tuple[float, float]] = field(default_factory=list)  # (when, seconds)
    image_latency: list[tuple[float, float]] = field(default_factory=list)
    health: list[float] = field(default_factory=list)
    health_failed: int = 0
    acknowledged: dict[tuple[str, int], float] = field(default_factory=dict)
    rater_statuses: Counter = field(default_factory=Counter)
    abuse: Counter = field(default_factory=Counter)
    rss: list[tuple[float, float]] = field(default_factory=list)
    client_lag: list[float] = field(default_factory=list)


async def rate(client: httpx.AsyncClient, url: str, token: str, deadline: float,
               think: tuple[float, float], rng: random.Random, results: Results) -> None:
    """One rater: image, think, rating, until the deadline; waits out 429s and the restart."""
    api = f"{url}/api/r/{token}"
    done = None
    while time.monotonic() < deadline:
        try:
            if done is None:
                state = await client.get(api)
                if state.status_code != 200:
                    results.rater_statuses[f"state {state.status_code}"] += 1
                    await asyncio.sleep(float(state.headers.get("retry-after", 1)))
                    continue
                done, total = state.json()["done"], state.json()["total"]
                if done >= total:
                    return
            started = time.perf_counter()
            image = await client.get(f"{api}/image/{done}")
            results.rater_statuses[f"image {image.status_code}"] += 1
            if image.status_code != 200:
                await asyncio.sleep(float(image.headers.get("retry-after", 0.2)))
                done = None
                continue
            results.image_latency.append((time.monotonic(), time.perf_counter() - started))
            await asyncio.sleep(rng.uniform(*think))
            value = rng.randint(1, 5)
            reply = None
            while time.monotonic() < deadline:
                started = time.perf_counter()
                reply = await client.post(f"{api}/rating", json={"step": done, "value": value})
                results.rater_statuses[f"rating {reply.status_code}"] += 1
                if reply.status_code != 429:
                    break
                await asyncio.sleep(float(reply.headers.get("retry-after", 1)))
            if reply is None:
                return
            if reply.status_code == 200:
                results.rating_latency.append((time.monotonic(), time.perf_counter() - started))
                results.acknowledged[(token, done)] = float(value)
                done = reply.json()["done"]
            else:
                done = None  # a 409 after a lost reply: ask the server where we are
        except httpx.HTTPError:
            results.rater_statuses["connection error"] += 1  # the server was killed
            done = None
            await asyncio.sleep(0.2)


async def poll_health(client: httpx.AsyncClient, url: str, deadline: float,
                      results: Results) -> None:
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            reply = await client.get(f"{url}/health", timeout=5)
            elapsed = time.perf_counter() - started
            if reply.status_code == 200:
                results.health.append(elapsed)
            else:
                results.health_failed += 1
        except httpx.HTTPError:
            results.health_failed += 1
        await asyncio.sleep(0.05)


async def measure_lag(deadline: float, results: Results) -> None:
    """How late the client's own event loop wakes up (a 20 ms sleep that takes longer): the
    share of a latency that is the load generator's, not the server's."""
    while time.monotonic() < deadline:
        started = time.perf_counter()
        await asyncio.sleep(0.02)
        results.client_lag.append(time.perf_counter() - started - 0.02)


def raw_request(port: int, head: bytes, body_bytes: int, chunked: bool) -> str:
    """Send ``head`` then up to ``body_bytes`` of body as fast as the server takes them;
    the status the server answered with (or how the connection ended)."""
    piece = b"[1," * 21845
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head)
            sent = 0
            try:
                while sent < body_bytes:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                    sent += len(piece)
            except OSError:
                pass
            try:
                answer = sock.recv(64)
            except OSError:
                return "reset before an answer"
            return answer.split(b"\r\n")[0].decode(errors="replace") or "closed"
    except OSError as error:
        return f"connection failed ({error.strerror})"


def abuse(port: int, token: str, count: int, deadline: float, results: Results) -> None:
    """``count`` hostile requests spread over the run: oversized bodies and bad credentials."""
    rng = random.Random(1)
    url = f"http://127.0.0.1:{port}"
    kinds = ["10 MB declared, unknown token", "10 MB chunked, rater's link",
             "64 KiB declared, rater's link", "bad token", "bad token rating",
             "wrong admin key"]
    gap = max(0.05, (deadline - time.monotonic()) / max(count, 1))
    with httpx.Client(timeout=10) as client:
        for k in range(count):
            if time.monotonic() >= deadline:
                break
            kind = kinds[k % len(kinds)]
            try:
                if kind == "10 MB declared, unknown token":
                    status = raw_request(port, b"POST /api/r/nobody/rating HTTP/1.1\r\nHost: x"
                                         b"\r\nContent-Type: application/json\r\n"
                                         b"Content-Length: %d\r\n\r\n" % TEN_MB, TEN_MB, False)
                elif kind == "10 MB chunked, rater's link":
                    status = raw_request(port, (f"POST /api/r/{token}/rating HTTP/1.1\r\nHost: "
                                                "x\r\nContent-Type: application/json\r\n"
                                                "Transfer-Encoding: chunked\r\n\r\n").encode(),
                                         TEN_MB, True)
                elif kind == "64 KiB declared, rater's link":
                    status = str(client.post(f"{url}/api/r/{token}/rating",
                                             content=b"[1," * 21845).status_code)
                elif kind == "bad token":
                    status = str(client.get(f"{url}/api/r/{rng.getrandbits(128):x}").status_code)
                elif kind == "bad token rating":
                    status = str(client.post(f"{url}/api/r/{rng.getrandbits(128):x}/rating",
                                             json={"step": 0, "value": 3}).status_code)
                else:
                    status = str(client.get(f"{url}/api/admin/progress", headers={
                        "X-Admin-Key": f"{rng.getrandbits(128):x}"}).status_code)
            except httpx.HTTPError as error:
                status = type(error).__name__
            results.abuse[f"{kind}: {status}"] += 1
            time.sleep(gap)


def flood_phase(port: int, seconds: float, senders: int = 3) -> tuple[list[float], Counter]:
    """``senders`` clients sending 10 MB bodies from an unknown token, one after the other,
    for ``seconds``, while /health is polled every 20 ms: its latencies, and the answers."""
    stop = time.monotonic() + seconds
    answers: Counter = Counter()

    def send() -> None:
        while time.monotonic() < stop:
            answers[raw_request(port, b"POST /api/r/nobody/rating HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Type: application/json\r\nContent-Length: "
                                b"%d\r\n\r\n" % TEN_MB, TEN_MB, False)] += 1

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    latencies = []
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < stop:
            started = time.perf_counter()
            client.get(f"http://127.0.0.1:{port}/health").raise_for_status()
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
    for thread in threads:
        thread.join(timeout=30)
    return latencies, answers


def sample_rss(server: Server, started: float, deadline: float, results: Results) -> None:
    while time.monotonic() < deadline:
        rss = server.rss_mb()
        if rss is not None:
            results.rss.append((time.monotonic() - started, rss))
        time.sleep(1.0)


async def run(url: str, tokens: list[str], seconds: float, think: tuple[float, float],
              results: Results) -> None:
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=len(tokens) + 10, max_keepalive_connections=len(tokens))
    async with httpx.AsyncClient(timeout=10, limits=limits) as client, \
            httpx.AsyncClient(timeout=5) as prober:
        await asyncio.gather(
            poll_health(prober, url, deadline, results), measure_lag(deadline, results),
            *(rate(client, url, token, deadline, think, random.Random(k), results)
              for k, token in enumerate(tokens)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raters", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="time bound of the run")
    parser.add_argument("--think", type=float, nargs=2, default=(0.5, 1.5),
                        help="seconds a rater looks at an image (uniform)")
    parser.add_argument("--abuse", type=int, default=120, help="hostile requests in all")
    args = parser.parse_args()
    from leafiqa.labelling.study import Study, StudySettings, read_image_list

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        photos, kind = photo_folder(folder / "photos")
        study = Study.create(folder / "study", read_image_list(photos), StudySettings())
        made = study.add_raters(args.raters)
        tokens = [token for _, token in made]
        study.set_admin_key()
        port = free_port()
        server = Server(study.folder, port, folder / "serve.log")
        server.start()
        url = f"http://127.0.0.1:{port}"
        flood_health, flood_answers = flood_phase(port, 5.0)
        results = Results()
        started = time.monotonic()
        deadline = started + args.seconds
        helpers = [threading.Thread(target=abuse, args=(port, tokens[0], args.abuse, deadline,
                                                        results), daemon=True),
                   threading.Thread(target=sample_rss, args=(server, started, deadline,
                                                             results), daemon=True)]
        for helper in helpers:
            helper.start()

        restarted: list[float] = []
        killed_at = started + args.seconds / 2

        def kill_and_restart() -> None:
            time.sleep(args.seconds / 2)
            server.kill()
            results.rater_statuses["server killed (SIGKILL)"] += 1
            server.start()
            restarted.append(time.monotonic())

        killer = threading.Thread(target=kill_and_restart, daemon=True)
        killer.start()
        asyncio.run(run(url, tokens, args.seconds, tuple(args.think), results))
        killer.join(timeout=90)
        for helper in helpers:
            helper.join(timeout=30)
        server.stop()
        token_of = {rater.id: token for rater, token in made}
        stored = {(token_of[r.rater_id], r.position): r.value
                  for r in Study(study.folder).ratings()}
        lost = [key for key, value in results.acknowledged.items() if stored.get(key) != value]

    print(f"leaf rate serve on 127.0.0.1, {os.cpu_count()} CPUs, default limits; study of 60 "
          f"{kind}; {args.raters} raters thinking {args.think[0]:g}–{args.think[1]:g} s per "
          f"image for {args.seconds:g} s; SIGKILL and restart at {args.seconds / 2:g} s; "
          f"machine load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    back = restarted[0] if restarted else float("inf")
    print(f"/health while 3 clients sent 10 MB bodies from an unknown token for 5 s (before the "
          f"raters): {percentiles(flood_health)}; their answers: "
          + ", ".join(f"{k} ×{n}" for k, n in flood_answers.items()))
    for label, keep in (("before the kill", lambda t: t < killed_at),
                        ("after the restart", lambda t: t > back)):
        print(f"acknowledged ratings {label}: "
              f"{percentiles([v for t, v in results.rating_latency if keep(t)])}")
        print(f"images {label}: {percentiles([v for t, v in results.image_latency if keep(t)])}")
    print(f"acknowledged ratings in all: {len(results.acknowledged)}")
    print(f"the load generator's own event-loop lag: {percentiles(results.client_lag)}")
    print(f"/health every 50 ms during the run: {percentiles(results.health)}; "
          f"{results.health_failed} polls failed while the server was down for the restart")
    for label, samples in (("before the kill", [(t, v) for t, v in results.rss
                                                 if t < args.seconds / 2]),
                           ("after the restart", [(t, v) for t, v in results.rss
                                                  if t > back - started])):
        if samples:
            print(f"server RSS {label} (MB, every 5 s): " + ", ".join(
                f"{t:.0f}s {value:.0f}" for t, value in samples[::5])
                + f"; max {max(v for _, v in samples):.0f}")
    print("rater answers: " + ", ".join(f"{k} ×{n}" for k, n in
                                         sorted(results.rater_statuses.items())))
    print("abusive client: " + "; ".join(f"{k} ×{n}" for k, n in sorted(results.abuse.items())))
    print(f"acknowledged ratings lost after the kill: {len(lost)} of "
          f"{len(results.acknowledged)}")
    if lost:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
