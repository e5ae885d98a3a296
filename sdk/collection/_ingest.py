"""Ingest: validating documents, deciding what to (re)write, and `Indexing.index`, the resumable ingest.

Every point carries its document's content hash, so a re-run rewrites nothing that is unchanged
and a run killed half-way resumes where it stopped, without loss or duplicates. The manifest's
``ingest`` state says whether the last run completed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tamis._errors import (
    ConfigError,
    DataError,
    DimensionMismatchError,
)
from tamis.collection import _versions
from tamis.collection._configure import start_manifest, upgrade_payloads
from tamis.collection._hybrid import sparse_manifest
from tamis.collection._manifest import CollectionBase, new_manifest, now
from tamis.collection._validate import validate
from tamis.collection._write import ProgressCallback, Todo, point_id, write
from tamis.data import Chunker, Document
from tamis.encoders import Encoder, model_source
from tamis.stores import VectorStore, read_payload

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
    #: a new collection gets BM25 sparse vectors too (``open_collection(..., hybrid=True)``)
    _hybrid_new: bool = False
    hybrid: bool
    bm25: Any

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
        require_documents(docs, skipped)
        enc = self.encoder
        chunker = self._chunker(enc, chunk_overlap)
        before = None if self.manifest is None else dict(self.manifest.get("ingest") or {})
        manifest = self._begin_ingest(enc, chunker)

        written = 0

        def counted(done: int, total: int) -> None:
            nonlocal written
            written = done
            if progress is not None:
                progress(done, total)

        try:
            # chunk every document; `plan` keeps what needs writing, shortest first
            chunked = [(d, chunker.split(d.embed_text)) for d in docs]
            report.documents = len(docs)
            report.chunks = sum(len(c) for _, c in chunked)
            todo, stale = plan(self.store, self.physical, chunked, report)
            if any(len(c) > 1 for _, c, _ in todo) and not manifest.get("chunked"):
                manifest["chunked"] = True
                self._write_manifest()
            if stale:
                # before the new chunks are written: a crash in between leaves chunk 0 with the old hash,
                # so the re-run rewrites the document (deleting after would leave old chunks for good)
                self.store.delete_points(self.physical, stale)
                report.stale_chunks_deleted = len(stale)
            report.encoded = write(
                self.store, self.physical, enc, todo, batch_size=batch_size, encode_batch_size=encode_batch_size,
                progress=counted, sparse=self.bm25 if self.hybrid else None,
            )
        except BaseException:
            if before is not None and written == 0 and not report.stale_chunks_deleted:
                self._restore_ingest(before)  # nothing was written: the collection is as it was
            raise
        self._finish_ingest(manifest, report, [], optimize=optimize)  # stale chunks went before the writes
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

    def _restore_ingest(self, before: dict[str, Any]) -> None:
        """Put back the ingest state of before a run that failed before writing anything (best effort)."""
        assert self.manifest is not None
        self.manifest["ingest"] = before
        try:
            self._write_manifest()
        except Exception as exc:  # the run's own error is what the caller must see
            logger.warning("could not restore the ingest state of %r: %s", self.name, exc)

    def _chunker(self, enc: Encoder, chunk_overlap: int | None) -> Chunker:
        """The model's chunker: its max length less the two special tokens; the overlap given, else the
        one this collection was indexed with, else a quarter of the length (at most 32 tokens)."""
        max_tokens = max(8, enc.max_seq_length - 2)
        if chunk_overlap is None:
            prev = (self.manifest or {}).get("chunking") or {}
            chunk_overlap = int(prev.get("overlap", min(32, max_tokens // 4)))
        return Chunker(enc.tokenizer, max_tokens=max_tokens, overlap=chunk_overlap)

    def _source(self) -> str | None:
        """The model source a new collection's manifest records (None: the encoder's name)."""
        return resolved_source(model_source(self._model_arg, self._backend))

    def _begin_ingest(self, enc: Encoder, chunker: Chunker) -> dict[str, Any]:
        """Mark an ingest in progress, creating the collection (and its alias) on the first one."""
        if self.manifest is None:
            manifest = new_manifest(enc, chunker, self._source())
            manifest["ingest"] = {"state": "in_progress", "started": now()}
            extra: dict[str, Any] = {}
            if self._hybrid_new:  # dense + BM25 sparse vectors (tamis.collection._hybrid)
                manifest["sparse"], extra["sparse"] = sparse_manifest(), True
            settings = start_manifest(manifest, self._settings)
            self.store.create_collection(
                self.physical, dim=enc.dim, distance="cosine", metadata={"tamis": manifest}, settings=settings,
                **extra,
            )
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
        upgrade_payloads(self.store, self.physical, self.manifest)
        self._write_manifest()
        return self.manifest


def require_documents(docs: list[Any], skipped: Mapping[str, int]) -> None:
    """Raise `DataError` when validation left nothing to index (the skip counts say why)."""
    if not docs:
        raise DataError(
            "no valid documents to index" + (f" (skipped: {dict(skipped)})" if skipped else "")
            + "; check the input path and field names"
        )


def resolved_source(source: str | None) -> str | None:
    """``source`` with a model folder given relative to the working directory made absolute
    (``./my-model`` -> ``/home/me/project/my-model``, also as ``NAME:./my-model``), so that the
    collection opens from anywhere; names, URLs and ``NAME:spec`` of other kinds are kept."""
    if source is None or source.startswith(("http://", "https://")):
        return source
    if os.path.exists(os.path.expanduser(source)):
        return os.path.abspath(os.path.expanduser(source))
    name, sep, rest = source.partition(":")
    if sep and name and rest and os.path.exists(os.path.expanduser(rest)):
        return f"{name}:{os.path.abspath(os.path.expanduser(rest))}"
    return source


def plan(
    store: VectorStore, physical: str, chunked: list[tuple[Document, list[str]]], report: IndexReport
) -> tuple[list[Todo], list[str]]:
    """(documents to write, shortest first; point ids of stale chunks), counting the unchanged in ``report``."""
    # skip what is already there with the same content (idempotence, resume)
    return decide(_existing(store, physical, (d.id for d, _ in chunked)), chunked, report)


def decide(
    existing: Mapping[str, tuple[str, int, int]], chunked: list[tuple[Document, list[str]]], report: IndexReport
) -> tuple[list[Todo], list[str]]:
    """`plan` given what is stored, ``{doc id: (content hash, chunks, chunks stored)}`` (the Ray ingest looks it
    up per block)."""
    todo: list[Todo] = []
    stale: list[str] = []
    for doc, chunks in chunked:
        h = doc.content_hash()
        prev = existing.get(doc.id)
        if prev is not None and prev[2] > len(chunks):
            stale.extend(point_id(doc.id, i) for i in range(len(chunks), prev[2]))
        if prev is not None and prev[0] == h and prev[1] == len(chunks):
            report.unchanged += 1
            continue
        todo.append((doc, chunks, h))
    # longest first is not needed, but length-sorted order makes encoder batches evenly padded,
    # which is what makes encoding fast
    todo.sort(key=lambda dc: len(dc[0].embed_text))
    return todo, stale


def _existing(store: VectorStore, physical: str, doc_ids: Iterable[str]) -> dict[str, tuple[str, int, int]]:
    """{doc id: (content hash, number of chunks, chunks stored)} for documents already stored.

    "Chunks stored" exceeds the number of chunks when an older version of the document had more
    and its extra chunks were never deleted (a crash of an older tamis between the two writes).
    """
    out: dict[str, tuple[str, int]] = {}
    ids = list(doc_ids)
    by_point = {point_id(d, 0): d for d in ids}
    keys = list(by_point)
    for start in range(0, len(keys), 1000):
        for rec in store.retrieve(physical, keys[start : start + 1000], with_payload=True):
            p = read_payload(rec.payload)
            doc_id = by_point.get(rec.id)
            if doc_id is not None and p is not None and p.content_hash is not None:
                out[doc_id] = (p.content_hash, p.n_chunks)
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
    # a chunk past the last one is left from a longer version: its n_chunks says how far they go
    extent = {d: n for d, (_, n) in out.items()}
    beyond = {point_id(d, n): d for d, (_, n) in out.items()}
    keys = list(beyond)
    for start in range(0, len(keys), 1000):
        for rec in store.retrieve(physical, keys[start : start + 1000], with_payload=True):
            doc_id = beyond[rec.id]
            extent[doc_id] = max(extent[doc_id] + 1, int(rec.payload.get("n_chunks", 0)))
    return {d: (h, n, extent[d]) for d, (h, n) in out.items()}


def stored_documents(store: VectorStore, physical: str, layout: Mapping[str, Any] | None = None) -> list[Document]:
    """The documents of an unchunked collection, re-read from its payloads (for a re-index); points
    tamis did not write are left out (and counted in a warning)."""
    docs, foreign = [], 0
    for r in store.scroll(physical, with_payload=True):
        p = read_payload(r.payload, r.id, layout)
        if p is None:
            foreign += 1
            continue
        docs.append(Document(id=p.doc_id, text=p.text, title=p.title, metadata=p.metadata))
    if foreign:
        logger.warning("%s: %d points not written by tamis (no doc_id) left out of the re-index", physical, foreign)
    return docs
