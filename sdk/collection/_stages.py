"""What a query-time stage sees: the `SearchRequest` it gets, the `Hit` objects it returns, the `Stage` protocol.

A stage receives the `SearchRequest` and a function that runs a request against the store
(``search``), and returns the hits: it may call ``search`` several times (a feature window, then
a thresholded query), change the request (a per-query ``score_threshold``, a smaller ``k``), and
annotate or drop hits (``relevance``). Stages are found by name through the ``tamis.stages`` entry
point (`tamis.registry`); the sdk never imports one at module level.

A collection's manifest lists its stages, each with its settings
(``{"name": ..., "version": ..., "created": ..., "settings": {...}}``, see `Collection.set_stage`);
the collection builds each one with ``factory.from_manifest(settings, fingerprint=<the collection's
model fingerprint>)`` and runs them in that order: the first sees the caller's request first, and its
``search`` runs the rest of the list, the last one's the store query.

A stage declares the search options it reads (``options``, a set of names): a caller passes them to
`Collection.search` like any other keyword (``min_relevance=0.7``) or in `SearchOptions.stage_options`,
and every stage finds them in ``request.options``. Two more class attributes, both optional, say what
those options mean on a collection *without* the stage (they are read from the registered factory):

- ``options_without_stage``: options that are accepted and ignored there (an option that only turns
  the stage's effect off, such as ``relevance_filter``);
- ``requirement``: what a collection needs to have the stage, for the error that any other of its
  options raises there: ``min_relevance=0.7 needs <requirement>; collection 'docs' has no 'relevance'
  stage`` (the ``relevance`` stage's says to calibrate).

An option that no stage registered under ``tamis.stages`` declares is a `ConfigError` (a typo).

The built-in ``relevance`` stage (`tamis.plugins.relevance.RelevanceFilter`) applies a collection's
Cosine Adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Hit", "SearchFn", "SearchRequest", "Stage"]


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result.

    Attributes:
        id: the document id.
        score: raw cosine similarity of the query and the best-matching chunk.
        text: that chunk's text (the whole document when it was not chunked).
        title: the document title.
        metadata: the document's metadata.
        chunk: number of the matching chunk (0 for unchunked documents).
        relevance: calibrated probability of relevance, when the collection has a Cosine Adapter
            (or, in hybrid mode, a hybrid adapter).
        sparse_score: BM25 score of the chunk (hybrid collections, ``mode="sparse"`` / ``"hybrid"``).
        fused_score: the engine's fused score (``mode="hybrid"``: RRF, DBSF, or the calibrated formula).

    In ``mode="sparse"``, and for a fused hit outside the dense prefetch, ``score`` is NaN (not known).
    """

    id: str
    score: float
    text: str = ""
    title: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    chunk: int = 0
    relevance: float | None = None
    sparse_score: float | None = None
    fused_score: float | None = None

    def to_dict(self, *, with_text: bool = True) -> dict[str, Any]:
        """The hit as JSON-ready data (scores rounded to 6 places); without text, title and metadata on request."""
        score = None if self.score != self.score else round(float(self.score), 6)  # NaN: unknown
        d: dict[str, Any] = {"id": self.id, "score": score, "chunk": self.chunk}
        for key in ("relevance", "sparse_score", "fused_score"):
            value = getattr(self, key)
            if value is not None:
                d[key] = round(float(value), 6)
        if with_text:
            d.update(title=self.title, text=self.text, metadata=dict(self.metadata))
        return d


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
        mode: ``"dense"``, or on a hybrid collection ``"sparse"`` / ``"hybrid"`` (`tamis.stores.HybridQuery`).
        sparse: the BM25 query vectors (one per query) for the sparse and hybrid modes.
        fusion, rrf_k, prefetch: how ``mode="hybrid"`` fuses (``"rrf"`` or ``"dbsf"``; None: the
            collection's calibrated formula when it has one, else ``"rrf"``) and
            how many candidates each side prefetches (None: max(k, 100)).
        formulas: one `tamis.stores.RelevanceFormula` per query for ``fusion="formula"``; the
            thresholds then apply to its value.
        components: in ``mode="hybrid"``, whether the store joins each hit with both sides' scores.
        chunked: whether the collection splits documents into chunks (a hit is its document's best chunk).
        texts: the query texts of a search by text (`Collection.search`, `search_batch`), for stages that
            read them (the ``rerank`` stage's cross-encoder); None for a search by vector.
    """

    vectors: np.ndarray
    k: int
    filter: Any = None
    score_thresholds: Sequence[float | None] | None = None
    hnsw_ef: int | None = None
    exact: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    mode: str = "dense"
    sparse: Sequence[Any] | None = None
    fusion: str | None = None
    rrf_k: int = 60
    prefetch: int | None = None
    formulas: Sequence[Any] | None = None
    texts: Sequence[str] | None = None
    components: bool = True
    chunked: bool = False

    def replace(self, **changes: Any) -> SearchRequest:
        """A copy with ``changes`` (the same field names)."""
        return replace(self, **changes)


#: runs a request against the store: one list of hits (one per document, best first) per query
SearchFn = Callable[[SearchRequest], "list[list[Hit]]"]


@runtime_checkable
class Stage(Protocol):
    """A query-time stage. ``name`` is its registry name; ``options`` the stage options it reads."""

    name: str
    options: Set[str]

    def __call__(self, request: SearchRequest, search: SearchFn) -> list[list[Hit]]:
        """Hits for ``request``; ``search`` runs a (possibly changed) request against the store."""
        ...
