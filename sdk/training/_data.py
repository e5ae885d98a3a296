"""The data side of training: BEIR splits checked for use, mined candidates, the false-negative
guard, random negatives from the corpus and BM25 silver pairs.

Nothing here trains or scores: `tamis.training._teacher` scores pairs, `tamis.training._recipes`
and `tamis.training._reranker` turn these into datasets for sentence-transformers' trainers.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tamis._errors import DataError, DataFormatError
from tamis.data import load_beir, load_beir_queries, load_qrels

__all__ = [
    "Candidates",
    "TrainingData",
    "dev_split",
    "drop_copies_of_positives",
    "drop_false_negatives",
    "load_training_data",
    "mine_candidates",
    "silver_pairs",
    "silver_query_pool",
    "top_up_negatives",
    "train_split",
]

@dataclass
class TrainingData:
    """One split of a BEIR folder, checked: every judged id exists, there is something to learn.

    Attributes:
        root: the BEIR folder.
        split: the qrels split (``train``, ``dev``, ``test``).
        corpus: document id -> the text that gets embedded (``title + " " + text``).
        queries: query id -> text (every query of the folder, judged or not).
        qrels: query id -> {document id: grade} of this split (all grades, 0 included).
    """

    root: Path
    split: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def positives(self) -> dict[str, list[str]]:
        """query id -> its relevant (grade > 0) document ids, for the judged queries that have any."""
        out = {q: [d for d, g in docs.items() if g > 0] for q, docs in self.qrels.items()}
        return {q: ds for q, ds in out.items() if ds}

    def sample_queries(self, n: int, seed: int) -> list[str]:
        """A seeded sample of ``n`` of the queries with a relevant document, in the sampled order.

        The query ids are sorted, then shuffled by ``random.Random(seed)``: the same seed gives the
        same sample whatever the order of ``qrels``.
        """
        keep = sorted(self.positives())
        random.Random(seed).shuffle(keep)
        return keep[:n]

    def fingerprint(self) -> str:
        """A short hash of the split's content (queries, positives, corpus size) for cache keys."""
        h = hashlib.sha256()
        for q, ds in sorted(self.positives().items()):
            h.update(f"{q}\x1f{self.queries[q]}\x1f{','.join(sorted(ds))}\x1e".encode())
        h.update(str(len(self.corpus)).encode())
        return h.hexdigest()[:16]


def load_training_data(
    path: str | os.PathLike[str],
    split: str = "train",
    *,
    max_queries: int | None = None,
    seed: int = 0,
    corpus: dict[str, str] | None = None,
    queries: dict[str, str] | None = None,
) -> TrainingData:
    """Load and check split ``split`` of the BEIR folder ``path``.

    Args:
        path: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).
        split: which qrels file.
        max_queries: keep a seeded sample of this many judged queries.
        seed: the sample's seed.
        corpus, queries: already loaded copies (to load a second split cheaply).

    Raises:
        DataFormatError: a missing file or split, an unreadable line.
        DataError: the split has no relevant pair; a judgement names a query or document that
            is not in queries.jsonl / corpus.jsonl.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataFormatError("not a BEIR folder (expected corpus.jsonl, queries.jsonl, qrels/)", source=str(root))
    if corpus is None:
        corpus = {d.id: d.embed_text for d in load_beir(root)}
    if queries is None:
        queries = load_beir_queries(root / "queries.jsonl")
    qrels = load_qrels(root, split)
    qfile = str(root / "qrels" / f"{split}.tsv")
    bad_q = sorted({q for q in qrels if q not in queries})
    bad_d = sorted({d for docs in qrels.values() for d in docs if d not in corpus})
    if bad_q or bad_d:
        parts = []
        if bad_q:
            parts.append(f"{len(bad_q)} unknown query id(s), e.g. {bad_q[:3]}")
        if bad_d:
            parts.append(f"{len(bad_d)} unknown document id(s), e.g. {bad_d[:3]}")
        raise DataError(
            f"qrels name ids that are not in queries.jsonl / corpus.jsonl: {'; '.join(parts)}; "
            "fix the qrels or add the missing records", source=qfile,
        )
    data = TrainingData(root=root, split=split, corpus=corpus, queries=queries, qrels=qrels)
    if not data.positives():
        raise DataError(
            f"split {split!r} has no relevant (grade > 0) query-document pair to learn from; "
            "add judgements to the qrels file or pick another split", source=qfile,
        )
    if max_queries is not None and len(data.qrels) > max_queries:
        data.qrels = {q: data.qrels[q] for q in sorted(data.sample_queries(max_queries, seed))}
    return data


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
