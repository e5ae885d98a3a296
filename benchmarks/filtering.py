"""Relevance filtering: the Cosine Adapter against a global cosine threshold (and Platt, z-score).

Datasets (../shared/data, BEIR format):
* wordnet-reverse-dictionary: train -> fit the adapter, dev -> choose the variant and τ, test -> report;
* python-faq (172 queries, test qrels only): 5-fold cross-validation, out-of-fold predictions pooled.

Metric: pooled PR-AUC (average precision) over the top-100 candidates of every query (exact
search with all-MiniLM-L6-v2), precision at recall 0.5, and P/R/F1/empty share at τ (target
recall 0.9). Also: the adapter's added query latency (cutoff computation alone, and end to end on
a Qdrant Edge collection including the feature-window query) and its training time.

Encoded vectors and candidates are cached under benchmarks/out/. Run on a shared machine as:

    flock /tmp/tamis-bench.lock .venv/bin/python benchmarks/filtering.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _encode_cache import DATA, OUT, encoded, load_encoder_fast  # noqa: E402

from tamis import CalibrationData, CosineAdapter, Document  # noqa: E402
from tamis.calibration import fit_baselines, method_scores  # noqa: E402
from tamis.data import load_qrels  # noqa: E402
from tamis.evaluation import evaluate_filtering, plot_pr_curves  # noqa: E402

logger = logging.getLogger("tamis.bench")
K = 100
TARGET_RECALL = 0.9
VARIANTS = {
    "scores/linear": {"use_embedding": False, "use_score_features": True, "g": "linear"},
    "embedding/linear": {"use_embedding": True, "use_score_features": False, "g": "linear"},
    "both/linear": {"use_embedding": True, "use_score_features": True, "g": "linear"},
    "full-scores/linear": {"use_embedding": False, "use_score_features": True, "g": "linear", "score_list": "full"},
    "scores/sqrt": {"use_embedding": False, "use_score_features": True, "g": "sqrt"},
    "scores/square": {"use_embedding": False, "use_score_features": True, "g": "square"},
    "scores/power": {"use_embedding": False, "use_score_features": True, "g": "power"},
}


def candidates(name: str, split: str, qids, qv, dids, dv, tag: str = "") -> CalibrationData:
    cache = OUT / f"{name}{'-' + tag if tag else ''}-{split}-cand{K}.npz"
    qrels = load_qrels(DATA / name, split)
    rows = [i for i, q in enumerate(qids) if q in qrels]
    ids = [qids[i] for i in rows]
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return CalibrationData(ids, qv[rows], z["scores"], z["labels"], None, z["relevant"])
    data = CalibrationData.from_vectors(ids, qv[rows], dids, dv, qrels, k=K)
    np.savez(cache, scores=data.scores, labels=data.labels, relevant=data.relevant)
    return data


def latency(adapter: CosineAdapter, data: CalibrationData, n: int = 2000) -> float:
    """Mean seconds per single-query cutoff computation (features, MLP, inversion)."""
    w = data.window(adapter.config.window)
    n = min(n, len(data))
    for i in range(50):
        adapter.cutoffs(data.query_vectors[i : i + 1], w[i : i + 1])
    t0 = time.perf_counter()
    for i in range(n):
        adapter.cutoffs(data.query_vectors[i : i + 1], w[i : i + 1])
    return (time.perf_counter() - t0) / n


class CachedEncoder:
    """Looks texts up in the cached vectors (the same model's), so building a collection costs no encoding."""

    backend = "cached"
    tokenizer = None

    def __init__(self, texts, vectors, fingerprint, name="all-MiniLM-L6-v2"):
        self.table = {t: v for t, v in zip(texts, vectors, strict=True)}
        self.dim = vectors.shape[1]
        self.fingerprint = fingerprint
        self.name = name
        self.max_seq_length = 256

    def encode(self, texts, *, kind="document", batch_size=64):
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


def end_to_end_latency(adapter, dids, dtexts, dv, qv, fingerprint, n=300) -> dict:
    """Per-query latency of Collection.search_vectors on Qdrant Edge, with and without the adapter."""
    import tamis

    tmp = tempfile.mkdtemp(prefix="tamis-bench-")
    enc = CachedEncoder(dtexts, dv, fingerprint)
    with tamis.open_collection("bench", path=tmp, encoder=enc, create=True) as col:
        t0 = time.perf_counter()
        col.index([Document(i, t) for i, t in zip(dids, dtexts, strict=True)], batch_size=2048)
        index_s = time.perf_counter() - t0
        q = qv[:n]
        out = {"index_seconds": index_s}
        for label, cal in (("plain", None), ("adapter", adapter)):
            col.set_adapter(cal)
            for i in range(20):
                col.search_vectors(q[i : i + 1], 10)
            t0 = time.perf_counter()
            for i in range(n):
                col.search_vectors(q[i : i + 1], 10)
            out[label] = (time.perf_counter() - t0) / n
        out["added"] = out["adapter"] - out["plain"]
    return out


def wordnet(args) -> dict:
    name = "wordnet-reverse-dictionary"
    dids, dtexts, dv, qids, _, qv, fp, meta = encoded(name, args.encoder, args.tag)
    t0 = time.perf_counter()
    train = candidates(name, "train", qids, qv, dids, dv, args.tag)
    dev = candidates(name, "dev", qids, qv, dids, dv, args.tag)
    test = candidates(name, "test", qids, qv, dids, dv, args.tag)
    logger.info("candidates ready in %.1fs: train %d, dev %d, test %d", time.perf_counter() - t0, len(train), len(dev), len(test))
    baselines = fit_baselines(train, dev, target_recall=TARGET_RECALL)
    variants = {}
    adapters = {}
    for vname, cfg in VARIANTS.items():
        if args.quick and vname not in ("scores/linear", "embedding/linear"):
            continue
        t0 = time.perf_counter()
        ad = CosineAdapter.fit(train, fingerprint=fp, **cfg)
        secs = time.perf_counter() - t0
        ad.fit_threshold(dev, target_recall=TARGET_RECALL)
        dev_table, _ = evaluate_filtering(dev, adapter=ad, baselines=baselines, methods=("adapter",))
        test_table, _ = evaluate_filtering(test, adapter=ad, baselines=baselines, methods=("adapter",))
        variants[vname] = {"train_seconds": secs, "training": ad.extra["training"], "dev": dev_table["adapter"],
                           "test": test_table["adapter"]}
        adapters[vname] = ad
        logger.info("%s: dev PR-AUC %.4f, test %.4f, %.1fs", vname, dev_table["adapter"]["pr_auc"],
                    test_table["adapter"]["pr_auc"], secs)
    best = max(variants, key=lambda v: variants[v]["dev"]["pr_auc"])
    ad = adapters[best]
    table, curves = evaluate_filtering(test, adapter=ad, baselines=baselines)
    plot = plot_pr_curves(curves, OUT / f"filtering{args.suffix}-wordnet-test.png",
                          title=f"WordNet test, top-{K}, {Path(str(meta['model'])).name}, adapter {best}")
    # conformal threshold, for comparison
    conf = CosineAdapter.from_dict(ad.to_dict())
    conf_rep = conf.fit_threshold(dev, target_recall=TARGET_RECALL, method="conformal")
    conf_test, _ = evaluate_filtering(test, adapter=conf, baselines=baselines, methods=("adapter",))
    lat = {"cutoff_seconds": latency(ad, test)}
    if not args.no_e2e:
        lat["edge"] = end_to_end_latency(ad, dids, dtexts, dv, qv[[qids.index(q) for q in test.query_ids]], fp)
    return {
        "dataset": name, "model": meta["model"], "fingerprint": fp, "candidates": K, "target_recall": TARGET_RECALL, "encoder_backend": meta["backend"],
        "queries": {"train": len(train), "dev": len(dev), "test": len(test)},
        "candidate_recall_test": float(np.nansum(test.labels.sum(1)) / np.nansum(test.relevant)),
        "variants": variants, "selected": best, "test": table,
        "ratio_pr_auc": table["adapter"]["pr_auc"] / table["cosine"]["pr_auc"],
        "conformal": {"dev": conf_rep.to_dict(), "test": conf_test["adapter"]},
        "latency": lat, "plot": str(plot),
    }


def python_faq(args) -> dict:
    name = "python-faq"
    dids, _, dv, qids, _, qv, fp, meta = encoded(name, args.encoder, args.tag)
    data = candidates(name, "test", qids, qv, dids, dv, args.tag)
    folds = 5
    perm = np.random.default_rng(0).permutation(len(data))
    parts = np.array_split(perm, folds)
    out = {}
    for vname, cfg in VARIANTS.items():
        if args.quick and vname not in ("scores/linear", "embedding/linear"):
            continue
        probs = np.full(data.scores.shape, np.nan)
        base_scores = {m: np.full(data.scores.shape, np.nan) for m in ("cosine", "platt", "zscore")}
        secs = 0.0
        for f in range(folds):
            test_idx = np.sort(parts[f])
            train_idx = np.sort(np.concatenate([parts[j] for j in range(folds) if j != f]))
            tr, te = data.subset(train_idx), data.subset(test_idx)
            t0 = time.perf_counter()
            ad = CosineAdapter.fit(tr, fingerprint=fp, **cfg)
            secs += time.perf_counter() - t0
            probs[test_idx] = ad.predict(te)
            bl = fit_baselines(tr, tr, target_recall=TARGET_RECALL)

            for m in base_scores:
                base_scores[m][test_idx] = method_scores(m, te, bl)
        from tamis.evaluation import average_precision, precision_at_recall

        mask = data.mask
        y = (data.labels >= 0.5)[mask]
        row = {"adapter": {"pr_auc": average_precision(probs[mask], y), "p_at_r50": precision_at_recall(probs[mask], y, 0.5)},
               "train_seconds_per_fold": secs / folds}
        for m, s in base_scores.items():
            row[m] = {"pr_auc": average_precision(s[mask], y), "p_at_r50": precision_at_recall(s[mask], y, 0.5)}
        coverage = float(data.labels.sum() / np.nansum(data.relevant))
        for m in ("adapter", *base_scores):
            row[m]["pr_auc_judged"] = row[m]["pr_auc"] * coverage
        row["ratio_pr_auc"] = row["adapter"]["pr_auc"] / row["cosine"]["pr_auc"]
        out[vname] = row
        logger.info("python-faq %s: adapter %.4f vs cosine %.4f", vname, row["adapter"]["pr_auc"], row["cosine"]["pr_auc"])
    return {"dataset": name, "model": meta["model"], "queries": len(data), "folds": folds, "variants": out,
            "candidate_recall": float(np.nansum(data.labels.sum(1)) / np.nansum(data.relevant))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the scores/linear and embedding/linear variants")
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end Edge latency measurement")
    ap.add_argument("--only", choices=["wordnet", "python-faq"], default=None)
    ap.add_argument("--model", default=None,
                    help="encoder folder or name (default: the packaged all-MiniLM-L6-v2), e.g. a `tamis train` output")
    ap.add_argument("--tag", default="", help="names the caches and outputs of a --model run (default: folder name)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.encoder = None
    if args.model:
        args.tag = args.tag or Path(args.model).name
        args.encoder = load_encoder_fast(args.model)
    args.suffix = f"-{args.tag}" if args.tag else ""
    result = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": "python benchmarks/filtering.py " + " ".join(sys.argv[1:]),
              "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}"}
    if args.only in (None, "wordnet"):
        result["wordnet"] = wordnet(args)
    if args.only in (None, "python-faq"):
        result["python_faq"] = python_faq(args)
    OUT.mkdir(exist_ok=True)
    path = OUT / f"filtering{args.suffix}.json"
    path.write_text(json.dumps(result, indent=1, default=float))
    print(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
