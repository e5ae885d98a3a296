"""`CollectionSettings` on Qdrant Edge: the ``EdgeConfig`` of a new shard, its payload indexes, query params.

What qdrant-edge-py 0.9 applies (checked against its type stubs and by tests/adapters/test_settings.py):
HNSW ``m`` / ``ef_construct`` / ``on_disk``, ``on_disk`` vectors and payload, the memory tier
(`MemoryTiers`: pinned / cached / cold) of the vectors, graph, quantized vectors, payload, payload
indexes and id tracker, scalar int8 (quantile,
always_ram), binary (1, 1.5, 2 bits), product (x4..x64) and TurboQuant (1..8 bits) quantization,
``rescore`` / ``oversampling`` at query time, the indexing threshold, and keyword / integer / float /
bool / datetime / uuid / text payload indexes (``is_tenant`` on keyword ones). Edge is one local
shard: ``shard_number``, ``replication_factor``, ``write_consistency_factor`` and ``strict_mode``
are kept in the manifest (a push to a server applies them) but have no meaning here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import qdrant_edge as _qe

from tamis.stores import CollectionSettings, PayloadIndex, SearchParams

__all__ = ["edge_quantization", "index_operations", "make_shard", "search_params", "settings_config"]

_DISTANCE = {"cosine": _qe.Distance.Cosine, "dot": _qe.Distance.Dot, "euclid": _qe.Distance.Euclid}
_BINARY = {
    "one_bit": _qe.BinaryQuantizationEncoding.OneBit,
    "one_and_half_bits": _qe.BinaryQuantizationEncoding.OneAndHalfBits,
    "two_bits": _qe.BinaryQuantizationEncoding.TwoBits,
}
_TURBO = {
    "1": _qe.TurboQuantBitSize.Bits1,
    "1.5": _qe.TurboQuantBitSize.Bits1_5,
    "2": _qe.TurboQuantBitSize.Bits2,
    "4": _qe.TurboQuantBitSize.Bits4,
    "8": _qe.TurboQuantBitSize.Bits8,
}
_SCHEMA = {
    "keyword": _qe.PayloadSchemaType.Keyword,
    "integer": _qe.PayloadSchemaType.Integer,
    "float": _qe.PayloadSchemaType.Float,
    "bool": _qe.PayloadSchemaType.Bool,
    "datetime": _qe.PayloadSchemaType.Datetime,
    "uuid": _qe.PayloadSchemaType.Uuid,
    "text": _qe.PayloadSchemaType.Text,
}


_TIER = {"pinned": _qe.Memory.Pinned, "cached": _qe.Memory.Cached, "cold": _qe.Memory.Cold}
_INDEX_PARAMS = {
    "keyword": _qe.KeywordIndexParams,
    "integer": _qe.IntegerIndexParams,
    "float": _qe.FloatIndexParams,
    "bool": _qe.BoolIndexParams,
    "datetime": _qe.DatetimeIndexParams,
    "uuid": _qe.UuidIndexParams,
    "text": _qe.TextIndexParams,
}


def _tier(tier: str | None) -> Any:
    return None if tier is None else _TIER[tier]


def edge_quantization(settings: CollectionSettings) -> Any:
    """The engine's quantization config, or None."""
    q = settings.quantization
    kw = {"always_ram": q.always_ram, "memory": _tier(settings.memory.quantization)}
    if q.type == "scalar":
        return _qe.ScalarQuantizationConfig(_qe.ScalarType.Int8, quantile=q.quantile, **kw)
    if q.type == "binary":
        return _qe.BinaryQuantizationConfig(encoding=None if q.encoding is None else _BINARY[q.encoding], **kw)
    if q.type == "product":
        return _qe.ProductQuantizationConfig(getattr(_qe.CompressionRatio, q.compression.upper()), **kw)  # type: ignore[union-attr]
    if q.type == "turbo":
        return _qe.TurboQuantQuantizationConfig(bits=None if q.bits is None else _TURBO[q.bits], **kw)
    return None


def settings_config(
    dim: int,
    distance: str,
    settings: CollectionSettings,
    *,
    hnsw_m: int,
    hnsw_ef_construct: int,
    indexing_threshold_kb: int | None,
    full_scan_threshold_kb: int,
) -> Any:
    """The ``EdgeConfig`` of a new shard: the store's defaults with ``settings`` on top."""
    threshold = settings.indexing_threshold_kb or indexing_threshold_kb
    tiers = settings.memory
    return _qe.EdgeConfig(
        vectors=_qe.EdgeVectorParams(
            size=dim, distance=_DISTANCE[distance], on_disk=settings.on_disk_vectors, memory=_tier(tiers.vectors)
        ),
        on_disk_payload=settings.on_disk_payload,
        payload_memory=_tier(tiers.payload),
        id_tracker_memory=_tier(tiers.id_tracker),
        hnsw_config=_qe.HnswIndexConfig(
            m=settings.hnsw_m or hnsw_m,
            ef_construct=settings.hnsw_ef_construct or hnsw_ef_construct,
            full_scan_threshold=full_scan_threshold_kb,
            on_disk=settings.hnsw_on_disk,
            memory=_tier(tiers.hnsw),
        ),
        quantization_config=edge_quantization(settings),
        optimizers=None if threshold is None else _qe.EdgeOptimizersConfig(indexing_threshold=threshold),
    )


def _schema(index: PayloadIndex, tier: str | None) -> Any:
    """The index's schema: the plain type, or its params object for a tenant field or a memory tier."""
    if tier is None and not index.is_tenant:
        return _SCHEMA[index.type]
    kw: dict[str, Any] = {"memory": _tier(tier)}
    if index.is_tenant:
        kw["is_tenant"] = True
    return _INDEX_PARAMS[index.type](**kw)


def index_operations(settings: CollectionSettings) -> list[Any]:
    """One ``create_field_index`` update per payload index of ``settings`` (tamis's own included)."""
    tier = settings.memory.payload_indexes
    return [_qe.UpdateOperation.create_field_index(i.key, _schema(i, tier)) for i in settings.indexes()]


def search_params(params: SearchParams) -> Any:
    """The engine's ``SearchParams``: ``hnsw_ef``, ``exact``, and the quantization's rescore / oversampling."""
    quant = None
    if params.rescore is not None or params.oversampling is not None:
        quant = _qe.QuantizationSearchParams(rescore=params.rescore, oversampling=params.oversampling)
    return _qe.SearchParams(hnsw_ef=params.hnsw_ef, exact=params.exact, quantization=quant)


def make_shard(shard_dir: Path, config: Any, settings: CollectionSettings) -> None:
    """Create the shard of a new collection in ``shard_dir`` with its payload indexes, and close it."""
    shard = _qe.EdgeShard.create(str(shard_dir), config)
    try:
        for op in index_operations(settings):
            shard.update(op)
    finally:
        shard.close()
