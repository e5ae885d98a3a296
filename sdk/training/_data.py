"""The data side of training, on a checked BEIR split (`tamis.data.TrainingData`): the train / dev
splits of a run, mined candidates, the false-negative guard, random negatives from the corpus and
BM25 silver pairs.

Nothing here trains or scores: `tamis.training._teacher` scores pairs, `tamis.training._recipes`
and `tamis.training._reranker` turn these into datasets for sentence-transformers' trainers.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tamis._errors import DataError
from tamis.data import TrainingData, load_training_data

__all__ = [
    "Candidates",
    "dev_split",
    "drop_copies_of_positives",
    "drop_false_negatives",
    "mine_candidates",
    "silver_pairs",
    "silver_query_pool",
    "top_up_negatives",
    "train_split",
]

def train_split(data: str | os.PathLike[str] | TrainingData, *, max_queries: int | None, seed: int) -> TrainingData:
    """``data`` itself when already loaded, else the train split of the BEIR folder ``data``
    (a seeded sample of ``max_queries`` judged queries when set)."""
    if isinstance(data, TrainingData):
        return data
    return load_training_data(data, "train", max_queries=max_queries, seed=seed)


def dev_split(data: TrainingData) -> TrainingData | None:
    """The dev split of ``data``'s folder (sharing its corpus and queries), or None when it has none.

    Raises:
        DataError, DataFormatError: the dev split exists but is broken (reported, not ignored).
    """
    try:
        return load_training_data(data.root, "dev", corpus=data.corpus, queries=data.queries)
    except DataError as exc:
        # a missing dev split is fine (no dev metrics); a broken one is reported, not ignored
        if "no qrels for split" in str(exc):
            return None
        raise


# -- candidates ---------------------------------------------------------------------------------
#: query id -> [(document id, bi-encoder score)] best first, the query's positives left out
Candidates = dict[str, list[tuple[str, float]]]


def mine_candidates(
    model: Any,
    data: TrainingData,
    *,
    depth: int,
    batch_size: int = 128,
    cache_folder: str | os.PathLike[str] | None = None,
) -> Candidates:
    """The ``depth`` nearest non-positive documents of every judged query, by sentence-transformers'
    `mine_hard_negatives` (exact search over the whole corpus with ``model``).

    ``cache_folder`` keeps the corpus and query embeddings (numpy ``.npy``, no pickle) so a rerun or
    another recipe with the same model does not encode the corpus again; it must be specific to
    the model's weights (the caller puts the model fingerprint in it).
    """
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    positives = data.positives()
    rows = {"query": [], "positive": []}
    for q, docs in positives.items():
        for d in docs:
            rows["query"].append(data.queries[q])
            rows["positive"].append(data.corpus[d])
    text_to_doc: dict[str, str] = {}
    for d, t in data.corpus.items():
        text_to_doc.setdefault(t, d)
    text_to_queries: dict[str, list[str]] = {}
    for q in positives:
        text_to_queries.setdefault(data.queries[q], []).append(q)
    n_unique = len(set(data.corpus.values()))
    depth = min(depth, max(1, n_unique - max(len(v) for v in positives.values())))
    mined = mine_hard_negatives(
        Dataset.from_dict(rows), model, corpus=list(data.corpus.values()), range_min=0, range_max=depth,
        num_negatives=depth, sampling_strategy="top", output_format="n-tuple", output_scores=True,
        batch_size=batch_size, verbose=False, cache_folder=None if cache_folder is None else os.fspath(cache_folder),
    )
    out: Candidates = {}
    cols = mined.column_names
    neg_cols = [c for c in cols if c.startswith("negative")]
    for row in mined:
        for q in text_to_queries.get(row[cols[0]], []):
            if q in out:
                continue
            pos = set(positives[q])
            scores = row["scores"]
            cands = []
            for j, c in enumerate(neg_cols):
                d = text_to_doc.get(row[c])
                if d is not None and d not in pos:
                    cands.append((d, float(scores[j + 1])))
            out[q] = cands
    return out


def drop_false_negatives(
    candidates: Sequence[tuple[str, float]],
    *,
    skip_top: int = 0,
    teacher_probability: Mapping[str, float] | None = None,
    positive_probability: float | None = None,
    margin: float = 0.1,
) -> list[tuple[str, float]]:
    """The false-negative guard: candidate negatives that are probably unlabelled positives go.

    With a teacher (``teacher_probability`` of each candidate and ``positive_probability`` of the
    query's positive), a candidate whose probability is above ``positive_probability - margin`` is
    dropped. Without one, the top ``skip_top`` ranks are skipped.

    Example:
        >>> from tamis.training._data import drop_false_negatives
        >>> drop_false_negatives([("a", .9), ("b", .5)], teacher_probability={"a": .97, "b": .1},
        ...                      positive_probability=.98, margin=.1)
        [('b', 0.5)]
    """
    if teacher_probability is None or positive_probability is None:
        return list(candidates[skip_top:])
    limit = positive_probability - margin
    return [(d, s) for d, s in candidates if teacher_probability[d] <= limit]


def drop_copies_of_positives(
    candidates: Sequence[tuple[str, float]], positives: Iterable[str], corpus: Mapping[str, str]
) -> list[tuple[str, float]]:
    """Candidate negatives whose text is not identical to a positive's (nor a positive itself).

    A document with exactly the text of a positive is exactly as relevant: as a negative it would
    ask the model to score the same pair both high and low (WordNet, for one, has distinct senses
    with the same lemmas and no examples).

    Example:
        >>> from tamis.training._data import drop_copies_of_positives
        >>> drop_copies_of_positives([("a", .9), ("b", .8), ("p", .7)], ["p"], {"a": "mourn", "b": "grieve", "p": "mourn"})
        [('b', 0.8)]
    """
    pos = set(positives)
    texts = {corpus[p] for p in pos if p in corpus}
    return [(d, s) for d, s in candidates if d not in pos and corpus.get(d) not in texts]


def top_up_negatives(
    negatives: Sequence[str],
    n: int,
    exclude: set[str],
    doc_ids: Sequence[str],
    rng: random.Random,
    *,
    required: bool = True,
) -> list[str]:
    """The first ``n`` of ``negatives`` topped up to ``n`` with distinct documents of ``doc_ids``
    drawn by ``rng`` (none in ``exclude``, the query's positives), so every row has the same columns.

    Drawing stops when the corpus has no document left to give (or after ``100 * n`` draws).

    Raises:
        DataError: fewer than ``n`` could be found and ``required`` is set (else the shorter list
            is returned).
    """
    negs = list(negatives[:n])
    tries = 0
    while len(negs) < n and tries < 100 * n and len(doc_ids) > len(exclude) + len(negs):
        tries += 1
        d = rng.choice(doc_ids)
        if d not in exclude and d not in negs:
            negs.append(d)
    if required and len(negs) < n:
        raise DataError(f"the corpus is too small to find {n} negatives per query; lower num_negatives")
    return negs


# -- Augmented SBERT ---------------------------------------------------------------------------------
def silver_query_pool(data: TrainingData) -> list[str]:
    """Queries that may get silver pairs: any query not judged in another split (no test leakage)."""
    held_out: set[str] = set()
    for f in (data.root / "qrels").glob("*.tsv"):
        if f.stem != data.split:
            with open(f, encoding="utf-8") as fh:
                held_out.update(line.split("\t", 1)[0] for line in fh)
    return sorted(q for q in data.queries if q not in held_out)


def silver_pairs(
    data: TrainingData,
    query_ids: Sequence[str],
    *,
    per_query: int,
) -> list[tuple[str, str]]:
    """(query id, document id) pairs sampled with BM25 (bm25s): each query's top ``per_query``
    documents. They are unlabelled: the teacher labels them."""
    try:
        import bm25s
    except ImportError as exc:  # pragma: no cover - part of the train extra
        raise ImportError('Augmented SBERT needs bm25s: pip install "tamis[train]"') from exc
    doc_ids = list(data.corpus)
    corpus_tokens = bm25s.tokenize([data.corpus[d] for d in doc_ids], stopwords="en", show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(corpus_tokens, show_progress=False)
    k = min(per_query, len(doc_ids))
    q_tokens = bm25s.tokenize([data.queries[q] for q in query_ids], stopwords="en", show_progress=False)
    results, _scores = retriever.retrieve(q_tokens, k=k, show_progress=False, n_threads=1)
    pairs = []
    for q, row in zip(query_ids, results, strict=True):
        for idx in row:
            pairs.append((q, doc_ids[int(idx)]))
    return pairs
