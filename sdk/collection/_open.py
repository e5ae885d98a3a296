"""`open_collection`, and opening the vector store behind a collection from its arguments (`open_store`).

Qdrant Edge in-process by default, qdrant-client for ``url=`` (a server or the cloud),
``location=":memory:"`` or ``store="qdrant", path=`` (its local mode), or any store registered
under ``tamis.stores`` by name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tamis._errors import CollectionNotFoundError, ConfigError
from tamis._settings import tamis_home
from tamis.collection import _versions
from tamis.collection._collection import Collection
from tamis.collection._configure import check_requested
from tamis.encoders import Encoder, load_encoder
from tamis.stores import CollectionSettings, VectorStore

__all__ = ["check_collection_name", "open_collection", "open_store"]


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


def open_collection(
    name: str,
    *,
    path: str | os.PathLike[str] | None = None,
    url: str | None = None,
    api_key: str | None = None,
    location: str | None = None,
    store: VectorStore | str | None = None,
    model: str | os.PathLike[str] | None = None,
    encoder: Encoder | None = None,
    encoder_url: str | None = None,
    encoder_api_key: str | None = None,
    encoder_options: Mapping[str, Any] | None = None,
    backend: str = "auto",
    device: str = "auto",
    create: bool = False,
    server: str | None = None,
    hybrid: bool = False,
    settings: CollectionSettings | Mapping[str, Any] | None = None,
    store_options: Mapping[str, Any] | None = None,
) -> Collection:
    """Open (or, with ``create=True``, prepare) the collection ``name``.

    Args:
        name: the collection's name (or an alias of it).
        path, url, api_key, location, store: where the collection lives (see `open_store`):
            the embedded Edge store in ``path`` by default, a Qdrant server or cloud with ``url=``.
        model: model name or folder; default: the collection's own model, or all-MiniLM-L6-v2 for a new one.
        encoder: an encoder object instead of ``model``.
        encoder_url, encoder_api_key: embed with an inference server instead (TEI, OpenAI-compatible,
            ``tamis serve``; see `tamis.adapters.remote.RemoteEncoder`).
        encoder_options: more options of the remote encoder (``timeout``, ``deadline``, ``max_retries`` ...).
        backend, device: how to run the model (see `tamis.load_encoder`).
        create: make the collection on the first `Collection.index` if it does not exist: the
            Qdrant collection ``<name>__v1`` behind the alias ``name`` (see `Collection.reindex`).
        server: the URL of a ``tamis serve -c NAME`` that serves the collection: returns a
            `tamis.collection.RemoteCollection` (the same search API, over HTTP), the way for several
            processes to share one embedded collection; ``api_key`` is then the server's key.
        hybrid: a new collection stores each chunk's BM25 sparse vector too, for ``mode="sparse"`` and
            ``"hybrid"`` searches (an existing dense one is upgraded by ``reindex(hybrid=True)``).
        settings: `tamis.stores.CollectionSettings` (or a mapping of them) for the collection the first
            `index` creates: quantization, payload indexes, on_disk, shards...; stored in the manifest
            and carried across `Collection.reindex`.
        store_options: passed to the store (`open_store`), e.g. ``{"prefer_grpc": True, "timeout": 30,
            "retries": 8, "verify": "ca.pem"}`` for a server.

    Raises:
        CollectionNotFoundError: no such collection and ``create`` is false.
        ModelMismatchError: ``model``/``encoder`` is not the model the collection was indexed with.

    Example:
        >>> col = open_collection("docs", create=True)         # doctest: +SKIP
        >>> col.index(load_beir("scifact"))                    # doctest: +SKIP
        >>> col.search("do statins reduce mortality?", k=3)     # doctest: +SKIP
    """
    if server is not None:
        from tamis.collection._remote import RemoteCollection

        given = [n for n, v in dict(path=path, url=url, location=location, store=store, model=model, encoder=encoder,
                                    encoder_url=encoder_url, encoder_api_key=encoder_api_key).items() if v is not None]
        if given or create:
            raise ConfigError(f"server= opens a collection served by tamis serve; {', '.join(given) or 'create'} "
                              "belong(s) to the serving process")
        return RemoteCollection(name, server, api_key=api_key)  # type: ignore[return-value]
    if sum(x is not None for x in (model, encoder, encoder_url)) > 1:
        raise ConfigError("pass model= or encoder= or encoder_url=, not several")
    if encoder_api_key is not None and encoder_url is None:
        raise ConfigError("encoder_api_key= goes with encoder_url=")
    if encoder_options is not None and encoder_url is None:
        raise ConfigError("encoder_options= goes with encoder_url=")
    if encoder_url is not None:
        encoder = load_encoder(encoder_url, api_key=encoder_api_key, **dict(encoder_options or {}))
    check_collection_name(name)
    requested = None if settings is None else CollectionSettings.of(settings)
    st, owned = open_store(store, path=path, url=url, api_key=api_key, location=location, options=store_options)
    try:
        physical, manifest = _versions.resolve(st, name)
        if physical is None and not create:
            names = [n for n, _ in _versions.list_collections(st)]
            raise CollectionNotFoundError(
                f"no collection {name!r} in the {st.kind} store (collections: {', '.join(names) or 'none'}); "
                "index one first with `tamis index DATA --collection NAME`, or pass create=True"
            )
        col = Collection(
            name, st, physical=physical or _versions.version_name(name, 1),
            manifest=dict(manifest) if manifest else None, owns_store=owned,
            model=model, encoder=encoder, backend=backend, device=device,
        )
        # a new collection is version 1 behind the alias `name` from the start, so that every
        # re-index is a pure alias switch; `index` creates both
        col._link_alias = physical is None
        col._hybrid_new = bool(hybrid)
        if hybrid and manifest is not None and not manifest.get("sparse"):
            raise ConfigError(
                f"collection {name!r} exists and is dense-only; upgrade it with Collection.reindex(hybrid=True) "
                f"(`tamis reindex {name} --hybrid`)"
            )
        if manifest is not None:
            check_requested(name, manifest, requested)
        col._settings = requested
        if manifest is not None and (model is not None or encoder is not None):
            col._check_encoder(col.encoder)
        return col
    except BaseException:
        if owned:
            st.close()
        raise


#: the longest collection name: the store's limit (255) less what tamis adds (``__v<N>``, temporary folders)
MAX_NAME_LENGTH = 200


def check_collection_name(name: Any) -> None:
    """`ConfigError` for a name tamis cannot keep: empty, too long, or one of its own version names."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"collection name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(
            f"collection name of {len(name)} characters ({name[:20]}...): at most {MAX_NAME_LENGTH}, since tamis "
            "stores version <name>__v<N> of it and a store name has at most 255; pick a shorter name"
        )
    version = _versions.parse_version(name)
    if version is not None:
        raise ConfigError(
            f"collection name {name!r} looks like version {version[1]} of collection {version[0]!r} (tamis names "
            f"the versions of a collection <name>{_versions.VERSION_SEP}<N>); open {version[0]!r}, or pick a name "
            f"without {_versions.VERSION_SEP}<digits> at its end"
        )
