"""The data side of training: BEIR splits checked for use, mined candidates, the false-negative
guard, a cross-encoder teacher whose scores are cached on disk, and BM25 silver pairs.

Nothing here trains; `tamis.training._train` turns these into datasets for sentence-transformers' trainers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tamis._errors import DataError, DataFormatError, ModelError
from tamis.data import load_beir, load_beir_queries, load_qrels

__all__ = [
    "Candidates",
    "TeacherScorer",
    "TrainingData",
    "drop_copies_of_positives",
    "drop_false_negatives",
    "is_cross_encoder_folder",
    "load_training_data",
    "mine_candidates",
    "silver_pairs",
]

logger = logging.getLogger("tamis")


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
        keep = sorted(data.positives())
        random.Random(seed).shuffle(keep)
        data.qrels = {q: data.qrels[q] for q in sorted(keep[:max_queries])}
    return data


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
        >>> drop_copies_of_positives([("a", .9), ("b", .8), ("p", .7)], ["p"], {"a": "mourn", "b": "grieve", "p": "mourn"})
        [('b', 0.8)]
    """
    pos = set(positives)
    texts = {corpus[p] for p in pos if p in corpus}
    return [(d, s) for d, s in candidates if d not in pos and corpus.get(d) not in texts]


# -- the teacher ------------------------------------------------------------------------------------
def is_cross_encoder_folder(path: Path) -> bool:
    """True if ``path`` holds a cross-encoder: a sentence-transformers CrossEncoder, or a Hugging
    Face model with a sequence-classification head and one output."""
    st_cfg = path / "config_sentence_transformers.json"
    if st_cfg.is_file():
        try:
            kind = json.loads(st_cfg.read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError):
            kind = None
        if kind is not None:
            return kind == "CrossEncoder"
    if (path / "modules.json").is_file() and any(
        p.name.endswith("Pooling") for p in path.iterdir() if p.is_dir()
    ):
        return False
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        conf = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    archs = conf.get("architectures") or []
    n_labels = len(conf.get("id2label") or {"0": ""})
    return any(str(a).endswith("ForSequenceClassification") for a in archs) and n_labels == 1


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


class TeacherScorer:
    """A cross-encoder teacher whose scores (logits) are cached on disk, so a rerun or a resumed
    run never scores a (query, document) pair twice.

    The cache is JSON lines, one line per scored chunk, appended and flushed as scoring goes:
    ``{"k": [pair keys], "s": [logits]}``, in ``<cache_dir>/teacher-scores/<teacher fingerprint>.jsonl``.
    A line cut short by a crash is ignored on the next load.

    Attributes:
        computed: pairs scored by the model in this process.
        reused: pairs answered from the cache.
    """

    chunk = 512

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        cache_dir: str | os.PathLike[str],
        device: str = "auto",
        batch_size: int = 128,
        max_seq_length: int | None = None,
        progress: bool = False,
    ) -> None:
        from tamis.encoders import resolve_device, resolve_model

        source = resolve_model(model)
        path = Path(source)
        if path.is_dir() and not is_cross_encoder_folder(path):
            raise ModelError(
                f"teacher {os.fspath(model)!r} is not a cross-encoder (no sequence-classification head with "
                "one output; it looks like a bi-encoder or another kind of model); pass a cross-encoder "
                "folder, e.g. one made by `tamis train-reranker DATA --out DIR`"
            )
        self.name = os.fspath(model)
        self.source = source
        self._device = resolve_device(device)
        self._batch_size = batch_size
        self._max_len = max_seq_length
        self._progress = progress
        self._model: Any = None
        self.fingerprint = _folder_fingerprint(path) if path.is_dir() else hashlib.sha256(source.encode()).hexdigest()[:32]
        self.cache_file = Path(cache_dir) / "teacher-scores" / f"{self.fingerprint}.jsonl"
        self._scores: dict[str, float] = {}
        self._load_cache()
        self.computed = 0
        self.reused = 0

    @property
    def model(self) -> Any:
        if self._model is None:
            from sentence_transformers import CrossEncoder

            try:
                self._model = CrossEncoder(self.source, device=self._device, max_length=self._max_len)
            except (OSError, ValueError) as exc:
                raise ModelError(f"could not load teacher cross-encoder {self.name!r}: {exc}") from exc
            if getattr(self._model, "num_labels", 1) != 1:
                raise ModelError(
                    f"teacher {self.name!r} has {self._model.num_labels} outputs; a teacher must give one "
                    "relevance score per (query, document) pair"
                )
        return self._model

    def _load_cache(self) -> None:
        if not self.cache_file.is_file():
            return
        with open(self.cache_file, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                    keys, scores = rec["k"], rec["s"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash
                if isinstance(keys, list) and isinstance(scores, list) and len(keys) == len(scores):
                    self._scores.update(zip(keys, scores, strict=True))

    @staticmethod
    def key(query: str, document: str) -> str:
        return hashlib.blake2b(f"{query}\x1f{document}".encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()

    def logits(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Teacher logits of (query, document) pairs, from the cache or computed (and cached)."""
        keys = [self.key(q, d) for q, d in pairs]
        todo: dict[str, tuple[str, str]] = {}
        for k, p in zip(keys, pairs, strict=True):
            if k not in self._scores:
                todo.setdefault(k, p)
        self.reused += len(pairs) - sum(1 for k in keys if k in todo)
        if todo:
            self._compute(todo)
        return np.array([self._scores[k] for k in keys], dtype=np.float64)

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """sigmoid(logits): the teacher's probability that each document is relevant."""
        return _sigmoid(self.logits(pairs))

    def _compute(self, todo: dict[str, tuple[str, str]]) -> None:
        import torch

        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        items = list(todo.items())
        bar = None
        if self._progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(items), desc="teacher scoring", unit="pair")
        with open(self.cache_file, "a", encoding="utf-8") as fh:
            for start in range(0, len(items), self.chunk):
                part = items[start : start + self.chunk]
                out = self.model.predict(
                    [p for _, p in part], batch_size=self._batch_size, activation_fn=torch.nn.Identity(),
                    show_progress_bar=False, convert_to_numpy=True,
                )
                scores = [float(x) for x in np.asarray(out, dtype=np.float64).reshape(-1)]
                if any(not math.isfinite(s) for s in scores):
                    raise ModelError(f"teacher {self.name!r} gave a non-finite score; check the model")
                fh.write(json.dumps({"k": [k for k, _ in part], "s": scores}) + "\n")
                fh.flush()
                self._scores.update((k, s) for (k, _), s in zip(part, scores, strict=True))
                self.computed += len(part)
                if bar is not None:
                    bar.update(len(part))
        if bar is not None:
            bar.close()


def _folder_fingerprint(path: Path) -> str:
    """sha256 over the names and bytes of a model folder's weight and config files."""
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file() and f.suffix in (".safetensors", ".json", ".bin", ".txt", ".model") and f.name != "README.md":
            h.update(str(f.relative_to(path)).encode())
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:32]


# -- Augmented SBERT ---------------------------------------------------------------------------------
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
