"""Retrieval quality of onnx-int8 against float32 (quality only: no timing, no lock needed).

    python benchmarks/int8_quality.py [--dataset python-faq] [--docs 0]

Encodes the corpus and the test queries with ``onnx`` (float32) and ``onnx-int8``, searches exactly
(cosine, top 10) and reports recall@10 and nDCG@10 (pytrec_eval) for both, the int8 quality gate on
a sample of the documents, and the top-10 overlap of the two. ``--docs N`` keeps the first N
documents and the queries whose relevant documents are all among them.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
from _common import dataset, save_json

import tamis
from tamis.data import load_beir_queries, load_qrels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="python-faq")
    ap.add_argument("--docs", type=int, default=0)
    args = ap.parse_args()
    import pytrec_eval

    folder = dataset(args.dataset)
    docs = list(itertools.islice(tamis.load_beir(folder), args.docs or None))
    ids = [d.id for d in docs]
    have = set(ids)
    qrels = {q: r for q, r in load_qrels(folder).items() if set(r) <= have}
    queries = load_beir_queries(folder)
    qids = [q for q in qrels if q in queries]
    fp32 = tamis.load_encoder(None, backend="onnx")
    int8 = tamis.load_encoder(None, backend="onnx-int8", int8_gate=False)
    sample = [d.embed_text for d in docs[:: max(1, len(docs) // 512)][:512]]
    gate = int8.check_int8(sample) if len(sample) >= 32 else None  # type: ignore[attr-defined]
    out: dict[str, object] = {"dataset": args.dataset, "docs": len(docs), "queries": len(qids), "gate": gate}
    tops = {}
    for label, enc in (("fp32", fp32), ("int8", int8)):
        dv = enc.encode([d.embed_text for d in docs])
        qv = enc.encode([queries[q] for q in qids], kind="query")
        scores = qv @ dv.T
        top = np.argsort(-scores, axis=1)[:, :10]
        tops[label] = top
        run = {q: {ids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(qids)}
        ev = pytrec_eval.RelevanceEvaluator(qrels, {"recall_10", "ndcg_cut_10"}).evaluate(run)
        out[label] = {m: float(np.mean([v[m] for v in ev.values()])) for m in ("recall_10", "ndcg_cut_10")}
    overlap = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(tops["fp32"], tops["int8"], strict=True)]))
    out["query_top10_overlap"] = overlap
    print(f"{args.dataset}: {len(docs)} documents, {len(qids)} queries")
    for label in ("fp32", "int8"):
        print(f"  {label}: recall@10 {out[label]['recall_10']:.4f}, nDCG@10 {out[label]['ndcg_cut_10']:.4f}")  # type: ignore[index]
    print(f"  query top-10 overlap int8 vs fp32: {overlap:.3f}")
    if gate:
        print(f"  gate on {gate['texts']} docs: recall@10 {gate['recall_at_k']}, mean cosine {gate['mean_cosine']}, "
              f"overlap {gate['top_k_overlap']}, passed {gate['passed']}")
    save_json(f"int8_quality-{args.dataset}.json", out)


if __name__ == "__main__":
    main()
