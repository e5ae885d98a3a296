"""Encoding throughput on CPU: bare sentence-transformers vs tamis BiEncoder (torch) vs OnnxEncoder.

    python benchmarks/encode_backends.py [--n 5000] [--dataset wordnet-reverse-dictionary] [--repeat 1]

Texts are the first N documents of the dataset (title + " " + text). Every encoder encodes the same
texts in batches of 64 after a warm-up batch; docs/s is the best of ``--repeat`` runs. The ONNX
export is timed separately (into a fresh cache folder unless ``--cache`` is given), as is loading
the cached export. Vectors of OnnxEncoder are compared with BiEncoder's (cosine).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import dataset, machine, save_json


def load_texts(path: Path, n: int) -> list[str]:
    texts = []
    with open(path / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            texts.append(f"{doc.get('title') or ''} {doc.get('text') or ''}".strip())
            if n and len(texts) >= n:
                break
    return texts


def best_rate(fn: Callable[[], object], n: int, repeat: int) -> float:
    """docs/s of ``fn`` (which encodes n texts), best of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="wordnet-reverse-dictionary")
    ap.add_argument("--n", type=int, default=5000, help="documents (0 = all)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1, help="runs per encoder; the best counts")
    ap.add_argument("--cache", help="ONNX export folder to reuse (default: a fresh temporary one)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch
    from sentence_transformers import SentenceTransformer

    from tamis.encoders import BiEncoder, OnnxEncoder, default_model_path

    texts = load_texts(dataset(args.dataset), args.n)
    n, bs = len(texts), args.batch_size
    warm = texts[:bs]
    print(f"{machine()}; {n} texts from {args.dataset}, batch {bs}")

    st = SentenceTransformer(str(default_model_path()), device="cpu")
    st.encode(warm, batch_size=bs)
    bare = best_rate(lambda: st.encode(texts, batch_size=bs, show_progress_bar=False), n, args.repeat)

    bi = BiEncoder(device="cpu")
    bi.encode(warm, batch_size=bs)
    torch_rate = best_rate(lambda: bi.encode(texts, batch_size=bs), n, args.repeat)
    ref = bi.encode(texts, batch_size=bs)
    fingerprint = bi.fingerprint

    with tempfile.TemporaryDirectory(prefix="tamis-onnx-bench-") as tmp:
        cache = Path(args.cache) if args.cache else Path(tmp)
        t0 = time.perf_counter()
        OnnxEncoder(cache=cache)
        export_s = time.perf_counter() - t0  # export, or a cache hit when --cache is reused
        t0 = time.perf_counter()
        onnx = OnnxEncoder(cache=cache)
        load_s = time.perf_counter() - t0
        onnx.encode(warm, batch_size=bs)
        onnx_rate = best_rate(lambda: onnx.encode(texts, batch_size=bs), n, args.repeat)
        vecs = onnx.encode(texts, batch_size=bs)
        exporter = onnx.meta["exporter"]
        same_fp = onnx.fingerprint == fingerprint
        threads = onnx.intra_op_threads

    cos = (vecs * ref).sum(axis=1)
    rows = [
        ("SentenceTransformer.encode", bare),
        ("tamis BiEncoder (torch)", torch_rate),
        ("tamis OnnxEncoder", onnx_rate),
    ]
    print(f"\n{'encoder':<30}{'docs/s':>10}")
    for name, rate in rows:
        print(f"{name:<30}{rate:>10.0f}")
    print(
        f"\nonnx / bare torch: {onnx_rate / bare:.2f}x   onnx / BiEncoder: {onnx_rate / torch_rate:.2f}x   "
        f"BiEncoder / bare: {torch_rate / bare:.2f}x"
    )
    print(
        f"cosine onnx vs torch: min {cos.min():.7f}, mean {cos.mean():.7f}; same fingerprint: {same_fp}\n"
        f"export ({exporter}): {export_s:.1f} s, cached load: {load_s:.2f} s; "
        f"threads: torch {torch.get_num_threads()}, onnx {threads} (of {os.cpu_count()} CPUs)"
    )
    path = save_json(
        "encode_backends.json",
        {
            "machine": machine(),
            "dataset": args.dataset,
            "n": n,
            "batch_size": bs,
            "docs_per_s": {name: round(rate, 1) for name, rate in rows},
            "cosine_min": float(cos.min()),
            "cosine_mean": float(cos.mean()),
            "same_fingerprint": same_fp,
            "exporter": exporter,
            "export_s": round(export_s, 2),
            "cached_load_s": round(load_s, 3),
            "torch_threads": torch.get_num_threads(),
            "onnx_threads": threads,
            "mean_chars": float(np.mean([len(t) for t in texts])),
        },
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
