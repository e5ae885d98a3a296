"""The ``tamis`` command line: a thin layer over the SDK (typer + rich)."""

from tamis.cli._app import app, main

__all__ = ["app", "main"]
