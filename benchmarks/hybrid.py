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
``--rerank DIR`` adds "+ rerank": the cross-encoder DIR (benchmarks/train_rerank.py) re-scores the
calibrated hybrid's top 20, Platt-scaled and cut at τ as the ``rerank`` stage does (benchmarks/_rerank_eval.py).

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

from _common import OUT, machine, save_json  # noqa: E402
from _hybrid_data import FOLDERS, TARGET_RECALL, K, build, encoded, run_modes, splits  # noqa: E402
from _hybrid_paired import paired  # noqa: E402
from _hybrid_timing import latency, throughput  # noqa: E402
from _rerank_eval import Reranker  # noqa: E402

from tamis.calibration import (  # noqa: E402  # noqa: E402
    CalibrationData,
    CosineAdapter,
    HybridAdapter,
    HybridCalibrationData,
    choose_threshold,
    metrics_at,
)
from tamis.data import load_qrels  # noqa: E402
from tamis.evaluation import average_precision, ir_metrics, plot_pr_curves, pr_curve  # noqa: E402
from tamis.stores import Bm25Encoder, HybridQuery  # noqa: E402

#: labelled queries the cross-encoder's Platt scaling and τ are fitted on (at most)
MAX_RERANK_FIT = 100
#: test queries re-scored (the first ones of the test split; python-faq: all, out of fold), and the top N
MAX_RERANK_TEST = 100
RERANK_TOP_N = 20


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


def compare(ids, qrels, scored) -> dict:
    """The calibrated hybrid against dense, RRF and the dense adapter, paired on the same test queries."""
    return {f"calibrated hybrid vs {m}": paired(ids, qrels, scored["calibrated hybrid"], scored[m], resamples=300)
            for m in ("dense", "rrf", "dense adapter")}


def check_engine(store, qv, qsparse, h: HybridCalibrationData, r: np.ndarray, hybrid: HybridAdapter, n: int = 200):
    """Formula queries (score_threshold = τ) against the relevance computed here: mismatching documents."""
    tau = hybrid.threshold
    formulas = hybrid.formulas(h.dense_window[:n], h.sparse_window[:n], h.dense_floor[:n], h.sparse_floor[:n])
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


def quality(name: str, rerank_model: Path | None = None) -> dict:
    folder = FOLDERS[name]
    docs, queries, dv, qids, qv = encoded(name)
    qsparse = Bm25Encoder().embed_queries([queries[q] for q in qids])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = build(Path(tmp), docs, dv)
        built = time.perf_counter() - t0
        rank = run_modes(store, qv, qsparse)
        pos = {q: i for i, q in enumerate(qids)}
        rr = None if rerank_model is None else Reranker(
            rerank_model, {d.id: d.embed_text for d in docs}, top_n=RERANK_TOP_N, width=K)

        def rerank(fit_ids, test_ids, fit_scored, scored, taus):
            """The "+ rerank" column on the first `MAX_RERANK_TEST` test queries, and the calibrated hybrid on
            the same ones (scored["_rr"]); Platt and τ on the first `MAX_RERANK_FIT` ``fit_ids``."""
            n = min(len(test_ids), MAX_RERANK_TEST)
            fit_ids, fit_docs = fit_ids[:MAX_RERANK_FIT], fit_scored["calibrated hybrid"][2][:MAX_RERANK_FIT]
            s, y, d = scored["calibrated hybrid"]
            col, tau, _ = rr.column((fit_ids, [queries[q] for q in fit_ids], fit_docs),
                                    (test_ids[:n], [queries[q] for q in test_ids[:n]], d[:n]), qrels, TARGET_RECALL)
            scored["_rr"] = (test_ids[:n], {"calibrated hybrid": (s[:n], y[:n], d[:n]), "+ rerank": col})
            taus["+ rerank"] = tau

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
                if rr is not None:  # Platt and τ of the cross-encoder on this fold's train + dev queries
                    fit = [pos[q] for q in rest]
                    fit_scored, _, _ = scored_runs(rest, qv[fit], subset(rank, fit), qrels, hybrid, dense)
                    rerank(rest, test, fit_scored, scored, taus_all[-1])
                for m, value in scored.items():  # out-of-fold scores, pooled (thresholds are per fold)
                    if m == "_rr":  # the fold's first MAX_RERANK_TEST test queries: pooled per method
                        scored_all.setdefault("_rr_ids", []).extend(scored["_rr"][0])
                        for rm, run in scored["_rr"][1].items():
                            prev = scored_all.get(f"_rr {rm}")
                            scored_all[f"_rr {rm}"] = run if prev is None else (
                                np.vstack([prev[0], run[0]]), np.vstack([prev[1], run[1]]), prev[2] + run[2])
                        continue
                    s, y, d = value
                    prev = scored_all.get(m)
                    scored_all[m] = (s, y, d) if prev is None else (np.vstack([prev[0], s]), np.vstack([prev[1], y]), prev[2] + d)
                scored_all.setdefault("_ids", []).extend(test)
            test_ids = scored_all.pop("_ids")
            taus = {m: float(np.median([t[m] for t in taus_all])) for m in taus_all[0]}
            rr_scored = (scored_all.pop("_rr_ids"), {m: scored_all.pop(f"_rr {m}") for m in ("calibrated hybrid", "+ rerank")}) if rr else None
            table, curves = metrics(test_ids, qrels, scored_all, taus)
            pairs = compare(test_ids, qrels, scored_all)
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
            if rr is not None:
                dv_scored, _, _ = scored_runs(split_ids["dev"], qv[part["dev"]], subset(rank, part["dev"]), qrels, hybrid,
                                              dense)
                rerank(split_ids["dev"], split_ids["test"], dv_scored, scored, taus)
            rr_scored = scored.pop("_rr", None)
            table, curves = metrics(split_ids["test"], qrels, scored, taus)
            pairs = compare(split_ids["test"], qrels, scored)
            hybrid_info = {"training": hybrid.extra["training"]}
        store.close()
    png = plot_pr_curves(curves, OUT / f"hybrid-{name}-pr.png", title=f"{name}: pooled PR (top-{K}, judged recall)")
    out = {"dataset": name, "docs": len(docs), "queries": len(qids), "build_seconds": built, "table": table,
           "engine_check": check, "hybrid": hybrid_info, "png": str(png), "paired": pairs}
    if rr is not None:  # side by side on the same test queries (all of python-faq's, the first ones elsewhere)
        rr_ids, rr_runs = rr_scored
        rr_table, _ = metrics(rr_ids, qrels, rr_runs, taus)
        rr_pair = paired(rr_ids, qrels, rr_runs["+ rerank"], rr_runs["calibrated hybrid"], resamples=300)
        out["rerank"] = {"model": str(rerank_model), "top_n": rr.top_n, "pairs_scored": rr.pairs_scored,
                         "fit_queries_max": MAX_RERANK_FIT, "dev_checks (per fit)": rr.dev_checks,
                         "test_queries": len(rr_ids), "table": rr_table, "paired (+ rerank vs calibrated hybrid)": rr_pair}
    return out


def main() -> None:
    global RERANK_TOP_N, MAX_RERANK_FIT, MAX_RERANK_TEST
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(FOLDERS))
    ap.add_argument("--timing", action="store_true", help="latency and index throughput (run under flock)")
    ap.add_argument("--docs", type=int, default=1000, help="--timing: documents per index-throughput run")
    ap.add_argument("--rerank", type=Path, default=None, help="a cross-encoder folder: add the '+ rerank' column")
    ap.add_argument("--rerank-top-n", type=int, default=RERANK_TOP_N, help="--rerank: candidates re-scored per query")
    ap.add_argument("--rerank-fit", type=int, default=MAX_RERANK_FIT, help="--rerank: labelled queries for Platt and τ")
    ap.add_argument("--rerank-test", type=int, default=MAX_RERANK_TEST, help="--rerank: test queries re-scored")
    ap.add_argument("--no-throughput", action="store_true", help="--timing: query latency only")
    args = ap.parse_args()
    import os

    RERANK_TOP_N, MAX_RERANK_FIT, MAX_RERANK_TEST = args.rerank_top_n, args.rerank_fit, args.rerank_test

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
            res = quality(name, args.rerank)
            print(json.dumps(res, indent=1, default=str), flush=True)
        report["results"].append(res)
    save_json(f"hybrid-timing-{'-'.join(args.datasets)}.json" if args.timing else f"hybrid-{'-'.join(args.datasets)}.json", report)


if __name__ == "__main__":
    main()
