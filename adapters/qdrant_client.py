"""`QdrantClientStore`: tamis collections on a Qdrant server / cloud, or in qdrant-client's local mode.

Behaviour of qdrant-client 1.20 this module relies on:

* **Metadata** lives in Qdrant's own collection metadata under the key ``"tamis"``.
  ``update_collection(metadata=...)`` merges *top-level* keys, so `set_metadata` replaces the
  whole ``"tamis"`` value in one call and keys of other applications are left alone.
* **Aliases** are Qdrant's own. Local mode (``":memory:"`` and ``path=``) supports them too —
  ``update_collection_aliases`` applies a list of operations all-or-nothing and persists them
  in ``meta.json`` — so nothing is emulated: switching an alias is one call with a delete and a
  create operation. Local mode silently ignores ``delete_collection(<alias>)``; this store
  refuses it instead (`ConfigError`), like `EdgeStore`.
* **Local mode** searches by brute force (exact) and warns (``UserWarning``) when it is given
  ``search_params``, so they are sent only to a server. It commits each point of an upsert as its
  own SQLite transaction: unlike Edge or a server, an upsert interrupted by a crash may be
  partly applied (re-running an idempotent ingest repairs it). It is not safe for concurrent use,
  so every call on a local-mode client holds one lock. A ``path=`` folder can be open in one
  client at a time. It warns above 20 000 points per collection: use Edge or a server.
* **UUID spellings.** Local mode once stored each spelling of a UUID as a distinct point; ids are
  canonicalised here before they reach the client.
* **Query dimensions.** A server names both sizes of a wrong-sized query itself; local mode
  answers it with a numpy error, so queries are checked here in local mode only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from tamis._errors import CollectionExistsError, CollectionNotFoundError, ConfigError, StoreError
from tamis.adapters._qdrant_connect import (
    alias_operations,
    connect,
    is_conflict,
    mapping_filter,
    store_error,
    write_ordering_of,
)
from tamis.adapters._qdrant_hybrid import QdrantHybrid, hybrid_batch, sparse_config
from tamis.adapters._qdrant_retry import RetryPolicy, retrying
from tamis.adapters._qdrant_settings import create_arguments, payload_indexes, search_params
from tamis.stores import (
    DEFAULT_HNSW_EF_CONSTRUCT,
    DEFAULT_HNSW_M,
    BaseStore,
    CollectionSettings,
    Record,
    ScoredPoint,
    SearchParams,
    check_hnsw,
    json_copy,
    to_record,
    to_scored,
)

__all__ = ["QdrantClientStore"]

logger = logging.getLogger(__name__)

METADATA_KEY = "tamis"


class QdrantClientStore(QdrantHybrid, BaseStore):
    """tamis collections through ``qdrant-client``: a server, Qdrant Cloud, or the client's local mode.

    Args:
        location: ``":memory:"`` for an in-process throw-away store, or a server URL.
        url: a Qdrant server URL, e.g. ``"http://localhost:6333"`` or a cloud cluster URL.
        api_key: the server's API key (never logged nor shown in ``repr``).
        path: a folder for local mode (brute-force search, persisted in SQLite).
        prefer_grpc: talk gRPC to the server instead of REST.
        timeout: request timeout in seconds for a server.
        client: an existing ``QdrantClient`` to use instead (then give none of the above);
            it is not closed by `close`.
        hnsw_m: HNSW edges per node for new collections (servers only; local mode is exact).
        hnsw_ef_construct: HNSW build-time candidate list size for new collections.
        retries: retries of a call that fails transiently on a server (an int, or a `RetryPolicy`;
            default 4 with exponential backoff and jitter; see `tamis.adapters._qdrant_retry`).
        write_ordering: ``"weak"`` (default), ``"medium"`` or ``"strong"``: the ordering of writes
            across a server's replicas.
        **client_kwargs: passed to ``QdrantClient`` (``port``, ``https``, ``headers``, ``grpc_options``;
            for TLS, an https URL and the httpx options such as ``verify="ca.pem"`` / ``cert=``).

    Example:
        >>> store = QdrantClientStore(url="https://xyz.cloud.qdrant.io", api_key=key)  # doctest: +SKIP
        >>> store = QdrantClientStore(":memory:")
        >>> store.list_collections()
        []
        >>> store.close()
    """

    kind = "qdrant"
    native_filter_type = models.Filter
    native_filter_name = "qdrant_client.models.Filter"

    def __init__(
        self,
        location: str | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        path: str | os.PathLike[str] | None = None,
        prefer_grpc: bool = False,
        timeout: int | None = None,
        client: QdrantClient | None = None,
        hnsw_m: int = DEFAULT_HNSW_M,
        hnsw_ef_construct: int = DEFAULT_HNSW_EF_CONSTRUCT,
        retries: RetryPolicy | int | None = None,
        write_ordering: str | None = None,
        **client_kwargs: Any,
    ) -> None:
        check_hnsw(hnsw_m, hnsw_ef_construct)
        self._hnsw = {"hnsw_m": hnsw_m, "hnsw_ef_construct": hnsw_ef_construct}
        self._retry, self._ordering = RetryPolicy.of(retries), write_ordering_of(write_ordering)
        conn = connect(
            location,
            url=url,
            api_key=api_key,
            path=path,
            prefer_grpc=prefer_grpc,
            timeout=timeout,
            client=client,
            client_kwargs=client_kwargs,
        )
        self._client, self._owns_client, self._local, self._where = (
            conn.client,
            conn.owned,
            conn.local,
            conn.where,
        )
        # local mode is not thread-safe; a server client is
        self._guard = threading.RLock() if self._local else contextlib.nullcontext()
        self._closed = False
        logger.debug("opened %r", self)

    def __repr__(self) -> str:
        return f"QdrantClientStore({self._where!r})"

    @property
    def client(self) -> QdrantClient:
        """The underlying ``QdrantClient`` (for what the `VectorStore` protocol does not cover)."""
        return self._client

    # -- internals ---------------------------------------------------------------------------
    def _call(self, op: str, name: str | None, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one client call under the local-mode lock and translate its errors."""
        if self._closed:
            raise StoreError(f"{self!r} is closed; create a new QdrantClientStore to keep working")
        try:
            if self._local:
                with self._guard:
                    return fn(*args, **kwargs)
            return retrying(self._retry, f"{op} {name or ''}".strip(), lambda: fn(*args, **kwargs))
        except Exception as exc:
            raise store_error(exc, op, name, self._where) from exc

    def _mapping_filter(self, conditions: list[tuple[str, str, Any]]) -> models.Filter:
        return mapping_filter(conditions)

    def _params(self, params: SearchParams) -> models.SearchParams | None:
        if self._local:  # exact anyway; search_params would only trigger a warning
            return None
        return search_params(params)

    def _collection(self, name: str) -> Any:
        return self._call("read collection", name, self._client.get_collection, name)

    # -- collections -------------------------------------------------------------------------
    def list_collections(self) -> list[str]:
        """Names of the physical collections (aliases not included), sorted."""
        response = self._call("list collections", None, self._client.get_collections)
        return sorted(c.name for c in response.collections)

    def _collection_exists(self, name: str) -> bool:
        if self._call("check", name, self._client.collection_exists, name):
            return True
        return self._resolve_alias(name) is not None

    def _create_collection(
        self, name: str, dim: int, distance: str, metadata: dict[str, Any], sparse: bool = False, *,
        settings: CollectionSettings,
    ) -> None:
        """With ``settings`` (`tamis.adapters._qdrant_settings`) and its payload indexes (not in local mode)."""
        if self._collection_exists(name):
            raise CollectionExistsError(
                f"collection or alias {name!r} exists already in Qdrant at {self._where!r}; open it, "
                f"pick another name, or delete_collection({name!r}) first"
            )
        try:
            self._call(
                "create collection",
                None,
                self._client.create_collection,
                name,
                **create_arguments(dim, distance, settings, **self._hnsw),
                sparse_vectors_config=sparse_config() if sparse else None,
                metadata={METADATA_KEY: metadata},
            )
        except StoreError as exc:
            if exc.__cause__ is not None and is_conflict(exc.__cause__):
                # a retried creation whose first attempt reached the server finds its own metadata
                if self._get_metadata(name) != metadata:
                    raise CollectionExistsError(f"collection {name!r} was just created by someone else") from exc
            else:
                raise
        for field, schema in [] if self._local else payload_indexes(settings):
            self._call(
                "index payload of", name, self._client.create_payload_index, name, field, schema, wait=True,
                ordering=self._ordering,
            )

    def _delete_collection(self, name: str) -> None:
        """Qdrant drops the collection's aliases itself."""
        target = self._resolve_alias(name)
        if target is not None:
            raise ConfigError(
                f"{name!r} is an alias of {target!r}, not a collection; use delete_alias({name!r}), "
                f"or delete_collection({target!r}) to delete the collection itself"
            )
        self._call("delete collection", None, self._client.delete_collection, name)

    def _get_metadata(self, name: str) -> dict[str, Any]:
        """``{}`` for a collection not made by tamis."""
        meta = self._collection(name).config.metadata or {}
        return json_copy(meta.get(METADATA_KEY) or {}, "metadata")

    def _set_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        """One request, replacing the ``"tamis"`` key only."""
        self._call(
            "update metadata of",
            name,
            self._client.update_collection,
            name,
            metadata={METADATA_KEY: metadata},
        )

    def _collection_dim(self, name: str) -> int:
        vectors = self._collection(name).config.params.vectors
        if isinstance(vectors, dict) and list(vectors) == [""]:  # langchain-qdrant's: the default vector, named
            vectors = vectors[""]
        if not isinstance(vectors, models.VectorParams):
            raise ConfigError(
                f"collection {name!r} uses named vectors ({sorted(vectors or {})}); tamis collections have one "
                f"unnamed vector: create the collection with tamis"
            )
        return int(vectors.size)

    # -- aliases -------------------------------------------------------------------------------
    def _set_alias(self, alias: str, target: str) -> None:
        """An existing alias is switched atomically (one request)."""
        collections = self.list_collections()
        if target not in collections:
            raise CollectionNotFoundError(
                f"cannot point alias {alias!r} at {target!r}: no collection of that name in Qdrant at "
                f"{self._where!r} (an alias must point at a collection, not at another alias)"
            )
        if alias in collections:
            raise ConfigError(
                f"cannot create alias {alias!r}: a collection of that name exists; pick another alias name"
            )
        ops = alias_operations(alias, target, replace=self._resolve_alias(alias) is not None)
        self._call("set alias", alias, self._client.update_collection_aliases, change_aliases_operations=ops)

    def _resolve_alias(self, alias: str) -> str | None:
        response = self._call("list aliases", None, self._client.get_aliases)
        return next((a.collection_name for a in response.aliases if a.alias_name == alias), None)

    def _delete_alias(self, alias: str) -> None:
        if self._resolve_alias(alias) is None:
            return
        ops = alias_operations(alias, None, replace=True)
        self._call("delete alias", alias, self._client.update_collection_aliases, change_aliases_operations=ops)

    # -- points --------------------------------------------------------------------------------
    def _point_dim(self, name: str) -> tuple[str, int]:
        return name, self._collection_dim(name)

    def _query_dim(self, name: str) -> tuple[str, int | None]:
        return self._point_dim(name) if self._local else (name, None)

    def _upsert(
        self, target: str, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]],
        sparse: list[Any] | None = None,
    ) -> None:
        """One request (``wait=True``): one write on a server; local mode commits each point separately."""
        batch: Any = hybrid_batch(ids, vectors, payloads, sparse) if sparse is not None else models.Batch(
            ids=ids, vectors=vectors.tolist(), payloads=payloads
        )
        self._call(
            "upsert into", target, self._client.upsert, target, points=batch, wait=True, ordering=self._ordering
        )

    def _retrieve(self, name: str, ids: list[str], *, with_payload: bool, with_vectors: bool) -> list[Record]:
        found = self._call(
            "retrieve from",
            name,
            self._client.retrieve,
            name,
            ids=ids,
            with_payload=with_payload,
            with_vectors=with_vectors,
        )
        return [to_record(r, with_vectors) for r in found]

    def _delete_points(self, name: str, ids: list[str]) -> None:
        selector = models.PointIdsList(points=ids)
        self._call(
            "delete points from", name, self._client.delete, name, points_selector=selector, wait=True,
            ordering=self._ordering,
        )

    def _count(self, name: str, filter: Any) -> int:
        result = self._call("count", name, self._client.count, name, count_filter=filter, exact=True)
        return int(result.count)

    def _scroller(
        self, name: str, filter: Any, batch_size: int, *, with_payload: bool, with_vectors: bool
    ) -> Any:
        self._collection(name)  # fail now, not at the first next()

        def fetch(offset: Any) -> tuple[list[Record], Any]:
            records, offset = self._call(
                "scroll",
                name,
                self._client.scroll,
                name,
                scroll_filter=filter,
                limit=batch_size,
                offset=offset,
                with_payload=with_payload,
                with_vectors=with_vectors,
            )
            return [to_record(r, with_vectors) for r in records], offset

        return fetch

    def _search(
        self,
        target: str,
        query: np.ndarray,
        *,
        k: int,
        score_threshold: float | None,
        filter: Any,
        params: SearchParams,
        with_payload: bool,
        offset: int,
    ) -> list[ScoredPoint]:
        response = self._call(
            "search", target, self._client.query_points, target, query=query.tolist(), limit=k,
            offset=offset or None, query_filter=filter, search_params=self._params(params),
            score_threshold=score_threshold, with_payload=with_payload,
        )
        return to_scored(response.points)

    def _search_batch(
        self,
        target: str,
        queries: np.ndarray,
        *,
        k: int,
        score_thresholds: list[float | None],
        filter: Any,
        params: SearchParams,
        with_payload: bool,
    ) -> list[list[ScoredPoint]]:
        """One request."""
        qparams = self._params(params)
        requests = [
            models.QueryRequest(
                query=q.tolist(), limit=k, filter=filter, params=qparams, score_threshold=t, with_payload=with_payload
            )
            for q, t in zip(queries, score_thresholds, strict=True)
        ]
        responses = self._call("search", target, self._client.query_batch_points, target, requests=requests)
        return [to_scored(r.points) for r in responses]

    # -- maintenance ---------------------------------------------------------------------------
    def _flush(self, name: str) -> None:
        """No-op: a server has written an upsert made with ``wait=True``; local mode commits per point."""

    def _optimize(self, name: str) -> None:
        """No-op: a server builds HNSW in the background on its own; local mode has no index."""

    def close(self) -> None:
        """Close the client (unless it was passed in with ``client=``). The store cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            with self._guard:
                self._client.close()
