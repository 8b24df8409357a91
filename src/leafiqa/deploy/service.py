"""``leaf serve``: an HTTP scoring service with micro-batching of concurrent requests.

POST /score   multipart files (field ``files``, one or several) or JSON
              {"images": ["<base64>", …]} → {"scores": [...], "names": [...]}
GET  /health  → {"status": "ok"}
GET  /model   → metadata, calibration, score range
GET  /        → a page to drop images on; GET /docs → Swagger UI (bundled, works offline)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from leafiqa.data.images import ImageDecodeError, decode_bytes_rgb
from leafiqa.data.loader import Levels, stack_levels
from leafiqa.deploy.page import install_page
from leafiqa.deploy.scorer import Scorer, describe


class MicroBatcher:
    """Collects images from concurrent requests for a few milliseconds and scores them in one
    forward pass."""

    def __init__(self, scorer: Scorer, max_batch: int = 16, wait_ms: float = 5.0) -> None:
        self.scorer = scorer
        self.max_batch = max_batch
        self.wait = wait_ms / 1000.0
        self.queue: asyncio.Queue[tuple[Levels, asyncio.Future]] | None = None
        self.worker: asyncio.Task | None = None
        self.batches = 0

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.worker:
            self.worker.cancel()

    async def score(self, levels: Levels) -> float:
        """Score one image given as the scorer's preprocessed levels (one array per size)."""
        assert self.queue is not None
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self.queue.put((levels, future))
        return await future

    async def _run(self) -> None:
        assert self.queue is not None
        while True:
            items = [await self.queue.get()]
            deadline = asyncio.get_running_loop().time() + self.wait
            while len(items) < self.max_batch:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    items.append(await asyncio.wait_for(self.queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            batch = stack_levels([levels for levels, _ in items], self.scorer.input_sizes)
            try:
                scores = await run_in_threadpool(self.scorer.score_array, *batch)
                self.batches += 1
                for (_, future), value in zip(items, scores, strict=True):
                    if not future.done():
                        future.set_result(float(value))
            except Exception as error:  # deliver the failure to every waiting request
                for _, future in items:
                    if not future.done():
                        future.set_exception(error)


def create_app(model_path: str | Path, runtime: str = "auto", max_upload_bytes: int = 20 << 20,
               max_images: int = 64, max_batch: int = 16) -> FastAPI:
    scorer = Scorer(model_path, runtime=runtime)
    batcher = MicroBatcher(scorer, max_batch=max_batch)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="LEAF scoring service", lifespan=lifespan, docs_url=None,
                  redoc_url=None)
    install_page(app)

    def decode(data: bytes, name: str) -> Levels:
        if len(data) > max_upload_bytes:
            raise HTTPException(413, f"{name}: {len(data)} bytes exceeds the limit of "
                                     f"{max_upload_bytes} bytes")
        try:
            return scorer.preprocess(decode_bytes_rgb(data, name))
        except ImageDecodeError as error:
            raise HTTPException(415, str(error)) from None

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/model")
    async def model() -> dict:
        return {**describe(scorer.info), "runtime": scorer.runtime,
                "max_upload_bytes": max_upload_bytes, "max_images": max_images}

    @app.post("/score")
    async def score(request: Request) -> dict:
        length = int(request.headers.get("content-length") or 0)
        if length > max_upload_bytes * max_images:
            raise HTTPException(413, f"request of {length} bytes exceeds the limit")
        content_type = request.headers.get("content-type", "")
        uploads: list[tuple[str, bytes]] = []
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            for key, value in form.multi_items():
                if hasattr(value, "read"):
                    uploads.append((value.filename or key, await value.read()))
        elif content_type.startswith("application/json"):
            try:
                body = await request.json()
                encoded = body["images"]
                if isinstance(encoded, str):
                    encoded = [encoded]
                for index, text in enumerate(encoded):
                    if len(text) > max_upload_bytes * 4 // 3 + 16:
                        raise HTTPException(413, f"images[{index}] exceeds the size limit")
                    uploads.append((f"images[{index}]", base64.b64decode(text, validate=True)))
            except (ValueError, KeyError, TypeError, binascii.Error) as error:
                raise HTTPException(
                    400, f"expected JSON {{'images': [base64, …]}} ({error})") from None
        else:
            raise HTTPException(415, "send multipart/form-data files or JSON with base64 images")
        if not uploads:
            raise HTTPException(400, "no images in the request")
        if len(uploads) > max_images:
            raise HTTPException(413, f"{len(uploads)} images; at most {max_images} per request")
        pixels = [decode(data, name) for name, data in uploads]
        scores = await asyncio.gather(*(batcher.score(p) for p in pixels))
        return {"names": [name for name, _ in uploads], "scores": list(scores)}

    app.state.batcher = batcher
    return app
