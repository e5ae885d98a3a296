"""The ``tamis`` command line: a thin layer over the SDK (typer + rich).

`app` is the typer app; each command group's module registers its commands on it when imported here,
in the order ``tamis --help`` lists them.
"""

from tamis.cli import _collections, _calibrate, _train, _demo, _serve, _qdrant  # noqa: F401, I001  (registers the commands)
from tamis.cli._app import app, main

__all__ = ["app", "main"]
