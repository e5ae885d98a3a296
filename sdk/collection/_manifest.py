"""The manifest stored with every collection, and `CollectionBase`: what the parts of `Collection` share.

The manifest (JSON, in the store's collection metadata under ``"tamis"``) records the model (name,
source, fingerprint), the dimension, the chunking, the ingest state and the query-time stages::

    "stages": [{"name": "relevance", "version": 1, "created": "...", "settings": {"adapter": {...}}}]

A manifest written before stages were listed keeps its Cosine Adapter under a top-level
``"calibration": {"version", "stage", "created", "adapter"}``; `upgraded` reads it as the same list.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

from tamis._errors import CollectionNotFoundError
from tamis._version import __version__
from tamis.data import Chunker
from tamis.encoders import Encoder
from tamis.stores import CollectionSettings, VectorStore

__all__: list[str] = []

MANIFEST_FORMAT = 1


def now() -> str:
    """The current UTC time, ISO 8601 to the second (manifest timestamps)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_manifest(enc: Encoder, chunker: Chunker, source: str | None) -> dict[str, Any]:
    """The manifest of a new collection of ``enc``'s vectors (``source``: what loads its model again,
    `tamis.encoders.model_source`; None: the encoder's name)."""
    return {
        "format": MANIFEST_FORMAT,
        "tamis_version": __version__,
        "created": now(),
        "model": {
            "name": enc.name,
            "source": source if source is not None else enc.name,
            "fingerprint": enc.fingerprint,
            "backend": getattr(enc, "backend", None),
            "max_seq_length": enc.max_seq_length,
        },
        "dim": enc.dim,
        "distance": "cosine",
        "chunking": {"max_tokens": chunker.max_tokens, "overlap": chunker.overlap},
        "chunked": False,
        "ingest": {"state": "empty"},
        "stages": [],
    }


def upgraded(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with its stage list, an older one's ``calibration`` read as the stage that applies it."""
    if "stages" in manifest or "calibration" not in manifest:
        return manifest
    out = {k: v for k, v in manifest.items() if k != "calibration"}
    cal = manifest["calibration"]
    out["stages"] = [] if not cal else [{
        "name": cal.get("stage", "relevance"), "version": cal.get("version", 1), "created": cal.get("created"),
        "settings": {"adapter": cal["adapter"]},
    }]
    return out


def stages_with(manifest: Mapping[str, Any], name: str, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """``manifest``'s stage list with the stage ``name`` added last, or given new settings where it is (its
    version goes up by one); ``manifest`` itself is left as it is."""
    entries = list(manifest.get("stages") or [])
    at = next((i for i, e in enumerate(entries) if e["name"] == name), None)
    version = 1 if at is None else int(entries[at].get("version", 0)) + 1
    entry = {"name": name, "version": version, "created": now(), "settings": settings}
    if at is None:
        entries.append(entry)
    else:
        entries[at] = entry
    return entries


def adapter_entry(manifest: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The stage entry whose settings hold the collection's Cosine Adapter (``settings["adapter"]``), or None.

    A hybrid adapter (``kind`` ``"tamis.HybridAdapter"``, its own stage) is not the Cosine Adapter."""
    for entry in manifest.get("stages") or ():
        adapter = (entry.get("settings") or {}).get("adapter")
        if isinstance(adapter, Mapping) and adapter.get("kind", "tamis.CosineAdapter") == "tamis.CosineAdapter":
            return entry
    return None


def for_display(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest as `Collection.info` shows it: stored weights as their size, and ``calibration``.

    ``calibration`` is the stage holding the Cosine Adapter as older manifests stored it
    (``version``, ``stage``, ``created``, ``adapter``), or None.
    """
    out = dict(manifest)
    out["stages"] = [{**e, "settings": _without_weights(e.get("settings") or {})} for e in out.get("stages") or []]
    entry = adapter_entry(out)
    out["calibration"] = None if entry is None else {
        "version": entry["version"], "stage": entry["name"], "created": entry.get("created"),
        "adapter": entry["settings"]["adapter"],
    }
    return out


def _without_weights(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Stage settings with base64 ``weights`` (safetensors) replaced by their size."""
    out = dict(settings)
    for key, value in settings.items():
        if isinstance(value, Mapping) and isinstance(value.get("weights"), str):
            out[key] = {**value, "weights": f"<{len(value['weights']) * 3 // 4:,} bytes>"}
    return out


class CollectionBase:
    """What the parts of `Collection` (indexing, searching, stages) share: where it is, and its manifest.

    Attributes:
        name: the collection's name (the alias of its current version).
        store: the vector store holding it.
        physical: the store collection of the current version (``<name>__v<N>``).
        manifest: the manifest, or None before the first `Collection.index`.
        encoder: the collection's encoder (`Collection.encoder`).
    """

    name: str
    store: VectorStore
    physical: str
    manifest: dict[str, Any] | None
    encoder: Encoder
    #: the `CollectionSettings` a version created by the next `index` gets (None: the defaults)
    _settings: CollectionSettings | None = None

    def _require(self) -> dict[str, Any]:
        if self.manifest is None:
            raise CollectionNotFoundError(
                f"collection {self.name!r} does not exist yet; index documents into it first"
            )
        return self.manifest

    def _write_manifest(self) -> None:
        assert self.manifest is not None
        meta = dict(self.store.get_metadata(self.physical))
        meta["tamis"] = self.manifest
        self.store.set_metadata(self.physical, meta)
