"""How Qdrant Edge (through tamis's EdgeStore and CollectionSettings) grows with N: float32 / int8 / binary.

Vectors: real all-MiniLM-L6-v2 embeddings of the 40k WordNet documents (title + examples), tiled to N
with small Gaussian noise (sigma 0.01 per dimension, renormalised: a copy has cosine ~0.98 to its
original), so that neighbourhoods are as crowded as real near-duplicates make them. Queries: the
embeddings of WordNet test-split glosses (real queries). For each (configuration, N), one child
process builds the collection (upsert throughput, HNSW build time, on-disk size) and a fresh one
loads it and queries it (RSS after load + queries, p50/p99 latency at k=10 one query at a time,
recall@10 against exact search computed here). Configurations:

* ``float32``: vectors in RAM, no quantization;
* ``int8``: originals on disk (mmap), scalar int8 (quantile 0.99) in RAM, rescore with oversampling 2;
* ``binary``: originals on disk, binary (1 bit) in RAM, rescore with oversampling 3.
* ``float32-pd`` / ``int8-pd``: the first two with the payload on disk as well.
* ``int8-graph-disk``: ``int8`` with the HNSW graph on disk (mmap) as well.
* ``int8-lowram``: int8 with memory tiers (`MemoryTiers`): quantized vectors pinned; originals, payload,
  payload indexes and id tracker cold; ``int8-cold``: the HNSW graph cold as well.

``--filtered N`` adds the payload-index effect: a filter on ``metadata.lang`` (10 values, 10%% of
the points) with and without a keyword index on it, float32, at N points.

Run (timing: each child process under the lock, ``BENCH_LOCK``)::

    TAMIS_SHARED=/work/shared BENCH_LOCK=/work/bench.lock .venv/bin/python benchmarks/scale.py \\
        --sizes 100000 300000 --configs float32 int8 binary --filtered 300000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, dataset, save_json  # noqa: E402

NOISE = 0.01
BATCH = 1000
LOWRAM = {"vectors": "cold", "quantization": "pinned", "payload": "cold", "payload_indexes": "cold", "id_tracker": "cold"}
CONFIGS = {
    "float32": ({}, {}),
    "int8": (
        {"on_disk_vectors": True, "quantization": {"type": "scalar", "quantile": 0.99, "always_ram": True}},
        {"rescore": True, "oversampling": 2.0},
    ),
    # the same two with the payload on disk (mmap) too, as a memory-bound production setup would run
    "float32-pd": ({"on_disk_payload": True}, {}),
    "int8-pd": (
        {"on_disk_vectors": True, "on_disk_payload": True,
         "quantization": {"type": "scalar", "quantile": 0.99, "always_ram": True}},
        {"rescore": True, "oversampling": 2.0},
    ),
    # int8 with the HNSW graph on disk too (mmap): only the quantized vectors must stay in RAM
    "int8-graph-disk": (
        {"on_disk_vectors": True, "hnsw_on_disk": True,
         "quantization": {"type": "scalar", "quantile": 0.99, "always_ram": True}},
        {"rescore": True, "oversampling": 2.0},
    ),
    # int8 as a memory-bound deployment sets it with memory tiers: the quantized vectors pinned, the
    # originals, payload, payload indexes and id tracker cold (mmap, read on access); the graph cached
    "int8-lowram": (
        {"quantization": {"type": "scalar", "quantile": 0.99, "always_ram": True}, "memory": LOWRAM},
        {"rescore": True, "oversampling": 2.0},
    ),
    # ... and the HNSW graph cold too
    "int8-cold": (
        {"quantization": {"type": "scalar", "quantile": 0.99, "always_ram": True}, "memory": {**LOWRAM, "hnsw": "cold"}},
        {"rescore": True, "oversampling": 2.0},
    ),
    "binary": (
        {"on_disk_vectors": True, "quantization": {"type": "binary", "always_ram": True}},
        {"rescore": True, "oversampling": 3.0},
    ),
}


def base_vectors() -> tuple[np.ndarray, np.ndarray]:
    """(40k document vectors, test query vectors), encoded once and cached under benchmarks/out/."""
    cache = OUT / "scale-wordnet-minilm.npz"
    if cache.exists():
        z = np.load(cache)
        return z["docs"], z["queries"]
    from _encode_cache import load_encoder_fast

    from tamis import load_beir
    from tamis.data import load_beir_queries

    folder = dataset("wordnet-reverse-dictionary")
    docs = list(load_beir(folder))
    queries = load_beir_queries(folder)
    test = [line.split("\t")[0] for line in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    enc = load_encoder_fast()
    t0 = time.perf_counter()
    dv = enc.encode([d.embed_text for d in docs], kind="document", batch_size=128)
    qv = enc.encode([queries[q] for q in dict.fromkeys(test)], kind="query", batch_size=128)
    print(f"encoded {len(dv)} documents and {len(qv)} queries in {time.perf_counter() - t0:.0f}s", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(cache, docs=dv.astype(np.float32), queries=qv.astype(np.float32))
    return dv, qv


def _block(base: np.ndarray, b: int) -> np.ndarray:
    """Points ``b*BATCH .. (b+1)*BATCH`` of the tiled set, unit-normalised: copy ``j // len(base)`` of
    document ``j % len(base)``; copy 0 is the original, the others get noise seeded by the block."""
    n = len(base)
    idx = np.arange(b * BATCH, (b + 1) * BATCH)
    out = base[idx % n].copy()
    if idx[0] >= n:
        out += np.random.default_rng(b).normal(0.0, NOISE, size=out.shape).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def tiled(base: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Points ``start:stop`` of the tiled set (the same values however they are sliced)."""
    assert len(base) % BATCH == 0
    first, last = start // BATCH, (stop - 1) // BATCH
    blocks = np.concatenate([_block(base, b) for b in range(first, last + 1)])
    return blocks[start - first * BATCH : stop - first * BATCH]


def exact_top10(base: np.ndarray, queries: np.ndarray, n: int) -> np.ndarray:
    best_s = np.full((len(queries), 10), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 10), dtype=np.int64)
    for start in range(0, n, 50_000):
        block = tiled(base, start, min(n, start + 50_000))
        s = queries @ block.T
        i = np.argpartition(-s, 10, axis=1)[:, :10]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, i, 1)], 1)
        cand_i = np.concatenate([best_i, i + start], 1)
        top = np.argsort(-cand_s, axis=1)[:, :10]
        best_s, best_i = np.take_along_axis(cand_s, top, 1), np.take_along_axis(cand_i, top, 1)
    return best_i


def _pid(j: int) -> str:
    return str(uuid.UUID(int=j + 1))


def _rss_mb(field: str = "VmRSS") -> float:
    """``VmRSS`` (all resident pages) or its parts ``RssAnon`` (heap) / ``RssFile`` (mapped files)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child_build(folder: Path, n: int, config: str, index_lang: bool) -> dict:
    from tamis.adapters.qdrant_edge import EdgeStore
    from tamis.stores import CollectionSettings, StorePoint

    base, _ = base_vectors()
    settings = dict(CONFIGS[config][0])
    if index_lang:
        settings["payload_indexes"] = ["metadata.lang:keyword"]
    store = EdgeStore(folder)
    store.create_collection("c", dim=base.shape[1], metadata={}, settings=CollectionSettings.of(settings))
    upsert_s = 0.0
    for start in range(0, n, BATCH):
        vecs = tiled(base, start, min(n, start + BATCH))
        points = [
            StorePoint(_pid(j), vecs[j - start], {"doc_id": str(j), "chunk": 0, "metadata": {"lang": f"l{j % 10}"}})
            for j in range(start, start + len(vecs))
        ]
        t0 = time.perf_counter()
        store.upsert("c", points)
        upsert_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    store.optimize("c")
    optimize_s = time.perf_counter() - t0
    info = store.collection_info("c")
    store.close()
    disk = sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file())  # allocated, not apparent
    return {"upsert_s": upsert_s, "upsert_per_s": n / upsert_s, "optimize_s": optimize_s,
            "indexed": info["indexed_vectors"], "disk_mb": disk / 2**20}


def child_query(folder: Path, config: str, n_queries: int, filtered: bool) -> dict:
    from tamis.adapters.qdrant_edge import EdgeStore
    from tamis.stores import SearchParams

    _, queries = base_vectors()
    queries = queries[:n_queries]
    rss0 = _rss_mb()
    store = EdgeStore(folder)
    params = SearchParams(**CONFIGS[config][1])
    flt = {"metadata.lang": "l3"} if filtered else None
    t0 = time.perf_counter()
    store.count("c")  # loads the shard
    load_s = time.perf_counter() - t0
    for q in queries[:30]:  # warm-up
        store.search("c", q, k=10, params=params, filter=flt, with_payload=False)
    lat, ids = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = store.search("c", q, k=10, params=params, filter=flt, with_payload=False)
        lat.append(time.perf_counter() - t0)
        ids.append([uuid.UUID(h.id).int - 1 for h in hits])
    rss, anon, mapped = _rss_mb(), _rss_mb("RssAnon"), _rss_mb("RssFile")
    store.close()
    ms = np.array(lat) * 1000
    return {"load_s": load_s, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "rss_mb": rss, "rss_anon_mb": anon, "rss_file_mb": mapped, "rss_before_mb": rss0, "ids": ids}


def start_child(*args: str) -> subprocess.Popen[str]:
    """One child process; a query child under ``flock $BENCH_LOCK`` when set (latency is timed there; a
    build of 300k points takes longer than one may hold the shared lock, so builds run unlocked and
    their throughput is recorded with the load average; ``BENCH_LOCK_BUILDS=1`` locks builds too)."""
    cmd = [sys.executable, __file__, "--child", *args]
    if os.environ.get("BENCH_LOCK") and (args[0] == "query" or os.environ.get("BENCH_LOCK_BUILDS")):
        cmd = ["flock", os.environ["BENCH_LOCK"], *cmd]
    if os.environ.get("BUILD_NICE") and args[0] == "build":  # builds yield to timed work on a shared machine
        cmd = ["nice", "-n", os.environ["BUILD_NICE"], *cmd]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def result_of(proc: subprocess.Popen[str]) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"child failed ({proc.returncode}): {proc.args}")
    return json.loads(out.strip().splitlines()[-1])


def run_child(*args: str) -> dict:
    return result_of(start_child(*args))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS))
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--filtered", type=int, default=0, help="N for the payload-index comparison (0: skip)")
    ap.add_argument("--filtered-config", default="float32", help="the configuration of the payload-index comparison")
    ap.add_argument("--work", type=Path, default=OUT / "scale-work")
    ap.add_argument("--out", default="scale.json", help="results file name under benchmarks/out/")
    ap.add_argument("--serial", action="store_true",
                    help="query each build before the next build starts (no build running while queries are timed)")
    ap.add_argument("--child", nargs="+")
    args = ap.parse_args()
    if args.child:
        kind, folder, *rest = args.child
        if kind == "build":
            result = child_build(Path(folder), int(rest[0]), rest[1], rest[2] == "1")
        else:
            result = child_query(Path(folder), rest[0], int(rest[1]), rest[2] == "1")
        print(json.dumps(result))
        return
    base, queries = base_vectors()
    queries = queries[: args.queries]
    # (n, config, lang index): the --filtered-config build at --filtered N also answers the filtered
    # query without a payload index on metadata.lang; one more build has the index. The comparison
    # runs second (after the first build), so that a run cut short still has it
    builds = [(n, c, False) for n in args.sizes for c in args.configs]
    if args.filtered:
        fc = args.filtered_config
        pair = [(args.filtered, fc, True)] + ([] if (args.filtered, fc, False) in builds else [(args.filtered, fc, False)])
        builds[1:1] = pair[::-1]
    results: list[dict] = []
    # builds run one after another; each one's queries wait for the timing lock meanwhile
    pending: list[tuple[Any, ...]] = []
    def harvest(entry: tuple[Any, ...]) -> None:
        n, config, indexed, folder, build, modes, procs = entry
        for i, filtered in enumerate(modes):
            proc = procs[0] if i == 0 else start_child("query", str(folder), config, str(len(queries)), "1" if filtered else "0")
            query = result_of(proc)
            if filtered:
                keep = np.arange(n)[np.arange(n) % 10 == 3]
                truth = keep[exact_top10_subset(base, queries, keep)]
            else:
                truth = exact_top10(base, queries, n)
            ids = query.pop("ids")
            recall = float(np.mean([len(set(a) & set(t)) / 10 for a, t in zip(ids, truth.tolist(), strict=True)]))
            row = {"n": n, "config": config, "filtered": filtered, "lang_index": indexed, **build, **query,
                   "recall@10": recall, "load_avg": os.getloadavg()[0]}
            results.append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
            save_json(args.out, {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                 "noise": NOISE, "results": results})
        shutil.rmtree(folder, ignore_errors=True)


    for n, config, indexed in builds:
        folder = args.work / f"{config}-{n}-{int(indexed)}"
        shutil.rmtree(folder, ignore_errors=True)
        build = run_child("build", str(folder), str(n), config, "1" if indexed else "0")
        modes = [] if indexed or n not in args.sizes or config not in args.configs else [False]
        if n == args.filtered and config == args.filtered_config:
            modes.append(True)
        procs = [start_child("query", str(folder), config, str(len(queries)), "1" if f else "0") for f in modes[:1]]
        pending.append((n, config, indexed, folder, build, modes, procs))
        while args.serial and pending:
            harvest(pending.pop(0))
        while pending and all(p.poll() is not None for p in pending[0][6]):
            harvest(pending.pop(0))
    for entry in pending:
        harvest(entry)
    print(f"wrote {OUT / args.out}")


def exact_top10_subset(base: np.ndarray, queries: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Exact top-10 among the points ``keep`` (sorted point numbers), as positions in ``keep``."""
    blocks = []
    for start in range(0, len(keep), 20_000):
        rows = keep[start : start + 20_000]
        vecs = tiled(base, int(rows[0]), int(rows[-1]) + 1)[rows - rows[0]]
        blocks.append(queries @ vecs.T)
    s = np.concatenate(blocks, 1)
    return np.argsort(-s, axis=1)[:, :10]


if __name__ == "__main__":
    main()
