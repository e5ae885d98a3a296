"""The `VectorStore` protocol: what tamis needs from a vector database.

A store is a *backend* holding many physical collections (Qdrant Edge: one folder each under a
data directory; qdrant-client: a server, the cloud, or its local mode). tamis never imports a
concrete store at module level: implementations register under the ``tamis.stores`` entry point
(see `tamis.registry`) and are found by name.

Point ids are UUID strings. Payloads are JSON-compatible dicts. Vectors are float32 numpy rows.

Filters
-------
Every method that takes ``filter`` accepts:

* ``None`` — no filter;
* a mapping of payload key (a dotted path such as ``"metadata.lang"``) to a condition:
  a scalar (must equal), a list/tuple/set (must equal one of), or a dict with any of
  ``gt``, ``gte``, ``lt``, ``lte`` (a numeric range). All conditions must hold;
* the store's native filter object (``qdrant_client.models.Filter`` for the qdrant-client store,
  ``qdrant_edge.Filter`` for Edge), passed through untouched.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from tamis.stores._settings import CollectionSettings

__all__ = [
    "Distance",
    "RANGE_OPERATORS",
    "Record",
    "ScoredPoint",
    "SearchParams",
    "StorePoint",
    "VectorStore",
    "validate_filter",
]

Distance = Literal["cosine", "dot", "euclid"]
RANGE_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})


@dataclass(frozen=True, slots=True)
class StorePoint:
    """One point to write: a UUID string id, a float32 vector, a JSON payload, and (hybrid collections
    only) its BM25 sparse vector (a `tamis.stores.SparseVector`)."""

    id: str
    vector: np.ndarray
    payload: dict[str, Any]
    sparse: Any = None


@dataclass(frozen=True, slots=True)
class ScoredPoint:
    """One search result from a store: id, raw similarity score, payload."""

    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Record:
    """One stored point read back (retrieve / scroll)."""

    id: str
    payload: dict[str, Any] = field(default_factory=dict)
    vector: np.ndarray | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchParams:
    """Search-time settings passed to the store.

    Attributes:
        hnsw_ef: size of the HNSW candidate list at query time; larger is more exact and slower.
            ``None`` uses tamis's default (128).
        exact: bypass the index and compare with every vector (ground truth; slow on big collections).
        rescore: on a quantized collection, re-score the candidates with the original vectors
            (None: the engine's default).
        oversampling: on a quantized collection, fetch ``k * oversampling`` candidates to re-score.
    """

    hnsw_ef: int | None = None
    exact: bool = False
    rescore: bool | None = None
    oversampling: float | None = None


def validate_filter(filter: Mapping[str, Any]) -> None:
    """Check a mapping filter's shape; raises `ConfigError` naming the bad key."""
    from tamis._errors import ConfigError

    for key, cond in filter.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"filter keys must be non-empty strings, got {key!r}")
        if isinstance(cond, Mapping):
            unknown = set(cond) - RANGE_OPERATORS
            if unknown or not cond:
                raise ConfigError(
                    f"filter condition for {key!r} is {dict(cond)!r}; a dict condition takes only "
                    f"{sorted(RANGE_OPERATORS)} with numbers"
                )
            for op, v in cond.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ConfigError(f"filter range {key!r}.{op} must be a number, got {v!r}")
        elif isinstance(cond, (list, tuple, set, frozenset)):
            if not cond:
                raise ConfigError(f"filter condition for {key!r} is an empty list; give at least one value")
            for v in cond:
                if not isinstance(v, (str, int)) or isinstance(v, bool):
                    raise ConfigError(
                        f"filter values for {key!r} must be strings or integers, got {v!r}"
                    )
        elif not isinstance(cond, (str, int, bool)):
            raise ConfigError(
                f"filter condition for {key!r} must be a string, integer, bool, list of those, "
                f"or a range dict, got {cond!r}"
            )


@runtime_checkable
class VectorStore(Protocol):
    """A vector database backend holding named collections.

    Implementations: ``tamis.adapters.qdrant_edge.EdgeStore`` (embedded, the default) and
    ``tamis.adapters.qdrant_client.QdrantClientStore`` (server, cloud, or local mode), both built
    on `tamis.stores.BaseStore`; a new store passes the suite `tamis.testing.VectorStoreTests`.
    All methods raising on a missing collection raise `CollectionNotFoundError`.
    """

    #: short name of the backend ("edge", "qdrant", ...)
    kind: str

    # -- collections -------------------------------------------------------------------------
    def list_collections(self) -> list[str]:
        """Names of the physical collections (aliases not included), sorted."""
        ...

    def collection_exists(self, name: str) -> bool: ...

    def create_collection(
        self, name: str, *, dim: int, distance: Distance = "cosine", metadata: Mapping[str, Any],
        sparse: bool = False, settings: CollectionSettings | None = None,
    ) -> None:
        """Create an empty collection with its metadata (and `CollectionSettings`); `CollectionExistsError` if it exists.

        ``sparse=True`` makes a hybrid collection: a BM25 sparse vector with the IDF modifier next to
        the dense one (see `tamis.stores.HybridMethods`)."""
        ...

    def delete_collection(self, name: str) -> None:
        """Delete a collection and all its points (no error if absent)."""
        ...

    def get_metadata(self, name: str) -> dict[str, Any]:
        """The metadata dict stored with the collection."""
        ...

    def set_metadata(self, name: str, metadata: Mapping[str, Any]) -> None:
        """Replace the collection's metadata atomically (never half-written)."""
        ...

    def collection_dim(self, name: str) -> int:
        """Vector dimension the collection was created with."""
        ...

    # -- aliases (a name that points at a physical collection; switched atomically) ---------
    def set_alias(self, alias: str, target: str) -> None: ...

    def resolve_alias(self, alias: str) -> str | None:
        """The collection ``alias`` points at, or None if it is not an alias."""
        ...

    def delete_alias(self, alias: str) -> None: ...

    # -- points --------------------------------------------------------------------------------
    def upsert(self, name: str, points: Sequence[StorePoint]) -> None:
        """Insert or replace points; `DimensionMismatchError` on a wrong vector size.

        The whole call is one write: after a crash either all of its points are there or none.
        """
        ...

    def retrieve(
        self, name: str, ids: Sequence[str], *, with_payload: bool = True, with_vectors: bool = False
    ) -> list[Record]:
        """The points among ``ids`` that exist (any order)."""
        ...

    def delete_points(self, name: str, ids: Sequence[str]) -> None: ...

    def count(self, name: str, filter: Any = None) -> int:
        """Exact number of points (matching ``filter``)."""
        ...

    def scroll(
        self, name: str, *, filter: Any = None, batch_size: int = 256, with_payload: bool = True,
        with_vectors: bool = False,
    ) -> Iterator[Record]:
        """Every point (matching ``filter``), in id order."""
        ...

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
        """The ``k`` nearest points by descending score.

        ``score_threshold`` is passed to the engine as is; Qdrant keeps scores strictly greater
        than it. (`tamis.Collection` lowers it by one float32 step so its callers get ``>=``.)
        """
        ...

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
        ...

    # -- maintenance ---------------------------------------------------------------------------
    def flush(self, name: str) -> None:
        """Make every acknowledged write durable."""
        ...

    def optimize(self, name: str) -> None:
        """Build indexes now (HNSW) so the next queries are fast; may be a no-op for servers."""
        ...

    def close(self) -> None: ...
