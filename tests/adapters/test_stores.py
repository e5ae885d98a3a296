"""The built-in stores through the contract suite `tamis.testing.VectorStoreTests`, plus what is theirs alone.

Edge, qdrant-client ``:memory:`` and qdrant-client local ``path=`` each run the whole suite.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest
import qdrant_edge
from qdrant_client import models

import tamis.adapters._edge_files as edge_files
from tamis._errors import ConfigError, StoreError
from tamis.adapters.qdrant_client import QdrantClientStore
from tamis.adapters.qdrant_edge import EdgeStore
from tamis.stores import SearchParams
from tamis.testing import VectorStoreTests
from tamis.testing._fixtures import make_points, pid, unit


def edge_filter(key: str, value: Any) -> Any:
    return qdrant_edge.Filter(must=[qdrant_edge.FieldCondition(key, match=qdrant_edge.MatchValue(value))])


def qdrant_filter(key: str, value: Any) -> Any:
    return models.Filter(must=[models.FieldCondition(key=key, match=models.MatchValue(value=value))])


class TestEdgeStore(VectorStoreTests):
    @pytest.fixture(scope="class")
    def store_factory(self):
        return EdgeStore

    @pytest.fixture(scope="class")
    def native_filter(self):
        return edge_filter


class TestQdrantMemory(VectorStoreTests):
    persistent = False

    @pytest.fixture(scope="class")
    def store_factory(self):
        return lambda folder: QdrantClientStore(":memory:")

    @pytest.fixture(scope="class")
    def native_filter(self):
        return qdrant_filter


class TestQdrantPath(VectorStoreTests):
    @pytest.fixture(scope="class")
    def store_factory(self):
        return lambda folder: QdrantClientStore(path=folder)

    @pytest.fixture(scope="class")
    def native_filter(self):
        return qdrant_filter


@pytest.mark.parametrize(
    ("make", "foreign"),
    [
        (EdgeStore, qdrant_filter("group", "a")),
        (lambda folder: QdrantClientStore(":memory:"), edge_filter("group", "a")),
    ],
)
def test_the_other_backends_native_filter_is_refused(tmp_path, make, foreign):
    with make(tmp_path) as store:
        store.create_collection("c", dim=4, metadata={})
        with pytest.raises(ConfigError, match="filter must be"):
            store.count("c", foreign)
        with pytest.raises(ConfigError, match="filter must be"):
            store.search("c", np.ones(4, np.float32), k=3, filter=foreign)


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

        monkeypatch.setattr(edge_files, "write_json_atomic", broken)
        with pytest.raises(StoreError, match="No space left"):
            store.create_collection("c", dim=4, metadata={})
        monkeypatch.undo()
        assert list((tmp_path / "collections").iterdir()) == []
        assert store.list_collections() == []
        store.create_collection("c", dim=4, metadata={})
        assert store.list_collections() == ["c"]


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
    from tamis.stores import StorePoint
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
