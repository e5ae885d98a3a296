"""Retrieval metrics: ranking quality (pytrec_eval) and pooled precision–recall of a relevance score.

`ir_metrics` is shared by every ``tamis eval`` mode (a collection, or a model searched exactly).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["average_precision", "ir_metrics", "pr_curve", "precision_at_recall"]


def _pytrec_eval():
    try:
        import pytrec_eval
    except ImportError as exc:
        raise ImportError(
            "ranking metrics need pytrec_eval; install it with: pip install \"tamis[eval]\""
        ) from exc
    return pytrec_eval


def ir_metrics(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
) -> dict[str, float]:
    """nDCG@10, Recall@10, Recall@100 and MRR@10 of ``run``, averaged over the queries of ``qrels``.

    Args:
        run: ``{query id: {doc id: score}}`` (higher is better).
        qrels: ``{query id: {doc id: grade}}``; a query of qrels missing from ``run`` scores 0.

    Example:
        >>> from tamis.evaluation import ir_metrics
        >>> ir_metrics({"q": {"d1": 0.9, "d2": 0.5}}, {"q": {"d2": 1}})["MRR@10"]
        0.5
    """
    pytrec_eval = _pytrec_eval()
    judged = {q: {d: int(g) for d, g in docs.items()} for q, docs in qrels.items() if docs}
    if not judged:
        return {"nDCG@10": 0.0, "Recall@10": 0.0, "Recall@100": 0.0, "MRR@10": 0.0, "queries": 0}
    full = {q: {d: float(s) for d, s in run.get(q, {}).items()} for q in judged}
    top10 = {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:10]) for q, docs in full.items()}
    ev = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", "recall.10,100"})
    ev_rr = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"})
    res = ev.evaluate({q: d for q, d in full.items() if d})
    res_rr = ev_rr.evaluate({q: d for q, d in top10.items() if d})
    n = len(judged)

    def mean(table: Mapping[str, Mapping[str, float]], key: str) -> float:
        return float(sum(v.get(key, 0.0) for v in table.values()) / n)

    return {
        "nDCG@10": mean(res, "ndcg_cut_10"),
        "Recall@10": mean(res, "recall_10"),
        "Recall@100": mean(res, "recall_100"),
        "MRR@10": mean(res_rr, "recip_rank"),
        "queries": n,
    }


def pr_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled precision–recall curve: (precision, recall, thresholds), one point per distinct score.

    ``scores`` and ``labels`` (0/1) are flat arrays over all (query, candidate) pairs.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel() > 0.5
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    last = np.r_[s[1:] != s[:-1], True]
    n_pos = max(int(y.sum()), 1)
    precision = tp[last] / (np.flatnonzero(last) + 1)
    recall = tp[last] / n_pos
    return precision, recall, s[last]


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Pooled PR-AUC as average precision: sum over recall steps of precision (ties counted together)."""
    precision, recall, _ = pr_curve(scores, labels)
    if recall.size == 0 or recall[-1] == 0:
        return 0.0
    steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(steps * precision))


def precision_at_recall(scores: np.ndarray, labels: np.ndarray, recall: float) -> float:
    """The best precision of any threshold whose pooled recall is at least ``recall``."""
    p, r, _ = pr_curve(scores, labels)
    ok = r >= recall - 1e-12
    return float(p[ok].max()) if ok.any() else 0.0
