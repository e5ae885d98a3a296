"""Ingest throughput: tamis vs bare sentence-transformers encode vs langchain-qdrant, in one run.

    python benchmarks/ingest.py [--n 10000] [--dataset wordnet-reverse-dictionary]

(a) bare ``SentenceTransformer.encode`` of the same texts (batch 64): the limit for torch;
(b) ``Collection.index`` into embedded Qdrant Edge (what ``tamis index`` runs), torch backend and
    ONNX Runtime backend; durable and queryable when it returns (HNSW build timed separately);
(c) langchain-qdrant ``QdrantVectorStore.from_texts`` with langchain-huggingface embeddings of
    the same model into qdrant-client local mode (``:memory:``).
Prints docs/s and the ratios b/a and b/c.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import shutil
import tempfile

from _common import Timer, dataset, machine, save_json

import tamis
from tamis._encoder import default_model_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="wordnet-reverse-dictionary")
    ap.add_argument("--n", type=int, default=10_000, help="documents (0 = all)")
    ap.add_argument("--skip-langchain", action="store_true")
    args = ap.parse_args()

    src = tamis.load_beir(dataset(args.dataset))
    docs = list(itertools.islice(src, args.n or None))
    texts = [d.embed_text for d in docs]
    n = len(docs)
    model_path = str(default_model_path())
    print(f"{args.dataset}: {n} documents; {machine()}")
    results: dict[str, float] = {}

    # (a) bare sentence-transformers
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model_path, device="cpu")
    st.encode(texts[:256], batch_size=64)  # warm-up
    with Timer() as t:
        st.encode(texts, batch_size=64, normalize_embeddings=True)
    results["a_bare_st_encode"] = n / t.seconds
    print(f"(a) bare SentenceTransformer.encode   {results['a_bare_st_encode']:8.1f} docs/s")
    del st
    gc.collect()

    # (b) tamis index into Edge, both backends
    for backend in ("torch", "onnx"):
        tmp = tempfile.mkdtemp(prefix="tamis-bench-")
        try:
            enc = tamis.load_encoder(None, backend=backend, device="cpu")
            enc.encode(texts[:256])  # warm-up (and ONNX export, cached, outside the timing)
            with tamis.open_collection("bench", path=tmp, encoder=enc, create=True) as col:
                with Timer() as t:
                    report = col.index(docs, optimize=False)
                assert report.points == n, report
                with Timer() as t_opt:
                    col.store.optimize(col.physical)
            key = f"b_tamis_index_{backend}"
            results[key] = n / t.seconds
            results[f"{key}_with_hnsw_build"] = n / (t.seconds + t_opt.seconds)
            results[f"hnsw_build_seconds_{backend}"] = t_opt.seconds
            print(
                f"(b) tamis index, {backend:5s} backend       {results[key]:8.1f} docs/s "
                f"(HNSW build afterwards: {t_opt.seconds:.1f}s -> {results[key + '_with_hnsw_build']:.1f} docs/s overall)"
            )
            del enc
            gc.collect()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # (c) langchain-qdrant + langchain-huggingface, local mode
    if not args.skip_langchain:
        from langchain_huggingface import HuggingFaceEmbeddings
        from langchain_qdrant import QdrantVectorStore

        emb = HuggingFaceEmbeddings(model_name=model_path, model_kwargs={"device": "cpu"})
        emb.embed_documents(texts[:256])
        with Timer() as t:
            QdrantVectorStore.from_texts(texts, embedding=emb, location=":memory:", collection_name="bench")
        results["c_langchain_qdrant"] = n / t.seconds
        print(f"(c) langchain-qdrant from_texts        {results['c_langchain_qdrant']:8.1f} docs/s")

    a = results["a_bare_st_encode"]
    print("\nratios")
    for backend in ("torch", "onnx"):
        b = results[f"b_tamis_index_{backend}"]
        line = f"  {backend:5s}: b/a = {b / a:.2f}"
        if "c_langchain_qdrant" in results:
            line += f"   b/c = {b / results['c_langchain_qdrant']:.2f}"
        print(line)
    save_json(f"ingest-{args.dataset}-{n}.json", {"n": n, "dataset": args.dataset, "machine": machine(), **results})


if __name__ == "__main__":
    main()
