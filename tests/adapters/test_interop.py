"""Collections other tools can read, and collections of other tools tamis can use (the real packages).

langchain-qdrant's and LlamaIndex's ``QdrantVectorStore`` read a tamis collection with their default
settings; an old-layout collection is migrated without re-encoding; a langchain-qdrant collection is
adopted (vectors checked against the model) and calibrated; foreign points are skipped by search
and reindex.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from tamis import Document, FakeEncoder, open_collection
from tamis._errors import ConfigError, DimensionMismatchError, ModelMismatchError, StoreError
from tamis.adapters.qdrant_client import QdrantClientStore
from tamis.collection import adopt_collection
from tamis.stores import StorePoint

WORDS = "red green blue cyan magenta yellow".split()
DOCS = [Document(id=f"d{i}", title=f"title {w}", text=f"document {i} about {w}", metadata={"lang": "en"})
        for i, w in enumerate(WORDS)]


class _Other(FakeEncoder):
    """Another model of the same dimension (the fake vectors, dimensions reversed)."""

    def encode(self, texts: Any, **kw: Any) -> np.ndarray:
        return np.ascontiguousarray(super().encode(texts, **kw)[:, ::-1])


@pytest.fixture
def client() -> Iterator[QdrantClient]:
    c = QdrantClient(":memory:")
    yield c
    c.close()


def _tamis(client: QdrantClient, docs: list[Document] = DOCS) -> Any:
    col = open_collection("docs", store=QdrantClientStore(client=client), encoder=FakeEncoder(dim=16), create=True)
    col.index(docs)
    return col


def _langchain(client: QdrantClient, name: str = "docs") -> Any:
    from langchain_qdrant import QdrantVectorStore

    from tamis.adapters.langchain import TamisEmbeddings

    return QdrantVectorStore(client=client, collection_name=name, embedding=TamisEmbeddings(encoder=FakeEncoder(dim=16)))


def test_langchain_and_llamaindex_read_a_tamis_collection(client: QdrantClient) -> None:
    _tamis(client)
    found = _langchain(client).similarity_search("document about blue", k=6)
    assert len(found) == 6
    by_doc = {d.metadata["doc_id"]: d for d in found}
    assert set(by_doc) == {d.id for d in DOCS}
    blue = by_doc["d2"]
    assert blue.page_content == "document 2 about blue"
    assert (blue.metadata["chunk"], blue.metadata["title"], blue.metadata["lang"]) == (0, "title blue", "en")
    # langchain-qdrant 1.1 gives the point id as metadata["_id"] (Document.id stays None: its choice)
    from tamis.collection import point_id

    assert blue.metadata["_id"] == point_id("d2", 0)

    from llama_index.core.vector_stores.types import VectorStoreQuery
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    vec = FakeEncoder(dim=16).encode(["document about blue"], kind="query")[0].tolist()
    result = QdrantVectorStore(client=client, collection_name="docs").query(
        VectorStoreQuery(query_embedding=vec, similarity_top_k=6)
    )
    nodes = {n.metadata["doc_id"]: n for n in result.nodes}  # LlamaIndex reads `text`, the rest is metadata
    assert set(nodes) == {d.id for d in DOCS}
    assert nodes["d2"].text == "document 2 about blue" and nodes["d2"].metadata["title"] == "title blue"


def _old_layout(col: Any) -> None:
    """Rewrite the collection as tamis before payload format 2 wrote it."""
    store, physical = col.store, col.physical
    old = []
    for r in store.scroll(physical, with_payload=True, with_vectors=True):
        p = r.payload
        meta = {k: v for k, v in p["metadata"].items() if k not in ("doc_id", "chunk", "title")}
        old.append(StorePoint(r.id, r.vector, {"doc_id": p["doc_id"], "chunk": p["chunk"], "n_chunks": p["n_chunks"],
                                               "title": p["title"], "text": p["text"], "metadata": meta, "hash": p["hash"]}))
    store.delete_points(physical, [p.id for p in old])
    store.upsert(physical, old)
    del col.manifest["payload"]
    col._write_manifest()


def test_old_collections_are_migrated_without_reencoding(client: QdrantClient) -> None:
    col = _tamis(client)
    _old_layout(col)
    assert _langchain(client).similarity_search("document", k=1)[0].page_content == ""  # the symptom
    before = {r.id: r.vector for r in col.store.scroll(col.physical, with_vectors=True)}
    hits = [h.text for h in col.search("document about blue", k=2)]  # tamis reads the old layout too
    report = col.migrate()
    assert (report.migrated, report.current, report.foreign) == (6, 0, 0)
    assert col.manifest["payload"] == {"format": 2}
    assert col.migrate().to_dict() == {"migrated": 0, "current": 6, "foreign": 0}  # idempotent
    after = {r.id: r.vector for r in col.store.scroll(col.physical, with_vectors=True)}
    assert before.keys() == after.keys() and all(np.allclose(before[k], after[k], atol=1e-6) for k in before)
    assert [h.text for h in col.search("document about blue", k=2)] == hits
    assert all(d.page_content for d in _langchain(client).similarity_search("document", k=6))
    # ... and automatically on the next index
    _old_layout(col)
    col.index(DOCS)
    assert col.manifest["payload"] == {"format": 2}
    assert all(d.page_content for d in _langchain(client).similarity_search("document", k=6))


def test_points_other_tools_wrote_are_skipped_by_search_and_reindex(client: QdrantClient, caplog: Any) -> None:
    col = _tamis(client)
    vec = FakeEncoder(dim=16).encode(["document about blue"], kind="document")[0]
    col.store.upsert(col.physical, [StorePoint(str(uuid.uuid4()), vec, {"page_content": "alien", "metadata": {}})])
    hits = col.search("document about blue", k=7)
    assert {h.id for h in hits} == {d.id for d in DOCS}
    assert "not written by tamis" in caplog.text
    col.reindex(encoder=FakeEncoder(dim=8))  # re-read from the payloads: no KeyError, the alien left out
    assert col.count() == 6


def test_adopt_a_langchain_collection_and_calibrate_it() -> None:
    from langchain_qdrant import QdrantVectorStore

    from tamis.adapters.langchain import TamisEmbeddings

    texts = [f"text about {w} and {w} things" for w in WORDS]
    lc = QdrantVectorStore.from_texts(
        texts, TamisEmbeddings(encoder=FakeEncoder(dim=16)), location=":memory:", collection_name="lc",
        metadatas=[{"doc_id": f"d{i}", "lang": "en"} for i in range(len(texts))],
    )
    client = lc.client
    store = QdrantClientStore(client=client)
    with pytest.raises(StoreError, match="adopt"):
        open_collection("lc", store=store)
    with pytest.raises(DimensionMismatchError, match="16-d"):
        adopt_collection("lc", store=store, encoder=FakeEncoder(dim=8))
    with pytest.raises(ModelMismatchError, match="cosine"):
        adopt_collection("lc", store=store, encoder=_Other(dim=16, name="another"))
    with pytest.raises(ConfigError, match="text"):
        adopt_collection("lc", store=store, encoder=FakeEncoder(dim=16), text_key="body")
    col = adopt_collection("lc", store=store, encoder=FakeEncoder(dim=16), id_key="metadata.doc_id")
    assert col.manifest["adopted"]["checked"] == 6
    hits = col.search("text about blue", k=3)
    assert hits[0].id == "d2" and hits[0].text == "text about blue and blue things" and hits[0].metadata["lang"] == "en"
    col.calibrate({f"q{i}": f"about {w}" for i, w in enumerate(WORDS)}, {f"q{i}": {f"d{i}": 1} for i in range(6)},
                  candidates=6, holdout=0)
    assert col.adapter is not None
    assert all(h.relevance is not None for h in col.search("about blue", k=3, relevance_filter=False))
    # the collection still reads in langchain (tamis wrote only its manifest)
    assert lc.similarity_search("text about blue", k=1)[0].metadata["doc_id"] == "d2"
