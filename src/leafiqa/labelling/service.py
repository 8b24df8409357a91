"""``leaf rate serve``: the page where people rate a study's images, and its admin view.

GET  /r/{token}                      the rating page (404 for an unknown or revoked token)
GET  /api/r/{token}                  the rater's study: title, instructions, scale, progress
GET  /api/r/{token}/image/{step}     the image of the rater's current step (no other)
POST /api/r/{token}/rating           {"step": int, "value": number} → stored, then acknowledged
GET  /admin                          the admin page (asks for the key; shows no data itself)
GET  /api/admin/progress             per rater and per image (``X-Admin-Key``)
POST /api/admin/raters/{id}/revoke   revoke a rater's link (``X-Admin-Key``)
GET  /health

The server faces strangers, so limits come before work: every request but /health draws from
its client address's bucket and is refused unread when it declares a body over 1 KiB (a rating
is ~40 bytes); the token (or admin key) is then checked and drawn from its own bucket, and only
then is a body read, as a stream that stops at the limit (chunked bodies too) within a timeout.
A request answered before its body was read is answered with ``Connection: close``, so the rest
of an upload is never received. Errors name the field at fault and never echo the input.

A rater is known only by the token in their link; the server keeps its SHA-256, so a copy of
the study file gives no working link. Images are read only from paths stored in the study,
looked up by the rater's step, opened without following a link and checked against the hash
recorded at creation (``Study.image_bytes``); anything else is a 410, logged once. Tokens and
the admin key never reach a log line (``LinkRedactor`` on uvicorn's access log)."""

from __future__ import annotations

import asyncio
import html
import logging
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import Headers, MutableHeaders

from leafiqa.errors import DataError
from leafiqa.labelling.study import (
    ACR_WORDS,
    ImageGone,
    RatingConflict,
    Study,
    StudyImage,
    token_hash,
)
from leafiqa.redact import REDACTED, redact
from leafiqa.serve.http_limits import BodyTimeout, TooLarge, declared_too_large, read_body

log = logging.getLogger("leafiqa.rating")

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the page's address
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                               "script-src 'unsafe-inline'; connect-src 'self'; "
                               "frame-ancestors 'none'",
}
DEAD_LINK = ("<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Rating link</title>"
             "<body style=\"font: 16px system-ui, sans-serif; margin: 2em\"><h1>This rating link "
             "does not work</h1><p>{detail} ({status}). Ask the study owner for a new link."
             "</p></body></html>")
MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
               ".bmp": "image/bmp", ".webp": "image/webp", ".tif": "image/tiff",
               ".tiff": "image/tiff"}
BODY_LIMIT = 1024      # bytes: a rating is {"step": 12, "value": 4}
BODY_TIMEOUT = 10.0    # seconds to send that body
MAX_TOKEN_LENGTH = 200  # a token is 32 characters; longer ones are not looked up
UNLIMITED = ("/health",)
EXPECTED = "expected JSON {\"step\": <whole number>, \"value\": <number>}"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class RatingIn(BaseModel):
    """A rating as sent: strict JSON types (``"5"`` or ``true`` is not a number), nothing
    else."""

    model_config = ConfigDict(strict=True, extra="forbid")
    step: int = Field(..., ge=0, description="the step being rated (the rater's next one)")
    value: float = Field(..., allow_inf_nan=False,
                         description="on the study's scale: ACR 1..5 or slider 0..100")


FIELD_ERRORS = {"step": "step: expected a whole number ≥ 0 (the rater's next step)",
                "value": "value: expected a number on the study's scale"}


def parse_rating(body: bytes) -> RatingIn:
    """The rating in ``body``, or a 422 naming the fields at fault (never their content)."""
    try:
        return RatingIn.model_validate_json(body)
    except ValidationError as error:
        problems = []
        for problem in error.errors(include_input=False, include_url=False,
                                    include_context=False):
            field = str(problem["loc"][0]) if problem["loc"] else ""
            text = FIELD_ERRORS.get(field) if problem["type"] != "extra_forbidden" else \
                "only 'step' and 'value' are expected"
            problems.append(text or EXPECTED)
        raise HTTPException(422, "; ".join(dict.fromkeys(problems))) from None


class TokenBuckets:
    """``rate`` requests a second with bursts of ``burst``, per key."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when ``key`` may go ahead (one token taken), else the seconds until it may."""
        now = time.monotonic()
        with self.lock:
            if len(self.buckets) > 10_000:  # forget idle keys rather than grow without end
                self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < 60}
            tokens, last = self.buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            self.buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            return 0.0 if allowed else (1.0 - tokens) / self.rate


def too_many(wait: float) -> HTTPException:
    return HTTPException(429, "too many requests; slow down",
                         headers={"Retry-After": str(max(1, math.ceil(wait)))})


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "?"


class Guard:
    """Pure ASGI, in front of every route: the client address's rate limit and the declared
    body size, before anything else runs; on every answer the security headers, and
    ``Connection: close`` when the request's body was not read to its end (a refused upload is
    cut off, not received and thrown away)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 addresses: TokenBuckets, body_limit: int) -> None:
        self.app, self.addresses, self.body_limit = app, addresses, body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        body_read = headers.get("content-length", "0").strip() == "0" and \
            "transfer-encoding" not in headers

        async def tracked_receive() -> Message:
            nonlocal body_read
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                body_read = True
            return message

        async def hardened_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    if key not in response_headers:
                        response_headers[key] = value
                if not body_read:
                    response_headers["Connection"] = "close"
            await send(message)

        refusal: Response | None = None
        if scope["path"] not in UNLIMITED:
            wait = self.addresses.take("address:" + client_address(scope))
            if wait:
                refusal = JSONResponse({"detail": "too many requests from this address; slow "
                                                  "down"}, 429,
                                       headers={"Retry-After": str(max(1, math.ceil(wait)))})
        if refusal is None and declared_too_large(headers, self.body_limit):
            refusal = JSONResponse({"detail": f"request body over the limit of "
                                              f"{self.body_limit} bytes"}, 413)
        if refusal is not None:
            await refusal(scope, tracked_receive, hardened_send)
            return
        await self.app(scope, tracked_receive, hardened_send)


_LINK = re.compile(r"(/r/)[^/\s?#\"']+")


def redact_links(text: str) -> str:
    """``text`` with each rating link's token (``/r/<token>``) and any key-shaped value
    replaced by ``[redacted]``."""
    return redact(_LINK.sub(lambda match: match.group(1) + REDACTED, text))


def redact_path(path: str) -> str:
    """A request path as the access log may show it: each link's token and the query string
    (which nothing of the service needs, and anything may be in) replaced by ``[redacted]``."""
    if "?" in path:
        path = path.partition("?")[0] + "?" + REDACTED
    return _LINK.sub(lambda match: match.group(1) + REDACTED, path)


class LinkRedactor(logging.Filter):
    """Redacts tokens and keys in a log record, keeping its arguments' shape (uvicorn's access
    formatter unpacks them). An access-log record (a constant format, the client, method,
    path, version, status) needs only its path redacted, which stays cheap at every request;
    any other message is redacted in full (``redact_links``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and \
                len(record.args) == 5:
            client, method, path, version, status = record.args
            record.args = (client, method, redact_path(str(path)), version, status)
            return True
        if isinstance(record.msg, str):
            record.msg = redact_links(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_links(arg) if isinstance(arg, str) else arg
                                for arg in record.args)
        return True


def redact_server_logs(names: tuple[str, ...] = ("uvicorn.access", "uvicorn.error",
                                                 "leafiqa")) -> None:
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, LinkRedactor) for f in logger.filters):
            logger.addFilter(LinkRedactor())


class RatingWriter:
    """Ratings that arrive while a commit is on its way to disk are written together in the
    next one: one flush for many (``synchronous=FULL`` costs a disk flush per commit, slow on a
    virtual disk, which one commit per rating would queue up behind: docs/results/services.md),
    and each rating is acknowledged only once the commit holding it has returned."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.pending: list[tuple[tuple[int, int, float], asyncio.Future]] = []
        self.writer: asyncio.Task | None = None

    async def record(self, rater_id: int, position: int, value: float) -> int:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.pending.append(((rater_id, position, value), future))
        if self.writer is None or self.writer.done():
            self.writer = asyncio.get_running_loop().create_task(self._write())
        return await future

    async def _write(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                results = await run_in_threadpool(self.study.record_many,
                                                  [rating for rating, _ in batch])
            except Exception as error:  # noqa: BLE001 - every waiting request gets it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, RatingConflict):
                    future.set_exception(result)
                else:
                    future.set_result(result)


def static_page(name: str) -> str:
    return resources.files("leafiqa.labelling").joinpath(f"static/{name}").read_text("utf-8")


def create_rating_app(study_folder: str | Path, *, rate: float = 10.0, burst: int = 40,
                      address_rate: float = 100.0, address_burst: int = 200,
                      body_limit: int = BODY_LIMIT, body_timeout: float = BODY_TIMEOUT
                      ) -> FastAPI:
    """``rate``/``burst``: requests a second per rater link (and per admin key, and per client
    for unknown links and wrong keys); ``address_rate``/``address_burst``: per client address,
    every request but /health (raters behind one NAT share it)."""
    for name, value in (("--rate-limit", rate), ("--burst", burst),
                        ("--address-limit", address_rate), ("--address-burst", address_burst)):
        if not value > 0:
            raise DataError(f"{name}: expected a positive number, got {value}")
    study = Study(study_folder, keep_connections=True)
    study.require_writable()
    settings = study.settings
    buckets = TokenBuckets(rate, burst)
    redact_server_logs()
    app = FastAPI(title="LEAF rating service", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(Guard, addresses=TokenBuckets(address_rate, address_burst),
                       body_limit=body_limit)
    unserved: set[int] = set()  # images whose refusal was logged
    writer = RatingWriter(study)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        fields = [".".join(str(part) for part in problem.get("loc", ()))
                  for problem in error.errors()]
        return JSONResponse({"detail": "invalid " + ", ".join(fields or ["request"])}, 422)

    @app.exception_handler(DataError)
    async def study_unreadable(_: Request, error: DataError) -> JSONResponse:
        log.error("%s", error)
        return JSONResponse({"detail": "the study cannot be read on the server"}, 503)

    def limit(key: str) -> None:
        wait = buckets.take(key)
        if wait:
            raise too_many(wait)

    async def rater_for(token: str, request: Request):  # noqa: ANN202
        rater = await run_in_threadpool(study.rater_for_token, token) \
            if len(token) <= MAX_TOKEN_LENGTH else None
        if rater is None:
            # unknown tokens share one bucket per client, so guessing stays slow
            limit("unknown:" + client_address(request.scope))
            raise HTTPException(404, "unknown or revoked rating link")
        limit(f"rater:{rater.id}")
        return rater

    async def admin(request: Request) -> None:
        key = request.headers.get("x-admin-key", "")
        matches = bool(key) and len(key) <= MAX_TOKEN_LENGTH and \
            await run_in_threadpool(study.admin_key_matches, key)
        # each key tried has its own bucket: wrong keys never use up the right key's
        limit("admin-key:" + token_hash(key))
        if not matches:
            limit("admin-wrong:" + client_address(request.scope))  # guessing stays slow
            raise HTTPException(403, "missing or wrong admin key")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/r/{token}", response_class=HTMLResponse)
    async def page(token: str, request: Request) -> HTMLResponse:
        try:
            await rater_for(token, request)
        except HTTPException as error:  # a person opened the link: answer with a page
            return HTMLResponse(DEAD_LINK.format(status=error.status_code,
                                                 detail=html.escape(str(error.detail))),
                                status_code=error.status_code, headers=error.headers)
        return HTMLResponse(static_page("rate.html"))

    @app.get("/api/r/{token}")
    async def state(token: str, request: Request) -> dict:
        rater = await rater_for(token, request)
        return {"title": settings.title, "instructions": settings.instructions,
                "scale": settings.scale, "low": settings.low, "high": settings.high,
                "words": list(ACR_WORDS), "total": rater.total, "done": rater.done,
                "finished": rater.done >= rater.total}

    @app.get("/api/r/{token}/image/{step}")
    async def image(token: str, step: int, request: Request) -> Response:
        rater = await rater_for(token, request)
        if step != rater.done:
            raise HTTPException(404, "only the current step's image can be shown")
        found = await run_in_threadpool(step_image, study, rater.id, step)
        if found is None:
            raise HTTPException(404, "no such step")
        record, data = found
        if isinstance(data, ImageGone):
            if record.id not in unserved:
                unserved.add(record.id)
                log.warning("study image '%s' (%s) is not served (410 from now on): %s",
                            record.name, record.path, data)
            raise HTTPException(410, "this image is no longer on the server")
        return Response(data, media_type=MEDIA_TYPES.get(record.path.suffix.lower(),
                                                         "application/octet-stream"))

    @app.post("/api/r/{token}/rating")
    async def rating(token: str, request: Request) -> dict:
        rater = await rater_for(token, request)  # before a byte of the body is read
        try:
            body = await read_body(request.stream(), body_limit, body_timeout)
        except TooLarge as error:
            raise HTTPException(413, str(error)) from None
        except BodyTimeout as error:
            raise HTTPException(408, str(error)) from None
        sent = parse_rating(body)
        if not settings.low <= sent.value <= settings.high or (
                settings.scale == "acr" and sent.value != int(sent.value)):
            expected = ("a whole number 1 to 5" if settings.scale == "acr"
                        else f"{settings.low:g} to {settings.high:g}")
            raise HTTPException(422, f"value is off the scale: expected {expected}")
        try:
            done = await writer.record(rater.id, sent.step, sent.value)
        except RatingConflict as error:
            raise HTTPException(409, str(error)) from None
        return {"stored": True, "done": done, "total": rater.total,
                "finished": done >= rater.total}

    @app.get("/admin", response_class=HTMLResponse)
    async def admin_page() -> HTMLResponse:
        return HTMLResponse(static_page("rate_admin.html"))

    @app.get("/api/admin/progress")
    async def progress(request: Request) -> JSONResponse:
        await admin(request)
        return JSONResponse(await run_in_threadpool(progress_report, study))

    @app.post("/api/admin/raters/{rater_id}/revoke")
    async def revoke(rater_id: int, request: Request) -> dict:
        await admin(request)
        try:
            rater = await run_in_threadpool(study.revoke, str(rater_id))
        except DataError as error:
            raise HTTPException(404, str(error).rpartition(": ")[2]) from None
        return {"rater": rater.label, "revoked": rater.revoked}

    app.state.study = study
    return app


def step_image(study: Study, rater_id: int, step: int
               ) -> tuple[StudyImage, bytes | ImageGone] | None:
    """The image a rater's step shows and its bytes (or why it cannot be served); None when
    the rater has no such step. One trip to a worker thread for the whole lookup."""
    planned = study.step(rater_id, step)
    if planned is None:
        return None
    record = study.image(planned.image_id)
    try:
        return record, study.image_bytes(record)
    except ImageGone as gone:
        return record, gone


def progress_report(study: Study) -> dict:
    """Per rater: steps done of planned, revoked; per image: votes and their mean."""
    from leafiqa.labelling.screening import check_raters, votes_from_study

    checks = {check.rater: check for check in check_raters(votes_from_study(study),
                                                           study.settings)}
    raters = []
    for rater in study.raters():
        check = checks.get(rater.label)
        raters.append({"id": rater.id, "label": rater.label, "done": rater.done,
                       "total": rater.total, "revoked": rater.revoked,
                       "flags": check.reasons if check else []})
    votes: dict[int, list[float]] = {}
    for rating in study.ratings():
        votes.setdefault(rating.image_id, []).append(rating.value)
    images = [{"name": image.name, "gold": image.gold, "votes": len(votes.get(image.id, [])),
               "mean": (sum(votes[image.id]) / len(votes[image.id])
                        if votes.get(image.id) else None)} for image in study.images()]
    return {"title": study.settings.title, "scale": study.settings.scale, "raters": raters,
            "images": images}
