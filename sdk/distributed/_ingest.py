"""`index_distributed`: the ingest of `Collection.index`, with Ray Data doing the reading, chunking and encoding.

Two passes over the input, both streamed: (1) validation in tasks, ids back to the driver (duplicate
check, and what the collection already holds: the resume snapshot); (2) an actor pool (one model
each) chunks, skips what is stored, encodes; the driver writes what comes back (Qdrant Edge and
qdrant-client's local mode take one writer), or the actors write to a Qdrant server themselves. For a
new collection the driver writes, (2) starts with (1) (the snapshot is empty): the actors load their
model while validation runs.
The manifest, fingerprint, version and alias are the in-process ingest's own (`_begin_ingest`,
`_finish_ingest`); point ids and payloads come from the same functions.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tamis import _errors
from tamis._errors import DataError, DuplicateIdError
from tamis.collection import IndexReport, open_collection
from tamis.collection._ingest import _existing, require_documents
from tamis.distributed._blocks import POINT, STALE, STATS, EncodeBlocks, Snapshot, key_of, validate_block
from tamis.distributed._config import RayConfig, gpus_per_actor, limit_buffering, start_ray
from tamis.distributed._read import read_dataset
from tamis.distributed._stream import Started
from tamis.encoders import Encoder
from tamis.stores import CollectionSettings, SparseVector, StorePoint, VectorStore

__all__ = ["index_distributed"]


def index_distributed(
    data: Any,
    collection: str,
    *,
    config: RayConfig | None = None,
    path: str | os.PathLike[str] | None = None,
    url: str | None = None,
    api_key: str | None = None,
    store: VectorStore | str | None = None,
    model: str | os.PathLike[str] | None = None,
    encoder: Encoder | None = None,
    backend: str = "auto",
    device: str = "auto",
    format: str = "auto",
    id_field: str = "_id",
    text_field: str = "text",
    title_field: str | None = "title",
    metadata_fields: tuple[str, ...] | None = None,
    on_invalid: str = "raise",
    max_document_bytes: int = 1_000_000,
    chunk_overlap: int | None = None,
    direct_writes: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    optimize: bool = True,
    hybrid: bool = False,
    settings: CollectionSettings | Mapping[str, Any] | None = None,
    store_options: Mapping[str, Any] | None = None,
) -> IndexReport:
    """Index ``data`` into ``collection`` on a Ray cluster; the same contract as `Collection.index`.

    Deterministic point ids, idempotent, resumable per block (a re-run encodes only what is not
    stored yet), the model bound to the collection, a new collection made ``<name>__v1`` behind
    the alias ``name``. Input ids must be unique: a duplicate raises `DuplicateIdError` with
    ``on_invalid="skip"`` too (which copy came first is not defined on a cluster).

    Args:
        data: a BEIR folder, ``.jsonl``, folder of text files, Parquet/CSV, or a `ray.data.Dataset`.
        collection: the collection's name.
        config: the cluster and the actor pool (`RayConfig`); default: a local cluster, one actor.
        path, url, api_key, store: where the collection lives, as for `open_collection`.
        model, encoder, backend, device: the model, as for `open_collection`; every actor loads it
            (an `Encoder` object is shipped to them). ``device="auto"``: a GPU per actor when the
            cluster has GPUs (fp16), CPU otherwise.
        format, id_field, text_field, title_field, metadata_fields: how to read ``data``.
        on_invalid, max_document_bytes, chunk_overlap, progress, optimize: as for `Collection.index`
            (``progress(chunks_written, documents)``).
        direct_writes: actors upsert into the store themselves; default: when ``url`` is a Qdrant
            server (concurrent writers); Edge and qdrant-client's local mode are written by this process.
        hybrid, settings, store_options: as for `open_collection`: a new collection with BM25 sparse
            vectors too (computed in the actors by the collection's `Bm25Encoder`), the
            `CollectionSettings` it is created with (shards, replication, payload indexes, tenant
            field, quantization...), the store's client options (``timeout``, ``retries``,
            ``write_ordering``...), which actors writing to the server use as well.

    Example:
        >>> index_distributed("corpus.jsonl", "docs", config=RayConfig(num_actors=4))  # doctest: +SKIP
    """
    cfg = config or RayConfig()
    if on_invalid not in ("raise", "skip"):
        raise _errors.ConfigError(f"on_invalid must be 'raise' or 'skip', got {on_invalid!r}")
    direct = url is not None if direct_writes is None else direct_writes
    if direct and url is None:
        raise _errors.ConfigError("direct_writes=True needs url= (a Qdrant server the actors can reach)")
    t0 = time.perf_counter()
    started = start_ray(cfg)
    try:
        limit_buffering(cfg)
        with open_collection(
            collection, path=path, url=url, api_key=api_key, store=store, model=model, encoder=encoder,
            backend=backend, device=device, create=True, hybrid=hybrid, settings=settings,
            store_options=store_options,
        ) as col:
            ds, spec = read_dataset(
                data, format=format, id_field=id_field, text_field=text_field, title_field=title_field,
                metadata_fields=metadata_fields, read_cpus=cfg.read_cpus,
            )
            enc = col.encoder
            chunker = col._chunker(enc, chunk_overlap)
            sink = {"url": url, "api_key": api_key, "collection": col.physical, "options": dict(store_options or {})} if direct else None
            pool = _EncoderPool(
                ds, cfg, spec=spec, fingerprint=enc.fingerprint, device=device, backend=backend, chunker=chunker,
                max_document_bytes=max_document_bytes, sink=sink,
                # the collection's BM25 (a new hybrid one's: the defaults its manifest will record), as `Collection.index` uses it
                bm25=col.bm25.settings if (col.hybrid if col.exists else col._hybrid_new) else None,
            )
            # what every actor loads: the model this collection records (a new one: what its manifest will record)
            recorded = col.manifest["model"].get("source") if col.exists else (col._source() or enc.name)
            source: Any = encoder if encoder is not None else (model or recorded)
            # A new collection written by this process: nothing is stored (the resume snapshot is empty) and
            # nothing is written before validation passes, so the actors start (and load their model) while
            # the validation pass runs. Otherwise the snapshot comes from that pass first.
            early = Started(pool.batches(source, Snapshot.build([]))) if not col.exists and not direct else None
            try:
                docs, skipped, snapshot = _survey(ds, spec, col, cfg, on_invalid, max_document_bytes)
                report = IndexReport(skipped=dict(skipped))
                require_documents(docs, skipped)
                manifest = col._begin_ingest(enc, chunker)
                stale = _write(early or pool.batches(source, snapshot), col, manifest, report, direct, progress, docs)
            finally:
                if early is not None:
                    early.close()
            col._finish_ingest(manifest, report, stale, optimize=optimize)
    finally:
        if started:
            import ray

            ray.shutdown()
    report.seconds = time.perf_counter() - t0
    return report


def _write(
    encoded: Any, col: Any, manifest: dict[str, Any], report: IndexReport, direct: bool,
    progress: Callable[[int, int], None] | None, docs: int,
) -> list[str]:
    """Write what the actors send back (points, stale chunk ids, counts); the stale chunk ids."""
    stale: list[str] = []
    done = 0
    if progress is not None:
        progress(0, docs)
    for batch in encoded:
        points: list[StorePoint] = []
        for kind, value, vec in zip(batch["kind"], batch["value"], batch["vector"], strict=True):
            if kind == POINT:
                pid, payload, sparse = json.loads(value)
                points.append(StorePoint(pid, np.asarray(vec, dtype=np.float32), payload,
                                         None if sparse is None else SparseVector(*map(tuple, sparse))))
            elif kind == STALE:
                stale.append(str(value))
            elif kind == STATS:
                counts = json.loads(value)
                report.documents += counts["documents"]
                report.chunks += counts["chunks"]
                report.encoded += counts["encoded"]
                report.unchanged += counts["unchanged"]
                if counts["chunked"] and not manifest.get("chunked"):
                    manifest["chunked"] = True
                    col._write_manifest()
                if direct:
                    done += counts["encoded"]
        if points:
            col.store.upsert(col.physical, points)  # all chunks of a block's documents in one write
            done += len(points)
        if progress is not None:
            progress(done, docs)
    return stale


class _EncoderPool:
    """The encoding pass: ``ds`` through an `ActorPoolStrategy` of `EncodeBlocks` actors, one model each."""

    def __init__(self, ds: Any, cfg: RayConfig, *, device: str, chunker: Any, **actor_args: Any) -> None:
        self.ds, self.cfg, self.chunker, self.actor_args = ds, cfg, chunker, actor_args
        self.gpus = gpus_per_actor(cfg)
        self.device = device if device != "auto" else ("cuda" if self.gpus > 0 else "cpu")

    def batches(self, source: Any, snapshot: Snapshot) -> Any:
        """The actors' output (numpy batches, one per block), encoding ``source`` (a model or an `Encoder`)."""
        import ray.data

        cfg = self.cfg
        encoded = self.ds.map_batches(
            EncodeBlocks, batch_size=cfg.batch_size, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=cfg.num_actors, max_tasks_in_flight_per_actor=cfg.max_tasks_in_flight_per_actor),
            num_cpus=cfg.num_cpus_per_actor, num_gpus=self.gpus,
            fn_constructor_kwargs=dict(
                encoder=source, device=self.device, max_tokens=self.chunker.max_tokens, overlap=self.chunker.overlap,
                snapshot=snapshot, encode_batch_size=cfg.encode_batch_size or (128 if self.gpus > 0 else 32), threads=int(cfg.num_cpus_per_actor),
                **self.actor_args,
            ),
        )
        return encoded.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1)


def _survey(
    ds: Any, spec: Any, col: Any, cfg: RayConfig, on_invalid: str, max_document_bytes: int
) -> tuple[int, Counter[str], Snapshot]:
    """The validation pass: (valid documents, skipped by reason, the resume snapshot); raises on the first error.

    Only 8 bytes a document stay on the driver (the duplicate check) plus the snapshot of what is
    stored; ids stream through in blocks.
    """
    checked = ds.map_batches(
        # light work, like reading: at ``read_cpus`` (0), so it also runs while the actors hold every CPU
        validate_block, batch_size=cfg.batch_size, batch_format="pyarrow", num_cpus=cfg.read_cpus,
        fn_kwargs={"spec": spec, "max_document_bytes": max_document_bytes},
    )
    skipped: Counter[str] = Counter()
    keys: list[np.ndarray] = []
    found: list[tuple[str, tuple[str, int, int]]] = []
    for batch in checked.iter_batches(batch_size=None, batch_format="numpy"):
        bad = batch["error"] != ""
        if bad.any():
            if on_invalid == "raise":
                i = int(np.flatnonzero(bad)[0])
                cls = getattr(_errors, str(batch["error"][i]), DataError)
                raise (cls if isinstance(cls, type) and issubclass(cls, DataError) else DataError)(str(batch["message"][i]))
            skipped.update(str(r) for r in batch["reason"][bad])
        keys.append(batch["key"][~bad])
        if col.exists:
            found.extend(_existing(col.store, col.physical, [str(x) for x in batch["id"][~bad]]).items())
    all_keys = np.sort(np.concatenate(keys)) if keys else np.zeros(0, np.uint64)
    dup = all_keys[1:][all_keys[1:] == all_keys[:-1]]
    doc_id = _duplicate(checked, set(dup.tolist())) if len(dup) else None
    if doc_id is not None:
        raise DuplicateIdError(
            "this id appears twice in the input; ids must be unique (a re-run of the same input is fine: "
            "it updates in place)", doc_id=doc_id,
        )
    return len(all_keys), skipped, Snapshot.build(found)


def _duplicate(checked: Any, keys: set[int]) -> str | None:
    """An id that appears twice among those with a key in ``keys``; None when the keys only collided."""
    seen: set[str] = set()
    for batch in checked.iter_batches(batch_size=None, batch_format="numpy"):
        for doc_id in batch["id"]:
            if doc_id and key_of(str(doc_id)) in keys:
                if doc_id in seen:
                    return str(doc_id)
                seen.add(str(doc_id))
    return None
