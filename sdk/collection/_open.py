"""Opening the vector store behind a collection from ``open_collection``'s arguments.

Qdrant Edge in-process by default, qdrant-client for ``url=`` (a server or the cloud),
``location=":memory:"`` or ``store="qdrant", path=`` (its local mode), or any store registered
under ``tamis.stores`` by name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tamis._errors import ConfigError
from tamis._settings import tamis_home
from tamis.stores import VectorStore

__all__ = ["open_store"]


def open_store(
    store: VectorStore | str | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    url: str | None = None,
    api_key: str | None = None,
    location: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> tuple[VectorStore, bool]:
    """(store, owned): the store the arguments name, built here (owned: close it after use), or the one given.

    Args:
        store: a store object (returned as is, not owned), or the name of a registered store
            (``"edge"``, ``"qdrant"``); default: ``"qdrant"`` when ``url``/``location``/``api_key``
            is given, else ``"edge"``.
        path: data directory of the embedded Edge store (default ``$TAMIS_HOME`` or ``~/.tamis``);
            with ``store="qdrant"``, the folder of qdrant-client's local mode.
        url, api_key: a Qdrant server or cloud cluster.
        location: ``":memory:"`` for qdrant-client's in-memory local mode.
        options: more keyword arguments for the store, e.g. ``prefer_grpc``, ``timeout``,
            ``retries``, ``write_ordering`` and TLS options (``verify``, ``cert``) for a server.

    Raises:
        ConfigError: conflicting arguments, or no store of that name.

    Example:
        >>> st, owned = open_store(path="./data")       # doctest: +SKIP
        >>> st.list_collections()                       # doctest: +SKIP
    """
    from tamis import registry

    extra = dict(options or {})
    if store is not None and not isinstance(store, str):
        if any(v is not None for v in (path, url, api_key, location)) or extra:
            raise ConfigError("pass either store=<a store object> or path/url/api_key/location, not both")
        return store, False
    if url is not None and location is not None:
        raise ConfigError(f"pass url= or location=, not both (got url={url!r}, location={location!r})")
    kind = store or ("qdrant" if (url is not None or location is not None or api_key is not None) else "edge")
    cls = registry.load(registry.STORES, kind)
    if kind == "edge":
        if url is not None or location is not None or api_key is not None:
            raise ConfigError("the edge store is embedded: url=, location= and api_key= are for store='qdrant'")
        home = tamis_home(path)
        _check_folder(home, "edge")
        return cls(home, **extra), True
    if kind == "qdrant":
        if path is not None and (url is not None or location is not None):
            raise ConfigError("store='qdrant' takes one of url=, location= or path=")
        if path is not None:
            _check_folder(Path(path), "qdrant")
        return cls(location=location, url=url, api_key=api_key, path=None if path is None else os.fspath(path), **extra), True
    given = dict(path=path, url=url, api_key=api_key, location=location)
    return cls(**{k: v for k, v in given.items() if v is not None}, **extra), True


def _check_folder(path: Path, kind: str) -> None:
    """`ConfigError` when ``path`` holds the other built-in store's data (``path=`` means Edge to tamis,
    local mode to qdrant-client: the same folder must not be read as both)."""
    path = Path(path).expanduser()
    edge = (path / "aliases.json").exists() or (path / "collections").is_dir()
    local = (path / "meta.json").exists()
    if kind == "edge" and local and not edge:
        raise ConfigError(
            f"{str(path)!r} holds qdrant-client local-mode data (meta.json, collection/), not Qdrant Edge's: "
            f"open it with store='qdrant', path={str(path)!r} (CLI: --store qdrant --path ...)"
        )
    if kind == "qdrant" and edge and not local:
        raise ConfigError(
            f"{str(path)!r} holds tamis's embedded Qdrant Edge data (collections/, aliases.json), not "
            f"qdrant-client local mode's: open it with store='edge', path={str(path)!r} (the default store)"
        )
