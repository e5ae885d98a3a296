"""Ingest throughput: tamis vs bare sentence-transformers encode vs langchain-qdrant, in one run.

    python benchmarks/ingest.py [--n 10000] [--dataset wordnet-reverse-dictionary]

(a) bare ``SentenceTransformer.encode`` of the same texts (batch 64): the limit for torch;
(b) ``Collection.index`` into embedded Qdrant Edge (what ``tamis index`` runs), torch backend and
    ONNX Runtime backend; durable and queryable when it returns (HNSW build timed separately);
(c) langchain-qdrant ``QdrantVectorStore.from_texts`` with langchain-huggingface embeddings of
    the same model into qdrant-client local mode (``:memory:``);
(d) qdrant-client + fastembed: fastembed ``TextEmbedding`` on the same weights (the tamis float32
    export, `_peers.fastembed_encoder`) and ``upload_collection`` into qdrant-client local mode.
``--backends`` picks tamis's (default ``auto,onnx,onnx-int8,torch``; ``auto`` is the default one).
Prints docs/s and the ratios b/a, b/c and b/d.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import shutil
import tempfile

from _common import Timer, dataset, machine, save_json

import tamis
from tamis.encoders import QualityGateError, default_model_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="wordnet-reverse-dictionary")
    ap.add_argument("--n", type=int, default=10_000, help="documents (0 = all)")
    ap.add_argument("--skip-langchain", action="store_true")
    ap.add_argument("--skip-fastembed", action="store_true")
    ap.add_argument("--backends", default="auto,onnx,onnx-int8,torch")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (best counts)")
    args = ap.parse_args()

    src = tamis.load_beir(dataset(args.dataset))
    docs = list(itertools.islice(src, args.n or None))
    texts = [d.embed_text for d in docs]
    n = len(docs)
    model_path = str(default_model_path())
    print(f"{args.dataset}: {n} documents; {machine()}")
    results: dict[str, float] = {}
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_qdrant import QdrantVectorStore
    from sentence_transformers import SentenceTransformer

    # every system is loaded and warmed up once, then timed in interleaved rounds; the best round
    # of each counts, so a burst of load from elsewhere on a shared machine hurts no system alone
    st = SentenceTransformer(model_path, device="cpu")
    st.encode(texts[:256], batch_size=64)
    backends = args.backends.split(",")
    encoders = {b: tamis.load_encoder(None, backend=b, device="cpu") for b in backends}
    for b, enc in encoders.items():
        try:
            enc.encode(texts[:512])  # warm-up (the ONNX export, cached; int8: its quality gate)
        except QualityGateError as exc:
            print(f"onnx-int8 refused by its quality gate on these documents: {exc.report}")
            results["int8_gate_refused"] = 1.0
            backends.remove(b)
    encoders = {b: encoders[b] for b in backends}
    fe = None
    if not args.skip_fastembed:
        from _peers import fastembed_encoder
        from qdrant_client import QdrantClient, models

        onnx = encoders.get("onnx") or tamis.load_encoder(None, backend="onnx")
        fe = fastembed_encoder(onnx.export_dir, onnx.dim)
        fe(texts[:256])
    emb = None
    if not args.skip_langchain:
        emb = HuggingFaceEmbeddings(model_name=model_path, model_kwargs={"device": "cpu"})
        emb.embed_documents(texts[:256])

    def bare() -> float:
        with Timer() as t:
            st.encode(texts, batch_size=64, normalize_embeddings=True)
        return n / t.seconds

    def tamis_index(backend: str) -> float:
        tmp = tempfile.mkdtemp(prefix="tamis-bench-")
        try:
            with tamis.open_collection("bench", path=tmp, encoder=encoders[backend], create=True) as col:
                with Timer() as t:
                    report = col.index(docs, optimize=False)
                assert report.documents == n, report
                results["tamis_chunks"] = report.chunks  # long documents are chunked, not truncated
                with Timer() as t_opt:
                    col.store.optimize(col.physical)
            results[f"hnsw_build_seconds_{backend}"] = min(
                results.get(f"hnsw_build_seconds_{backend}", float("inf")), t_opt.seconds
            )
            return n / t.seconds
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def langchain() -> float:
        with Timer() as t:
            QdrantVectorStore.from_texts(texts, embedding=emb, location=":memory:", collection_name="bench")
        return n / t.seconds

    def qdrant_fastembed() -> float:
        with Timer() as t:
            client = QdrantClient(location=":memory:")
            client.create_collection("bench", vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE))
            client.upload_collection("bench", vectors=fe(texts), ids=list(range(n)), payload=[{"text": x} for x in texts])
        return n / t.seconds

    systems = {"a_bare_st_encode": bare}
    for b in backends:
        systems[f"b_tamis_index_{b}"] = lambda b=b: tamis_index(b)
    if emb is not None:
        systems["c_langchain_qdrant"] = langchain
    if fe is not None:
        systems["d_qdrant_client_fastembed"] = qdrant_fastembed
    rounds: dict[str, list[float]] = {k: [] for k in systems}
    for r in range(args.rounds):
        for key, fn in systems.items():
            rounds[key].append(fn())
            gc.collect()
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rounds.items()), flush=True)
    for key, vals in rounds.items():
        results[key] = max(vals)
    labels = {
        "a_bare_st_encode": "(a) bare SentenceTransformer.encode",
        **{f"b_tamis_index_{b}": f"(b) tamis index into Edge, {b}" for b in backends},
        "c_langchain_qdrant": "(c) langchain-qdrant from_texts",
        "d_qdrant_client_fastembed": "(d) qdrant-client + fastembed",
    }
    if results.get("tamis_chunks", n) != n:
        print(f"note: tamis embeds {results['tamis_chunks']} chunks for {n} documents (the peers truncate at 256 tokens)")
    print(f"\nbest of {args.rounds} rounds, docs/s")
    for key in rounds:
        print(f"{labels[key]:40s} {results[key]:8.1f}")
    for backend in backends:
        b = results[f"b_tamis_index_{backend}"]
        sec = results[f"hnsw_build_seconds_{backend}"]
        results[f"b_tamis_index_{backend}_with_hnsw_build"] = n / (n / b + sec)
        print(f"    HNSW build after the {backend} ingest: {sec:.1f}s -> {results[f'b_tamis_index_{backend}_with_hnsw_build']:.1f} docs/s overall")

    a = results["a_bare_st_encode"]
    print("\nratios")
    for backend in backends:
        b = results[f"b_tamis_index_{backend}"]
        line = f"  {backend:9s}: b/a = {b / a:.2f}"
        if "c_langchain_qdrant" in results:
            line += f"   b/c = {b / results['c_langchain_qdrant']:.2f}"
        if "d_qdrant_client_fastembed" in results:
            line += f"   b/d = {b / results['d_qdrant_client_fastembed']:.2f}"
        print(line)
    save_json(f"ingest-{args.dataset}-{n}.json", {"n": n, "dataset": args.dataset, "machine": machine(), **results})


if __name__ == "__main__":
    main()
