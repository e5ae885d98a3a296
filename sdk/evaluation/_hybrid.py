"""Hybrid retrieval side by side: dense, BM25, RRF, DBSF, the calibrated hybrid (and the dense adapter, the reranker).

`evaluate_hybrid` is what ``tamis eval`` adds on a hybrid collection: each method's top-``k`` from the
collection itself (its real store queries), nDCG@10 and Recall@100 (pytrec_eval), pooled PR-AUC
against the judgements (recall over every relevant document, found or not), and for the calibrated
methods precision, recall and the share of empty answers at their threshold τ.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tamis.evaluation._metrics import average_precision, ir_metrics, pr_curve

if TYPE_CHECKING:  # pragma: no cover
    from tamis.collection import Collection, Hit

__all__ = ["evaluate_hybrid"]

#: method -> (search options, which score of a hit ranks it)
METHODS: dict[str, tuple[dict[str, Any], str]] = {
    "dense": ({"mode": "dense", "relevance_filter": False}, "score"),
    "sparse": ({"mode": "sparse"}, "sparse_score"),
    "rrf": ({"mode": "hybrid", "fusion": "rrf"}, "fused_score"),
    "dbsf": ({"mode": "hybrid", "fusion": "dbsf"}, "fused_score"),
    "dense adapter": ({"mode": "dense", "relevance_filter": False}, "relevance"),
    "calibrated hybrid": ({"mode": "hybrid", "relevance_filter": False}, "relevance"),
}


def _thresholds(collection: Collection) -> dict[str, float]:
    out = {}
    for stage in collection.stages:
        if stage.name == "relevance":
            out["dense adapter"] = float(stage.threshold)  # type: ignore[attr-defined]
        elif stage.name == "hybrid_relevance":
            out["calibrated hybrid"] = float(stage.threshold)  # type: ignore[attr-defined]
        elif stage.name == "rerank":
            out["+ rerank"] = float(stage.threshold)  # type: ignore[attr-defined]
    return out


def evaluate_hybrid(
    collection: Collection,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    k: int = 100,
    plot: str | Path | None = None,
) -> dict[str, dict[str, float]]:
    """{method: metrics} of every method the hybrid ``collection`` can run (see the module); ``plot``: PR-curve PNG."""
    ids = [q for q in queries if q in qrels]
    texts = [queries[q] for q in ids]
    taus = _thresholds(collection)
    methods = {m: v for m, v in METHODS.items() if m not in ("dense adapter", "calibrated hybrid") or m in taus}
    if "+ rerank" in taus:
        methods["+ rerank"] = ({"relevance_filter": False}, "relevance")
    total = sum(sum(1 for g in qrels[q].values() if g > 0) for q in ids)
    table: dict[str, dict[str, float]] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, (opts, attr) in methods.items():
        results: list[list[Hit]] = collection.search_batch(texts, k, **opts)
        run, flat, labels = {}, [], []
        hit_any = np.zeros(len(ids), dtype=bool)
        for i, (q, hits) in enumerate(zip(ids, results, strict=True)):
            scores = [float(getattr(h, attr) if getattr(h, attr) is not None else np.nan) for h in hits]
            run[q] = {h.id: s for h, s in zip(hits, scores, strict=True) if s == s}
            flat.extend(scores)
            labels.extend(qrels[q].get(h.id, 0) > 0 for h in hits)
            if name in taus:
                hit_any[i] = any(s >= taus[name] for s in scores)
        s, y = np.asarray(flat, dtype=np.float64), np.asarray(labels, dtype=bool)
        ok = ~np.isnan(s)
        s, y = s[ok], y[ok]
        cover = float(y.sum()) / max(total, 1)
        ir = ir_metrics(run, {q: qrels[q] for q in ids})
        row = {"nDCG@10": ir["nDCG@10"], "Recall@100": ir["Recall@100"], "pr_auc": average_precision(s, y) * cover}
        if name in taus:
            keep = s >= taus[name]
            tp = int((keep & y).sum())
            row.update(threshold=taus[name], precision=tp / max(int(keep.sum()), 1), recall=tp / max(total, 1),
                       empty_share=float(np.mean(~hit_any)))
        table[name] = row
        p, r, _ = pr_curve(s, y)
        curves[name] = (p, r * cover)
    if plot is not None:
        from tamis.evaluation._filtering import plot_pr_curves

        plot_pr_curves(curves, plot, title=f"{collection.name}: {len(ids)} queries, top-{k} of each method")
    return table
