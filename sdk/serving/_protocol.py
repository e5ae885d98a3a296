"""uvicorn's h11 protocol with a header read timeout, which uvicorn lacks.

What uvicorn offers, and `tamis serve` uses: ``limit_concurrency`` (connections + tasks; over it a
request gets 503), ``timeout_keep_alive`` (an idle keep-alive connection is closed after a
response), ``h11_max_incomplete_event_size`` (headers over it get 400). What it lacks: a bound on
how long a client may take to send its request headers. A connection that sends half a request
line, or nothing at all, is held forever; a few thousand of them exhaust the server (slowloris).
`_TimedH11Protocol` closes any connection whose headers are not complete ``header_timeout_s``
after it opened (or after its previous response). The body has its own timeout in the app's guard
(`tamis.serving._guard`, 408), which sees each request after its headers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["timed_protocol"]

logger = logging.getLogger("tamis.serve")


class _TimedH11Protocol(H11Protocol):
    header_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # the next request on a keep-alive connection starts arriving
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before:  # its headers are complete: the app has the request
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            logger.info("closed a connection from %s: no complete request headers within %g s",
                        self.client, self.header_timeout_s)
            self.transport.close()


def timed_protocol(header_timeout_s: float) -> Any:
    """The h11 protocol class of uvicorn with a header read timeout of ``header_timeout_s``."""
    return type("TamisH11Protocol", (_TimedH11Protocol,), {"header_timeout_s": float(header_timeout_s)})
