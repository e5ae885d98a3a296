"""A new model for the same collection: built next to the old version, switched atomically."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tamis import Document, FakeEncoder, open_collection

DOCS = [Document(id=f"d{i}", text=f"document number {i} about {w}") for i, w in enumerate("red green blue cyan".split())]


@pytest.fixture(params=["edge", "qdrant"])
def col(request: pytest.FixtureRequest) -> Any:
    if request.param == "edge":
        c = open_collection("docs", encoder=FakeEncoder(dim=16, name="old"), create=True)
    else:
        c = open_collection("docs", location=":memory:", encoder=FakeEncoder(dim=16, name="old"), create=True)
    c.index(DOCS)
    yield c
    c.close()


def _served(store: Any) -> tuple[str, int, Any]:
    """(model name, dim, query-time stages) of what the name 'docs' serves now, through a fresh handle."""
    other = open_collection("docs", store=store)
    hits = other.search_vector(np.ones(other.manifest["dim"], dtype=np.float32), 2, relevance_filter=False)
    assert len(hits) == 2
    return other.manifest["model"]["name"], other.manifest["dim"], other.manifest["stages"]


def test_reindex_switches_atomically(col: Any) -> None:
    # a calibration of the old model, which must never be applied to the new version
    words = "red green blue cyan".split()
    col.calibrate({f"q{i}": f"about {w}" for i, w in enumerate(words)}, {f"q{i}": {f"d{i}": 1} for i in range(4)},
                  candidates=4, holdout=0)
    assert col.adapter is not None and [e["name"] for e in col.manifest["stages"]] == ["relevance"]
    seen: list[tuple[str, int, Any]] = []

    def during(done: int, total: int) -> None:
        seen.append(_served(col.store))

    report = col.reindex(DOCS, encoder=FakeEncoder(dim=24, name="new"), progress=during, batch_size=2)
    assert report.documents == 4
    # queries during the re-index: the old version, with its calibration
    assert seen and all(s[:2] == ("old", 16) and s[2] for s in seen)
    assert _served(col.store) == ("new", 24, [])  # after: the new one, uncalibrated
    assert col.physical == "docs__v2" and col.manifest["stages"] == [] and col.adapter is None
    assert col.store.resolve_alias("docs") == "docs__v2"

    # the next re-index is a pure alias switch; the replaced version is removed
    seen.clear()
    col.reindex(encoder=FakeEncoder(dim=8, name="newer"), progress=during)  # documents re-read from the store
    assert seen and all(s[:2] == ("new", 24) for s in seen)
    assert _served(col.store)[:2] == ("newer", 8)
    assert col.store.resolve_alias("docs") == "docs__v3"
    assert "docs__v2" not in col.store.list_collections()
    assert {h.id for h in col.search("document red", k=4)} == {d.id for d in DOCS}


def test_a_failed_reindex_leaves_the_old_version_serving(col: Any) -> None:
    class Boom(FakeEncoder):
        def encode(self, texts: Any, **kw: Any) -> np.ndarray:
            raise RuntimeError("GPU fell off")

    with pytest.raises(RuntimeError, match="fell off"):
        col.reindex(DOCS, encoder=Boom(dim=24, name="broken"))
    assert _served(col.store)[:2] == ("old", 16)
    assert col.store.list_collections() == ["docs__v1"]  # the half-built docs__v2 is gone
    assert col.store.resolve_alias("docs") == "docs__v1"
    assert col.search("document red", k=1)


# -- versions behind an alias from the start -------------------------------------------------------
class Crash(BaseException):
    """Stands for the process dying at that point (no `except Exception` sees it)."""


@pytest.fixture(params=["edge", "qdrant"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    if request.param == "edge":
        from tamis.adapters.qdrant_edge import EdgeStore

        st = EdgeStore(tmp_path / "edge")
    else:
        from tamis.adapters.qdrant_client import QdrantClientStore

        st = QdrantClientStore(location=":memory:")
    yield st
    st.close()


def _old(store: Any, **kw: Any) -> Any:
    return open_collection("docs", store=store, encoder=FakeEncoder(dim=16, name="old"), **kw)


def test_a_new_collection_is_version_1_behind_its_alias(store: Any) -> None:
    from tamis.collection import list_collections

    col = _old(store, create=True)
    assert store.list_collections() == [] and col.physical == "docs__v1"  # nothing before `index`
    col.index(DOCS)
    assert store.list_collections() == ["docs__v1"]
    assert store.resolve_alias("docs") == "docs__v1"
    assert col.name == "docs" and col.physical == "docs__v1"
    assert list_collections(store) == [("docs", "docs__v1")]
    info = open_collection("docs", store=store).info()
    assert (info["name"], info["physical"], info["points"]) == ("docs", "docs__v1", 4)


def test_the_first_reindex_is_a_pure_alias_switch(col: Any) -> None:
    """At the switch itself: the old version right before, the new one right after, never nothing."""
    store = col.store
    events: list[tuple[str, tuple[str, int]]] = []
    real_set_alias, real_delete = store.set_alias, store.delete_collection

    def set_alias(alias: str, target: str) -> None:
        events.append((f"before alias {alias}->{target}", _served(store)[:2]))
        real_set_alias(alias, target)
        events.append((f"after alias {alias}->{target}", _served(store)[:2]))

    def delete_collection(name: str) -> None:
        events.append((f"before delete {name}", _served(store)[:2]))
        real_delete(name)
        events.append((f"after delete {name}", _served(store)[:2]))

    store.set_alias, store.delete_collection = set_alias, delete_collection
    try:
        col.reindex(DOCS, encoder=FakeEncoder(dim=24, name="new"), progress=lambda done, total: events.append(
            ("during", _served(store)[:2])))
    finally:
        store.set_alias, store.delete_collection = real_set_alias, real_delete
    old, new = ("old", 16), ("new", 24)
    assert [e for e in events if e[0] != "during"] == [
        ("before alias docs->docs__v2", old),
        ("after alias docs->docs__v2", new),
        ("before delete docs__v1", new),
        ("after delete docs__v1", new),
    ]
    assert {e[1] for e in events if e[0] == "during"} == {old}
    assert store.list_collections() == ["docs__v2"]


@pytest.mark.parametrize("reopen", ["open", "create"])
def test_a_version_left_without_its_alias_by_a_crash_is_adopted(store: Any, reopen: str) -> None:
    from tamis.collection import list_collections

    def crash(alias: str, target: str) -> None:
        raise Crash

    store.set_alias = crash
    with pytest.raises(Crash):
        _old(store, create=True).index(DOCS)
    del store.set_alias
    assert store.list_collections() == ["docs__v1"] and store.resolve_alias("docs") is None
    assert list_collections(store) == [("docs", "docs__v1")]  # listed under the name that opens it

    col = _old(store, create=reopen == "create")
    assert store.resolve_alias("docs") == "docs__v1" and col.physical == "docs__v1"
    assert col.info()["ingest"]["state"] == "in_progress"
    report = col.index(DOCS)  # resumes into the adopted version, no duplicate
    assert (report.documents, report.points) == (4, 4)
    assert store.list_collections() == ["docs__v1"]
    assert _served(store)[:2] == ("old", 16)


def _legacy(store: Any) -> Any:
    """A collection stored under its own name, as an earlier tamis made them."""
    from tamis import Collection

    col = Collection("docs", store, encoder=FakeEncoder(dim=16, name="old"))
    col.index(DOCS)
    assert store.list_collections() == ["docs"] and store.resolve_alias("docs") is None
    return open_collection("docs", store=store)


def test_a_collection_stored_under_its_own_name_keeps_working(store: Any) -> None:
    from tamis.collection import list_collections

    col = _legacy(store)
    assert col.physical == "docs" and _served(store)[:2] == ("old", 16)
    assert list_collections(store) == [("docs", "docs")]
    col.reindex(encoder=FakeEncoder(dim=24, name="new"))  # its first re-index: delete, then alias
    assert store.list_collections() == ["docs__v2"] and store.resolve_alias("docs") == "docs__v2"
    assert _served(store)[:2] == ("new", 24) and list_collections(store) == [("docs", "docs__v2")]


def test_a_crash_in_the_first_switch_of_an_old_collection_is_adopted(store: Any) -> None:
    col = _legacy(store)

    def crash(alias: str, target: str) -> None:
        raise Crash

    store.set_alias = crash
    with pytest.raises(Crash):
        col.reindex(encoder=FakeEncoder(dim=24, name="new"))
    del store.set_alias
    assert store.list_collections() == ["docs__v2"] and store.resolve_alias("docs") is None
    assert _served(store)[:2] == ("new", 24)  # the complete new version is adopted
    assert store.resolve_alias("docs") == "docs__v2"


def test_delete_removes_the_name_and_every_version(store: Any) -> None:
    from tamis import Collection, CollectionNotFoundError
    from tamis.collection import list_collections

    col = _old(store, create=True)
    col.index(DOCS)
    col.reindex(encoder=FakeEncoder(dim=24, name="new"), keep_old=True)
    # a half-built version left by a crashed re-index, and another tool's collection
    Collection("docs", store, physical="docs__v3", encoder=FakeEncoder(dim=8, name="newer")).index(DOCS[:1])
    store.create_collection("docs__v9", dim=4, metadata={"owner": "someone else"})
    assert store.list_collections() == ["docs__v1", "docs__v2", "docs__v3", "docs__v9"]
    assert list_collections(store) == [("docs", "docs__v2")]

    open_collection("docs", store=store).delete()
    assert store.list_collections() == ["docs__v9"] and store.resolve_alias("docs") is None
    with pytest.raises(CollectionNotFoundError):
        open_collection("docs", store=store)
    col.delete()  # a stale handle: nothing left to delete, no error
    col.index(DOCS)  # the same handle makes the collection again, version 1 behind the alias
    assert store.resolve_alias("docs") == "docs__v1" and _served(store)[:2] == ("new", 24)

    legacy_store_col = Collection("legacy", store, encoder=FakeEncoder(dim=16))
    legacy_store_col.index(DOCS)
    Collection("legacy", store, physical="legacy__v2", encoder=FakeEncoder(dim=8)).index(DOCS[:1])
    open_collection("legacy", store=store).delete()  # its own name, and the orphan of its re-index
    assert store.list_collections() == ["docs__v1", "docs__v9"]
