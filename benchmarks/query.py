"""Query latency and recall: tamis search vs the bare pair (encode + Edge query) vs langchain-qdrant.

    python benchmarks/query.py [--n 0] [--queries 300]

On the WordNet reverse dictionary (all 40k documents by default), one run measures per-query
latency (p50 / p99, sequential, warm) of:
  * the bare pair: ``SentenceTransformer.encode`` of one query + a raw ``qdrant_edge`` query;
  * ``Collection.search`` (torch backend, then ONNX backend) on the same Edge collection;
  * the langchain-qdrant retriever (langchain-huggingface embeddings, qdrant-client local mode,
    same vectors);
and recall@10 of tamis's default search settings against exact search, on the test queries.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from pathlib import Path

import numpy as np
from _common import OUT, dataset, machine, save_json

import tamis
from tamis.data import load_beir_queries, load_qrels
from tamis.encoders import default_model_path


def percentiles(xs: list[float]) -> tuple[float, float]:
    arr = np.array(xs) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="wordnet-reverse-dictionary")
    ap.add_argument("--n", type=int, default=0, help="documents (0 = all)")
    ap.add_argument("--queries", type=int, default=300, help="queries timed per system")
    args = ap.parse_args()

    root = dataset(args.dataset)
    docs = list(itertools.islice(tamis.load_beir(root), args.n or None))
    n = len(docs)
    queries = load_beir_queries(root)
    test_ids = [q for q in load_qrels(root, "test") if q in queries]
    qtexts = [queries[q] for q in test_ids]
    timed = qtexts[: args.queries]
    print(f"{args.dataset}: {n} documents, {len(qtexts)} test queries ({len(timed)} timed); {machine()}")

    path = OUT / f"query-edge-{args.dataset}-{n}"
    name = "bench"
    onnx = tamis.load_encoder(None, backend="onnx")
    with tamis.open_collection(name, path=path, encoder=onnx, create=True) as col:
        if not col.exists or col.count() != n:
            t0 = time.perf_counter()
            col.index(docs)
            print(f"indexed {n} documents in {time.perf_counter() - t0:.1f}s (cached in {path})")
        physical = col.physical  # the version behind the alias `name` (e.g. bench__v1)
        print("engine:", col.store.collection_info(physical))
        # recall@10 of default settings vs exact, all test queries
        vecs = col.encode_queries(qtexts)
        approx = col.search_vectors(vecs, 10)
        exact = col.search_vectors(vecs, 10, exact=True)
        recall = statistics.mean(
            len({h.id for h in a} & {h.id for h in e}) / max(1, len(e)) for a, e in zip(approx, exact, strict=True)
        )
        print(f"recall@10 (hnsw_ef=128 vs exact): {recall:.4f}")
        # langchain-qdrant store built from the same vectors (no re-encoding)
        points = list(col.store.scroll(col.physical, with_payload=True, with_vectors=True))

    results: dict[str, float] = {"recall@10_default_vs_exact": recall, "n": n}

    # bare pair: sentence-transformers encode + raw Edge query
    import qdrant_edge as qe
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(default_model_path()), device="cpu")
    shard = qe.EdgeShard.load(str(Path(path) / "collections" / physical / "shard"))
    params = qe.SearchParams(hnsw_ef=128, exact=False)

    def bare(q: str) -> None:
        v = st.encode(q, normalize_embeddings=True)
        shard.query(qe.QueryRequest(limit=10, query=qe.Query.Nearest(v.tolist()), params=params, with_payload=True, with_vector=False))

    def enc_only(q: str) -> None:
        st.encode(q, normalize_embeddings=True)

    systems = {"encode one query (ST)": enc_only, "bare pair (ST encode + Edge query)": bare}
    lat: dict[str, list[float]] = {}
    for label, fn in systems.items():
        for q in timed[:20]:
            fn(q)
        lat[label] = []
        for q in timed:
            t0 = time.perf_counter()
            fn(q)
            lat[label].append(time.perf_counter() - t0)
    shard.close()

    for backend in ("torch", "onnx"):
        with tamis.open_collection(name, path=path, backend=backend) as col:
            for q in timed[:20]:
                col.search(q, k=10)
            label = f"tamis search ({backend})"
            lat[label] = []
            for q in timed:
                t0 = time.perf_counter()
                col.search(q, k=10)
                lat[label].append(time.perf_counter() - t0)

    # langchain-qdrant retriever over qdrant-client local mode with the same vectors
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    client.create_collection("lc", vectors_config=models.VectorParams(size=len(points[0].vector), distance=models.Distance.COSINE))
    for start in range(0, len(points), 2000):
        part = points[start : start + 2000]
        client.upsert("lc", [
            models.PointStruct(id=p.id, vector=p.vector.tolist(), payload={"page_content": p.payload["text"], "metadata": {"id": p.payload["doc_id"]}})
            for p in part
        ])
    emb = HuggingFaceEmbeddings(model_name=str(default_model_path()), model_kwargs={"device": "cpu"})
    retriever = QdrantVectorStore(client=client, collection_name="lc", embedding=emb).as_retriever(search_kwargs={"k": 10})
    for q in timed[:10]:
        retriever.invoke(q)
    lat["langchain-qdrant retriever (local mode)"] = []
    for q in timed:
        t0 = time.perf_counter()
        retriever.invoke(q)
        lat["langchain-qdrant retriever (local mode)"].append(time.perf_counter() - t0)

    print(f"\n{'system':45s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for label, xs in lat.items():
        p50, p99 = percentiles(xs)
        results[f"{label} p50_ms"], results[f"{label} p99_ms"] = p50, p99
        print(f"{label:45s} {p50:8.2f} {p99:8.2f}")
    bare50 = results["bare pair (ST encode + Edge query) p50_ms"]
    print("\nratios of p50 to the bare pair")
    for backend in ("torch", "onnx"):
        r = results[f"tamis search ({backend}) p50_ms"] / bare50
        results[f"ratio_p50_tamis_{backend}_vs_bare"] = r
        print(f"  tamis search ({backend}): {r:.2f}x")
    r = results["langchain-qdrant retriever (local mode) p50_ms"] / bare50
    print(f"  langchain-qdrant retriever: {r:.2f}x")
    save_json(f"query-{args.dataset}-{n}.json", {"machine": machine(), **results})


if __name__ == "__main__":
    main()
