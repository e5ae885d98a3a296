"""Step 3 of ``gpu_check.py``: ``tamis serve`` on the device, and the LangChain retriever's native async.

* ``tamis serve`` (the CLI, a subprocess as users run it) under 16 and 64 concurrent ``/embed`` clients,
  4 texts a request, against encoding the same texts in this process with the same model and batch;
* 100 concurrent ``ainvoke`` against 100 sequential ``invoke`` on `TamisRetriever` over the collection
  step 2 indexed (target: >= 3x faster).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import free_port, wait_healthy
from gpu_common import Ctx, StepIO, read_jsonl, read_qrels, timed

log = logging.getLogger("gpu_check")
PER_REQUEST = 4


def _start_server(ctx: Ctx, io: StepIO) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    bs = str(ctx.plan.serve_batch)
    cmd = [sys.executable, "-m", "tamis.cli", "serve", "--port", str(port), "--backend", "torch", "--device", ctx.device,
           "--max-batch-size", bs, "--encode-batch-size", bs, *ctx.model_args()]
    log_file = open(ctx.work / "serve.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
    proc.log_file = log_file  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"
    io.detail("server_command", " ".join(["tamis", *cmd[3:]]))
    if not wait_healthy(url, proc, max(10.0, min(180.0, io.left()))):
        _stop(proc)
        tail = (ctx.work / "serve.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"tamis serve did not come up (exit {proc.returncode}): {tail}")
    return proc, url


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.log_file.close()  # type: ignore[attr-defined]


async def _clients(url: str, texts: list[str], n_clients: int) -> tuple[float, int]:
    """(wall seconds, failed requests) for ``n_clients`` clients posting ``PER_REQUEST`` texts to /embed."""
    import httpx

    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for i in range(0, len(texts), PER_REQUEST):
        queue.put_nowait(texts[i : i + PER_REQUEST])
    failed = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal failed
        while not queue.empty():
            batch = queue.get_nowait()
            r = await http.post(url + "/embed", json={"inputs": batch})
            failed += r.status_code != 200 or len(r.json()) != len(batch)

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=n_clients)) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(n_clients)))
        return time.perf_counter() - t0, failed


def _serve(ctx: Ctx, io: StepIO, texts: list[str]) -> None:
    import httpx

    enc = ctx.encoder()
    local = len(texts) / min(timed(lambda: enc.encode(texts, batch_size=ctx.plan.serve_batch))
                             for _ in range(min(2, ctx.plan.serve_rounds)))
    io.detail("local_texts_per_s", round(local, 1))
    t0 = time.monotonic()
    proc, url = _start_server(ctx, io)
    try:
        io.detail("server_start_s", round(time.monotonic() - t0, 1))
        info = httpx.get(url + "/info", timeout=10).json()
        io.detail("server_info", info.get("tamis", info))
        asyncio.run(_clients(url, texts[:64], 4))  # warm-up
        for n in ctx.plan.serve_clients:
            rounds = [asyncio.run(_clients(url, texts, n)) for _ in range(min(2, ctx.plan.serve_rounds) if io.left() > 30 else 1)]
            rate = len(texts) / min(sec for sec, _ in rounds)
            failed = sum(f for _, f in rounds)
            io.detail(f"embed_{n}_clients", {"texts": len(texts), "texts_per_request": PER_REQUEST,
                                             "texts_per_s": round(rate, 1), "vs_local": round(rate / local, 3),
                                             "rounds": len(rounds)})
            io.check(f"embed_{n}_clients_no_errors", failed, failed == 0, "every request answered")
    finally:
        _stop(proc)


def _queries(ctx: Ctx, n: int) -> list[str]:
    judged = read_qrels(ctx.data, "test")
    texts = [q["text"] for q in read_jsonl(ctx.data / "queries.jsonl") if q["_id"] in judged]
    return (texts * (n // max(len(texts), 1) + 1))[:n]


def _retriever(ctx: Ctx, io: StepIO) -> None:
    import tamis
    from tamis.adapters.langchain import TamisRetriever

    home: Path | None = ctx.state.get("collection_home")
    if home is None:  # step 2 did not run: a collection of our own
        home = ctx.work / "edge-serve"
        with tamis.open_collection("wordnet", path=home, encoder=ctx.encoder(), create=True) as col:
            col.index(ctx.docs()[:5000])
    qs = _queries(ctx, ctx.plan.retriever_queries)
    with tamis.open_collection("wordnet", path=home, encoder=ctx.encoder()) as col:
        retriever = TamisRetriever(collection=col, k=4)
        for q in qs[:5]:
            retriever.invoke(q)  # warm-up

        async def together() -> list[Any]:
            return await asyncio.gather(*(retriever.ainvoke(q) for q in qs))

        asyncio.run(together())  # warm-up of the batched path
        seq, conc, same = [], [], 0
        for _ in range(ctx.plan.serve_rounds if io.left() > 20 else 1):
            t0 = time.perf_counter()
            sequential = [retriever.invoke(q) for q in qs]
            seq.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            concurrent = asyncio.run(together())
            conc.append(time.perf_counter() - t0)
            same = sum([d.id for d in a] == [d.id for d in b] for a, b in zip(sequential, concurrent, strict=True))
        hits = sum(len(r) for r in sequential)
    speedup = min(seq) / min(conc)
    io.detail("retriever", {"queries": len(qs), "k": 4, "sequential_invoke_s": round(min(seq), 3),
                            "concurrent_ainvoke_s": round(min(conc), 3), "speedup": round(speedup, 2),
                            "identical_results": f"{same}/{len(qs)}", "hits": hits})
    io.check("retriever_returns_hits", hits, hits > 0, "the retriever finds documents")
    io.check("ainvoke_speedup", round(speedup, 2), speedup >= 3.0, ">= 3x (100 concurrent ainvoke vs sequential invoke)")


def step_serve(ctx: Ctx, io: StepIO) -> None:
    """Step 3: /embed under concurrent clients on ``tamis serve``, and the retriever's async speedup."""
    corpus = [d.embed_text for d in ctx.docs()]
    n = ctx.plan.serve_texts
    _serve(ctx, io, (corpus * (n // len(corpus) + 1))[:n])
    _retriever(ctx, io)
