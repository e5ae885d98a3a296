"""How far can a calibration of the same candidates go? Oracle bounds of hybrid.py's pooled PR-AUC.

For each dataset's test queries (python-faq: all its judged queries) and the candidates hybrid.py
scores (each method's top-100; the calibrated hybrid's: the union of the dense and BM25 top-100 with
the formula's defaults), it prints the measured-free upper bounds of `_hybrid_bound`:

* ``rrf order`` / ``dense order``: the best pooled PR-AUC of ANY per-query monotone calibration of the
  RRF (resp. cosine) ranking — what a perfect per-query offset on those scores could reach;
* ``fusion family``: the best of ANY adapter r = σ(a(q)·c + w(q)·ln(1+s) + b(q)), a > 0, w >= 0 (the
  hybrid adapter's family), with λ = w / a chosen per query by an oracle;
* ``fusion, global λ``: one λ for every query (the best one on these queries), offsets by an oracle.

The labels are the test labels by design (an oracle, not a method; nothing here is fitted or
chosen for hybrid.py). Quality only: ``nice``, no lock.

    TAMIS_SHARED=/work/shared nice -n 10 .venv/bin/python benchmarks/hybrid_bound.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import save_json  # noqa: E402
from _hybrid_bound import LAMBDAS, best_fusion_orders, max_pooled_ap, order_labels  # noqa: E402
from _hybrid_data import FOLDERS, K, build, encoded, run_modes, splits  # noqa: E402

from tamis.calibration import HybridCalibrationData  # noqa: E402
from tamis.data import load_qrels  # noqa: E402
from tamis.stores import Bm25Encoder  # noqa: E402


def bounds(name: str) -> dict:
    folder = FOLDERS[name]
    docs, queries, dv, qids, qv = encoded(name)
    qrels = load_qrels(folder, "test")
    test = [q for q in splits(name)["test"] if q in qrels] if name != "python-faq" else [q for q in qids if q in qrels]
    pos = {q: i for i, q in enumerate(qids)}
    rows = [pos[q] for q in test if q in pos]
    test = [qids[i] for i in rows]
    qsparse = Bm25Encoder().embed_queries([queries[q] for q in test])
    with tempfile.TemporaryDirectory() as tmp:
        store = build(Path(tmp), docs, dv)
        rank = run_modes(store, qv[rows], qsparse)
        store.close()
    total = sum(sum(1 for g in qrels[q].values() if g > 0) for q in test)
    out: dict = {"dataset": name, "test_queries": len(test), "relevant": total}
    for m in ("rrf", "dense"):
        lab = [np.array([1.0 if qrels[q].get(d, 0) > 0 else 0.0 for d, _ in hits]) for q, hits in zip(test, rank[m], strict=True)]
        out[f"{m} order"] = max_pooled_ap(lab, total)
    h = HybridCalibrationData.from_rankings(test, qv[rows], rank["dense"], rank["bm25"], qrels, k=K)
    floor_s = h.sparse_floor if h.sparse_floor is not None else np.zeros(len(test))
    c = np.where(np.isnan(h.dense), h.dense_floor[:, None], h.dense)
    s = np.where(np.isnan(h.sparse), floor_s[:, None], h.sparse)
    ls = np.log1p(np.maximum(s, 0.0))
    best, lam = best_fusion_orders(c, ls, h.labels, h.mask, K)
    out["fusion family"] = max_pooled_ap(best, total)
    out["lambda per query (median, share 0, share inf)"] = [float(np.median(lam)), float(np.mean(lam == 0)),
                                                            float(np.mean(np.isinf(lam)))]
    glob = {}
    for g in LAMBDAS:
        score = ls + 1e-6 * c if np.isinf(g) else c + g * ls
        glob[g] = max_pooled_ap(order_labels(np.where(h.mask, score, np.nan), h.labels, K), total)
    g_best = max(glob, key=glob.get)
    out["fusion, global lambda"] = {"lambda": g_best, "bound": glob[g_best]}
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["python-faq", "manpages", "wordnet-reverse-dictionary"])
    args = ap.parse_args()
    res = [bounds(n) for n in args.datasets]
    save_json("hybrid-bound.json", res)


if __name__ == "__main__":
    main()
