"""One `VectorStore` suite, run against every backend: Edge, qdrant-client ``:memory:`` and local ``path=``."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter

import numpy as np
import pytest
import qdrant_edge
from qdrant_client import models

import tamis.adapters.qdrant_edge as edge_module
from tamis._errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    ConfigError,
    DimensionMismatchError,
    StoreError,
)
from tamis.adapters.qdrant_client import QdrantClientStore
from tamis.adapters.qdrant_edge import EdgeStore
from tamis.stores import SearchParams, StorePoint, VectorStore

BACKENDS = ["edge", "qdrant-memory", "qdrant-path"]
PERSISTENT = {"edge", "qdrant-path"}
DIM = 16
NS = uuid.UUID("7d8b5c1e-2f0a-4a43-9d55-0c1d2e3f4a5b")


def pid(i: int) -> str:
    return str(uuid.uuid5(NS, f"doc-{i}"))


def make_points(n: int, dim: int = DIM, seed: int = 0) -> tuple[list[StorePoint], np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    points = [
        StorePoint(
            pid(i),
            vectors[i],
            {
                "i": i,
                "group": "abc"[i % 3],
                "flag": i % 2 == 0,
                "metadata": {"lang": "en" if i % 4 else "fr"},
            },
        )
        for i in range(n)
    ]
    return points, vectors


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def open_store(backend: str, folder) -> VectorStore:
    if backend == "edge":
        return EdgeStore(folder / "edge")
    if backend == "qdrant-memory":
        return QdrantClientStore(":memory:")
    return QdrantClientStore(path=folder / "qdrant")


@pytest.fixture(params=BACKENDS, scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_store(backend: str, tmp_path):
    """A factory: each call opens a store on the same location (a fresh one for ':memory:')."""
    opened: list[VectorStore] = []

    def make() -> VectorStore:
        opened.append(open_store(backend, tmp_path))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store) -> VectorStore:
    return make_store()


N = 60  # points in the `filled` collection (local mode with path= commits each point: keep it small)


@pytest.fixture
def filled(store) -> tuple[VectorStore, np.ndarray]:
    """A store with collection 'c': N points of dimension DIM."""
    store.create_collection("c", dim=DIM, metadata={"model": "fake"})
    points, vectors = make_points(N)
    store.upsert("c", points)
    return store, vectors


def native_filter(backend: str, key: str, value: str):
    if backend == "edge":
        return qdrant_edge.Filter(must=[qdrant_edge.FieldCondition(key, match=qdrant_edge.MatchValue(value))])
    return models.Filter(must=[models.FieldCondition(key=key, match=models.MatchValue(value=value))])


# -- collections ------------------------------------------------------------------------------------
def test_implements_protocol(store):
    assert isinstance(store, VectorStore)
    assert store.kind in {"edge", "qdrant"}


def test_collection_lifecycle(store):
    assert store.list_collections() == []
    assert not store.collection_exists("b")
    store.create_collection("b", dim=4, metadata={})
    store.create_collection("a.v1", dim=8, distance="dot", metadata={})
    assert store.list_collections() == ["a.v1", "b"]
    assert store.collection_exists("b")
    assert store.collection_dim("a.v1") == 8
    store.delete_collection("b")
    assert store.list_collections() == ["a.v1"]
    assert not store.collection_exists("b")
    store.delete_collection("b")  # absent: no error


def test_create_twice_raises(store):
    store.create_collection("c", dim=4, metadata={})
    with pytest.raises(CollectionExistsError, match="'c'"):
        store.create_collection("c", dim=4, metadata={})


def test_create_validates_arguments(store):
    with pytest.raises(ConfigError, match="dim"):
        store.create_collection("c", dim=0, metadata={})
    with pytest.raises(ConfigError, match="manhattan"):
        store.create_collection("c", dim=4, distance="manhattan", metadata={})
    with pytest.raises(ConfigError, match="JSON"):
        store.create_collection("c", dim=4, metadata={"x": object()})
    assert store.list_collections() == []


def test_missing_collection_raises(store):
    v = np.zeros(DIM, dtype=np.float32)
    calls = [
        lambda: store.get_metadata("nope"),
        lambda: store.set_metadata("nope", {}),
        lambda: store.collection_dim("nope"),
        lambda: store.upsert("nope", [StorePoint(pid(0), v, {})]),
        lambda: store.retrieve("nope", [pid(0)]),
        lambda: store.count("nope"),
        lambda: list(store.scroll("nope")),
        lambda: store.search("nope", v, k=3),
        lambda: store.search_batch("nope", v[None], k=3),
        lambda: store.delete_points("nope", [pid(0)]),
    ]
    for call in calls:
        with pytest.raises(CollectionNotFoundError, match="nope"):
            call()


def test_metadata_round_trip_and_replace(store):
    meta = {
        "model": {"name": "minilm", "fingerprint": "ab12"},
        "dim": 384,
        "calibration": [1, 2.5, None, True],
    }
    store.create_collection("c", dim=4, metadata=meta)
    assert store.get_metadata("c") == meta
    store.set_metadata("c", {"only": "this"})
    assert store.get_metadata("c") == {"only": "this"}  # replaced, not merged
    got = store.get_metadata("c")
    got["only"] = "mutated"
    assert store.get_metadata("c") == {"only": "this"}  # a copy is returned
    with pytest.raises(ConfigError):
        store.set_metadata("c", {"bad": {1, 2}})
    assert store.get_metadata("c") == {"only": "this"}


def test_collection_dim(store):
    store.create_collection("c", dim=384, metadata={})
    assert store.collection_dim("c") == 384


@pytest.mark.parametrize(
    "bad", ["", "../evil", "a/b", "..", ".hidden", "a b", "x" * 256, "tab\t", "c:\\x", None, 3]
)
def test_bad_collection_names(store, bad):
    with pytest.raises(ConfigError, match="name"):
        store.create_collection(bad, dim=4, metadata={})
    with pytest.raises(ConfigError, match="name"):
        store.get_metadata(bad)
    store.create_collection("ok", dim=4, metadata={})
    with pytest.raises(ConfigError, match="name"):
        store.set_alias(bad, "ok")


# -- points -----------------------------------------------------------------------------------------
def test_upsert_retrieve_payload_round_trip(store):
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


def test_ids_are_canonical_uuid_strings(store):
    store.create_collection("c", dim=4, metadata={})
    u = uuid.uuid4()
    store.upsert("c", [StorePoint(str(u).upper(), np.ones(4, np.float32), {})])
    store.upsert("c", [StorePoint(str(u), np.ones(4, np.float32), {"v": 2})])  # same point
    assert store.count("c") == 1
    (hit,) = store.search("c", np.ones(4, np.float32), k=5)
    assert hit.id == str(u) and isinstance(hit.id, str)
    with pytest.raises(ConfigError, match="UUID"):
        store.upsert("c", [StorePoint("doc-1", np.ones(4, np.float32), {})])


def test_upsert_is_idempotent(filled):
    store, _ = filled
    points, _ = make_points(N)
    store.upsert("c", points)
    assert store.count("c") == N
    changed = [StorePoint(p.id, p.vector, {**p.payload, "v": 2}) for p in points[:10]]
    store.upsert("c", changed)
    assert store.count("c") == N
    assert all(r.payload["v"] == 2 for r in store.retrieve("c", [p.id for p in changed]))


def test_dimension_mismatch(filled):
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


def test_delete_points(filled):
    store, _ = filled
    store.delete_points("c", [pid(0), pid(1), pid(2), str(uuid.uuid4())])
    assert store.count("c") == N - 3
    assert store.retrieve("c", [pid(0), pid(1), pid(2)]) == []
    assert len(store.retrieve("c", [pid(3)])) == 1


def test_count_with_mapping_filter(filled):
    store, _ = filled
    assert store.count("c") == N
    assert store.count("c", {"group": "a"}) == N // 3
    assert store.count("c", {"group": "a", "flag": True}) == N // 6
    assert store.count("c", {"metadata.lang": "fr"}) == N // 4


def test_scroll_all(filled):
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


# -- search -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big(backend, tmp_path_factory):
    """A read-only store with 500 random points of dimension 32, shared by the search tests."""
    store = open_store(backend, tmp_path_factory.mktemp("big"))
    points, vectors = make_points(500, dim=32, seed=1)
    store.create_collection("big", dim=32, metadata={})
    store.upsert("big", points)
    store.optimize("big")
    queries = np.random.default_rng(2).standard_normal((20, 32)).astype(np.float32)
    yield store, vectors, queries
    store.close()


def test_search_matches_brute_force(big):
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


def _threshold_between(row: np.ndarray, rank: int) -> float:
    """A threshold in a wide gap of the sorted scores near ``rank`` (away from any score)."""
    s = np.sort(row)[::-1]
    i = max(range(rank, rank + 40), key=lambda j: s[j] - s[j + 1])
    assert s[i] - s[i + 1] > 1e-4
    return float((s[i] + s[i + 1]) / 2)


def test_score_threshold_is_exact(big):
    store, vectors, queries = big
    scores = unit(queries) @ unit(vectors).T
    for q, row, rank in zip(queries[:5], scores[:5], (0, 5, 20, 50, 100), strict=True):
        threshold = _threshold_between(row, rank)
        expected = {pid(i) for i in np.flatnonzero(row >= threshold)}
        hits = store.search("big", q, k=500, score_threshold=threshold, params=SearchParams(exact=True))
        assert {h.id for h in hits} == expected
        assert all(h.score >= threshold for h in hits)
    assert store.search("big", queries[0], k=10, score_threshold=float(scores[0].max()) + 0.01) == []


def test_search_batch_equals_single_searches(big):
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


def test_search_payload_and_arguments(filled):
    store, vectors = filled
    (hit,) = store.search("c", vectors[5], k=1)
    assert hit.id == pid(5) and hit.payload["i"] == 5 and hit.score == pytest.approx(1.0, abs=1e-5)
    (bare,) = store.search("c", vectors[5], k=1, with_payload=False)
    assert bare.payload == {}
    with pytest.raises(ConfigError, match="k must"):
        store.search("c", vectors[5], k=0)
    with pytest.raises(ConfigError, match="search_batch"):
        store.search("c", vectors[:2], k=1)


def test_other_distances(store):
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


# -- filters ----------------------------------------------------------------------------------------
MAPPING_FILTERS = [
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


def test_mapping_filters(filled):
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


def test_native_filter_passes_through(filled, backend):
    store, vectors = filled
    flt = native_filter(backend, "group", "c")
    assert store.count("c", flt) == N // 3
    hits = store.search("c", vectors[0], k=N, filter=flt)
    assert len(hits) == N // 3 and all(h.payload["group"] == "c" for h in hits)


def test_invalid_filter_raises_config_error(store, backend):
    store.create_collection("c", dim=4, metadata={})
    other_backend = native_filter("qdrant" if backend == "edge" else "edge", "group", "a")
    bad_filters = [
        {"i": {"between": 1}},
        {"i": {}},
        {"i": {"gt": "3"}},
        {"group": []},
        {"group": ["a", 1]},
        {"score": 1.5},
        {"": "x"},
        "group = 'a'",
        ["group", "a"],
        other_backend,
    ]
    for bad in bad_filters:
        with pytest.raises(ConfigError):
            store.count("c", bad)
        with pytest.raises(ConfigError):
            store.search("c", np.ones(4, np.float32), k=3, filter=bad)
        with pytest.raises(ConfigError):
            store.scroll("c", filter=bad)


# -- aliases ----------------------------------------------------------------------------------------
def test_aliases(store):
    store.create_collection("docs-v1", dim=4, metadata={"v": 1})
    store.create_collection("docs-v2", dim=4, metadata={"v": 2})
    store.upsert("docs-v1", [StorePoint(pid(1), np.ones(4, np.float32), {})])
    assert store.resolve_alias("docs") is None
    store.set_alias("docs", "docs-v1")
    assert store.resolve_alias("docs") == "docs-v1"
    assert store.list_collections() == ["docs-v1", "docs-v2"]  # aliases are not collections
    assert store.collection_exists("docs")
    assert store.get_metadata("docs") == {"v": 1}  # every method accepts an alias
    assert store.count("docs") == 1
    store.set_alias("docs", "docs-v2")  # switch
    assert store.resolve_alias("docs") == "docs-v2"
    assert store.count("docs") == 0
    assert store.resolve_alias("docs-v1") is None  # a collection is not an alias
    with pytest.raises(CollectionExistsError):
        store.create_collection("docs", dim=4, metadata={})
    with pytest.raises(ConfigError, match="alias"):
        store.delete_collection("docs")
    with pytest.raises(ConfigError, match="collection of that name"):
        store.set_alias("docs-v1", "docs-v2")
    with pytest.raises(CollectionNotFoundError):
        store.set_alias("other", "missing")
    with pytest.raises(CollectionNotFoundError):
        store.set_alias("other", "docs")  # not at another alias
    store.delete_alias("docs")
    assert store.resolve_alias("docs") is None
    assert not store.collection_exists("docs")
    store.delete_alias("docs")  # absent: no error
    assert store.list_collections() == ["docs-v1", "docs-v2"]


def test_alias_switch_is_atomic_for_readers(store):
    store.create_collection("blue", dim=4, metadata={})
    store.create_collection("green", dim=4, metadata={})
    store.set_alias("live", "blue")
    seen: list[str | None] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(store.resolve_alias("live"))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(30):
            store.set_alias("live", ("green", "blue")[i % 2])
    finally:
        done.set()
        reader.join()
    assert seen and set(seen) <= {"blue", "green"}


def test_deleting_a_collection_drops_its_aliases(store):
    store.create_collection("c", dim=4, metadata={})
    store.set_alias("a", "c")
    store.delete_collection("c")
    assert store.resolve_alias("a") is None


# -- persistence, concurrency -----------------------------------------------------------------------
def test_reopen_keeps_everything(make_store, backend):
    if backend not in PERSISTENT:
        pytest.skip("':memory:' keeps nothing by design")
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


def test_concurrent_upsert_and_search(store):
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


# -- backend-specific -------------------------------------------------------------------------------
def test_entry_points_find_both_stores():
    from tamis import registry

    assert registry.load(registry.STORES, "edge") is EdgeStore
    assert registry.load(registry.STORES, "qdrant") is QdrantClientStore


def test_edge_layout_and_unwritable_dir(tmp_path):
    with EdgeStore(tmp_path / "data") as store:
        store.create_collection("c", dim=4, metadata={"m": 1})
        store.set_alias("live", "c")
        assert (tmp_path / "data/collections/c/shard").is_dir()
        assert (tmp_path / "data/collections/c/tamis.json").is_file()
        assert (tmp_path / "data/aliases.json").is_file()
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(StoreError, match="TAMIS_HOME") as info:
        EdgeStore(tmp_path / "a-file" / "data")
    assert "a-file" in str(info.value) and "path=" in str(info.value)


def test_edge_failed_create_leaves_nothing(tmp_path, monkeypatch):
    with EdgeStore(tmp_path) as store:

        def broken(path, data):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(edge_module, "_write_json_atomic", broken)
        with pytest.raises(StoreError, match="No space left"):
            store.create_collection("c", dim=4, metadata={})
        monkeypatch.undo()
        assert list((tmp_path / "collections").iterdir()) == []
        assert store.list_collections() == []
        store.create_collection("c", dim=4, metadata={})
        assert store.list_collections() == ["c"]


def test_edge_collection_is_locked_by_its_opener(tmp_path):
    with EdgeStore(tmp_path) as first, EdgeStore(tmp_path) as second:
        first.create_collection("c", dim=4, metadata={})
        assert first.count("c") == 0
        with pytest.raises(StoreError, match="another"):
            second.count("c")


def test_edge_optimize_builds_hnsw(tmp_path):
    points, vectors = make_points(2000, dim=32, seed=3)
    with EdgeStore(tmp_path, indexing_threshold_kb=1) as store:
        store.create_collection("c", dim=32, metadata={})
        store.upsert("c", points)
        assert store.collection_info("c")["indexed_vectors"] == 0
        store.optimize("c")
        assert store.collection_info("c")["indexed_vectors"] == 2000
        queries = np.random.default_rng(4).standard_normal((20, 32)).astype(np.float32)
        truth = np.argsort(-(unit(queries) @ unit(vectors).T), axis=1)[:, :10]
        found = store.search_batch("c", queries, k=10)
        recall = np.mean(
            [len({h.id for h in f} & {pid(i) for i in t}) / 10 for f, t in zip(found, truth, strict=True)]
        )
        assert recall >= 0.95
        for q, t in zip(queries[:5], truth[:5], strict=True):
            assert [h.id for h in store.search("c", q, k=10, params=SearchParams(exact=True))] == [
                pid(i) for i in t
            ]


_WRITER = textwrap.dedent(
    """
    import sys, uuid
    import numpy as np
    from tamis.stores._protocol import StorePoint
    from tamis.adapters.qdrant_edge import EdgeStore

    store = EdgeStore(sys.argv[1])
    rng = np.random.default_rng(0)
    batch = 0
    while True:
        vectors = rng.standard_normal((200, 16)).astype(np.float32)
        ids = [str(uuid.UUID(int=batch * 1000 + j + 1)) for j in range(200)]
        store.upsert("c", [StorePoint(i, v, {"batch": batch}) for i, v in zip(ids, vectors)])
        print(batch, flush=True)  # acknowledged: upsert() returned, no flush()
        batch += 1
    """
)


def test_edge_sigkill_keeps_every_acknowledged_batch(tmp_path):
    with EdgeStore(tmp_path) as store:
        store.create_collection("c", dim=16, metadata={})
    acked = -1
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        deadline = time.monotonic() + 30
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            acked = int(line)
            if acked >= 4 or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGKILL)
        rest, err = proc.communicate()
        acked = max([acked, *(int(x) for x in rest.split())])
        assert proc.returncode == -signal.SIGKILL, err
    assert acked >= 4, err

    with EdgeStore(tmp_path) as store:
        batches = Counter(r.payload["batch"] for r in store.scroll("c", batch_size=1000))
    assert set(range(acked + 1)) <= set(batches)  # every acknowledged batch survived
    assert set(batches) <= set(range(acked + 2))  # at most the one in flight besides
    assert set(batches.values()) == {200}  # and each batch is all or nothing


def test_qdrant_client_constructor_arguments(tmp_path):
    with pytest.raises(ConfigError, match="exactly one"):
        QdrantClientStore()
    with pytest.raises(ConfigError, match="exactly one"):
        QdrantClientStore(":memory:", path=tmp_path)
    with pytest.raises(ConfigError, match="api_key"):
        QdrantClientStore(":memory:", api_key="s3cret")
    inner = QdrantClientStore(":memory:")
    try:
        with pytest.raises(ConfigError, match="client="):
            QdrantClientStore(url="http://localhost:6333", client=inner.client)
        wrapped = QdrantClientStore(client=inner.client)
        wrapped.create_collection("c", dim=4, metadata={})
        wrapped.close()  # does not close a client it was given
        assert inner.list_collections() == ["c"]
    finally:
        inner.close()
    remote = QdrantClientStore(url="https://qdrant.invalid:6333", api_key="s3cret", check_compatibility=False)
    try:
        assert "s3cret" not in repr(remote)
    finally:
        remote.close()
