"""Distillation from a stronger teacher (issue 16): all-mpnet-base-v2 teaching all-MiniLM-L6-v2.

Label-free (no qrels used for training): base MiniLM vs MiniLM distilled from mpnet on pseudo-queries
vs mpnet itself, test nDCG@10 and query encoding speed. With labels (WordNet; python-faq has only a
test split): contrastive alone vs contrastive + distillation from mpnet, same data and list sizes.

Sized for a shared 2-core CPU (mpnet encodes ~5-10x slower than MiniLM there):

* WordNet: a fixed subset folder (benchmarks/out/data/wordnet-3k): the documents of 300 test,
  100 dev and 1,200 train queries plus a seeded sample up to 3,000 documents; searched exhaustively.
* python-faq: all 172 documents and queries; every model truncates at 128 tokens.

mpnet's test metrics are computed from the embeddings the teacher keeps in memory (the same
model, the same texts: `BiEncoderTeacher` shares them across the runs of one process), so each
text goes through mpnet once.

Each run's result is kept in benchmarks/out/distill/<run>.json and skipped on a rerun (``--fresh``
redoes them). The speed rounds hold /work/bench.lock (or $TAMIS_BENCH_LOCK).

    TAMIS_SHARED=/work/shared .venv/bin/python benchmarks/distill.py
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, Timer, dataset, machine, save_json  # noqa: E402
from get_mpnet import assemble  # noqa: E402

RUNS = OUT / "distill"
CACHE = OUT / "distill-cache"
#: run names this process may compute (None: all); the others come from RUNS or are skipped
ONLY_RUNS: set[str] | None = None


def wordnet_subset(n_docs: int = 3000, test: int = 300, dev: int = 100, train: int = 1200, seed: int = 16) -> Path:
    """A BEIR folder with a seeded part of WordNet (written once)."""
    src, dst = dataset("wordnet-reverse-dictionary"), OUT / "data" / f"wordnet-{n_docs // 1000}k"
    if (dst / "qrels" / "train.tsv").is_file():
        return dst
    rng = random.Random(seed)
    qrels: dict[str, list[tuple[str, str]]] = {}
    for split, n in (("test", test), ("dev", dev), ("train", train)):
        rows = [line.rstrip("\n").split("\t") for line in open(src / "qrels" / f"{split}.tsv", encoding="utf-8")][1:]
        qrels[split] = rng.sample([(r[0], r[1]) for r in rows], n)
    keep = {d for rows in qrels.values() for _, d in rows}
    docs = [json.loads(line) for line in open(src / "corpus.jsonl", encoding="utf-8")]
    rest = [d["_id"] for d in docs if d["_id"] not in keep]
    keep |= set(rng.sample(rest, n_docs - len(keep)))
    qids = {q for rows in qrels.values() for q, _ in rows}
    tmp = dst.with_name(dst.name + ".tmp")
    (tmp / "qrels").mkdir(parents=True, exist_ok=True)
    with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in docs if d["_id"] in keep)
    with open(tmp / "queries.jsonl", "w", encoding="utf-8") as fh:
        for line in open(src / "queries.jsonl", encoding="utf-8"):
            if json.loads(line)["_id"] in qids:
                fh.write(line)
    for split, rows in qrels.items():
        with open(tmp / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            fh.writelines(f"{q}\t{d}\t1\n" for q, d in sorted(rows))
    tmp.rename(dst)
    return dst


def faq_split(test: int = 86, dev: int = 26, seed: int = 16) -> Path:
    """python-faq with its 172 questions split three ways (written once): ``test`` held out for the
    test metrics, ``dev`` judged for the teacher check and the dev metrics only, the rest left in
    queries.jsonl without judgements (the query log of a label-free run)."""
    src, dst = dataset("python-faq"), OUT / "data" / "python-faq-split"
    if (dst / "qrels" / "test.tsv").is_file():
        return dst
    rows = [line.rstrip("\n").split("\t") for line in open(src / "qrels" / "test.tsv", encoding="utf-8")][1:]
    rows = sorted((r[0], r[1]) for r in rows)
    random.Random(seed).shuffle(rows)
    tmp = dst.with_name(dst.name + ".tmp")
    (tmp / "qrels").mkdir(parents=True, exist_ok=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (tmp / name).write_bytes((src / name).read_bytes())
    for split, part in (("test", rows[:test]), ("dev", rows[test : test + dev])):
        with open(tmp / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            fh.writelines(f"{q}\t{d}\t1\n" for q, d in sorted(part))
    tmp.rename(dst)
    return dst


def st_model(path: str, max_len: int | None) -> Any:
    from sentence_transformers import SentenceTransformer

    m = SentenceTransformer(path, device="cpu")
    if max_len:
        m.max_seq_length = max_len
    return m.eval()


def test_metrics(path: str, data: Path, max_len: int | None) -> dict[str, float]:
    from tamis.evaluation import evaluate_model

    return evaluate_model(st_model(path, max_len), data, split="test", batch_size=64)


def teacher_test_metrics(teacher: Any, data: Path) -> dict[str, float]:
    """Test metrics of a bi-encoder teacher by exact search, from the teacher's own embeddings."""
    import numpy as np

    from tamis._math import exact_top_k
    from tamis.data import load_training_data
    from tamis.evaluation import ir_metrics

    td = load_training_data(data, "test")
    qrels = {q: docs for q, docs in td.qrels.items() if any(g > 0 for g in docs.values())}
    doc_ids, q_ids = list(td.corpus), list(qrels)
    d = np.stack(teacher.embed([td.corpus[i] for i in doc_ids], "document"))
    q = np.stack(teacher.embed([td.queries[i] for i in q_ids], "query"))
    run = {q_ids[r]: {doc_ids[j]: float(s) for j, s in zip(o.tolist(), sc.tolist(), strict=True)}
           for r, o, sc in exact_top_k(q, d, 100)}
    return ir_metrics(run, qrels)


def run_once(name: str, fresh: bool, fn: Any) -> dict[str, Any]:
    """``fn()``'s result, cached as RUNS/<name>.json (with its wall time)."""
    f = RUNS / f"{name}.json"
    if f.is_file() and not fresh:
        return json.loads(f.read_text())
    if ONLY_RUNS is not None and name not in ONLY_RUNS:
        return {"skipped": True}
    print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
    with Timer() as t:
        res = fn()
    res["seconds"] = round(t.seconds, 1)
    RUNS.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps(res, indent=2, default=str))
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {json.dumps(res, default=str)[:400]}", flush=True)
    return res


def train_and_test(name: str, data: Path, max_len: int | None, fresh: bool, **settings: Any) -> dict[str, Any]:
    from tamis.training import train_bi_encoder

    def go() -> dict[str, Any]:
        out = OUT / "models" / f"distill-{name}"
        r = train_bi_encoder(data, out, device="cpu", progress=False, cache_dir=str(CACHE), max_seq_length=max_len,
                             **settings)
        return {"settings": settings, "train": r.to_dict(), "test": test_metrics(str(out), data, max_len),
                "model": str(out)}

    return run_once(name, fresh, go)


@contextlib.contextmanager
def bench_lock() -> Any:
    path = os.environ.get("TAMIS_BENCH_LOCK", "/work/bench.lock")
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def query_speed(models: dict[str, str], queries: list[str], rounds: int, max_len: int | None) -> dict[str, Any]:
    """Queries per second of each model (one query per call, as a search does), interleaved rounds."""
    loaded = {k: st_model(p, max_len) for k, p in models.items()}
    for m in loaded.values():
        m.encode(queries[:8])
    per: dict[str, list[float]] = {k: [] for k in loaded}
    with bench_lock():
        for _ in range(rounds):
            for k, m in loaded.items():
                t0 = time.perf_counter()
                for q in queries:
                    m.encode_query([q], batch_size=1)
                per[k].append(len(queries) / (time.perf_counter() - t0))
    return {k: {"median_qps": statistics.median(v), "rounds": v} for k, v in per.items()}


def main() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-queries", type=int, default=500, help="(pseudo-)queries per training run")
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--speed-queries", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dev-queries", type=int, default=100, help="dev queries of each run's card (and its teacher check)")
    ap.add_argument("--dev-documents", type=int, default=3000)
    ap.add_argument("--only", choices=["all", "wordnet", "faq"], default="all")
    ap.add_argument("--faq-epochs", type=float, default=3.0)
    ap.add_argument("--lf-queries", type=int, default=1200, help="unjudged queries of the label-free 'queries' runs")
    ap.add_argument("--lf-epochs", type=float, default=3.0)
    ap.add_argument("--faq-log-epochs", type=float, default=10.0, help="epochs over python-faq's 60 log queries")
    ap.add_argument("--lab-queries", type=int, default=480, help="gold train queries of the second with-labels pair")
    ap.add_argument("--lf-minutes", type=float, default=12.0, help="training time cap of the label-free query-log runs")
    ap.add_argument("--lr", type=float, default=4e-5, help="learning rate of the label-free and with-labels runs")
    ap.add_argument("--margin", type=float, default=0.01,
                    help="false-negative guard margin (a bi-encoder teacher's cosines are close together)")
    ap.add_argument("--teacher-mining", action="store_true",
                    help="label-free query-log runs: also mine candidates with mpnet (run names get '-tm')")
    ap.add_argument("--teacher-scores", choices=["minmax", "raw"], default="minmax",
                    help="listwise target: minmax (CADET) or raw (the teacher's cosines); raw runs are named '-raw'")
    ap.add_argument("--teacher-temperature", type=float, default=None, help="listwise teacher softmax (default 0.3, raw 0.05)")
    ap.add_argument("--infonce-weight", type=float, default=None, help="label-free InfoNCE weight (default 0.1, raw 0)")
    ap.add_argument("--fresh", action="store_true", help="redo runs already recorded")
    ap.add_argument("--runs", help="comma-separated run names to compute here (e.g. wn-contrastive), the rest "
                    "read from benchmarks/out/distill/ or skipped: to spread the runs over processes")
    args = ap.parse_args()
    global ONLY_RUNS
    ONLY_RUNS = set(args.runs.split(",")) if args.runs else None
    from tamis import default_model_path
    from tamis.training import BiEncoderTeacher

    base, mpnet = str(default_model_path()), str(assemble())
    teacher = f"bi-encoder:{mpnet}"

    def mpnet_test(data: Path, max_len: int | None) -> dict[str, Any]:
        t = BiEncoderTeacher(mpnet, cache_dir=CACHE, device="cpu", batch_size=64, max_seq_length=max_len)
        return {"test": teacher_test_metrics(t, data)}

    common = dict(teacher=teacher, candidates=args.candidates, mining_depth=30, teacher_check_queries=args.dev_queries,
                  dev_queries=args.dev_queries, dev_documents=args.dev_documents, seed=12, encode_batch_size=64)
    # mining with the teacher too (a bi-encoder teacher can search): the positives mpnet finds beyond MiniLM's top 30
    tm, tm_settings = ("-tm", {"teacher_mining": True}) if args.teacher_mining else ("", {})
    if args.teacher_scores == "raw":  # the teacher's cosines at the student's temperature, no InfoNCE on its top-1
        tm += "-raw"
        tm_settings.update(teacher_scores="raw", teacher_temperature=args.teacher_temperature or 0.05,
                           infonce_weight=0.0 if args.infonce_weight is None else args.infonce_weight)
    elif args.teacher_temperature or args.infonce_weight is not None:
        tm += "-t"
        tm_settings.update({k: v for k, v in (("teacher_temperature", args.teacher_temperature),
                                              ("infonce_weight", args.infonce_weight)) if v is not None})
    t0 = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "load_at_start": os.getloadavg(), "args": vars(args)}
    if args.only in ("all", "wordnet"):
        wn = wordnet_subset()
        r: dict[str, Any] = {"data": str(wn)}
        r["base"] = run_once("wn-base", args.fresh, lambda: {"test": test_metrics(base, wn, None)})
        r["mpnet"] = run_once("wn-mpnet", args.fresh, lambda: mpnet_test(wn, None))
        lf = dict(common, method="distill", labels=False, max_train_queries=args.train_queries, epochs=1, batch_size=32)
        r["free-body"] = train_and_test("wn-free-body", wn, None, args.fresh, pseudo_queries="body", **lf)
        # the train queries without their qrels (a query log): the teacher's best candidate is the positive
        lq = dict(lf, max_train_queries=args.lf_queries, epochs=args.lf_epochs, candidates=args.candidates,
                  batch_size=16, false_negative_margin=args.margin, learning_rate=args.lr, max_minutes=args.lf_minutes, **tm_settings)
        r["free-queries"] = train_and_test("wn-free-queries" + tm, wn, None, args.fresh, pseudo_queries="queries", **lq)
        lab = dict(max_train_queries=args.train_queries, epochs=1, batch_size=32, dev_queries=args.dev_queries,
                   dev_documents=args.dev_documents, seed=12, mining_depth=30, encode_batch_size=64)
        r["contrastive"] = train_and_test("wn-contrastive", wn, None, args.fresh, method="contrastive",
                                          num_negatives=args.candidates - 1, **lab)
        r["contrastive+distill"] = train_and_test("wn-contrastive-distill", wn, None, args.fresh,
                                                  method="contrastive+distill", teacher=teacher,
                                                  candidates=args.candidates, teacher_check_queries=args.dev_queries,
                                                  **lab)
        # the same pair, more steps: lab_queries gold train queries, 1 epoch of batches of 16
        lab2 = dict(lab, max_train_queries=args.lab_queries, epochs=1, batch_size=16, learning_rate=args.lr)
        r["contrastive-more"] = train_and_test("wn-contrastive-more", wn, None, args.fresh, method="contrastive",
                                               num_negatives=args.candidates - 1, **lab2)
        r["contrastive+distill-more"] = train_and_test(
            "wn-contrastive-distill-more", wn, None, args.fresh, method="contrastive+distill", teacher=teacher,
            candidates=args.candidates, teacher_check_queries=args.dev_queries, false_negative_margin=args.margin,
            **lab2)
        qs = [json.loads(line)["text"] for line in open(wn / "queries.jsonl", encoding="utf-8")]
        qs = random.Random(0).sample(qs, args.speed_queries)
        student = r["free-queries"].get("model") or r["free-body"].get("model")
        r["speed"] = run_once("wn-speed" + tm, args.fresh, lambda: query_speed(
            {"base": base, "student": student, "mpnet": mpnet}, qs, args.rounds, None))
        results["wordnet"] = r
    if args.only in ("all", "faq"):
        faq = dataset("python-faq")
        r = {"data": str(faq), "max_seq_length": 128}
        r["base"] = run_once("faq-base", args.fresh, lambda: {"test": test_metrics(base, faq, 128)})
        r["mpnet"] = run_once("faq-mpnet", args.fresh, lambda: mpnet_test(faq, 128))
        lf = dict(common, method="distill", labels=False, max_train_queries=args.train_queries, epochs=args.faq_epochs, batch_size=16,
                  pseudo_dev_queries=30)
        r["free-first-sentence"] = train_and_test("faq-free-first-sentence", faq, 128, args.fresh,
                                                  pseudo_queries="first-sentence", **lf)
        # the split: 86 test questions held out, 26 judged for the check only, 60 as an unjudged query log
        fs = faq_split()
        r["split"] = {"data": str(fs), "test_queries": 86, "dev_queries": 26, "log_queries": 60}
        r["split-base"] = run_once("faq-split-base", args.fresh, lambda: {"test": test_metrics(base, fs, 128)})
        r["split-mpnet"] = run_once("faq-split-mpnet", args.fresh, lambda: mpnet_test(fs, 128))
        lq = dict(common, method="distill", labels=False, pseudo_queries="queries", epochs=args.faq_log_epochs,
                  batch_size=16, candidates=args.candidates, false_negative_margin=args.margin, learning_rate=args.lr,
                  max_minutes=args.lf_minutes * 2 / 3, **tm_settings)
        r["split-free-queries"] = train_and_test("faq-split-free-queries" + tm, fs, 128, args.fresh, **lq)
        if "model" in r["split-free-queries"]:
            qs = [json.loads(line)["text"] for line in open(faq / "queries.jsonl", encoding="utf-8")]
            qs = random.Random(0).sample(qs, min(args.speed_queries, len(qs)))
            r["split-speed"] = run_once("faq-split-speed" + tm, args.fresh, lambda: query_speed(
                {"base": base, "student": r["split-free-queries"]["model"], "mpnet": mpnet}, qs, args.rounds, 128))
        if "model" in r["free-first-sentence"]:
            qs = [json.loads(line)["text"] for line in open(faq / "queries.jsonl", encoding="utf-8")]
            qs = random.Random(0).sample(qs, min(args.speed_queries, len(qs)))
            r["speed"] = run_once("faq-speed", args.fresh, lambda: query_speed(
                {"base": base, "student": r["free-first-sentence"]["model"], "mpnet": mpnet}, qs, args.rounds, 128))
        results["faq"] = r
    results["seconds"] = time.perf_counter() - t0
    results["load_at_end"] = os.getloadavg()
    print(save_json("distill.json", results))
    for ds, r in ((k, v) for k, v in results.items() if k in ("wordnet", "faq")):
        print(f"\n{ds}")
        for k, v in r.items():
            if isinstance(v, dict) and "test" in v:
                print(f"  {k:22s} nDCG@10 {v['test']['nDCG@10']:.4f}  R@100 {v['test'].get('Recall@100', 0):.4f}"
                      f"  ({v.get('seconds', 0):.0f} s)")


if __name__ == "__main__":
    main()
