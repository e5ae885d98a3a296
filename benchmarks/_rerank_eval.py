"""The "+ rerank" column of benchmarks/hybrid.py: a cross-encoder re-scores the calibrated hybrid's top N.

What the ``rerank`` stage does (`tamis.calibration.calibrate_rerank`): the cross-encoder's logits on
each query's top ``top_n`` candidates, Platt-scaled on labelled queries (dev; python-faq: the other
folds) to probabilities, τ by `choose_threshold` for the same target recall. Only the top N come
back from the stage, so the column's recall is bounded by the top N's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from tamis.calibration import CalibrationData, CrossEncoderScorer, choose_threshold, platt

__all__ = ["Reranker"]


def _order_check(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """MRR@10 of the labelled (fit) queries' top N in the input order against the cross-encoder's order:
    the training signal on queries the cross-encoder never saw (dev; python-faq: other folds)."""
    def mrr(order_labels: np.ndarray) -> float:
        top = order_labels[:, :10] > 0.5
        first = np.where(top.any(axis=1), top.argmax(axis=1) + 1.0, np.inf)
        return float(np.mean(1.0 / first))

    ce = np.argsort(-np.nan_to_num(logits, nan=-np.inf), axis=1, kind="stable")
    return {"queries": int(len(labels)), "mrr@10 input order": mrr(labels),
            "mrr@10 cross-encoder order": mrr(np.take_along_axis(labels, ce, axis=1))}


class Reranker:
    """A cross-encoder with a cache of (query, document) logits, shared by folds and splits."""

    def __init__(self, model: Path, doc_text: Mapping[str, str], *, top_n: int = 30, width: int = 100) -> None:
        self.scorer = CrossEncoderScorer(str(model), device="cpu", batch_size=64)
        self.doc_text, self.top_n, self.width = doc_text, top_n, width
        self.cache: dict[tuple[str, str], float] = {}
        self.pairs_scored = 0
        self.dev_checks: list[dict[str, float]] = []

    def logits(self, query: str, docs: Sequence[str]) -> np.ndarray:
        todo = [d for d in docs if (query, d) not in self.cache]
        if todo:
            for d, v in zip(todo, self.scorer.scores(query, [self.doc_text[d] for d in todo]), strict=True):
                self.cache[(query, d)] = float(v)
            self.pairs_scored += len(todo)
        return np.array([self.cache[(query, d)] for d in docs])

    def _matrix(self, texts, ranked_docs, qids, qrels):
        n = len(qids)
        lg, y = np.full((n, self.top_n), np.nan), np.zeros((n, self.top_n))
        docs = []
        for i, (q, text, dl) in enumerate(zip(qids, texts, ranked_docs, strict=True)):
            top = list(dl[: self.top_n])
            lg[i, : len(top)] = self.logits(text, top)
            y[i, : len(top)] = [1.0 if qrels.get(q, {}).get(d, 0) > 0 else 0.0 for d in top]
            docs.append(top)
        return lg, y, docs

    def column(
        self, fit: tuple[list[str], list[str], list[list[str]]], test: tuple[list[str], list[str], list[list[str]]],
        qrels: Mapping[str, Mapping[str, int]], target_recall: float,
    ) -> tuple[tuple[np.ndarray, np.ndarray, list[list[str]]], float, tuple[float, float]]:
        """((test scores, labels, docs), τ, Platt (a, b)): Platt and τ from the ``fit`` queries' ranked lists
        (ids, texts, ranked doc ids), then the test queries re-scored and re-ordered by probability."""
        fl, fy, _ = self._matrix(fit[1], fit[2], fit[0], qrels)
        mask = ~np.isnan(fl)
        self.dev_checks.append(_order_check(fl, fy))
        a, b = platt(fl[mask], fy[mask])
        probs = np.where(mask, 1.0 / (1.0 + np.exp(-(a * np.nan_to_num(fl) + b))), np.nan)
        rel = np.array([float(sum(1 for g in qrels.get(q, {}).values() if g > 0)) for q in fit[0]])
        data = CalibrationData(list(fit[0]), np.zeros((len(fit[0]), 1)), np.where(mask, 0.0, np.nan), fy, None, rel)
        tau = choose_threshold(probs, data, target_recall=target_recall).threshold
        tl, ty, tdocs = self._matrix(test[1], test[2], test[0], qrels)
        tp = 1.0 / (1.0 + np.exp(-(a * tl + b)))
        s, y, docs = np.full((len(tdocs), self.width), np.nan), np.zeros((len(tdocs), self.width)), []
        for i, dl in enumerate(tdocs):
            order = [j for j in np.argsort(-np.nan_to_num(tp[i], nan=-np.inf)) if not np.isnan(tp[i, j])]
            s[i, : len(order)], y[i, : len(order)] = tp[i, order], ty[i, order]
            docs.append([dl[j] for j in order])
        return (s, y, docs), float(tau), (float(a), float(b))
