"""``leaf rate serve``: the page where people rate a study's images, and its admin view.

GET  /r/{token}                      the rating page (404 for an unknown or revoked token)
GET  /api/r/{token}                  the rater's study: title, instructions, scale, progress
GET  /api/r/{token}/image/{step}     the image of the rater's current step (no other)
POST /api/r/{token}/rating           {"step": int, "value": number} → stored, then acknowledged
GET  /admin                          the admin page (asks for the key; shows no data itself)
GET  /api/admin/progress             per rater and per image (``X-Admin-Key``)
POST /api/admin/raters/{id}/revoke   revoke a rater's link (``X-Admin-Key``)
GET  /health

A rater is known only by the token in their link; the server keeps its SHA-256, so a copy of
the study file gives no working link. Every request of a token (or of a client presenting an
unknown token) draws from a token bucket; images are read only from paths stored in the study,
looked up by the rater's step, so no name from a request ever reaches the file system."""

from __future__ import annotations

import html
import threading
import time
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from leafiqa.ratings.study import ACR_WORDS, RatingConflict, Study

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


class RatingIn(BaseModel):
    step: int = Field(..., ge=0, description="the step being rated (the rater's next one)")
    value: float = Field(..., description="on the study's scale: ACR 1..5 or slider 0..100")


class TokenBuckets:
    """``rate`` requests a second with bursts of ``burst``, per key."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def take(self, key: str) -> bool:
        now = time.monotonic()
        with self.lock:
            if len(self.buckets) > 10_000:  # forget idle keys rather than grow without end
                self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < 60}
            tokens, last = self.buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            self.buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            return allowed


def static_page(name: str) -> str:
    return resources.files("leafiqa.deploy").joinpath(f"static/{name}").read_text("utf-8")


def create_rating_app(study_folder: str | Path, *, rate: float = 10.0, burst: int = 40
                      ) -> FastAPI:
    study = Study(study_folder)
    settings = study.settings
    buckets = TokenBuckets(rate, burst)
    app = FastAPI(title="LEAF rating service", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def headers(request: Request, call_next):  # noqa: ANN001, ANN202
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    def limit(key: str) -> None:
        if not buckets.take(key):
            raise HTTPException(429, "too many requests; slow down", headers={"Retry-After": "1"})

    async def rater_for(token: str, request: Request):  # noqa: ANN202
        rater = await run_in_threadpool(study.rater_for_token, token) if len(token) < 200 \
            else None
        if rater is None:
            # unknown tokens share one bucket per client, so guessing stays slow
            limit("unknown:" + (request.client.host if request.client else "?"))
            raise HTTPException(404, "unknown or revoked rating link")
        limit(f"rater:{rater.id}")
        return rater

    def admin(request: Request) -> None:
        limit("admin:" + (request.client.host if request.client else "?"))
        key = request.headers.get("x-admin-key", "")
        if not key or not study.admin_key_matches(key):
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
    async def image(token: str, step: int, request: Request) -> FileResponse:
        rater = await rater_for(token, request)
        if step != rater.done:
            raise HTTPException(404, "only the current step's image can be shown")
        planned = await run_in_threadpool(study.step, rater.id, step)
        if planned is None:
            raise HTTPException(404, "no such step")
        path = (await run_in_threadpool(study.image, planned.image_id)).path
        if not path.is_file():
            raise HTTPException(410, "this image is no longer on the server")
        return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix.lower(),
                                                             "application/octet-stream"),
                            headers={"Cache-Control": "no-store"})

    @app.post("/api/r/{token}/rating")
    async def rating(token: str, body: RatingIn, request: Request) -> dict:
        rater = await rater_for(token, request)
        if not settings.low <= body.value <= settings.high or (
                settings.scale == "acr" and body.value != int(body.value)):
            expected = ("a whole number 1 to 5" if settings.scale == "acr"
                        else f"{settings.low:g} to {settings.high:g}")
            raise HTTPException(422, f"value {body.value:g} is off the scale: expected "
                                     f"{expected}")
        try:
            done = await run_in_threadpool(study.record, rater.id, body.step, body.value)
        except RatingConflict as error:
            raise HTTPException(409, str(error)) from None
        return {"stored": True, "done": done, "total": rater.total,
                "finished": done >= rater.total}

    @app.get("/admin", response_class=HTMLResponse)
    async def admin_page() -> HTMLResponse:
        return HTMLResponse(static_page("rate_admin.html"))

    @app.get("/api/admin/progress")
    async def progress(request: Request) -> JSONResponse:
        admin(request)
        return JSONResponse(await run_in_threadpool(progress_report, study))

    @app.post("/api/admin/raters/{rater_id}/revoke")
    async def revoke(rater_id: int, request: Request) -> dict:
        admin(request)
        try:
            rater = await run_in_threadpool(study.revoke, str(rater_id))
        except ValueError as error:
            raise HTTPException(404, str(error)) from None
        return {"rater": rater.label, "revoked": rater.revoked}

    app.state.study = study
    return app


def progress_report(study: Study) -> dict:
    """Per rater: steps done of planned, revoked; per image: votes and their mean."""
    from leafiqa.ratings.screening import check_raters, votes_from_study

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
