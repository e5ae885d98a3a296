"""Hybrid collections on Qdrant Edge: the sparse vector config, hybrid points, and `EdgeHybrid`'s queries.

Checked against qdrant-edge-py 0.9: a shard holds the unnamed dense vector and the sparse vector
``bm25`` (``EdgeSparseVectorParams(modifier=Modifier.Idf)``: the engine keeps the IDF statistics of
the points stored); ``Prefetch`` + ``Fusion.Rrf(k)`` / ``Fusion.Dbsf()`` / ``Formula`` (an expression
tree over ``$score[0]`` and ``$score[1]``, with defaults for a point missing from one prefetch) run in
one ``query``; the request's ``score_threshold`` applies to the fused value (strictly greater, as
for a dense query). A query batch (``query_batch``) runs many such requests in one call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import qdrant_edge as _qe

from tamis.stores import SPARSE_NAME, FusedPoint, HybridQuery, RelevanceFormula, SearchParams, to_scored
from tamis.stores._hybrid import run_batch

__all__ = ["EdgeHybrid", "formula_expression", "hybrid_config", "hybrid_info", "hybrid_points"]

_E = _qe.Expression


def hybrid_config(config: Any) -> Any:
    """``config`` (a new shard's ``EdgeConfig``) with the BM25 sparse vector (IDF modifier) added."""
    fields = (
        "vectors", "on_disk_payload", "hnsw_config", "quantization_config", "optimizers", "max_search_threads",
        "search_pool_core", "payload_memory", "id_tracker_memory", "wal_enabled",
    )
    kept = {f: getattr(config, f) for f in fields if getattr(config, f, None) is not None}
    sparse = {SPARSE_NAME: _qe.EdgeSparseVectorParams(modifier=_qe.Modifier.Idf)}
    return _qe.EdgeConfig(**kept, sparse_vectors=sparse)


def hybrid_info(sparse: bool) -> dict[str, Any]:
    """What a collection's ``tamis.json`` says about its sparse vector (nothing for a dense-only one)."""
    return {"sparse": SPARSE_NAME} if sparse else {}


def hybrid_points(
    ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]], sparse: list[Any] | None
) -> list[Any]:
    """Edge points; with ``sparse``, the dense vector unnamed and the sparse one (when given) under `SPARSE_NAME`."""
    out = []
    for i, row, p, sv in zip(ids, vectors.tolist(), payloads, sparse or [None] * len(ids), strict=True):
        vector: Any = row if sv is None else {"": row, SPARSE_NAME: _qe.SparseVector(list(sv.indices), list(sv.values))}
        out.append(_qe.Point(i, vector, p))
    return out


def formula_expression(f: RelevanceFormula) -> Any:
    """The ``qdrant_edge.Formula`` of r = 1 / (1 + exp(-(a·$score[0] + w·ln(1 + $score[1]) + b)))."""
    z = _E.Sum([
        _E.Mult([_E.Constant(f.a), _E.Variable("$score[0]")]),
        _E.Mult([_E.Constant(f.w), _E.Ln(_E.Sum([_E.Constant(1.0), _E.Variable("$score[1]")]))]),
        _E.Constant(f.b),
    ])
    r = _E.Div(_E.Constant(1.0), _E.Sum([_E.Constant(1.0), _E.Exp(_E.Neg(z))]), None)
    return _qe.Formula(r, defaults={"$score[0]": f.dense_default, "$score[1]": f.sparse_default})


def _requests(q: HybridQuery, *, k: int, filter: Any, params: SearchParams, with_payload: bool) -> list[Any]:
    sp = _qe.SearchParams(hnsw_ef=params.hnsw_ef, exact=params.exact)
    dense = None if q.dense is None else _qe.Query.Nearest(q.dense.tolist())
    sparse = None
    if q.sparse is not None:
        sparse = _qe.Query.Nearest(_qe.SparseVector(list(q.sparse.indices), list(q.sparse.values)), using=SPARSE_NAME)
    if q.mode != "hybrid":
        query = dense if q.mode == "dense" else sparse
        return [_qe.QueryRequest(
            limit=k, query=query, filter=filter, score_threshold=q.score_threshold, params=sp,
            with_payload=with_payload, with_vector=False,
        )]
    n = q.prefetch
    prefetches = [
        _qe.Prefetch(limit=n, query=dense, filter=filter, params=sp),
        _qe.Prefetch(limit=n, query=sparse, filter=filter, params=sp),
    ]
    fused: Any
    if q.fusion == "rrf":
        fused = _qe.Fusion.Rrf(k=q.rrf_k)
    elif q.fusion == "dbsf":
        fused = _qe.Fusion.Dbsf()
    else:
        assert q.formula is not None
        fused = formula_expression(q.formula)
    main = _qe.QueryRequest(
        limit=k, prefetches=prefetches, query=fused, filter=filter, score_threshold=q.score_threshold,
        with_payload=with_payload, with_vector=False,
    )
    if not q.components:
        return [main]
    sides = [
        _qe.QueryRequest(limit=n, query=side, filter=filter, params=sp, with_payload=False, with_vector=False)
        for side in (dense, sparse)
    ]
    return [main, *sides]


class EdgeHybrid:
    """The hybrid hooks of `EdgeStore` (mixed in before `BaseStore`)."""

    def _is_hybrid(self, name: str) -> bool:
        physical = self._resolve(name)  # type: ignore[attr-defined]
        return bool(self._files.info(physical).get("sparse"))  # type: ignore[attr-defined]

    def _query_hybrid(
        self, target: str, queries: list[HybridQuery], *, k: int, filter: Any, params: SearchParams, with_payload: bool
    ) -> list[list[FusedPoint]]:
        """Every query's requests in ONE engine batch."""
        physical, opened = self._get(target)  # type: ignore[attr-defined]

        def execute(requests: list[Any]) -> list[Any]:
            batch = _qe.QueryBatchRequest(requests)
            return [to_scored(r) for r in self._engine("search", physical, opened.shard.query_batch, batch)]  # type: ignore[attr-defined]

        def build(q: HybridQuery) -> list[Any]:
            return _requests(q, k=k, filter=filter, params=params, with_payload=with_payload)

        return run_batch(queries, build, execute)
