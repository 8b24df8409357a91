"""``leaf serve``: an HTTP scoring service with micro-batching of concurrent requests.

POST /score   multipart files (field ``files``, one or several) or JSON
              {"images": ["<base64>", …]} → {"names": [...], "scores": [...],
              "results": [{"name", "score", "error"}, …]}: one bad image is that file's
              ``error`` (its score null), never the others' failure; 422 when none scored
GET  /health  → {"status": "ok"}
GET  /model   → metadata, calibration, score range (no local paths)
GET  /        → a page to drop images on; GET /docs → Swagger UI (bundled, works offline)

Hostile clients: the body is read as a stream with a size limit (chunked bodies included) and
a read timeout; images are decoded off the event loop in a bounded pool, each behind the
decompression-bomb limit; with ``$LEAF_SERVE_API_KEY`` set, /score and /model need
``Authorization: Bearer <key>`` (or ``X-API-Key``)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import os
import re
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.formparsers import MultiPartException, MultiPartParser

from leafiqa.data.images import ImageDecodeError
from leafiqa.data.pixels import Levels, input_pixels
from leafiqa.model.scorer import Scorer, describe
from leafiqa.serve.http_limits import (  # noqa: F401 - re-exported for `leaf serve`
    HEADER_TIMEOUT,
    TooLarge,
    header_deadline_protocol,
    limited,
    server_config,
)
from leafiqa.serve.page import install_page


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
        """Score one image given as its uint8 pixels at each of the scorer's input sizes (what
        ``data.pixels.input_pixels`` gives, as for every other entry point)."""
        assert self.queue is not None
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self.queue.put((levels, future))
        return await future

    def _score(self, images: list[Levels]) -> np.ndarray:
        """Stack and score in a worker thread: copying a batch of pyramids takes tens of ms,
        which the event loop (and /health) must not wait for."""
        return self.scorer.score_pixels(*(np.stack([levels[k] for levels in images])
                                          for k in range(len(self.scorer.input_sizes))))

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
            try:
                scores = await run_in_threadpool(self._score, [levels for levels, _ in items])
                self.batches += 1
                for (_, future), value in zip(items, scores, strict=True):
                    if not future.done():
                        future.set_result(float(value))
            except Exception as error:  # deliver the failure to every waiting request
                for _, future in items:
                    if not future.done():
                        future.set_exception(error)


@dataclass
class Upload:
    """One image of a request: its name, its bytes, or why it was refused before decoding."""

    name: str
    data: bytes = b""
    error: str | None = None
    status: int = 415  # the HTTP status this failure gets when every image of a request fails


_MEMORY_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")
_PATHLIKE = re.compile(r"(?:[A-Za-z]:)?[\\/][^\s:;,'\"]+[\\/][^\s:;,'\"]*")


def readable(message: str) -> str:
    """An error text for a client: no ``<_io.BytesIO object at 0x…>`` and no server paths."""
    message = _MEMORY_REPR.sub("the upload", message)
    return _PATHLIKE.sub(lambda m: Path(m.group(0).replace("\\", "/")).name or "…", message)


# an absolute path of some machine: POSIX (/home/…), home-relative (~/…), Windows (C:\…, \\host\…).
# A path is a token; ``https://…`` and relative paths such as ``licences/LICENSE`` or
# ``../shared/data/x.csv`` are not (they name nothing private about the machine).
_ABSOLUTE_PATH = re.compile(
    r"(?<![\w./\\])(?:~|[A-Za-z]:)?[\\/](?![\\/])[^\s;,+'\"()]*[\\/][^\s;,+'\"()]*"
    r"|(?<![\w./\\])\\\\[^\s;,+'\"()]+")


def local_path_name(match: re.Match) -> str:
    path = match.group(0).rstrip(".:")
    tail = match.group(0)[len(path):]
    return (Path(path.replace("\\", "/")).name or "…") + tail


def public(value: Any) -> Any:
    """Model metadata as it was written, less this or another machine's absolute paths: each
    keeps only its file name (``qbench:/home/a/x.json`` → ``qbench:x.json``); prose, URLs and
    relative paths (a licence file, ``../data/splits.csv:split_1``) are left as they are."""
    if isinstance(value, dict):
        return {key: public(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [public(item) for item in value]
    if isinstance(value, str):
        return _ABSOLUTE_PATH.sub(local_path_name, value)
    return value


def parse_json_images(body: bytes, max_upload_bytes: int, max_images: int) -> list[Upload]:
    """``{"images": [base64, …]}`` (or one string) → uploads; a bad entry is that entry's
    error, a body of the wrong shape is a 400."""
    try:
        payload = json.loads(body)
    except RecursionError:
        raise HTTPException(400, "body is JSON nested too deep") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise HTTPException(400, f"body is not JSON ({error})") from None
    encoded = payload.get("images") if isinstance(payload, dict) else None
    if isinstance(encoded, str):
        encoded = [encoded]
    if not isinstance(encoded, list):
        raise HTTPException(400, "expected JSON {\"images\": [base64, …]}")
    if len(encoded) > max_images:
        raise HTTPException(413, f"{len(encoded)} images; at most {max_images} per request")
    uploads = []
    for index, text in enumerate(encoded):
        name = f"images[{index}]"
        if not isinstance(text, str):
            uploads.append(Upload(name, error=f"{name}: expected a base64 string, got "
                                              f"{type(text).__name__}", status=400))
        elif len(text) > max_upload_bytes * 4 // 3 + 16:
            uploads.append(Upload(name, error=f"{name}: too large (over the limit of "
                                              f"{max_upload_bytes} bytes)", status=413))
        else:
            try:
                uploads.append(Upload(name, base64.b64decode(text, validate=True)))
            except (binascii.Error, ValueError) as error:
                uploads.append(Upload(name, error=f"{name}: not base64 ({error})", status=400))
    return uploads


def create_app(model_path: str | Path, runtime: str = "auto", max_upload_bytes: int = 20 << 20,
               max_images: int = 64, max_batch: int = 16, *, max_request_bytes: int | None = None,
               max_pixels: int | None = None, read_timeout: float = 30.0,
               api_key_env: str = "LEAF_SERVE_API_KEY", decode_workers: int | None = None,
               threads: int | None = None) -> FastAPI:
    """``threads``: inference threads, by default one fewer than the CPUs so the event loop
    (and /health) keeps a core while a batch is scored."""
    scorer = Scorer(model_path, runtime=runtime,
                    threads=threads or max(1, (os.cpu_count() or 2) - 1))
    batcher = MicroBatcher(scorer, max_batch=max_batch)
    max_request_bytes = max_request_bytes or max(4 * max_upload_bytes, 1 << 20)
    decoders = ThreadPoolExecutor(decode_workers or min(4, os.cpu_count() or 1),
                                  thread_name_prefix="leaf-decode")
    api_key = os.environ.get(api_key_env) or None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        yield
        await batcher.stop()
        decoders.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="LEAF scoring service", lifespan=lifespan, docs_url=None,
                  redoc_url=None)
    install_page(app)

    def authorise(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("x-api-key") or ""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            given = given or token.strip()
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong API key",
                                headers={"WWW-Authenticate": "Bearer"})

    def decode(upload: Upload) -> Levels:
        if len(upload.data) > max_upload_bytes:
            raise ImageDecodeError(upload.name, "too large",
                                   f"{len(upload.data)} bytes, limit {max_upload_bytes}")
        if not upload.data:
            raise ImageDecodeError(upload.name, "not an image", "empty")
        return input_pixels(upload.data, scorer.input_sizes, upload.name, max_pixels)

    async def score_one(upload: Upload) -> dict:
        if upload.error is None:
            try:
                levels = await asyncio.get_running_loop().run_in_executor(decoders, decode,
                                                                          upload)
                return {"name": upload.name, "score": await batcher.score(levels),
                        "error": None}
            except ImageDecodeError as error:
                upload.error = str(error)
                upload.status = 413 if error.reason == "too large" else 415
        return {"name": upload.name, "score": None, "error": readable(upload.error),
                "status": upload.status}

    async def read_uploads(request: Request) -> list[Upload]:
        content_type = request.headers.get("content-type", "")
        body = limited(request.stream(), max_request_bytes)
        if content_type.startswith("multipart/form-data"):
            try:
                form = await MultiPartParser(request.headers, body, max_files=max_images,
                                             max_fields=16).parse()
            except MultiPartException as error:
                raise HTTPException(400, f"bad multipart body ({error.message})") from None
            uploads = []
            try:
                for key, value in form.multi_items():
                    if not isinstance(value, str):  # an UploadFile
                        name = (value.filename or key)[:200]
                        uploads.append(Upload(name, await value.read()))
            finally:
                await form.close()
            return uploads
        if content_type.startswith("application/json"):
            data = b"".join([chunk async for chunk in body])
            return await run_in_threadpool(parse_json_images, data, max_upload_bytes, max_images)
        raise HTTPException(415, "send multipart/form-data files or JSON with base64 images")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/model")
    async def model(request: Request) -> dict:
        authorise(request)
        return public({**describe(scorer.info), "runtime": scorer.runtime,
                       "max_upload_bytes": max_upload_bytes, "max_images": max_images,
                       "max_request_bytes": max_request_bytes})

    @app.post("/score")
    async def score(request: Request) -> Any:
        authorise(request)
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_request_bytes:
            raise HTTPException(413, f"request of {length} bytes exceeds the limit of "
                                     f"{max_request_bytes} bytes")
        try:
            uploads = await asyncio.wait_for(read_uploads(request), read_timeout)
        except TooLarge as error:
            raise HTTPException(413, str(error)) from None
        except asyncio.TimeoutError:
            raise HTTPException(408, f"request body not received within {read_timeout:g} s"
                                ) from None
        if not uploads:
            raise HTTPException(400, "no images in the request")
        if len(uploads) > max_images:
            raise HTTPException(413, f"{len(uploads)} images; at most {max_images} per request")
        results = await asyncio.gather(*(score_one(upload) for upload in uploads))
        statuses = {result.pop("status", 200) for result in results if result["error"]}
        body = {"names": [r["name"] for r in results], "scores": [r["score"] for r in results],
                "results": results}
        if len(statuses) and all(result["error"] for result in results):
            detail = "; ".join(result["error"] for result in results[:5])
            status = statuses.pop() if len(statuses) == 1 else 422
            return JSONResponse({"detail": f"no image could be scored: {detail}", **body},
                                status_code=status)
        return body

    app.state.batcher = batcher
    return app
