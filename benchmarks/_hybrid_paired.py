"""Paired comparisons of two methods of benchmarks/hybrid.py on the same test queries (a query bootstrap).

A difference of 0.0004 nDCG@10 between the calibrated hybrid and dense is a statement about these
queries only; `paired` says whether it is more than the spread of the test set: the mean per-query
nDCG@10 difference with a 95 % percentile interval, and the pooled PR-AUC ratio and difference
recomputed on each resample of the queries (seeded, so the interval is reproducible).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tamis.evaluation import average_precision

__all__ = ["paired"]


def _per_query_ndcg(ids: Sequence[str], docs: Sequence[Sequence[str]], scores: np.ndarray,
                    qrels: Mapping[str, Mapping[str, int]]) -> np.ndarray:
    import pytrec_eval

    judged = {q: {d: int(g) for d, g in qrels[q].items()} for q in ids}
    run = {q: {d: float(v) for d, v in zip(dl, scores[i], strict=False) if not np.isnan(v)}
           for i, (q, dl) in enumerate(zip(ids, docs, strict=True))}
    res = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10"}).evaluate({q: r for q, r in run.items() if r})
    return np.array([res.get(q, {}).get("ndcg_cut_10", 0.0) for q in ids])


def _pooled(scores: np.ndarray, labels: np.ndarray, relevant: np.ndarray, rows: np.ndarray) -> float:
    s, y = scores[rows], labels[rows] > 0.5
    mask = ~np.isnan(s)
    total = relevant[rows].sum()
    return average_precision(s[mask], y[mask]) * y[mask].sum() / max(total, 1) if total else 0.0


def paired(
    ids: Sequence[str], qrels: Mapping[str, Mapping[str, int]], a: tuple, b: tuple, *, resamples: int = 400,
    seed: int = 0,
) -> dict:
    """``a`` against ``b`` (each ``(scores, labels, docs)`` of hybrid.py on the queries ``ids``): the mean
    nDCG@10 difference a − b, the pooled PR-AUC difference and ratio a / b, each with a 95 % bootstrap interval."""
    na, nb = _per_query_ndcg(ids, a[2], a[0], qrels), _per_query_ndcg(ids, b[2], b[0], qrels)
    relevant = np.array([float(sum(1 for g in qrels[q].values() if g > 0)) for q in ids])
    rng = np.random.default_rng(seed)
    n = len(ids)
    d_ndcg, d_ap, ratio = [], [], []
    for _ in range(resamples):
        rows = rng.integers(0, n, n)
        d_ndcg.append(float(np.mean(na[rows] - nb[rows])))
        pa, pb = _pooled(a[0], a[1], relevant, rows), _pooled(b[0], b[1], relevant, rows)
        d_ap.append(pa - pb)
        ratio.append(pa / pb if pb else np.nan)
    everyone = np.arange(n)
    pa, pb = _pooled(a[0], a[1], relevant, everyone), _pooled(b[0], b[1], relevant, everyone)

    def ci(v: list[float]) -> list[float]:
        return [float(x) for x in np.nanpercentile(v, [2.5, 97.5])]

    return {"queries": n, "ndcg@10 diff": float(np.mean(na - nb)), "ndcg@10 diff ci95": ci(d_ndcg),
            "queries a better / worse": [int(np.sum(na > nb + 1e-12)), int(np.sum(na < nb - 1e-12))],
            "pr_auc diff": pa - pb, "pr_auc diff ci95": ci(d_ap), "pr_auc ratio": pa / pb if pb else None,
            "pr_auc ratio ci95": ci(ratio)}
