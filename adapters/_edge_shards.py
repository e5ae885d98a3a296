"""The opened Edge shards of a data directory, shared by every `EdgeStore` of the process on it.

A Qdrant Edge shard locks its write-ahead log for the process that loads it: a second load fails,
even from the same process. So the opened shards of a data directory live here, one `SharedShards`
per resolved path per process, and every `EdgeStore` on that path uses the same one: two
``tamis.open_collection(..., path=P)`` (or two LangChain retrievers, or a retriever and your own
collection) in one process share the engine, and a write through one is seen by the other.

Each store holds the `SharedShards` while it is open. Closing a store flushes the shards; the
last store of the process on the path to close also closes them (and frees the WAL locks for
another process). A store dropped without `close` lets go of them when it is garbage-collected.
A forked child does not inherit its parent's shards (the key includes the process id): it loads
its own, which fails while the parent holds them, as for any other process.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import qdrant_edge as _qe

from tamis._errors import ConfigError, StoreError
from tamis.adapters._edge_files import Layout

__all__ = ["FULL_SCAN_THRESHOLD_KB", "OpenShard", "SharedShards", "check_indexing_threshold", "edge_config"]

#: Qdrant's default, in KB: below it a filtered search scans instead of using the payload index.
FULL_SCAN_THRESHOLD_KB = 10_000

_EDGE_DISTANCE = {"cosine": _qe.Distance.Cosine, "dot": _qe.Distance.Dot, "euclid": _qe.Distance.Euclid}


def check_indexing_threshold(indexing_threshold_kb: Any) -> None:
    """`ConfigError` unless ``indexing_threshold_kb`` is None or a positive integer."""
    if indexing_threshold_kb is not None and (
        isinstance(indexing_threshold_kb, bool)
        or not isinstance(indexing_threshold_kb, int)
        or indexing_threshold_kb < 1
    ):
        raise ConfigError(
            f"indexing_threshold_kb must be a positive integer or None, got {indexing_threshold_kb!r}"
        )


def edge_config(
    dim: int, distance: str, *, hnsw_m: int, hnsw_ef_construct: int, indexing_threshold_kb: int | None
) -> Any:
    """The ``EdgeConfig`` of a new shard."""
    return _qe.EdgeConfig(
        vectors=_vectors(dim, distance),
        hnsw_config=_qe.HnswIndexConfig(
            m=hnsw_m, ef_construct=hnsw_ef_construct, full_scan_threshold=FULL_SCAN_THRESHOLD_KB
        ),
        optimizers=_optimizers(indexing_threshold_kb),
    )


def load_config(dim: int, distance: str, indexing_threshold_kb: int | None) -> Any:
    """The ``EdgeConfig`` to load an existing shard with: None keeps every stored setting; an indexing
    threshold overrides the stored optimizer setting (and the engine insists on the vectors too)."""
    optimizers = _optimizers(indexing_threshold_kb)
    return None if optimizers is None else _qe.EdgeConfig(vectors=_vectors(dim, distance), optimizers=optimizers)


def _vectors(dim: int, distance: str) -> Any:
    return _qe.EdgeVectorParams(size=dim, distance=_EDGE_DISTANCE[distance])


def _optimizers(indexing_threshold_kb: int | None) -> Any:
    if indexing_threshold_kb is None:
        return None
    return _qe.EdgeOptimizersConfig(indexing_threshold=indexing_threshold_kb)


@dataclass
class OpenShard:
    """An opened collection: its shard, its dimension, and the lock that serialises its writes."""

    shard: Any
    dim: int
    lock: threading.Lock = field(default_factory=threading.Lock)


class SharedShards:
    """The opened shards of one data directory in this process; get one with `acquire`.

    Attributes:
        lock: held for the shard cache, ``aliases.json``, and creating / deleting collections.
        open: {physical collection: its `OpenShard`}, filled on first use.
    """

    _registry: weakref.WeakValueDictionary[tuple[int, str], SharedShards] = weakref.WeakValueDictionary()
    _registry_lock = threading.Lock()

    def __init__(self, key: tuple[int, str], indexing_threshold_kb: int | None) -> None:
        self._key = key
        self.indexing_threshold_kb = indexing_threshold_kb
        self.lock = threading.RLock()
        self.open: dict[str, OpenShard] = {}
        self._users: weakref.WeakSet[Any] = weakref.WeakSet()

    @classmethod
    def acquire(cls, path: Path, user: object, *, indexing_threshold_kb: int | None) -> SharedShards:
        """The shards of ``path`` for ``user`` (a store), shared with the other stores on ``path``.

        Raises:
            ConfigError: a store on ``path`` is open with another ``indexing_threshold_kb``.
        """
        key = (os.getpid(), str(path.resolve()))
        with cls._registry_lock:
            shared = cls._registry.get(key)
            if shared is None:
                shared = cls._registry[key] = cls(key, indexing_threshold_kb)
            elif shared.indexing_threshold_kb != indexing_threshold_kb:
                raise ConfigError(
                    f"an EdgeStore on {key[1]!r} is open in this process with indexing_threshold_kb="
                    f"{shared.indexing_threshold_kb!r}; stores on one folder share its engine, so open this "
                    f"one with the same setting (got {indexing_threshold_kb!r}), or close the other first"
                )
            shared._users.add(user)
            return shared

    def release(self, user: object) -> list[str]:
        """``user`` is done: flush every shard, and close them all if it was the last user.

        Only the last user's release holds the process-wide registry lock while it closes (so no new
        store on the path loads a shard that is still open); the others flush without it.

        Returns:
            ``"'name': error"`` for each shard that failed (the others are closed anyway).
        """
        with self._registry_lock:
            self._users.discard(user)
            if not self._users:
                if self._registry.get(self._key) is self:
                    del self._registry[self._key]
                return self._flush(close=True)
        return self._flush(close=False)

    def _flush(self, *, close: bool) -> list[str]:
        with self.lock:
            errors = []
            for name, opened in self.open.items():
                with opened.lock:
                    try:
                        opened.shard.flush()
                        if close:
                            opened.shard.close()
                    except Exception as exc:  # flush / close the others anyway
                        errors.append(f"{name!r}: {exc}")
            if close:
                self.open.clear()
        return errors

    def get(self, physical: str, layout: Layout) -> OpenShard:
        """The opened shard of collection ``physical`` (loaded on first use)."""
        opened = self.open.get(physical)
        if opened is not None:
            return opened
        with self.lock:
            opened = self.open.get(physical)
            if opened is None:
                info = layout.info(physical)
                dim = int(info["dim"])
                shard_dir = layout.dir(physical) / "shard"
                config = load_config(dim, info["distance"], self.indexing_threshold_kb)
                layout.require_free_to_open(physical)  # a full disk would kill the load with SIGBUS
                try:
                    shard = _qe.EdgeShard.load(str(shard_dir), config)
                except Exception as exc:
                    hint = (
                        "it is open in another process (an embedded Qdrant Edge collection belongs to one "
                        "process). To share it, serve it from that process (`tamis serve -c NAME`) and open it "
                        "elsewhere with tamis.open_collection(NAME, server='http://127.0.0.1:8080') or "
                        "TamisRetriever(collection=NAME, server=...); or keep the collection in a Qdrant server "
                        "(url=); or close it in the other process first"
                        if "WouldBlock" in str(exc)
                        else "the folder may be damaged or written by an incompatible qdrant-edge-py"
                    )
                    raise StoreError(
                        f"cannot open collection {physical!r} at {str(shard_dir)!r}: {exc}; {hint}"
                    ) from exc
                opened = self.open[physical] = OpenShard(shard, dim)
        return opened
