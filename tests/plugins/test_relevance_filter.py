"""The ``relevance`` stage: the per-query cutoff c*(q) runs inside the store, on both stores."""

import numpy as np
import pytest

import tamis
from tamis import AdapterConfig, CosineAdapter, Document, FakeEncoder, SearchRequest, Stage
from tamis.plugins.relevance import RelevanceFilter
from tamis.registry import STAGES, load

VOCAB = [f"w{i}" for i in range(60)]


def corpus(n=120, seed=3):
    rng = np.random.default_rng(seed)
    return [Document(f"d{i}", " ".join(rng.choice(VOCAB, 6, replace=False)), metadata={"n": i}) for i in range(n)]


def random_adapter(seed, *, g, dim, use_embedding=True, use_score_features=True):
    rng = np.random.default_rng(seed)
    cfg = AdapterConfig(g=g, use_embedding=use_embedding, use_score_features=use_score_features, hidden=4, window=10)
    f = cfg.input_dim(dim)
    w = {
        "mu": np.zeros(f), "sd": np.ones(f), "w1": rng.normal(size=(4, f)), "b1": rng.normal(size=4),
        "w2": rng.normal(size=(2, 4)), "b2": np.array([2.0, -1.0]), "log_gamma": np.array([0.3]),
    }
    return CosineAdapter(cfg, w, fingerprint="", dim=dim)


@pytest.fixture(params=["edge", "qdrant-local"])
def where(request, tmp_path):
    if request.param == "edge":
        return {"path": tmp_path / "edge"}
    return {"store": "qdrant", "path": tmp_path / "qdrant"}


def test_stage_is_registered_and_matches_the_protocol():
    assert load(STAGES, "relevance") is RelevanceFilter
    stage = RelevanceFilter(random_adapter(0, g="linear", dim=8), threshold=0.5)
    assert isinstance(stage, Stage) and stage.name == "relevance"


@pytest.mark.parametrize("g,inputs", [("linear", (True, True)), ("sqrt", (False, True)), ("power", (True, False)), ("square", (False, True))])
def test_store_returns_exactly_the_documents_with_relevance_at_least_tau(where, g, inputs):
    enc = FakeEncoder(dim=24)
    docs = corpus()
    queries = ["w1 w2 w3", "w10 w11", "w5 w40 w41 w42", "w7", "w20 w33 w59"]
    with tamis.open_collection("c", encoder=enc, create=True, **where) as col:
        col.index(docs)
        adapter = random_adapter(7, g=g, dim=24, use_embedding=inputs[0], use_score_features=inputs[1])
        adapter.fingerprint = enc.fingerprint
        qv = col.encode_queries(queries)
        # every document's cosine, straight from the store, and r computed here in Python
        full = col.search_vectors(qv, len(docs), exact=True)
        window = np.array([[h.score for h in hits[:10]] for hits in full])
        rel = [adapter.relevance(np.array([[h.score for h in hits]]), qv[i : i + 1], window[i : i + 1])[0]
               for i, hits in enumerate(full)]
        tau = float(np.median(np.concatenate(rel)))  # some pass, some do not
        adapter.threshold = tau
        col.set_adapter(adapter)
        got = col.search_vectors(qv, len(docs), exact=True)
        n_kept = 0
        for i, hits in enumerate(full):
            want = {h.id for h, r in zip(hits, rel[i], strict=True) if r >= tau}
            assert {h.id for h in got[i]} == want, queries[i]
            n_kept += len(want)
            assert all(h.relevance >= tau - 1e-9 for h in got[i])
        assert 0 < n_kept < len(docs) * len(queries)
        # the cutoff is applied by the store even when k is small: the top-3 of the kept ones
        top3 = col.search_vectors(qv, 3, exact=True)
        for i, hits in enumerate(top3):
            assert [h.id for h in hits] == [h.id for h in got[i][:3]]
        # a caller's own cosine threshold and payload filter still apply, on top
        filt = col.search_vectors(qv, len(docs), exact=True, filter={"n": {"lt": 60}}, score_thresholds=[0.2] * len(queries))
        for i, hits in enumerate(filt):
            assert {h.id for h in hits} == {h.id for h in got[i] if int(h.id[1:]) < 60 and h.score >= 0.2}


def test_feature_window_is_one_extra_store_query():
    calls = []
    adapter = random_adapter(1, g="linear", dim=4)
    stage = RelevanceFilter(adapter, threshold=0.5)
    hit = tamis.Hit

    def search(req: SearchRequest):
        calls.append((req.k, req.score_thresholds, req.filter))
        return [[hit(id=f"d{j}", score=0.9 - 0.1 * j) for j in range(req.k if req.score_thresholds is None else 2)]
                for _ in range(len(req.vectors))]

    req = SearchRequest(vectors=np.ones((2, 4), dtype=np.float32), k=50, filter={"metadata.n": 1})
    out = stage(req, search)
    assert calls[0] == (10, None, None) and calls[1][0] == 50 and len(calls[1][1]) == 2 and calls[1][2] == {"metadata.n": 1}
    assert all(h.relevance is not None for hits in out for h in hits)
    calls.clear()
    out = stage(req.replace(options={"relevance_filter": False}), search)
    assert [c[1] for c in calls] == [None, None] and len(out[0]) == 50
    # unfiltered with k <= window: the window query is the answer, cut at c*(q) (one store query)
    calls.clear()
    small = req.replace(k=5, filter=None)
    out = stage(small, search)
    cut = adapter.cutoffs(small.vectors, np.array([[0.9 - 0.1 * j for j in range(10)]] * 2), threshold=0.5)
    assert len(calls) == 1 and calls[0][0] == 10
    assert [len(hits) for hits in out] == [min(5, sum(0.9 - 0.1 * j >= c for j in range(10))) for c in cut]
    # an adapter without score-list features needs no window query
    calls.clear()
    RelevanceFilter(random_adapter(1, g="linear", dim=4, use_score_features=False), threshold=0.5)(req, search)
    assert len(calls) == 1
