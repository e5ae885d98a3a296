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
chosen for hybrid.py). ``--dev`` adds, on the DEV split (not python-faq: test qrels only), the nearest
principled change of the adapter: its logits normalised per query, z − log Σ_candidates exp(z) (a
softmax over the candidates: with one relevant document per query, the probability that THIS one
is it; still one constant per query, so the engine formula is unchanged) — dev pooled PR-AUC of RRF,
the adapter and the normalised adapter, the adapter fitted on train with early stopping on dev as
hybrid.py does. Quality only: ``nice``, no lock.

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

from tamis.calibration import HybridAdapter, HybridCalibrationData  # noqa: E402
from tamis.data import load_qrels  # noqa: E402
from tamis.evaluation import average_precision  # noqa: E402
from tamis.stores import Bm25Encoder  # noqa: E402


def bounds(name: str, dev: bool = False) -> dict:
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
    if dev:
        out["dev"] = dev_variants(name, qids, qv, queries, qrels_all(folder), rank_all(docs, dv, qv, queries, qids))
    print(json.dumps(out), flush=True)
    return out


def qrels_all(folder: Path) -> dict:
    out: dict = {}
    for split in ("train", "dev", "test"):
        if (folder / "qrels" / f"{split}.tsv").is_file():
            out.update(load_qrels(folder, split))
    return out


def rank_all(docs, dv, qv, queries, qids) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = build(Path(tmp), docs, dv)
        rank = run_modes(store, qv, Bm25Encoder().embed_queries([queries[q] for q in qids]))
        store.close()
    return rank


def _pooled(score: np.ndarray, d: HybridCalibrationData) -> float:
    lab = order_labels(np.where(d.mask, score, np.nan), d.labels, K)
    s = order_labels(np.where(d.mask, score, np.nan), np.where(d.mask, score, np.nan), K)
    flat, y = np.concatenate(s), np.concatenate(lab) > 0.5
    return average_precision(flat, y) * y.sum() / d.relevant.sum()


def dev_variants(name: str, qids, qv, queries, qrels, rank) -> dict:
    from scipy.special import logsumexp

    pos = {q: i for i, q in enumerate(qids)}
    sp = {s: [q for q in ids if q in pos] for s, ids in splits(name).items()}

    def data(split: str) -> HybridCalibrationData:
        r = [pos[q] for q in sp[split]]
        return HybridCalibrationData.from_rankings(sp[split], qv[r], [rank["dense"][i] for i in r],
                                                   [rank["bm25"][i] for i in r], qrels, k=K)

    tr, de = data("train"), data("dev")
    adapter = HybridAdapter.fit(tr, de, fingerprint="bound", candidates=K)
    a, w, b = adapter.params(de.dense_window, de.sparse_window)
    c = np.where(np.isnan(de.dense), de.dense_floor[:, None], de.dense)
    s = np.log1p(np.maximum(np.where(np.isnan(de.sparse), de.sparse_floor[:, None], de.sparse), 0.0))
    z = np.where(de.mask, a[:, None] * c + w[:, None] * s + b[:, None], -np.inf)
    normalised = z - logsumexp(z, axis=1, keepdims=True)
    rrf = [rank["rrf"][pos[q]] for q in sp["dev"]]
    lab = [np.array([1.0 if qrels[q].get(d, 0) > 0 else 0.0 for d, _ in hits]) for q, hits in zip(sp["dev"], rrf, strict=True)]
    flat = np.concatenate([np.array([v for _, v in hits]) for hits in rrf])
    y = np.concatenate(lab) > 0.5
    rrf_ap = average_precision(flat, y) * y.sum() / de.relevant.sum()
    ad, nm = _pooled(adapter.predict(de), de), _pooled(np.where(de.mask, normalised, np.nan), de)
    return {"queries": len(de), "rrf": rrf_ap, "adapter": ad, "adapter / rrf": ad / rrf_ap,
            "normalised adapter": nm, "normalised / rrf": nm / rrf_ap}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["python-faq", "manpages", "wordnet-reverse-dictionary"])
    ap.add_argument("--dev", action="store_true", help="also the adapter and its per-query normalised form on dev")
    args = ap.parse_args()
    res = [bounds(n, args.dev and n != "python-faq") for n in args.datasets]
    save_json("hybrid-bound.json", res)


if __name__ == "__main__":
    main()
