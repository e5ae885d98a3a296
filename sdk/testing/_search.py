"""The search part of the store contract: exactness, recall, thresholds, batches, offsets, arguments."""

from __future__ import annotations

import numpy as np
import pytest

from tamis._errors import ConfigError
from tamis.stores import SearchParams, StorePoint, VectorStore
from tamis.testing._fixtures import StoreFixtures, pid, unit

__all__ = ["SearchTests"]

Big = tuple[VectorStore, np.ndarray, np.ndarray]


def _threshold_between(row: np.ndarray, rank: int) -> float:
    """A threshold in a wide gap of the sorted scores near ``rank`` (away from any score)."""
    s = np.sort(row)[::-1]
    i = max(range(rank, rank + 40), key=lambda j: s[j] - s[j + 1])
    assert s[i] - s[i + 1] > 1e-4
    return float((s[i] + s[i + 1]) / 2)


class SearchTests(StoreFixtures):
    """`search` and `search_batch`."""

    def test_search_matches_brute_force(self, big: Big) -> None:
        store, vectors, queries = big
        scores = unit(queries) @ unit(vectors).T
        recall_hits = 0
        for q, row in zip(queries, scores, strict=True):
            truth = [pid(i) for i in np.argsort(-row)[:10]]
            exact = store.search("big", q, k=10, params=SearchParams(exact=True))
            assert [h.id for h in exact] == truth
            np.testing.assert_allclose([h.score for h in exact], np.sort(row)[::-1][:10], atol=1e-5)
            default = store.search("big", q, k=10)
            assert [h.score for h in default] == sorted((h.score for h in default), reverse=True)
            recall_hits += len({h.id for h in default} & set(truth))
        assert recall_hits / (10 * len(queries)) >= 0.95
        paged = store.search("big", queries[0], k=5, offset=5, params=SearchParams(exact=True))
        assert [h.id for h in paged] == [pid(i) for i in np.argsort(-scores[0])[5:10]]

    def test_score_threshold_is_exact(self, big: Big) -> None:
        store, vectors, queries = big
        scores = unit(queries) @ unit(vectors).T
        for q, row, rank in zip(queries[:5], scores[:5], (0, 5, 20, 50, 100), strict=True):
            threshold = _threshold_between(row, rank)
            expected = {pid(i) for i in np.flatnonzero(row >= threshold)}
            hits = store.search("big", q, k=500, score_threshold=threshold, params=SearchParams(exact=True))
            assert {h.id for h in hits} == expected
            assert all(h.score >= threshold for h in hits)
        assert store.search("big", queries[0], k=10, score_threshold=float(scores[0].max()) + 0.01) == []

    def test_search_batch_equals_single_searches(self, big: Big) -> None:
        store, vectors, queries = big
        scores = unit(queries) @ unit(vectors).T
        thresholds = [None, _threshold_between(scores[1], 3), _threshold_between(scores[2], 30), 1.5, None]
        exact = SearchParams(exact=True)
        batch = store.search_batch("big", queries[:5], k=40, score_thresholds=thresholds, params=exact)
        assert len(batch) == 5 and batch[3] == []
        for q, t, got in zip(queries[:5], thresholds, batch, strict=True):
            single = store.search("big", q, k=40, score_threshold=t, params=exact)
            assert [h.id for h in got] == [h.id for h in single]
            np.testing.assert_allclose([h.score for h in got], [h.score for h in single], atol=1e-6)
        assert store.search_batch("big", queries[:0], k=3) == []
        with pytest.raises(ConfigError, match="score_thresholds"):
            store.search_batch("big", queries[:3], k=3, score_thresholds=[0.1])

    def test_search_payload_and_arguments(self, filled: tuple[VectorStore, np.ndarray]) -> None:
        store, vectors = filled
        (hit,) = store.search("c", vectors[5], k=1)
        assert hit.id == pid(5) and hit.payload["i"] == 5 and hit.score == pytest.approx(1.0, abs=1e-5)
        (bare,) = store.search("c", vectors[5], k=1, with_payload=False)
        assert bare.payload == {}
        with pytest.raises(ConfigError, match="k must"):
            store.search("c", vectors[5], k=0)
        with pytest.raises(ConfigError, match="search_batch"):
            store.search("c", vectors[:2], k=1)
        bad_calls = {
            "k must": lambda: store.search_batch("c", vectors[:2], k=True),
            "offset": lambda: store.search("c", vectors[5], k=1, offset=-1),
            "2-D": lambda: store.search_batch("c", vectors[5], k=1),
            "hnsw_ef": lambda: store.search("c", vectors[5], k=1, params=SearchParams(hnsw_ef=0)),
            "params": lambda: store.search_batch("c", vectors[:2], k=1, params={"exact": True}),
        }
        for message, call in bad_calls.items():
            with pytest.raises(ConfigError, match=message):
                call()

    def test_other_distances(self, store: VectorStore) -> None:
        store.create_collection("dot", dim=2, distance="dot", metadata={})
        store.create_collection("l2", dim=2, distance="euclid", metadata={})
        points = [StorePoint(pid(i), np.array([float(i), 1.0], np.float32), {}) for i in range(5)]
        store.upsert("dot", points)
        store.upsert("l2", points)
        hits = store.search("dot", np.array([2.0, 0.0], np.float32), k=2)
        assert [(h.id, h.score) for h in hits] == [(pid(4), pytest.approx(8.0)), (pid(3), pytest.approx(6.0))]
        hits = store.search("l2", np.array([1.0, 1.0], np.float32), k=2)
        assert [h.id for h in hits] == [pid(1), pid(0)] or [h.id for h in hits] == [pid(1), pid(2)]
        assert hits[0].score == pytest.approx(0.0, abs=1e-6)
