"""Training and distillation benchmark (issue 4): base MiniLM vs contrastive, distill, augmented.

On ../shared/data/wordnet-reverse-dictionary (or --data): trains a cross-encoder teacher, then
three students from the packaged all-MiniLM-L6-v2, and reports nDCG@10 / recall@10 on the test
split (exact search) with the CPU wall time of every method (teacher included).

The budget is configurable so a reduced run fits a shared machine and the full-size run can be
done later:

    # reduced (what RESULTS.md reports for the 2-core shared machine)
    flock /tmp/tamis-bench.lock .venv/bin/python benchmarks/training.py \
        --train-queries 1500 --corpus-docs 10000 --minutes 8 --candidates 8

    # full size: every train query, the whole corpus, 30 minutes per method
    .venv/bin/python benchmarks/training.py --train-queries 0 --corpus-docs 0 --minutes 30

With ``--corpus-docs N`` both the mining corpus and the test search use the same seeded corpus
sample: every judged (train sample, dev, test) document plus random others up to N. Scores on a
sample are higher than on the full corpus; all methods are compared on the same sample, and the
base model is evaluated on it too.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
from pathlib import Path
from typing import get_args

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, dataset, machine, save_json  # noqa: E402

from tamis.training import Direction  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="BEIR folder (default: shared wordnet-reverse-dictionary)")
    ap.add_argument("--train-queries", type=int, default=1500, help="train queries sampled (0: all)")
    ap.add_argument("--corpus-docs", type=int, default=10_000, help="corpus sample for mining and test search (0: all)")
    ap.add_argument("--test-queries", type=int, default=0, help="test queries evaluated (0: all)")
    ap.add_argument("--minutes", type=float, default=8.0, help="training-loop cap per method, minutes")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5, help="students' peak learning rate")
    ap.add_argument("--candidates", type=int, default=8, help="distill: candidate list length")
    ap.add_argument("--teacher-negatives", type=int, default=3)
    ap.add_argument("--silver-per-query", type=int, default=3)
    ap.add_argument("--methods", default="contrastive,distill,augmented")
    ap.add_argument("--teacher-eval-queries", type=int, default=200,
                    help="test queries on which the teacher re-ranks the base model's top 20 (0: skip)")
    ap.add_argument("--teacher", default=None, help="use this teacher folder instead of training one")
    ap.add_argument("--workdir", default=str(OUT / "training"), help="models and caches go here")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--tag", default="", help="results go to benchmarks/out/training[-TAG].json")
    ap.add_argument("--teacher-minutes", type=float, default=None, help="teacher's training cap (default: --minutes)")
    ap.add_argument("--teacher-queries", type=int, default=0,
                    help="distill/augmented: seeded sample of train queries the teacher labels (0: all)")
    ap.add_argument("--random-batches", action="store_true",
                    help="plain random batches instead of length-grouped ones (the default)")
    ap.add_argument("--no-base", action="store_true", help="skip evaluating the base model (measured in another run)")
    ap.add_argument("--max-seq-length", type=int, default=None, help="students' and teacher's token limit")
    ap.add_argument("--teacher-base", default=None,
                    help="encoder the teacher starts from (default: the packaged MiniLM), e.g. a contrastive student")
    ap.add_argument("--teacher-lr", type=float, default=None, help="teacher's learning rate (default: max(--lr, 5e-5))")
    ap.add_argument("--infonce-weight", type=float, default=None, help="distill: weight of the InfoNCE term")
    ap.add_argument("--rerank-from", default=None,
                    help="teacher check: re-rank this bi-encoder's top 20 (default: base MiniLM), e.g. the contrastive student")
    ap.add_argument("--directions", default=",".join(get_args(Direction)),
                    help="contrastive loss directions, comma-separated (all four: GTE's improved contrastive loss)")
    args = ap.parse_args()

    from tamis.data import TrainingData, load_training_data
    from tamis.evaluation import evaluate_model
    from tamis.training import train_bi_encoder, train_reranker

    root = Path(args.data) if args.data else dataset("wordnet-reverse-dictionary")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    t_load = time.perf_counter()
    full = load_training_data(root, "train", max_queries=args.train_queries or None, seed=args.seed)
    dev = load_training_data(root, "dev", corpus=full.corpus, queries=full.queries)
    test = load_training_data(root, "test", corpus=full.corpus, queries=full.queries)
    corpus = full.corpus
    if args.corpus_docs and len(corpus) > args.corpus_docs:
        judged = {d for split in (full, dev, test) for docs in split.qrels.values() for d in docs}
        rest = sorted(set(corpus) - judged)
        random.Random(args.seed).shuffle(rest)
        keep = judged | set(rest[: max(0, args.corpus_docs - len(judged))])
        corpus = {d: t for d, t in corpus.items() if d in keep}
    train = TrainingData(root=root, split="train", corpus=corpus, queries=full.queries, qrels=full.qrels)
    test = TrainingData(root=root, split="test", corpus=corpus, queries=full.queries, qrels=test.qrels)
    print(f"data: {len(train.qrels):,} train queries, {len(corpus):,} documents, {len(test.qrels):,} test queries "
          f"(loaded in {time.perf_counter() - t_load:.0f}s)", flush=True)

    common = dict(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, max_minutes=args.minutes,
                  learning_rate=args.lr,
                  cache_dir=str(cache), dev_queries=200, dev_documents=2000, progress=False, device="cpu",
                  max_seq_length=args.max_seq_length, group_by_length=not args.random_batches)

    def test_metrics(model: object) -> dict[str, float]:
        return evaluate_model(model, test, max_queries=args.test_queries or None, seed=args.seed, device="cpu")

    rows: dict[str, dict] = {}
    if not args.no_base:
        t0 = time.perf_counter()
        rows["base (all-MiniLM-L6-v2)"] = {"test": test_metrics(None), "train_seconds": 0.0,
                                           "eval_seconds": time.perf_counter() - t0}
        print("base", rows["base (all-MiniLM-L6-v2)"], flush=True)

    methods = [m for m in args.methods.split(",") if m]
    needs_teacher = bool({"distill", "augmented"} & set(methods)) or args.teacher_eval_queries > 0
    teacher_dir = Path(args.teacher) if args.teacher else work / (f"teacher-{args.tag}" if args.tag else "teacher")
    if not needs_teacher:
        pass
    elif args.teacher:
        rows["teacher (cross-encoder)"] = {"train_seconds": 0.0, "reused": str(teacher_dir)}
    else:
        if teacher_dir.exists():
            shutil.rmtree(teacher_dir)
        t0 = time.perf_counter()
        tres = train_reranker(train, teacher_dir, num_negatives=args.teacher_negatives, mining_depth=30,
                              base=args.teacher_base,
                              **{**common, "learning_rate": args.teacher_lr or max(args.lr, 5e-5),
                                 "max_minutes": args.teacher_minutes or args.minutes})
        rows["teacher (cross-encoder)"] = {"train_seconds": time.perf_counter() - t0, "steps": tres.steps,
                                           "examples": tres.examples}
    if needs_teacher and args.teacher_eval_queries:
        rows["teacher (cross-encoder)"]["rerank_top20"] = teacher_rerank(
            teacher_dir, test, args.teacher_eval_queries, args.seed, cache, args.rerank_from
        )
    if needs_teacher:
        print("teacher", rows["teacher (cross-encoder)"], flush=True)

    for method in methods:
        out = work / (f"{method}-{args.tag}" if args.tag else method)
        if out.exists():
            shutil.rmtree(out)
        extra: dict = {}
        if method == "contrastive":
            extra = dict(num_negatives=1, skip_top=0)
        elif method == "distill":
            extra = dict(teacher=str(teacher_dir), candidates=args.candidates, mining_depth=max(30, args.candidates))
            if args.infonce_weight is not None:
                extra["infonce_weight"] = args.infonce_weight
        else:
            extra = dict(teacher=str(teacher_dir), silver_per_query=args.silver_per_query)
        extra["directions"] = tuple(args.directions.split(","))
        data = train
        if method != "contrastive" and args.teacher_queries and len(train.qrels) > args.teacher_queries:
            keep = sorted(train.qrels)
            random.Random(args.seed).shuffle(keep)
            data = TrainingData(root=root, split="train", corpus=corpus, queries=full.queries,
                                qrels={q: train.qrels[q] for q in sorted(keep[: args.teacher_queries])})
        t0 = time.perf_counter()
        res = train_bi_encoder(data, out, method=method, **extra, **common)
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        metrics = test_metrics(str(out))
        rows[method] = {"test": metrics, "train_seconds": train_s, "train_queries": len(data.qrels), "eval_seconds": time.perf_counter() - t1,
                        "steps": res.steps, "examples": res.examples, "dev_before": res.dev_before,
                        "dev_after": res.dev_after, "teacher_pairs": res.teacher_pairs_computed + res.teacher_pairs_reused}
        print(method, rows[method], flush=True)

    report = {
        "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(sys.argv), "args": vars(args),
        "data": {"root": str(root), "train_queries": len(train.qrels), "corpus_docs": len(corpus),
                 "test_queries": args.test_queries or len(test.qrels)},
        "rows": rows,
    }
    path = save_json(f"training{'-' + args.tag if args.tag else ''}.json", report)
    print(f"\nwritten {path}\n")
    print("| model | nDCG@10 | recall@10 | train wall time |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        m = r.get("test")
        cells = ("", "") if m is None else (f"{m['nDCG@10']:.3f}", f"{m['Recall@10']:.3f}")
        print(f"| {name} | {cells[0]} | {cells[1]} | {r['train_seconds'] / 60:.1f} min |")


def teacher_rerank(teacher_dir: Path, test: object, n: int, seed: int, cache: Path,
                   first_stage: str | None = None) -> dict[str, float]:
    """Teacher quality: nDCG@10 etc. of a bi-encoder's top 20 (``first_stage``; default base MiniLM) before
    and after the teacher re-ranks them (on a seeded sample of ``n`` test queries; a judged document outside
    the top 20 stays missed)."""
    from tamis.encoders import BiEncoder
    from tamis.evaluation import exact_search, ir_metrics
    from tamis.training import TeacherScorer

    qrels = dict(sorted(test.qrels.items()))  # type: ignore[attr-defined]
    ids = sorted(qrels)
    random.Random(seed).shuffle(ids)
    qrels = {q: qrels[q] for q in ids[:n]}
    queries = {q: test.queries[q] for q in qrels}  # type: ignore[attr-defined]
    run = exact_search(BiEncoder(first_stage, device="cpu").model, test.corpus, queries, k=20)  # type: ignore[attr-defined]
    scorer = TeacherScorer(teacher_dir, cache_dir=cache, device="cpu")
    pairs = [(q, d) for q, docs in run.items() for d in docs]
    logits = scorer.logits([(queries[q], test.corpus[d]) for q, d in pairs])  # type: ignore[attr-defined]
    rerun: dict[str, dict[str, float]] = {}
    for (q, d), s in zip(pairs, logits, strict=True):
        rerun.setdefault(q, {})[d] = float(s)
    before, after = ir_metrics(run, qrels), ir_metrics(rerun, qrels)
    return {"queries": len(qrels), "first_stage": first_stage or "all-MiniLM-L6-v2", "base_ndcg@10": before["nDCG@10"], "teacher_ndcg@10": after["nDCG@10"],
            "base_mrr@10": before["MRR@10"], "teacher_mrr@10": after["MRR@10"]}


if __name__ == "__main__":
    main()
