"""Error replies of `tamis serve`: TEI's error types and status codes, OpenAI's error body on ``/v1/*``.

TEI answers ``{"error": message, "error_type": type}`` with the status of the type: ``Validation``
413 (too many inputs, an input over the length limit with ``truncate: false``, too many dimensions),
``Tokenizer`` 422, ``Empty`` 400, ``Overloaded`` 429, ``Backend`` 424, ``Unhealthy`` 503. A body
that is not JSON gets 400 and a field of the wrong type or out of range 422, as TEI's JSON
extractor answers them. OpenAI's routes answer ``{"error": {"message", "type", "code", "param"}}``,
which the official client shows. Messages never carry filesystem paths or stack traces: those go to
the server's log only.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["HttpError", "error_body", "is_openai", "public_message"]

STATUS = {"Validation": 413, "Tokenizer": 422, "Empty": 400, "Overloaded": 429, "Backend": 424, "Unhealthy": 503}
_OPENAI_TYPE = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error"}
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][^\s'\"`,;:()\[\]{}\\/]+){2,}[\\/]?")


class HttpError(Exception):
    """An error reply: ``message`` (shown to the client), its TEI ``error_type``, its status code."""

    def __init__(self, message: str, error_type: str = "Validation", status: int | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.status = STATUS.get(error_type, 422) if status is None else status
        self.param = param


def invalid(message: str, param: str | None = None) -> HttpError:
    """A field of the wrong type or out of range: 422."""
    return HttpError(message, "Validation", 422, param)


def public_message(message: str) -> str:
    """``message`` with absolute filesystem paths replaced by ``<path>``."""
    return _PATH.sub("<path>", message)


def is_openai(path: str) -> bool:
    """Whether ``path`` is one of the OpenAI-compatible routes (their errors are OpenAI-shaped)."""
    return path.startswith("/v1/") or path == "/embeddings"


def error_body(path: str, status: int, message: str, error_type: str, param: str | None = None) -> bytes:
    """The JSON bytes of an error reply for a request to ``path``."""
    message = public_message(message)
    if is_openai(path):
        data: Any = {"error": {
            "message": message,
            "type": _OPENAI_TYPE.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "code": error_type.lower(), "param": param,
        }}
    else:
        data = {"error": message, "error_type": error_type}
    return json.dumps(data).encode()


def endpoint(fn: Any) -> Any:
    """``fn`` (a Starlette endpoint) with its errors answered as error replies:

    `HttpError` as it says; a full queue 429 ``Overloaded``; a bad argument (`ConfigError`,
    `DataError`, a model or dimension mismatch) 422; a store failure, or the model failing on an
    input, 424 ``Backend``. The full error goes to the log; the reply has no paths in it.
    """
    import logging

    from starlette.responses import Response

    from tamis._errors import (
        ConfigError,
        DataError,
        DimensionMismatchError,
        ModelMismatchError,
        StoreError,
        TamisError,
    )
    from tamis.serving._batching import QueueFullError

    logger = logging.getLogger("tamis.serve")

    def reply(request: Any, status: int, message: str, error_type: str, param: str | None = None) -> Response:
        return Response(error_body(request.url.path, status, message, error_type, param), status_code=status,
                        media_type="application/json")

    async def wrapped(request: Any) -> Response:
        try:
            return await fn(request)
        except HttpError as exc:
            return reply(request, exc.status, str(exc), exc.error_type, exc.param)
        except QueueFullError as exc:
            return reply(request, 429, f"Model is overloaded: {exc}", "Overloaded")
        except (ConfigError, DataError, ModelMismatchError, DimensionMismatchError) as exc:
            return reply(request, 422, f"{type(exc).__name__}: {exc}", "Validation")
        except StoreError as exc:
            logger.error("store failure on %s: %s", request.url.path, exc)
            return reply(request, 424, f"the vector store failed ({type(exc).__name__}: {exc})", "Backend")
        except TamisError as exc:
            logger.error("failure on %s: %s", request.url.path, exc)
            return reply(request, 424, f"{type(exc).__name__}: {exc}", "Backend")
        except Exception as exc:
            logger.exception("the model failed on a request to %s", request.url.path)
            return reply(request, 424, f"the model failed on this input ({type(exc).__name__})", "Backend")
    return wrapped
