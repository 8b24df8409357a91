"""Limits every LEAF HTTP service applies before it does any work for a client: a deadline for a
request's headers (uvicorn alone waits for ever), a body read as a stream with a size limit
(chunked bodies included) and a read timeout. ``leaf serve`` and ``leaf rate serve`` share
them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any


class TooLarge(Exception):
    pass


class BodyTimeout(Exception):
    pass


async def limited(stream: AsyncIterator[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    """The body's chunks, stopping with ``TooLarge`` as soon as more than ``limit`` bytes
    arrived (a chunked body has no Content-Length to check up front)."""
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise TooLarge(f"request body over the limit of {limit} bytes")
        yield chunk


def declared_too_large(headers: Any, limit: int) -> bool:
    """Whether a request's Content-Length already says its body is over ``limit`` (the body
    is then refused unread)."""
    length = headers.get("content-length")
    return bool(length) and (not length.strip().isdigit() or int(length) > limit)


async def read_body(stream: AsyncIterator[bytes], limit: int, timeout: float) -> bytes:
    """A whole (small) body: ``TooLarge`` as soon as more than ``limit`` bytes arrived,
    ``BodyTimeout`` when it is not complete within ``timeout`` seconds (a client sending a
    byte now and then holds nothing for long)."""
    async def collect() -> bytes:
        return b"".join([chunk async for chunk in limited(stream, limit)])

    try:
        return await asyncio.wait_for(collect(), timeout)
    except asyncio.TimeoutError:
        raise BodyTimeout(f"request body not received within {timeout:g} s") from None


HEADER_TIMEOUT = 10.0
_REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\n"
                    b"content-length: 30\r\nconnection: close\r\n\r\n"
                    b"request headers not received\r\n")


def header_deadline_protocol(seconds: float = HEADER_TIMEOUT) -> type:
    """uvicorn's HTTP protocol with a deadline for a request's headers: a connection that
    opens (or finishes a response) and does not complete its next request line and headers
    within ``seconds`` is closed, with a 408 when part of a request had arrived (uvicorn alone
    keeps it open for ever, so a few hundred silent sockets hold the server's file
    descriptors). An idle connection is closed without an answer, as keep-alive does, so a
    client never reads the 408 as the answer to a request it sends at that moment."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadline(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _started = False  # bytes of the next request arrived since the deadline was set

        def _arm_header_deadline(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._started = False
            self._header_timer = self.loop.call_later(seconds, self._header_deadline_passed)

        def _header_deadline_passed(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                if self._started:
                    self.transport.write(_REQUEST_TIMEOUT)
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            self._started = self._started or bool(data)
            super().data_received(data)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().connection_lost(exc)

    return HeaderDeadline


def server_config(app: Any, host: str = "127.0.0.1", port: int = 8000, *,
                  header_timeout: float = HEADER_TIMEOUT, **options: Any) -> Any:
    """The uvicorn configuration ``leaf serve`` and ``leaf rate serve`` run with (a deadline on
    request headers)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, http=header_deadline_protocol(
        header_timeout), timeout_keep_alive=5, **options)
