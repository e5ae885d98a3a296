"""Train the cross-encoder of the hybrid benchmark's "+ rerank" column (`tamis.training.train_reranker`).

sentence-transformers' ``CrossEncoderTrainer`` with BCE over mined hard and random negatives, from the
packaged all-MiniLM-L6-v2 with a fresh one-output head, on the TRAIN queries only: the man pages'
train split and a sample of WordNet's train split (its corpus cut to the judged documents plus a
random sample, so that mining stays a few minutes of CPU). python-faq has test judgements only: it
gets no training data (its "+ rerank" column is zero-shot).

``--max-steps`` sets the learning-rate schedule's length (linear warm-up, linear decay to 0 at that
step), so pick it from a measured step time and keep ``--max-minutes`` as the safety cap. ``--dev N``
then checks the training signal on N DEV queries per dataset (never test): each query's positive
among its ``--dev-negatives`` nearest non-positive documents (the miner's), MRR@10 / nDCG@10 of the
cross-encoder's order against the miner's (cosine) order of the same list.

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python benchmarks/train_rerank.py   # -> benchmarks/out/rerank-minilm
    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python benchmarks/train_rerank.py --dev-only benchmarks/out/rerank-minilm
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DATA, OUT  # noqa: E402

from tamis.data import TrainingData, load_training_data  # noqa: E402
from tamis.training import train_reranker  # noqa: E402

MODEL = OUT / "rerank-minilm"


def combined(n_man: int, n_wn: int, wn_extra_docs: int, seed: int = 0, split: str = "train") -> TrainingData:
    """Man pages' and WordNet's ``split`` in one `TrainingData` (ids prefixed per dataset)."""
    corpus: dict[str, str] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for tag, folder, n in (("man", OUT / "manpages", n_man), ("wn", DATA / "wordnet-reverse-dictionary", n_wn)):
        td = load_training_data(folder, split, max_queries=n, seed=seed)
        docs = set(td.corpus) if tag == "man" else set()
        for ds in td.qrels.values():
            docs.update(ds)
        if tag == "wn":
            rest = sorted(set(td.corpus) - docs)
            docs.update(random.Random(seed).sample(rest, min(wn_extra_docs, len(rest))))
        corpus.update({f"{tag}:{d}": td.corpus[d] for d in sorted(docs)})
        for q, ds in td.qrels.items():
            queries[f"{tag}:{q}"] = td.queries[q]
            qrels[f"{tag}:{q}"] = {f"{tag}:{d}": g for d, g in ds.items()}
    return TrainingData(root=OUT, split=split, corpus=corpus, queries=queries, qrels=qrels)


def _mrr_ndcg(order_labels: list[list[int]]) -> tuple[float, float]:
    mrr, ndcg = [], []
    for labels in order_labels:
        top = labels[:10]
        mrr.append(next((1.0 / (i + 1) for i, y in enumerate(top) if y), 0.0))
        dcg = sum(y / np.log2(i + 2) for i, y in enumerate(top))
        ideal = sum(1 / np.log2(i + 2) for i in range(min(10, sum(labels))))
        ndcg.append(dcg / ideal if ideal else 0.0)
    return float(np.mean(mrr)), float(np.mean(ndcg))


def dev_check(model: Path, n: int, negatives: int, wn_extra_docs: int, max_len: int) -> dict:
    """MRR@10 / nDCG@10 on DEV lists (positives + the miner's nearest non-positives): the cross-encoder
    against the miner (the packaged MiniLM's cosine), per dataset."""
    from tamis.calibration import CrossEncoderScorer
    from tamis.training._data import mine_candidates
    from tamis.training._trainer import load_bi_encoder

    dev = combined(n, n, wn_extra_docs, seed=1, split="dev")
    miner = load_bi_encoder(None, "cpu", max_len).model
    mined = mine_candidates(miner, dev, depth=negatives)
    ce = CrossEncoderScorer(str(model), device="cpu", batch_size=64)
    out: dict = {}
    for tag in ("man", "wn"):
        ce_lists, bi_lists = [], []
        for q, ds in dev.qrels.items():
            if not q.startswith(tag + ":") or q not in mined:
                continue
            pos = [d for d, g in ds.items() if g > 0]
            cand = pos + [d for d, _ in mined[q]]
            labels = [1] * len(pos) + [0] * (len(cand) - len(pos))
            texts = [dev.corpus[d] for d in cand]
            cos = miner.encode([dev.queries[q]] + texts, normalize_embeddings=True, show_progress_bar=False).astype(np.float64)
            cos = cos[1:] @ cos[0]
            s = ce.scores(dev.queries[q], texts)
            ce_lists.append([labels[j] for j in np.argsort(-s, kind="stable")])
            bi_lists.append([labels[j] for j in np.argsort(-cos, kind="stable")])
        out[tag] = {"queries": len(ce_lists), "list": 1 + negatives,
                    "cross-encoder": dict(zip(("mrr@10", "ndcg@10"), _mrr_ndcg(ce_lists), strict=True)),
                    "miner (cosine)": dict(zip(("mrr@10", "ndcg@10"), _mrr_ndcg(bi_lists), strict=True))}
    print("dev check:", json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--man-queries", type=int, default=800)
    ap.add_argument("--wordnet-queries", type=int, default=800)
    ap.add_argument("--wordnet-docs", type=int, default=1500, help="random WordNet documents besides the judged ones")
    ap.add_argument("--num-negatives", type=int, default=3)
    ap.add_argument("--random-negatives", type=int, default=1)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--learning-rate", type=float, default=5e-5)
    ap.add_argument("--max-steps", type=int, default=None, help="the schedule's length (None: one epoch)")
    ap.add_argument("--max-minutes", type=float, default=12.0)
    ap.add_argument("--dev", type=int, default=0, help="after training, the dev check on this many queries per dataset")
    ap.add_argument("--dev-negatives", type=int, default=19)
    ap.add_argument("--dev-only", type=Path, default=None, help="only the dev check of this cross-encoder folder")
    ap.add_argument("--out", type=Path, default=MODEL)
    args = ap.parse_args()
    if args.dev_only is not None:
        dev_check(args.dev_only, args.dev or 150, args.dev_negatives, args.wordnet_docs, args.max_seq_length)
        return
    td = combined(args.man_queries, args.wordnet_queries, args.wordnet_docs)
    print(f"{len(td.qrels)} train queries, {len(td.corpus)} documents", flush=True)
    t = time.perf_counter()
    res = train_reranker(
        td, args.out, epochs=1, num_negatives=args.num_negatives, random_negatives=args.random_negatives,
        mining_depth=20, max_seq_length=args.max_seq_length, batch_size=args.batch_size,
        learning_rate=args.learning_rate, max_steps=args.max_steps, max_minutes=args.max_minutes, device="cpu",
        warmup_ratio=0.05,
    )
    print(f"trained in {time.perf_counter() - t:.0f} s: {res}", flush=True)
    if args.dev:
        dev_check(args.out, args.dev, args.dev_negatives, args.wordnet_docs, args.max_seq_length)


if __name__ == "__main__":
    main()
