"""The hybrid benchmark's timing (``benchmarks/hybrid.py --timing``, run under ``flock /work/bench.lock``)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from _encode_cache import load_encoder_fast
from _hybrid_data import FOLDERS, K, build, encoded, run_modes

from tamis.calibration import HybridCalibrationData
from tamis.data import load_beir
from tamis.stores import Bm25Encoder, HybridQuery


def latency(name: str, rounds: int = 3, n: int = 100) -> dict:
    """Store query latency on one collection, interleaved per query: a dense query; a hybrid RRF query (the
    fused request alone, and with both sides' scores joined); the calibrated hybrid as the
    ``hybrid_relevance`` stage sends it (the dense and the BM25 window, then the formula request alone);
    and the query-encoding costs (BM25 `embed_query`, the dense MiniLM encoder) for scale."""
    from tamis.stores import RelevanceFormula

    docs, queries, dv, qids, qv = encoded(name)
    bm25 = Bm25Encoder()
    texts = [queries[q] for q in qids[:n]]
    qsparse = bm25.embed_queries(texts)
    qv = qv[:n]
    enc = load_encoder_fast()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        store = build(Path(tmp), docs, dv)
        built_s = time.perf_counter() - t
        rank = run_modes(store, qv[:50], qsparse[:50])
        h = HybridCalibrationData.from_rankings(qids[:50], qv[:50], rank["dense"], rank["bm25"], {q: {} for q in qids})
        f = RelevanceFormula(a=5.0, w=0.5, b=-3.0, dense_default=float(np.nanmean(h.dense_floor)))
        times: dict[str, list[float]] = {m: [] for m in (
            "dense", "hybrid rrf", "hybrid rrf + components", "calibrated hybrid", "bm25 query encoding",
            "dense query encoding (MiniLM)")}
        for r in range(rounds):
            for i in range(n):
                calls = _latency_calls(store, qv[i], qsparse[i], texts[i], f, enc, bm25)
                for m, call in (calls if (r + i) % 2 == 0 else calls[::-1]):
                    t = time.perf_counter()
                    call()
                    times[m].append(time.perf_counter() - t)
        store.close()
    out = {m: {"p50_ms": 1000 * float(np.percentile(v, 50)), "p99_ms": 1000 * float(np.percentile(v, 99))}
           for m, v in times.items()}
    for m in out:
        if m != "dense":
            out[m]["p50_ratio"] = out[m]["p50_ms"] / out["dense"]["p50_ms"]
            out[m]["p99_ratio"] = out[m]["p99_ms"] / out["dense"]["p99_ms"]
    # what a search by text costs end to end (encoding included): dense = MiniLM + dense query; hybrid adds BM25
    for m in ("hybrid rrf", "calibrated hybrid"):
        enc50, bm50, d50 = (out[x]["p50_ms"] for x in ("dense query encoding (MiniLM)", "bm25 query encoding", "dense"))
        out[m]["p50_ratio_with_encoding"] = (enc50 + bm50 + out[m]["p50_ms"]) / (enc50 + d50)
    return {"dataset": name, "docs": len(docs), "queries_per_round": n, "rounds": rounds,
            "build_s": built_s, **out}


def _latency_calls(store, d, sv, text, f, enc, bm25) -> list:
    """The timed calls of one query (`latency`), by method name."""
    return [
        ("dense", lambda: store.search("c", d, k=10)),
        ("hybrid rrf", lambda: store.query_hybrid(
            "c", [HybridQuery(dense=d, sparse=sv, prefetch=K, components=False)], k=10)),
        ("hybrid rrf + components", lambda: store.query_hybrid(
            "c", [HybridQuery(dense=d, sparse=sv, prefetch=K)], k=10)),
        ("calibrated hybrid", lambda: (
            store.search("c", d, k=K),  # the stage's two windows, then the formula request alone
            store.query_hybrid("c", [HybridQuery(sparse=sv, mode="sparse")], k=K),
            store.query_hybrid("c", [HybridQuery(
                dense=d, sparse=sv, fusion="formula", formula=f, prefetch=K, score_threshold=0.5,
                components=False)], k=10))),
        ("bm25 query encoding", lambda: bm25.embed_query(text)),
        ("dense query encoding (MiniLM)", lambda: enc.encode([text], kind="query")),
    ]


def throughput(name: str, n_docs: int = 1000, rounds: int = 2) -> dict:
    """`Collection.index` (MiniLM) docs/s with and without BM25 sparse vectors, interleaved rounds."""
    from tamis import open_collection

    docs = list(load_beir(FOLDERS[name]))[:n_docs]
    enc = load_encoder_fast()
    rates: dict[str, list[float]] = {"dense": [], "hybrid": []}
    for r in range(rounds):
        for kind in (("dense", "hybrid") if r % 2 == 0 else ("hybrid", "dense")):
            with tempfile.TemporaryDirectory() as tmp, open_collection(
                "t", path=tmp, encoder=enc, create=True, hybrid=kind == "hybrid"
            ) as col:
                t = time.perf_counter()
                col.index(docs)
                rates[kind].append(n_docs / (time.perf_counter() - t))
    d, h = float(np.median(rates["dense"])), float(np.median(rates["hybrid"]))
    return {"dataset": name, "docs": n_docs, "rounds": rounds, "dense_docs_per_s": d, "hybrid_docs_per_s": h,
            "ratio": h / d, "all": rates}
