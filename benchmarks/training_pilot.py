"""Short recipe pilots for issue 4: train a contrastive student for a fixed number of steps, score it on dev.

Each pilot fine-tunes the packaged all-MiniLM-L6-v2 on the WordNet train split with the benchmark's
settings (batch 64, 1 mined hard negative, max 64 tokens, CPU) plus the overrides given as JSON, then
evaluates on **all 1,000 dev queries against the whole 40k corpus** (exact search) — so recipe choices are
made on dev, never on test. A fixed step count (not a time cap) makes pilots comparable even when two run
side by side, one thread each:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/training_pilot.py A '{"max_steps": 100}' --threads 1 &
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/training_pilot.py C '{"max_steps": 100, "learning_rate": 2e-4,
        "directions": ["query_to_doc", "doc_to_query", "query_to_query", "doc_to_doc"]}' --threads 1 &
    .venv/bin/python benchmarks/training_pilot.py base '{}'      # the base model alone (no training)

Results are appended to ``benchmarks/out/training-pilots.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import OUT, dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="the pilot's name; 'base' evaluates the untrained model")
    ap.add_argument("settings", help="TrainConfig overrides as JSON, e.g. '{\"max_steps\": 100}'")
    ap.add_argument("--data", default=None, help="BEIR folder (default: shared wordnet-reverse-dictionary)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--cache", default=str(OUT / "training-full" / "cache"), help="mining embeddings cache")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from tamis.data import load_training_data
    from tamis.evaluation import evaluate_model
    from tamis.training import train_bi_encoder

    root = Path(args.data) if args.data else dataset("wordnet-reverse-dictionary")
    dev = load_training_data(root, "dev")
    overrides = json.loads(args.settings)
    row: dict = {"name": args.name, "settings": overrides, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    model: str | None = None
    if args.name != "base":
        out = OUT / "pilots" / args.name
        shutil.rmtree(out, ignore_errors=True)
        settings = dict(method="contrastive", batch_size=64, learning_rate=5e-5, seed=12, num_negatives=1,
                        cache_dir=args.cache, dev_queries=0, progress=False, device="cpu", max_seq_length=64,
                        directions=("query_to_doc",))
        settings.update(overrides)
        t0 = time.perf_counter()
        res = train_bi_encoder(load_training_data(root, "train"), out, **settings)
        row |= {"steps": res.steps, "train_seconds": round(time.perf_counter() - t0)}
        model = str(out)
    row["dev"] = evaluate_model(model, dev, device="cpu")
    print(json.dumps(row), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "training-pilots.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
