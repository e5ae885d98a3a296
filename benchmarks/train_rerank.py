"""Train the cross-encoder of the hybrid benchmark's "+ rerank" column (`tamis.training.train_reranker`).

sentence-transformers' ``CrossEncoderTrainer`` with BCE over mined hard and random negatives, from the
packaged all-MiniLM-L6-v2 with a fresh one-output head, on the TRAIN queries only: the man pages'
train split and a sample of WordNet's train split (its corpus cut to the judged documents plus a
random sample, so that mining stays a few minutes of CPU). python-faq has test judgements only: it
gets no training data (its "+ rerank" column is zero-shot).

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python benchmarks/train_rerank.py   # -> benchmarks/out/rerank-minilm
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DATA, OUT  # noqa: E402

from tamis.data import TrainingData, load_training_data  # noqa: E402
from tamis.training import train_reranker  # noqa: E402

MODEL = OUT / "rerank-minilm"


def combined(n_man: int, n_wn: int, wn_extra_docs: int, seed: int = 0) -> TrainingData:
    """Man pages' and WordNet's train splits in one `TrainingData` (ids prefixed per dataset)."""
    corpus: dict[str, str] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for tag, folder, n in (("man", OUT / "manpages", n_man), ("wn", DATA / "wordnet-reverse-dictionary", n_wn)):
        td = load_training_data(folder, "train", max_queries=n, seed=seed)
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
    return TrainingData(root=OUT, split="train", corpus=corpus, queries=queries, qrels=qrels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--man-queries", type=int, default=800)
    ap.add_argument("--wordnet-queries", type=int, default=800)
    ap.add_argument("--wordnet-docs", type=int, default=1500, help="random WordNet documents besides the judged ones")
    ap.add_argument("--max-minutes", type=float, default=12.0)
    ap.add_argument("--out", type=Path, default=MODEL)
    args = ap.parse_args()
    td = combined(args.man_queries, args.wordnet_queries, args.wordnet_docs)
    print(f"{len(td.qrels)} train queries, {len(td.corpus)} documents", flush=True)
    t = time.perf_counter()
    res = train_reranker(
        td, args.out, epochs=1, num_negatives=3, random_negatives=1, mining_depth=20, max_seq_length=128,
        batch_size=32, max_minutes=args.max_minutes, device="cpu",
    )
    print(f"trained in {time.perf_counter() - t:.0f} s: {res}", flush=True)


if __name__ == "__main__":
    main()
