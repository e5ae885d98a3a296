"""Running `tamis serve`'s app with uvicorn: in the foreground (`run`) or in a background thread (`ServerThread`)."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["ServerThread", "run"]

logger = logging.getLogger("tamis.serve")


def _require_serve_extra() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"tamis serve needs starlette and uvicorn ({exc.name} is missing); "
            'install them with `pip install "tamis[serve]"`'
        ) from exc


def run(app: Any, *, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info") -> None:
    """Serve ``app`` with uvicorn until interrupted."""
    _require_serve_extra()
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("binding %s: the server is reachable from other machines; set an API key (--api-key)", host)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


class ServerThread:
    """Run an ASGI app with uvicorn in a background thread (tests, notebooks, benchmarks).

    Example:
        >>> with ServerThread(create_app(FakeEncoder())) as url:   # doctest: +SKIP
        ...     RemoteEncoder(url).encode(["hi"])
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        _require_serve_extra()
        import socket

        import uvicorn

        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = host, int(self._sock.getsockname()[1])
        self.url = f"http://{host}:{self.port}"
        # log_config=None: leave the host program's logging alone (records propagate to its handlers)
        config = uvicorn.Config(app, log_level=log_level, log_config=None, lifespan="off", timeout_graceful_shutdown=2)
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
