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
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from tamis._errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    ConfigError,
    DimensionMismatchError,
    StoreError,
)
from tamis.adapters.qdrant_edge import (
    DEFAULT_HNSW_EF,
    DEFAULT_HNSW_EF_CONSTRUCT,
    DEFAULT_HNSW_M,
    batch_thresholds,
    canonical_id,
    check_dim,
    check_distance,
    check_name,
    check_search_args,
    json_copy,
    mapping_conditions,
    single_vector,
    vector_matrix,
)
from tamis.stores import Record, ScoredPoint, SearchParams, StorePoint

__all__ = ["QdrantClientStore"]

logger = logging.getLogger(__name__)

METADATA_KEY = "tamis"
_DISTANCE = {"cosine": models.Distance.COSINE, "dot": models.Distance.DOT, "euclid": models.Distance.EUCLID}


def _is_not_found(exc: Exception) -> bool:
    if getattr(exc, "status_code", None) == 404:  # REST: UnexpectedResponse
        return True
    code = getattr(exc, "code", None)  # gRPC: RpcError
    if callable(code):
        with contextlib.suppress(Exception):
            return getattr(code(), "name", "") == "NOT_FOUND"
    return isinstance(exc, ValueError) and "not found" in str(exc).lower()  # local mode


def _is_conflict(exc: Exception) -> bool:
    if getattr(exc, "status_code", None) == 409:
        return True
    return "already exists" in str(exc).lower()


class QdrantClientStore:
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
        **client_kwargs: passed to ``QdrantClient`` (``port``, ``https``, ``headers`` ...).

    Example:
        >>> store = QdrantClientStore(url="https://xyz.cloud.qdrant.io", api_key=key)  # doctest: +SKIP
        >>> store = QdrantClientStore(":memory:")
        >>> store.list_collections()
        []
        >>> store.close()
    """

    kind = "qdrant"

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
        **client_kwargs: Any,
    ) -> None:
        for arg, value in (("hnsw_m", hnsw_m), ("hnsw_ef_construct", hnsw_ef_construct)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ConfigError(f"{arg} must be an integer >= 2, got {value!r}")
        self._hnsw = models.HnswConfigDiff(m=hnsw_m, ef_construct=hnsw_ef_construct)
        given = [n for n, v in (("location", location), ("url", url), ("path", path)) if v is not None]
        if client is not None:
            extra = given + [n for n, v in (("api_key", api_key), ("timeout", timeout)) if v is not None]
            extra += sorted(client_kwargs) + (["prefer_grpc"] if prefer_grpc else [])
            if extra:
                raise ConfigError(
                    f"client= was given together with {extra}; configure the QdrantClient yourself, "
                    f"or pass connection arguments without client="
                )
            if not isinstance(client, QdrantClient):
                raise ConfigError(f"client must be a qdrant_client.QdrantClient, got {type(client).__name__}")
            self._client, self._owns_client = client, False
            options = client.init_options
            self._local = options.get("location") == ":memory:" or options.get("path") is not None
            self._where = (
                ":memory:"
                if options.get("location") == ":memory:"
                else str(
                    options.get("path")
                    or options.get("url")
                    or options.get("location")
                    or options.get("host")
                )
            )
        else:
            if len(given) != 1:
                raise ConfigError(
                    f"give exactly one of location (':memory:' or a URL), url= or path=; got "
                    f"{given or 'none'}. Examples: QdrantClientStore(':memory:'), "
                    f"QdrantClientStore(path='./qdrant'), QdrantClientStore(url='http://localhost:6333')"
                )
            self._local = location == ":memory:" or path is not None
            if self._local and api_key is not None:
                raise ConfigError(
                    "api_key= applies to a server url=; local mode (':memory:' / path=) takes none"
                )
            self._where = str(location or url or path)
            try:
                self._client = QdrantClient(
                    location=location,
                    url=url,
                    api_key=api_key,
                    path=None if path is None else os.fspath(path),
                    prefer_grpc=prefer_grpc,
                    timeout=timeout,
                    **client_kwargs,
                )
            except (RuntimeError, ValueError, OSError) as exc:
                raise StoreError(
                    f"cannot open Qdrant at {self._where!r}: {exc}"
                    + (
                        "; close the other client using this folder first"
                        if "already accessed" in str(exc)
                        else ""
                    )
                ) from exc
            self._owns_client = True
        # local mode is not thread-safe; a server client is
        self._guard = threading.RLock() if self._local else contextlib.nullcontext()
        self._closed = False
        logger.debug("opened %r", self)

    def __repr__(self) -> str:
        return f"QdrantClientStore({self._where!r})"

    def __enter__(self) -> QdrantClientStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
            with self._guard:
                return fn(*args, **kwargs)
        except Exception as exc:
            text = str(exc)
            if name is not None and _is_not_found(exc):
                raise CollectionNotFoundError(
                    f"no collection or alias named {name!r} in Qdrant at {self._where!r}; "
                    f"create it first or check the name"
                ) from exc
            if "dimension error" in text.lower():
                raise DimensionMismatchError(f"collection {name!r} in {self._where!r}: {text}") from exc
            target = f" {name!r}" if name is not None else ""
            raise StoreError(f"Qdrant at {self._where!r} failed to {op}{target}: {text}") from exc

    def _filter(self, filter: Any) -> models.Filter | None:
        if filter is None or isinstance(filter, models.Filter):
            return filter
        if not isinstance(filter, Mapping):
            raise ConfigError(
                f"filter must be None, a mapping such as {{'metadata.lang': 'en'}}, or a "
                f"qdrant_client.models.Filter; got {type(filter).__module__}.{type(filter).__qualname__}"
            )
        must: list[Any] = []
        for key, kind, value in mapping_conditions(filter):
            if kind == "range":
                must.append(models.FieldCondition(key=key, range=models.Range(**value)))
            elif kind == "any":
                must.append(models.FieldCondition(key=key, match=models.MatchAny(any=value)))
            else:
                must.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
        return models.Filter(must=must)

    def _params(self, params: SearchParams | None) -> models.SearchParams | None:
        if self._local:  # exact anyway; search_params would only trigger a warning
            return None
        params = params or SearchParams()
        ef = DEFAULT_HNSW_EF if params.hnsw_ef is None else params.hnsw_ef
        return models.SearchParams(hnsw_ef=ef, exact=params.exact)

    def _collection(self, name: str) -> Any:
        check_name(name)
        return self._call("read collection", name, self._client.get_collection, name)

    def _check_query_dim(self, name: str, queries: np.ndarray) -> None:
        """Local mode answers a wrong-sized query with a numpy error; a server names both sizes itself."""
        if self._local:
            vector_matrix(queries, self.collection_dim(name), name, "query vector")

    @staticmethod
    def _vector(vector: Any) -> np.ndarray | None:
        if isinstance(vector, dict):
            vector = vector.get("")
        return None if vector is None else np.asarray(vector, dtype=np.float32)

    @staticmethod
    def _scored(points: Any) -> list[ScoredPoint]:
        return [ScoredPoint(str(p.id), float(p.score), dict(p.payload or {})) for p in points]

    # -- collections -------------------------------------------------------------------------
    def list_collections(self) -> list[str]:
        """Names of the physical collections (aliases not included), sorted."""
        response = self._call("list collections", None, self._client.get_collections)
        return sorted(c.name for c in response.collections)

    def collection_exists(self, name: str) -> bool:
        """True if ``name`` is a collection, or an alias of one."""
        check_name(name)
        if self._call("check", name, self._client.collection_exists, name):
            return True
        return self.resolve_alias(name) is not None

    def create_collection(
        self, name: str, *, dim: int, distance: str = "cosine", metadata: Mapping[str, Any]
    ) -> None:
        """Create an empty collection with its metadata; `CollectionExistsError` if the name is taken."""
        check_name(name)
        dim = check_dim(dim)
        check_distance(distance)
        meta = json_copy(metadata, "metadata")
        if self.collection_exists(name):
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
                vectors_config=models.VectorParams(size=dim, distance=_DISTANCE[distance]),
                hnsw_config=self._hnsw,
                metadata={METADATA_KEY: meta},
            )
        except StoreError as exc:
            if exc.__cause__ is not None and _is_conflict(exc.__cause__):
                raise CollectionExistsError(f"collection {name!r} was just created by someone else") from exc
            raise

    def delete_collection(self, name: str) -> None:
        """Delete a collection and its points (no error if absent); Qdrant drops its aliases."""
        check_name(name)
        target = self.resolve_alias(name)
        if target is not None:
            raise ConfigError(
                f"{name!r} is an alias of {target!r}, not a collection; use delete_alias({name!r}), "
                f"or delete_collection({target!r}) to delete the collection itself"
            )
        self._call("delete collection", None, self._client.delete_collection, name)

    def get_metadata(self, name: str) -> dict[str, Any]:
        """The metadata dict stored with the collection (``{}`` if it was not made by tamis)."""
        meta = self._collection(name).config.metadata or {}
        return json_copy(meta.get(METADATA_KEY) or {}, "metadata")

    def set_metadata(self, name: str, metadata: Mapping[str, Any]) -> None:
        """Replace the collection's tamis metadata in one request."""
        check_name(name)
        new = json_copy(metadata, "metadata")
        self._call(
            "update metadata of", name, self._client.update_collection, name, metadata={METADATA_KEY: new}
        )

    def collection_dim(self, name: str) -> int:
        """Vector dimension the collection was created with."""
        vectors = self._collection(name).config.params.vectors
        if not isinstance(vectors, models.VectorParams):
            raise ConfigError(
                f"collection {name!r} uses named vectors ({sorted(vectors or {})}); tamis collections have one "
                f"unnamed vector: create the collection with tamis"
            )
        return int(vectors.size)

    # -- aliases -------------------------------------------------------------------------------
    def set_alias(self, alias: str, target: str) -> None:
        """Point ``alias`` at ``target``; an existing alias is switched atomically (one request)."""
        check_name(alias, "alias")
        check_name(target)
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
        ops: list[Any] = []
        if self.resolve_alias(alias) is not None:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        ops.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=target, alias_name=alias)
            )
        )
        self._call("set alias", alias, self._client.update_collection_aliases, change_aliases_operations=ops)

    def resolve_alias(self, alias: str) -> str | None:
        """The collection ``alias`` points at, or None if it is not an alias."""
        check_name(alias, "alias")
        response = self._call("list aliases", None, self._client.get_aliases)
        return next((a.collection_name for a in response.aliases if a.alias_name == alias), None)

    def delete_alias(self, alias: str) -> None:
        """Remove ``alias`` (no error if it does not exist); its collection is untouched."""
        if self.resolve_alias(alias) is None:
            return
        op = models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
        self._call(
            "delete alias", alias, self._client.update_collection_aliases, change_aliases_operations=[op]
        )

    # -- points --------------------------------------------------------------------------------
    def upsert(self, name: str, points: Sequence[StorePoint]) -> None:
        """Insert or replace ``points`` in one request (``wait=True``).

        On a server the request is one write; in local mode each point is committed separately.
        """
        dim = self.collection_dim(name)
        if not points:
            return
        ids = [canonical_id(p.id) for p in points]
        matrix = vector_matrix([p.vector for p in points], dim, name)
        payloads = [
            json_copy(p.payload, f"payload of point {pid}") for pid, p in zip(ids, points, strict=True)
        ]
        batch = models.Batch(ids=ids, vectors=matrix.tolist(), payloads=payloads)
        self._call("upsert into", name, self._client.upsert, name, points=batch, wait=True)

    def retrieve(
        self, name: str, ids: Sequence[str], *, with_payload: bool = True, with_vectors: bool = False
    ) -> list[Record]:
        """The points among ``ids`` that exist (any order)."""
        check_name(name)
        wanted = [canonical_id(i) for i in ids]
        found = self._call(
            "retrieve from",
            name,
            self._client.retrieve,
            name,
            ids=wanted,
            with_payload=bool(with_payload),
            with_vectors=bool(with_vectors),
        )
        return [
            Record(str(r.id), dict(r.payload or {}), self._vector(r.vector) if with_vectors else None)
            for r in found
        ]

    def delete_points(self, name: str, ids: Sequence[str]) -> None:
        """Delete the points with these ids (absent ids are ignored)."""
        check_name(name)
        selector = models.PointIdsList(points=[canonical_id(i) for i in ids])
        self._call("delete points from", name, self._client.delete, name, points_selector=selector, wait=True)

    def count(self, name: str, filter: Any = None) -> int:
        """Exact number of points (matching ``filter``)."""
        check_name(name)
        result = self._call(
            "count", name, self._client.count, name, count_filter=self._filter(filter), exact=True
        )
        return int(result.count)

    def scroll(
        self,
        name: str,
        *,
        filter: Any = None,
        batch_size: int = 256,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> Iterator[Record]:
        """Every point (matching ``filter``), in id order, fetched ``batch_size`` at a time."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        check_name(name)
        qfilter = self._filter(filter)
        self._collection(name)  # fail now, not at the first next()

        def pages() -> Iterator[Record]:
            offset = None
            while True:
                records, offset = self._call(
                    "scroll",
                    name,
                    self._client.scroll,
                    name,
                    scroll_filter=qfilter,
                    limit=batch_size,
                    offset=offset,
                    with_payload=bool(with_payload),
                    with_vectors=bool(with_vectors),
                )
                for r in records:
                    yield Record(
                        str(r.id), dict(r.payload or {}), self._vector(r.vector) if with_vectors else None
                    )
                if offset is None:
                    return

        return pages()

    def search(
        self,
        name: str,
        vector: np.ndarray,
        *,
        k: int,
        score_threshold: float | None = None,
        filter: Any = None,
        params: SearchParams | None = None,
        with_payload: bool = True,
        offset: int = 0,
    ) -> list[ScoredPoint]:
        """The ``k`` nearest points by descending score; Qdrant drops scores below ``score_threshold``."""
        check_name(name)
        check_search_args(k, offset)
        query = single_vector(vector)
        self._check_query_dim(name, query)
        response = self._call(
            "search",
            name,
            self._client.query_points,
            name,
            query=query.tolist(),
            limit=k,
            offset=offset or None,
            query_filter=self._filter(filter),
            search_params=self._params(params),
            score_threshold=None if score_threshold is None else float(score_threshold),
            with_payload=bool(with_payload),
        )
        return self._scored(response.points)

    def search_batch(
        self,
        name: str,
        vectors: np.ndarray,
        *,
        k: int,
        score_thresholds: Sequence[float | None] | None = None,
        filter: Any = None,
        params: SearchParams | None = None,
        with_payload: bool = True,
    ) -> list[list[ScoredPoint]]:
        """`search` for many query vectors in one request (one threshold per query, or none)."""
        check_name(name)
        check_search_args(k)
        queries = np.asarray(vectors, dtype=np.float32)
        if queries.ndim != 2:
            raise ConfigError(f"search_batch takes a 2-D array of query vectors, got shape {queries.shape}")
        thresholds = batch_thresholds(score_thresholds, len(queries))
        if not len(queries):
            return []
        self._check_query_dim(name, queries)
        qfilter, qparams = self._filter(filter), self._params(params)
        requests = [
            models.QueryRequest(
                query=q.tolist(),
                limit=k,
                filter=qfilter,
                params=qparams,
                score_threshold=t,
                with_payload=bool(with_payload),
            )
            for q, t in zip(queries, thresholds, strict=True)
        ]
        responses = self._call("search", name, self._client.query_batch_points, name, requests=requests)
        return [self._scored(r.points) for r in responses]

    # -- maintenance ---------------------------------------------------------------------------
    def flush(self, name: str) -> None:
        """No-op: a server has written an upsert made with ``wait=True``; local mode commits per point."""
        check_name(name)

    def optimize(self, name: str) -> None:
        """No-op: a server builds HNSW in the background on its own; local mode has no index."""
        check_name(name)

    def close(self) -> None:
        """Close the client (unless it was passed in with ``client=``). The store cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            with self._guard:
                self._client.close()
