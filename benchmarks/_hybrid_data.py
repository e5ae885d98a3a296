"""The hybrid benchmark's data: datasets, cached MiniLM vectors, the Edge hybrid collection, every mode's ranking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _common import DATA, OUT
from _encode_cache import load_encoder_fast

from tamis.data import load_beir, load_beir_queries, load_qrels
from tamis.stores import Bm25Encoder, HybridQuery, StorePoint

K = 100
TARGET_RECALL = 0.9
MAX_TRAIN = 4000
FOLDERS = {"python-faq": DATA / "python-faq", "wordnet-reverse-dictionary": DATA / "wordnet-reverse-dictionary",
           "manpages": OUT / "manpages"}
#: precomputed document vectors to reuse (benchmarks/out/<file>), checked against the encoder on a sample
DOC_VECTORS = {"wordnet-reverse-dictionary": "wordnet-docs-minilm.npz"}


def encoded(name: str, enc=None):
    """(docs, queries, doc vectors, query ids, query vectors), cached in benchmarks/out/hybrid-<name>.npz."""
    folder = FOLDERS[name]
    docs = list(load_beir(folder))
    queries = load_beir_queries(folder)
    wanted = {q for ids in splits(name).values() for q in ids}
    qids = sorted(q for q in queries if q in wanted)
    cache = OUT / f"hybrid-{name}.npz"
    if cache.exists():
        z = np.load(cache)
        if len(z["docs"]) == len(docs) and len(z["queries"]) == len(qids):
            return docs, queries, z["docs"], qids, z["queries"]
    enc = enc or load_encoder_fast()
    reuse = OUT / DOC_VECTORS.get(name, "-")
    if reuse.is_file() and len(np.load(reuse)["docs"]) == len(docs):
        # document vectors encoded by the same code path (load_encoder_fast, load_beir's order and
        # embed_text) in another benchmark; checked here on a sample before use
        dv = np.load(reuse)["docs"]
        sample = np.random.default_rng(0).choice(len(docs), 32, replace=False)
        mine = enc.encode([docs[i].embed_text for i in sample], kind="document", batch_size=32)
        agree = float(np.min(np.sum(mine * dv[sample], axis=1)))
        if agree < 0.999:
            raise SystemExit(f"{reuse} does not match this encoder (min cosine {agree:.4f}); delete it")
    else:
        dv = enc.encode([d.embed_text for d in docs], kind="document", batch_size=128)
    qv = enc.encode([queries[q] for q in qids], kind="query", batch_size=128)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(cache, docs=dv, queries=qv)
    return docs, queries, dv, qids, qv


def splits(name: str) -> dict[str, list[str]]:
    """The judged query ids of each split (train cut to `MAX_TRAIN` queries, in file order)."""
    folder = FOLDERS[name]
    out = {}
    for split in ("train", "dev", "test"):
        if (folder / "qrels" / f"{split}.tsv").is_file():
            out[split] = list(load_qrels(folder, split))
    if "train" in out:
        out["train"] = out["train"][:MAX_TRAIN]
    return out


def build(path: Path, docs, dv, *, sparse: bool = True):
    from tamis.adapters.qdrant_edge import EdgeStore

    store = EdgeStore(path)
    store.create_collection("c", dim=dv.shape[1], metadata={}, sparse=sparse)
    bm25 = Bm25Encoder()
    for at in range(0, len(docs), 1000):
        part = docs[at : at + 1000]
        sv = bm25.embed_documents([d.embed_text for d in part]) if sparse else [None] * len(part)
        store.upsert("c", [StorePoint(_pid(at + j), dv[at + j], {"doc_id": d.id}, sparse=sv[j]) for j, d in enumerate(part)])
    store.optimize("c")
    return store


def _pid(i: int) -> str:
    import uuid

    return str(uuid.UUID(int=i + 1))


def run_modes(store, qv, qsparse, *, batch: int = 128):
    """{method: per-query [(doc id, score)] top-K} for dense, bm25, rrf, dbsf (one engine batch per chunk)."""
    out: dict[str, list] = {m: [] for m in ("dense", "bm25", "rrf", "dbsf")}
    spec = {"dense": ("dense", "rrf"), "bm25": ("sparse", "rrf"), "rrf": ("hybrid", "rrf"), "dbsf": ("hybrid", "dbsf")}
    for at in range(0, len(qv), batch):
        for m, (mode, fusion) in spec.items():
            qs = [HybridQuery(dense=qv[i], sparse=qsparse[i], mode=mode, fusion=fusion, prefetch=K)
                  for i in range(at, min(at + batch, len(qv)))]
            res = store.query_hybrid("c", qs, k=K)
            out[m].extend([(p.payload["doc_id"], p.score) for p in hits] for hits in res)
    return out


