"""Hybrid collections through qdrant-client: the sparse vector config, hybrid points, `QdrantHybrid`'s queries.

Checked against qdrant-client 1.20 in local mode (``:memory:`` and ``path=``): sparse vectors with
``Modifier.IDF`` (the client keeps the IDF statistics), ``Prefetch`` + ``RrfQuery(Rrf(k))``,
``FusionQuery(Fusion.DBSF)`` and ``FormulaQuery`` (``$score[i]`` variables, ``defaults``, and
``score_threshold`` applied to the formula's value) all run in local mode, with the same results
as Qdrant Edge, so no store needs a two-step fallback. A Qdrant server has the same query API from
1.14 on (formulas; ``Rrf(k)`` from 1.16); the request bodies are qdrant-client's own models. A
batch is one ``query_batch_points`` request.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qdrant_client import models

from tamis.stores import SPARSE_NAME, FusedPoint, HybridQuery, RelevanceFormula, SearchParams, to_scored
from tamis.stores._hybrid import run_batch

__all__ = ["QdrantHybrid", "formula_query", "hybrid_batch", "sparse_config"]


def sparse_config() -> dict[str, models.SparseVectorParams]:
    """The ``sparse_vectors_config`` of a hybrid collection: BM25 with the IDF modifier."""
    return {SPARSE_NAME: models.SparseVectorParams(modifier=models.Modifier.IDF)}


def _sparse(sv: Any) -> models.SparseVector:
    return models.SparseVector(indices=list(sv.indices), values=list(sv.values))


def hybrid_batch(ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]], sparse: list[Any]) -> list[Any]:
    """Points with the dense vector unnamed (``""``) and the sparse one (when given) under `SPARSE_NAME`."""
    out = []
    for i, row, p, sv in zip(ids, vectors.tolist(), payloads, sparse, strict=True):
        vector: Any = {"": row} if sv is None else {"": row, SPARSE_NAME: _sparse(sv)}
        out.append(models.PointStruct(id=i, vector=vector, payload=p))
    return out


def formula_query(f: RelevanceFormula) -> models.FormulaQuery:
    """The ``FormulaQuery`` of r = 1 / (1 + exp(-(a·$score[0] + w·ln(1 + $score[1]) + b)))."""
    z = models.SumExpression(sum=[
        models.MultExpression(mult=[f.a, "$score[0]"]),
        models.MultExpression(mult=[f.w, models.LnExpression(ln=models.SumExpression(sum=[1.0, "$score[1]"]))]),
        f.b,
    ])
    r = models.DivExpression(div=models.DivParams(
        left=1.0, right=models.SumExpression(sum=[1.0, models.ExpExpression(exp=models.NegExpression(neg=z))])
    ))
    return models.FormulaQuery(formula=r, defaults={"$score[0]": f.dense_default, "$score[1]": f.sparse_default})


def _requests(
    q: HybridQuery, *, k: int, filter: Any, params: models.SearchParams | None, with_payload: bool
) -> list[models.QueryRequest]:
    dense = None if q.dense is None else q.dense.tolist()
    sparse = None if q.sparse is None else _sparse(q.sparse)
    if q.mode != "hybrid":
        using = None if q.mode == "dense" else SPARSE_NAME
        query = dense if q.mode == "dense" else sparse
        return [models.QueryRequest(
            query=query, using=using, limit=k, filter=filter, params=params, score_threshold=q.score_threshold,
            with_payload=with_payload,
        )]
    n = q.prefetch
    prefetch = [
        models.Prefetch(query=dense, limit=n, filter=filter, params=params),
        models.Prefetch(query=sparse, using=SPARSE_NAME, limit=n, filter=filter, params=params),
    ]
    fused: Any
    if q.fusion == "rrf":
        fused = models.RrfQuery(rrf=models.Rrf(k=q.rrf_k))
    elif q.fusion == "dbsf":
        fused = models.FusionQuery(fusion=models.Fusion.DBSF)
    else:
        assert q.formula is not None
        fused = formula_query(q.formula)
    main = models.QueryRequest(
        prefetch=prefetch, query=fused, limit=k, filter=filter, score_threshold=q.score_threshold,
        with_payload=with_payload,
    )
    if not q.components:
        return [main]
    sides = [
        models.QueryRequest(query=dense, limit=n, filter=filter, params=params, with_payload=False),
        models.QueryRequest(query=sparse, using=SPARSE_NAME, limit=n, filter=filter, params=params, with_payload=False),
    ]
    return [main, *sides]


class QdrantHybrid:
    """The hybrid hooks of `QdrantClientStore` (mixed in before `BaseStore`)."""

    def _is_hybrid(self, name: str) -> bool:
        sparse = self._collection(name).config.params.sparse_vectors or {}  # type: ignore[attr-defined]
        return SPARSE_NAME in sparse

    def _query_hybrid(
        self, target: str, queries: list[HybridQuery], *, k: int, filter: Any, params: SearchParams, with_payload: bool
    ) -> list[list[FusedPoint]]:
        """Every query's requests in ONE ``query_batch_points`` request."""
        qparams = self._params(params)  # type: ignore[attr-defined]

        def execute(requests: list[Any]) -> list[Any]:
            responses = self._call("search", target, self._client.query_batch_points, target, requests=requests)  # type: ignore[attr-defined]
            return [to_scored(r.points) for r in responses]

        def build(q: HybridQuery) -> list[Any]:
            return _requests(q, k=k, filter=filter, params=qparams, with_payload=with_payload)

        return run_batch(queries, build, execute)
