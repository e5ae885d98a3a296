"""The guard in front of `tamis serve`'s app (API key: 401, body size: 413) and the shape of its error replies."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tamis._errors import TamisError

if TYPE_CHECKING:  # pragma: no cover
    from starlette.requests import Request
    from starlette.responses import Response

logger = logging.getLogger("tamis.serve")

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class _Guard:
    """ASGI middleware: API key (401) and request size limit (413), before any parsing."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_request_bytes: int) -> None:
        self.app = app
        self._key = api_key.encode() if api_key else None
        self.max_request_bytes = max_request_bytes
        self.state: Any = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if self._key is not None and scope.get("path") != "/health":
            given = headers.get("authorization", b"")
            token = given[7:] if given[:7].lower() == b"bearer " else b""
            if not hmac.compare_digest(token, self._key):
                logger.warning("refused %s %s: missing or wrong API key", scope.get("method"), scope.get("path"))
                await _send_json(send, 401, _error("missing or wrong API key: send 'Authorization: Bearer <key>'",
                                                   "Unauthorized"), extra=[(b"www-authenticate", b"Bearer")])
                return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_request_bytes:
            await _send_json(send, 413, _too_large(int(length), self.max_request_bytes))
            return
        # read the body here, with the limit, whatever Content-Length says (or chunked encoding)
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_request_bytes:
                await _send_json(send, 413, _too_large(size, self.max_request_bytes))
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


def _error(message: str, error_type: str) -> dict[str, Any]:
    return {"error": message, "error_type": error_type}


def _too_large(size: int, limit: int) -> dict[str, Any]:
    return _error(f"request body of {size:,}+ bytes is over the limit of {limit:,} bytes; send smaller batches",
                  "PayloadTooLarge")


async def _send_json(send: Any, status: int, data: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


class _Invalid(Exception):
    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def _endpoint(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """``fn`` with its `_Invalid` and `TamisError` exceptions answered as JSON errors (422, or 413)."""
    from starlette.responses import JSONResponse

    async def wrapped(request: Request) -> Response:
        try:
            return await fn(request)
        except _Invalid as exc:
            error_type = "PayloadTooLarge" if exc.status == 413 else "Validation"
            return JSONResponse(_error(str(exc), error_type), status_code=exc.status)
        except TamisError as exc:
            return JSONResponse(_error(f"{type(exc).__name__}: {exc}", "Validation"), status_code=422)
    return wrapped

