"""The calibrated hybrid: `calibrate_hybrid`, and the ``hybrid_relevance`` stage's one formula query.

The central check: on Qdrant Edge and on qdrant-client's local mode, the formula query returns
exactly the documents whose relevance, computed here from the two prefetches' scores with the
adapter in numpy, is >= τ — and scores each with that relevance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tamis import open_collection
from tamis._errors import ConfigError
from tamis.calibration import HybridAdapter, calibrate_hybrid
from tamis.data import Document

VOCAB = [f"w{i}" for i in range(120)]


def corpus(seed: int = 0) -> tuple[list[Document], dict[str, str], dict[str, dict[str, int]]]:
    rng = np.random.default_rng(seed)
    docs, queries, qrels = [], {}, {}
    for i in range(160):
        words = list(rng.choice(VOCAB, size=int(rng.integers(5, 10)), replace=False))
        docs.append(Document(id=f"d{i}", text=" ".join([*words, f"code{i}"])))
    for j in range(120):
        i = int(rng.integers(0, 160))
        words = docs[i].text.split()
        picked = list(rng.choice(words[:-1], size=2, replace=False))
        if j % 3 == 0:
            picked.append(words[-1])  # an exact-term query: the document's own code
        queries[f"q{j}"] = " ".join(picked)
        qrels[f"q{j}"] = {f"d{i}": 1}
    return docs, queries, qrels


@pytest.fixture(scope="module", params=["edge", "qdrant"])
def calibrated(request, tmp_path_factory):
    where = {"path": tmp_path_factory.mktemp("e")} if request.param == "edge" else {"store": "qdrant", "location": ":memory:"}
    docs, queries, qrels = corpus()
    col = open_collection("h", create=True, hybrid=True, model="fake:32", **where)
    col.index(docs)
    train = {q: queries[q] for q in list(queries)[:90]}
    adapter = calibrate_hybrid(col, train, qrels, target_recall=0.8, candidates=30, window=5, epochs=10)
    test = {q: queries[q] for q in list(queries)[90:]}
    yield col, adapter, test, qrels
    col.close()


def client_side(col, adapter: HybridAdapter, texts: list[str]) -> list[dict[str, float]]:
    """{doc: relevance} of every candidate of each query, computed here from the two prefetches' scores."""
    vecs, bm = col.encode_queries(texts), col.bm25.embed_queries(texts)
    k = adapter.config.candidates
    dense = col.search_vectors(vecs, k, mode="dense")
    sparse = col.search_vectors(vecs, k, mode="sparse", sparse_vectors=bm)
    w = adapter.config.window
    out = []
    for d, s in zip(dense, sparse, strict=True):
        dmap, smap = {h.id: h.score for h in d}, {h.id: h.sparse_score for h in s}
        ids = sorted(set(dmap) | set(smap))
        dw = np.full((1, w), np.nan)
        sw = np.full((1, w), np.nan)
        dw[0, : min(w, len(d))] = [h.score for h in d[:w]]
        sw[0, : min(w, len(s))] = [h.sparse_score for h in s[:w]]
        r = adapter.relevance(
            np.array([[dmap.get(i, np.nan) for i in ids]]), np.array([[smap.get(i, np.nan) for i in ids]]), dw, sw,
            np.array([d[-1].score]), np.array([s[k - 1].sparse_score if len(s) >= k else 0.0]),
        )[0]
        out.append(dict(zip(ids, r.tolist(), strict=True)))
    return out


def test_formula_query_returns_exactly_the_hits_with_relevance_at_least_tau(calibrated):
    col, adapter, test, _ = calibrated
    assert [s.name for s in col.stages] == ["hybrid_relevance"] and 0 < adapter.threshold < 1
    tau = adapter.threshold
    texts = list(test.values())
    got = col.search_batch(texts, k=200)
    checked = 0
    for hits, rel in zip(got, client_side(col, adapter, texts), strict=True):
        want = {d for d, r in rel.items() if r >= tau + 1e-6}
        near = {d for d, r in rel.items() if abs(r - tau) < 1e-6}
        ids = {h.id for h in hits}
        assert want <= ids <= want | near
        for h in hits:
            assert h.relevance == pytest.approx(rel[h.id], abs=1e-5) and h.relevance >= tau - 1e-6
            assert h.fused_score == h.relevance and (math.isnan(h.score) or -1 <= h.score <= 1)
        assert [h.relevance for h in hits] == sorted((h.relevance for h in hits), reverse=True)
        checked += len(want)
    assert checked > 10  # the test saw real hits, not only empty answers
    assert any(not hits for hits in got) or tau < 0.5  # "nothing relevant" is an answer


def test_hit_components_read_from_the_windows_equal_the_stores_join(calibrated):
    col, _, test, _ = calibrated
    texts = list(test.values())[:10]
    # k above the prefetches' union: every candidate comes back (ties at a cut would be the engine's order)
    reused = col.search_batch(texts, k=100, relevance_filter=False)  # unfiltered: from the windows
    joined = col.search_batch(texts, k=100, relevance_filter=False, filter={"id": [f"d{i}" for i in range(160)]})
    bare = col.search_batch(texts, k=100, relevance_filter=False, components=False)
    for r, j, b in zip(reused, joined, bare, strict=True):
        assert {h.id: h.relevance for h in r} == {h.id: h.relevance for h in j} == {h.id: h.relevance for h in b}
        by_id = {h.id: h for h in j}
        for x in r:
            y = by_id[x.id]
            assert (math.isnan(x.score) and math.isnan(y.score)) or x.score == pytest.approx(y.score, abs=1e-6)
            assert x.sparse_score == (None if y.sparse_score is None else pytest.approx(y.sparse_score, abs=1e-5))
        assert any(not math.isnan(h.score) for h in r) and any(h.sparse_score is not None for h in r)
        assert all(math.isnan(h.score) and h.sparse_score is None for h in b)


def test_calibrated_hybrid_options_and_plain_fusions(calibrated):
    col, adapter, test, qrels = calibrated
    text = next(iter(test.values()))
    strict = col.search(text, k=50, min_relevance=0.9)
    loose = col.search(text, k=50, min_relevance=0.05)
    assert {h.id for h in strict} <= {h.id for h in loose} and all(h.relevance >= 0.9 - 1e-6 for h in strict)
    top = col.search(text, k=5, relevance_filter=False)
    assert len(top) == 5 and all(h.relevance is not None for h in top)
    rrf = col.search(text, k=5, fusion="rrf")
    assert all(h.relevance is None and h.fused_score < 0.04 for h in rrf)
    dense = col.search(text, k=5, mode="dense")
    assert all(h.relevance is None and h.fused_score is None for h in dense)
    info = col.info()
    assert info["calibration"] is None and info["stages"][0]["name"] == "hybrid_relevance"
    assert col.adapter is None  # no Cosine Adapter: the hybrid one is not it


def test_hybrid_adapter_round_trip_and_refusals(calibrated, tmp_path):
    col, adapter, _, qrels = calibrated
    again = HybridAdapter.from_dict(adapter.to_dict(), fingerprint=col.encoder.fingerprint)
    dw, sw = np.array([[0.9, 0.5, np.nan, np.nan, np.nan]]), np.array([[3.0, 1.0, 0.5, np.nan, np.nan]])
    np.testing.assert_allclose(again.params(dw, sw), adapter.params(dw, sw))
    assert again.threshold == adapter.threshold and again.formulas(dw, sw)[0].w >= 0
    # a document outside the BM25 prefetch takes the K-th BM25 score when the prefetch is full, else 0
    f = again.formulas(dw, sw, np.array([0.2]), np.array([1.7]))[0]
    assert f.sparse_default == 1.7 and f.dense_default == 0.2
    old = adapter.to_dict()
    old["config"] = {k: v for k, v in old["config"].items() if k != "sparse_default"}  # stored before the option
    assert HybridAdapter.from_dict(old).formulas(dw, sw, None, np.array([1.7]))[0].sparse_default == 0.0
    from tamis.calibration import HybridCalibrationData

    h = HybridCalibrationData.from_rankings(
        ["full", "short"], np.zeros((2, 2)), [[("a", 0.9), ("b", 0.8)], [("a", 0.7), ("c", 0.1)]],
        [[("b", 4.0), ("c", 2.5)], [("a", 3.0)]], {}, k=2,
    )
    assert h.sparse_floor.tolist() == [2.5, 0.0] and h.dense_floor.tolist() == [0.8, 0.1]
    from tamis._errors import CalibrationError, ModelMismatchError

    with pytest.raises(ModelMismatchError):
        HybridAdapter.from_dict(adapter.to_dict(), fingerprint="other")
    bad = {**adapter.to_dict(), "weights_sha256": "0" * 64}
    with pytest.raises(CalibrationError, match="checksum"):
        HybridAdapter.from_dict(bad)
    with open_collection("dense", create=True, model="fake:32", path=tmp_path) as dense:
        dense.index([Document(id="a", text="w1 w2")])
        with pytest.raises(ConfigError, match="--hybrid"):
            calibrate_hybrid(dense, {"q": "w1"}, {"q": {"a": 1}})
