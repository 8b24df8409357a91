"""A stand-in MLLM server speaking the OpenAI chat-completions protocol, for tests, benchmarks
and trying LEAF without a GPU. It is not a quality model: its answers are a fixed function of a
simple statistic of the images it receives (grey-level detail), so a bug in image encoding, pair
order or token matching shows up as wrong judgments.

Behaviour is set per server (``MockBehaviour``): log-probabilities or not, level words split
into odd tokens, a position bias in pair answers, and faults (429 with Retry-After, 500,
malformed JSON, slow answers) for the first k requests about each image."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from PIL import Image

LEVELS = ("excellent", "good", "fair", "poor", "bad")


@dataclass
class MockBehaviour:
    logprobs: bool = True
    split_tokens: bool = False
    position_bias: float = 0.1
    fault: str | None = None  # "429", "500", "garbage", "slow", "no_choices"
    fault_times: int = 1  # per image (or image pair), or in all with fault_scope="server"
    fault_scope: str = "image"  # "image": each image's first requests fail; "server": the
    # server's first requests, whichever images they ask about
    slow_seconds: float = 2.0
    latency: float = 0.0  # seconds per answer (benchmarks)
    requests: int = 0
    successes: int = 0
    seen: Counter = field(default_factory=Counter)


def image_detail(image: Image.Image) -> float:
    """Mean absolute Laplacian of the grey image at 128×128, in [0, ~1]."""
    grey = np.asarray(image.convert("L").resize((128, 128), Image.Resampling.BILINEAR),
                      dtype=np.float32)
    laplacian = (4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2]
                 - grey[1:-1, 2:])
    return float(np.mean(np.abs(laplacian)) / 40.0)


def detail_quality(detail: float) -> float:
    """The mock's quality in [0, 1] for a detail statistic (more detail = better)."""
    return 1.0 / (1.0 + math.exp(-(detail - 0.35) / 0.12))


def level_distribution(quality: float) -> np.ndarray:
    centres = np.linspace(1.0, 0.0, len(LEVELS))
    weights = np.exp(-0.5 * ((centres - quality) / 0.15) ** 2)
    return weights / weights.sum()


def mock_answer(images: list[Image.Image], position_bias: float = 0.1,
                ) -> tuple[tuple[str, ...], np.ndarray]:
    """The words the mock answers with and their probabilities: the five levels for one
    image, first/second for two (with a bias towards the first position)."""
    qualities = [detail_quality(image_detail(image)) for image in images]
    if len(images) == 1:
        return LEVELS, level_distribution(qualities[0])
    p_first = 1.0 / (1.0 + math.exp(-(qualities[0] - qualities[1]) / 0.05))
    p_first = float(np.clip(p_first + position_bias, 0.001, 0.999))
    return ("first", "second"), np.array([p_first, 1.0 - p_first])


def decode_data_url(url: str) -> Image.Image:
    header, _, data = url.partition(",")
    if not header.startswith("data:image/") or ";base64" not in header:
        raise ValueError("expected a base64 image data URL")
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def _images_and_text(body: dict) -> tuple[list[Image.Image], str, list[str]]:
    images, texts, digests = [], [], []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content or []:
            if part.get("type") == "text":
                texts.append(part["text"])
            elif part.get("type") == "image_url":
                url = part["image_url"]["url"]
                digests.append(hashlib.sha1(url.encode()).hexdigest()[:12])
                images.append(decode_data_url(url))
    return images, " ".join(texts), digests


def _token_entries(words: tuple[str, ...], probs: np.ndarray, split: bool) -> list[dict]:
    entries: list[dict] = []
    for word, p in zip(words, probs, strict=True):
        if split:  # only the first piece of a word split into odd tokens, odd case and spaces
            token = " " + word[:2].capitalize()
        else:
            token = [" " + word, word.capitalize(), word][len(entries) % 3]
        entries.append({"token": token, "logprob": float(math.log(max(p, 1e-12)))})
    entries.append({"token": " the", "logprob": -9.0})
    return sorted(entries, key=lambda e: -e["logprob"])


def create_mock_app(behaviour: MockBehaviour | None = None):  # noqa: ANN201
    behaviour = behaviour or MockBehaviour()
    app = FastAPI(title="LEAF mock MLLM")
    app.state.behaviour = behaviour

    @app.post("/v1/chat/completions")
    async def chat(request: Request):  # noqa: ANN202
        import asyncio

        behaviour.requests += 1
        body = await request.json()
        images, text, digests = _images_and_text(body)
        if not images:
            return JSONResponse({"error": "no image"}, status_code=400)
        ident = "|".join(digests)
        behaviour.seen[ident] += 1
        count = behaviour.requests if behaviour.fault_scope == "server" else behaviour.seen[ident]
        if behaviour.fault and count <= behaviour.fault_times:
            if behaviour.fault == "429":
                return JSONResponse({"error": "rate limited"}, status_code=429,
                                    headers={"Retry-After": "0"})
            if behaviour.fault == "500":
                return JSONResponse({"error": "boom"}, status_code=500)
            if behaviour.fault == "garbage":
                return PlainTextResponse("{not json", media_type="application/json")
            if behaviour.fault == "no_choices":
                return JSONResponse({"choices": []})
            if behaviour.fault == "slow":
                await asyncio.sleep(behaviour.slow_seconds)
        if behaviour.latency:
            await asyncio.sleep(behaviour.latency)
        words, probs = mock_answer(images, behaviour.position_bias)
        n = int(body.get("n") or 1)
        seed = int(hashlib.sha1((ident + text).encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng(seed)
        choices = []
        for index in range(n):
            pick = int(np.argmax(probs)) if n == 1 else int(rng.choice(len(words), p=probs))
            word = words[pick]
            choice: dict = {"index": index, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": word.capitalize()}}
            if behaviour.logprobs and body.get("logprobs"):
                top = _token_entries(words, probs, behaviour.split_tokens)
                choice["logprobs"] = {"content": [{"token": top[0]["token"],
                                                   "logprob": top[0]["logprob"],
                                                   "top_logprobs": top}]}
            choices.append(choice)
        behaviour.successes += 1
        return JSONResponse({"id": "mock", "object": "chat.completion", "created": int(time.time()),
                             "model": body.get("model", "mock"), "choices": choices})

    return app


class ServerThread:
    """Run an ASGI app with uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app, port: int | None = None) -> None:  # noqa: ANN001
        import uvicorn

        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def wait_idle(self, quiet: float = 0.3, timeout: float = 30.0) -> None:
        """Wait until no connection is open and no request is being handled for ``quiet``
        seconds: a request its client sent just before it died is counted by then, however
        loaded the machine (tests compare request counts across runs)."""
        state = self.server.server_state
        deadline = time.monotonic() + timeout
        idle_since = None
        while time.monotonic() < deadline:
            if state.connections or state.tasks:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= quiet:
                return
            time.sleep(0.02)
        raise TimeoutError(f"the test server on port {self.port} did not go idle")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:  # pragma: no cover - `python -m leafiqa.testing.mock_teacher PORT`
    import sys

    import uvicorn

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8011
    print(json.dumps({"url": f"http://127.0.0.1:{port}/v1"}))
    uvicorn.run(create_mock_app(), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":  # pragma: no cover
    main()
