"""A collection's `CollectionSettings` and payload layout in its manifest, and the payload migration.

The manifest keeps ``"settings"`` (the non-default `CollectionSettings` the version was created with)
and ``"payload"`` (how its points' payloads read: ``{"format": 2}`` for what tamis writes now,
absent for format 1, or ``{"format": "foreign", "text_key": ...}`` for a collection adopted from
another tool). ``reindex`` creates the next version with the same settings (`carried`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from tamis._errors import ConfigError
from tamis.stores import (
    PAYLOAD_FORMAT,
    CollectionSettings,
    SearchParams,
    StorePoint,
    VectorStore,
    point_payload,
    read_payload,
)

__all__ = ["MigrationReport", "migrate_payloads"]

logger = logging.getLogger("tamis")


def settings_of(manifest: Mapping[str, Any] | None) -> CollectionSettings:
    """The settings a version was created with (the defaults for one made before settings existed)."""
    return CollectionSettings.of((manifest or {}).get("settings") or {})


def carried(manifest: Mapping[str, Any] | None, changes: CollectionSettings | Mapping[str, Any] | None) -> CollectionSettings:
    """The settings of the next version: the current one's, with ``changes`` on top."""
    return settings_of(manifest).merged(changes)


def query_defaults(manifest: Mapping[str, Any]) -> SearchParams:
    """The collection's query-time defaults: ``hnsw_ef``, and ``rescore`` / ``oversampling`` when quantized."""
    s = settings_of(manifest)
    return SearchParams(hnsw_ef=s.hnsw_ef, rescore=s.rescore, oversampling=s.oversampling)


def start_manifest(manifest: dict[str, Any], settings: CollectionSettings | None) -> CollectionSettings:
    """Record ``settings`` and the payload format in the manifest of a version about to be created."""
    settings = settings or CollectionSettings()
    manifest["settings"] = settings.to_dict()
    manifest["payload"] = {"format": PAYLOAD_FORMAT}
    if settings.server_only():
        logger.info("settings %s are kept for a server; an embedded store does not apply them", settings.server_only())
    return settings


def check_requested(name: str, manifest: Mapping[str, Any], requested: CollectionSettings | None) -> None:
    """`ConfigError` when settings are asked for an existing collection that has others."""
    if requested is None or requested == settings_of(manifest):
        return
    raise ConfigError(
        f"collection {name!r} exists with settings {settings_of(manifest).to_dict()}; settings "
        f"{requested.to_dict()} apply to a new version: use col.reindex(settings=...) (tamis reindex --config/--set)"
    )


@dataclass(slots=True)
class MigrationReport:
    """What `migrate_payloads` did: points rewritten, points already in the current format, foreign points."""

    migrated: int = 0
    current: int = 0
    foreign: int = 0

    def to_dict(self) -> dict[str, int]:
        """The report as a plain dict."""
        return asdict(self)


def needs_migration(manifest: Mapping[str, Any]) -> bool:
    """True for a tamis collection whose points are in an older payload format."""
    layout = manifest.get("payload") or {}
    return layout.get("format", 1) != "foreign" and int(layout.get("format", 1)) < PAYLOAD_FORMAT


def migrate_payloads(store: VectorStore, physical: str, *, batch_size: int = 256) -> MigrationReport:
    """Rewrite every tamis point of ``physical`` in the current payload format, keeping its vector (no
    re-encoding). Idempotent and resumable: points already converted are skipped; foreign points are
    left alone and counted."""
    report = MigrationReport()
    batch: list[StorePoint] = []
    for rec in store.scroll(physical, with_payload=True, with_vectors=True, batch_size=batch_size):
        content = read_payload(rec.payload, rec.id)
        if content is None:
            report.foreign += 1
            continue
        new = point_payload(content)
        if new == rec.payload:
            report.current += 1
            continue
        batch.append(StorePoint(rec.id, rec.vector, new))  # type: ignore[arg-type]
        if len(batch) >= batch_size:
            store.upsert(physical, batch)
            report.migrated += len(batch)
            batch = []
    if batch:
        store.upsert(physical, batch)
        report.migrated += len(batch)
    store.flush(physical)
    return report


def upgrade_payloads(store: VectorStore, physical: str, manifest: dict[str, Any]) -> None:
    """Before an ingest into an existing version: migrate its points to the current payload format."""
    if not needs_migration(manifest):
        return
    report = migrate_payloads(store, physical)
    manifest["payload"] = {"format": PAYLOAD_FORMAT}
    logger.info("collection %r: payloads migrated to format %d (%s)", physical, PAYLOAD_FORMAT, report.to_dict())
