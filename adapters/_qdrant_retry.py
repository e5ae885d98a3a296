"""Retries with exponential backoff and full jitter for `QdrantClientStore`'s calls to a server.

What is retried: every call the store makes (reads and writes), when the server or the network fails
in a way that may pass — HTTP 429 (honouring ``Retry-After``), 502, 503, 504, timeouts, refused or
reset connections, and the gRPC codes UNAVAILABLE, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED. Writes
are safe to repeat: tamis point ids are deterministic (an upsert lands on the same points) and
deletes / alias switches / metadata updates set a state rather than add to one; a collection
creation whose first attempt did reach the server is recognised by the store (same metadata).
What is not retried: any other 4xx (a wrong request stays wrong), and local mode (no network).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tamis._errors import ConfigError

__all__ = ["RetryPolicy", "is_transient", "retrying"]

logger = logging.getLogger("tamis")

T = TypeVar("T")

#: HTTP statuses worth another attempt
TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
_TRANSIENT_GRPC = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, and how long to wait between them.

    Attempt ``n`` (from 1) waits a random time in ``[0, min(max_backoff, backoff * 2**(n-1))]``
    (full jitter) before the next, or the server's ``Retry-After`` when it sends one (capped).

    Attributes:
        attempts: total attempts (1 = no retry).
        backoff: the first wait's upper bound, in seconds.
        max_backoff: the largest wait, in seconds.
    """

    attempts: int = 5
    backoff: float = 0.25
    max_backoff: float = 8.0

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ConfigError(f"retry attempts must be an integer >= 1, got {self.attempts!r}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ConfigError(f"retry backoff must be >= 0 seconds, got {self.backoff!r} / {self.max_backoff!r}")

    @classmethod
    def of(cls, value: RetryPolicy | int | None) -> RetryPolicy:
        """``retries=N`` means N retries after the first attempt; None: the default policy."""
        if value is None:
            return cls()
        if isinstance(value, RetryPolicy):
            return value
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"retries must be a RetryPolicy or an integer >= 0, got {value!r}")
        return cls(attempts=value + 1)

    def wait(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to sleep after failed attempt ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        return random.uniform(0.0, min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))


def _retry_after(exc: BaseException) -> float | None:
    seconds = getattr(exc, "retry_after_s", None)  # qdrant-client's ResourceExhaustedResponse
    if seconds is None:
        headers = getattr(exc, "headers", None)
        seconds = headers.get("retry-after") if headers is not None else None
    with contextlib.suppress(TypeError, ValueError):
        return None if seconds is None else float(seconds)
    return None


def is_transient(exc: BaseException) -> bool:
    """True for a failure that another attempt may not meet (see the module docstring)."""
    import httpx

    if type(exc).__name__ == "ResourceExhaustedResponse":
        return True
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status in TRANSIENT_STATUS
    source = getattr(exc, "source", None)  # ResponseHandlingException wraps the httpx error
    if isinstance(source, BaseException) and source is not exc:
        return is_transient(source)
    if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError)):
        return True
    code = getattr(exc, "code", None)  # grpc.RpcError
    if callable(code):
        with contextlib.suppress(Exception):
            return getattr(code(), "name", "") in _TRANSIENT_GRPC
    return False


def retrying(policy: RetryPolicy, what: str, fn: Callable[[], T], *, sleep: Callable[[float], Any] = time.sleep) -> T:
    """``fn()``, attempted up to ``policy.attempts`` times while it fails transiently."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == policy.attempts or not is_transient(exc):
                raise
            delay = policy.wait(attempt, _retry_after(exc))
            logger.warning(
                "Qdrant: %s failed (%s: %s); attempt %d of %d in %.2fs",
                what, type(exc).__name__, str(exc).splitlines()[0][:200], attempt + 1, policy.attempts, delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
