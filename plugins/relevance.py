"""The ``relevance`` stage: a collection's Cosine Adapter, applied inside the vector store.

Input: a `tamis.collection.SearchRequest` (query vectors, k, filter, ...). Output: per query, the
hits whose calibrated relevance r = sigmoid(a(q)·g(c) + b(q)) reaches the threshold τ, best first,
each carrying ``relevance``. How:

1. with score-list features, a *feature window* query: each query's top ``window`` (10) cosines,
   unfiltered, as in training;
2. the adapter turns them (and/or the query vector) into a per-query cosine cutoff c*(q), with
   ``r >= τ  ⇔  c >= c*(q)``;
3. the real query runs with ``score_threshold = max(c*(q), the caller's threshold)``, so the
   store does the filtering and ``k`` may be large (counting or paging all relevant documents
   happens in the store). An empty answer is a correct answer. When the window query already
   holds the answer (no payload filter, ``k <= window``), its hits are cut at c*(q) instead of
   asking the store again: the same documents, one store query instead of two.

Options (``request.options``, from the caller's `tamis.collection.SearchOptions`):
``relevance_filter=False`` returns the plain top-k with relevance attached; ``min_relevance=p`` uses
τ = p for this request. On a collection without this stage, ``relevance_filter`` is ignored (nothing
filters by relevance there) and ``min_relevance`` is an error that says to calibrate.

Settings (the collection's manifest): ``{"adapter": CosineAdapter.to_dict()}``, stored by
`Collection.set_adapter`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from tamis.calibration import CosineAdapter
from tamis.collection import Hit, SearchFn, SearchRequest

__all__ = ["RelevanceFilter"]


class RelevanceFilter:
    """Filter and annotate hits by a `CosineAdapter`'s calibrated relevance (registered as ``relevance``).

    Example:
        >>> stage = RelevanceFilter(adapter)                                 # doctest: +SKIP
        >>> hits = stage(request, search)  # search: runs a SearchRequest   # doctest: +SKIP
    """

    name = "relevance"
    #: the search options this stage reads
    options = frozenset({"relevance_filter", "min_relevance"})
    #: ignored on a collection without this stage: nothing filters by relevance there anyway
    options_without_stage = frozenset({"relevance_filter"})
    #: what a collection needs to have this stage (said when ``min_relevance`` is given without it)
    requirement = "a calibrated collection (a Cosine Adapter): run `tamis calibrate` or Collection.calibrate"

    def __init__(self, adapter: CosineAdapter, *, threshold: float | None = None) -> None:
        self.adapter = adapter
        self.threshold = adapter.tau(threshold)

    @classmethod
    def from_manifest(cls, settings: Mapping[str, Any], *, fingerprint: str) -> RelevanceFilter:
        """The stage of a collection's stored adapter (``settings["adapter"]``); refuses another model's adapter."""
        return cls(CosineAdapter.from_dict(settings["adapter"], fingerprint=fingerprint))

    def __call__(self, request: SearchRequest, search: SearchFn) -> list[list[Hit]]:
        if request.mode != "dense":  # the Cosine Adapter calibrates cosines; a hybrid search has its own stage
            return search(request)
        opts = request.options
        tau = self.adapter.tau(opts["min_relevance"]) if opts.get("min_relevance") is not None else self.threshold
        w = self.adapter.config.window
        window = hits = None
        if self.adapter.needs_window:
            # each query's top-w raw cosines, unfiltered, as in training
            hits = search(request.replace(k=w, filter=None, score_thresholds=None))
            window = _padded(hits, w, np.float32)
        # the window query already holds the answer when it is unfiltered and at least k long
        reuse = hits is not None and request.filter is None and request.k <= w
        a, b = self.adapter.params(request.vectors, window)
        if not opts.get("relevance_filter", True):
            results = [h[: request.k] for h in hits] if reuse else search(request)
            return self._annotate(results, a, b)
        cut = self.adapter.cutoffs_from_params(a, b, threshold=tau)
        given = request.score_thresholds or [None] * len(cut)
        thresholds = [float(c) if t is None else max(float(c), float(t)) for c, t in zip(cut, given, strict=True)]
        if reuse:
            # exactly what the store returns for score >= threshold (the scores are the store's float32)
            results = [[h for h in row if np.float32(h.score) >= np.float32(t)][: request.k]
                       for row, t in zip(hits, thresholds, strict=True)]
        else:
            results = search(request.replace(score_thresholds=thresholds))
        return self._annotate(results, a, b)

    def _annotate(self, results: list[list[Hit]], a: np.ndarray, b: np.ndarray) -> list[list[Hit]]:
        width = max((len(h) for h in results), default=0)
        if width == 0:
            return results
        probs = self.adapter.relevance_from_params(_padded(results, width, np.float64), a, b)
        return [[replace(h, relevance=float(probs[i, j])) for j, h in enumerate(hits)] for i, hits in enumerate(results)]


def _padded(rows: list[list[Hit]], width: int, dtype: type) -> np.ndarray:
    """The hits' scores as a (queries, width) array, NaN where a query has fewer hits."""
    out = np.full((len(rows), width), np.nan, dtype=dtype)
    for i, hits in enumerate(rows):
        out[i, : min(len(hits), width)] = [h.score for h in hits[:width]]
    return out
