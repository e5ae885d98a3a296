"""The Ray ingest (`tamis.index_distributed`) against the in-process one, on a local Ray cluster.

    python benchmarks/distributed.py throughput [--n 20000] [--rounds 2]   # time it under flock /work/bench.lock
    python benchmarks/distributed.py memory [--sizes 50000 100000 200000]
    python benchmarks/distributed.py upsert [--n 20000]                    # time it under flock too

throughput: WordNet documents (a JSONL file) into Qdrant Edge, the torch backend of the packaged
    MiniLM, in interleaved rounds: in-process `Collection.index` with torch on 1 thread vs Ray with 1
    actor (1 CPU), and on 2 threads vs 2 actors (1 CPU each), ``ray.init(num_cpus=2)``. Each run
    includes loading the model (the actors load theirs) and, for Ray, the validation pass.
memory: the driver's RSS and USS sampled every 0.5 s (a fresh process per run) for 50k/100k/200k synthetic
    documents, the fake encoder (384-d, no model: the driver's memory is the question, not the encoder's),
    into Edge, or into an Edge store that drops the points after checking them (``discard``: the
    pipeline's memory without the store's).
upsert: points/s of Qdrant Edge and qdrant-client's local mode (path), 384-d, batches of 512.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import dataset, machine, save_json

import tamis


def wordnet_jsonl(n: int, out: Path) -> Path:
    docs = list(tamis.load_beir(dataset("wordnet-reverse-dictionary")))[:n]
    with open(out, "w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n")
    return out


def in_process(data: Path, store: Path, threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    with tamis.open_collection("wn", path=store, backend="torch", device="cpu", create=True) as col:
        rep = col.index(tamis.load_jsonl(data))
    assert rep.encoded == rep.chunks
    return rep.documents / (time.perf_counter() - t0)


def on_ray(data: Path, store: Path, actors: int, block: int = 256) -> float:
    from tamis.distributed import RayConfig, index_distributed

    t0 = time.perf_counter()
    rep = index_distributed(data, "wn", path=store, backend="torch", device="cpu",
                            config=RayConfig(num_actors=actors, num_cpus_per_actor=1, batch_size=block))
    assert rep.encoded == rep.chunks
    return rep.documents / (time.perf_counter() - t0)


def throughput(args: argparse.Namespace) -> None:
    import ray

    # Ray starts its workers at niceness 15 (its `worker_niceness` default), the in-process peer runs at 0:
    # on a shared machine the actors would then lose the cores to any niced neighbour. Equal resources
    # means equal priority.
    os.environ["RAY_worker_niceness"] = "0"  # read by the raylet ray.init starts
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    tmp = Path(tempfile.mkdtemp(prefix="tamis-dist-"))
    data = wordnet_jsonl(args.n, tmp / "wn.jsonl")
    names = ("in-process 1 thread", "ray 1 actor", "in-process 2 threads", "ray 2 actors")
    # --threads 1 (or 2) runs only that pair, so that one lock hold stays under ~10 minutes
    runs: dict[str, list[float]] = {k: [] for k in names if args.threads is None or f" {args.threads} " in k}
    for r in range(args.rounds):
        for name in runs:
            store = tmp / f"{name.replace(' ', '-')}-{r}"
            rate = on_ray(data, store, int(name[4]), args.block) if name.startswith("ray") else in_process(data, store, int(name[11]))
            runs[name].append(rate)
            print(f"round {r}: {name}: {rate:,.0f} docs/s", flush=True)
    best = {k: max(v) for k, v in runs.items()}
    out = {"n": args.n, "block": args.block, "machine": machine(), "load": os.getloadavg(), "runs": runs, "best": best}
    for t, (ip, ry) in {1: names[:2], 2: names[2:]}.items():
        if ip in best:
            out[f"overhead_{t}"] = 1 - best[ry] / best[ip]
    print(json.dumps(out, indent=1))
    save_json("distributed_throughput" + (f"_{args.threads}" if args.threads else "") + f"_b{args.block}", out)


MEMORY_SCRIPT = """
import json, os, sys, threading, time
os.environ["RAY_worker_niceness"] = "0"  # the workers at the driver's priority (Ray's default nices them by 15)
import psutil, ray
from tamis import FakeEncoder, load_jsonl, open_collection, registry
from tamis.distributed import RayConfig, index_distributed
mode, sink, data, store = sys.argv[1:5]
me = psutil.Process()
samples = []  # (seconds, rss MB, uss MB) every half second: the driver's memory over the run
stop = threading.Event()
t0 = time.perf_counter()
def sample():
    while not stop.is_set():
        m = me.memory_full_info()
        samples.append((round(time.perf_counter() - t0, 1), m.rss / 2**20, m.uss / 2**20))
        stop.wait(0.5)
threading.Thread(target=sample, daemon=True).start()
Edge = registry.load(registry.STORES, "edge")
class Discard(Edge):  # every check of an upsert, then the points are dropped: the pipeline's memory alone
    def _upsert(self, target, ids, matrix, payloads, **kw):
        pass
st = Discard(store) if sink == "discard" else Edge(store)
if mode == "ray":
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rep = index_distributed(data, "m", store=st, model="fake:384", config=RayConfig(num_actors=2, batch_size=512))
else:
    with open_collection("m", store=st, encoder=FakeEncoder(384), create=True) as col:
        rep = col.index(load_jsonl(data))
stop.set()
st.close()
q = [samples[int(f * (len(samples) - 1))] for f in (0.25, 0.5, 0.75, 1.0)]
print(json.dumps({"documents": rep.documents, "seconds": round(time.perf_counter() - t0, 1),
                  "peak_rss_mb": round(max(s[1] for s in samples)), "peak_uss_mb": round(max(s[2] for s in samples)),
                  "uss_at_25_50_75_100pct_mb": [round(s[2]) for s in q]}))
"""


def memory(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tamis-mem-"))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for n in args.sizes:
        data = tmp / f"syn-{n}.jsonl"
        with open(data, "w") as fh:
            for i in range(n):
                fh.write(json.dumps({"_id": f"d{i}", "title": f"t{i % 97}", "text": f"document {i} " + "lorem ipsum " * 8}) + "\n")
        for run in args.runs:  # e.g. ray:discard (the pipeline alone), ray:edge, in-process:edge
            mode, sink = run.split(":")
            res = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, mode, sink, str(data), str(tmp / f"{mode}-{sink}-{n}")],
                                 capture_output=True, text=True, check=True)
            out.setdefault(run, {})[str(n)] = json.loads(res.stdout.strip().splitlines()[-1])
            print(n, run, out[run][str(n)], f"load {os.getloadavg()[0]:.1f}", flush=True)
        data.unlink()
    save_json("distributed_memory", {"machine": machine(), **out})


def upsert(args: argparse.Namespace) -> None:
    import numpy as np

    from tamis.collection import open_store
    from tamis.stores import StorePoint

    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((args.n, 384)).astype(np.float32)
    pts = [StorePoint(tamis.collection.point_id(f"d{i}"), vecs[i], {"doc_id": f"d{i}", "text": "x" * 100})
           for i in range(args.n)]
    tmp = Path(tempfile.mkdtemp(prefix="tamis-up-"))
    out = {}
    for kind in ("edge", "qdrant"):
        for r in range(2):
            st, _ = open_store(kind, path=tmp / f"{kind}-{r}")
            st.create_collection("u", dim=384, distance="cosine", metadata={})
            t0 = time.perf_counter()
            for s in range(0, args.n, 512):
                st.upsert("u", pts[s : s + 512])
            st.flush("u")
            rate = args.n / (time.perf_counter() - t0)
            st.close()
            out[kind] = max(out.get(kind, 0.0), rate)
            print(f"{kind} round {r}: {rate:,.0f} points/s", flush=True)
    save_json("distributed_upsert", {"machine": machine(), "n": args.n, "points_per_s": out})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--n", type=int, default=20_000)
    t.add_argument("--rounds", type=int, default=2)
    t.add_argument("--block", type=int, default=256, help="documents per block sent to an actor (RayConfig.batch_size)")
    t.add_argument("--threads", type=int, choices=(1, 2), help="only the in-process/Ray pair at this many threads/actors")
    m = sub.add_parser("memory")
    m.add_argument("--sizes", type=int, nargs="+", default=[50_000, 100_000, 200_000])
    m.add_argument("--runs", nargs="+", default=["ray:discard", "ray:edge", "in-process:edge"],
                   help="MODE:SINK, MODE ray | in-process, SINK edge | discard (an Edge store that drops the points)")
    u = sub.add_parser("upsert")
    u.add_argument("--n", type=int, default=20_000)
    args = ap.parse_args()
    print(machine(), f"peak RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    {"throughput": throughput, "memory": memory, "upsert": upsert}[args.what](args)


if __name__ == "__main__":
    main()
