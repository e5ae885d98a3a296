"""Serving and RAG benchmark (issue 5).

1. ``/embed`` throughput of ``tamis serve`` (a subprocess, dynamic batching) under 16 concurrent
   clients, against local ``encode`` of the same texts with the same model and backend, in the
   same run. Target: >= 0.8x local.
2. 100 concurrent ``ainvoke`` on `TamisRetriever` against 100 sequential ``invoke`` (and, for
   reference, LangChain's default async: the sync method in an executor). Target: >= 3x faster.

Data: the python-faq corpus and queries from ../shared/data (set TAMIS_SHARED elsewhere).

    flock /tmp/tamis-bench.lock .venv/bin/python benchmarks/serve.py [--backend auto] [--rounds 3]

The peer comparison against Infinity (issue 14: 1, 16, 64 clients, texts/s, p50/p99) is
benchmarks/serve_peer.py.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import Timer, dataset, free_port, machine, save_json, wait_healthy

import tamis


def _start_server(backend: str, device: str, batch_size: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tamis.cli", "serve", "--port", str(port), "--backend", backend, "--device", device,
         "--max-batch-size", "64", "--encode-batch-size", str(batch_size)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    if not wait_healthy(url, proc, 300):
        raise SystemExit(f"tamis serve did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
    return proc, url


async def _clients(url: str, texts: list[str], n_clients: int, per_request: int) -> float:
    """Wall seconds for ``n_clients`` clients sending ``per_request`` texts per /embed until done."""
    chunks = [texts[i : i + per_request] for i in range(0, len(texts), per_request)]
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for c in chunks:
        queue.put_nowait(c)
    limits = httpx.Limits(max_connections=n_clients)

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            batch = queue.get_nowait()
            r = await http.post(url + "/embed", json={"inputs": batch})
            r.raise_for_status()

    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(n_clients)))
        return time.perf_counter() - t0


def bench_embed(args: argparse.Namespace, texts: list[str]) -> dict[str, object]:
    enc = tamis.load_encoder(backend=args.backend, device=args.device)
    enc.encode(texts[:64], batch_size=args.batch_size)  # warm-up
    proc, url = _start_server(args.backend, args.device, args.batch_size)
    try:
        asyncio.run(_clients(url, texts[:128], args.clients, args.per_request))  # warm-up
        local, served = [], []
        for _ in range(args.rounds):  # interleaved, so drifting machine load hits both alike
            with Timer() as t:
                enc.encode(texts, batch_size=args.batch_size)
            local.append(len(texts) / t.seconds)
            served.append(len(texts) / asyncio.run(_clients(url, texts, args.clients, args.per_request)))
        info = httpx.get(url + "/info").json()
        remote = bench_retriever(args, args.corpus, args.queries, encoder_url=url)
    finally:
        proc.terminate()
        proc.wait(30)
    loc, srv = statistics.median(local), statistics.median(served)
    return {
        "texts": len(texts), "clients": args.clients, "texts_per_request": args.per_request,
        "encode_batch_size": args.batch_size, "encoder": repr(enc), "served_backend": info["tamis"]["backend"],
        "local_texts_per_s": round(loc, 1), "served_texts_per_s": round(srv, 1), "ratio": round(srv / loc, 3),
        "local_all": [round(x, 1) for x in local], "served_all": [round(x, 1) for x in served],
        "retriever_through_serve": remote,
    }


def bench_retriever(
    args: argparse.Namespace, corpus: Path, queries: list[str], encoder_url: str | None = None
) -> dict[str, object]:
    """Sequential invoke vs concurrent ainvoke; with ``encoder_url`` the queries are embedded by tamis serve."""
    from tamis.adapters.langchain import TamisRetriever

    with tempfile.TemporaryDirectory() as home:
        col = tamis.open_collection("faq", path=home, backend=args.backend, device=args.device, create=True)
        col.index(tamis.load_beir(corpus))
        if encoder_url is not None:  # same model, same fingerprint: the collection accepts the server's vectors
            col.close()
            col = tamis.open_collection("faq", path=home, encoder_url=encoder_url)
        retriever = TamisRetriever(collection=col, k=4)
        qs = queries[:100]
        for q in qs[:5]:
            retriever.invoke(q)  # warm-up

        async def concurrent() -> list[object]:
            return await asyncio.gather(*(retriever.ainvoke(q) for q in qs))

        async def executor() -> list[object]:
            loop = asyncio.get_running_loop()
            return await asyncio.gather(*(loop.run_in_executor(None, retriever.invoke, q) for q in qs))

        seq, conc, exe = [], [], []
        for _ in range(args.rounds):
            with Timer() as t:
                sequential = [retriever.invoke(q) for q in qs]
            seq.append(t.seconds)
            with Timer() as t:
                together = asyncio.run(concurrent())
            conc.append(t.seconds)
            with Timer() as t:
                asyncio.run(executor())
            exe.append(t.seconds)
        same = sum([d.id for d in a] == [d.id for d in b] for a, b in zip(sequential, together, strict=True))
        col.close()
    s, c, e = statistics.median(seq), statistics.median(conc), statistics.median(exe)
    return {
        "encoder": "tamis serve (RemoteEncoder)" if encoder_url else f"local ({col.encoder!r})", "queries": len(qs), "k": 4, "documents": col.manifest["ingest"]["documents"] if col.manifest else None,
        "sequential_invoke_s": round(s, 3), "concurrent_ainvoke_s": round(c, 3), "executor_fallback_s": round(e, 3),
        "speedup": round(s / c, 2), "executor_speedup": round(s / e, 2), "identical_results": f"{same}/{len(qs)}",
        "batch_sizes_last_round": retriever._batcher.batch_sizes[-10:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="python-faq")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-request", type=int, default=4, help="texts per /embed request")
    parser.add_argument("--batch-size", type=int, default=32, help="local batch size = serve --encode-batch-size")
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--also-torch", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure the retriever with the torch backend")
    args = parser.parse_args()

    path = dataset(args.dataset)
    docs = [json.loads(line) for line in (path / "corpus.jsonl").open(encoding="utf-8")]
    corpus_texts = [(d.get("title", "") + " " + d["text"]).strip() for d in docs]
    texts = (corpus_texts * (args.texts // len(corpus_texts) + 1))[: args.texts]
    queries = [json.loads(line)["text"] for line in (path / "queries.jsonl").open(encoding="utf-8")]
    args.corpus, args.queries = path, queries

    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "dataset": args.dataset,
        "embed": bench_embed(args, texts),
        "retriever": bench_retriever(args, path, queries),
    }
    if args.also_torch:  # the CPU default is ONNX Runtime; torch (the GPU default) batches differently
        result["retriever_torch"] = bench_retriever(argparse.Namespace(**{**vars(args), "backend": "torch"}), path, queries)
    print(json.dumps(result, indent=2))
    save_json("serve.json", result)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
