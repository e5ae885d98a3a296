"""The ``hybrid_relevance`` stage: a hybrid collection's calibrated hybrid adapter, executed as ONE formula query.

Input: a `tamis.collection.SearchRequest` in ``mode="hybrid"`` (query vectors and their BM25 vectors).
Output: per query, the documents whose calibrated relevance r = sigmoid(a(q)·c + w(q)·ln(1 + s) + b(q))
reaches τ, best first, each with ``score`` (cosine), ``sparse_score`` (BM25) and ``relevance`` (r). How:

1. a *feature window*: each query's top ``window`` BM25 scores and its top-K cosines (unfiltered, as
   in training): the top ``window`` of them are features, the K-th is the cosine a document outside
   the dense prefetch takes;
2. the adapter turns them into the per-query constants (a, w, b) of a `tamis.stores.RelevanceFormula`;
3. the real query is one engine formula query over the two prefetches (top-K by cosine, top-K by BM25,
   K as in training), with ``score_threshold = τ``: the store returns exactly the documents with
   r >= τ, scored r — no client-side filtering.

Other modes (``"dense"``, ``"sparse"``) and an explicit ``fusion="rrf"`` / ``"dbsf"`` pass through
untouched. Options: ``relevance_filter=False`` returns the plain top-k by r (relevance attached);
``min_relevance=p`` uses τ = p for this request.

Settings (the collection's manifest): ``{"adapter": HybridAdapter.to_dict()}``, stored by
`Collection.set_adapter`.
"""

from __future__ import annotations

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

    def windows(self, request: SearchRequest, search: SearchFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each query's top-``window`` cosines and BM25 scores (NaN padded), and its K-th cosine, unfiltered as
        in training."""
        w, k = self.adapter.config.window, self.adapter.config.candidates
        plain = request.replace(k=w, filter=None, score_thresholds=None, formulas=None)
        dense = search(plain.replace(mode="dense", k=max(k, w)))
        sparse = search(plain.replace(mode="sparse"))
        floor = np.array([hits[-1].score if hits else np.nan for hits in dense], dtype=np.float64)
        return _padded(dense, w, "score"), _padded(sparse, w, "sparse_score"), floor

    def __call__(self, request: SearchRequest, search: SearchFn) -> list[list[Hit]]:
        if request.mode != "hybrid" or request.fusion is not None:
            return search(request)
        opts = request.options
        tau = self.adapter.tau(opts["min_relevance"]) if opts.get("min_relevance") is not None else self.threshold
        formulas = self.adapter.formulas(*self.windows(request, search))
        given = request.score_thresholds or [None] * len(formulas)
        if opts.get("relevance_filter", True):
            thresholds = [tau if t is None else max(tau, float(t)) for t in given]
        else:
            thresholds = list(given)
        results = search(request.replace(
            formulas=formulas, score_thresholds=thresholds, prefetch=self.adapter.config.candidates,
        ))
        return [[replace(h, relevance=h.fused_score) for h in hits] for hits in results]


def _padded(rows: list[list[Hit]], width: int, attr: str) -> np.ndarray:
    out = np.full((len(rows), width), np.nan)
    for i, hits in enumerate(rows):
        vals = [getattr(h, attr) for h in hits[:width]]
        out[i, : len(vals)] = [np.nan if v is None else v for v in vals]
    return out
