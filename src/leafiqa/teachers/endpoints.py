"""Several OpenAI-compatible servers behind one teacher: per-endpoint concurrency and health.

``EndpointPool`` is an httpx transport, so the OpenAI teacher needs no change to use it: each
request goes to the healthy endpoint with the most free slots (its own concurrency limit), and
an endpoint that fails (connection error, timeout, 429 or 5xx) is backed off exponentially
while the others carry on; the teacher's own retry loop then sends the retry elsewhere. The
first success brings a backed-off endpoint back to full use.

Health survives across event loops (the teacher opens a client per batch of jobs), so state is
plain counters and the waiting is a short poll rather than an asyncio primitive bound to a loop.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from leafiqa.errors import ConfigError
from leafiqa.redact import redact, redact_url

UNHEALTHY_STATUS = {408, 429, 500, 502, 503, 504}


@dataclass
class Endpoint:
    url: str
    concurrency: int
    in_flight: int = 0
    consecutive_failures: int = 0
    down_until: float = 0.0
    requests: int = 0
    ok: int = 0
    failed: int = 0
    last_error: str = ""
    _transport: httpx.AsyncBaseTransport | None = field(default=None, repr=False)

    def free(self, now: float) -> int:
        return 0 if now < self.down_until else self.concurrency - self.in_flight


@dataclass(frozen=True)
class EndpointStats:
    url: str
    requests: int
    ok: int
    failed: int
    backed_off: bool
    last_error: str

    def line(self) -> str:
        state = "backed off" if self.backed_off else "healthy"
        tail = f" (last error: {self.last_error})" if self.last_error and self.failed else ""
        return redact(f"{redact_url(self.url)}: {self.requests} requests, {self.ok} ok, "
                      f"{self.failed} failed, {state}{tail}")


def base_path(url: str) -> str:
    return httpx.URL(url.rstrip("/")).path.rstrip("/")


class EndpointPool(httpx.AsyncBaseTransport):
    """Spread requests over ``urls`` (base URLs ending in ``/v1`` or similar); the client's own
    base URL is ``urls[0]`` and every request is re-addressed to the endpoint chosen for it."""

    def __init__(self, urls: Sequence[str], concurrency: int = 8, backoff_base: float = 1.0,
                 backoff_max: float = 60.0,
                 transport_factory: Callable[[str], httpx.AsyncBaseTransport] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        urls = list(dict.fromkeys(u.rstrip("/") for u in urls))
        if not urls:
            raise ConfigError("an endpoint pool needs at least one URL")
        for url in urls:
            parsed = httpx.URL(url)
            if parsed.scheme not in {"http", "https"} or not parsed.host:
                raise ConfigError(f"--url {redact_url(url)!r}: expected http(s)://host[:port]/path")
        if concurrency < 1:
            raise ConfigError("per-endpoint concurrency must be ≥ 1")
        self.endpoints = [Endpoint(url, concurrency) for url in urls]
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._factory = transport_factory or (lambda url: httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=concurrency)))
        self._clock = clock

    @property
    def url(self) -> str:
        return self.endpoints[0].url

    @property
    def total_concurrency(self) -> int:
        return sum(e.concurrency for e in self.endpoints)

    def stats(self) -> list[EndpointStats]:
        now = self._clock()
        return [EndpointStats(e.url, e.requests, e.ok, e.failed, now < e.down_until,
                              e.last_error) for e in self.endpoints]

    # -- choosing an endpoint ------------------------------------------------------------------

    def _pick(self) -> Endpoint | None:
        now = self._clock()
        free = [e for e in self.endpoints if e.free(now) > 0]
        if not free:
            return None
        best = max(e.free(now) for e in free)
        return random.choice([e for e in free if e.free(now) == best])

    async def _acquire(self) -> Endpoint:
        while True:
            endpoint = self._pick()
            if endpoint is not None:
                endpoint.in_flight += 1
                endpoint.requests += 1
                return endpoint
            now = self._clock()
            waiting = [e.down_until - now for e in self.endpoints if e.down_until > now]
            await asyncio.sleep(min([0.02, *[w for w in waiting if w > 0]]))

    def _failed(self, endpoint: Endpoint, reason: str, retry_after: float | None = None) -> None:
        endpoint.failed += 1
        endpoint.consecutive_failures += 1
        endpoint.last_error = reason
        delay = min(self.backoff_max,
                    self.backoff_base * 2 ** (endpoint.consecutive_failures - 1))
        if retry_after is not None:
            delay = min(self.backoff_max, max(delay, retry_after))
        endpoint.down_until = self._clock() + delay * (0.75 + 0.5 * random.random())

    def _succeeded(self, endpoint: Endpoint) -> None:
        endpoint.ok += 1
        endpoint.consecutive_failures = 0
        endpoint.down_until = 0.0

    # -- the transport -------------------------------------------------------------------------

    def _readdress(self, request: httpx.Request, endpoint: Endpoint, body: bytes) -> httpx.Request:
        target = httpx.URL(endpoint.url)
        path = request.url.path
        prefix = base_path(self.url)
        if prefix and path.startswith(prefix):
            path = path[len(prefix):]
        url = target.copy_with(path=base_path(endpoint.url) + path, query=request.url.query)
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"host"]
        return httpx.Request(request.method, url, headers=headers, content=body,
                             extensions=request.extensions)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        endpoint = await self._acquire()
        try:
            if endpoint._transport is None:
                endpoint._transport = self._factory(endpoint.url)
            response = await endpoint._transport.handle_async_request(
                self._readdress(request, endpoint, body))
            content = await response.aread()  # the slot is busy until the answer is read
            await response.aclose()
        except httpx.TransportError as error:  # includes timeouts
            self._failed(endpoint, f"{type(error).__name__}: {error}")
            raise
        finally:
            endpoint.in_flight -= 1
        if response.status_code in UNHEALTHY_STATUS:
            from leafiqa.teachers.openai import retry_after_seconds

            retry_after = retry_after_seconds(response.headers.get("retry-after"),
                                              self.backoff_max)
            self._failed(endpoint, f"HTTP {response.status_code}", retry_after)
        else:
            self._succeeded(endpoint)
        return httpx.Response(response.status_code, headers=response.headers, content=content,
                              request=request, extensions=response.extensions)

    async def aclose(self) -> None:
        # The teacher opens and closes a client (and its event loop) per batch of jobs; the
        # connections go with the loop, the health counters stay.
        for endpoint in self.endpoints:
            if endpoint._transport is not None:
                await endpoint._transport.aclose()
                endpoint._transport = None


def pooled_teacher(urls: Sequence[str], concurrency: int = 8, **settings: object):  # noqa: ANN201
    """An OpenAI teacher over several endpoints (``concurrency`` requests in flight on each)."""
    from leafiqa.teachers.openai import OpenAITeacher, TeacherSettings

    backoff: dict[str, Any] = {k: settings.pop(k) for k in ("endpoint_backoff",
                                                           "endpoint_backoff_max")
                               if k in settings}
    pool = EndpointPool(urls, concurrency=concurrency,
                        backoff_base=float(backoff.get("endpoint_backoff", 1.0)),
                        backoff_max=float(backoff.get("endpoint_backoff_max", 60.0)))
    options = {k: v for k, v in settings.items() if v is not None}
    teacher_settings = TeacherSettings.from_env(url=pool.url,
                                                concurrency=pool.total_concurrency, **options)
    teacher = OpenAITeacher(teacher_settings, transport=pool)
    teacher.endpoint_pool = pool  # type: ignore[attr-defined]
    return teacher
