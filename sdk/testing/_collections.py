"""The collection part of the store contract: create / exists / list / delete, metadata, aliases, names."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tamis._errors import CollectionExistsError, CollectionNotFoundError, ConfigError, StoreError
from tamis.stores import StorePoint, VectorStore
from tamis.testing._fixtures import DIM, StoreFixtures, pid

__all__ = ["CollectionTests"]

_BAD_NAMES = ["", "../evil", "a/b", "..", ".hidden", "a b", "x" * 256, "tab\t", "c:\\x", None, 3]


class CollectionTests(StoreFixtures):
    """Collections, their metadata and aliases."""

    def test_implements_protocol(self, store: VectorStore) -> None:
        assert isinstance(store, VectorStore)
        assert isinstance(store.kind, str) and store.kind

    def test_collection_lifecycle(self, store: VectorStore) -> None:
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

    def test_create_twice_raises(self, store: VectorStore) -> None:
        store.create_collection("c", dim=4, metadata={})
        with pytest.raises(CollectionExistsError, match="'c'"):
            store.create_collection("c", dim=4, metadata={})

    def test_create_validates_arguments(self, store: VectorStore) -> None:
        with pytest.raises(ConfigError, match="dim"):
            store.create_collection("c", dim=0, metadata={})
        with pytest.raises(ConfigError, match="manhattan"):
            store.create_collection("c", dim=4, distance="manhattan", metadata={})
        with pytest.raises(ConfigError, match="JSON"):
            store.create_collection("c", dim=4, metadata={"x": object()})
        assert store.list_collections() == []

    def test_missing_collection_raises(self, store: VectorStore) -> None:
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

    def test_metadata_round_trip_and_replace(self, store: VectorStore) -> None:
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

    def test_collection_dim(self, store: VectorStore) -> None:
        store.create_collection("c", dim=384, metadata={})
        assert store.collection_dim("c") == 384

    @pytest.mark.parametrize("bad", _BAD_NAMES)
    def test_bad_collection_names(self, store: VectorStore, bad: object) -> None:
        with pytest.raises(ConfigError, match="name"):
            store.create_collection(bad, dim=4, metadata={})  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="name"):
            store.get_metadata(bad)  # type: ignore[arg-type]
        store.create_collection("ok", dim=4, metadata={})
        with pytest.raises(ConfigError, match="name"):
            store.set_alias(bad, "ok")  # type: ignore[arg-type]

    def test_aliases(self, store: VectorStore) -> None:
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

    def test_alias_switch_is_atomic_for_readers(self, store: VectorStore) -> None:
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

    def test_deleting_a_collection_drops_its_aliases(self, store: VectorStore) -> None:
        store.create_collection("c", dim=4, metadata={})
        store.set_alias("a", "c")
        store.delete_collection("c")
        assert store.resolve_alias("a") is None

    def test_closed_store_raises(self, store: VectorStore) -> None:
        store.create_collection("c", dim=4, metadata={})
        store.close()
        store.close()  # closing twice is fine
        for call in (
            store.list_collections,
            lambda: store.count("c"),
            lambda: store.search("c", np.ones(4, np.float32), k=1),
        ):
            with pytest.raises(StoreError, match="closed"):
                call()
