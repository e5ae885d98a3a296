"""The hybrid part of the store contract: dense + BM25 sparse collections and `query_hybrid`.

Every expectation is computed here, client-side, from the same points: BM25 with the engine's IDF
(ln(1 + (N − n + 0.5) / (n + 0.5))), reciprocal rank fusion (Σ 1 / (k + rank), ranks from 0), and the
calibrated formula (exactly the hits whose relevance r ≥ τ, each scored r).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

from tamis._errors import ConfigError, DimensionMismatchError
from tamis.stores import Bm25Encoder, HybridQuery, RelevanceFormula, StorePoint, VectorStore
from tamis.testing._fixtures import DIM, StoreFixtures, pid, unit

__all__ = ["HybridTests"]

_WORDS = (
    "error code timeout socket python function path join mango pie recipe kernel panic disk "
    "quota network printer driver install update token parser"
).split()
HN = 40


def hybrid_points(n: int = HN, seed: int = 3) -> tuple[list[StorePoint], np.ndarray, list[str]]:
    """``n`` points with random unit vectors and texts of 3-8 words (plus a unique code word each)."""
    rng = np.random.default_rng(seed)
    texts = [" ".join([*rng.choice(_WORDS, size=int(rng.integers(3, 9))), f"e{i}x"]) for i in range(n)]
    vectors = unit(rng.standard_normal((n, DIM))).astype(np.float32)
    sparse = Bm25Encoder().embed_documents(texts)
    points = [
        StorePoint(pid(i), vectors[i], {"i": i, "group": "ab"[i % 2], "text": texts[i]}, sparse=sparse[i])
        for i in range(n)
    ]
    return points, vectors, texts


def bm25_reference(points: list[StorePoint], query: Any) -> dict[str, float]:
    """{point id: BM25 score} with the IDF the engine applies (points with a score > 0 only)."""
    df: Counter[int] = Counter(i for p in points for i in p.sparse.indices)
    n = len(points)
    idf = {t: math.log(1.0 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in query.indices}
    out = {}
    for p in points:
        w = dict(zip(p.sparse.indices, p.sparse.values, strict=True))
        s = sum(idf[t] * w[t] * qv for t, qv in zip(query.indices, query.values, strict=True) if t in w)
        if s > 0:
            out[p.id] = s
    return out


class HybridTests(StoreFixtures):
    """Hybrid collections (``create_collection(..., sparse=True)``) and `query_hybrid`.

    A store without hybrid collections sets ``supports_hybrid = False`` (these tests are then skipped).
    """

    supports_hybrid: bool = True

    @pytest.fixture
    def hybrid(self, store: VectorStore) -> tuple[VectorStore, list[StorePoint], np.ndarray]:
        if not self.supports_hybrid:
            pytest.skip("the store declares supports_hybrid = False")
        store.create_collection("h", dim=DIM, metadata={}, sparse=True)
        points, vectors, _ = hybrid_points()
        store.upsert("h", points)
        return store, points, vectors

    @staticmethod
    def _query(text: str, seed: int = 5) -> tuple[np.ndarray, Any]:
        dense = unit(np.random.default_rng(seed).standard_normal(DIM)).astype(np.float32)
        return dense, Bm25Encoder().embed_query(text)

    def test_hybrid_collection_is_hybrid_and_dense_still_works(self, hybrid: Any) -> None:
        store, points, vectors = hybrid
        assert store.is_hybrid("h")
        store.create_collection("d", dim=DIM, metadata={})
        assert not store.is_hybrid("d")
        assert store.collection_dim("h") == DIM and store.count("h") == HN
        q = vectors[7]
        hits = store.search("h", q, k=3)
        assert hits[0].id == pid(7) and abs(hits[0].score - 1.0) < 1e-5
        rec = store.retrieve("h", [pid(7)], with_vectors=True)[0]
        np.testing.assert_allclose(rec.vector, vectors[7], atol=1e-5)

    def test_sparse_on_dense_collection_is_refused(self, store: VectorStore) -> None:
        store.create_collection("d", dim=DIM, metadata={})
        points, _, _ = hybrid_points(3)
        with pytest.raises(ConfigError, match="sparse=True"):
            store.upsert("d", points)
        dense, sparse = self._query("error code")
        with pytest.raises(ConfigError, match="hybrid"):
            store.query_hybrid("d", [HybridQuery(dense=dense, sparse=sparse, mode="sparse")], k=3)
        assert store.count("d") == 0

    def test_sparse_mode_is_bm25_with_engine_idf(self, hybrid: Any) -> None:
        store, points, _ = hybrid
        for text in ("error code", "mango pie recipe", "e12x python"):
            dense, sparse = self._query(text)
            want = bm25_reference(points, sparse)
            got = store.query_hybrid("h", [HybridQuery(dense=dense, sparse=sparse, mode="sparse")], k=HN)[0]
            assert {p.id for p in got} == set(want)
            for p in got:
                assert p.sparse_score == p.score and abs(p.score - want[p.id]) < 1e-4 * max(1.0, want[p.id])
            assert [p.score for p in got] == sorted((p.score for p in got), reverse=True)

    def test_rrf_is_reciprocal_rank_fusion_of_both_sides(self, hybrid: Any) -> None:
        store, points, vectors = hybrid
        dense, sparse = self._query("network printer driver")
        got = store.query_hybrid(
            "h", [HybridQuery(dense=dense, sparse=sparse, mode="hybrid", fusion="rrf", rrf_k=10, prefetch=15)], k=10
        )[0]
        cos = vectors @ dense
        d_rank = [pid(i) for i in np.argsort(-cos)[:15]]
        # the engine's own BM25 ranking (checked against the reference above): equal scores keep its order
        side = store.query_hybrid("h", [HybridQuery(dense=dense, sparse=sparse, mode="sparse")], k=15)[0]
        s_rank = [p.id for p in side]
        fused: Counter[str] = Counter()
        for ranking in (d_rank, s_rank):
            for r, i in enumerate(ranking):
                fused[i] += 1.0 / (10 + r)
        want = sorted(fused.values(), reverse=True)[:10]
        np.testing.assert_allclose([p.score for p in got], want, rtol=1e-5)
        for p in got:
            assert abs(fused[p.id] - p.score) < 1e-6
            if p.id in d_rank:
                assert p.dense_score is not None and abs(p.dense_score - cos[int(points_index(points, p.id))]) < 1e-5
            else:
                assert p.dense_score is None

    def test_dbsf_fuses_only_prefetched_points(self, hybrid: Any) -> None:
        store, _, _ = hybrid
        dense, sparse = self._query("kernel panic disk")
        got = store.query_hybrid("h", [HybridQuery(dense=dense, sparse=sparse, fusion="dbsf", prefetch=8)], k=20)[0]
        assert 8 <= len(got) <= 16
        assert all(p.dense_score is not None or p.sparse_score is not None for p in got)
        assert [p.score for p in got] == sorted((p.score for p in got), reverse=True)

    def test_formula_returns_exactly_the_hits_with_relevance_at_least_tau(self, hybrid: Any) -> None:
        store, points, vectors = hybrid
        for text, seed, tau in (("error code timeout", 5, 0.5), ("python path join", 9, 0.35), ("zzz", 4, 0.6)):
            dense, sparse = self._query(text, seed)
            f = RelevanceFormula(a=3.0, w=1.5, b=-1.2, dense_default=-0.2, sparse_default=0.0)
            q = HybridQuery(dense=dense, sparse=sparse, fusion="formula", prefetch=20, formula=f, score_threshold=tau)
            got = store.query_hybrid("h", [q], k=HN)[0]
            # client side: both prefetches (the engine's own top-20 of each side, checked against the
            # references in the tests above), each missing side at its default, r computed in numpy
            d_top = {p.id: p.score for p in store.search("h", dense, k=20, with_payload=False)}
            side = store.query_hybrid("h", [q.replace(mode="sparse", fusion="rrf", formula=None)], k=20)[0]
            s_top = {p.id: p.score for p in side}
            ids = sorted(set(d_top) | set(s_top))
            r = f.value(np.array([d_top.get(i, np.nan) for i in ids]), np.array([s_top.get(i, np.nan) for i in ids]))
            want = {i for i, ri in zip(ids, r, strict=True) if ri > tau + 1e-6}
            near = {i for i, ri in zip(ids, r, strict=True) if abs(ri - tau) <= 1e-6}
            assert want <= {p.id for p in got} <= want | near
            rel = dict(zip(ids, r, strict=True))
            for p in got:
                assert abs(p.score - rel[p.id]) < 1e-5
                assert (p.dense_score is None) == (p.id not in d_top)
                assert p.sparse_score == s_top.get(p.id)

    def test_components_false_is_the_same_fused_hits_without_side_scores(self, hybrid: Any) -> None:
        store, _, _ = hybrid
        dense, sparse = self._query("network printer driver", 3)
        f = RelevanceFormula(a=3.0, w=1.5, b=-1.2, dense_default=-0.2)
        for q in (HybridQuery(dense=dense, sparse=sparse, prefetch=12),
                  HybridQuery(dense=dense, sparse=sparse, fusion="formula", formula=f, prefetch=12)):
            full, bare = store.query_hybrid("h", [q, q.replace(components=False)], k=HN)  # all: no cut among ties
            assert {p.id: round(p.score, 6) for p in bare} == {p.id: round(p.score, 6) for p in full}
            assert all(p.dense_score is None and p.sparse_score is None for p in bare)
            assert any(p.dense_score is not None for p in full) and any(p.sparse_score is not None for p in full)

    def test_batch_is_the_single_queries_and_filters_apply(self, hybrid: Any) -> None:
        store, points, _ = hybrid
        qs = []
        for j, text in enumerate(("error code", "mango pie", "socket timeout token")):
            dense, sparse = self._query(text, j)
            qs.append(HybridQuery(dense=dense, sparse=sparse, mode=("dense", "sparse", "hybrid")[j]))
        batch = store.query_hybrid("h", qs, k=5)
        for q, hits in zip(qs, batch, strict=True):
            single = store.query_hybrid("h", [q], k=5)[0]
            # the same scores; the same documents, but for ties at the cut (their order is the engine's)
            assert [round(p.score, 5) for p in single] == [round(p.score, 5) for p in hits]
            cut = round(hits[-1].score, 5)
            assert {p.id for p in single if round(p.score, 5) > cut} == {p.id for p in hits if round(p.score, 5) > cut}
        filtered = store.query_hybrid("h", qs, k=5, filter={"group": "a"})
        assert all(p.payload["group"] == "a" for hits in filtered for p in hits)
        assert all(len(h) == 5 for h in filtered[0::2])

    def test_rewrite_and_delete_keep_bm25_consistent(self, hybrid: Any, make_store: Any) -> None:
        store, points, _ = hybrid
        store.upsert("h", points)  # idempotent: the same points again
        store.delete_points("h", [points[0].id, points[1].id])
        dense, sparse = self._query("error code timeout")
        got = store.query_hybrid("h", [HybridQuery(dense=dense, sparse=sparse, mode="sparse")], k=HN)[0]
        # the IDF counts the live points; an engine that vacuums deleted points lazily (Qdrant Edge
        # 0.9) may still count them: either way, one IDF for every hit, and no deleted point comes back
        live, lazy = bm25_reference(points[2:], sparse), bm25_reference(points, sparse)
        def check(hits: list[Any]) -> None:
            assert {p.id for p in hits} == set(live)
            assert any(all(abs(p.score - ref[p.id]) < 1e-4 * max(1.0, ref[p.id]) for p in hits) for ref in (live, lazy))

        check(got)
        if self.persistent:
            store.close()
            again = make_store()
            assert again.is_hybrid("h") and again.count("h") == HN - 2
            check(again.query_hybrid("h", [HybridQuery(dense=dense, sparse=sparse, mode="sparse")], k=HN)[0])

    def test_bad_hybrid_queries_are_refused(self, hybrid: Any) -> None:
        store, _, _ = hybrid
        dense, sparse = self._query("error")
        bad = [
            (HybridQuery(dense=dense, sparse=sparse, mode="lexical"), "mode"),  # type: ignore[arg-type]
            (HybridQuery(dense=dense, sparse=sparse, fusion="sum"), "fusion"),  # type: ignore[arg-type]
            (HybridQuery(dense=None, sparse=sparse), "dense vector"),
            (HybridQuery(dense=dense, sparse=None), "sparse"),
            (HybridQuery(dense=dense, sparse=sparse, fusion="formula"), "RelevanceFormula"),
            (HybridQuery(dense=dense, sparse=sparse, prefetch=0), "prefetch"),
            (HybridQuery(dense=dense, sparse=sparse, rrf_k=0), "rrf_k"),
        ]
        for q, match in bad:
            with pytest.raises(ConfigError, match=match):
                store.query_hybrid("h", [q], k=3)
        with pytest.raises(DimensionMismatchError):
            store.query_hybrid("h", [HybridQuery(dense=dense[:4], sparse=sparse, mode="dense")], k=3)


def points_index(points: list[StorePoint], point_id: str) -> int:
    """The position of ``point_id`` among ``points``."""
    return next(i for i, p in enumerate(points) if p.id == point_id)
