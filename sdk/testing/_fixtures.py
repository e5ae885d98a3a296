"""The fixtures and test data of `VectorStoreTests`: what a store author overrides, and what the tests use."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tamis.stores import StorePoint, VectorStore

__all__ = ["DIM", "N", "StoreFixtures", "make_points", "pid", "unit"]

DIM = 16
#: points in the `filled` collection (qdrant-client's local mode with path= commits each point: keep it small)
N = 60
_NS = uuid.UUID("7d8b5c1e-2f0a-4a43-9d55-0c1d2e3f4a5b")

#: builds a store on a folder; the same folder gives the same data when the store is persistent
StoreFactory = Callable[[Path], VectorStore]


def pid(i: int) -> str:
    """The point id of test point ``i`` (a UUID string)."""
    return str(uuid.uuid5(_NS, f"doc-{i}"))


def make_points(n: int, dim: int = DIM, seed: int = 0) -> tuple[list[StorePoint], np.ndarray]:
    """``n`` random points with payloads ``i``, ``group`` (a/b/c), ``flag`` and ``metadata.lang``."""
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
    """Rows of ``x`` scaled to length 1."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class StoreFixtures:
    """The fixtures of the suite. Override `store_factory`; `native_filter` and `persistent` if they apply."""

    #: a store opened again on the same folder sees what the first one wrote (False for in-memory stores)
    persistent: bool = True

    @pytest.fixture(scope="class")
    def store_factory(self) -> StoreFactory:
        """Override (keeping ``scope="class"``): a callable building the store under test on a folder.

        Each call is a new store object; on the same folder it must see the data written there
        when `persistent` is true (an in-memory store may ignore the folder).
        """
        raise NotImplementedError(
            "override the store_factory fixture in your VectorStoreTests subclass: "
            "@pytest.fixture(scope='class') def store_factory(self): return lambda folder: MyStore(folder)"
        )

    @pytest.fixture(scope="class")
    def native_filter(self) -> Callable[[str, Any], Any] | None:
        """Override: (key, value) -> the store's native filter for ``payload[key] == value`` (None: skip)."""
        return None

    @pytest.fixture
    def make_store(self, store_factory: StoreFactory, tmp_path: Path) -> Iterator[Callable[[], VectorStore]]:
        """Each call opens a store on this test's folder; all are closed afterwards."""
        opened: list[VectorStore] = []

        def make() -> VectorStore:
            opened.append(store_factory(tmp_path / "store"))
            return opened[-1]

        yield make
        for store in opened:
            store.close()

    @pytest.fixture
    def store(self, make_store: Callable[[], VectorStore]) -> VectorStore:
        """An empty store."""
        return make_store()

    @pytest.fixture
    def filled(self, store: VectorStore) -> tuple[VectorStore, np.ndarray]:
        """A store with collection 'c': `N` points of dimension `DIM` (from `make_points`)."""
        store.create_collection("c", dim=DIM, metadata={"model": "fake"})
        points, vectors = make_points(N)
        store.upsert("c", points)
        return store, vectors

    @pytest.fixture(scope="class")
    def big(
        self, store_factory: StoreFactory, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[tuple[VectorStore, np.ndarray, np.ndarray]]:
        """A read-only collection 'big' of 500 random points of dimension 32, optimized, and 20 queries."""
        store = store_factory(tmp_path_factory.mktemp("big"))
        points, vectors = make_points(500, dim=32, seed=1)
        store.create_collection("big", dim=32, metadata={})
        store.upsert("big", points)
        store.optimize("big")
        queries = np.random.default_rng(2).standard_normal((20, 32)).astype(np.float32)
        yield store, vectors, queries
        store.close()
