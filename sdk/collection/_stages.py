"""The `Stage` protocol: query-time steps that wrap a collection's store query.

A stage receives the `SearchRequest` and a function that runs a request against the store
(``search``), and returns the hits: it may call ``search`` several times (a feature window, then
a thresholded query), change the request (a per-query ``score_threshold``), and annotate the hits
(``relevance``). Stages are found by name through the ``tamis.stages`` entry point
(`tamis.registry`); the sdk never imports one at module level.

The built-in ``relevance`` stage (`tamis.plugins.relevance.RelevanceFilter`) applies a collection's
Cosine Adapter. A stage named in a collection's manifest is built with
``factory.from_manifest(config, fingerprint=<the collection's model fingerprint>)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from tamis.collection._collection import Hit

__all__ = ["SearchFn", "SearchRequest", "Stage"]


@dataclass(frozen=True, kw_only=True)
class SearchRequest:
    """One batch of store queries, as `Collection.search_vectors` received it (validated).

    Attributes:
        vectors: (n, dim) float32 query vectors.
        k: documents per query.
        filter: the store's payload filter (already translated), or None.
        score_thresholds: per-query cosine cutoffs (``>=``), or None.
        hnsw_ef, exact: search precision.
        options: stage options from the caller, e.g. ``{"relevance_filter": False, "min_relevance": 0.7}``.
    """

    vectors: np.ndarray
    k: int
    filter: Any = None
    score_thresholds: Sequence[float | None] | None = None
    hnsw_ef: int | None = None
    exact: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> SearchRequest:
        return replace(self, **changes)


#: runs a request against the store: one list of hits (one per document, best first) per query
SearchFn = Callable[[SearchRequest], "list[list[Hit]]"]


@runtime_checkable
class Stage(Protocol):
    """A query-time stage. ``name`` is its registry name."""

    name: str

    def __call__(self, request: SearchRequest, search: SearchFn) -> list[list[Hit]]:
        """Hits for ``request``; ``search`` runs a (possibly changed) request against the store."""
        ...
