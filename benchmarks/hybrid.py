"""Hybrid retrieval: dense, BM25, RRF (langchain-qdrant's hybrid), DBSF and the calibrated hybrid, side by side.

Datasets: ../shared/data/python-faq, ../shared/data/wordnet-reverse-dictionary, and the Debian man
pages corpus built by benchmarks/build_manpages.py (benchmarks/out/manpages). Model:
all-MiniLM-L6-v2 (ONNX Runtime when available); store: Qdrant Edge (a hybrid collection per dataset,
built from cached vectors; BM25 by the engine with the IDF modifier).

Quality (no lock needed), on each dataset's test queries, every method cut to its top-100:
nDCG@10, Recall@100 (pytrec_eval); pooled PR-AUC against the judgements (recall over every relevant
document); precision / recall / empty share at a threshold chosen on dev for recall 0.9 — for the
calibrated hybrid (its τ), a global threshold on the RRF score, a global cosine threshold and the
dense Cosine Adapter. The calibrated hybrid is checked against the engine: its formula query
(``score_threshold = τ``) must return exactly the documents whose relevance computed here is >= τ.
python-faq has test qrels only: 5-fold cross-validation (train + threshold on 4 folds).

Timing (``--timing``, run under ``flock /work/bench.lock``): store query latency p50/p99 of a dense
query, a hybrid RRF query and the calibrated hybrid (window + formula query) on the same collection,
interleaved rounds; index throughput of ``Collection.index`` (MiniLM) with and without sparse vectors.

    TAMIS_SHARED=/work/shared .venv/bin/python benchmarks/hybrid.py
    flock /work/bench.lock .venv/bin/python benchmarks/hybrid.py --timing --datasets manpages
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DATA, OUT, machine, save_json  # noqa: E402
from _encode_cache import load_encoder_fast  # noqa: E402

from tamis.calibration import (  # noqa: E402  # noqa: E402
    CalibrationData,
    CosineAdapter,
    HybridAdapter,
    HybridCalibrationData,
    choose_threshold,
    metrics_at,
)
from tamis.data import load_beir, load_beir_queries, load_qrels  # noqa: E402
from tamis.evaluation import average_precision, ir_metrics, plot_pr_curves, pr_curve  # noqa: E402
from tamis.stores import Bm25Encoder, HybridQuery, StorePoint  # noqa: E402

K = 100
TARGET_RECALL = 0.9
MAX_TRAIN = 4000
FOLDERS = {"python-faq": DATA / "python-faq", "wordnet-reverse-dictionary": DATA / "wordnet-reverse-dictionary",
           "manpages": OUT / "manpages"}
#: precomputed document vectors to reuse (benchmarks/out/<file>), checked against the encoder on a sample
DOC_VECTORS = {"wordnet-reverse-dictionary": "wordnet-docs-minilm.npz"}


def encoded(name: str, enc=None):
    """(docs, queries, doc vectors, query ids, query vectors), cached in benchmarks/out/hybrid-<name>.npz."""
    folder = FOLDERS[name]
    docs = list(load_beir(folder))
    queries = load_beir_queries(folder)
    wanted = {q for ids in splits(name).values() for q in ids}
    qids = sorted(q for q in queries if q in wanted)
    cache = OUT / f"hybrid-{name}.npz"
    if cache.exists():
        z = np.load(cache)
        if len(z["docs"]) == len(docs) and len(z["queries"]) == len(qids):
            return docs, queries, z["docs"], qids, z["queries"]
    enc = enc or load_encoder_fast()
    reuse = OUT / DOC_VECTORS.get(name, "-")
    if reuse.is_file() and len(np.load(reuse)["docs"]) == len(docs):
        # document vectors encoded by the same code path (load_encoder_fast, load_beir's order and
        # embed_text) in another benchmark; checked here on a sample before use
        dv = np.load(reuse)["docs"]
        sample = np.random.default_rng(0).choice(len(docs), 32, replace=False)
        mine = enc.encode([docs[i].embed_text for i in sample], kind="document", batch_size=32)
        agree = float(np.min(np.sum(mine * dv[sample], axis=1)))
        if agree < 0.999:
            raise SystemExit(f"{reuse} does not match this encoder (min cosine {agree:.4f}); delete it")
    else:
        dv = enc.encode([d.embed_text for d in docs], kind="document", batch_size=128)
    qv = enc.encode([queries[q] for q in qids], kind="query", batch_size=128)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(cache, docs=dv, queries=qv)
    return docs, queries, dv, qids, qv


def splits(name: str) -> dict[str, list[str]]:
    """The judged query ids of each split (train cut to `MAX_TRAIN` queries, in file order)."""
    folder = FOLDERS[name]
    out = {}
    for split in ("train", "dev", "test"):
        if (folder / "qrels" / f"{split}.tsv").is_file():
            out[split] = list(load_qrels(folder, split))
    if "train" in out:
        out["train"] = out["train"][:MAX_TRAIN]
    return out


def build(path: Path, docs, dv, *, sparse: bool = True):
    from tamis.adapters.qdrant_edge import EdgeStore

    store = EdgeStore(path)
    store.create_collection("c", dim=dv.shape[1], metadata={}, sparse=sparse)
    bm25 = Bm25Encoder()
    for at in range(0, len(docs), 1000):
        part = docs[at : at + 1000]
        sv = bm25.embed_documents([d.embed_text for d in part]) if sparse else [None] * len(part)
        store.upsert("c", [StorePoint(_pid(at + j), dv[at + j], {"doc_id": d.id}, sparse=sv[j]) for j, d in enumerate(part)])
    store.optimize("c")
    return store


def _pid(i: int) -> str:
    import uuid

    return str(uuid.UUID(int=i + 1))


def run_modes(store, qv, qsparse, *, batch: int = 128):
    """{method: per-query [(doc id, score)] top-K} for dense, bm25, rrf, dbsf (one engine batch per chunk)."""
    out: dict[str, list] = {m: [] for m in ("dense", "bm25", "rrf", "dbsf")}
    spec = {"dense": ("dense", "rrf"), "bm25": ("sparse", "rrf"), "rrf": ("hybrid", "rrf"), "dbsf": ("hybrid", "dbsf")}
    for at in range(0, len(qv), batch):
        for m, (mode, fusion) in spec.items():
            qs = [HybridQuery(dense=qv[i], sparse=qsparse[i], mode=mode, fusion=fusion, prefetch=K)
                  for i in range(at, min(at + batch, len(qv)))]
            res = store.query_hybrid("c", qs, k=K)
            out[m].extend([(p.payload["doc_id"], p.score) for p in hits] for hits in res)
    return out


def subset(rank: dict[str, list], rows) -> dict[str, list]:
    return {m: [v[i] for i in rows] for m, v in rank.items()}


def calibration_data(qids, qv, ranked, qrels) -> CalibrationData:
    """Dense candidates of ``ranked`` as `CalibrationData` (for the Cosine Adapter and the global thresholds)."""
    n = len(qids)
    s, y, ids = np.full((n, K), np.nan), np.zeros((n, K)), []
    for r, (q, hits) in enumerate(zip(qids, ranked, strict=True)):
        s[r, : len(hits)] = [v for _, v in hits]
        y[r, : len(hits)] = [1.0 if qrels.get(q, {}).get(d, 0) > 0 else 0.0 for d, _ in hits]
        ids.append([d for d, _ in hits])
    rel = np.array([float(sum(1 for g in qrels.get(q, {}).values() if g > 0)) for q in qids])
    return CalibrationData(list(qids), qv, s, y, ids, rel)


def fit_methods(train_ids, train_qv, train_rank, dev_ids, dev_qv, dev_rank, qrels, fp: str):
    """The calibrated hybrid, the dense adapter and the global thresholds, fitted on train / dev."""
    htr = HybridCalibrationData.from_rankings(train_ids, train_qv, train_rank["dense"], train_rank["bm25"], qrels)
    hdv = HybridCalibrationData.from_rankings(dev_ids, dev_qv, dev_rank["dense"], dev_rank["bm25"], qrels)
    hybrid = HybridAdapter.fit(htr, hdv, fingerprint=fp, candidates=K)
    hybrid.fit_threshold(hdv, target_recall=TARGET_RECALL)
    ctr = calibration_data(train_ids, train_qv, train_rank["dense"], qrels)
    cdv = calibration_data(dev_ids, dev_qv, dev_rank["dense"], qrels)
    dense = CosineAdapter.fit(ctr, cdv, fingerprint=fp)
    dense.fit_threshold(cdv, target_recall=TARGET_RECALL)
    cos_tau = choose_threshold(cdv.scores, cdv, target_recall=TARGET_RECALL).threshold
    rrf_dv = calibration_data(dev_ids, dev_qv, dev_rank["rrf"], qrels)
    rrf_tau = choose_threshold(rrf_dv.scores, rrf_dv, target_recall=TARGET_RECALL).threshold
    return hybrid, dense, cos_tau, rrf_tau


def scored_runs(ids, qv, rank, qrels, hybrid: HybridAdapter, dense: CosineAdapter):
    """{method: (n, K) scores, (n, K) labels, run} on the test queries, each method's top-K."""
    out = {}
    for m in ("dense", "bm25", "rrf", "dbsf"):
        d = calibration_data(ids, qv, rank[m], qrels)
        out[m] = (d.scores, d.labels, d.doc_ids)
    d = calibration_data(ids, qv, rank["dense"], qrels)
    out["dense adapter"] = (dense.predict(d), d.labels, d.doc_ids)
    h = HybridCalibrationData.from_rankings(ids, qv, rank["dense"], rank["bm25"], qrels)
    r = hybrid.predict(h)
    s, y, docs = np.full((len(ids), K), np.nan), np.zeros((len(ids), K)), []
    for i in range(len(ids)):
        order = np.argsort(-np.nan_to_num(r[i], nan=-1.0))[:K]
        order = order[~np.isnan(r[i, order])]
        s[i, : len(order)], y[i, : len(order)] = r[i, order], h.labels[i, order]
        docs.append([h.doc_ids[i][j] for j in order])
    out["calibrated hybrid"] = (s, y, docs)
    return out, h, r


def metrics(ids, qrels, scored, taus) -> tuple[dict, dict]:
    total = sum(sum(1 for g in qrels.get(q, {}).values() if g > 0) for q in ids)
    table, curves = {}, {}
    for m, (s, y, docs) in scored.items():
        run = {q: {d: float(v) for d, v in zip(dl, s[i], strict=False)} for i, (q, dl) in enumerate(zip(ids, docs, strict=True))}
        ir = ir_metrics(run, {q: qrels[q] for q in ids if q in qrels})
        mask = ~np.isnan(s)
        flat, lab = s[mask], y[mask] > 0.5
        cover = lab.sum() / max(total, 1)
        row = {"nDCG@10": ir["nDCG@10"], "Recall@100": ir["Recall@100"], "pr_auc": average_precision(flat, lab) * cover}
        if m in taus:
            at = metrics_at(np.where(mask, s, -np.inf), (y > 0.5) & mask, mask, taus[m])
            row.update(tau=float(taus[m]), precision=at["precision"], recall=at["recall"] * cover,
                       empty_share=at["empty_share"])
        table[m] = row
        p, r, _ = pr_curve(flat, lab)
        curves[m] = (p, r * cover)
    return table, curves


def check_engine(store, qv, qsparse, h: HybridCalibrationData, r: np.ndarray, hybrid: HybridAdapter, n: int = 200):
    """Formula queries (score_threshold = τ) against the relevance computed here: mismatching documents."""
    tau = hybrid.threshold
    formulas = hybrid.formulas(h.dense_window[:n], h.sparse_window[:n], h.dense_floor[:n])
    qs = [HybridQuery(dense=qv[i], sparse=qsparse[i], fusion="formula", prefetch=K, formula=formulas[i],
                      score_threshold=float(np.nextafter(np.float32(tau), np.float32(-1)))) for i in range(min(n, len(qv)))]
    got = store.query_hybrid("c", qs, k=2 * K)
    bad = 0
    for i, hits in enumerate(got):
        mine = {h.doc_ids[i][j] for j in range(len(h.doc_ids[i])) if r[i, j] >= tau + 1e-6}
        near = {h.doc_ids[i][j] for j in range(len(h.doc_ids[i])) if abs(r[i, j] - tau) < 1e-6}
        ids = {p.payload["doc_id"] for p in hits}
        bad += len(mine - ids) + len(ids - mine - near)
    return {"queries": len(got), "mismatches": bad, "returned": sum(len(g) for g in got)}


def quality(name: str) -> dict:
    folder = FOLDERS[name]
    docs, queries, dv, qids, qv = encoded(name)
    qsparse = Bm25Encoder().embed_queries([queries[q] for q in qids])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = build(Path(tmp), docs, dv)
        built = time.perf_counter() - t0
        rank = run_modes(store, qv, qsparse)
        pos = {q: i for i, q in enumerate(qids)}
        fp = "bench-minilm"
        if name == "python-faq":
            qrels = load_qrels(folder, "test")
            ids = [q for q in qids if q in qrels]
            folds = np.array_split(np.random.default_rng(0).permutation(len(ids)), 5)
            scored_all, taus_all, checks = {}, [], []
            for f in range(5):
                test = [ids[i] for i in folds[f]]
                rest = [ids[i] for g in range(5) if g != f for i in folds[g]]
                dev, train = rest[: len(rest) // 4], rest[len(rest) // 4 :]
                part = {s: [pos[q] for q in v] for s, v in (("train", train), ("dev", dev), ("test", test))}
                hybrid, dense, cos_tau, rrf_tau = fit_methods(
                    train, qv[part["train"]], subset(rank, part["train"]), dev, qv[part["dev"]], subset(rank, part["dev"]),
                    qrels, fp)
                scored, h, r = scored_runs(test, qv[part["test"]], subset(rank, part["test"]), qrels, hybrid, dense)
                checks.append(check_engine(store, qv[part["test"]], [qsparse[i] for i in part["test"]], h, r, hybrid))
                taus_all.append({"calibrated hybrid": hybrid.threshold, "dense adapter": dense.threshold,
                                 "dense": cos_tau, "rrf": rrf_tau})
                for m, (s, y, d) in scored.items():  # out-of-fold scores, pooled (thresholds are per fold)
                    prev = scored_all.get(m)
                    scored_all[m] = (s, y, d) if prev is None else (np.vstack([prev[0], s]), np.vstack([prev[1], y]), prev[2] + d)
                scored_all.setdefault("_ids", []).extend(test)
            test_ids = scored_all.pop("_ids")
            taus = {m: float(np.median([t[m] for t in taus_all])) for m in taus_all[0]}
            table, curves = metrics(test_ids, qrels, scored_all, taus)
            check = {k: sum(c[k] for c in checks) for k in checks[0]}
            hybrid_info = {"tau_per_fold": [t["calibrated hybrid"] for t in taus_all]}
        else:
            qrels = {}
            for split in ("train", "dev", "test"):
                qrels.update(load_qrels(folder, split))
            split_ids = {s: [q for q in ids if q in pos] for s, ids in splits(name).items()}
            part = {s: [pos[q] for q in v] for s, v in split_ids.items()}
            hybrid, dense, cos_tau, rrf_tau = fit_methods(
                split_ids["train"], qv[part["train"]], subset(rank, part["train"]),
                split_ids["dev"], qv[part["dev"]], subset(rank, part["dev"]), qrels, fp)
            scored, h, r = scored_runs(split_ids["test"], qv[part["test"]], subset(rank, part["test"]), qrels, hybrid, dense)
            check = check_engine(store, qv[part["test"]], [qsparse[i] for i in part["test"]], h, r, hybrid)
            taus = {"calibrated hybrid": hybrid.threshold, "dense adapter": dense.threshold, "dense": cos_tau, "rrf": rrf_tau}
            table, curves = metrics(split_ids["test"], qrels, scored, taus)
            hybrid_info = {"training": hybrid.extra["training"]}
        store.close()
    png = plot_pr_curves(curves, OUT / f"hybrid-{name}-pr.png", title=f"{name}: pooled PR (top-{K}, judged recall)")
    return {"dataset": name, "docs": len(docs), "queries": len(qids), "build_seconds": built, "table": table,
            "engine_check": check, "hybrid": hybrid_info, "png": str(png)}


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(FOLDERS))
    ap.add_argument("--timing", action="store_true", help="latency and index throughput (run under flock)")
    ap.add_argument("--docs", type=int, default=1000, help="--timing: documents per index-throughput run")
    ap.add_argument("--no-throughput", action="store_true", help="--timing: query latency only")
    args = ap.parse_args()
    import os

    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
              "load": os.getloadavg(), "results": []}
    for name in args.datasets:
        if args.timing:  # each part printed as soon as it is measured
            res = latency(name)
            print(json.dumps(res, indent=1, default=str), flush=True)
            if not args.no_throughput:
                res["throughput"] = throughput(name, n_docs=args.docs)
                print(json.dumps(res["throughput"], indent=1, default=str), flush=True)
        else:
            res = quality(name)
            print(json.dumps(res, indent=1, default=str), flush=True)
        report["results"].append(res)
    save_json(f"hybrid-timing-{'-'.join(args.datasets)}.json" if args.timing else f"hybrid-{'-'.join(args.datasets)}.json", report)


if __name__ == "__main__":
    main()
