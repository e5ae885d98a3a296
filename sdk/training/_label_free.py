"""Label-free domain adaptation (GPL-style): pseudo-queries from the corpus, candidates mined with
the student, labelled by the teacher, guarded against false negatives — the data side of
``train_bi_encoder(..., labels=False)``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tamis._errors import ConfigError, DataFormatError
from tamis.data import TrainingData
from tamis.training._config import TrainConfig
from tamis.training._pseudo import PseudoQueries, make_pseudo_queries, split_pseudo
from tamis.training._recipes import ListItem, guarded_lists, list_dataset
from tamis.training._trainer import eval_mode

__all__ = ["LabelFree", "PseudoSplit", "label_free_data", "label_free_examples"]


@dataclass
class PseudoSplit(TrainingData):
    """A `TrainingData` of pseudo-queries (split ``"pseudo"`` or ``"pseudo-dev"``): qrels name each
    query's source document; the fingerprint covers the queries' and positives' texts."""

    positive_text: dict[str, str] | None = None

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for q in sorted(self.queries):
            h.update(f"{q}\x1f{self.queries[q]}\x1f{(self.positive_text or {}).get(q, '')}\x1e".encode())
        h.update(str(len(self.corpus)).encode())
        return h.hexdigest()[:16]


@dataclass
class LabelFree:
    """What a label-free run trains and checks on.

    Attributes:
        train: the training pseudo-queries (as a `PseudoSplit`).
        pseudo: the same, with their positives' texts.
        pseudo_dev: held-out pseudo-queries (their source documents' texts replaced by the
            positives' in its corpus), or None when there are too few.
        dev: the folder's real dev split when it has one, else None.
    """

    train: PseudoSplit
    pseudo: PseudoQueries
    pseudo_dev: PseudoSplit | None
    dev: TrainingData | None


def label_free_data(data: Any, cfg: TrainConfig, device: str) -> LabelFree:
    """Pseudo-queries of the BEIR folder ``data`` (a path or a `TrainingData`'s root), split into
    train and held-out dev; the folder's dev qrels too, if any (never its train qrels)."""
    from tamis.data import load_beir, load_beir_queries, load_training_data

    root = Path(data.root if isinstance(data, TrainingData) else data).expanduser()
    if not (root / "corpus.jsonl").is_file():
        raise DataFormatError("label-free training needs a BEIR folder with corpus.jsonl", source=str(root))
    corpus = {d.id: d.embed_text for d in load_beir(root)}
    pq = make_pseudo_queries(root, cfg, device)
    train, held = split_pseudo(pq, train=cfg.max_train_queries, dev=cfg.pseudo_dev_queries, seed=cfg.seed)
    train_split = PseudoSplit(
        root=root, split="pseudo", corpus=corpus, queries=dict(train.queries),
        qrels={q: {d: 1} for q, d in train.source.items()}, positive_text=dict(train.positive),
    )
    pseudo_dev = None
    if held.queries:
        dev_corpus = dict(corpus)
        dev_corpus.update({held.source[q]: held.positive[q] for q in held.queries})
        pseudo_dev = PseudoSplit(
            root=root, split="pseudo-dev", corpus=dev_corpus, queries=dict(held.queries),
            qrels={q: {held.source[q]: 1} for q in held.queries}, positive_text=dict(held.positive),
        )
    dev = None
    if cfg.dev_queries != 0 and (root / "qrels" / "dev.tsv").is_file() and (root / "queries.jsonl").is_file():
        dev = load_training_data(root, "dev", corpus=corpus, queries=load_beir_queries(root / "queries.jsonl"))
    return LabelFree(train=train_split, pseudo=train, pseudo_dev=pseudo_dev, dev=dev)


def label_free_examples(model: Any, lf: LabelFree, teacher: Any, cfg: TrainConfig) -> tuple[Any, int]:
    """The candidate lists of the training pseudo-queries: the student's nearest documents (not the
    source document, nor a copy of the positive's or the query's text), guarded by the teacher,
    topped up at random, each with the teacher's scores."""
    from tamis.evaluation import exact_search

    td, pq = lf.train, lf.pseudo
    with eval_mode(model):
        run = exact_search(model, td.corpus, pq.queries, k=cfg.mining_depth + 2, batch_size=cfg.encode_batch_size,
                           progress=cfg.progress)
    if cfg.teacher_mining:
        run = _interleave(_teacher_search(teacher, td.corpus, pq.queries, cfg.mining_depth + 2), run)
    rng = random.Random(cfg.seed)
    doc_ids = list(td.corpus)
    items: list[ListItem] = []
    for q, text in pq.queries.items():
        src, pos = pq.source.get(q), pq.positive.get(q)
        banned = {text, pos}
        hits = sorted(run.get(q, {}).items(), key=lambda kv: -kv[1])
        cands = [td.corpus[d] for d, _ in hits if d != src and td.corpus[d] not in banned][: cfg.mining_depth]
        extra = []
        while len(extra) < cfg.candidates - 1 and len(doc_ids) > cfg.candidates:
            d = rng.choice(doc_ids)
            if d != src and td.corpus[d] not in banned and td.corpus[d] not in extra:
                extra.append(td.corpus[d])
        items.append((text, pos, cands, extra))
    return list_dataset(guarded_lists(items, teacher, cfg), teacher, cfg)


def _teacher_search(teacher: Any, corpus: dict[str, str], queries: dict[str, str], k: int) -> dict[str, dict[str, float]]:
    """The teacher's own ``k`` nearest documents of each query (a bi-encoder teacher: its embeddings
    stay in its memo, so scoring these pairs afterwards encodes nothing again)."""
    import numpy as np

    from tamis._math import exact_top_k

    if not callable(getattr(teacher, "embed", None)):
        raise ConfigError(
            f"teacher_mining needs a bi-encoder teacher (one that can search the corpus); this teacher is a "
            f"{getattr(teacher, 'kind', type(teacher).__name__)}: drop teacher_mining, or pass bi-encoder:MODEL"
        )
    doc_ids, q_ids = list(corpus), list(queries)
    d = np.stack(teacher.embed([corpus[i] for i in doc_ids], "document"))
    q = np.stack(teacher.embed([queries[i] for i in q_ids], "query"))
    return {q_ids[r]: {doc_ids[j]: float(s) for j, s in zip(o.tolist(), sc.tolist(), strict=True)}
            for r, o, sc in exact_top_k(q, d, k)}


def _interleave(first: dict[str, dict[str, float]], second: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """One ranking per query taking turns between two (``first``'s best, ``second``'s best, …; each
    document once), as {document: decreasing pseudo-score}."""
    out: dict[str, dict[str, float]] = {}
    for q in dict.fromkeys([*first, *second]):
        a = sorted(first.get(q, {}).items(), key=lambda kv: -kv[1])
        b = sorted(second.get(q, {}).items(), key=lambda kv: -kv[1])
        merged = [d for pair in zip(a, b, strict=False) for d, _ in pair]
        longer = a if len(a) > len(b) else b
        merged += [d for d, _ in longer[min(len(a), len(b)):]]
        order = list(dict.fromkeys(merged))
        out[q] = {d: float(len(order) - i) for i, d in enumerate(order)}
    return out
