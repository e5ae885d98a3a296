"""The points part of the store contract: upsert, retrieve, scroll, count, delete, filters, persistence."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tamis._errors import ConfigError, DimensionMismatchError, StoreError
from tamis.stores import StorePoint, VectorStore
from tamis.testing._fixtures import DIM, N, StoreFixtures, make_points, pid, unit

__all__ = ["PointTests"]

#: (mapping filter, which payloads of `make_points` it keeps)
MAPPING_FILTERS: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
    ({"group": "b"}, lambda p: p["group"] == "b"),
    ({"group": ["a", "c"]}, lambda p: p["group"] in "ac"),
    ({"group": ("c",)}, lambda p: p["group"] == "c"),
    ({"i": [1, 2, 3, 200]}, lambda p: p["i"] in (1, 2, 3)),
    ({"i": {"gte": 10, "lt": 20}}, lambda p: 10 <= p["i"] < 20),
    ({"i": {"gt": 40.5}}, lambda p: p["i"] > 40.5),
    ({"metadata.lang": "fr"}, lambda p: p["metadata"]["lang"] == "fr"),
    ({"flag": True}, lambda p: p["flag"]),
    ({"flag": False, "i": {"lte": 30}}, lambda p: not p["flag"] and p["i"] <= 30),
    ({"group": "zzz"}, lambda p: False),
]


class _Foreign:
    """A filter object of some other library: no store may accept it."""


#: filters every store rejects with `ConfigError`
BAD_FILTERS: list[Any] = [
    {"i": {"between": 1}},
    {"i": {}},
    {"i": {"gt": "3"}},
    {"group": []},
    {"group": ["a", 1]},
    {"score": 1.5},
    {"": "x"},
    "group = 'a'",
    ["group", "a"],
    _Foreign(),
]


class PointTests(StoreFixtures):
    """Writing, reading and filtering points; persistence and concurrent use."""

    def test_upsert_retrieve_payload_round_trip(self, store: VectorStore) -> None:
        store.create_collection("c", dim=4, metadata={})
        payload = {
            "text": "naïve café ✓",
            "metadata": {"lang": "fr", "tags": ["a", "b"], "deep": {"x": [1, 2.5, True, None, {"y": -3}]}},
            "int": 2**40,
            "float": 0.1,
            "bool": False,
            "empty": {},
            "list": [],
        }
        v = np.array([3.0, 0.0, 4.0, 0.0], dtype=np.float32)
        store.upsert("c", [StorePoint(pid(1), v, payload), StorePoint(pid(2), -v, {})])
        (record,) = store.retrieve("c", [pid(1), pid(99)], with_vectors=True)
        assert record.id == pid(1)
        assert record.payload == payload
        assert isinstance(record.payload["int"], int) and isinstance(record.payload["float"], float)
        np.testing.assert_allclose(record.vector, unit(v), atol=1e-6)  # cosine stores unit vectors
        (bare,) = store.retrieve("c", [pid(2)], with_payload=False)
        assert bare.payload == {} and bare.vector is None

    def test_ids_are_canonical_uuid_strings(self, store: VectorStore) -> None:
        store.create_collection("c", dim=4, metadata={})
        u = uuid.uuid4()
        store.upsert("c", [StorePoint(str(u).upper(), np.ones(4, np.float32), {})])
        store.upsert("c", [StorePoint(str(u), np.ones(4, np.float32), {"v": 2})])  # same point
        assert store.count("c") == 1
        (hit,) = store.search("c", np.ones(4, np.float32), k=5)
        assert hit.id == str(u) and isinstance(hit.id, str)
        with pytest.raises(ConfigError, match="UUID"):
            store.upsert("c", [StorePoint("doc-1", np.ones(4, np.float32), {})])

    def test_upsert_is_idempotent(self, filled: tuple[VectorStore, np.ndarray]) -> None:
        store, _ = filled
        points, _ = make_points(N)
        store.upsert("c", points)
        assert store.count("c") == N
        changed = [StorePoint(p.id, p.vector, {**p.payload, "v": 2}) for p in points[:10]]
        store.upsert("c", changed)
        assert store.count("c") == N
        assert all(r.payload["v"] == 2 for r in store.retrieve("c", [p.id for p in changed]))

    def test_dimension_mismatch(self, filled: tuple[VectorStore, np.ndarray]) -> None:
        store, _ = filled
        with pytest.raises(DimensionMismatchError, match=r"(?s)(5.*16|16.*5)"):
            store.upsert("c", [StorePoint(pid(500), np.zeros(5, np.float32), {})])
        ragged = [
            StorePoint(pid(500), np.ones(DIM, np.float32), {}),
            StorePoint(pid(501), np.ones(3, np.float32), {}),
        ]
        with pytest.raises(DimensionMismatchError):
            store.upsert("c", ragged)
        with pytest.raises(DimensionMismatchError, match=r"(?s)(7.*16|16.*7)"):
            store.search("c", np.ones(7, np.float32), k=3)
        with pytest.raises(DimensionMismatchError):
            store.search_batch("c", np.ones((2, 7), np.float32), k=3)
        assert store.count("c") == N  # nothing of the failed batches was written

    def test_delete_points(self, filled: tuple[VectorStore, np.ndarray]) -> None:
        store, _ = filled
        store.delete_points("c", [pid(0), pid(1), pid(2), str(uuid.uuid4())])
        assert store.count("c") == N - 3
        assert store.retrieve("c", [pid(0), pid(1), pid(2)]) == []
        assert len(store.retrieve("c", [pid(3)])) == 1

    def test_count_with_mapping_filter(self, filled: tuple[VectorStore, np.ndarray]) -> None:
        store, _ = filled
        assert store.count("c") == N
        assert store.count("c", {"group": "a"}) == N // 3
        assert store.count("c", {"group": "a", "flag": True}) == N // 6
        assert store.count("c", {"metadata.lang": "fr"}) == N // 4

    def test_scroll_all(self, filled: tuple[VectorStore, np.ndarray]) -> None:
        store, vectors = filled
        records = list(store.scroll("c", batch_size=17, with_vectors=True))
        ids = [r.id for r in records]
        assert ids == sorted(pid(i) for i in range(N))  # id order, every point once
        by_i = {r.payload["i"]: r for r in records}
        assert sorted(by_i) == list(range(N))
        np.testing.assert_allclose(by_i[7].vector, unit(vectors[7]), atol=1e-5)
        fr = list(store.scroll("c", filter={"metadata.lang": "fr"}, batch_size=7))
        assert sorted(r.payload["i"] for r in fr) == list(range(0, N, 4))
        with pytest.raises(ConfigError, match="batch_size"):
            store.scroll("c", batch_size=0)

    # -- filters --------------------------------------------------------------------------------
    def test_mapping_filters(self, filled: tuple[VectorStore, np.ndarray]) -> None:
        store, vectors = filled
        points, _ = make_points(N)
        for flt, keep in MAPPING_FILTERS:
            expected = {p.id for p in points if keep(p.payload)}
            assert store.count("c", flt) == len(expected), flt
            assert {r.id for r in store.scroll("c", filter=flt)} == expected, flt
            hits = store.search("c", vectors[0], k=N, filter=flt)
            assert {h.id for h in hits} == expected, flt
            (batch,) = store.search_batch("c", vectors[:1], k=N, filter=flt)
            assert {h.id for h in batch} == expected, flt

    def test_native_filter_passes_through(
        self, filled: tuple[VectorStore, np.ndarray], native_filter: Callable[[str, Any], Any] | None
    ) -> None:
        if native_filter is None:
            pytest.skip("no native_filter fixture for this store")
        store, vectors = filled
        flt = native_filter("group", "c")
        assert store.count("c", flt) == N // 3
        hits = store.search("c", vectors[0], k=N, filter=flt)
        assert len(hits) == N // 3 and all(h.payload["group"] == "c" for h in hits)

    def test_invalid_filter_raises_config_error(self, store: VectorStore) -> None:
        store.create_collection("c", dim=4, metadata={})
        for bad in BAD_FILTERS:
            with pytest.raises(ConfigError):
                store.count("c", bad)
            with pytest.raises(ConfigError):
                store.search("c", np.ones(4, np.float32), k=3, filter=bad)
            with pytest.raises(ConfigError):
                store.search_batch("c", np.ones((1, 4), np.float32), k=3, filter=bad)
            with pytest.raises(ConfigError):
                store.scroll("c", filter=bad)

    # -- persistence, concurrency ---------------------------------------------------------------
    def test_flush_and_optimize_keep_the_points(self, filled: tuple[VectorStore, np.ndarray]) -> None:
        store, vectors = filled
        store.flush("c")
        store.optimize("c")
        assert store.count("c") == N
        assert store.search("c", vectors[3], k=1)[0].id == pid(3)
        with pytest.raises(ConfigError, match="name"):
            store.flush("../c")

    def test_reopen_keeps_everything(self, make_store: Callable[[], VectorStore]) -> None:
        if not self.persistent:
            pytest.skip("this store keeps nothing by design")
        store = make_store()
        store.create_collection("c", dim=DIM, metadata={"model": {"name": "m"}})
        points, vectors = make_points(50)
        store.upsert("c", points)
        store.delete_points("c", [pid(0)])
        store.set_metadata("c", {"model": {"name": "m2"}})
        store.set_alias("live", "c")
        store.flush("c")
        store.close()
        with pytest.raises(StoreError, match="closed"):
            store.count("c")

        again = make_store()
        assert again.list_collections() == ["c"]
        assert again.get_metadata("c") == {"model": {"name": "m2"}}
        assert again.collection_dim("c") == DIM
        assert again.resolve_alias("live") == "c"
        assert again.count("c") == 49
        (record,) = again.retrieve("c", [pid(7)])
        assert record.payload == points[7].payload
        assert again.search("live", vectors[7], k=1)[0].id == pid(7)

    def test_concurrent_upsert_and_search(self, store: VectorStore) -> None:
        store.create_collection("c", dim=DIM, metadata={})
        points, vectors = make_points(300)
        store.upsert("c", points[:100])
        errors: list[BaseException] = []
        done = threading.Event()

        def write() -> None:
            try:
                for start in range(100, 300, 20):
                    store.upsert("c", points[start : start + 20])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                done.set()

        def read() -> None:
            try:
                while not done.is_set():
                    assert len(store.search("c", vectors[3], k=5)) == 5
                    store.count("c")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write), threading.Thread(target=read)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert store.count("c") == 300
