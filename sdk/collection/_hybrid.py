"""Hybrid collections: the BM25 side of ingest and search, and the store query of the sparse and hybrid modes.

A collection made with ``open_collection(..., hybrid=True)`` (or upgraded by ``reindex(hybrid=True)``)
stores each chunk's BM25 sparse vector next to its dense one; its manifest says so under
``"sparse"`` (the vector's name, and the BM25 settings its documents were tokenized with, which its
queries then use too). Its searches take ``mode="dense" | "sparse" | "hybrid"``; the sparse and
hybrid modes are one `tamis.stores.HybridMethods.query_hybrid` call per batch of queries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from tamis._errors import ConfigError
from tamis.collection._stages import Hit, SearchFn, SearchRequest
from tamis.collection._write import point_id
from tamis.stores import (
    BM25_DEFAULTS,
    SPARSE_NAME,
    Bm25Encoder,
    FusedPoint,
    HybridQuery,
    ScoredPoint,
    SearchParams,
    VectorStore,
)

__all__: list[str] = []

#: candidates each side prefetches in ``mode="hybrid"`` when the request does not say
DEFAULT_PREFETCH = 100


def sparse_manifest() -> dict[str, Any]:
    """The manifest's ``"sparse"`` entry of a new hybrid collection."""
    return {"name": SPARSE_NAME, "model": "qdrant_edge.Bm25", "settings": dict(BM25_DEFAULTS), "modifier": "idf"}


def resolve_mode(mode: str | None, manifest: Mapping[str, Any], collection: str, *, sparse_given: bool) -> str:
    """The search mode: ``mode``, or the collection's default: ``"hybrid"`` when it holds sparse vectors and
    the search has the query's BM25 vector (a search by text), else ``"dense"`` (a search by vector only)."""
    hybrid = bool(manifest.get("sparse"))
    if mode is None:
        return "hybrid" if hybrid and sparse_given else "dense"
    if mode != "dense" and not hybrid:
        raise ConfigError(
            f"mode={mode!r} needs BM25 sparse vectors; collection {collection!r} is dense-only. Re-index it "
            "with them: `tamis reindex NAME --hybrid` or Collection.reindex(hybrid=True)"
        )
    return mode


class HybridSide:
    """The BM25 side of a collection (mixed into `Searching`): its encoder, and the query vectors of a search."""

    manifest: dict[str, Any] | None
    _bm25_cache: tuple[Any, Bm25Encoder] | None = None

    @property
    def hybrid(self) -> bool:
        """Whether the collection holds BM25 sparse vectors (``mode="sparse"`` and ``"hybrid"`` work)."""
        return bool((self.manifest or {}).get("sparse"))

    @property
    def bm25(self) -> Bm25Encoder:
        """The BM25 encoder of the collection's sparse vectors (with the settings its manifest stores)."""
        settings = ((self.manifest or {}).get("sparse") or {}).get("settings") or BM25_DEFAULTS
        key = tuple(sorted(settings.items()))
        if self._bm25_cache is None or self._bm25_cache[0] != key:
            self._bm25_cache = (key, Bm25Encoder(settings))
        return self._bm25_cache[1]

    def sparse_queries(self, texts: Sequence[str], mode: str | None) -> list[Any] | None:
        """The BM25 query vectors of ``texts`` when the search needs them (sparse or hybrid mode), else None."""
        if not self.hybrid or mode == "dense":
            return None
        return self.bm25.embed_queries(list(texts))


#: chunks -> hits, one per document: `tamis.collection._search`'s, shared by every mode
Collapse = Callable[[Sequence[ScoredPoint], int], list[Hit]]


def hybrid_store_search(
    store: VectorStore, physical: str, request: SearchRequest, *, chunked: bool, collapse: Collapse
) -> list[list[Hit]]:
    """A sparse or hybrid `SearchRequest` against the store: one `query_hybrid` call, hits collapsed per document."""
    n = len(request.vectors)
    if request.sparse is None or len(request.sparse) != n:
        raise ConfigError(
            f"mode={request.mode!r} needs one BM25 query vector per query; search with the query text "
            "(Collection.search / search_batch), or pass sparse_vectors= to search_vectors"
        )
    fetch = request.k if not chunked else request.k * 4 + 10
    prefetch = request.prefetch or max(fetch, DEFAULT_PREFETCH)
    thresholds = request.score_thresholds or [None] * n
    formulas = request.formulas or [None] * n
    queries = [
        HybridQuery(
            dense=request.vectors[i], sparse=request.sparse[i], mode=request.mode,  # type: ignore[arg-type]
            fusion="formula" if formulas[i] is not None else (request.fusion or "rrf"),  # type: ignore[arg-type]
            rrf_k=request.rrf_k, prefetch=prefetch, formula=formulas[i], components=request.components,
            score_threshold=None if thresholds[i] is None else _inclusive(thresholds[i]),  # type: ignore[arg-type]
        )
        for i in range(n)
    ]
    params = SearchParams(hnsw_ef=request.hnsw_ef, exact=request.exact)
    results = store.query_hybrid(physical, queries, k=fetch, filter=request.filter, params=params)
    out = []
    for i, points in enumerate(results):
        hits = _hits(points, request.k, request.mode, collapse)
        if chunked and len(points) == fetch and len(hits) < request.k:
            more = store.query_hybrid(physical, [queries[i]], k=fetch * 8, filter=request.filter, params=params)[0]
            hits = _hits(more, request.k, request.mode, collapse)
        out.append(hits)
    return out


def hybrid_search_fn(store: VectorStore, physical: str, dense: SearchFn, *, chunked: bool, collapse: Collapse) -> SearchFn:
    """The innermost search of a collection: ``dense`` for ``mode="dense"``, `hybrid_store_search` otherwise."""

    def search(request: SearchRequest) -> list[list[Hit]]:
        if request.mode == "dense":
            return dense(request)
        return hybrid_store_search(store, physical, request, chunked=chunked, collapse=collapse)

    return search


def _inclusive(threshold: float) -> float:
    """The largest float32 below ``threshold`` (the engine keeps scores strictly above a threshold)."""
    return float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))


def _hits(points: Sequence[FusedPoint], k: int, mode: str, collapse: Collapse) -> list[Hit]:
    """The collection's own collapse over the points (``score``: the cosine, NaN where unknown), then each
    hit's BM25 and fused scores from its point."""
    scored = [ScoredPoint(p.id, math.nan if p.dense_score is None else float(p.dense_score), p.payload) for p in points]
    by_id = {p.id: p for p in points}
    out = []
    for h in collapse(scored, k):
        p = by_id.get(point_id(h.id, h.chunk)) or by_id.get(h.id)
        if p is not None:
            h = replace(h, sparse_score=p.sparse_score, fused_score=float(p.score) if mode == "hybrid" else None)
        out.append(h)
    return out
