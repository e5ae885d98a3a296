"""The ``hybrid_relevance`` stage: a hybrid collection's calibrated hybrid adapter, executed as ONE formula query.

Input: a `tamis.collection.SearchRequest` in ``mode="hybrid"`` (query vectors and their BM25 vectors).
Output: per query, the documents whose calibrated relevance r = sigmoid(a(q)·c + w(q)·ln(1 + s) + b(q))
reaches τ, best first, each with ``score`` (cosine), ``sparse_score`` (BM25) and ``relevance`` (r). How:

1. the *windows*: each query's top-K documents by cosine and by BM25 (unfiltered, as in training):
   the top ``window`` scores of each are features, the K-th cosine is the value a document outside
   the dense prefetch takes, the K-th BM25 score (0 when fewer than K documents share a term) the
   value a document outside the BM25 prefetch takes;
2. the adapter turns them into the per-query constants (a, w, b) of a `tamis.stores.RelevanceFormula`;
3. the real query is one engine formula query over the two prefetches (top-K by cosine, top-K by BM25,
   K as in training), with ``score_threshold = τ``: the store returns exactly the documents with
   r >= τ, scored r — no client-side filtering. Unfiltered (and unchunked), the windows are exactly
   the formula's prefetches, so each hit's cosine and BM25 score are read from them and the formula
   request goes alone (``components=False``); with a filter, the store joins them in the same batch.

Other modes (``"dense"``, ``"sparse"``) and an explicit ``fusion="rrf"`` / ``"dbsf"`` pass through
untouched. Options: ``relevance_filter=False`` returns the plain top-k by r (relevance attached);
``min_relevance=p`` uses τ = p for this request.

Settings (the collection's manifest): ``{"adapter": HybridAdapter.to_dict()}``, stored by
`Collection.set_adapter`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from tamis.calibration import HybridAdapter
from tamis.collection import Hit, SearchFn, SearchRequest

__all__ = ["HybridRelevanceFilter"]


class HybridRelevanceFilter:
    """Run a hybrid collection's `HybridAdapter` as one formula query (registered as ``hybrid_relevance``).

    Example:
        >>> stage = HybridRelevanceFilter(adapter)                            # doctest: +SKIP
        >>> hits = stage(request, search)                                     # doctest: +SKIP
    """

    name = "hybrid_relevance"
    options = frozenset({"relevance_filter", "min_relevance"})
    options_without_stage = frozenset({"relevance_filter"})
    requirement = "a calibrated collection: run `tamis calibrate` or Collection.calibrate"

    def __init__(self, adapter: HybridAdapter, *, threshold: float | None = None) -> None:
        self.adapter = adapter
        self.threshold = adapter.tau(threshold)

    @classmethod
    def from_manifest(cls, settings: Mapping[str, Any], *, fingerprint: str) -> HybridRelevanceFilter:
        """The stage of a collection's stored hybrid adapter; refuses another model's adapter."""
        return cls(HybridAdapter.from_dict(settings["adapter"], fingerprint=fingerprint))

    def windows(self, request: SearchRequest, search: SearchFn) -> tuple[list[list[Hit]], list[list[Hit]]]:
        """Each query's top-K documents by cosine and by BM25 (K: the adapter's ``candidates``), unfiltered as
        in training: the features read their top ``window``, the K-th cosine is the default of a document
        outside the dense prefetch."""
        k = max(self.adapter.config.candidates, self.adapter.config.window)
        plain = request.replace(k=k, filter=None, score_thresholds=None, formulas=None)
        return search(plain.replace(mode="dense")), search(plain.replace(mode="sparse"))

    def __call__(self, request: SearchRequest, search: SearchFn) -> list[list[Hit]]:
        if request.mode != "hybrid" or request.fusion is not None:
            return search(request)
        opts = request.options
        tau = self.adapter.tau(opts["min_relevance"]) if opts.get("min_relevance") is not None else self.threshold
        dense, sparse = self.windows(request, search)
        w = self.adapter.config.window
        k = self.adapter.config.candidates
        floor = np.array([hits[-1].score if hits else np.nan for hits in dense], dtype=np.float64)
        # the K-th BM25 score when K documents share a query term, else 0 (as in training)
        sfloor = np.array([float(hits[k - 1].sparse_score or 0.0) if len(hits) >= k else 0.0 for hits in sparse])
        formulas = self.adapter.formulas(
            _padded(dense, w, "score"), _padded(sparse, w, "sparse_score"), floor, sfloor,
        )
        given = request.score_thresholds or [None] * len(formulas)
        if opts.get("relevance_filter", True):
            thresholds = [tau if t is None else max(tau, float(t)) for t in given]
        else:
            thresholds = list(given)
        # unfiltered and unchunked, the windows ARE the formula's two prefetches (same query, same K):
        # each hit's cosine and BM25 score come from them, and the store sends the formula request alone
        reuse = request.filter is None and not request.chunked
        results = search(request.replace(
            formulas=formulas, score_thresholds=thresholds, prefetch=self.adapter.config.candidates,
            components=request.components and not reuse,
        ))
        if not reuse or not request.components:
            return [[replace(h, relevance=h.fused_score) for h in hits] for hits in results]
        out = []
        for hits, d, s in zip(results, dense, sparse, strict=True):
            cos = {h.id: h.score for h in d}
            bm25 = {h.id: h.sparse_score for h in s}
            out.append([
                replace(h, score=cos.get(h.id, math.nan), sparse_score=bm25.get(h.id), relevance=h.fused_score)
                for h in hits
            ])
        return out


def _padded(rows: list[list[Hit]], width: int, attr: str) -> np.ndarray:
    out = np.full((len(rows), width), np.nan)
    for i, hits in enumerate(rows):
        vals = [getattr(h, attr) for h in hits[:width]]
        out[i, : len(vals)] = [np.nan if v is None else v for v in vals]
    return out
