"""Ingest: validating documents, deciding what to (re)write, and `Indexing.index`, the resumable ingest.

Every point carries its document's content hash, so a re-run rewrites nothing that is unchanged
and a run killed half-way resumes where it stopped, without loss or duplicates. The manifest's
``ingest`` state says whether the last run completed.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tamis._errors import (
    ConfigError,
    DataError,
    DataFormatError,
    DimensionMismatchError,
    DocumentTooLargeError,
    DuplicateIdError,
    EmptyTextError,
)
from tamis.collection import _versions
from tamis.collection._manifest import CollectionBase, new_manifest, now
from tamis.collection._write import ProgressCallback, Todo, point_id, write
from tamis.data import Chunker, Document, DocumentSource
from tamis.encoders import Encoder, model_source
from tamis.stores import VectorStore

if TYPE_CHECKING:  # pragma: no cover
    from tamis.data import OnInvalid

__all__ = ["IndexReport", "Indexing"]

logger = logging.getLogger("tamis")


@dataclass(slots=True)
class IndexReport:
    """What an `Collection.index` run did.

    Attributes:
        documents: valid documents in the input.
        chunks: chunks they make.
        encoded: chunks encoded and written in this run.
        unchanged: documents already in the collection with the same content, left alone.
        stale_chunks_deleted: chunks of documents that shrank, removed.
        skipped: invalid input records skipped, by reason (only with ``on_invalid="skip"``).
        points: points in the collection afterwards.
        seconds: wall time.
    """

    documents: int = 0
    chunks: int = 0
    encoded: int = 0
    unchanged: int = 0
    stale_chunks_deleted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    points: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The report as a plain dict (JSON-ready)."""
        return asdict(self)


class Indexing(CollectionBase):
    """`Collection.index`: documents in, vectors out, tied to the collection's model."""

    _model_arg: Any
    _backend: str
    _link_alias: bool

    def index(
        self,
        documents: Iterable[Document],
        *,
        batch_size: int = 512,
        encode_batch_size: int = 64,
        on_invalid: OnInvalid = "raise",
        max_document_bytes: int = 1_000_000,
        chunk_overlap: int | None = None,
        progress: ProgressCallback | None = None,
        optimize: bool = True,
    ) -> IndexReport:
        """Encode and write ``documents``; idempotent, resumable.

        The input is validated in full before anything is written. Point ids are deterministic
        (document id + chunk number), so a re-run rewrites nothing that is unchanged, and a run
        killed half-way resumes where it stopped, without loss or duplicates. Encoding runs in a
        worker thread overlapped with the writes.

        Args:
            documents: `Document` objects, e.g. from `load_beir` / `load_jsonl` / `load_directory`.
            batch_size: chunks per write to the store.
            encode_batch_size: texts per forward pass of the model.
            on_invalid: ``"raise"`` at the first invalid document (nothing is written), or
                ``"skip"`` it and count it in the report.
            max_document_bytes: documents larger than this (UTF-8 bytes of text) are invalid.
            chunk_overlap: tokens shared by consecutive chunks of a long document (default: the
                collection's setting, or min(32, max tokens / 4) for a new one).
            progress: called as ``progress(chunks_done, chunks_total)`` after each acknowledged
                write (from the writer thread).
            optimize: build the HNSW index at the end (recommended).
        """
        if on_invalid not in ("raise", "skip"):
            raise ConfigError(f"on_invalid must be 'raise' or 'skip', got {on_invalid!r}")
        if batch_size < 1 or encode_batch_size < 1:
            raise ConfigError(f"batch sizes must be positive, got {batch_size}, {encode_batch_size}")
        t0 = time.perf_counter()
        docs, skipped = validate(documents, on_invalid=on_invalid, max_document_bytes=max_document_bytes)
        report = IndexReport(skipped=dict(skipped))
        if not docs:
            raise DataError(
                "no valid documents to index" + (f" (skipped: {dict(skipped)})" if skipped else "")
                + "; check the input path and field names"
            )
        enc = self.encoder
        max_tokens = max(8, enc.max_seq_length - 2)
        if chunk_overlap is None:
            prev = (self.manifest or {}).get("chunking") or {}
            chunk_overlap = int(prev.get("overlap", min(32, max_tokens // 4)))
        chunker = Chunker(enc.tokenizer, max_tokens=max_tokens, overlap=chunk_overlap)
        manifest = self._begin_ingest(enc, chunker)

        # chunk every document; `plan` keeps what needs writing, shortest first
        chunked = [(d, chunker.split(d.embed_text)) for d in docs]
        report.documents = len(docs)
        report.chunks = sum(len(c) for _, c in chunked)
        todo, stale = plan(self.store, self.physical, chunked, report)
        if any(len(c) > 1 for _, c, _ in todo) and not manifest.get("chunked"):
            manifest["chunked"] = True
            self._write_manifest()
        report.encoded = write(
            self.store, self.physical, enc, todo, batch_size=batch_size, encode_batch_size=encode_batch_size,
            progress=progress,
        )
        self._finish_ingest(manifest, report, stale, optimize=optimize)
        report.seconds = time.perf_counter() - t0
        return report

    def _finish_ingest(
        self, manifest: dict[str, Any], report: IndexReport, stale: list[str], *, optimize: bool
    ) -> None:
        """After the writes: delete stale chunks, optimise, flush, mark the ingest complete (also the Ray ingest's end)."""
        if stale:
            self.store.delete_points(self.physical, stale)
            report.stale_chunks_deleted = len(stale)
        if optimize:
            self.store.optimize(self.physical)
        self.store.flush(self.physical)
        report.points = self.store.count(self.physical)
        manifest["ingest"] = {
            "state": "complete", "finished": now(), "documents": self.store.count(self.physical, filter={"chunk": 0}),
            "points": report.points,
        }
        self._write_manifest()

    def _begin_ingest(self, enc: Encoder, chunker: Chunker) -> dict[str, Any]:
        """Mark an ingest in progress, creating the collection (and its alias) on the first one."""
        if self.manifest is None:
            manifest = new_manifest(enc, chunker, model_source(self._model_arg, self._backend))
            manifest["ingest"] = {"state": "in_progress", "started": now()}
            self.store.create_collection(self.physical, dim=enc.dim, distance="cosine", metadata={"tamis": manifest})
            self.manifest = manifest
            if self._link_alias:
                # a crash right here leaves `<name>__v1` without its alias: open_collection adopts it
                _versions.link(self.store, self.name, self.physical)
                self._link_alias = False
            return manifest
        dim = self.store.collection_dim(self.physical)
        if dim != enc.dim:
            raise DimensionMismatchError(
                f"collection {self.name!r} holds {dim}-d vectors; the encoder makes {enc.dim}-d ones"
            )
        self.manifest["ingest"] = {**self.manifest.get("ingest", {}), "state": "in_progress", "started": now()}
        self._write_manifest()
        return self.manifest


def validate(
    documents: Iterable[Document], *, on_invalid: OnInvalid, max_document_bytes: int
) -> tuple[list[Document], Counter[str]]:
    """(valid documents, skipped by reason); the first invalid one raises with ``on_invalid="raise"``."""
    skipped: Counter[str] = Counter()
    seen: set[str] = set()
    docs: list[Document] = []
    for i, doc in enumerate(documents):
        try:
            if not isinstance(doc, Document):
                raise DataFormatError(f"item {i} is a {type(doc).__name__}, not a tamis.Document")
            if not isinstance(doc.id, str) or not doc.id.strip():
                raise DataFormatError(f"item {i} has an empty or non-string id: {doc.id!r}")
            if not isinstance(doc.text, str) or not isinstance(doc.title, str):
                raise DataFormatError("text and title must be strings", doc_id=doc.id)
            if doc.id in seen:
                raise DuplicateIdError(
                    "this id appears twice in the input; ids must be unique (a re-run of the same "
                    "input is fine: it updates in place)", doc_id=doc.id,
                )
            if not doc.embed_text:
                raise EmptyTextError("text and title are empty or whitespace", doc_id=doc.id)
            size = len(doc.text.encode("utf-8", "surrogatepass"))
            if size > max_document_bytes:
                raise DocumentTooLargeError(
                    f"{size:,} bytes, over the limit of {max_document_bytes:,}; split it, or raise "
                    "max_document_bytes (--max-document-bytes)", doc_id=doc.id,
                )
            if not isinstance(doc.metadata, Mapping):
                raise DataFormatError(f"metadata must be a mapping, got {type(doc.metadata).__name__}", doc_id=doc.id)
            try:
                json.dumps(dict(doc.metadata))
            except (TypeError, ValueError) as exc:
                raise DataFormatError(f"metadata is not JSON-serialisable: {exc}", doc_id=doc.id) from exc
        except DataError as exc:
            if on_invalid == "raise":
                raise
            skipped[type(exc).__name__] += 1
            logger.warning("skipped %s", exc)
            continue
        seen.add(doc.id)
        docs.append(doc)
    if isinstance(documents, DocumentSource):
        skipped.update(documents.skipped)
    return docs, skipped


def plan(
    store: VectorStore, physical: str, chunked: list[tuple[Document, list[str]]], report: IndexReport
) -> tuple[list[Todo], list[str]]:
    """(documents to write, shortest first; point ids of stale chunks), counting the unchanged in ``report``."""
    # skip what is already there with the same content (idempotence, resume)
    return decide(_existing(store, physical, (d.id for d, _ in chunked)), chunked, report)


def decide(
    existing: Mapping[str, tuple[str, int]], chunked: list[tuple[Document, list[str]]], report: IndexReport
) -> tuple[list[Todo], list[str]]:
    """`plan` given what is stored, ``{doc id: (content hash, chunks)}`` (the Ray ingest looks it up per block)."""
    todo: list[Todo] = []
    stale: list[str] = []
    for doc, chunks in chunked:
        h = doc.content_hash()
        prev = existing.get(doc.id)
        if prev is not None and prev[0] == h and prev[1] == len(chunks):
            report.unchanged += 1
            continue
        if prev is not None and prev[1] > len(chunks):
            stale.extend(point_id(doc.id, i) for i in range(len(chunks), prev[1]))
        todo.append((doc, chunks, h))
    # longest first is not needed, but length-sorted order makes encoder batches evenly padded,
    # which is what makes encoding fast
    todo.sort(key=lambda dc: len(dc[0].embed_text))
    return todo, stale


def _existing(store: VectorStore, physical: str, doc_ids: Iterable[str]) -> dict[str, tuple[str, int]]:
    """{doc id: (content hash, number of chunks)} for documents already stored."""
    out: dict[str, tuple[str, int]] = {}
    ids = list(doc_ids)
    by_point = {point_id(d, 0): d for d in ids}
    keys = list(by_point)
    for start in range(0, len(keys), 1000):
        for rec in store.retrieve(physical, keys[start : start + 1000], with_payload=True):
            p = rec.payload
            doc_id = by_point.get(rec.id)
            if doc_id is not None and "hash" in p:
                out[doc_id] = (str(p["hash"]), int(p.get("n_chunks", 1)))
    # a multi-chunk document counts as present only if all its chunks are (a store whose
    # upserts are not atomic may have been killed half-way through one)
    rest = {point_id(d, i): d for d, (_, n) in out.items() for i in range(1, n)}
    found: set[str] = set()
    keys = list(rest)
    for start in range(0, len(keys), 1000):
        found.update(r.id for r in store.retrieve(physical, keys[start : start + 1000], with_payload=False))
    for pid in set(rest) - found:
        h, n = out[rest[pid]]
        out[rest[pid]] = ("incomplete", n)
    return out


def stored_documents(store: VectorStore, physical: str) -> list[Document]:
    """The documents of an unchunked collection, re-read from its payloads (for a re-index)."""
    return [
        Document(
            id=str(r.payload["doc_id"]), text=str(r.payload.get("text", "")),
            title=str(r.payload.get("title", "")), metadata=dict(r.payload.get("metadata") or {}),
        )
        for r in store.scroll(physical, with_payload=True)
    ]
