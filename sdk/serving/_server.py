"""Running `tamis serve`'s app with uvicorn: in the foreground (`run`) or in a background thread (`ServerThread`).

Both use `server_config`: uvicorn's h11 protocol with a header read timeout
(`tamis.serving._protocol`), a bound on open connections (uvicorn's ``limit_concurrency``: over it
a request gets 503), the keep-alive timeout, and uvicorn's header size limit.
"""

from __future__ import annotations

import logging
from typing import Any

from tamis._errors import ConfigError

__all__ = ["ServerThread", "run", "server_config"]

logger = logging.getLogger("tamis.serve")

DEFAULT_MAX_CONNECTIONS = 2048
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_KEEP_ALIVE_S = 5.0
MAX_HEADER_BYTES = 16_384


def _require_serve_extra() -> None:
    try:
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"tamis serve needs starlette, uvicorn and prometheus-client ({exc.name} is missing); "
            'install them with `pip install "tamis[serve]"`'
        ) from exc


def server_config(
    app: Any, *, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info",
    max_connections: int = DEFAULT_MAX_CONNECTIONS, header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
    keep_alive_s: float = DEFAULT_KEEP_ALIVE_S, **options: Any,
) -> Any:
    """The ``uvicorn.Config`` tamis serves ``app`` with (``options`` go to it as well)."""
    _require_serve_extra()
    import uvicorn

    from tamis.serving._protocol import timed_protocol

    if max_connections < 1 or not header_timeout_s > 0 or not keep_alive_s > 0:
        raise ConfigError("max_connections, header_timeout_s and keep_alive_s must be positive, got "
                          f"{max_connections}, {header_timeout_s}, {keep_alive_s}")
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, http=timed_protocol(header_timeout_s),
        limit_concurrency=max_connections, timeout_keep_alive=int(max(1, keep_alive_s)),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES, **options,
    )


def run(app: Any, *, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info", **limits: Any) -> None:
    """Serve ``app`` with uvicorn until interrupted (``limits``: see `server_config`)."""
    _require_serve_extra()
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("binding %s: the server is reachable from other machines; set an API key (--api-key)", host)
    uvicorn.Server(server_config(app, host=host, port=port, log_level=log_level, **limits)).run()


class ServerThread:
    """Run an ASGI app with uvicorn in a background thread (tests, notebooks, benchmarks).

    Example:
        >>> with ServerThread(create_app(FakeEncoder())) as url:   # doctest: +SKIP
        ...     RemoteEncoder(url).encode(["hi"])
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                 **limits: Any) -> None:
        _require_serve_extra()
        import socket

        import uvicorn

        # proto IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets that
        # say they are TCP; with it on, each response waits ~40 ms for the client's delayed ACK
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                                   socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = host, int(self._sock.getsockname()[1])
        self.url = f"http://{host}:{self.port}"
        # log_config=None: leave the host program's logging alone (records propagate to its handlers)
        config = server_config(app, log_level=log_level, log_config=None, lifespan="off", timeout_graceful_shutdown=2,
                               **limits)
        self._server = uvicorn.Server(config)
        self._thread: Any = None

    def start(self) -> str:
        import threading
        import time

        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="tamis-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on {self.url}")
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
