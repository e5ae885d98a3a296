"""Calibration data: per query, its top-K candidates with their raw cosines and relevance labels.

`CalibrationData` is what an adapter is trained, thresholded and evaluated on; it is built from a
collection (`CalibrationData.from_collection`, labels from qrels or a teacher) or from vectors
(`CalibrationData.from_vectors`, exact top-K, for benchmarks). `holdout_split` is the one seeded
hold-out split of training queries used for early stopping and the threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tamis._errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from tamis.collection import Collection

__all__ = ["CalibrationData", "Teacher", "holdout_split"]

#: a teacher scores (query text, document text) pairs with probabilities of relevance in [0, 1]
Teacher = Callable[[Sequence[str], Sequence[str]], Sequence[float]]
#: fewer training queries than this are never split: early stopping and the threshold use them all
MIN_HOLDOUT_QUERIES = 10


@dataclass
class CalibrationData:
    """Candidates of a set of queries: what an adapter is trained, thresholded and evaluated on.

    Attributes:
        query_ids: the queries, in row order.
        query_vectors: (n, dim) float32 query embeddings.
        scores: (n, K) raw cosines of each query's top-K candidates, best first; NaN pads short lists.
        labels: (n, K) relevance labels in [0, 1] (1 relevant; a teacher's probability; 0 for padding).
        doc_ids: (n lists of up to K) candidate document ids, when known.
        relevant: (n,) relevant documents of each query in the qrels (found among the candidates or
            not), for recall against the judgements; NaN when unknown (soft labels).
    """

    query_ids: list[str]
    query_vectors: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    doc_ids: list[list[str]] | None = None
    relevant: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.query_vectors = np.asarray(self.query_vectors, dtype=np.float32)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.float32)
        n = len(self.query_ids)
        if self.query_vectors.ndim != 2 or len(self.query_vectors) != n:
            raise DataError(f"query_vectors must be ({n}, dim), got {self.query_vectors.shape}")
        if self.scores.ndim != 2 or self.scores.shape[0] != n or self.labels.shape != self.scores.shape:
            raise DataError(
                f"scores and labels must both be ({n}, K); got {self.scores.shape} and {self.labels.shape}"
            )
        if np.any((self.labels < 0) | (self.labels > 1)):
            raise DataError("labels must lie in [0, 1]")
        if self.relevant is None:
            self.relevant = np.full(n, np.nan)

    def __len__(self) -> int:
        return len(self.query_ids)

    @property
    def mask(self) -> np.ndarray:
        """True where a candidate exists (not padding)."""
        return ~np.isnan(self.scores)

    def window(self, w: int) -> np.ndarray:
        """The top-``w`` scores of each query (NaN padded): the score-list feature window."""
        s = self.scores[:, :w]
        if s.shape[1] < w:
            s = np.concatenate([s, np.full((len(s), w - s.shape[1]), np.nan, dtype=np.float32)], axis=1)
        return s

    def subset(self, rows: Sequence[int] | np.ndarray) -> CalibrationData:
        """The queries at ``rows``, in that order."""
        idx = np.asarray(rows, dtype=np.int64)
        return CalibrationData(
            [self.query_ids[i] for i in idx], self.query_vectors[idx], self.scores[idx], self.labels[idx],
            None if self.doc_ids is None else [self.doc_ids[i] for i in idx],
            None if self.relevant is None else self.relevant[idx],
        )

    @classmethod
    def from_collection(
        cls,
        collection: Collection,
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]] | None = None,
        *,
        k: int = 100,
        teacher: Teacher | None = None,
        batch_size: int = 256,
        exact: bool = False,
    ) -> CalibrationData:
        """Top-``k`` candidates of ``queries`` from ``collection``, labelled.

        Args:
            collection: a tamis collection (its own encoder encodes the queries).
            queries: ``{query id: text}``. With qrels, only queries that have judgements are used.
            qrels: ``{query id: {doc id: grade}}``; grade > 0 is relevant (label 1), the rest 0.
            k: candidates per query.
            teacher: instead of (or with queries lacking) qrels: ``teacher(query texts, doc texts)``
                -> probabilities of relevance, used as soft labels.
        """
        if qrels is None and teacher is None:
            raise ConfigError("give qrels (labelled pairs) or a teacher (soft labels) to build calibration data")
        if qrels is not None:
            ids = [q for q in queries if q in qrels]
            if teacher is None and not ids:
                raise DataError(
                    f"none of the {len(queries)} queries has relevance judgements (qrels cover "
                    f"{len(qrels)} queries); check that the split's qrels match the queries file"
                )
            if teacher is not None:
                ids = list(queries)
        else:
            ids = list(queries)
        vecs_all, scores_all, labels_all, docs_all, rel_all = [], [], [], [], []
        for start in range(0, len(ids), batch_size):
            part = ids[start : start + batch_size]
            texts = [queries[q] for q in part]
            vecs = collection.encode_queries(texts, batch_size=batch_size)
            results = collection.search_vectors(vecs, k, exact=exact, relevance_filter=False)
            for qid, text, vec, hits in zip(part, texts, vecs, results, strict=True):
                s = np.full(k, np.nan, dtype=np.float32)
                y = np.zeros(k, dtype=np.float32)
                s[: len(hits)] = [h.score for h in hits]
                judged = (qrels or {}).get(qid)
                if judged is not None:
                    y[: len(hits)] = [1.0 if judged.get(h.id, 0) > 0 else 0.0 for h in hits]
                    rel_all.append(float(sum(1 for g in judged.values() if g > 0)))
                elif teacher is not None and hits:
                    probs = np.asarray(teacher([text] * len(hits), [h.text for h in hits]), dtype=np.float32)
                    if probs.shape != (len(hits),) or np.any(~np.isfinite(probs)) or np.any((probs < 0) | (probs > 1)):
                        raise DataError(
                            f"the teacher must return {len(hits)} probabilities in [0, 1] for query {qid!r}, "
                            f"got {probs[:5]!r}..."
                        )
                    y[: len(hits)] = probs
                    rel_all.append(float("nan"))
                else:
                    rel_all.append(float("nan"))
                vecs_all.append(vec)
                scores_all.append(s)
                labels_all.append(y)
                docs_all.append([h.id for h in hits])
        if not ids:
            raise DataError("no queries to build calibration data from")
        return cls(ids, np.stack(vecs_all), np.stack(scores_all), np.stack(labels_all), docs_all, np.asarray(rel_all))

    @classmethod
    def from_vectors(
        cls,
        query_ids: Sequence[str],
        query_vectors: np.ndarray,
        doc_ids: Sequence[str],
        doc_vectors: np.ndarray,
        qrels: Mapping[str, Mapping[str, int]],
        *,
        k: int = 100,
        batch_size: int = 1024,
    ) -> CalibrationData:
        """Exact top-``k`` candidates by brute-force cosine over unit vectors (for benchmarks, small sets)."""
        from tamis._math import exact_top_k

        qv = np.asarray(query_vectors, dtype=np.float32)
        scores, labels, docs, rel = [], [], [], []
        for row, order, sims in exact_top_k(qv, doc_vectors, k, batch_size=batch_size):
            judged = qrels.get(query_ids[row], {})
            ids = [doc_ids[j] for j in order]
            scores.append(sims)
            labels.append([1.0 if judged.get(d, 0) > 0 else 0.0 for d in ids])
            docs.append(ids)
            rel.append(float(sum(1 for g in judged.values() if g > 0)))
        return cls(list(query_ids), qv, np.asarray(scores), np.asarray(labels), docs, np.asarray(rel))


def holdout_split(data: CalibrationData, share: float, seed: int) -> tuple[CalibrationData, CalibrationData | None]:
    """(train, dev): a seeded random ``share`` of ``data``'s queries held out as ``dev``, both in row order.

    The dev part has ``max(1, round(len(data) * share))`` queries. Nothing is held out (dev is None)
    when ``share`` is 0 or ``data`` has fewer than `MIN_HOLDOUT_QUERIES` queries. The same seed and data
    give the same split.
    """
    if share <= 0 or len(data) < MIN_HOLDOUT_QUERIES:
        return data, None
    perm = np.random.default_rng(seed).permutation(len(data))
    n_dev = max(1, int(round(len(data) * share)))
    return data.subset(np.sort(perm[n_dev:])), data.subset(np.sort(perm[:n_dev]))
