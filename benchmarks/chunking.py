"""Chunking one very long document: time and peak memory of `Chunker.split` (issue 11).

Usage: ``python benchmarks/chunking.py [MB]`` (default 20): a text of that many MB of random words,
split with the packaged MiniLM tokenizer into windows of 254 tokens overlapping by 32. Prints the
time, the peak RSS before and after, and a SHA-256 of the chunks (to compare two versions' output).
"""

from __future__ import annotations

import hashlib
import random
import resource
import sys
import time


def main() -> None:
    from transformers import AutoTokenizer

    from tamis import default_model_path
    from tamis.data import Chunker

    mb = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    tok = AutoTokenizer.from_pretrained(str(default_model_path()))
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
    parts, size = [], 0
    while size < mb * 1e6:
        w = rng.choice(words)
        parts.append(w)
        size += len(w) + 1
    text = " ".join(parts)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    chunks = Chunker(tok, max_tokens=254, overlap=32).split(text)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    digest = hashlib.sha256("\x1f".join(chunks).encode()).hexdigest()[:16]
    print(f"{mb:g} MB: {len(chunks):,} chunks in {seconds:.1f} s; peak RSS {peak:,.0f} MB (before splitting "
          f"{base:,.0f} MB); chunks sha256 {digest}")


if __name__ == "__main__":
    main()
