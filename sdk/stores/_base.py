"""`BaseStore`: the public `VectorStore` methods, their argument checks done once, around backend hooks.

A store subclasses `BaseStore` and implements the ``_``-prefixed hooks; each public method
checks its arguments (names, dimensions, ids, vectors, payloads, filters, ``k`` / ``offset``,
thresholds, search params) with `tamis.stores` helpers and then calls its hook with clean
values, so every store raises the same errors for the same mistakes. The hooks translate to the
engine and back; they still raise `CollectionNotFoundError` for a missing collection and
`StoreError` when the engine fails.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np

from tamis._errors import ConfigError
from tamis.stores._helpers import (
    batch_thresholds,
    canonical_id,
    check_batch_size,
    check_dim,
    check_distance,
    check_name,
    check_search_args,
    json_copy,
    mapping_conditions,
    resolve_params,
    single_vector,
    vector_matrix,
)
from tamis.stores._hybrid import HybridMethods, check_point_sparse
from tamis.stores._protocol import Record, ScoredPoint, SearchParams, StorePoint
from tamis.stores._settings import CollectionSettings

__all__ = ["BaseStore"]

_Store = TypeVar("_Store", bound="BaseStore")

#: fetches one page of a scroll: ``offset`` (None first) -> (records, next offset or None at the end)
PageFetcher = Callable[[Any], tuple[list[Record], Any]]


class BaseStore(HybridMethods, abc.ABC):
    """Base class of the built-in stores: implements `VectorStore` on top of a few backend hooks.

    Subclasses set `kind`, ``native_filter_type`` and ``native_filter_name`` (the engine's filter
    class, passed through untouched, and how to name it in errors) and implement the hooks.
    ``list_collections`` and ``close`` they implement directly (no arguments to check).
    """

    #: short name of the backend ("edge", "qdrant", ...)
    kind: ClassVar[str]
    #: the engine's own filter class, passed to the hooks untouched
    native_filter_type: ClassVar[type]
    #: how that class is spelled in error messages, e.g. ``"qdrant_edge.Filter"``
    native_filter_name: ClassVar[str]

    # -- collections -------------------------------------------------------------------------
    @abc.abstractmethod
    def list_collections(self) -> list[str]:
        """Names of the physical collections (aliases not included), sorted."""

    def collection_exists(self, name: str) -> bool:
        """True if ``name`` is a collection, or an alias of one (as in Qdrant)."""
        return self._collection_exists(check_name(name))

    def create_collection(
        self,
        name: str,
        *,
        dim: int,
        distance: str = "cosine",
        metadata: Mapping[str, Any],
        sparse: bool = False,
        settings: CollectionSettings | Mapping[str, Any] | None = None,
    ) -> None:
        """Create an empty collection with its metadata; `CollectionExistsError` if the name is taken.

        ``sparse=True``: a hybrid collection, with a BM25 sparse vector (IDF by the engine) per point.
        ``settings`` (`CollectionSettings`) are applied as far as the engine supports them; its
        payload indexes (tamis's own ``doc_id`` / ``chunk`` always) are created with the collection.
        """
        check_name(name)
        dim = check_dim(dim)
        check_distance(distance)
        wanted = CollectionSettings.of(settings)
        extra: dict[str, Any] = {"sparse": True} if sparse else {}  # a store without hybrid support keeps its hook
        if "settings" in inspect.signature(self._create_collection).parameters:
            self._create_collection(name, dim, distance, json_copy(metadata, "metadata"), settings=wanted, **extra)
        elif wanted != CollectionSettings():
            raise ConfigError(f"the {self.kind!r} store does not apply collection settings ({wanted.to_dict()})")
        else:  # a store written before settings existed
            self._create_collection(name, dim, distance, json_copy(metadata, "metadata"), **extra)  # type: ignore[call-arg]

    def delete_collection(self, name: str) -> None:
        """Delete a collection, its points and the aliases pointing at it (no error if absent).

        `ConfigError` if ``name`` is an alias: delete the alias, or the collection it points at.
        """
        self._delete_collection(check_name(name))

    def get_metadata(self, name: str) -> dict[str, Any]:
        """The metadata dict stored with the collection (a copy)."""
        return self._get_metadata(check_name(name))

    def set_metadata(self, name: str, metadata: Mapping[str, Any]) -> None:
        """Replace the collection's metadata atomically (never half-written, never merged)."""
        check_name(name)
        self._set_metadata(name, json_copy(metadata, "metadata"))

    def collection_dim(self, name: str) -> int:
        """Vector dimension the collection was created with."""
        return self._collection_dim(check_name(name))

    # -- aliases -------------------------------------------------------------------------------
    def set_alias(self, alias: str, target: str) -> None:
        """Point ``alias`` at the collection ``target``, replacing any previous target atomically."""
        check_name(alias, "alias")
        self._set_alias(alias, check_name(target))

    def resolve_alias(self, alias: str) -> str | None:
        """The collection ``alias`` points at, or None if it is not an alias."""
        return self._resolve_alias(check_name(alias, "alias"))

    def delete_alias(self, alias: str) -> None:
        """Remove ``alias`` (no error if it does not exist); its collection is untouched."""
        self._delete_alias(check_name(alias, "alias"))

    # -- points --------------------------------------------------------------------------------
    def upsert(self, name: str, points: Sequence[StorePoint]) -> None:
        """Insert or replace ``points``; `DimensionMismatchError` on a wrong vector size."""
        target, dim = self._point_dim(check_name(name))
        if not points:
            return
        ids = [canonical_id(p.id) for p in points]
        matrix = vector_matrix([p.vector for p in points], dim, target)
        payloads = [json_copy(p.payload, f"payload of point {i}") for i, p in zip(ids, points, strict=True)]
        sparse = check_point_sparse(self, target, points)
        self._upsert(target, ids, matrix, payloads, **({} if sparse is None else {"sparse": sparse}))

    def retrieve(
        self, name: str, ids: Sequence[str], *, with_payload: bool = True, with_vectors: bool = False
    ) -> list[Record]:
        """The points among ``ids`` that exist (any order)."""
        check_name(name)
        wanted = [canonical_id(i) for i in ids]
        return self._retrieve(name, wanted, with_payload=bool(with_payload), with_vectors=bool(with_vectors))

    def delete_points(self, name: str, ids: Sequence[str]) -> None:
        """Delete the points with these ids (absent ids are ignored)."""
        check_name(name)
        self._delete_points(name, [canonical_id(i) for i in ids])

    def count(self, name: str, filter: Any = None) -> int:
        """Exact number of points (matching ``filter``)."""
        check_name(name)
        return self._count(name, self._filter(filter))

    def scroll(
        self,
        name: str,
        *,
        filter: Any = None,
        batch_size: int = 256,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> Iterator[Record]:
        """Every point (matching ``filter``), in id order, fetched ``batch_size`` at a time.

        A missing collection raises here, not at the first ``next()``.
        """
        check_batch_size(batch_size)
        check_name(name)
        fetch = self._scroller(
            name,
            self._filter(filter),
            batch_size,
            with_payload=bool(with_payload),
            with_vectors=bool(with_vectors),
        )

        def pages() -> Iterator[Record]:
            offset = None
            while True:
                records, offset = fetch(offset)
                yield from records
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
        """The ``k`` nearest points by descending score (skipping the first ``offset``).

        ``score_threshold`` is passed to the engine as is; Qdrant keeps scores strictly greater
        than it (for ``euclid`` the score is a distance and the threshold an upper bound).
        """
        check_name(name)
        check_search_args(k, offset)
        query = single_vector(vector)
        target, dim = self._query_dim(name)
        if dim is not None:
            query = vector_matrix(query, dim, target, "query vector")[0]
        return self._search(
            target,
            query,
            k=k,
            score_threshold=None if score_threshold is None else float(score_threshold),
            filter=self._filter(filter),
            params=resolve_params(params),
            with_payload=bool(with_payload),
            offset=offset,
        )

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
        """`search` for many query vectors in one call (one threshold per query, or none)."""
        check_name(name)
        check_search_args(k)
        queries = np.asarray(vectors, dtype=np.float32)
        if queries.ndim != 2:
            raise ConfigError(f"search_batch takes a 2-D array of query vectors, got shape {queries.shape}")
        thresholds = batch_thresholds(score_thresholds, len(queries))
        target, dim = self._query_dim(name)
        if not len(queries):
            return []
        if dim is not None:
            queries = vector_matrix(queries, dim, target, "query vector")
        return self._search_batch(
            target,
            queries,
            k=k,
            score_thresholds=thresholds,
            filter=self._filter(filter),
            params=resolve_params(params),
            with_payload=bool(with_payload),
        )

    # -- maintenance ---------------------------------------------------------------------------
    def flush(self, name: str) -> None:
        """Make every acknowledged write durable."""
        self._flush(check_name(name))

    def optimize(self, name: str) -> None:
        """Build indexes now (HNSW) so the next queries are fast; may be a no-op for servers."""
        self._optimize(check_name(name))

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store; it cannot be used afterwards."""

    def __enter__(self: _Store) -> _Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- filters -------------------------------------------------------------------------------
    def _filter(self, filter: Any) -> Any:
        """``filter`` as the engine's: None and native filters as they are, mappings converted."""
        if filter is None or isinstance(filter, self.native_filter_type):
            return filter
        if not isinstance(filter, Mapping):
            raise ConfigError(
                f"filter must be None, a mapping such as {{'metadata.lang': 'en'}}, or a "
                f"{self.native_filter_name}; got {type(filter).__module__}.{type(filter).__qualname__}"
            )
        return self._mapping_filter(mapping_conditions(filter))

    @abc.abstractmethod
    def _mapping_filter(self, conditions: list[tuple[str, str, Any]]) -> Any:
        """The engine's filter for `mapping_conditions` (all must hold)."""

    # -- hooks: arguments are checked; names are valid names (collections may not exist) ------
    @abc.abstractmethod
    def _collection_exists(self, name: str) -> bool: ...

    @abc.abstractmethod
    def _create_collection(
        self, name: str, dim: int, distance: str, metadata: dict[str, Any], *, settings: CollectionSettings
    ) -> None: ...

    @abc.abstractmethod
    def _delete_collection(self, name: str) -> None: ...

    @abc.abstractmethod
    def _get_metadata(self, name: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def _set_metadata(self, name: str, metadata: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def _collection_dim(self, name: str) -> int: ...

    @abc.abstractmethod
    def _set_alias(self, alias: str, target: str) -> None: ...

    @abc.abstractmethod
    def _resolve_alias(self, alias: str) -> str | None: ...

    @abc.abstractmethod
    def _delete_alias(self, alias: str) -> None: ...

    @abc.abstractmethod
    def _point_dim(self, name: str) -> tuple[str, int]:
        """(the collection as the engine addresses it, its dimension); `CollectionNotFoundError`."""

    def _query_dim(self, name: str) -> tuple[str, int | None]:
        """`_point_dim` for queries; a dimension of None leaves the check to the engine."""
        return self._point_dim(name)

    @abc.abstractmethod
    def _upsert(
        self, target: str, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]
    ) -> None:
        """Write checked points (canonical ids, an (n, dim) float32 matrix, JSON payloads) to ``target``."""

    @abc.abstractmethod
    def _retrieve(
        self, name: str, ids: list[str], *, with_payload: bool, with_vectors: bool
    ) -> list[Record]: ...

    @abc.abstractmethod
    def _delete_points(self, name: str, ids: list[str]) -> None: ...

    @abc.abstractmethod
    def _count(self, name: str, filter: Any) -> int: ...

    @abc.abstractmethod
    def _scroller(
        self, name: str, filter: Any, batch_size: int, *, with_payload: bool, with_vectors: bool
    ) -> PageFetcher:
        """Check that ``name`` exists and return the function fetching one page of its points."""

    @abc.abstractmethod
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
        """One checked query vector (1-D float32) against ``target`` (from `_query_dim`)."""

    @abc.abstractmethod
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
        """At least one checked query vector (an (n, dim) float32 matrix), one threshold each."""

    @abc.abstractmethod
    def _flush(self, name: str) -> None: ...

    @abc.abstractmethod
    def _optimize(self, name: str) -> None: ...
