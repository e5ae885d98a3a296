"""Versions behind an alias: a collection ``name`` is the alias ``name`` of its current version ``<name>__v<N>``.

Every collection tamis creates is ``<name>__v1`` behind the alias ``name`` from the start, so that a
re-index with a new model is one alias switch. This module names versions, finds the one a name
serves (adopting one a crash left without its alias), lists the names that open, switches and
deletes versions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from tamis._errors import ConfigError, StoreError
from tamis.stores import VectorStore

__all__ = ["list_collections"]

logger = logging.getLogger("tamis")

#: a collection ``name`` is the alias ``name`` of its current version, the physical ``<name>__v<N>``
VERSION_SEP = "__v"


def version_name(name: str, n: int) -> str:
    """The physical collection of version ``n`` of the collection ``name``: ``<name>__v<n>``."""
    return f"{name}{VERSION_SEP}{n}"


def parse_version(physical: str) -> tuple[str, int] | None:
    """``("docs", 2)`` for ``"docs__v2"``; None for a name that is not a version."""
    base, sep, n = physical.rpartition(VERSION_SEP)
    if sep and base and n.isascii() and n.isdigit() and not n.startswith("0"):
        return base, int(n)
    return None


def versions(store: VectorStore, name: str) -> dict[int, str]:
    """{version number: physical collection} of every ``<name>__v<N>`` in ``store``."""
    parsed = ((c, parse_version(c)) for c in store.list_collections())
    return {v[1]: c for c, v in parsed if v is not None and v[0] == name}


def next_version(store: VectorStore, name: str) -> str:
    """The physical collection a re-index of ``name`` builds: one past the highest version there is."""
    return version_name(name, max(versions(store, name), default=1) + 1)


def manifest_of(store: VectorStore, physical: str) -> Mapping[str, Any] | None:
    """The tamis manifest stored with ``physical``, or None when tamis did not create it."""
    meta = store.get_metadata(physical)
    manifest = meta.get("tamis") if isinstance(meta, Mapping) else None
    return manifest if isinstance(manifest, Mapping) and "model" in manifest else None


def find(store: VectorStore, name: str) -> tuple[str | None, bool]:
    """(physical collection serving ``name``, whether it is an orphan to adopt), or (None, False).

    ``name`` is an alias (what tamis creates), or a collection of that name (created by an older
    tamis or another tool). Failing both, the newest tamis version ``<name>__v<N>`` is an orphan:
    a crash came between creating it and pointing the alias at it.
    """
    target = store.resolve_alias(name)
    if target is not None and store.collection_exists(target):
        return target, False
    if store.collection_exists(name):
        return name, False
    # the newest complete version; a half-built one (a crash in a re-index) only when none is
    # complete: then it is the first ingest, which the next `index` resumes
    fallback = None
    for _, physical in sorted(versions(store, name).items(), reverse=True):
        manifest = manifest_of(store, physical)
        if manifest is None or (manifest.get("transfer") or {}).get("state") == "copying":  # a half-push
            continue
        if ingest_state(manifest) == "complete":
            return physical, True
        fallback = fallback or physical
    return (fallback, True) if fallback is not None else (None, False)


def ingest_state(manifest: Mapping[str, Any]) -> str:
    """The ``ingest`` state a manifest records: ``"complete"``, ``"in_progress"`` or ``"empty"``."""
    ingest = manifest.get("ingest")
    return str(ingest.get("state", "empty")) if isinstance(ingest, Mapping) else "empty"


def half_built(store: VectorStore, name: str, served: str) -> list[tuple[str, Mapping[str, Any]]]:
    """(physical, manifest) of every version of ``name`` other than ``served`` whose ingest never
    completed (a re-index killed half-way), newest first."""
    out = []
    for _, physical in sorted(versions(store, name).items(), reverse=True):
        manifest = manifest_of(store, physical)
        if physical != served and manifest is not None and ingest_state(manifest) != "complete":
            out.append((physical, manifest))
    return out


def resolve(store: VectorStore, name: str) -> tuple[str | None, Mapping[str, Any] | None]:
    """(physical collection, manifest) that ``name`` opens, adopting an orphan; (None, None) for no collection.

    Raises:
        StoreError: a collection of that name exists but tamis did not create it.
    """
    physical, orphan = find(store, name)
    if physical is None:
        return None, None
    manifest = manifest_of(store, physical)
    if manifest is None:
        raise StoreError(
            f"collection {name!r} exists but was not created by tamis (no tamis manifest); "
            "adopt it (`tamis adopt NAME --model M --text-key page_content`, tamis.collection.adopt_collection), "
            "pick another name, or index it with tamis into a new collection"
        )
    if orphan:
        adopt(store, name, physical)
    return physical, manifest


def link(store: VectorStore, alias: str, target: str) -> None:
    """Point ``alias`` at ``target``; done already (by a concurrent process) counts as success."""
    try:
        store.set_alias(alias, target)
    except Exception:
        if store.resolve_alias(alias) != target:
            raise


def adopt(store: VectorStore, name: str, physical: str) -> None:
    """Point the alias ``name`` at the orphan version ``physical`` (left by a crash)."""
    logger.warning("collection %r: pointing its alias at %r, which a crash left without it", name, physical)
    try:
        link(store, name, physical)
    except (StoreError, ConfigError) as exc:  # e.g. a read-only API key: serve it all the same
        logger.warning("cannot point the alias %r at %r (%s); using the latter directly", name, physical, exc)


def switch(store: VectorStore, name: str, old: str, new: str, *, keep_old: bool) -> None:
    """Point the name at the complete version ``new``, then remove ``old`` (unless ``keep_old``).

    A collection stored under its own name (made by an earlier tamis) is deleted just before the
    alias is created: a name cannot be a collection and an alias at once.
    """
    if old == name:
        store.delete_collection(old)
    store.set_alias(name, new)
    if not keep_old and old != name:
        store.delete_collection(old)


def delete_all(store: VectorStore, name: str, physical: str) -> None:
    """Delete the alias ``name`` and every version of it, the one it serves (or ``physical``) last."""
    current, _ = find(store, name)
    for version in versions(store, name).values():
        if version != current and manifest_of(store, version) is not None:
            store.delete_collection(version)
    for served in dict.fromkeys((physical, current)):
        if served is not None and store.collection_exists(served) and store.resolve_alias(served) is None:
            store.delete_collection(served)  # the store drops the aliases pointing at it
    store.delete_alias(name)


def list_collections(store: VectorStore) -> list[tuple[str, str]]:
    """(name, physical collection serving it) for every collection that opens by name, sorted.

    A version ``<name>__v<N>`` is listed under ``name`` (the one the alias points at); versions
    kept by ``reindex(keep_old=True)`` and half-built ones are not listed. Collections tamis
    did not create are listed under their own names.

    Example:
        >>> st, _ = open_store(path="./data")       # doctest: +SKIP
        >>> list_collections(st)                     # doctest: +SKIP
        [('docs', 'docs__v2')]
    """
    physicals = store.list_collections()
    taken = set(physicals)
    parsed = {c: parse_version(c) for c in physicals}
    out: dict[str, str] = {}
    for base in {v[0] for v in parsed.values() if v is not None} - taken:
        physical, _ = find(store, base)
        if physical is not None:
            out[base] = physical
    for c in physicals:
        v = parsed[c]
        if v is None or (v[0] not in out and v[0] not in taken):
            out.setdefault(c, c)
    return sorted(out.items())
