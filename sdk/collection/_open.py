"""Opening the vector store behind a collection from ``open_collection``'s arguments.

Qdrant Edge in-process by default, qdrant-client for ``url=`` (a server or the cloud),
``location=":memory:"`` or ``store="qdrant", path=`` (its local mode), or any store registered
under ``tamis.stores`` by name.
"""

from __future__ import annotations

import os

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

    Raises:
        ConfigError: conflicting arguments, or no store of that name.

    Example:
        >>> st, owned = open_store(path="./data")       # doctest: +SKIP
        >>> st.list_collections()                       # doctest: +SKIP
    """
    from tamis import registry

    if store is not None and not isinstance(store, str):
        if any(v is not None for v in (path, url, api_key, location)):
            raise ConfigError("pass either store=<a store object> or path/url/api_key/location, not both")
        return store, False
    if url is not None and location is not None:
        raise ConfigError(f"pass url= or location=, not both (got url={url!r}, location={location!r})")
    kind = store or ("qdrant" if (url is not None or location is not None or api_key is not None) else "edge")
    cls = registry.load(registry.STORES, kind)
    if kind == "edge":
        if url is not None or location is not None or api_key is not None:
            raise ConfigError("the edge store is embedded: url=, location= and api_key= are for store='qdrant'")
        return cls(tamis_home(path)), True
    if kind == "qdrant":
        if path is not None and (url is not None or location is not None):
            raise ConfigError("store='qdrant' takes one of url=, location= or path=")
        return cls(location=location, url=url, api_key=api_key, path=None if path is None else os.fspath(path)), True
    return cls(**{k: v for k, v in dict(path=path, url=url, api_key=api_key, location=location).items() if v is not None}), True
