"""Hybrid collections through the SDK: BM25 vectors at ingest, the three modes, upgrade by reindex, resume."""

from __future__ import annotations

import math

import pytest

from tamis import open_collection
from tamis._errors import ConfigError
from tamis.data import Document

DOCS = [
    Document(id=f"d{i}", text=t)
    for i, t in enumerate([
        "error code E1234 when the socket times out",
        "python os.path.join joins paths",
        "mango pie recipe with cream",
        "kernel panic after the driver update",
        "printer driver install fails with code E999",
        "socket timeout in the network stack",
    ])
]


@pytest.fixture(params=["edge", "qdrant"])
def where(request, tmp_path):
    if request.param == "edge":
        return {"path": tmp_path / "data"}
    return {"store": "qdrant", "path": tmp_path / "local"}


def test_modes_on_a_hybrid_collection(where):
    with open_collection("h", create=True, hybrid=True, model="fake:32", **where) as col:
        col.index(DOCS)
        assert col.hybrid and col.info()["sparse"]["name"] == "bm25"
        sparse = col.search("E1234", k=3, mode="sparse")
        assert [h.id for h in sparse] == ["d0"] and math.isnan(sparse[0].score) and sparse[0].sparse_score > 0
        dense = col.search("E1234", k=3, mode="dense")
        assert len(dense) == 3 and all(h.sparse_score is None and h.fused_score is None for h in dense)
        hybrid = col.search("E1234", k=3)  # the default mode of a hybrid collection
        assert hybrid[0].id == "d0" and hybrid[0].fused_score == pytest.approx(2 / 60, rel=1e-5)
        assert {h.id for h in hybrid} >= {dense[0].id}
        dbsf = col.search("E1234", k=3, fusion="dbsf", rrf_k=5)
        assert dbsf[0].id == "d0" and dbsf[0].fused_score > 1.0
        batch = col.search_batch(["E1234", "mango"], k=2, mode="sparse")
        assert [[h.id for h in b] for b in batch] == [["d0"], ["d2"]]
        filtered = col.search("driver code", k=5, mode="sparse", filter={"id": ["d4", "d0"]})
        assert {h.id for h in filtered} == {"d0", "d4"}
        assert hybrid[0].to_dict(with_text=False)["sparse_score"] == round(hybrid[0].sparse_score, 6)
        assert sparse[0].to_dict()["score"] is None
        with pytest.raises(ConfigError, match="BM25 query vector"):
            col.search_vectors(col.encode_queries(["x"]), 3, mode="sparse")
        vecs, bm25 = col.encode_queries(["mango"]), col.bm25.embed_queries(["mango"])
        assert col.search_vectors(vecs, 1, mode="sparse", sparse_vectors=bm25)[0][0].id == "d2"


def test_both_stores_give_the_same_bm25_scores(tmp_path):
    results = []
    for where in ({"path": tmp_path / "e"}, {"store": "qdrant", "location": ":memory:"}):
        with open_collection("h", create=True, hybrid=True, model="fake:32", **where) as col:
            col.index(DOCS)
            results.append(sorted((h.id, round(h.sparse_score, 4)) for h in col.search("socket code driver", k=6, mode="sparse")))
    assert results[0] == results[1] and len(results[0]) == 4


def test_dense_collection_refuses_sparse_modes_and_reindex_upgrades_it(where):
    with open_collection("d", create=True, model="fake:32", **where) as col:
        col.index(DOCS)
        assert not col.hybrid
        with pytest.raises(ConfigError, match="--hybrid"):
            col.search("E1234", mode="hybrid")
        with pytest.raises(ConfigError, match="mode must be"):
            col.search("E1234", mode="lexical")
    with pytest.raises(ConfigError, match="reindex"):
        open_collection("d", hybrid=True, **where)
    with open_collection("d", **where) as col:
        report = col.reindex(hybrid=True)
        assert report.encoded == len(DOCS) and col.hybrid and col.physical.endswith("__v2")
        assert [h.id for h in col.search("mango", k=1, mode="sparse")] == ["d2"]
        col.reindex()  # keeps the sparse vectors
        assert col.hybrid and [h.id for h in col.search("E999", k=1, mode="sparse")] == ["d4"]


def test_hybrid_ingest_is_idempotent_and_resumes(where):
    class Stop(Exception):
        pass

    def stop_after_first(done, total):
        if 0 < done < total:
            raise Stop

    with open_collection("h", create=True, hybrid=True, model="fake:32", **where) as col:
        with pytest.raises(Stop):
            col.index(DOCS, batch_size=2, progress=stop_after_first)
        report = col.index(DOCS, batch_size=2)
        assert report.unchanged == 2 and report.encoded == 4 and col.count() == 6
        again = col.index(DOCS)
        assert again.encoded == 0 and again.unchanged == 6
        for d in DOCS:  # every point has its sparse vector
            word = d.text.split()[1]
            assert d.id in {h.id for h in col.search(word, k=6, mode="sparse")}
