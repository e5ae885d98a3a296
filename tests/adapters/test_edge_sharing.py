"""The Edge stores of one process on one folder share its engine: opened shards, locks, close order."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tamis
from tamis import ConfigError, FakeEncoder, StoreError
from tamis.adapters.qdrant_edge import EdgeStore
from tamis.stores import StorePoint
from tamis.testing._fixtures import make_points, pid

ENC = FakeEncoder(dim=16, name="fake-share")


@pytest.mark.parametrize("first_closed", ["writer", "reader"])
def test_two_stores_on_one_path_share_the_engine(tmp_path, first_closed):
    link = tmp_path.parent / f"{tmp_path.name}-link"
    link.symlink_to(tmp_path)
    writer, reader = EdgeStore(tmp_path), EdgeStore(link)  # another spelling of the same folder
    points, vectors = make_points(20)
    writer.create_collection("c", dim=16, metadata={})
    assert reader.count("c") == 0  # both have the shard open now
    writer.upsert("c", points[:10])
    assert reader.count("c") == 10
    reader.upsert("c", points[10:])
    assert writer.search("c", vectors[15], k=1)[0].id == pid(15)

    first, second = (writer, reader) if first_closed == "writer" else (reader, writer)
    first.close()
    with pytest.raises(StoreError, match="closed"):
        first.count("c")
    assert second.count("c") == 20  # closing one store does not close the other's collections
    second.delete_points("c", [pid(0)])
    second.close()

    with EdgeStore(tmp_path) as again:  # the last close released the shards
        assert again.count("c") == 19


def test_two_open_collections_on_one_path(tmp_path):
    docs = [tamis.Document(f"d{i}", f"note {i} about {'apples' if i % 2 else 'rust'}") for i in range(8)]
    with tamis.open_collection("notes", path=tmp_path, encoder=ENC, create=True) as col:
        col.index(docs[:4])
    a = tamis.open_collection("notes", path=tmp_path, encoder=ENC)
    b = tamis.open_collection("notes", path=tmp_path, encoder=ENC)
    try:
        a.index(docs)  # written through one ...
        assert b.count() == 8  # ... read through the other
        assert b.search("note 5 about apples", k=1)[0].id == "d5"
        a.close()
        assert b.search("note 6 about rust", k=1)[0].id == "d6"  # b is still open
    finally:
        b.close()
        a.close()


def test_another_process_cannot_open_a_held_collection(tmp_path):
    with EdgeStore(tmp_path) as store:
        store.create_collection("c", dim=4, metadata={})
        assert store.count("c") == 0
        code = textwrap.dedent(
            """
            import sys
            from tamis import StoreError
            from tamis.adapters.qdrant_edge import EdgeStore

            try:
                EdgeStore(sys.argv[1]).count("c")
            except StoreError as exc:
                print(exc)
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120
        )
        assert "another process" in out.stdout, out.stderr


def test_stores_on_one_path_agree_on_the_indexing_threshold(tmp_path):
    with EdgeStore(tmp_path, indexing_threshold_kb=1):
        with pytest.raises(ConfigError, match="indexing_threshold_kb"):
            EdgeStore(tmp_path)
        with EdgeStore(tmp_path, indexing_threshold_kb=1):
            pass
    with EdgeStore(tmp_path):  # all closed: any setting again
        pass


def test_a_store_dropped_without_close_lets_go_of_the_shards(tmp_path):
    store = EdgeStore(tmp_path)
    store.create_collection("c", dim=4, metadata={})
    store.upsert("c", [StorePoint(pid(1), np.ones(4, np.float32), {})])
    del store
    gc.collect()
    with EdgeStore(tmp_path, indexing_threshold_kb=5) as again:  # a new engine, not the old one
        assert again.count("c") == 1


def test_a_closed_store_does_not_keep_the_shards_of_a_dropped_one(tmp_path):
    """A closed, then B dropped without close: nothing is open any more (A must not hold B's engine)."""
    a, b = EdgeStore(tmp_path), EdgeStore(tmp_path)
    b.create_collection("c", dim=4, metadata={})
    b.upsert("c", [StorePoint(pid(1), np.ones(4, np.float32), {})])
    a.close()
    del b
    gc.collect()
    with EdgeStore(tmp_path, indexing_threshold_kb=5) as again:  # would be refused if the old engine lived on
        assert again.count("c") == 1
    assert a._shards is None
