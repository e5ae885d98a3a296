"""Calibration data of the hybrid adapter: per query, the union of its dense and BM25 candidates, with both scores.

For each query, the candidates are its top-K documents by cosine and its top-K by BM25 (the two
prefetches of the hybrid formula query, with the same K), each with its cosine (NaN when it was not
among the dense top-K: the formula then uses its default) and its BM25 score (NaN when not among
the BM25 top-K), and the two top-``window`` score lists the adapter's features read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tamis._errors import DataError
from tamis.calibration._data import CalibrationData

if TYPE_CHECKING:  # pragma: no cover
    from tamis.collection import Collection

__all__ = ["HybridCalibrationData"]

#: (document id, score) lists of one query, best first
Ranked = Sequence[tuple[str, float]]


@dataclass
class HybridCalibrationData:
    """Candidates of a set of queries for the hybrid adapter (see the module).

    Attributes:
        query_ids: the queries, in row order.
        query_vectors: (n, dim) query embeddings.
        dense, sparse: (n, M) cosine and BM25 score of each candidate; NaN where the candidate was not
            among that side's top-K (or is padding: then both are NaN).
        labels: (n, M) relevance labels (0 for padding).
        dense_window, sparse_window: (n, window) each side's top scores, best first, NaN padded.
        doc_ids: the candidates' document ids.
        relevant: (n,) relevant documents per query in the qrels.
        dense_floor: (n,) the K-th cosine of each query (the lowest its dense prefetch holds).
        sparse_floor: (n,) the K-th BM25 score of each query when its BM25 prefetch is full, else 0
            (then no document outside it shares a query term); None: unknown (0 is used).
    """

    query_ids: list[str]
    query_vectors: np.ndarray
    dense: np.ndarray
    sparse: np.ndarray
    labels: np.ndarray
    dense_window: np.ndarray
    sparse_window: np.ndarray
    doc_ids: list[list[str]]
    relevant: np.ndarray
    dense_floor: np.ndarray
    sparse_floor: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.query_ids)

    @property
    def mask(self) -> np.ndarray:
        """True where a candidate exists."""
        return ~(np.isnan(self.dense) & np.isnan(self.sparse))

    def as_calibration_data(self) -> CalibrationData:
        """The same candidates and labels as `CalibrationData` (what `choose_threshold` reads)."""
        placeholder = np.where(self.mask, 0.0, np.nan)
        return CalibrationData(
            self.query_ids, self.query_vectors, placeholder, self.labels, self.doc_ids, self.relevant
        )

    def subset(self, rows: Sequence[int] | np.ndarray) -> HybridCalibrationData:
        """The queries at ``rows``, in that order."""
        idx = np.asarray(rows, dtype=np.int64)
        return HybridCalibrationData(
            [self.query_ids[i] for i in idx], self.query_vectors[idx], self.dense[idx], self.sparse[idx],
            self.labels[idx], self.dense_window[idx], self.sparse_window[idx], [self.doc_ids[i] for i in idx],
            self.relevant[idx], self.dense_floor[idx], None if self.sparse_floor is None else self.sparse_floor[idx],
        )

    @classmethod
    def from_rankings(
        cls,
        query_ids: Sequence[str],
        query_vectors: np.ndarray,
        dense: Sequence[Ranked],
        sparse: Sequence[Ranked],
        qrels: Mapping[str, Mapping[str, int]],
        *,
        window: int = 10,
        k: int | None = None,
    ) -> HybridCalibrationData:
        """From each query's dense and BM25 rankings (its top-K of each, best first) and the qrels.

        ``k``: K, the prefetch the rankings were cut at (None: the longest dense ranking's length); a
        BM25 ranking of K documents is full, and its K-th score is the query's ``sparse_floor``."""
        if not (len(query_ids) == len(dense) == len(sparse) == len(query_vectors)):
            raise DataError(
                f"{len(query_ids)} queries, {len(query_vectors)} vectors, {len(dense)} dense and "
                f"{len(sparse)} sparse rankings: give one of each per query"
            )
        rows = []
        for qid, d, s in zip(query_ids, dense, sparse, strict=True):
            ids = list(dict.fromkeys([i for i, _ in d] + [i for i, _ in s]))
            rows.append((qid, ids, dict(d), dict(s)))
        m = max((len(r[1]) for r in rows), default=0)
        n = len(rows)
        dn, sp = np.full((n, m), np.nan), np.full((n, m), np.nan)
        labels = np.zeros((n, m))
        dw, sw = np.full((n, window), np.nan), np.full((n, window), np.nan)
        floor, relevant, doc_ids = np.full(n, np.nan), np.zeros(n), []
        full = k if k is not None else max((len(x) for x in dense), default=0)
        sfloor = np.zeros(n)
        for r, (qid, ids, d, s) in enumerate(rows):
            judged = qrels.get(qid, {})
            for j, doc in enumerate(ids):
                dn[r, j] = d.get(doc, np.nan)
                sp[r, j] = s.get(doc, np.nan)
                labels[r, j] = 1.0 if judged.get(doc, 0) > 0 else 0.0
            dvals = [v for _, v in dense[r]][:window]
            svals = [v for _, v in sparse[r]][:window]
            dw[r, : len(dvals)], sw[r, : len(svals)] = dvals, svals
            if dense[r]:
                floor[r] = dense[r][-1][1]
            if full and len(sparse[r]) >= full:
                sfloor[r] = max(float(sparse[r][full - 1][1]), 0.0)
            relevant[r] = float(sum(1 for g in judged.values() if g > 0))
            doc_ids.append(ids)
        return cls(list(query_ids), np.asarray(query_vectors, np.float32), dn, sp, labels, dw, sw, doc_ids, relevant, floor,
                   sfloor)

    @classmethod
    def from_collection(
        cls,
        collection: Collection,
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]],
        *,
        k: int = 100,
        window: int = 10,
        batch_size: int = 256,
    ) -> HybridCalibrationData:
        """Each judged query's top-``k`` by cosine and by BM25 from a hybrid ``collection``, labelled by ``qrels``."""
        ids = [q for q in queries if q in qrels]
        if not ids:
            raise DataError(f"none of the {len(queries)} queries has relevance judgements ({len(qrels)} judged)")
        vecs, dense, sparse = [], [], []
        for start in range(0, len(ids), batch_size):
            texts = [queries[q] for q in ids[start : start + batch_size]]
            v = collection.encode_queries(texts, batch_size=batch_size)
            bm = collection.bm25.embed_queries(texts)
            d = collection.search_vectors(v, k, mode="dense", relevance_filter=False)
            s = collection.search_vectors(v, k, mode="sparse", sparse_vectors=bm, relevance_filter=False)
            vecs.append(v)
            dense.extend([(h.id, h.score) for h in hits] for hits in d)
            sparse.extend([(h.id, float(h.sparse_score or 0.0)) for h in hits] for hits in s)
        return cls.from_rankings(ids, np.concatenate(vecs), dense, sparse, qrels, window=window, k=k)
