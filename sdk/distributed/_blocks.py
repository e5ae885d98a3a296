"""What runs on the cluster, per block: validation (tasks) and chunk + resume check + encode (+ write) (actors).

Both reuse the in-process ingest's parts: `validate` for each document, the `Chunker`, `decide` (what
to write, what is stale) and `rows_of` (point ids and payloads), so a block gives the same points as
`Collection.index` would.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tamis._errors import DataError, ModelMismatchError
from tamis.collection._ingest import IndexReport, decide, validate
from tamis.collection._write import rows_of
from tamis.data import Chunker, Document
from tamis.distributed._read import ReadSpec

__all__ = ["EncodeBlocks", "Snapshot", "key_of", "validate_block"]

#: kinds of the rows an encoder actor returns to the driver
POINT, STALE, STATS = "point", "stale", "stats"


def key_of(doc_id: str) -> int:
    """A 64-bit key of a document id (duplicate check and the resume snapshot; collisions are harmless there)."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def valid_documents(
    spec: ReadSpec, block: Any, *, max_document_bytes: int
) -> tuple[list[Document], list[tuple[str, DataError]]]:
    """(valid documents of the block, (reason skipped, error) of the others), each checked by the in-process `validate`.

    The reasons are those of the in-process ingest's report: the loaders' for rows that are no
    document, the error class for documents `validate` refuses.
    """
    docs: list[Document] = []
    errors: list[tuple[str, DataError]] = []
    for item in spec.documents(block):
        if isinstance(item, DataError):
            bad_line = "not valid JSON" in str(item) or "not UTF-8" in str(item)
            reason = ("not UTF-8" if spec.kind == "files" else "bad line (not UTF-8 / not JSON)") if bad_line else "missing or invalid field"
            errors.append((reason, item))
            continue
        try:
            validate([item], on_invalid="raise", max_document_bytes=max_document_bytes)
        except DataError as exc:
            errors.append((type(exc).__name__, exc))
            continue
        docs.append(item)
    return docs, errors


def validate_block(block: Any, *, spec: ReadSpec, max_document_bytes: int) -> dict[str, np.ndarray]:
    """Ray task: the block's valid ids (and their keys) and its invalid rows (reason, error class, message)."""
    docs, errors = valid_documents(spec, block, max_document_bytes=max_document_bytes)
    blank = [""] * len(docs)
    return {
        "id": np.array([d.id for d in docs] + [""] * len(errors), dtype=object),
        "key": np.array([key_of(d.id) for d in docs] + [0] * len(errors), dtype=np.uint64),
        "reason": np.array(blank + [r for r, _ in errors], dtype=object),
        "error": np.array(blank + [type(e).__name__ for _, e in errors], dtype=object),
        "message": np.array(blank + [str(e) for _, e in errors], dtype=object),
    }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the collection held when the run began: sorted document keys, their content hashes and chunk counts.

    An incomplete multi-chunk document has the hash ``"incomplete"`` (as `_existing` reports it),
    so it is written again. Sent once to every actor (a Ray object), about 36 bytes a document.
    """

    keys: np.ndarray  # uint64, sorted
    hashes: np.ndarray  # bytes (S24)
    chunks: np.ndarray  # int32
    extents: np.ndarray  # int32: chunks stored (more than ``chunks`` when a longer version left some behind)

    @classmethod
    def build(cls, found: Iterable[tuple[str, tuple[str, int, int]]]) -> Snapshot:
        rows = sorted((key_of(d), h, n, e) for d, (h, n, e) in found)
        return cls(
            np.array([r[0] for r in rows], dtype=np.uint64),
            np.array([r[1].encode() for r in rows], dtype="S24"),
            np.array([r[2] for r in rows], dtype=np.int32),
            np.array([r[3] for r in rows], dtype=np.int32),
        )

    def lookup(self, docs: list[Document]) -> dict[str, tuple[str, int, int]]:
        """``{doc id: (content hash, chunks, chunks stored)}`` of the documents of ``docs`` that were stored."""
        if not len(self.keys) or not docs:
            return {}
        keys = np.array([key_of(d.id) for d in docs], dtype=np.uint64)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        hit = self.keys[pos] == keys
        return {
            d.id: (self.hashes[i].decode(), int(self.chunks[i]), int(self.extents[i]))
            for d, i, ok in zip(docs, pos, hit, strict=True) if ok
        }


class EncodeBlocks:
    """Ray actor (`map_batches` with an actor pool): one model; per block: chunk, check what is stored, encode.

    With ``sink`` (a Qdrant server's url/api key/collection) it writes the block itself and returns
    only its counts; otherwise it returns the points for the driver to write.
    """

    def __init__(
        self, *, spec: ReadSpec, encoder: Any, fingerprint: str, device: str, backend: str, max_tokens: int,
        overlap: int, max_document_bytes: int, snapshot: Snapshot,
        encode_batch_size: int, threads: int, sink: dict[str, Any] | None, bm25: dict[str, Any] | None = None,
    ) -> None:
        from tamis.encoders import load_encoder

        if device == "cpu" and threads > 0:
            try:
                import torch

                torch.set_num_threads(threads)
            except ImportError:  # pragma: no cover - torch is a dependency
                pass
        self.enc = load_encoder(encoder, backend=backend, device=device)
        if self.enc.fingerprint != fingerprint:
            raise ModelMismatchError(
                f"the actor loaded model {self.enc.name!r} (fingerprint {self.enc.fingerprint[:12]}), not the "
                f"collection's ({fingerprint[:12]}); give every node the same model folder"
            )
        self.chunker = Chunker(self.enc.tokenizer, max_tokens=max_tokens, overlap=overlap)
        self.spec, self.max_document_bytes = spec, max_document_bytes
        self.snapshot, self.encode_batch_size = snapshot, encode_batch_size
        self.sink = sink
        self.store = None
        if sink is not None:  # the driver's client options: timeout, retry policy, write ordering
            from tamis.collection import open_store

            self.store, _ = open_store(url=sink["url"], api_key=sink.get("api_key"), options=sink.get("options"))
        self.bm25 = None
        if bm25 is not None:  # a hybrid collection: each chunk's BM25 vector, as `Collection.index` writes it
            from tamis.stores import Bm25Encoder

            self.bm25 = Bm25Encoder(bm25)

    def __call__(self, block: Any) -> dict[str, np.ndarray]:
        docs, _ = valid_documents(self.spec, block, max_document_bytes=self.max_document_bytes)
        chunked = [(d, self.chunker.split(d.embed_text)) for d in docs]
        counts = IndexReport(documents=len(docs), chunks=sum(len(c) for _, c in chunked))
        todo, stale = decide(self.snapshot.lookup(docs), chunked, counts)
        rows = [r for doc, chunks, h in todo for r in rows_of(doc, chunks, h)]
        counts.encoded = len(rows)
        vecs = np.zeros((len(rows), self.enc.dim), dtype=np.float32)
        if rows:
            vecs = np.asarray(
                self.enc.encode([text for _, text, _ in rows], kind="document", batch_size=self.encode_batch_size),
                dtype=np.float32,
            )
        texts = [text for _, text, _ in rows]
        sparse = self.bm25.embed_documents(texts) if self.bm25 is not None and rows else [None] * len(rows)
        stats = json.dumps({
            "documents": counts.documents, "chunks": counts.chunks, "encoded": counts.encoded,
            "unchanged": counts.unchanged, "chunked": any(len(c) > 1 for _, c, _ in todo),
        })
        if self.store is not None:
            from tamis.stores import StorePoint

            assert self.sink is not None
            if rows:
                self.store.upsert(self.sink["collection"],
                                  [StorePoint(pid, vecs[j], p, sparse[j]) for j, (pid, _, p) in enumerate(rows)])
            return _rows([(STALE, s) for s in stale] + [(STATS, stats)], np.zeros((len(stale) + 1, 1), np.float32))
        out = [(POINT, json.dumps([pid, p, None if sv is None else [sv.indices, sv.values]]))
               for (pid, _, p), sv in zip(rows, sparse, strict=True)]
        out += [(STALE, s) for s in stale] + [(STATS, stats)]
        pad = np.zeros((len(stale) + 1, self.enc.dim), dtype=np.float32)
        return _rows(out, np.concatenate([vecs, pad]))


def _rows(items: list[tuple[str, str]], vectors: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "kind": np.array([k for k, _ in items], dtype=object),
        "value": np.array([v for _, v in items], dtype=object),
        "vector": vectors,
    }

