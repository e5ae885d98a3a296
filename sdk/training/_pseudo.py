"""Pseudo-queries for label-free domain adaptation: queries made from a corpus alone, each with the
document it came from (the pseudo-positive), or real queries without judgements.

Constructions (``TrainConfig.pseudo_queries``):

* ``first-sentence`` — a document's first sentence against the rest of it. A document's opening
  sentence usually says what it is about (a FAQ answer restates its question, an article its
  topic): the closest thing to a query it holds. The rest, not the whole document, is the
  positive, so the pair cannot be matched by copying words (the Inverse Cloze Task's lesson).
* ``title`` — the title against the text (documents that have both).
* ``body`` — the text against the title, for corpora whose queries are sentences and whose
  documents are mostly names (a reverse dictionary, an entity list): the pair has the task's shape.
* ``auto`` — ``title`` where a document has both a title and a text, else ``first-sentence``.
* ``doc2query`` — a user's sequence-to-sequence query generator (``doc2query_model``, e.g. a
  doc2query T5) writes ``queries_per_document`` queries per document (GPL's way); the positive
  is the whole document.
* ``queries`` — the folder's queries.jsonl, without judgements (a query log): the teacher's best
  candidate stands in for the positive. Queries judged in dev or test qrels are left out.

Documents that give no pair (a one-sentence text, no title) are skipped.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tamis._errors import ConfigError, DataError, ModelError

__all__ = ["PseudoQueries", "PseudoSource", "make_pseudo_queries", "split_sentences"]

PseudoSource = Literal["auto", "first-sentence", "title", "body", "doc2query", "queries"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9`])")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: split after ``.``, ``!`` or ``?`` followed by space and a capital,
    digit, quote or bracket.

    Example:
        >>> split_sentences("Python is a language. It has classes! Why? e.g. this")
        ['Python is a language.', 'It has classes!', 'Why? e.g. this']
    """
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


@dataclass
class PseudoQueries:
    """Queries for a label-free run.

    Attributes:
        queries: pseudo-query id -> text.
        source: pseudo-query id -> the document it was made from (absent for real queries).
        positive: pseudo-query id -> the positive's text (the rest of its document).
        construction: how they were made (a `PseudoSource`).
    """

    queries: dict[str, str] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    positive: dict[str, str] = field(default_factory=dict)
    construction: str = "auto"

    def take(self, ids: list[str]) -> PseudoQueries:
        """These pseudo-queries restricted to ``ids``."""
        keep = set(ids)
        return PseudoQueries(
            {q: t for q, t in self.queries.items() if q in keep}, {q: d for q, d in self.source.items() if q in keep},
            {q: t for q, t in self.positive.items() if q in keep}, self.construction,
        )


def _from_documents(root: Path, how: str) -> PseudoQueries:
    from tamis.data import load_beir

    out = PseudoQueries(construction=how)
    for doc in load_beir(root):
        title, text = doc.title.strip(), doc.text.strip()
        mode = how if how != "auto" else ("title" if title and text else "first-sentence")
        query = positive = ""
        if mode == "title" and title and text:
            query, positive = title, text
        elif mode == "body" and title and text:
            query, positive = text, title
        elif mode == "first-sentence":
            sentences = split_sentences(text)
            if len(sentences) >= 2:
                query, positive = sentences[0], " ".join(sentences[1:])
                if title:
                    positive = f"{title} {positive}"
        if query and positive:
            qid = f"pseudo-{doc.id}"
            out.queries[qid], out.source[qid], out.positive[qid] = query, doc.id, positive
    return out


def _from_queries(root: Path) -> PseudoQueries:
    from tamis.data import load_beir_queries

    held_out: set[str] = set()
    for f in (root / "qrels").glob("*.tsv"):
        if f.stem != "train":
            with open(f, encoding="utf-8") as fh:
                held_out.update(line.split("\t", 1)[0] for line in fh)
    qfile = root / "queries.jsonl"
    if not qfile.is_file():
        raise DataError("pseudo_queries='queries' needs queries.jsonl (unjudged queries)", source=str(root))
    queries = {q: t for q, t in load_beir_queries(qfile).items() if q not in held_out and t.strip()}
    return PseudoQueries(queries=queries, construction="queries")


def _doc2query(root: Path, model: str, per_doc: int, max_docs: int | None, seed: int, device: str,
               batch_size: int) -> PseudoQueries:
    """Queries written by a sequence-to-sequence generator (top-k sampling, seeded)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from tamis.data import load_beir
    from tamis.encoders import resolve_model

    source = resolve_model(model)
    try:
        tok = AutoTokenizer.from_pretrained(source)
        gen = AutoModelForSeq2SeqLM.from_pretrained(source).to(device).eval()
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load the doc2query model {model!r} as a sequence-to-sequence generator: {exc}") from exc
    docs = [(d.id, d.embed_text) for d in load_beir(root) if d.embed_text]
    if max_docs is not None and len(docs) > max_docs:
        docs = random.Random(seed).sample(docs, max_docs)
    out = PseudoQueries(construction="doc2query")
    torch.manual_seed(seed)
    for start in range(0, len(docs), batch_size):
        part = docs[start : start + batch_size]
        enc = tok([t for _, t in part], return_tensors="pt", padding=True, truncation=True, max_length=384,
                  return_token_type_ids=False).to(device)
        with torch.inference_mode():
            ids = gen.generate(**enc, max_new_tokens=32, do_sample=True, top_k=10, num_return_sequences=per_doc)
        texts = tok.batch_decode(ids, skip_special_tokens=True)
        for i, (did, text) in enumerate(part):
            for j in range(per_doc):
                q = texts[i * per_doc + j].strip()
                if q:
                    qid = f"pseudo-{did}-{j}"
                    out.queries[qid], out.source[qid], out.positive[qid] = q, did, text
    return out


def make_pseudo_queries(root: str | Path, cfg: Any, device: str = "cpu") -> PseudoQueries:
    """The pseudo-queries of ``cfg.pseudo_queries`` for the BEIR folder ``root`` (corpus.jsonl;
    queries.jsonl for ``queries``).

    Raises:
        ConfigError: ``doc2query`` without ``doc2query_model``.
        DataError: the construction gives no query from this corpus (the message says which to try).
    """
    root = Path(root)
    how = cfg.pseudo_queries
    if how == "queries":
        pq = _from_queries(root)
    elif how == "doc2query":
        if not cfg.doc2query_model:
            raise ConfigError("pseudo_queries='doc2query' needs doc2query_model= (a seq2seq query generator)")
        n = cfg.max_train_queries
        per = cfg.queries_per_document
        pq = _doc2query(root, cfg.doc2query_model, per, None if n is None else -(-(n + cfg.pseudo_dev_queries) // per),
                        cfg.seed, device, 16)
    else:
        pq = _from_documents(root, how)
    if not pq.queries:
        raise DataError(
            f"pseudo_queries={how!r} made no query from this corpus (documents need a title and a text for 'title' "
            "and 'body', two sentences or more for 'first-sentence'); try another construction, 'doc2query' with "
            "a generator, or 'queries' with a queries.jsonl", source=str(root),
        )
    return pq


def split_pseudo(pq: PseudoQueries, *, train: int | None, dev: int, seed: int) -> tuple[PseudoQueries, PseudoQueries]:
    """(train, dev): a seeded split; dev takes up to ``dev`` queries that have a positive, train up to ``train`` of the rest."""
    ids = sorted(pq.queries)
    random.Random(seed).shuffle(ids)
    with_pos = [q for q in ids if q in pq.positive]
    dev_ids = with_pos[: min(dev, len(with_pos) // 5)] if dev else []
    taken = set(dev_ids)
    train_ids = [q for q in ids if q not in taken]
    if train is not None:
        train_ids = train_ids[:train]
    return pq.take(train_ids), pq.take(dev_ids)
