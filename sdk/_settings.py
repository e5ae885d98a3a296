"""Where tamis keeps its files, and other process-wide defaults read from the environment."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["tamis_home", "cache_dir"]


def tamis_home(path: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``path`` if given, else ``$TAMIS_HOME``, else ``~/.tamis``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("TAMIS_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".tamis"


def cache_dir() -> Path:
    """Derived artefacts (ONNX exports ...): ``$TAMIS_CACHE`` or ``<tamis_home>/cache``."""
    env = os.environ.get("TAMIS_CACHE")
    return Path(env).expanduser() if env else tamis_home() / "cache"
