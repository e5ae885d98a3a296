"""`EdgeStore`: the embedded default store, on Qdrant Edge (``qdrant-edge-py``, the engine in-process).

A data directory holds one folder per collection (its Edge shard and a ``tamis.json``) and an
``aliases.json``; see `tamis.adapters._edge_files` for the layout.

Engine behaviour this module relies on (checked against qdrant-edge-py 0.9):

* **Crash safety.** Every ``EdgeShard.update`` is appended to the shard's write-ahead log before it returns.
  A process killed with SIGKILL right after ``update()`` (no ``flush()``) loses nothing: ``EdgeShard.load``
  replays the WAL, every acknowledged update is there, and an update that was in flight is either entirely
  there or entirely absent (one `upsert` = one update operation, so a batch is all-or-nothing). Whether the
  WAL is fsynced on every update was not checked: call ``flush()`` to be safe against an OS crash or power
  loss, not just a process crash.
* **Indexing.** Points land in a plain (brute-force, exact) appendable segment; nothing is indexed in the
  background. ``EdgeShard.optimize()`` builds HNSW for every segment larger than the optimizer's
  ``indexing_threshold`` (in KB of vectors; engine default 10 000 KB, i.e. about 6 500 vectors of 384
  float32). So a collection of 40k x 384 gets an HNSW index after `EdgeStore.optimize` (about 20 s on 2
  cores), while a small one stays plain and is searched exactly — correct, and fast at that size.
  ``indexing_threshold_kb`` lowers the threshold.
* **Locking.** A shard's WAL is locked by the process that opened it: opening the same collection from a
  second process fails, reported here as `StoreError`. Within one process the `EdgeStore` objects on one
  path share their opened shards (`tamis.adapters._edge_shards`), so two ``open_collection(..., path=P)``
  work together. Reads and writes on one open shard may come from several threads; the writes of a shard
  (update / flush / optimize) are serialised with one lock.
* **Errors.** The engine raises bare ``Exception``; they are re-raised as `StoreError` with the collection
  and path.
* **Booleans in filters.** ``qdrant_edge.MatchValue(True)`` is converted to the integer 1 and matches no
  boolean payload; ``MatchValue(numpy.bool_(True))`` works, and mapping filters are converted that way. A
  native ``qdrant_edge.Filter`` built with a Python bool has the bug.
* **Ids and vectors.** The engine returns point ids as ``uuid.UUID`` objects (normalised to ``str`` here)
  and stores cosine vectors normalised, so ``with_vectors`` returns unit vectors. For ``euclid`` the score
  is the distance (smaller is closer) and ``score_threshold`` is then an upper bound on it, as in Qdrant.
* **Thresholds are strict.** The engine keeps ``score > score_threshold`` (``distance <`` for euclid): a
  point scoring exactly the threshold is dropped. This differs from the protocol's ``>=`` only at exact
  float32 equality; the qdrant-client local mode behaves the same."""

from __future__ import annotations

import functools
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as _qe

from tamis._errors import CollectionExistsError, CollectionNotFoundError, ConfigError, StoreError
from tamis.adapters._edge_files import FORMAT, Layout
from tamis.adapters._edge_hybrid import EdgeHybrid, hybrid_config, hybrid_info, hybrid_points
from tamis.adapters._edge_query import edge_filter, query_request
from tamis.adapters._edge_settings import make_shard, settings_config
from tamis.adapters._edge_shards import (
    FULL_SCAN_THRESHOLD_KB,
    OpenShard,
    SharedShards,
    check_indexing_threshold,
)
from tamis.stores import (
    DEFAULT_HNSW_EF_CONSTRUCT,
    DEFAULT_HNSW_M,
    BaseStore,
    CollectionSettings,
    Record,
    ScoredPoint,
    SearchParams,
    check_hnsw,
    check_name,
    to_record,
    to_scored,
)

__all__ = ["EdgeStore"]


class EdgeStore(EdgeHybrid, BaseStore):
    """Collections in a local folder, served by the embedded Qdrant Edge engine (HNSW, no server).

    Every `EdgeStore` of the process on one folder shares the opened collections with the others;
    closing one flushes them, and the last one closed closes them.

    Args:
        path: the data directory (created if needed); one sub-folder per collection.
        hnsw_m: HNSW edges per node for new collections.
        hnsw_ef_construct: HNSW build-time candidate list size for new collections.
        indexing_threshold_kb: segments with more vector data than this (KB) get an HNSW index on
            `optimize`; ``None`` keeps the engine default (10 000 KB, ~6 500 vectors of 384 floats).
            The stores open on one folder in one process must agree on it (`ConfigError` otherwise).

    Example:
        >>> store = EdgeStore("~/.tamis/data")                               # doctest: +SKIP
        >>> store.create_collection("docs", dim=384, metadata={"model": "minilm"})  # doctest: +SKIP
        >>> store.search("docs", query_vector, k=10, score_threshold=0.42)   # doctest: +SKIP
    """

    kind = "edge"
    native_filter_type = _qe.Filter
    native_filter_name = "qdrant_edge.Filter"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        hnsw_m: int = DEFAULT_HNSW_M,
        hnsw_ef_construct: int = DEFAULT_HNSW_EF_CONSTRUCT,
        indexing_threshold_kb: int | None = None,
    ) -> None:
        check_hnsw(hnsw_m, hnsw_ef_construct)
        check_indexing_threshold(indexing_threshold_kb)
        self.path = Path(path).expanduser().absolute()
        # the EdgeConfig of a new collection, given its dim, distance and CollectionSettings
        self._new_config = functools.partial(
            settings_config,
            hnsw_m=hnsw_m,
            hnsw_ef_construct=hnsw_ef_construct,
            indexing_threshold_kb=indexing_threshold_kb,
            full_scan_threshold_kb=FULL_SCAN_THRESHOLD_KB,
        )
        self._closed = False
        self._files = Layout(self.path)
        self._files.remove_leftovers()
        self._shards = SharedShards.acquire(self.path, self, indexing_threshold_kb=indexing_threshold_kb)
        # the shard cache, aliases.json, create / delete: one lock for every store on this path
        self._lock = self._shards.lock

    def __repr__(self) -> str:
        return f"EdgeStore({str(self.path)!r})"

    # -- internals ---------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self!r} is closed; create a new EdgeStore to keep working")

    def _resolve(self, name: str) -> str:
        """The physical collection behind ``name`` (itself, or an alias's target)."""
        check_name(name)
        self._check_open()
        if name in self._shards.open or self._files.is_collection(name):
            return name
        target = self._files.read_aliases().get(name)
        if target is not None and self._files.is_collection(target):
            return target
        raise CollectionNotFoundError(
            f"no collection or alias named {name!r} in {str(self.path)!r}; "
            f"existing collections: {self.list_collections() or '(none)'}"
        )

    def _get(self, name: str) -> tuple[str, OpenShard]:
        """Resolve ``name`` and return its opened shard (opening it on first use)."""
        physical = self._resolve(name)
        opened = self._shards.open.get(physical)
        if opened is None:
            with self._lock:
                self._check_open()
                opened = self._shards.get(physical, self._files)
        return physical, opened

    def _engine(self, op: str, name: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            raise StoreError(
                f"Qdrant Edge failed to {op} collection {name!r} in {str(self.path)!r}: {exc}"
            ) from exc

    def _write(self, op: str, name: str, fn: Any, *args: Any) -> Any:
        """`_engine` for a write to collection ``name``: holds the shard's write lock."""
        physical, opened = self._get(name)
        with opened.lock:
            return self._engine(op, physical, getattr(opened.shard, fn), *args)

    def _mapping_filter(self, conditions: list[tuple[str, str, Any]]) -> Any:
        return edge_filter(conditions)

    # -- collections -------------------------------------------------------------------------
    def list_collections(self) -> list[str]:
        """Names of the physical collections (aliases not included), sorted."""
        self._check_open()
        return self._files.names()

    def _collection_exists(self, name: str) -> bool:
        try:
            self._resolve(name)
        except CollectionNotFoundError:
            return False
        return True

    def _create_collection(
        self, name: str, dim: int, distance: str, metadata: dict[str, Any], sparse: bool = False, *,
        settings: CollectionSettings,
    ) -> None:
        """Built in a hidden sibling folder and renamed into place (with its payload indexes): a failure
        leaves nothing behind. See `tamis.adapters._edge_settings` for the settings Edge applies."""
        info = {"format": FORMAT, "dim": dim, "distance": distance, "metadata": metadata, **hybrid_info(sparse)}
        files = self._files
        with self._lock:
            self._check_open()
            if files.is_collection(name) or files.dir(name).exists():
                raise CollectionExistsError(
                    f"collection {name!r} exists already in {str(self.path)!r}; open it, pick another "
                    f"name, or delete_collection({name!r}) first"
                )
            if name in files.read_aliases():
                raise CollectionExistsError(
                    f"{name!r} is an alias in {str(self.path)!r}; pick another name or delete_alias({name!r})"
                )
            config = self._new_config(dim, distance, settings)
            config = hybrid_config(config) if sparse else config
            try:
                files.build(name, info, lambda shard_dir: make_shard(shard_dir, config, settings))
            except Exception as exc:
                if isinstance(exc, (StoreError, ConfigError)):
                    raise
                raise StoreError(f"cannot create collection {name!r} in {str(self.path)!r}: {exc}") from exc

    def _delete_collection(self, name: str) -> None:
        with self._lock:
            self._check_open()
            aliases = self._files.read_aliases()
            if name in aliases and not self._files.is_collection(name):
                raise ConfigError(
                    f"{name!r} is an alias of {aliases[name]!r}, not a collection; use delete_alias({name!r}), "
                    f"or delete_collection({aliases[name]!r}) to delete the collection itself"
                )
            if not self._files.dir(name).exists():
                return
            opened = self._shards.open.pop(name, None)
            if opened is not None:
                with opened.lock:
                    self._engine("close", name, opened.shard.close)
            trash = self._files.trash(name, uuid.uuid4().hex[:8])
            remaining = {a: t for a, t in aliases.items() if t != name}
            if remaining != aliases:
                self._files.write_aliases(remaining)
            shutil.rmtree(trash, ignore_errors=True)

    def _get_metadata(self, name: str) -> dict[str, Any]:
        return self._files.info(self._resolve(name))["metadata"]

    def _set_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        """Replaced atomically (temp file, fsync, rename)."""
        with self._lock:
            physical = self._resolve(name)
            info = self._files.info(physical)
            info["metadata"] = metadata
            self._files.write_info(self._files.dir(physical), info)

    def _collection_dim(self, name: str) -> int:
        return int(self._files.info(self._resolve(name))["dim"])

    def collection_info(self, name: str) -> dict[str, Any]:
        """Engine statistics: ``points``, ``segments``, ``indexed_vectors`` (HNSW-indexed), ``payload_schema``."""
        physical, opened = self._get(name)
        info = self._engine("read info of", physical, opened.shard.info)
        return {
            "points": int(info.points_count), "segments": int(info.segments_count),
            "indexed_vectors": int(info.indexed_vectors_count),
            "payload_schema": {k: str(v.data_type).rpartition(".")[2].lower() for k, v in info.payload_schema.items()},
        }

    # -- aliases -------------------------------------------------------------------------------
    def _set_alias(self, alias: str, target: str) -> None:
        with self._lock:
            self._check_open()
            self._files.set_alias(alias, target)

    def _resolve_alias(self, alias: str) -> str | None:
        self._check_open()
        return self._files.read_aliases().get(alias)

    def _delete_alias(self, alias: str) -> None:
        with self._lock:
            self._check_open()
            self._files.delete_alias(alias)

    # -- points --------------------------------------------------------------------------------
    def _point_dim(self, name: str) -> tuple[str, int]:
        physical, opened = self._get(name)
        return physical, opened.dim

    def _upsert(self, target: str, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]],
                sparse: list[Any] | None = None) -> None:
        """ONE engine update: after a crash all of the points are there, or none."""
        self._files.require_free_to_write(target, vectors.nbytes + len(json.dumps(payloads)))
        edge_points = hybrid_points(ids, vectors, payloads, sparse)  # sparse vectors: hybrid collections only
        self._write("upsert into", target, "update", _qe.UpdateOperation.upsert_points(edge_points))

    def _retrieve(self, name: str, ids: list[str], *, with_payload: bool, with_vectors: bool) -> list[Record]:
        physical, opened = self._get(name)
        if not ids:
            return []
        found = self._engine(
            "retrieve from", physical, opened.shard.retrieve, ids, with_payload, with_vectors
        )
        return [to_record(r, with_vectors) for r in found]

    def _delete_points(self, name: str, ids: list[str]) -> None:
        self._get(name)
        if ids:
            self._write("delete points from", name, "update", _qe.UpdateOperation.delete_points(ids))

    def _count(self, name: str, filter: Any) -> int:
        physical, opened = self._get(name)
        request = _qe.CountRequest(exact=True, filter=filter)
        return int(self._engine("count", physical, opened.shard.count, request))

    def _scroller(
        self, name: str, filter: Any, batch_size: int, *, with_payload: bool, with_vectors: bool
    ) -> Any:
        physical, opened = self._get(name)

        def fetch(offset: Any) -> tuple[list[Record], Any]:
            request = _qe.ScrollRequest(
                offset=offset,
                limit=batch_size,
                filter=filter,
                with_payload=with_payload,
                with_vector=with_vectors,
            )
            records, offset = self._engine("scroll", physical, opened.shard.scroll, request)
            return [to_record(r, with_vectors) for r in records], offset

        return fetch

    def _search(
        self,
        target: str,
        query: np.ndarray,
        *,
        k: int,
        score_threshold: float | None,
        filter: Any,
        params: SearchParams,
        with_payload: bool,
        offset: int,
    ) -> list[ScoredPoint]:
        physical, opened = self._get(target)
        request = query_request(
            query,
            k=k,
            score_threshold=score_threshold,
            filter=filter,
            params=params,
            with_payload=with_payload,
            offset=offset,
        )
        return to_scored(self._engine("search", physical, opened.shard.query, request))

    def _search_batch(
        self,
        target: str,
        queries: np.ndarray,
        *,
        k: int,
        score_thresholds: list[float | None],
        filter: Any,
        params: SearchParams,
        with_payload: bool,
    ) -> list[list[ScoredPoint]]:
        """One planned engine batch."""
        physical, opened = self._get(target)
        requests = [
            query_request(q, k=k, score_threshold=t, filter=filter, params=params, with_payload=with_payload)
            for q, t in zip(queries, score_thresholds, strict=True)
        ]
        results = self._engine("search", physical, opened.shard.query_batch, _qe.QueryBatchRequest(requests))
        return [to_scored(r) for r in results]

    # -- maintenance ---------------------------------------------------------------------------
    def _flush(self, name: str) -> None:
        """Write every acknowledged update into the segments on disk (durable against an OS crash)."""
        self._write("flush", name, "flush")

    def _optimize(self, name: str) -> None:
        """Run the engine's optimizers now: builds HNSW for segments above the indexing threshold.

        Blocks until done (tens of seconds for ~50k vectors); writes to this collection wait meanwhile.
        """
        self._write("optimize", name, "optimize")

    def close(self) -> None:
        """Flush every opened collection and release them (the last store on the path closes them).

        The store cannot be used afterwards; the other stores on its path keep working.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        errors = self._shards.release(self)
        # a closed store must not keep the path's shards alive: the last open store, closed or
        # garbage-collected, is what closes them
        self._shards = None  # type: ignore[assignment]
        if errors:
            raise StoreError(f"closing {self!r} failed for {', '.join(errors)}")

