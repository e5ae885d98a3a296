"""TamisRetriever and TamisEmbeddings: the langchain-tests standard suites, plus tamis specifics."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, RetrieversIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

import tamis
from tamis import FakeEncoder
from tamis.adapters.langchain import RetrievalMode, TamisEmbeddings, TamisRetriever

ENC = FakeEncoder(dim=32, name="fake-lc")
DOCS = [
    tamis.Document(
        id=f"d{i}", title=f"doc {i}",
        text=(f"apples and pears, recipe {i}" if i % 2 else f"rust and python, programming note {i}"),
        metadata={"lang": "en" if i % 3 else "fr", "n": i},
    )
    for i in range(12)
]


@pytest.fixture
def indexed() -> str:
    """A small collection named "fruit" in this test's TAMIS_HOME."""
    with tamis.open_collection("fruit", encoder=ENC, create=True) as col:
        col.index(DOCS)
    return "fruit"


class TestRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _collection(self, indexed: str) -> None:
        pass

    @property
    def retriever_constructor(self) -> type[TamisRetriever]:
        return TamisRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"collection": "fruit", "encoder": ENC, "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "apple pear recipe"


@pytest.fixture
def indexed_hybrid() -> str:
    """The same documents in a hybrid collection "fruit-h" (dense + BM25)."""
    with tamis.open_collection("fruit-h", encoder=ENC, create=True, hybrid=True) as col:
        col.index(DOCS)
    return "fruit-h"


class TestRetrieverStandardSparse(TestRetrieverStandard):
    """The standard suite in ``RetrievalMode.SPARSE`` (BM25)."""

    @pytest.fixture(autouse=True)
    def _collection(self, indexed_hybrid: str) -> None:
        pass

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"collection": "fruit-h", "encoder": ENC, "k": 2, "mode": RetrievalMode.SPARSE}


class TestRetrieverStandardHybrid(TestRetrieverStandardSparse):
    """The standard suite in ``RetrievalMode.HYBRID`` (RRF in the engine)."""

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"collection": "fruit-h", "encoder": ENC, "k": 2, "mode": RetrievalMode.HYBRID}


def test_retriever_modes_per_call_and_their_names(indexed_hybrid: str, indexed: str) -> None:
    retriever = TamisRetriever(collection="fruit-h", encoder=ENC, k=3)
    sparse = retriever.invoke("python programming", mode="sparse")
    assert sparse and all("python" in d.page_content for d in sparse)
    assert all(d.metadata["sparse_score"] > 0 for d in sparse)
    hybrid = asyncio.run(retriever.ainvoke("python programming"))  # the hybrid collection's default mode
    assert "python" in hybrid[0].page_content and hybrid[0].metadata["sparse_score"] is not None
    assert [m.value for m in RetrievalMode] == ["dense", "sparse", "hybrid"]
    with pytest.raises(tamis.ConfigError, match="retrieval mode"):
        retriever.invoke("python", mode="lexical")
    dense_only = TamisRetriever(collection="fruit", encoder=ENC, k=3, mode=RetrievalMode.HYBRID)
    with pytest.raises(tamis.ConfigError, match="--hybrid"):
        dense_only.invoke("python")
    retriever.close()
    dense_only.close()


class TestEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[TamisEmbeddings]:
        return TamisEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"encoder": ENC}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"TAMIS_ENCODER_URL": "http://127.0.0.1:8080", "TAMIS_ENCODER_API_KEY": "k"},
            {},
            {"encoder_url": "http://127.0.0.1:8080", "api_key": "k"},
        )


class TestEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[TamisEmbeddings]:
        return TamisEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"encoder": ENC}


def test_embeddings_with_the_real_model(minilm) -> None:
    emb = TamisEmbeddings(encoder=minilm)
    q = emb.embed_query("how do I reset my password")
    d = emb.embed_documents(["reset your password in settings", "the cat sat"])
    assert len(q) == 384 and len(d) == 2
    assert np.dot(q, d[0]) > np.dot(q, d[1])
    assert asyncio.run(emb.aembed_query("how do I reset my password")) == pytest.approx(q, abs=1e-6)


def test_documents_carry_id_score_relevance_and_metadata(indexed: str) -> None:
    r = TamisRetriever(collection=indexed, encoder=ENC, k=3)
    docs = r.invoke("apples pears recipe")
    assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert top.id == top.metadata["id"] and top.metadata["id"].startswith("d")
    assert set(top.metadata) >= {"id", "score", "relevance", "title", "chunk", "lang", "n"}
    assert top.metadata["relevance"] is None  # not calibrated
    assert "apples" in top.page_content
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)


def test_filter_k_threshold_and_empty(indexed: str) -> None:
    r = TamisRetriever(collection=indexed, encoder=ENC, k=4, filter={"lang": "fr"})
    assert {d.metadata["lang"] for d in r.invoke("apples")} == {"fr"}
    assert len(r.invoke("apples", k=1, filter={"n": {"gte": 10}})) == 1
    assert r.invoke("apples", score_threshold=0.999) == []  # nothing passes: [] not junk
    with pytest.raises(tamis.ConfigError, match="unknown search option"):
        r.invoke("apples", top_k=3)
    # invalid construction arguments: pydantic's ValidationError (a ValueError) with tamis's message
    with pytest.raises(ValueError, match="k must be"):
        TamisRetriever(collection=indexed, encoder=ENC, k=0)


def test_from_an_open_collection_and_conflicts(indexed: str) -> None:
    with tamis.open_collection(indexed, encoder=ENC) as col:
        r = TamisRetriever(collection=col, k=2)
        assert r.tamis_collection is col
        assert [d.id for d in r.invoke("rust python programming")] == [
            h.id for h in col.search("rust python programming", k=2)
        ]
        with pytest.raises(ValueError, match="apply only when it is a name"):
            TamisRetriever(collection=col, model="x")
    with pytest.raises(tamis.CollectionNotFoundError):
        TamisRetriever(collection="nope", encoder=ENC)
    with pytest.raises(Exception, match="extra|not permitted|Extra"):
        TamisRetriever(collection=indexed, encoder=ENC, unknown_option=1)


async def test_async_is_native_batched_and_matches_sync(indexed: str) -> None:
    r = TamisRetriever(collection=indexed, encoder=ENC, k=3, max_wait_ms=5)
    queries = [f"apples {i}" if i % 2 else f"python note {i}" for i in range(24)]
    loop_thread = threading.get_ident()
    results = await asyncio.gather(*(r.ainvoke(q) for q in queries))
    assert [[d.id for d in docs] for docs in results] == [[d.id for d in r.invoke(q)] for q in queries]
    assert max(r._batcher.batch_sizes) > 1  # concurrent queries shared encodes and store calls
    assert threading.get_ident() == loop_thread
    mixed = await asyncio.gather(r.ainvoke("apples", k=1), r.ainvoke("apples", filter={"lang": "fr"}))
    assert len(mixed[0]) == 1 and {d.metadata["lang"] for d in mixed[1]} == {"fr"}
    assert await r.ainvoke("apples", score_threshold=0.999) == []


def test_two_retrievers_share_the_embedded_store(indexed: str) -> None:
    a = TamisRetriever(collection=indexed, encoder=ENC)
    b = TamisRetriever(collection=indexed, encoder=ENC, k=1)
    with tamis.open_collection(indexed, encoder=ENC) as mine:  # and the caller's own collection
        assert len(a.invoke("apples")) == 4 and len(b.invoke("apples")) == 1
        assert mine.count() == len(DOCS)
    a.close()
    assert len(b.invoke("apples")) == 1  # closing one retriever leaves the other working
    b.close()


async def test_calibrated_threshold_is_used_and_overridable() -> None:
    enc = FakeEncoder(dim=64)
    words = "red green blue cyan magenta yellow black white orange purple brown pink".split()
    with tamis.open_collection("calibrated", encoder=enc, create=True) as col:
        col.index(tamis.Document(id=f"d{i}", text=f"a note about the colour {w} and {w} things") for i, w in enumerate(words))
        col.calibrate({f"q{i}": f"{w} colour" for i, w in enumerate(words)},
                      {f"q{i}": {f"d{i}": 1} for i in range(len(words))}, candidates=8, holdout=0)
        r = TamisRetriever(collection=col, k=3)
        top = r.invoke("red colour")
        assert top and top[0].id == "d0" and top[0].metadata["relevance"] > 0.5
        assert all(d.metadata["relevance"] >= col.adapter.threshold - 1e-9 for d in top)
        off_topic = "zebra xylophone quantum"
        assert r.invoke(off_topic) == [] and await r.ainvoke(off_topic) == []  # nothing relevant: []
        plain = r.invoke(off_topic, relevance_filter=False)
        assert len(plain) == 3 and all(d.metadata["relevance"] is not None for d in plain)
        loose = TamisRetriever(collection=col, k=3, min_relevance=1e-6).invoke("red colour")
        assert len(loose) >= len(top) and all(d.metadata["relevance"] >= 1e-6 for d in loose)
        assert [d.id for d in await r.ainvoke("red colour")] == [d.id for d in top]


def test_embeddings_conflicting_arguments() -> None:
    with pytest.raises(ValueError, match="one of model="):
        TamisEmbeddings(model="x", encoder=ENC)
    with pytest.raises(ValueError, match="tamis encoder"):
        TamisEmbeddings(encoder="not an encoder")


def test_missing_langchain_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    for name in [m for m in sys.modules if m == "langchain_core" or m.startswith("langchain_core.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "tamis.adapters.langchain")
    with pytest.raises(ImportError, match=r'pip install "tamis\[langchain\]"'):
        importlib.import_module("tamis.adapters.langchain")
