"""The guard in front of `tamis serve`'s routes, in ASGI, before any parsing.

In order: the API key (401), the concurrency limit (``max_concurrent_requests`` in flight: 429
``Overloaded``), the body size (413, whatever Content-Length says or with chunked encoding), the
body read timeout (a client that stops sending its body half-way gets 408 and the connection is
closed), and the metrics of every request. Errors are TEI-shaped, or OpenAI-shaped on ``/v1/*``;
an exception no handler expected is logged with its stack trace and answered as a bare 500.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tamis.serving._errors import error_body
from tamis.serving._metrics import Metrics

logger = logging.getLogger("tamis.serve")

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

#: routes answered even when the server is at its concurrency limit (load balancers, Prometheus)
UNLIMITED = {"/health", "/metrics"}


class _Guard:
    """ASGI middleware: API key, concurrency limit, body size and read timeout, metrics, last-resort 500."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_request_bytes: int, max_concurrent_requests: int,
                 body_timeout_s: float, metrics: Metrics) -> None:
        self.app = app
        self._key = api_key.encode() if api_key else None
        self.max_request_bytes = max_request_bytes
        self.max_concurrent_requests = max_concurrent_requests
        self.body_timeout_s = body_timeout_s
        self.metrics = metrics
        self.in_flight = 0
        self.state: Any = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        status = [500]
        started = False

        async def send_counted(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                started = True
            await send(message)

        t0 = time.perf_counter()
        counted = path not in UNLIMITED
        if counted:
            self.in_flight += 1
            self.metrics.in_flight.inc()
        try:
            await self._serve(scope, receive, send_counted, path)
        except Exception:
            logger.exception("unexpected error answering %s %s", scope.get("method"), path)
            if not started:
                await _send_error(send_counted, path, 500, "internal server error (see the server's log)", "Backend")
        finally:
            if counted:
                self.in_flight -= 1
                self.metrics.in_flight.dec()
            self.metrics.observe(path, status[0], time.perf_counter() - t0)

    async def _serve(self, scope: Scope, receive: Any, send: Any, path: str) -> None:
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if self._key is not None and path != "/health":
            given = headers.get("authorization", b"")
            token = given[7:] if given[:7].lower() == b"bearer " else b""
            if not hmac.compare_digest(token, self._key):
                logger.warning("refused %s %s: missing or wrong API key", scope.get("method"), path)
                await _send_error(send, path, 401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                                  "Unauthorized", extra=[(b"www-authenticate", b"Bearer")])
                return
        if path not in UNLIMITED and self.in_flight > self.max_concurrent_requests:
            await _send_error(send, path, 429, f"Model is overloaded: {self.max_concurrent_requests} requests are in "
                              "flight already (max_concurrent_requests); retry later", "Overloaded",
                              extra=[(b"retry-after", b"1")])
            return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_request_bytes:
            await _send_error(send, path, 413, _too_large(int(length), self.max_request_bytes), "PayloadTooLarge")
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        deadline = time.monotonic() + self.body_timeout_s
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                logger.warning("dropped %s %s: the body did not arrive within %.0f s", scope.get("method"), path,
                               self.body_timeout_s)
                await _send_error(send, path, 408, f"the request body did not arrive within {self.body_timeout_s:g} s",
                                  "Validation", extra=[(b"connection", b"close")])
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_request_bytes:
                await _send_error(send, path, 413, _too_large(size, self.max_request_bytes), "PayloadTooLarge")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _too_large(size: int, limit: int) -> str:
    return f"request body of {size:,}+ bytes is over the limit of {limit:,} bytes; send smaller batches"


async def _send_error(send: Any, path: str, status: int, message: str, error_type: str,
                      extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = error_body(path, status, message, error_type)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
