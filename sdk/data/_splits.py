"""BEIR splits, checked for use: `TrainingData` (a corpus, its queries and one qrels split) and
`load_training_data`. Training learns from them; evaluation scores models on them."""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

from tamis._errors import DataError, DataFormatError
from tamis.data._loaders import load_beir, load_beir_queries, load_qrels

__all__ = ["TrainingData", "load_training_data"]


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
