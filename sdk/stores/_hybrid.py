"""Hybrid (dense + BM25 sparse) queries: the store-neutral query description and `HybridMethods`.

A hybrid collection (``create_collection(..., sparse=True)``) holds, per point, the dense vector
(unnamed) and the BM25 sparse vector `SPARSE_NAME`. `HybridMethods.query_hybrid` runs a batch of
`HybridQuery` in ONE engine call (a query batch):

* ``mode="dense"`` — nearest by cosine; ``mode="sparse"`` — nearest by BM25 (IDF by the engine);
* ``mode="hybrid"`` — two prefetches (dense top-``prefetch``, sparse top-``prefetch``) fused in the
  engine: ``fusion="rrf"`` (reciprocal rank fusion with ``rrf_k``), ``"dbsf"`` (distribution-based
  score fusion), or ``"formula"``: a `RelevanceFormula`, r = sigmoid(a·c + w·ln(1 + s) + b) over
  ``$score[0]`` (cosine c) and ``$score[1]`` (BM25 s), with a default for a point missing from one
  prefetch; the query's ``score_threshold`` applies to r itself, in the engine.

Each hit of a hybrid query carries ``dense_score`` and ``sparse_score`` when the query asks for them
(``components=True``, the default): the same batch then holds the two prefetches once more, standalone
and without payloads, and the hits are joined with them by id (None where a point is missing from one
side; the formula used that side's default). ``components=False`` sends the fused request alone (one
engine request per query: the fast path when the caller needs only the fused score, or already knows
both sides' scores, as the ``hybrid_relevance`` stage does from its windows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from tamis._errors import ConfigError
from tamis.stores._helpers import check_name, check_search_args, resolve_params, single_vector, vector_matrix
from tamis.stores._protocol import ScoredPoint, SearchParams
from tamis.stores._sparse import SparseVector, check_sparse

__all__ = [
    "FUSIONS", "MODES", "FusedPoint", "HybridMethods", "HybridQuery", "RelevanceFormula", "check_point_sparse",
    "join_components", "run_batch",
]

Mode = Literal["dense", "sparse", "hybrid"]
Fusion = Literal["rrf", "dbsf", "formula"]
MODES = ("dense", "sparse", "hybrid")
FUSIONS = ("rrf", "dbsf", "formula")


@dataclass(frozen=True, kw_only=True)
class RelevanceFormula:
    """r = sigmoid(a·c + w·ln(1 + s) + b): the calibrated hybrid relevance of one query, as engine constants.

    ``c`` is the cosine (``$score[0]``), ``s`` the BM25 score (``$score[1]``); a point missing from one
    prefetch takes ``dense_default`` / ``sparse_default``.
    """

    a: float
    w: float
    b: float
    dense_default: float = 0.0
    sparse_default: float = 0.0

    def __post_init__(self) -> None:
        for name in ("a", "w", "b", "dense_default", "sparse_default"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.floating)) or not np.isfinite(v):
                raise ConfigError(f"RelevanceFormula.{name} must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.w < 0 or self.sparse_default < 0:
            raise ConfigError(f"the BM25 weight w and its default must be >= 0, got w={self.w}, {self.sparse_default}")

    def value(self, dense: np.ndarray, sparse: np.ndarray) -> np.ndarray:
        """r for arrays of cosines and BM25 scores (NaN: missing, takes the default), in float64."""
        c = np.where(np.isnan(dense), self.dense_default, np.asarray(dense, dtype=np.float64))
        s = np.where(np.isnan(sparse), self.sparse_default, np.asarray(sparse, dtype=np.float64))
        z = self.a * c + self.w * np.log1p(np.maximum(s, 0.0)) + self.b
        return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True, kw_only=True)
class HybridQuery:
    """One query of `HybridMethods.query_hybrid`: its vectors, mode and fusion (see the module)."""

    dense: np.ndarray | None = None
    sparse: SparseVector | None = None
    mode: Mode = "hybrid"
    fusion: Fusion = "rrf"
    rrf_k: int = 60
    prefetch: int = 100
    formula: RelevanceFormula | None = None
    score_threshold: float | None = None
    components: bool = True

    def replace(self, **changes: Any) -> HybridQuery:
        """A copy with ``changes``."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class FusedPoint:
    """One hit of a hybrid query: the ranking ``score`` (cosine, BM25, fused, or r) and both sides' scores.

    ``dense_score`` / ``sparse_score`` are None where the point was not among that side's prefetch
    (the formula then used its default).
    """

    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)
    dense_score: float | None = None
    sparse_score: float | None = None


def join_components(
    main: Sequence[ScoredPoint], dense: Sequence[ScoredPoint] | None, sparse: Sequence[ScoredPoint] | None, mode: str
) -> list[FusedPoint]:
    """``main``'s hits with each side's score by id (from the standalone prefetch results)."""
    d = {p.id: p.score for p in dense or ()}
    s = {p.id: p.score for p in sparse or ()}
    out = []
    for p in main:
        ds = p.score if mode == "dense" else d.get(p.id)
        ss = p.score if mode == "sparse" else s.get(p.id)
        out.append(FusedPoint(p.id, p.score, p.payload, ds, ss))
    return out


class HybridMethods:
    """`query_hybrid` and `is_hybrid` with their argument checks; a store implements the two hooks.

    A store that keeps the defaults here has no hybrid collections: `is_hybrid` is False and
    `query_hybrid` raises `ConfigError` (its ``search`` still answers dense queries).
    """

    kind: str

    def is_hybrid(self, name: str) -> bool:
        """Whether the collection (or the alias's target) holds BM25 sparse vectors."""
        return self._is_hybrid(check_name(name))

    def query_hybrid(
        self,
        name: str,
        queries: Sequence[HybridQuery],
        *,
        k: int,
        filter: Any = None,
        params: SearchParams | None = None,
        with_payload: bool = True,
    ) -> list[list[FusedPoint]]:
        """Run ``queries`` (dense, sparse or fused) in one engine call; ``k`` hits each, best first.

        Raises:
            ConfigError: a mode or fusion that does not exist, a missing vector, a formula without
                ``fusion="formula"``, or a sparse/hybrid query on a collection without sparse vectors.
        """
        check_name(name)
        check_search_args(k)
        target, dim = self._query_dim(name)  # type: ignore[attr-defined]
        checked = [_checked(q, i, dim, target) for i, q in enumerate(queries)]
        if any(q.mode != "dense" for q in checked) and not self._is_hybrid(target):
            raise ConfigError(
                f"collection {name!r} has no BM25 sparse vectors, so it cannot answer mode='sparse' or "
                "'hybrid'; re-index it with hybrid=True (`tamis reindex NAME --hybrid`) or use mode='dense'"
            )
        if not checked:
            return []
        return self._query_hybrid(
            target, checked, k=k, filter=self._filter(filter),  # type: ignore[attr-defined]
            params=resolve_params(params), with_payload=bool(with_payload),
        )

    # -- hooks ---------------------------------------------------------------------------------
    def _is_hybrid(self, name: str) -> bool:
        return False

    def _query_hybrid(
        self, target: str, queries: list[HybridQuery], *, k: int, filter: Any, params: SearchParams, with_payload: bool
    ) -> list[list[FusedPoint]]:
        raise ConfigError(f"the {self.kind!r} store does not implement hybrid queries")


def _checked(q: HybridQuery, i: int, dim: int | None, target: str) -> HybridQuery:
    if not isinstance(q, HybridQuery):
        raise ConfigError(f"query {i} is a {type(q).__name__}, not a tamis.stores.HybridQuery")
    if q.mode not in MODES:
        raise ConfigError(f"unknown mode {q.mode!r}; use one of {list(MODES)}")
    if q.fusion not in FUSIONS:
        raise ConfigError(f"unknown fusion {q.fusion!r}; use one of {list(FUSIONS)}")
    if isinstance(q.rrf_k, bool) or not isinstance(q.rrf_k, int) or q.rrf_k < 1:
        raise ConfigError(f"rrf_k must be a positive integer, got {q.rrf_k!r}")
    if isinstance(q.prefetch, bool) or not isinstance(q.prefetch, int) or q.prefetch < 1:
        raise ConfigError(f"prefetch must be a positive integer, got {q.prefetch!r}")
    if (q.formula is not None) != (q.mode == "hybrid" and q.fusion == "formula"):
        raise ConfigError("a RelevanceFormula goes with mode='hybrid', fusion='formula' (and that fusion needs one)")
    changes: dict[str, Any] = {}
    if q.mode != "sparse":
        if q.dense is None:
            raise ConfigError(f"query {i} has mode={q.mode!r} and needs a dense vector")
        vec = single_vector(q.dense)
        changes["dense"] = vec if dim is None else vector_matrix(vec, dim, target, "query vector")[0]
    if q.mode != "dense":
        if q.sparse is None:
            raise ConfigError(f"query {i} has mode={q.mode!r} and needs a sparse (BM25) query vector")
        changes["sparse"] = check_sparse(q.sparse, f"the sparse vector of query {i}")
    if q.score_threshold is not None:
        changes["score_threshold"] = float(q.score_threshold)
    return q.replace(**changes)


def check_point_sparse(store: HybridMethods, target: str, points: Sequence[Any]) -> list[SparseVector | None] | None:
    """The checked sparse vectors of ``points`` (None when none has one); `ConfigError` on a dense-only collection."""
    if all(getattr(p, "sparse", None) is None for p in points):
        return None
    if not store._is_hybrid(target):
        raise ConfigError(
            f"points with sparse vectors for collection {target!r}, which has none; create it with sparse=True "
            "(a hybrid collection), or leave StorePoint.sparse empty"
        )
    return [None if p.sparse is None else check_sparse(p.sparse, f"the sparse vector of point {p.id}") for p in points]


def run_batch(
    queries: Sequence[HybridQuery],
    build: Callable[[HybridQuery], list[Any]],
    execute: Callable[[list[Any]], Sequence[Sequence[ScoredPoint]]],
) -> list[list[FusedPoint]]:
    """The store-neutral part of a `query_hybrid` hook: ``build`` each query's engine requests (its main
    request, then for ``mode="hybrid"`` the two standalone prefetches), ``execute`` them all in one
    engine call, join each main result with its prefetches' scores (none for ``components=False``)."""
    requests: list[Any] = []
    sizes: list[int] = []
    for q in queries:
        built = build(q)
        sizes.append(len(built))
        requests.extend(built)
    results = execute(requests)
    out: list[list[FusedPoint]] = []
    at = 0
    for q, n in zip(queries, sizes, strict=True):
        main, *sides = results[at : at + n]
        at += n
        dense, sparse = sides if sides else (None, None)
        out.append(join_components(main, dense, sparse, q.mode))
    return out
