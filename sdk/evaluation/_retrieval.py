"""Evaluate a model folder without a collection: exact search over a BEIR split."""

from __future__ import annotations

import os
import random
from typing import Any

from tamis.data import TrainingData, load_training_data
from tamis.evaluation._metrics import ir_metrics

__all__ = ["evaluate_model", "exact_search", "sample_split"]


def exact_search(
    model: Any,
    corpus: dict[str, str],
    queries: dict[str, str],
    *,
    k: int = 100,
    batch_size: int = 128,
    progress: bool = False,
    truncate_dim: int | None = None,
) -> dict[str, dict[str, float]]:
    """query id -> {document id: cosine} of the ``k`` nearest documents, by brute force.

    Args:
        model: a loaded ``SentenceTransformer``.
        corpus: document id -> text; queries: query id -> text.
        truncate_dim: compare only the first dimensions (for Matryoshka models).
    """
    import numpy as np

    from tamis._math import exact_top_k

    doc_ids, q_ids = list(corpus), list(queries)
    if not doc_ids or not q_ids:
        return {}
    kw = dict(batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=progress)
    if truncate_dim is not None:
        kw["truncate_dim"] = truncate_dim
    d = np.asarray(model.encode_document([corpus[i] for i in doc_ids], **kw), dtype=np.float32)
    q = np.asarray(model.encode_query([queries[i] for i in q_ids], **kw), dtype=np.float32)
    if truncate_dim is not None:  # truncated vectors are no longer unit length
        d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    return {
        q_ids[row]: {doc_ids[j]: float(s) for j, s in zip(order.tolist(), sims.tolist(), strict=True)}
        for row, order, sims in exact_top_k(q, d, k)
    }


def evaluate_model(
    model: Any,
    data: str | os.PathLike[str] | TrainingData,
    *,
    split: str = "test",
    max_queries: int | None = None,
    max_documents: int | None = None,
    seed: int = 0,
    batch_size: int = 128,
    device: str = "auto",
    progress: bool = False,
    truncate_dim: int | None = None,
) -> dict[str, float]:
    """IR metrics (nDCG@10, recall@10/100, MRR@10) of a bi-encoder on a BEIR split, exact search.

    Args:
        model: a model folder, hub name, or loaded ``SentenceTransformer``.
        data: a BEIR folder, or already loaded `TrainingData`.
        split: the qrels split.
        max_queries: evaluate a seeded sample of this many judged queries (None: all).
        max_documents: search the judged documents plus a seeded sample of the others up to this
            many (None: the whole corpus). Scores on a sample are higher than on the full corpus.

    Example:
        >>> evaluate_model("./my-model", "./scifact", split="test")["ndcg@10"]   # doctest: +SKIP
        0.64
    """
    if not isinstance(data, TrainingData):
        data = load_training_data(data, split)
    st = _load(model, device)
    qrels, corpus = sample_split(data, max_queries=max_queries, max_documents=max_documents, seed=seed)
    run = exact_search(
        st, corpus, {q: data.queries[q] for q in qrels}, batch_size=batch_size, progress=progress,
        truncate_dim=truncate_dim,
    )
    return ir_metrics(run, qrels)


def sample_split(
    data: TrainingData, *, max_queries: int | None, max_documents: int | None, seed: int
) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    """(qrels, corpus) of a split, down to a seeded sample of judged queries
    (`TrainingData.sample_queries`) and of documents (the judged ones always kept)."""
    qrels = {q: docs for q, docs in data.qrels.items() if any(g > 0 for g in docs.values())}
    if max_queries and len(qrels) > max_queries:
        qrels = {q: qrels[q] for q in data.sample_queries(max_queries, seed)}
    corpus = data.corpus
    if max_documents and len(corpus) > max_documents:
        judged = {d for docs in qrels.values() for d in docs}
        rest = sorted(set(corpus) - judged)
        random.Random(seed).shuffle(rest)
        chosen = judged | set(rest[: max(0, max_documents - len(judged))])
        corpus = {d: t for d, t in corpus.items() if d in chosen}
    return qrels, corpus


def _load(model: Any, device: str) -> Any:
    from sentence_transformers import SentenceTransformer

    if isinstance(model, SentenceTransformer):
        return model
    from tamis.encoders import BiEncoder

    return BiEncoder(model, device=device, dtype="float32").model

