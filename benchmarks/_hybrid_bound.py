"""Upper bounds of the pooled PR-AUC that any calibration of a given ranking can reach (benchmarks/hybrid_bound.py).

The pooled PR-AUC of hybrid.py ranks every (query, candidate) pair of the test queries by one score and
measures recall against every judged relevant document. A calibration (the dense or the hybrid
adapter, a global threshold, Platt, ...) maps each query's scores to probabilities; when the map is
monotone within a query — a per-query scale and offset is — the query's own order is kept and only
the interleaving of the queries changes. `max_pooled_ap` is the best pooled AP over every
interleaving of fixed per-query orders: an upper bound of every such calibration.

It is exact when each query has one relevant document (sort the queries by how many non-relevant
documents precede it); with several it is an upper bound (each positive's run of preceding
non-relevant documents is sorted freely, ignoring that runs of one query come in order).

`best_fusion_orders` widens the class to the hybrid adapter's whole family r = σ(a(q)·c + w(q)·ln(1 + s)
+ b(q)) with a > 0, w >= 0: a query's order depends only on λ = w / a, so the query's best order over
a grid of λ (by its own average precision), then `max_pooled_ap` of those orders, bounds every
adapter of that form, whatever its features, on these candidates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["LAMBDAS", "best_fusion_orders", "max_pooled_ap", "order_labels"]

#: the λ = w / a grid: 0 (cosine order), 0.0005 .. 5 log-spaced, and BM25 order (cosine as tie-break)
LAMBDAS = (0.0, *np.geomspace(5e-4, 5.0, 39).tolist(), float("inf"))


def max_pooled_ap(label_lists: Sequence[Sequence[float]], total_relevant: int) -> float:
    """The best pooled AP (recall over ``total_relevant``) of any interleaving of the per-query orders.

    ``label_lists``: each query's 0/1 labels in its own order, best first (its candidates only)."""
    runs = []
    for labels in label_lists:
        neg = 0
        for y in labels:
            if y > 0.5:
                runs.append(neg)
                neg = 0
            else:
                neg += 1
    if not runs or total_relevant <= 0:
        return 0.0
    fp = np.cumsum(np.sort(np.asarray(runs, dtype=np.float64)))
    tp = np.arange(1, len(runs) + 1, dtype=np.float64)
    return float(np.sum(tp / (tp + fp)) / total_relevant)


def _query_ap(labels: np.ndarray) -> float:
    hits = np.flatnonzero(labels > 0.5)
    return float(np.mean((np.arange(len(hits)) + 1) / (hits + 1))) if len(hits) else 0.0


def order_labels(scores: np.ndarray, labels: np.ndarray, width: int) -> list[np.ndarray]:
    """Each row's labels sorted by its score (NaN: not a candidate), cut to its top ``width``."""
    out = []
    for s, y in zip(scores, labels, strict=True):
        ok = np.flatnonzero(~np.isnan(s))
        order = ok[np.argsort(-s[ok], kind="stable")][:width]
        out.append(y[order])
    return out


def best_fusion_orders(
    cosine: np.ndarray, log_bm25: np.ndarray, labels: np.ndarray, mask: np.ndarray, width: int,
    lambdas: Sequence[float] = LAMBDAS,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Per query, the order of c + λ·ln(1 + s) (defaults already filled in) with the best own AP over ``lambdas``.

    Returns (each query's labels in its best order, cut to ``width``; the λ chosen per query)."""
    best: list[np.ndarray] = [np.zeros(0)] * len(cosine)
    best_ap = np.full(len(cosine), -1.0)
    chosen = np.zeros(len(cosine))
    for lam in lambdas:
        if np.isinf(lam):
            score = log_bm25 + 1e-6 * cosine
        else:
            score = cosine + lam * log_bm25
        rows = order_labels(np.where(mask, score, np.nan), labels, width)
        for i, y in enumerate(rows):
            ap = _query_ap(y)
            if ap > best_ap[i] + 1e-12:
                best_ap[i], best[i], chosen[i] = ap, y, lam
    return best, chosen
