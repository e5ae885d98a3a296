"""Encode a BEIR dataset once and cache its vectors under benchmarks/out/ (used by filtering.py)."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

logger = logging.getLogger("tamis.bench")


def load_encoder_fast(model: str | None = None):
    """ONNX Runtime when it works here (faster on CPU), torch otherwise."""
    from tamis import load_encoder

    try:
        return load_encoder(model, backend="onnx")
    except Exception as exc:  # the ONNX backend is optional for this benchmark
        logger.warning("ONNX backend unavailable (%s: %s); using torch", type(exc).__name__, exc)
        return load_encoder(model, backend="torch", device="cpu")


def encoded(name: str, enc=None, tag: str = ""):
    """(doc_ids, doc_texts, doc_vecs, query_ids, query_texts, query_vecs, fingerprint) for dataset ``name``.

    ``tag`` names the cache of another model's vectors (``<name>-<tag>.npz``); pass its encoder as ``enc``."""
    from tamis import load_beir
    from tamis.data import load_beir_queries

    folder = DATA / name
    docs = list(load_beir(folder))
    queries = load_beir_queries(folder)
    OUT.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{tag}" if tag else name
    cache = OUT / f"{stem}.npz"
    meta_file = OUT / f"{stem}.json"
    if cache.exists() and meta_file.exists():
        meta = json.loads(meta_file.read_text())
        z = np.load(cache)
        return (meta["doc_ids"], [d.embed_text for d in docs], z["docs"], meta["query_ids"],
                [queries[q] for q in meta["query_ids"]], z["queries"], meta["fingerprint"], meta)
    enc = enc or load_encoder_fast()
    t0 = time.perf_counter()
    dv = enc.encode([d.embed_text for d in docs], kind="document", batch_size=128)
    td = time.perf_counter() - t0
    qids = list(queries)
    t0 = time.perf_counter()
    qv = enc.encode([queries[q] for q in qids], kind="query", batch_size=128)
    tq = time.perf_counter() - t0
    np.savez(cache, docs=dv, queries=qv)
    meta = {"doc_ids": [d.id for d in docs], "query_ids": qids, "fingerprint": enc.fingerprint,
            "model": enc.name, "backend": getattr(enc, "backend", "?"), "encode_seconds": [td, tq]}
    meta_file.write_text(json.dumps(meta))
    return ([d.id for d in docs], [d.embed_text for d in docs], dv, qids, [queries[q] for q in qids], qv,
            enc.fingerprint, meta)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    for n in sys.argv[1:]:
        r = encoded(n)
        print(n, r[2].shape, r[5].shape, r[7]["backend"], r[7]["encode_seconds"])
