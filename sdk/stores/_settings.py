"""`CollectionSettings`: how a collection is built in Qdrant, as one typed object stored in its manifest.

One object for what a Qdrant Cloud user configures on a collection: sharding and replication, where
vectors / payload / HNSW live (RAM or disk), the HNSW graph, quantization (scalar int8, binary,
product, Edge's TurboQuant) with its query-time ``rescore`` / ``oversampling``, the default
``hnsw_ef``, and the payload indexes (tamis's own ``doc_id`` / ``chunk`` always; the filter keys
a user declares; one tenant field). A store applies what its engine supports; the rest is kept
in the manifest (so a `push` to a server applies it there) — see `SERVER_ONLY`.

It comes from keyword arguments, a JSON/TOML file (``--config``) or ``KEY=VALUE`` strings
(``--set quantization.type=scalar``), and is carried from version to version by ``reindex``.

Example:
    >>> s = CollectionSettings(quantization={"type": "scalar"}, payload_indexes=["metadata.lang:keyword"])
    >>> s.quantization.type, s.rescore
    ('scalar', None)
    >>> [(i.key, i.type) for i in s.indexes()]
    [('doc_id', 'keyword'), ('chunk', 'integer'), ('metadata.lang', 'keyword')]
    >>> CollectionSettings.from_strings(["shard_number=2", "hnsw_ef=64"]).shard_number
    2
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tamis._errors import ConfigError

__all__ = ["SERVER_ONLY", "CollectionSettings", "MemoryTiers", "PayloadIndex", "Quantization"]

Tier = Literal["pinned", "cached", "cold"]
IndexType = Literal["keyword", "integer", "float", "bool", "datetime", "uuid", "text"]

#: settings a Qdrant server applies and the embedded Edge engine has no notion of (one shard, in-process)
SERVER_ONLY = ("shard_number", "replication_factor", "write_consistency_factor", "strict_mode")

#: the payload fields tamis itself filters on (``count(documents=True)``, ingest bookkeeping)
OWN_INDEXES = (("doc_id", "keyword"), ("chunk", "integer"))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PayloadIndex(_Model):
    """An index on one payload field. ``is_tenant`` (keyword only) co-locates each tenant's points."""

    key: str = Field(min_length=1)
    type: IndexType = "keyword"
    is_tenant: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        """``"metadata.lang:keyword"`` (type defaults to keyword)."""
        if isinstance(value, str):
            key, _, kind = value.partition(":")
            return {"key": key, "type": kind or "keyword"}
        return value

    @model_validator(mode="after")
    def _tenant_is_keyword(self) -> PayloadIndex:
        if self.is_tenant and self.type not in ("keyword", "uuid"):
            raise ValueError(f"a tenant field must be a keyword (or uuid) index, got {self.key}:{self.type}")
        return self


class Quantization(_Model):
    """Vector quantization: ``none``, ``scalar`` (int8), ``binary``, ``product`` or ``turbo`` (Edge's TurboQuant).

    Attributes:
        quantile: scalar: the quantile of values kept in range (e.g. 0.99); None: the engine's.
        always_ram: keep the quantized vectors in RAM when the originals are on disk.
        compression: product: ``x4`` .. ``x64``.
        encoding: binary: ``one_bit``, ``one_and_half_bits`` or ``two_bits``.
        bits: turbo: ``1``, ``1.5``, ``2``, ``4`` or ``8`` bits per dimension.
    """

    type: Literal["none", "scalar", "binary", "product", "turbo"] = "none"
    quantile: float | None = Field(default=None, gt=0.5, le=1.0)
    always_ram: bool | None = None
    compression: Literal["x4", "x8", "x16", "x32", "x64"] | None = None
    encoding: Literal["one_bit", "one_and_half_bits", "two_bits"] | None = None
    bits: Literal["1", "1.5", "2", "4", "8"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _options_fit_the_type(self) -> Quantization:
        own = {"scalar": {"quantile"}, "product": {"compression"}, "binary": {"encoding"}, "turbo": {"bits"}}
        for option in ("quantile", "compression", "encoding", "bits"):
            if getattr(self, option) is not None and option not in own.get(self.type, set()):
                raise ValueError(f"quantization option {option!r} does not apply to type {self.type!r}")
        if self.type == "product" and self.compression is None:
            raise ValueError("product quantization needs compression (x4, x8, x16, x32 or x64)")
        return self


class MemoryTiers(_Model):
    """Where each structure of a collection is held (Qdrant ≥ 1.19's per-structure ``memory``; Edge 0.9 alike).

    Data is always persisted on disk; a tier says how it is held in RAM: ``pinned`` (on the heap, never
    evicted), ``cached`` (memory-mapped and read into the page cache when the collection opens) or ``cold``
    (memory-mapped, read on first access). None: the engine's default (or the legacy ``on_disk_*`` flag).
    A memory-bound int8 collection keeps ``quantization`` pinned and the rest ``cold``.

    Attributes:
        vectors: the original vectors (cached or cold: never pinned).
        hnsw: the HNSW graph.
        quantization: the quantized vectors.
        payload: the payload storage (cached or cold: never pinned).
        payload_indexes: every payload index (tamis's ``doc_id`` / ``chunk`` and the declared ones).
        id_tracker: the point-id mapping of indexed segments.
    """

    vectors: Tier | None = None
    hnsw: Tier | None = None
    quantization: Tier | None = None
    payload: Tier | None = None
    payload_indexes: Tier | None = None
    id_tracker: Tier | None = None

    @model_validator(mode="after")
    def _no_pinned_storage(self) -> MemoryTiers:
        for name in ("vectors", "payload"):
            if getattr(self, name) == "pinned":
                raise ValueError(f"memory.{name} cannot be 'pinned' (Qdrant keeps it memory-mapped): use 'cached' or 'cold'")
        return self


class CollectionSettings(_Model):
    """How a collection is built and searched in Qdrant; every field optional (None: the engine's default).

    Attributes:
        shard_number, replication_factor, write_consistency_factor: server only (see `SERVER_ONLY`).
        strict_mode: server only: turn Qdrant's strict mode on (no unindexed filtering).
        on_disk_vectors, on_disk_payload: keep the original vectors / the payload on disk (mmap).
        memory: `MemoryTiers`, per structure (overrides the ``on_disk`` flags where both are set).
        hnsw_m, hnsw_ef_construct, hnsw_on_disk: the HNSW graph.
        hnsw_ef: the query-time candidate list size when a search does not give one (tamis's 128 if None).
        quantization: `Quantization`; ``rescore`` (re-score the candidates with the original vectors)
            and ``oversampling`` (fetch ``k * oversampling`` candidates first) apply at query time.
        payload_indexes: `PayloadIndex` es for the filter keys you use (``"metadata.lang:keyword"``).
        tenant_field: a keyword field indexed with ``is_tenant=True`` (multi-tenant collections).
        indexing_threshold_kb: segments above this many KB of vectors get an HNSW index.
    """

    shard_number: int | None = Field(default=None, ge=1)
    replication_factor: int | None = Field(default=None, ge=1)
    write_consistency_factor: int | None = Field(default=None, ge=1)
    strict_mode: bool | None = None
    on_disk_vectors: bool | None = None
    on_disk_payload: bool | None = None
    hnsw_m: int | None = Field(default=None, ge=2)
    hnsw_ef_construct: int | None = Field(default=None, ge=4)
    hnsw_on_disk: bool | None = None
    memory: MemoryTiers = MemoryTiers()
    hnsw_ef: int | None = Field(default=None, ge=1)
    quantization: Quantization = Quantization()
    rescore: bool | None = None
    oversampling: float | None = Field(default=None, ge=1.0)
    payload_indexes: tuple[PayloadIndex, ...] = ()
    tenant_field: str | None = Field(default=None, min_length=1)
    indexing_threshold_kb: int | None = Field(default=None, ge=1)

    @field_validator("payload_indexes", mode="before")
    @classmethod
    def _index_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, (str, Mapping)) else value

    def indexes(self) -> list[PayloadIndex]:
        """Every payload index to create: tamis's own, the declared ones, the tenant field (no duplicates)."""
        out: dict[str, PayloadIndex] = {k: PayloadIndex(key=k, type=t) for k, t in OWN_INDEXES}  # type: ignore[arg-type]
        for index in self.payload_indexes:
            out[index.key] = index
        if self.tenant_field is not None:
            out[self.tenant_field] = PayloadIndex(key=self.tenant_field, type="keyword", is_tenant=True)
        return list(out.values())

    def server_only(self) -> list[str]:
        """The `SERVER_ONLY` settings this object sets (kept, but not applied, by an embedded store)."""
        return [name for name in SERVER_ONLY if getattr(self, name) is not None]

    def to_dict(self) -> dict[str, Any]:
        """The settings that differ from the defaults, as JSON (what the manifest stores)."""
        return self.model_dump(mode="json", exclude_defaults=True)

    def merged(self, changes: Mapping[str, Any] | CollectionSettings | None) -> CollectionSettings:
        """These settings with ``changes`` (a mapping, or another object's non-default fields) on top."""
        if changes is None:
            return self
        extra = changes.to_dict() if isinstance(changes, CollectionSettings) else dict(changes)
        return CollectionSettings.of({**self.to_dict(), **extra})

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def of(cls, value: CollectionSettings | Mapping[str, Any] | None) -> CollectionSettings:
        """``value`` as settings (None: the defaults); `ConfigError` naming the bad field."""
        if isinstance(value, CollectionSettings):
            return value
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise ConfigError(f"settings must be a CollectionSettings or a mapping, got {type(value).__name__}")
        try:
            return cls.model_validate(dict(value))
        except ValidationError as exc:
            raise ConfigError(f"invalid collection settings: {_errors(exc)}") from exc

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> CollectionSettings:
        """Settings from a ``.json`` or ``.toml`` file (the same field names)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the settings file {str(p)!r}: {exc}") from exc
        try:
            if p.suffix.lower() == ".toml":
                import tomllib

                data: Any = tomllib.loads(text)
            else:
                data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"settings file {str(p)!r} is not valid {p.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
        return cls.of(data)

    @classmethod
    def from_strings(cls, items: Iterable[str], base: Mapping[str, Any] | None = None) -> CollectionSettings:
        """Settings from ``KEY=VALUE`` strings (``quantization.type=scalar``; values parsed as JSON when they are)."""
        data: dict[str, Any] = dict(base or {})
        for item in items:
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"expected KEY=VALUE (e.g. shard_number=2), got {item!r}")
            try:
                value: Any = json.loads(raw)
            except ValueError:
                value = raw
            *parents, leaf = key.strip().split(".")
            node = data
            for part in parents:
                child = node.get(part)
                node[part] = child = dict(child) if isinstance(child, Mapping) else ({"type": child} if child else {})
                node = child
            node[leaf] = value
        return cls.of(data)


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']} (got {e.get('input')!r})"
        for e in exc.errors()
    )
