"""Points: their deterministic ids and payloads, and the threaded encode-and-write pipeline of an ingest.

Point ids are uuid5 of (document id, chunk number), so the same input always lands on the same points.
The model encodes on the calling thread while a writer thread upserts what is encoded.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from tamis._errors import DimensionMismatchError, ModelError
from tamis.data import Document
from tamis.encoders import Encoder
from tamis.stores import PointContent, StorePoint, VectorStore, point_payload

__all__ = ["point_id"]

#: namespace of tamis point ids: uuid5(namespace, "<document id>\x1f<chunk number>")
POINT_NAMESPACE = uuid.UUID("6f1d3c1e-5a0b-4c8e-9a57-7a6d0e1b2c3d")

ProgressCallback = Callable[[int, int], None]
#: (document, its chunks, its content hash): a document to (re)write
Todo = tuple[Document, list[str], str]


def point_id(doc_id: str, chunk: int = 0) -> str:
    """The deterministic point id of chunk ``chunk`` of document ``doc_id``."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{doc_id}\x1f{chunk}"))


def _payload(doc: Document, number: int, text: str, *, n_chunks: int, content_hash: str) -> dict[str, Any]:
    return point_payload(
        PointContent(
            doc_id=doc.id, chunk=number, n_chunks=n_chunks, title=doc.title,
            # an unchunked document keeps its own text; a chunk keeps the piece that was embedded
            text=doc.text if n_chunks == 1 else text, metadata=dict(doc.metadata), content_hash=content_hash,
        )
    )


def check_vectors(vecs: np.ndarray, doc_ids: list[str], enc: Encoder) -> None:
    """`ModelError` for rows that are not finite or all zero: such a vector matches nothing (or everything),
    and a re-run would call its document unchanged, so it is never stored."""
    bad = ~np.isfinite(vecs).all(axis=1)
    bad |= ~bad & (np.abs(np.nan_to_num(vecs)).sum(axis=1) == 0)
    if bad.any():
        which = sorted({doc_ids[i] for i in np.flatnonzero(bad)})
        raise ModelError(
            f"the encoder {enc.name!r} returned all-zero or non-finite vectors for {int(bad.sum())} texts "
            f"(documents {which[:5]}); nothing of that batch was stored: fix the encoder and run again"
        )


def rows_of(doc: Document, chunks: list[str], content_hash: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(point id, text to embed, payload) of each chunk of ``doc`` (the in-process and the Ray ingest's points)."""
    return [
        (point_id(doc.id, i), c, _payload(doc, i, c, n_chunks=len(chunks), content_hash=content_hash))
        for i, c in enumerate(chunks)
    ]


def write(
    store: VectorStore,
    physical: str,
    enc: Encoder,
    todo: list[Todo],
    *,
    batch_size: int,
    encode_batch_size: int,
    progress: ProgressCallback | None,
    sparse: Any = None,
) -> int:
    """Encode in a worker thread while this thread writes; all chunks of a document in one write.

    ``sparse``: the BM25 encoder of a hybrid collection (`tamis.stores.Bm25Encoder`): each chunk's
    sparse vector is computed with its dense one and written in the same point.

    Returns:
        the number of chunks written.
    """
    total = sum(len(c) for _, c, _ in todo)
    if progress is not None:
        progress(0, total)
    # (point id, text to embed, payload); all chunks of a document go into one write
    batches: list[list[tuple[str, str, dict[str, Any]]]] = []
    current: list[tuple[str, str, dict[str, Any]]] = []
    for doc, chunks, h in todo:
        if current and len(current) + len(chunks) > batch_size:
            batches.append(current)
            current = []
        current.extend(rows_of(doc, chunks, h))
    if current:
        batches.append(current)

    # the model runs on this thread (torch's thread pool is fastest from the thread that made
    # it); a writer thread upserts what is encoded, so the store is never the bottleneck
    q: queue.Queue[tuple[list[tuple[str, str, dict[str, Any]]], np.ndarray, list[Any]] | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []
    done = 0

    def writer() -> None:
        nonlocal done
        while True:
            item = q.get()
            if item is None or failure:
                return
            batch, vecs, svecs = item
            try:
                points = [StorePoint(pid, vecs[j], payload, svecs[j]) for j, (pid, _, payload) in enumerate(batch)]
                store.upsert(physical, points)
                done += len(batch)
                if progress is not None:
                    progress(done, total)
            except BaseException as exc:  # handed to the encoding thread
                failure.append(exc)
                return

    thread = threading.Thread(target=writer, name="tamis-write", daemon=True)
    thread.start()
    try:
        for batch in batches:
            if failure:
                break
            vecs = enc.encode([text for _, text, _ in batch], kind="document", batch_size=encode_batch_size)
            if vecs.shape != (len(batch), enc.dim):
                raise DimensionMismatchError(
                    f"encoder returned vectors of shape {vecs.shape} for {len(batch)} texts; expected dim {enc.dim}"
                )
            check_vectors(vecs, [payload["doc_id"] for _, _, payload in batch], enc)
            texts = [text for _, text, _ in batch]
            svecs = sparse.embed_documents(texts) if sparse is not None else [None] * len(batch)
            while thread.is_alive():
                try:
                    q.put((batch, vecs, svecs), timeout=0.1)
                    break
                except queue.Full:
                    continue
    finally:
        while thread.is_alive():
            try:
                q.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        thread.join()
    if failure:
        raise failure[0]
    return done
