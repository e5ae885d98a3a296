"""`copy_collection`: a tamis collection from one store to another — embedded Edge to a server (`tamis push`)
and back (`tamis pull`) — as a new version behind the name, resumable and idempotent.

Everything travels: points (ids, vectors, payloads, in the current payload format), and the manifest
with the model binding, the stages (the Cosine Adapter) and the `CollectionSettings`, which the target
applies when it creates the version (shards, replication and quantization on a server). The target
version is marked ``"transfer": {"state": "copying"}`` until every point is there; a run that is
interrupted is resumed by the next one (points already copied are skipped), and the alias is
switched only when the copy is complete. The previous target version is kept unless asked otherwise.

Qdrant Edge can also load a server shard snapshot (``EdgeShard.unpack_snapshot``); no server exists
here to make one, so `pull` copies points through the API, which works the same for every store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from tamis._errors import CollectionNotFoundError, ConfigError
from tamis.collection import _versions
from tamis.collection._configure import settings_of
from tamis.collection._manifest import now
from tamis.stores import StorePoint, VectorStore, point_payload, read_payload

__all__ = ["TransferReport", "copy_collection"]

logger = logging.getLogger("tamis")


@dataclass(slots=True)
class TransferReport:
    """What `copy_collection` did: the target version, points copied now / found there already, seconds."""

    name: str
    target: str
    points: int = 0
    copied: int = 0
    already_there: int = 0
    resumed: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The report as a plain dict."""
        return asdict(self)


def _source_id(store: VectorStore, physical: str, manifest: Any) -> str:
    return f"{store.kind}:{physical}:{manifest.get('created')}:{manifest['model']['fingerprint']}"


def _target_version(target: VectorStore, name: str, source_id: str) -> tuple[str, bool]:
    """(the version to copy into, whether it is a resumed one)."""
    for _, physical in sorted(_versions.versions(target, name).items(), reverse=True):
        m = _versions.manifest_of(target, physical)
        if m is not None and (m.get("transfer") or {}).get("state") == "copying" and m["transfer"]["source"] == source_id:
            return physical, True
    found, _ = _versions.find(target, name)
    if found is None and not _versions.versions(target, name):
        return _versions.version_name(name, 1), False
    return _versions.next_version(target, name), False


def copy_collection(
    name: str,
    source: VectorStore,
    target: VectorStore,
    *,
    batch_size: int = 256,
    keep_old: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> TransferReport:
    """Copy the collection ``name`` of ``source`` into ``target`` as a new version behind ``name``.

    Args:
        name: the collection (its alias).
        source, target: the stores (e.g. an `EdgeStore` and a `QdrantClientStore` on a server).
        batch_size: points per read and write.
        keep_old: keep the version ``name`` served in ``target`` before (default), or delete it.
        progress: called as ``progress(points_done, points_total)`` after each write.

    Raises:
        CollectionNotFoundError: no such collection in ``source``.

    Example:
        >>> copy_collection("docs", EdgeStore("~/.tamis"), QdrantClientStore(url=URL))  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    physical, manifest = _versions.resolve(source, name)
    if physical is None or manifest is None:
        raise CollectionNotFoundError(f"no collection {name!r} in the {source.kind} store to copy")
    sid = _source_id(source, physical, manifest)
    there, _ = _versions.find(target, name)
    if there is not None and _versions.manifest_of(target, there) is None:
        raise ConfigError(
            f"{name!r} in the {target.kind} store is a collection tamis did not create; copy under another "
            "name, or delete it there first"
        )
    new, resumed = _target_version(target, name, sid)
    report = TransferReport(name=name, target=new, resumed=resumed, points=source.count(physical))
    layout = manifest.get("payload")
    foreign = (layout or {}).get("format") == "foreign"
    copied_manifest = {**manifest, "transfer": {"state": "copying", "source": sid, "started": now()}}
    if not foreign:
        copied_manifest["payload"] = {"format": 2}
    if not resumed:
        target.create_collection(
            new, dim=source.collection_dim(physical), distance=manifest.get("distance", "cosine"),
            metadata={"tamis": copied_manifest}, settings=settings_of(manifest),
        )
    done = 0
    batch: list[Any] = []

    def flush() -> None:
        nonlocal done, batch
        present = {r.id for r in target.retrieve(new, [r.id for r in batch], with_payload=False)} if resumed else set()
        todo = [r for r in batch if r.id not in present]
        if todo:
            target.upsert(new, [StorePoint(r.id, r.vector, _payload(r, foreign)) for r in todo])
        report.copied += len(todo)
        report.already_there += len(batch) - len(todo)
        done += len(batch)
        batch = []
        if progress is not None:
            progress(done, report.points)

    for rec in source.scroll(physical, with_payload=True, with_vectors=True, batch_size=batch_size):
        batch.append(rec)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    target.flush(new)
    target.optimize(new)
    copied_manifest["transfer"] = {"state": "complete", "source": sid, "finished": now()}
    meta = dict(target.get_metadata(new))
    meta["tamis"] = copied_manifest
    target.set_metadata(new, meta)
    old, _ = _versions.find(target, name)
    if old is None or old == new:
        _versions.link(target, name, new)
    elif old != new:
        _versions.switch(target, name, old, new, keep_old=keep_old)
    report.seconds = time.perf_counter() - t0
    logger.info("copied %r: %s", name, report.to_dict())
    return report


def _payload(rec: Any, foreign: bool) -> dict[str, Any]:
    """A tamis point in the current payload format (an adopted collection's points travel as they are)."""
    if foreign:
        return dict(rec.payload)
    content = read_payload(rec.payload, rec.id)
    return dict(rec.payload) if content is None else point_payload(content)
