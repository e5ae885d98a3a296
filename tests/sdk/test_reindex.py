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
    """(model name, dim, calibration) of what the name 'docs' serves now, through a fresh handle."""
    other = open_collection("docs", store=store)
    hits = other.search_vector(np.ones(other.manifest["dim"], dtype=np.float32), 2, relevance_filter=False)
    assert len(hits) == 2
    return other.manifest["model"]["name"], other.manifest["dim"], other.manifest.get("calibration")


def test_reindex_switches_atomically(col: Any) -> None:
    # a calibration of the old model, which must never be applied to the new version
    words = "red green blue cyan".split()
    col.calibrate({f"q{i}": f"about {w}" for i, w in enumerate(words)}, {f"q{i}": {f"d{i}": 1} for i in range(4)},
                  candidates=4, holdout=0)
    assert col.manifest["calibration"] is not None
    seen: list[tuple[str, int, Any]] = []

    def during(done: int, total: int) -> None:
        seen.append(_served(col.store))

    report = col.reindex(DOCS, encoder=FakeEncoder(dim=24, name="new"), progress=during, batch_size=2)
    assert report.documents == 4
    # queries during the re-index: the old version, with its calibration
    assert seen and all(s[:2] == ("old", 16) and s[2] is not None for s in seen)
    assert _served(col.store) == ("new", 24, None)  # after: the new one, uncalibrated
    assert col.physical == "docs__v2" and col.manifest["calibration"] is None
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
    assert [c for c in col.store.list_collections() if c.startswith("docs__v")] == []
    assert col.search("document red", k=1)
